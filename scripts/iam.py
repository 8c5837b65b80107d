"""IAM as AWS evaluates it, for the roles and keys of template.yaml.

The emulator enforces no IAM (moto accepts every call), so the tests' emulator asks this module
whether the template lets the calling role make each call, and refuses the call as AWS would when
it does not (scripts/emulator.py, docs/security.md). What it evaluates:

- the template's policies with its intrinsic functions resolved (Ref, Fn::GetAtt, Fn::Sub,
  Fn::Join, Fn::Split, Fn::If with the template's Conditions) for given parameters and the
  physical names of the stack's resources;
- identity policies as IAM does: an explicit Deny wins, otherwise an Allow whose Action, Resource
  and Condition all match; `*` and `?` wildcards; NotAction and NotResource; the condition
  operators the template uses (StringEquals, StringLike, ArnLike, ArnEquals, Bool, ...IfExists,
  ForAllValues:/ForAnyValue: on multi-valued keys);
- KMS key policies as KMS does: a key's use is allowed when the key policy names the role, or
  when the key policy lets IAM policies grant it (the account root allowed the action, as in
  AWS's "Enable IAM policies" statement) and the role's policies allow it.

Which actions one request needs is in iam_actions.py.
"""

import contextvars
import fnmatch
import re

PARTITION = "aws"
REGION = "us-east-1"
ACCOUNT = "123456789012"
# The account of the request being evaluated (the emulator's accounts layer sets it from the
# credentials): a stack in another account resolves AWS::AccountId to that account.
CURRENT_ACCOUNT = contextvars.ContextVar("account", default=ACCOUNT)


def account():
    return CURRENT_ACCOUNT.get()

# The stack the tests deploy, as CloudFormation names it (AWS::StackName, AWS::StackId).
STACK_NAME = "deckhand"
STACK_UUID = "5f2d7a40-1c8e-11f1-9e2b-0a1b2c3d4e5f"

NO_VALUE = object()

# The roles whose calls are evaluated: the name a test signs with -> the template resource
# whose policy is the role's.
ROLES = {
    "deploy": "DeployFunction",
    "rollback": "RollbackFunction",
    "scheduler": "SchedulerFunction",
    "operator": "OperatorPolicy",
    "pipeline": "PipelinePolicy",
}


class TemplateError(Exception):
    """The template uses something this evaluator does not resolve."""


class Stack:
    """The template deployed with `parameters`, its resources named by `physical`:
    `{"Table": {"Ref": "deckhand-1", "Arn": "arn:..."}, ...}`."""

    def __init__(self, template, parameters=None, physical=None):
        self.template = template
        self.parameters = {}
        for name, declared in template.get("Parameters", {}).items():
            value = (parameters or {}).get(name, declared.get("Default", ""))
            if declared.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [part.strip() for part in value.split(",")]
            self.parameters[name] = value
        self.physical = physical or {}

    # --- Resolving the template's intrinsic functions -------------------------------------

    def ref(self, name):
        pseudo = {
            "AWS::Partition": PARTITION,
            "AWS::Region": REGION,
            "AWS::AccountId": account(),
            "AWS::NoValue": NO_VALUE,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{account()}:stack/{STACK_NAME}/{STACK_UUID}",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.attribute(name, "Ref")

    def attribute(self, name, attribute):
        try:
            return self.physical[name][attribute]
        except KeyError:
            raise TemplateError(f"no physical value for {name}.{attribute}") from None

    def condition(self, name):
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise TemplateError(f"no condition {name}")
        return bool(self.resolve(conditions[name]))

    def sub(self, text, variables):
        def value(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                found = variables[name]
            elif "." in name:
                found = self.attribute(*name.split(".", 1))
            else:
                found = self.ref(name)
            if not isinstance(found, str):
                raise TemplateError(f"Fn::Sub of {name}, which is not a string")
            return found

        return re.sub(r"\$\{([^}]+)\}", value, text)

    def resolve(self, node):
        if isinstance(node, list):
            values = [self.resolve(item) for item in node]
            return [v for v in values if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(name, attribute)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    text, variables = arg
                    return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
                return self.sub(arg, {})
            if key == "Fn::Join":
                delimiter, values = arg
                return delimiter.join(self.resolve(values))
            if key == "Fn::Split":
                delimiter, text = arg
                return self.resolve(text).split(delimiter)
            if key == "Fn::Select":
                index, values = arg
                values = self.resolve(values)
                index = int(self.resolve(index))
                if index >= len(values):
                    raise TemplateError(f"Fn::Select of item {index} of a list of {len(values)}")
                return values[index]
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                a, b = self.resolve(arg)
                return a == b
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not resolved by this evaluator")
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}

    # --- The stack's policies -------------------------------------------------------------

    def role_statements(self, role):
        """The resolved statements of a role's policies (a function's `Policies`, or a managed
        policy's `PolicyDocument`)."""
        resource = self.template["Resources"].get(ROLES.get(role, role))
        if resource is None:
            raise TemplateError(f"no resource for the role {role}")
        props = resource.get("Properties", {})
        documents = props.get("Policies") if "Policies" in props else [props.get("PolicyDocument", {})]
        statements = []
        for document in self.resolve(documents):
            found = document.get("Statement", []) if isinstance(document, dict) else []
            statements.extend(found if isinstance(found, list) else [found])
        return statements

    def key_statements(self, key_name):
        key = self.template["Resources"][key_name]
        found = self.resolve(key.get("Properties", {}).get("KeyPolicy", {})).get("Statement", [])
        return found if isinstance(found, list) else [found]

    def encrypted_topics(self):
        """Physical topic ARN -> the template name of its KMS key."""
        found = {}
        for name, resource in self.template.get("Resources", {}).items():
            if resource.get("Type") != "AWS::SNS::Topic":
                continue
            key = resource.get("Properties", {}).get("KmsMasterKeyId")
            key_name = key.get("Ref") if isinstance(key, dict) else None
            if key_name and name in self.physical:
                found[self.attribute(name, "Ref")] = key_name
        return found


# --- Evaluation ---------------------------------------------------------------------------


def as_list(value):
    return value if isinstance(value, list) else [value]


def wildcard(pattern, value, case_sensitive=True):
    """IAM's `*` and `?`; nothing else is special."""
    escaped = pattern.replace("[", "[[]")
    if case_sensitive:
        return fnmatch.fnmatchcase(value, escaped)
    return fnmatch.fnmatchcase(value.lower(), escaped.lower())


def condition_holds(operator, key, expected, context):
    # A multi-valued key (dynamodb:LeadingKeys): ForAllValues holds when every value of the
    # request matches (and, as IAM says, when the request has none); ForAnyValue when one does.
    for qualifier, combine in (("ForAllValues:", all), ("ForAnyValue:", any)):
        if operator.startswith(qualifier):
            values = context.get(key, [])
            values = values if isinstance(values, list) else [values]
            inner = operator.removeprefix(qualifier)
            return combine(condition_holds(inner, key, expected, {key: v}) for v in values)
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if key not in context:
        return if_exists
    actual = context[key]
    expected = [str(e) for e in as_list(expected)]
    if operator in ("StringEquals", "ArnEquals"):
        return actual in expected
    if operator == "StringEqualsIgnoreCase":
        return actual.lower() in [e.lower() for e in expected]
    if operator == "StringNotEquals":
        return actual not in expected
    if operator in ("StringLike", "ArnLike"):
        return any(wildcard(e, actual) for e in expected)
    if operator == "Bool":
        return actual.lower() in [e.lower() for e in expected]
    # An operator this evaluator does not know never holds: a grant it cannot read counts as
    # no grant, so the test errs towards refusing.
    return False


def applies(statement, action, resource, context):
    if "Action" in statement:
        on_action = any(wildcard(a, action, case_sensitive=False) for a in as_list(statement["Action"]))
    else:
        on_action = not any(wildcard(a, action, case_sensitive=False) for a in as_list(statement.get("NotAction", [])))
    if not on_action:
        return False
    if "Resource" in statement:
        on_resource = any(wildcard(r, resource) for r in as_list(statement["Resource"]))
    else:
        on_resource = not any(wildcard(r, resource) for r in as_list(statement.get("NotResource", [])))
    if not on_resource:
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, expected in keys.items():
            if not condition_holds(operator, key, expected, context):
                return False
    return True


def decide(statements, action, resource, context=None):
    """"allow", "deny" (an explicit Deny) or None (no statement allows it)."""
    context = context or {}
    matching = [s for s in statements if applies(s, action, resource, context)]
    if any(s.get("Effect") == "Deny" for s in matching):
        return "deny"
    if any(s.get("Effect") == "Allow" for s in matching):
        return "allow"
    return None


def role_arn(role):
    return f"arn:{PARTITION}:iam::{account()}:role/{ROLES.get(role, role)}Role"


def names_principal(statement, principal):
    aws = statement.get("Principal", {})
    if aws == "*":
        return True
    aws = aws.get("AWS", []) if isinstance(aws, dict) else []
    return principal in as_list(aws) or "*" in as_list(aws)


def delegates_to_iam(statement):
    aws = statement.get("Principal", {})
    aws = aws.get("AWS", []) if isinstance(aws, dict) else []
    return any(p in (account(), f"arn:{PARTITION}:iam::{account()}:root") for p in as_list(aws))


def key_allows(key_statements, identity_statements, principal, action, key_arn, context=None):
    """Whether KMS lets `principal` perform `action` with the key, and if not, why."""
    context = context or {}
    key_matching = [s for s in key_statements if applies(s, action, key_arn, context)]
    if any(s.get("Effect") == "Deny" and names_principal(s, principal) for s in key_matching):
        return False, "the key policy denies it"
    allowed = [s for s in key_matching if s.get("Effect") == "Allow"]
    if any(names_principal(s, principal) for s in allowed):
        return True, ""
    if not any(delegates_to_iam(s) for s in allowed):
        return False, ("the key policy neither names the role nor lets IAM policies grant the key's use "
                       "(no statement allowing the account root)")
    if decide(identity_statements, action, key_arn, context) == "allow":
        return True, ""
    return False, "the key policy lets IAM policies grant it, and no policy of the role does"
