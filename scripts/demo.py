"""deckhand's story against a local AWS emulator, through `cargo lambda watch` and `invoke`.

Starts moto server, seeds a cluster, a tagged service, an ECR repository with images, the table
and the topic, then sends the sample events in events/ to the functions and shows what changed.
Run it with `make demo`.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing, contextmanager
from datetime import datetime, time as clock_time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emulator import Emulator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TABLE = "deckhand"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
LONDON = ZoneInfo("Europe/London")


def free_port():
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds, process=None, log=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text()[-2000:] if log else ""
            sys.exit(f"the process serving 127.0.0.1:{port} exited with {process.returncode}:\n{tail}")
        with closing(socket.socket()) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def heading(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def manifest(tag):
    # moto derives an image digest from its layer digests, so each tag gets a stable digest
    # (the one events/ecr-push.json names for main-42).
    layer = "sha256:" + hashlib.sha256(f"deckhand-demo-web-{tag}".encode()).hexdigest()
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": layer},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": layer}],
    })


class Demo:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        session = boto3.session.Session(aws_access_key_id="demo", aws_secret_access_key="demo", region_name=REGION)
        client = lambda name: session.client(name, endpoint_url=endpoint)  # noqa: E731
        self.ecs, self.ecr, self.ddb, self.sns, self.autoscaling, self.cloudwatch, self.elb, self.ec2 = (
            client(n) for n in ("ecs", "ecr", "dynamodb", "sns", "application-autoscaling", "cloudwatch",
                                "elbv2", "ec2"))
        self.listener = None
        self.test_rule = None
        self.target_groups = {}
        self.topic_arn = None
        self.chat_topic_arn = None

    def seed(self):
        self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
        self.topic_arn = self.sns.create_topic(Name="deckhand")["TopicArn"]
        # What the template creates with SlackWorkspaceId and SlackChannelId: the channel's topic.
        self.chat_topic_arn = self.sns.create_topic(Name="deckhand-chat")["TopicArn"]
        self.ecr.create_repository(repositoryName="web")
        for tag in ("main-41", "main-42", "main-43", "feature-login"):
            self.ecr.put_image(repositoryName="web", imageManifest=manifest(tag), imageTag=tag)
        self.ecs.create_cluster(clusterName="demo")
        self.ecs.register_task_definition(
            family="web",
            taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/web-task",
            executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/web-execution",
            networkMode="bridge",
            cpu="256",
            memory="512",
            containerDefinitions=[{
                "name": "web",
                "image": f"{REGISTRY}/web:main-41",
                "essential": True,
                "portMappings": [{"containerPort": 8080}],
                "environment": [{"name": "DATABASE_URL", "value": "postgres://web:not-for-logs@db/web"}],
                "secrets": [{"name": "API_KEY", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:api"}],
            }],
            tags=[{"key": "team", "value": "storefront"}],
        )
        self.ecs.create_service(
            cluster="demo", serviceName="web", taskDefinition="web:1", desiredCount=2,
            tags=[
                {"key": "deckhand:deploy", "value": "prefix=main-"},
                {"key": "deckhand:awake", "value": "Mon-Fri 07:00-19:00"},
                {"key": "deckhand:timezone", "value": "Europe/London"},
            ],
        )
        self.cloudwatch.put_metric_alarm(
            AlarmName="web-5xx", Namespace="Storefront", MetricName="HTTPCode_5XX", Statistic="Sum",
            Period=60, EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
            Dimensions=[{"Name": "ClusterName", "Value": "demo"}, {"Name": "ServiceName", "Value": "web"}],
        )
        self.autoscaling.register_scalable_target(
            ServiceNamespace="ecs", ResourceId="service/demo/web", ScalableDimension="ecs:service:DesiredCount",
            MinCapacity=2, MaxCapacity=4,
        )

    def seed_pair(self):
        """The pair as teams build it by hand: an ALB in the default VPC with a target group per
        side, a listener whose default action forwards to blue's alone, a `/green*` test rule
        for the smoke tests, and the two services behind them."""
        subnets = [s["SubnetId"] for s in self.ec2.describe_subnets(
            Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]]
        vpc = self.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        lb = self.elb.create_load_balancer(Name="shop", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
        for side in ("blue", "green"):
            self.target_groups[side] = self.elb.create_target_group(
                Name=f"shop-{side}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip",
            )["TargetGroups"][0]["TargetGroupArn"]
        self.listener = self.elb.create_listener(
            LoadBalancerArn=lb, Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.target_groups["blue"]}],
            # Designated for deckhand: the only listeners its roles may change.
            Tags=[{"Key": "deckhand:traffic", "Value": "managed"}],
        )["Listeners"][0]["ListenerArn"]
        self.test_rule = self.elb.create_rule(
            ListenerArn=self.listener, Priority=10,
            Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/green*"]}}],
            Actions=[{"Type": "forward", "TargetGroupArn": self.target_groups["green"]}],
            Tags=[{"Key": "deckhand:traffic", "Value": "managed"}],
        )["Rules"][0]["RuleArn"]
        self.ecr.put_image(repositoryName="web", imageManifest=manifest("release-1"), imageTag="release-1")
        for side, partner, count in (("blue", "green", 2), ("green", "blue", 0)):
            self.ecs.create_service(
                cluster="demo", serviceName=f"web-{side}", taskDefinition="web:1", desiredCount=count,
                loadBalancers=[{"targetGroupArn": self.target_groups[side], "containerName": "web",
                                "containerPort": 8080}],
                tags=[
                    {"key": "deckhand:deploy", "value": "prefix=release-"},
                    {"key": "deckhand:pair", "value": f"web-{partner}"},
                    {"key": "deckhand:traffic", "value": self.listener},
                    {"key": "deckhand:traffic-steps", "value": "10 100"},
                    {"key": "deckhand:step-wait", "value": "5m"},
                    {"key": "deckhand:test-traffic", "value": self.test_rule},
                    {"key": "deckhand:traffic-gate", "value": "check=shop-smoke"},
                ],
            )
        self.cloudwatch.put_metric_alarm(
            AlarmName="shop-green-5xx", Namespace="AWS/ApplicationELB", MetricName="HTTPCode_Target_5XX_Count",
            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10.0,
            ComparisonOperator="GreaterThanThreshold",
            Dimensions=[{"Name": "TargetGroup", "Value": self.target_groups["green"].split(":")[-1]}],
            Tags=[{"Key": "deckhand:service", "Value": "demo/web-green"}],
        )

    def show_pair(self):
        listener = self.elb.describe_listeners(ListenerArns=[self.listener])["Listeners"][0]["DefaultActions"][0]
        weights = forward_weights(listener)
        sides = []
        for side in ("blue", "green"):
            service = self.ecs.describe_services(cluster="demo", services=[f"web-{side}"])["services"][0]
            weight = weights.get(self.target_groups[side], "(not in the action)")
            sides.append(f"web-{side} {short(service['taskDefinition'])} x{service['desiredCount']} "
                         f"weight {weight}")
        rule = self.elb.describe_rules(RuleArns=[self.test_rule])["Rules"][0]["Actions"][0]
        tested = [side for side in ("blue", "green")
                  if forward_weights(rule).get(self.target_groups[side], 0) > 0]
        print("listener: " + ", ".join(sides) + f"; test rule /green* -> {'+'.join(f'web-{s}' for s in tested)}")

    def ecs_deployment_id(self, service):
        item = self.ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"service#demo/{service}"},
                                                       "sk": {"S": "state"}}).get("Item", {})
        return item.get("deployment", {}).get("M", {}).get("ecsDeploymentId", {}).get("S")

    def show_service(self):
        service = self.ecs.describe_services(cluster="demo", services=["web"])["services"][0]
        td = self.ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        images = ", ".join(f"{c['name']}={c['image']}" for c in td["containerDefinitions"])
        targets = self.autoscaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=["service/demo/web"])
        scaling = "".join(f", autoscaling min {t['MinCapacity']} max {t['MaxCapacity']}" for t in targets["ScalableTargets"])
        print(f"demo/web runs {td['family']}:{td['revision']} ({images}), desired {service['desiredCount']}{scaling}")

    def show_state(self):
        item = self.ddb.get_item(TableName=TABLE, Key={"pk": {"S": "service#demo/web"}, "sk": {"S": "state"}}).get("Item", {})
        deployment = item.get("deployment", {}).get("M", {})
        if deployment:
            print(f"latest deployment: {short(deployment['from']['S'])} -> {short(deployment['to']['S'])}, "
                  f"{deployment['status']['S']}")
        print(f"known-good: {short(item.get('knownGood', {}).get('S', '-'))}")
        sleep = item.get("sleep", {}).get("M")
        if sleep:
            scalable = sleep.get("scalable", {}).get("M")
            saved = f"desired {sleep['desiredCount']['N']}" + (
                f", min {scalable['min']['N']} max {scalable['max']['N']}" if scalable else "")
            print(f"asleep since {sleep['since']['S']}; saved {saved}")
        quarantined = ", ".join(d[:19] + "..." for d in item.get("quarantine", {}).get("M", {}))
        if quarantined:
            print(f"quarantined: {quarantined}")

    def deckhand(self, *args):
        """Runs the operator's command line against the emulator, as an operator would."""
        print(f"$ deckhand {' '.join(args)}", flush=True)
        env = dict(os.environ, AWS_ENDPOINT_URL=self.endpoint, AWS_REGION=REGION, AWS_ACCESS_KEY_ID="demo",
                   AWS_SECRET_ACCESS_KEY="demo", DECKHAND_TABLE=TABLE, DECKHAND_TOPIC_ARN=self.topic_arn,
                   DECKHAND_CLUSTERS="demo")
        result = subprocess.run([str(ROOT / "target" / "debug" / "deckhand"), *args], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        print((result.stdout + result.stderr).rstrip(), flush=True)
        if result.returncode != 0:
            sys.exit(f"deckhand {' '.join(args)} failed")

    def show_service_deployments(self, name):
        service = self.ecs.describe_services(cluster="demo", services=[name])["services"][0]
        listed = self.ecs.list_service_deployments(cluster="demo", service=name)["serviceDeployments"]
        arns = [d["serviceDeploymentArn"] for d in listed]
        described = self.ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"] if arns else []
        print(f"demo/{name} runs {short(service['taskDefinition'])}; its service deployments, newest first:")
        for d in described:
            hooks = ", ".join(f"hook {h['status']}" for h in d.get("lifecycleHookDetails", []))
            print(f"  {d['serviceDeploymentArn'].split('/')[-1]} {short(d['sourceServiceRevisions'][0]['arn'] or '-')}"
                  f" -> {short(d['targetServiceRevision']['arn'])} {d['status']}" + (f" ({hooks})" if hooks else ""))

    def published(self, topic_arn):
        data = json.loads(urlopen_text(f"{self.endpoint}/moto-api/data.json"))
        return [sent for topic in data["sns"]["Topic"] if topic["arn"] == topic_arn
                for sent in topic["sent_notifications"]]

    def show_notifications(self):
        for _, message, subject, attributes, _ in self.published(self.topic_arn):
            body = json.loads(message)
            print(f"  [{attributes['kind']['Value']}/{attributes['severity']['Value']}] {subject}")
            print(f"      {json.dumps(body)[:240]}")

    def chat_messages(self):
        return [json.loads(message) for _, message, _, _, _ in self.published(self.chat_topic_arn)]

    def show_chat(self, event_types):
        """The first chat message of each kind, as a Slack channel shows it: title, description,
        next steps, thread."""
        shown = set()
        for m in self.chat_messages():
            kind = m["metadata"]["eventType"]
            if kind not in event_types or kind in shown:
                continue
            shown.add(kind)
            print(f"  #deploys  (thread {m['metadata']['threadId']})")
            print(f"  | {m['content']['title']}")
            for line in m["content"]["description"].splitlines():
                print(f"  | {line}")
            for step in m["content"]["nextSteps"]:
                print(f"  | - {step}")
            print()


def emf_documents(log_path):
    """The CloudWatch embedded-metric-format documents the functions wrote to their log."""
    documents = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        start = line.find('{"')
        if start < 0 or '"_aws"' not in line:
            continue
        try:
            doc = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            documents.append(doc)
    return documents


def emf_values(documents):
    """{metric: [(service or None, value)]}, each document checked against the EMF rules."""
    values = {}
    for doc in documents:
        meta = doc["_aws"]
        if not isinstance(meta.get("Timestamp"), int):
            sys.exit(f"EMF: no Timestamp in milliseconds: {doc}")
        for directive in meta["CloudWatchMetrics"]:
            if directive["Namespace"] != "deckhand":
                sys.exit(f"EMF: namespace {directive['Namespace']}: {doc}")
            for dimension_set in directive["Dimensions"]:
                if any(key not in doc for key in dimension_set):
                    sys.exit(f"EMF: a dimension without its value: {doc}")
            # A metric put per service carries the dimension set ["Service"]; the others count
            # for the fleet only, whatever the document says of its service.
            per_service = ["Service"] in directive["Dimensions"]
            for metric in directive["Metrics"]:
                name = metric["Name"]
                if not isinstance(doc.get(name), (int, float)):
                    sys.exit(f"EMF: metric {name} without a number: {doc}")
                service = doc.get("Service") if per_service else None
                values.setdefault(name, []).append((service, doc[name]))
    return values


def short(arn):
    return arn.split("task-definition/")[-1]


def urlopen_text(url):
    from urllib.request import urlopen
    with urlopen(url) as response:
        return response.read().decode()


def invoke(port, event_file, shown_as=None, function="deploy"):
    print(f"$ cargo lambda invoke {function} --data-file {shown_as or event_file.relative_to(ROOT)}")
    result = subprocess.run(
        ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
         "--data-file", str(event_file)],
        cwd=ROOT, capture_output=True, text=True,
    )
    output = (result.stdout or result.stderr).strip()
    print(output)
    if result.returncode != 0:
        sys.exit(f"invoke failed: {result.stderr.strip()}")
    return json.loads(output)


def forward_weights(action):
    """A forward action's target groups and weights (a plain forward has weight 1)."""
    groups = action.get("ForwardConfig", {}).get("TargetGroups") or []
    if groups:
        return {g["TargetGroupArn"]: g.get("Weight", 1) for g in groups}
    return {action["TargetGroupArn"]: 1}


class SmokeTest:
    """The team's smoke test, as the Lambda function `shop-smoke` behind the emulator's Invoke:
    it passes when the test rule it is given reaches the target group it is asked to test, as a
    `curl https://shop.example.com/green/health` would. Tagged deckhand:traffic-gate = check,
    which designates it for deckhand."""

    def __init__(self, demo):
        import http.server
        import threading
        import urllib.request

        elb, names = demo.elb, {arn: f"shop-{side}" for side, arn in demo.target_groups.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                question = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                rule = elb.describe_rules(RuleArns=[question["testTraffic"]])["Rules"][0]["Actions"][0]
                reached = [names.get(tg, tg) for tg, w in forward_weights(rule).items() if w > 0]
                wanted = names.get(question["targetGroup"], question["targetGroup"])
                passed = reached == [wanted]
                print(f"  smoke test shop-smoke asked about {question['service']}: GET /green/health "
                      f"reaches {'+'.join(reached)}: {'success' if passed else 'failure'}")
                body = json.dumps({"success": passed} if passed else
                                  {"success": False, "reason": f"/green* reaches {reached}"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        told = json.dumps({"url": f"http://127.0.0.1:{self.server.server_address[1]}/check",
                           "tags": {"deckhand:traffic-gate": "check"}}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{demo.endpoint}/_deckhand/lambda/functions/shop-smoke", data=told,
            headers={"Content-Type": "application/json"}), timeout=10).read()

    def stop(self):
        self.server.shutdown()


def announce_tagged(lambda_port, *services):
    """EventBridge's Tag Change on Resource for services created with deckhand:deploy: the
    repository index lists them before any push (moto sends no events, so the demo does)."""
    heading("EventBridge: " + ", ".join(f"demo/{s}" for s in services)
            + " created with deckhand:deploy (Tag Change on Resource): the repository index lists them")
    for service in services:
        event = json.loads((ROOT / "events" / "tag-change-on-resource.json").read_text())
        event["id"] = f"tagged-{service}"
        event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/demo/{service}"]
        expect(invoke_with(lambda_port, "deploy", "tag-change-on-resource.json", event, f"(demo/{service})"),
               "recorded")


def invoke_with(port, function, sample, event, shown_as):
    """Invokes with a sample event changed for this run, shown under the sample's name."""
    with tempfile.NamedTemporaryFile("w", suffix=f"-{sample}", delete=False) as f:
        json.dump(event, f)
    try:
        return invoke(port, Path(f.name), f"events/{sample} {shown_as}", function)
    finally:
        os.unlink(f.name)


def night_and_morning(now):
    """The next weekday 22:00 in London at least a quarter of an hour ahead, and 07:00 the next
    weekday after it, as RFC 3339 in UTC."""
    local = now.astimezone(LONDON)
    day = local.date()
    while True:
        night = datetime.combine(day, clock_time(22, 0), LONDON)
        if day.weekday() < 5 and night > local + timedelta(minutes=15):
            break
        day += timedelta(days=1)
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    morning = datetime.combine(day, clock_time(7, 0), LONDON)
    utc = lambda t: t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return utc(night), utc(morning)


def alarm_event(event_id, name, fired, namespace, metric, dimensions):
    """events/alarm-eventbridge.json for another alarm, going into ALARM at `fired`, on `metric`."""
    alarm = json.loads((ROOT / "events" / "alarm-eventbridge.json").read_text())
    alarm["id"] = event_id
    alarm["time"] = fired.strftime("%Y-%m-%dT%H:%M:%SZ")
    alarm["resources"] = [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"]
    alarm["detail"] = dict(alarm["detail"], alarmName=name,
                           state=dict(alarm["detail"]["state"], timestamp=fired.strftime("%Y-%m-%dT%H:%M:%S.000+0000")))
    alarm["detail"]["configuration"] = {"metrics": [{"id": "m1", "metricStat": {"metric": {
        "namespace": namespace, "name": metric, "dimensions": dimensions}, "period": 60, "stat": "Sum"},
        "returnData": True}]}
    return alarm


def expect(summary, outcome):
    if summary.get("outcome") != outcome:
        sys.exit(f"expected outcome {outcome}, got {summary}")


@contextmanager
def local_aws():
    """moto server on a free port, with the demo's resources seeded; stopped on exit."""
    server = Emulator(free_port()).start()
    endpoint = f"http://127.0.0.1:{server.server.server_port}"
    try:
        demo = Demo(endpoint)
        demo.seed()
        yield demo
    finally:
        server.stop()


@contextmanager
def functions_running(demo, log_name):
    """The three functions built and served by `cargo lambda watch`; yields its port."""
    # Every binary, as `cargo lambda watch` builds them (`cargo run --bin` in the workspace): one
    # set of features, so the watch starts on what this built instead of building the SDKs again.
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--bins"], cwd=ROOT, check=True)
    env = dict(os.environ, AWS_ENDPOINT_URL=demo.endpoint, AWS_REGION=REGION, AWS_ACCESS_KEY_ID="demo",
               AWS_SECRET_ACCESS_KEY="demo", DECKHAND_TABLE=TABLE, DECKHAND_TOPIC_ARN=demo.topic_arn,
               DECKHAND_CLUSTERS="demo", DECKHAND_CHAT_TOPIC_ARN=demo.chat_topic_arn, RUST_LOG="warn")
    with watching(env, log_name) as port:
        yield port


@contextmanager
def watching(env, log_name):
    """`cargo lambda watch` serving the built functions with `env`; yields its port."""
    port = free_port()
    log = open(ROOT / "target" / log_name, "w")
    watch = subprocess.Popen(
        ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for_port(port, 180, watch, ROOT / "target" / log_name)
        yield port
    finally:
        # watch runs the functions as its own children: stop the whole group.
        os.killpg(watch.pid, signal.SIGTERM)
        try:
            watch.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(watch.pid, signal.SIGKILL)
        log.close()


def blue_green(demo, lambda_port, now):
    heading("Blue/green with two services: demo/web-blue live, demo/web-green idle at 0, one ALB listener")
    demo.seed_pair()
    print("as the team built it: the listener forwards to web-blue's target group alone, a /green* rule")
    print("reaches the idle side for smoke tests; both services tagged deckhand:pair (each naming the other),")
    print("deckhand:traffic = the listener, deckhand:test-traffic = the /green* rule, deckhand:traffic-gate =")
    print("check=shop-smoke (the team's smoke test), deckhand:traffic-steps = 10 100, deckhand:step-wait = 5m,")
    print("deckhand:deploy = prefix=release-; alarm shop-green-5xx on green's target group, tagged")
    print("deckhand:service = demo/web-green")
    demo.show_pair()
    announce_tagged(lambda_port, "web-blue", "web-green")

    heading("CI pushes web:release-1: the idle side gets the new revision with the live side's count")
    push = json.loads((ROOT / "events" / "ecr-push.json").read_text())
    digest = demo.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": "release-1"}])[
        "imageDetails"][0]["imageDigest"]
    push["id"] = "b1e2c3d4-0000-4000-8000-000000000001"
    push["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    push["detail"] = dict(push["detail"], **{"image-tag": "release-1", "image-digest": digest})
    expect(invoke_with(lambda_port, "deploy", "ecr-push.json", push, "(web:release-1)"), "deployed")
    demo.show_pair()

    heading("ECS completes web-green's deployment: the test rule reaches it, the smoke test passes, 10% moves")
    smoke = SmokeTest(demo)
    # The functions run on the machine's clock: the rest of the act is timed from now.
    now = datetime.now(timezone.utc)
    completed = json.loads((ROOT / "events" / "ecs-deployment-completed.json").read_text())
    completed["id"] = "b1e2c3d4-0000-4000-8000-000000000002"
    completed["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    completed["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/demo/web-green"]
    completed["detail"] = dict(completed["detail"], deploymentId=demo.ecs_deployment_id("web-green")
                               or completed["detail"]["deploymentId"],
                               updatedAt=now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    expect(invoke_with(lambda_port, "deploy", "ecs-deployment-completed.json", completed,
                       "(web-green, time: now)"), "completed")
    smoke.stop()
    demo.show_pair()

    step = (now + timedelta(minutes=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    heading(f"Six minutes later ({step}), the step having held its five, the reconcile moves the rest: "
            "100% on web-green, and the test rule now reaches web-blue, the idle side")
    reconcile = json.loads((ROOT / "events" / "schedule-reconcile.json").read_text())
    reconcile["at"] = step
    expect(invoke_with(lambda_port, "scheduler", "schedule-reconcile.json", reconcile, f"(at: {step})"),
           "shifted")
    demo.show_pair()

    heading("Alarm shop-green-5xx goes into ALARM inside green's guard window: the listener flips back")
    alarm = alarm_event("b1e2c3d4-0000-4000-8000-000000000003", "shop-green-5xx", now + timedelta(minutes=7),
                        "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count",
                        {"TargetGroup": demo.target_groups["green"].split(":")[-1]})
    started = time.monotonic()
    expect(invoke_with(lambda_port, "rollback", "alarm-eventbridge.json", alarm, "(shop-green-5xx)"),
           "rolled-back")
    took = (time.monotonic() - started) * 1000
    demo.show_pair()
    print(f"traffic back on web-blue {took:.0f} ms after the alarm event was sent (the whole invoke, "
          "cargo lambda's round trip included); one ModifyListener, no ECS deployment; the test rule "
          "back on web-green, the idle side again")


def native_blue_green(demo, lambda_port):
    heading("ECS's own blue/green: demo/api, BLUE_GREEN with a pause hook after the test traffic shift")
    demo.ecr.put_image(repositoryName="web", imageManifest=manifest("bg-1"), imageTag="bg-1")
    demo.ecs.register_task_definition(
        family="api", networkMode="bridge", cpu="256", memory="512",
        containerDefinitions=[{"name": "api", "image": f"{REGISTRY}/web:main-41", "essential": True}],
    )
    demo.ecs.create_service(cluster="demo", serviceName="api", taskDefinition="api:1", desiredCount=2,
                            tags=[{"key": "deckhand:deploy", "value": "prefix=bg-"}])
    demo.ecs.update_service(cluster="demo", service="api", deploymentConfiguration={
        "strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15,
        "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                            "timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"}}]})
    demo.cloudwatch.put_metric_alarm(
        AlarmName="api-5xx", Namespace="Storefront", MetricName="HTTPCode_5XX", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "ClusterName", "Value": "demo"}, {"Name": "ServiceName", "Value": "api"}],
    )
    print("tagged deckhand:deploy = prefix=bg-; alarm api-5xx on its HTTPCode_5XX")
    announce_tagged(lambda_port, "api")

    heading("CI pushes web:bg-1: deckhand deploys it with UpdateService; ECS runs the blue/green")
    now = datetime.now(timezone.utc)
    push = json.loads((ROOT / "events" / "ecr-push.json").read_text())
    digest = demo.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": "bg-1"}])[
        "imageDetails"][0]["imageDigest"]
    push["id"] = "c1e2c3d4-0000-4000-8000-000000000001"
    push["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    push["detail"] = dict(push["detail"], **{"image-tag": "bg-1", "image-digest": digest})
    expect(invoke_with(lambda_port, "deploy", "ecr-push.json", push, "(web:bg-1)"), "deployed")
    demo.show_service_deployments("api")

    heading("ECS: the deployment waits at its pause hook (ECS Hook State Change, HOOK_AWAITING_ACTION)")
    arn = demo.ecs.list_service_deployments(cluster="demo", service="api")["serviceDeployments"][0][
        "serviceDeploymentArn"]
    hook = json.loads((ROOT / "events" / "ecs-hook-awaiting-action.json").read_text())
    hook["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    hook["resources"] = [arn]
    expect(invoke_with(lambda_port, "deploy", "ecs-hook-awaiting-action.json", hook, "(demo/api)"), "recorded")

    heading("The release manager approves: ContinueServiceDeployment, and ECS goes on")
    demo.deckhand("approve", "demo/api")
    demo.show_service_deployments("api")

    heading("Alarm api-5xx during the bake time: ECS's own rollback (StopServiceDeployment), no new deployment")
    alarm = alarm_event("c1e2c3d4-0000-4000-8000-000000000003", "api-5xx", now + timedelta(minutes=2),
                        "Storefront", "HTTPCode_5XX", {"ClusterName": "demo", "ServiceName": "api"})
    expect(invoke_with(lambda_port, "rollback", "alarm-eventbridge.json", alarm, "(api-5xx)"), "rolled-back")
    demo.show_service_deployments("api")


def main():
    with local_aws() as demo, functions_running(demo, "demo-watch.log") as lambda_port:
        story(demo, lambda_port)


def story(demo, lambda_port):
    heading(f"Local AWS emulator (moto) on {demo.endpoint}: seeded cluster, service, images, table, topic")
    print("service demo/web tagged deckhand:deploy = prefix=main-, deckhand:awake = Mon-Fri 07:00-19:00,")
    print("deckhand:timezone = Europe/London; autoscaled 2-4; ECR web has main-41, main-42, main-43, feature-login;")
    print("CloudWatch alarm web-5xx watches its HTTPCode_5XX (dimensions ClusterName=demo, ServiceName=web)")

    print(f"cargo lambda watch on 127.0.0.1:{lambda_port} (log: target/demo-watch.log)")

    heading("Before the push")
    demo.show_service()

    heading("CI pushes web:main-42: deploy moves the service onto it, pinned by digest")
    # Stamped now, so that the lead time (push to ECS completed) is this story's.
    first_push = json.loads((ROOT / "events" / "ecr-push.json").read_text())
    first_push["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    expect(invoke_with(lambda_port, "deploy", "ecr-push.json", first_push, "(time: now)"), "deployed")
    demo.show_service()
    demo.show_state()

    heading("EventBridge delivers the same push again: nothing changes")
    expect(invoke_with(lambda_port, "deploy", "ecr-push.json", first_push, "(the same event)"), "duplicate")

    heading("A feature branch pushes web:feature-login: not in the policy, ignored")
    expect(invoke(lambda_port, ROOT / "events" / "ecr-push-untracked-tag.json"), "ignored")

    heading("ECS reports the deployment COMPLETED (event time set to now: the emulator runs no rollouts)")
    completed = json.loads((ROOT / "events" / "ecs-deployment-completed.json").read_text())
    now = datetime.now(timezone.utc)
    completed["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    completed["detail"]["updatedAt"] = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    expect(invoke_with(lambda_port, "deploy", "ecs-deployment-completed.json", completed, "(time: now)"),
           "completed")
    demo.show_state()

    heading("Moments later alarm web-5xx goes into ALARM: rollback to the known-good revision")
    alarm = json.loads((ROOT / "events" / "alarm-eventbridge.json").read_text())
    time.sleep(2)
    fired = datetime.now(timezone.utc) - timedelta(seconds=1)
    alarm["time"] = fired.strftime("%Y-%m-%dT%H:%M:%SZ")
    alarm["detail"]["state"]["timestamp"] = fired.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    expect(invoke_with(lambda_port, "rollback", "alarm-eventbridge.json", alarm, "(time: now)"),
           "rolled-back")
    demo.show_service()
    demo.show_state()

    heading("The alarm fires again a minute later: one rollback per deployment")
    again = dict(alarm, id="0f6d2c3e-4b5a-4c7d-8e9f-a0b1c2d3e4f5")
    again["detail"] = dict(alarm["detail"], state=dict(alarm["detail"]["state"],
                           timestamp=(fired + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")))
    expect(invoke_with(lambda_port, "rollback", "alarm-eventbridge.json", again, "(another delivery)"), "skipped")

    heading("CI pushes the same bad image again (a new push event): the quarantined digest is not deployed")
    repush = json.loads((ROOT / "events" / "ecr-push.json").read_text())
    repush["id"] = "7d3c1b2a-0e9f-4a8b-b7c6-d5e4f3a2b1c0"
    repush["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    expect(invoke_with(lambda_port, "deploy", "ecr-push.json", repush, "(a new push of main-42)"), "skipped")
    demo.show_service()

    heading("CI pushes web:main-43; its tasks fail their health checks and ECS reports the deployment FAILED")
    ran = demo.ecs.describe_services(cluster="demo", services=["web"])["services"][0]["taskDefinition"]
    digest = demo.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": "main-43"}])[
        "imageDetails"][0]["imageDigest"]
    other = dict(first_push, id="7d3c1b2a-0e9f-4a8b-b7c6-d5e4f3a2b1c1",
                 time=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    other["detail"] = dict(first_push["detail"], **{"image-tag": "main-43", "image-digest": digest})
    expect(invoke_with(lambda_port, "deploy", "ecr-push.json", other, "(main-43, time: now)"), "deployed")
    failed = json.loads((ROOT / "events" / "ecs-deployment-failed.json").read_text())
    failed_at = datetime.now(timezone.utc)
    failed["time"] = failed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    failed["detail"]["updatedAt"] = failed_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    expect(invoke_with(lambda_port, "deploy", "ecs-deployment-failed.json", failed, "(time: now)"), "failed")
    # ECS's circuit breaker puts the service back on the revision it ran; the emulator does not.
    demo.ecs.update_service(cluster="demo", service="web", taskDefinition=ran)
    ran = ran.rsplit("/", 1)[-1]
    print(f"ECS's circuit breaker rolled demo/web back to {ran} (done here by hand: the emulator runs no rollouts)")
    demo.show_state()

    night, morning = night_and_morning(now)
    heading(f"Night: the schedule reconciles at 22:00 London ({night}); demo/web goes to sleep")
    reconcile = json.loads((ROOT / "events" / "schedule-reconcile.json").read_text())
    reconcile["at"] = night
    expect(invoke_with(lambda_port, "scheduler", "schedule-reconcile.json", reconcile, f"(at: {night})"), "asleep")
    demo.show_service()
    demo.show_state()

    heading("A second reconcile the same night changes nothing")
    expect(invoke_with(lambda_port, "scheduler", "schedule-reconcile.json", reconcile, f"(at: {night})"),
           "unchanged")

    heading(f"Morning: 07:00 London ({morning}); demo/web wakes exactly as it was")
    reconcile["at"] = morning
    expect(invoke_with(lambda_port, "scheduler", "schedule-reconcile.json", reconcile, f"(at: {morning})"), "awake")
    demo.show_service()

    import demo_promotion  # noqa: E402 (it uses this module's helpers)

    demo_promotion.staging_to_production(demo, lambda_port, morning)
    blue_green(demo, lambda_port, now)
    native_blue_green(demo, lambda_port)

    heading("What the operator sees: status, history and report from the table")
    demo.deckhand("status")
    demo.deckhand("history", "demo/web")
    demo.deckhand("report", "--since", "7d")

    heading("Notifications on the SNS topic")
    demo.show_notifications()

    heading("The same notifications in the Slack channel (the chat topic, through Amazon Q Developer)")
    demo.show_chat({"deploy.started", "rollback.started", "scale.summary"})

    heading("CloudWatch metrics: the embedded-metric-format lines in the functions' logs")
    values = emf_values(emf_documents(ROOT / "target" / "demo-watch.log"))
    for name, points in sorted(values.items()):
        per = ", ".join(f"{service or 'fleet'}={value:g}" for service, value in points[:4])
        more = f" and {len(points) - 4} more" if len(points) > 4 else ""
        print(f"  deckhand/{name:<22} {len(points):>2} value(s): {per}{more}")


if __name__ == "__main__":
    main()
