"""EventBridge between accounts, as AWS delivers it, for the tests' emulator.

moto sends an event that a rule targets at another account's bus by putting a new event there:
with that account as `account`, a new id and time, and no `resources`. deckhand's promotion relies
on what AWS does instead (EventBridge User Guide, "Sending and receiving events between AWS
accounts"): the receiving bus gets the event as it was, `account` still the sender's, and only when
the receiving bus's resource policy allows the sender; an event received from another account is
not sent on to a third. Without the policy the delivery fails, into the rule's dead-letter queue
when the target has one. And moto hands targets the event without its `account`, which AWS
delivers and deckhand checks.

The rules a stack's template creates are installed from template.yaml itself, resolved for the
stack's account and parameters, with the deploy function stood in for by an SQS queue:

    POST /_deckhand/events/stacks/ID  {"account": "...", "parameters": {...}, "deployQueueArn": "..."}

It installs the deploy function's EventBridge rules, the stack's own rules (the forwarding of its
announcements) and the statements of its event bus policies.
"""

import copy
import json
from pathlib import Path

from moto.events.models import EventBusPolicyStatement, Rule, events_backends
from moto.events.utils import EventTemplateParser
from moto.sqs import sqs_backends

import iam

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
API = "/_deckhand/events/stacks/"


def _bus_policy_allows(bus, sender, event):
    """Whether `bus`'s resource policy lets account `sender` put `event` (its source and
    detail-type as `events:source` and `events:detail-type`)."""
    policy = json.loads(bus.policy) if bus.policy else {"Statement": []}
    names = {sender, f"arn:{iam.PARTITION}:iam::{sender}:root", "*"}
    mine = []
    for statement in policy["Statement"]:
        principal = statement.get("Principal", {})
        aws = principal if principal == "*" else iam.as_list(principal.get("AWS", []))
        if principal == "*" or names & set(aws):
            mine.append(statement)
    context = {"events:source": event.get("source", ""), "events:detail-type": event.get("detail-type", "")}
    return iam.decide(mine, "events:PutEvents", bus.arn, context) == "allow"


def _dead_letter(rule, target, event, reason):
    queue = (target.get("DeadLetterConfig") or {}).get("Arn")
    if not queue:
        return
    _, _, _, region, account, name = queue.split(":", 5)
    message = copy.deepcopy(event)
    sqs_backends[account][region].send_message(queue_name=name, message_body=json.dumps(message),
                                               message_attributes={"ERROR_MESSAGE": {
                                                   "DataType": "String", "StringValue": reason}})


def _deliver(rule, target, event):
    """One event, from `rule` (in its account), to the bus `target` names."""
    _, _, _, region, account, resource = target["Arn"].split(":", 5)
    if event.get("account") != rule.account_id and account != rule.account_id:
        # Received from another account: EventBridge does not send it on to a third.
        return
    bus = events_backends[account][region].describe_event_bus(resource.split("/", 1)[1])
    if account != rule.account_id and not _bus_policy_allows(bus, rule.account_id, event):
        _dead_letter(rule, target, event, f"the policy of {bus.arn} does not allow account {rule.account_id}")
        return
    for receiving in list(bus.rules.values()):
        receiving.send_to_targets(copy.deepcopy(event))


_moto_send_to_targets = Rule.send_to_targets


def _send_to_targets(self, original_event, transform_input=True):
    buses = [t for t in self.targets if ":event-bus/" in t["Arn"]]
    if not buses:
        return _moto_send_to_targets(self, original_event, transform_input)
    if not self.event_pattern.matches_event(original_event):
        return None
    others = [t for t in self.targets if t not in buses]
    if others:
        kept, self.targets = self.targets, others
        try:
            _moto_send_to_targets(self, copy.deepcopy(original_event), transform_input)
        finally:
            self.targets = kept
    for target in buses:
        _deliver(self, target, original_event)
    return None


Rule.send_to_targets = _send_to_targets

# moto delivers an event to a target without its `account` (its default input template leaves
# it out); AWS delivers the whole event, and the account is what a promotion is checked by.
EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = (
    '{"id": "<id>", "time": <time>, "version": "0", "detail-type": "<detail-type>", "source": "<source>", '
    '"account": "<account>", "region": "<region>", "resources": <resources>, "detail": <detail>}'
)


class StackRules:
    """Installs a stack's rules and bus policies from template.yaml (see above)."""

    def __init__(self, app, template_path=TEMPLATE):
        self.app = app
        self.template_path = template_path
        self.template = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not (path.startswith(API) and environ.get("REQUEST_METHOD") == "POST"):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        stack_id = path[len(API):]
        try:
            installed = self.install(stack_id, body)
            status, answer = "200 OK", {"installed": installed}
        except (iam.TemplateError, KeyError, ValueError) as e:
            status, answer = "400 Bad Request", {"message": str(e)}
        data = json.dumps(answer).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def install(self, stack_id, body):
        if self.template is None:
            from cfnlint.decode import cfn_yaml

            self.template = cfn_yaml.load(str(self.template_path))
        account = body["account"]
        token = iam.CURRENT_ACCOUNT.set(account)
        try:
            return self._install(stack_id, account, body)
        finally:
            iam.CURRENT_ACCOUNT.reset(token)

    def _install(self, stack_id, account, body):
        region = iam.REGION
        failure_queue = body.get("failureQueueArn", f"arn:{iam.PARTITION}:sqs:{region}:{account}:unused")
        physical = {
            "FailureQueue": {"Arn": failure_queue},
            "ForwardKnownGoodRole": {"Arn": f"arn:{iam.PARTITION}:iam::{account}:role/forward-{stack_id}"},
        }
        stack = iam.Stack(self.template, body.get("parameters", {}), physical)
        backend = events_backends[account][region]
        resources = self.template["Resources"]
        installed = []
        # The deploy function's rules, each sending to the queue that stands for the function.
        for event_name, trigger in resources["DeployFunction"]["Properties"]["Events"].items():
            if trigger["Type"] != "EventBridgeRule":
                continue
            name = f"deckhand-{stack_id}-Deploy{event_name}"
            pattern = stack.resolve(trigger["Properties"]["Pattern"])
            backend.put_rule(name, event_pattern=json.dumps(pattern), state="ENABLED")
            backend.put_targets(name, None, [{"Id": "deploy", "Arn": body["deployQueueArn"]}])
            installed.append(name)
        for logical, resource in resources.items():
            if "Condition" in resource and not stack.condition(resource["Condition"]):
                continue
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Events::Rule":
                name = f"deckhand-{stack_id}-{logical}"
                resolved = stack.resolve(props)
                backend.put_rule(name, event_pattern=json.dumps(resolved["EventPattern"]), state="ENABLED")
                backend.put_targets(name, None, resolved["Targets"])
                installed.append(name)
            elif resource["Type"] == "AWS::Events::EventBusPolicy":
                statement = stack.resolve(props["Statement"])
                statement["Sid"] = stack.resolve(props["StatementId"])
                principal = statement.get("Principal", {})
                if isinstance(principal, dict) and "AWS" in principal:
                    statement["Principal"] = {"AWS": iam.as_list(principal["AWS"])}
                bus = backend.describe_event_bus(stack.resolve(props.get("EventBusName", "default")))
                bus._statements[statement["Sid"]] = EventBusPolicyStatement.from_dict(statement)
                installed.append(f"{logical} ({statement['Sid']})")
        return installed
