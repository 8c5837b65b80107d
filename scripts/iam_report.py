"""What each role of template.yaml was found to need in the integration tests.

    python scripts/iam_report.py [CALLS]   (default target/iam/calls.jsonl)

The tests' emulator refuses, and fails the test of, every call a role's policy does not allow
(scripts/emulator_iam.py); it writes every action it allowed to CALLS. This prints, role by role,
each operation called and the actions it needed, then the actions the template grants that no
test needed (worth a look: a grant nobody uses, or a path no test takes). It exits 1 when the
file is missing or a role made no call at all: the evaluation would then have proven nothing.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

import iam

ROOT = Path(__file__).resolve().parent.parent


def granted_actions(template, role):
    """Every action the role's policy names, with the scan gate's statements."""
    physical = {
        name: {"Ref": name, "Arn": f"arn:{iam.PARTITION}:x:{iam.REGION}:{iam.ACCOUNT}:{name}"}
        for name in template.get("Resources", {})
    }
    stack = iam.Stack(template, {"ScanGateSeverity": "HIGH"}, physical)
    actions = set()
    for statement in stack.role_statements(role):
        if statement.get("Effect") == "Allow":
            actions.update(iam.as_list(statement.get("Action", [])))
    return actions


def needed(calls_path):
    by_role = defaultdict(lambda: defaultdict(set))
    for line in calls_path.read_text().splitlines():
        call = json.loads(line)
        by_role[call["role"]][call["operation"]].add(call["action"])
    return by_role


def report(template, by_role):
    lines, problems = [], []
    for role, resource in iam.ROLES.items():
        operations = by_role.get(role, {})
        if not operations:
            problems.append(f"{role} ({resource}): no call recorded; the tests never signed as this role")
            continue
        lines.append(f"{role} ({resource}): {len(operations)} operations")
        for operation in sorted(operations):
            lines.append(f"  {operation}: {', '.join(sorted(operations[operation]))}")
        used = {a for actions in operations.values() for a in actions}
        unused = sorted(
            g for g in granted_actions(template, role)
            if not any(iam.wildcard(g, a, case_sensitive=False) for a in used)
        )
        if unused:
            lines.append(f"  granted, needed by no test: {', '.join(unused)}")
    return lines, problems


def main(argv):
    calls = Path(argv[1]) if len(argv) > 1 else ROOT / "target/iam/calls.jsonl"
    if not calls.exists():
        print(f"{calls}: missing; run the integration tests first (make test)")
        return 1
    from cfnlint.decode import cfn_yaml

    import iam_reference

    lines, problems = report(cfn_yaml.load(str(ROOT / "template.yaml")), needed(calls))
    print(f"Held to AWS's Service Authorization Reference: {iam_reference.version()}")
    print("\n".join(lines + problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
