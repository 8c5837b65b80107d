"""Checks on template.yaml that cfn-lint does not make: no wildcard action, a failure destination
for every function and every asynchronous trigger, no trigger pointing at a missing function.

    python scripts/check_template.py [TEMPLATE]   prints each problem, exits 1 if there is any
"""

import sys
from pathlib import Path

from cfnlint.decode import cfn_yaml

FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
ASYNC_EVENTS = {"EventBridgeRule", "ScheduleV2", "Schedule", "CloudWatchEvent", "SNS", "S3"}


def load(path):
    return cfn_yaml.load(str(path))


def wildcard_actions(template):
    """Every `Action` or `NotAction` that is `*` or a whole service (`ecs:*`), with where it is."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
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
            targets.extend(t.get("Arn") for t in props.get("Targets", []))
        elif kind == "AWS::Scheduler::Schedule":
            targets.append(props.get("Target", {}).get("Arn"))
        for target in targets:
            function = referenced_name(target)
            if function is None:
                problems.append(f"{name}: its function is not a Ref or GetAtt of a function in this template")
            elif function not in names:
                problems.append(f"{name}: points at {function}, which is not a function in this template")
    return problems


def problems(template):
    return wildcard_actions(template) + missing_failure_destinations(template) + triggers_to_missing_functions(template)


def main(argv):
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "template.yaml"
    found = problems(load(path))
    for problem in found:
        print(f"{path}: {problem}")
    if not found:
        print(f"{path}: no wildcard action, every function and trigger has a failure destination, "
              "every trigger points at a function")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
