"""Checks on template.yaml that cfn-lint does not make: no wildcard action, a failure destination
for every function and every asynchronous trigger, no trigger pointing at a missing function, no
ARN tied to one partition, and every KMS key usable by the roles that need it, as KMS evaluates it.

    python scripts/check_template.py [TEMPLATE]   prints each problem, exits 1 if there is any
"""

import json
import sys
from pathlib import Path

from cfnlint.decode import cfn_yaml

FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
ASYNC_EVENTS = {"EventBridgeRule", "ScheduleV2", "Schedule", "CloudWatchEvent", "SNS", "S3"}


def load(path):
    return cfn_yaml.load(str(path))


def is_account_root(principal):
    """Whether a key policy principal is the account itself (`arn:...:iam::ACCOUNT:root`)."""
    aws = principal.get("AWS") if isinstance(principal, dict) else None
    text = aws.get("Fn::Sub") if isinstance(aws, dict) else aws
    return isinstance(text, str) and text.startswith("arn:") and text.endswith(":root")


def enables_iam_policies(statement):
    """AWS's documented key policy statement that lets IAM policies grant the key's use: the
    account root allowed `kms:*`. The one `*` action the checks accept."""
    return (
        statement.get("Effect") == "Allow"
        and statement.get("Action") in ("kms:*", ["kms:*"])
        and is_account_root(statement.get("Principal"))
    )


def wildcard_actions(template):
    """Every `Action` or `NotAction` that is `*` or a whole service (`ecs:*`), with where it is,
    except the key policy statement that hands a key's permissions to IAM."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if enables_iam_policies(node):
                return
            for key, value in node.items():
                if key in ("Action", "NotAction"):
                    for action in value if isinstance(value, list) else [value]:
                        if isinstance(action, str) and (action == "*" or action.endswith(":*")):
                            found.append(f"{where}: wildcard action {action!r}")
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(template.get("Resources", {}), "Resources")
    return found


def functions(template):
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") in (FUNCTION, LAMBDA_FUNCTION)
    }


def missing_failure_destinations(template):
    problems = []
    for name, resource in functions(template).items():
        props = resource.get("Properties", {})
        on_failure = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        if not on_failure or not on_failure.get("Destination"):
            problems.append(f"{name}: no on-failure destination (EventInvokeConfig.DestinationConfig.OnFailure)")
        for event_name, event in props.get("Events", {}).items():
            if event.get("Type") in ASYNC_EVENTS and not event.get("Properties", {}).get("DeadLetterConfig"):
                problems.append(f"{name}.Events.{event_name}: {event.get('Type')} trigger without a DeadLetterConfig")
    return problems


def referenced_name(value):
    """The resource a `Ref` or `Fn::GetAtt` names, if `value` is one."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else str(target).split(".")[0]
    return None


def rule_targets(props):
    """A rule's targets, those a condition may leave out included."""
    for target in props.get("Targets", []):
        if isinstance(target, dict) and "Fn::If" in target:
            target = target["Fn::If"][1]
        if isinstance(target, dict):
            yield target


def is_event_bus(arn):
    """Whether a target's ARN (as the template writes it) is an event bus."""
    return ":event-bus/" in json.dumps(arn)


def triggers_to_missing_functions(template):
    """Permissions, rules, schedules and event source mappings whose function does not exist."""
    names = set(functions(template))
    problems = []
    for name, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        props = resource.get("Properties", {})
        targets = []
        if kind in ("AWS::Lambda::Permission", "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig"):
            targets.append(props.get("FunctionName"))
        elif kind == "AWS::Events::Rule":
            # A rule that forwards to another account's event bus triggers no function here.
            targets.extend(t.get("Arn") for t in rule_targets(props) if not is_event_bus(t.get("Arn")))
        elif kind == "AWS::Scheduler::Schedule":
            targets.append(props.get("Target", {}).get("Arn"))
        for target in targets:
            function = referenced_name(target)
            if function is None:
                problems.append(f"{name}: its function is not a Ref or GetAtt of a function in this template")
            elif function not in names:
                problems.append(f"{name}: points at {function}, which is not a function in this template")
    return problems


def strings(node, where):
    """(path, string) of every string under `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{where}[{i}]")
    elif isinstance(node, str):
        yield where, node


def fixed_partitions(template):
    """Every string in the resources that names the `aws` partition outright: in GovCloud and
    China the ARN never matches and the permission is lost. `${AWS::Partition}` or `*` instead."""
    return [f"{where}: ARN in the aws partition only: {text!r}"
            for where, text in strings(template.get("Resources", {}), "Resources") if "arn:aws:" in text]


def statements(policies):
    """The statements of a function's inline `Policies`, whatever condition wraps them."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "Effect" in node and ("Action" in node or "NotAction" in node):
                found.append(node)
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(policies)
    return found


def actions_of(statement):
    action = statement.get("Action", [])
    return action if isinstance(action, list) else [action]


def allows(statements_, action, resource_name):
    """Whether one of the statements allows `action` (wildcards of the `kms:GenerateDataKey*`
    kind included) on the resource named by a `Ref` or `GetAtt`, or on `*`."""
    for statement in statements_:
        if statement.get("Effect") != "Allow":
            continue
        resources = statement.get("Resource", [])
        resources = resources if isinstance(resources, list) else [resources]
        on_it = any(r == "*" or referenced_name(r) == resource_name for r in resources)
        granted = any(
            a == action or (a.endswith("*") and action.startswith(a[:-1]))
            for a in actions_of(statement) if isinstance(a, str)
        )
        if on_it and granted:
            return True
    return False


def role_policies(template):
    """The statements each function's role and each managed policy (the operator's) grant."""
    found = {name: statements(f.get("Properties", {}).get("Policies", [])) for name, f in functions(template).items()}
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::IAM::ManagedPolicy":
            found[name] = statements(resource.get("Properties", {}).get("PolicyDocument", {}))
    return found


def kms_problems(template):
    """Evaluates each encrypted topic as KMS and SNS do: a role or policy that may publish to it
    must allow kms:GenerateDataKey* and kms:Decrypt on the key, and the key policy
    must let IAM policies grant them (the account root with kms:*), since no role is named."""
    resources = template.get("Resources", {})
    found = []
    for topic_name, topic in resources.items():
        if topic.get("Type") != "AWS::SNS::Topic":
            continue
        key_name = referenced_name(topic.get("Properties", {}).get("KmsMasterKeyId"))
        if key_name is None:
            continue
        key = resources.get(key_name, {})
        key_statements = key.get("Properties", {}).get("KeyPolicy", {}).get("Statement", [])
        iam_enabled = any(enables_iam_policies(s) for s in key_statements)
        for name, granted in role_policies(template).items():
            if not allows(granted, "sns:Publish", topic_name):
                continue
            for action in ("kms:GenerateDataKey", "kms:Decrypt"):
                if not allows(granted, action, key_name):
                    found.append(f"{name}: publishes to {topic_name} but its role is not allowed {action} on {key_name}")
            if not iam_enabled:
                found.append(
                    f"{name}: publishes to {topic_name}, but the policy of {key_name} does not let IAM policies "
                    "grant its use (no statement allowing the account root kms:*), so every Publish is denied"
                )
    return found


def problems(template):
    return (
        wildcard_actions(template)
        + missing_failure_destinations(template)
        + triggers_to_missing_functions(template)
        + fixed_partitions(template)
        + kms_problems(template)
    )


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "template.yaml"
    found = problems(load(path))
    for problem in found:
        print(f"{path}: {problem}")
    if not found:
        print(f"{path}: no wildcard action, every function and trigger has a failure destination, "
              "every trigger points at a function, no ARN tied to one partition, every encrypted topic "
              "usable by the roles that publish to it")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
