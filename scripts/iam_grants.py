"""The template's grants read against AWS's Service Authorization Reference (iam_reference.py),
without running anything: for every action a role or managed policy of the template grants,

- every required resource type of the action is matched by some grant of it (ELB's `listener/app`,
  `listener/net`, `listener/gwy` are alternatives: one is enough);
- an action without resource types is granted on `"*"`, the only resource AWS checks it on;
- every condition key a statement tests exists for each of its actions, or is global (`aws:...`);
- the action exists.

A grant "matches" a type when some ARN could match both the grant's pattern and the type's ARN
format. Each statement is read as the stack resolves it, for every combination of the optional
parameters whose conditions add statements (scan gate, chat, many accounts).

    python scripts/iam_grants.py [TEMPLATE]   prints each problem, exits 1 if there is any
"""

import sys
from functools import lru_cache
from pathlib import Path

import iam
import iam_reference
from iam_actions import arn

# The parameter sets whose conditions change the roles' statements.
VARIANTS = {
    "default": {},
    "scan gate": {"ScanGateSeverity": "HIGH"},
    "chat": {"SlackWorkspaceId": "T0123456789", "SlackChannelId": "C0123456789"},
    "many accounts": {"RegistryAccounts": "999999999999,888888888888", "PromoteFromAccounts": "111111111111",
                      "PromoteToAccounts": "222222222222", "ChangeCalendar": "release-freeze"},
}


def physical_names(template):
    """Names of the stack's resources shaped like AWS's: an ARN of a table is a table ARN, so a
    grant on it matches the reference's `table` type."""
    names = {}
    for name, resource in template.get("Resources", {}).items():
        kind = resource.get("Type")
        low = name.lower()
        if kind == "AWS::DynamoDB::Table":
            names[name] = {"Ref": low, "Arn": arn("dynamodb", f"table/{low}")}
        elif kind == "AWS::SNS::Topic":
            topic = arn("sns", low)
            names[name] = {"Ref": topic, "TopicName": low, "TopicArn": topic}
        elif kind == "AWS::SQS::Queue":
            names[name] = {"Ref": f"https://sqs.{iam.REGION}.amazonaws.com/{iam.ACCOUNT}/{low}",
                           "Arn": arn("sqs", low), "QueueName": low}
        elif kind == "AWS::KMS::Key":
            names[name] = {"Ref": "00000000-0000-0000-0000-000000000001",
                           "Arn": arn("kms", "key/00000000-0000-0000-0000-000000000001")}
        elif kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            names[name] = {"Ref": low, "Arn": arn("lambda", f"function:{low}")}
        elif kind == "AWS::IAM::Role":
            names[name] = {"Ref": low, "Arn": f"arn:{iam.PARTITION}:iam::{iam.ACCOUNT}:role/{low}"}
        else:
            names[name] = {"Ref": low, "Arn": arn("unknown", low)}
    return names


# --- Whether two patterns can match one string -------------------------------------------

class Run:
    """Any run of characters (IAM's `*`), or of characters other than `:` (a name inside an
    ARN format: a cluster, a table, a function)."""

    def __init__(self, colons):
        self.colons = colons

    def takes(self, char):
        return self.colons or char != ":"


STAR, NAME, ONE = Run(True), Run(False), object()


def glob_tokens(pattern):
    """IAM's `*` (any run of characters) and `?` (one character); the rest literal."""
    return tuple(STAR if c == "*" else ONE if c == "?" else c for c in pattern)


def format_tokens(arn_format):
    """A reference ARN format, each `${Variable}` read as a run of characters without `:`."""
    tokens, rest = [], arn_format
    while rest:
        start = rest.find("${")
        if start < 0:
            tokens.extend(rest)
            break
        tokens.extend(rest[:start])
        tokens.append(NAME)
        rest = rest[rest.index("}", start) + 1:]
    return tuple(tokens)


def intersect(a, b):
    """Whether some string matches both token patterns."""

    @lru_cache(maxsize=None)
    def go(i, j):
        if i == len(a) and j == len(b):
            return True
        x = a[i] if i < len(a) else None
        y = b[j] if j < len(b) else None
        if isinstance(x, Run):
            # The run ends here, or takes the next character of the other pattern.
            if go(i + 1, j):
                return True
            if y is not None and (isinstance(y, Run) or y is ONE or x.takes(y)) and go(i, j + 1):
                return True
        if isinstance(y, Run):
            if go(i, j + 1):
                return True
            if x is not None and (x is ONE or (not isinstance(x, Run) and y.takes(x))) and go(i + 1, j):
                return True
        if x is not None and y is not None and not isinstance(x, Run) and not isinstance(y, Run):
            if x is ONE or y is ONE or x == y:
                return go(i + 1, j + 1)
        return False

    return go(0, 0)


# --- The check --------------------------------------------------------------------------


def reference_actions(pattern):
    """The reference's actions a granted action names (`kms:GenerateDataKey*` is several)."""
    prefix, _, operation = pattern.partition(":")
    known = iam_reference.service(prefix)
    if known is None:
        return []
    names = list(known.get("privileges", {})) + [
        o.split(":", 1)[1] for o in iam_reference.OVERRIDES if o.startswith(prefix + ":")]
    return [f"{prefix}:{n}" for n in names if iam.wildcard(operation, n, case_sensitive=False)]


def grants(statements):
    """action -> [(resource patterns, condition keys)] for every Allow statement."""
    found = {}
    for s in statements:
        if s.get("Effect") != "Allow":
            continue
        resources = [r for r in iam.as_list(s.get("Resource", [])) if isinstance(r, str)]
        keys = [k for keys in s.get("Condition", {}).values() for k in keys]
        for pattern in iam.as_list(s.get("Action", [])):
            for action in reference_actions(pattern) or [pattern]:
                found.setdefault(action, []).append((pattern, resources, keys))
    return found


def role_problems(role, statements):
    problems = []
    for action, granted in sorted(grants(statements).items()):
        found = iam_reference.action(action)
        if found is None:
            problems.append(f"{role}: grants {action}, which AWS's Service Authorization Reference does not list")
            continue
        resources = [r for _, rs, _ in granted for r in rs]
        if not found.resource_types:
            if "*" not in resources:
                problems.append(f"{role}: grants {action} on {', '.join(resources)}; the action has no resource "
                                "type, so AWS checks it on \"*\" only, and only a grant on \"*\" allows it")
        for group in iam_reference.required_groups(found):
            if not any(intersect(glob_tokens(r), format_tokens(t.arn)) for r in resources for t in group):
                names = " or ".join(t.name for t in group)
                problems.append(f"{role}: grants {action}, which AWS authorizes on a {names} too "
                                f"({group[0].arn}), and no grant of it covers one")
        for pattern, _, keys in granted:
            for key in keys:
                if not iam_reference.condition_key_exists(found, key):
                    problems.append(f"{role}: tests the condition key {key} with {pattern}, and the key does not "
                                    f"exist for {action}")
    return sorted(set(problems))


def problems(template):
    physical = physical_names(template)
    found = []
    for variant, parameters in VARIANTS.items():
        stack = iam.Stack(template, parameters, physical)
        for role in iam.ROLES:
            for problem in role_problems(role, stack.role_statements(role)):
                found.append(f"{problem} [{variant}]")
    # One problem in every variant is one problem.
    seen, unique = set(), []
    for problem in found:
        key = problem.rsplit(" [", 1)[0]
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    return unique


def main(argv):
    from cfnlint.decode import cfn_yaml

    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "template.yaml"
    found = problems(cfn_yaml.load(str(path)))
    for problem in found:
        print(f"{path}: {problem}")
    if not found:
        print(f"{path}: every grant covers the resource types AWS requires, every action without one is "
              f"granted on \"*\", every condition key exists ({iam_reference.version()})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
