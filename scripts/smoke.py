"""The local loop, proven: every file in events/ goes through `cargo lambda invoke` to the right
function running under `cargo lambda watch` against moto server, and each summary is checked.

Times in the samples are moved to now where the decisions depend on them (a deployment event must
follow its deployment, an alarm must fire inside the guard window); everything else is sent as is.
Run by `make test`; exits non-zero on the first unexpected outcome or if a sample was not sent.
"""

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import (ROOT, emf_documents, emf_values, functions_running, invoke, invoke_with,  # noqa: E402
                  local_aws, night_and_morning)

EVENTS = ROOT / "events"


def sample(name):
    return json.loads((EVENTS / name).read_text())


def stamp(at):
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_ms(at):
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alarm_stamp(at):
    return at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def now():
    return datetime.now(timezone.utc)


class Smoke:
    def __init__(self, demo, port):
        self.demo, self.port = demo, port
        self.sent = set()
        self.checks = 0

    def send(self, function, name, expected, event=None, note="", reason=None):
        self.sent.add(name)
        summary = (invoke(self.port, EVENTS / name, function=function) if event is None
                   else invoke_with(self.port, function, name, event, note))
        if summary.get("outcome") != expected:
            sys.exit(f"FAIL {function} {name}: expected outcome {expected}, got {summary}")
        if reason is not None:
            reasons = [s.get("reason", "") for s in summary.get("services", [])] + [summary.get("reason") or ""]
            if not any(reason in r for r in reasons):
                sys.exit(f"FAIL {function} {name}: no reason mentions {reason!r}: {summary}")
        self.checks += 1
        print(f"ok   {function:<9} {name:<32} -> {expected}", flush=True)
        return summary

    def running(self):
        service = self.demo.ecs.describe_services(cluster="demo", services=["web"])["services"][0]
        return service["taskDefinition"].rsplit(":", 1)[1], service["desiredCount"]


def run(smoke):
    push = sample("ecr-push.json")
    pushed = datetime.fromisoformat(push["time"].replace("Z", "+00:00"))

    smoke.send("deploy", "ecr-push.json", "deployed", reason="matches prefix=main-")
    smoke.send("deploy", "ecr-push-untracked-tag.json", "ignored")
    # The smoke stack runs without DECKHAND_REQUIRE_SCAN; the gate itself is in the tests.
    smoke.send("deploy", "ecr-scan-clean.json", "ignored", reason="no scan gate")
    smoke.send("deploy", "ecr-scan-critical.json", "ignored", reason="no scan gate")
    smoke.send("deploy", "inspector2-scan.json", "ignored", reason="no scan gate")
    smoke.send("deploy", "ecr-push-signature.json", "ignored", reason="cosign signature")
    smoke.send("deploy", "codedeploy-deployment-success.json", "ignored", reason="no deployment group demo/api")
    smoke.send("deploy", "ecs-hook-awaiting-action.json", "ignored", reason="waits at a pause hook now")
    smoke.send("deploy", "tag-change-on-resource.json", "recorded", reason="the repository index lists it")
    # Another account's announcement, which this stack (no PromoteFromAccounts) does not take.
    smoke.send("deploy", "known-good.json", "ignored", reason="not the stack's own")
    smoke.send("deploy", "calendar-open.json", "ignored", reason="no push was held by it")
    smoke.send("deploy", "release-held.json", "ignored", reason="no push is held")
    failed = sample("ecs-deployment-failed.json")
    failed["time"] = stamp(now())
    failed["detail"]["updatedAt"] = stamp_ms(now())
    smoke.send("deploy", "ecs-deployment-failed.json", "failed", failed, "(time: now)", reason="quarantined")
    again = dict(push, id="smoke-repush-42", time=stamp(pushed + timedelta(hours=1)))
    smoke.send("deploy", "ecr-push.json", "skipped", again, "(a new push of the failed digest)", reason="quarantined")

    # A good image: main-41 by digest.
    images = smoke.demo.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": "main-41"}])
    digest = images["imageDetails"][0]["imageDigest"]
    good = dict(push, id="smoke-push-41", time=stamp(pushed + timedelta(hours=2)))
    good["detail"] = dict(push["detail"], **{"image-tag": "main-41", "image-digest": digest})
    smoke.send("deploy", "ecr-push.json", "deployed", good, "(main-41 by digest)")
    completed = sample("ecs-deployment-completed.json")
    completed["time"] = stamp(now())
    completed["detail"]["updatedAt"] = stamp_ms(now())
    smoke.send("deploy", "ecs-deployment-completed.json", "completed", completed, "(time: now)")

    smoke.send("rollback", "alarm-ok.json", "ignored", reason="only a transition into ALARM acts")
    fired = now() + timedelta(minutes=3)
    alarm = sample("alarm-eventbridge.json")
    alarm["time"] = stamp(fired)
    alarm["detail"]["state"]["timestamp"] = alarm_stamp(fired)
    smoke.send("rollback", "alarm-eventbridge.json", "rolled-back", alarm, "(time: now + 3 min)")
    # The baseline web:1 names web:main-41: the rollback runs a clone of it pinned to the digest
    # that ran, never the tag.
    revision = smoke.running()[0]
    td = smoke.demo.ecs.describe_task_definition(taskDefinition=f"web:{revision}")["taskDefinition"]
    image = td["containerDefinitions"][0]["image"]
    if not image.endswith(f"/web@{digest}"):
        sys.exit(f"FAIL rollback: demo/web runs {image} (web:{revision}), expected main-41's digest {digest}")
    direct = sample("alarm-direct.json")
    direct["alarmData"]["state"]["timestamp"] = alarm_stamp(fired + timedelta(minutes=1))
    smoke.send("rollback", "alarm-direct.json", "skipped", direct, "(time: now + 4 min)", reason="already rolled back")
    sns = sample("alarm-sns.json")
    message = json.loads(sns["Records"][0]["Sns"]["Message"])
    message["StateChangeTime"] = alarm_stamp(fired + timedelta(minutes=2))
    sns["Records"][0]["Sns"]["Message"] = json.dumps(message)
    smoke.send("rollback", "alarm-sns.json", "skipped", sns, "(time: now + 5 min)", reason="already rolled back")

    night, morning = night_and_morning(now())
    reconcile = dict(sample("schedule-reconcile.json"), at=night)
    smoke.send("scheduler", "schedule-reconcile.json", "asleep", reconcile, f"(at: {night})")
    if smoke.running()[1] != 0:
        sys.exit(f"FAIL scheduler: demo/web desired count {smoke.running()[1]} after the night, expected 0")
    smoke.send("scheduler", "schedule-wake.json", "awake", reason="kept awake by an operator")
    smoke.send("scheduler", "schedule-sleep.json", "asleep", reason="kept asleep by an operator")
    legacy = dict(sample("schedule-legacy.json"), time=morning)
    smoke.send("scheduler", "schedule-legacy.json", "awake", legacy, f"(time: {morning})")
    if smoke.running() != (revision, 2):
        sys.exit(f"FAIL scheduler: demo/web runs {smoke.running()} after the morning, expected web:{revision} (the rollback's) with 2 tasks")


# What the run above does, as the functions count it: two deployments, one failed, one completed
# (its lead time), one rollback, two reconciles (services asleep after each), and two wakes with
# their task-hours (the operator's and the morning's). The alarms are stamped minutes ahead of
# the clock, so no time to rollback is measured here (make demo measures one).
EXPECTED_METRICS = {"Deployments": 2, "DeploymentFailures": 1, "LeadTimeSeconds": 1, "Rollbacks": 1,
                    "ServicesAsleep": 2, "TaskHoursSaved": 2}


def check_metrics():
    values = emf_values(emf_documents(ROOT / "target" / "smoke-watch.log"))
    counts = {name: len(points) for name, points in values.items()}
    if counts != EXPECTED_METRICS:
        sys.exit(f"FAIL metrics: expected {EXPECTED_METRICS} values, the functions' logs have {counts}")
    if values["ServicesAsleep"][0] != (None, 1) or values["Deployments"][0] != ("demo/web", 1):
        sys.exit(f"FAIL metrics: {values}")
    print(f"ok   metrics: {sum(counts.values())} EMF values parsed back from the functions' output: {counts}")


def check_chat(demo):
    kinds = [json.loads(m)["kind"] for _, m, _, _, _ in demo.published(demo.topic_arn)]
    chat = demo.chat_messages()
    if sorted(kinds) != sorted(m["metadata"]["eventType"] for m in chat):
        sys.exit(f"FAIL chat: {kinds} on the topic, {[m['metadata']['eventType'] for m in chat]} in the chat")
    for m in chat:
        if (m["version"], m["source"], m["content"]["textType"]) != ("1.0", "custom", "client-markdown"):
            sys.exit(f"FAIL chat: {m}")
    print(f"ok   chat: {len(chat)} messages in Amazon Q Developer's format, one per notification")


def main():
    with local_aws() as demo, functions_running(demo, "smoke-watch.log") as port:
        smoke = Smoke(demo, port)
        run(smoke)
        check_chat(demo)
    check_metrics()
    samples = {p.name for p in EVENTS.glob("*.json")}
    if samples - smoke.sent:
        sys.exit(f"FAIL: samples never sent: {sorted(samples - smoke.sent)}")
    print(f"smoke: {len(samples)} sample events, {smoke.checks} invocations, every summary as expected")


if __name__ == "__main__":
    main()
