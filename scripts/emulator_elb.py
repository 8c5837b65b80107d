"""Authentication actions of ALB listeners and rules, as Elastic Load Balancing keeps them: moto
stores an `authenticate-oidc` action as it was sent and returns its client secret to anyone who
describes it. ELB never returns the secret, so a caller that writes the actions it read back
(deckhand changing a forward action's weights) has no secret to send, and must say
`UseExistingClientSecret` (ELB API Reference, AuthenticateOidcActionConfig: "This parameter is
required if you are creating a rule. If you are modifying a rule, you can omit this parameter if
you set UseExistingClientSecret to true"). Here, as on AWS:

- CreateListener and CreateRule refuse an `authenticate-oidc` action without `ClientSecret`;
- ModifyListener and ModifyRule refuse one with neither `ClientSecret` nor
  `UseExistingClientSecret` true, and with `UseExistingClientSecret` keep the secret the listener
  or rule has;
- DescribeListeners and DescribeRules return neither field; the kept secret is visible only to a
  test, at GET /_deckhand/elb/client-secrets?arn=LISTENER_OR_RULE_ARN.

`authenticate-cognito` actions carry no secret: they are kept as they are sent.
"""

import inspect
import json
import threading
import urllib.parse

from moto.elbv2.exceptions import ValidationError
from moto.elbv2.models import ELBv2Backend

API = "/_deckhand/elb/client-secrets"
OIDC = "authenticate-oidc"

# listener or rule ARN -> [client secret of each authenticate-oidc action, in order]
_secrets = {}
_lock = threading.Lock()


def _oidc_configs(actions):
    return [a.get("AuthenticateOidcConfig") or {} for a in actions or [] if a.get("Type") == OIDC]


def _use_existing(config):
    value = config.get("UseExistingClientSecret")
    return value is True or str(value).lower() == "true"


def _secrets_sent(actions, existing, modifying):
    """The secret of each OIDC action of a write, or the ValidationError ELB answers."""
    secrets = []
    for i, config in enumerate(_oidc_configs(actions)):
        if config.get("ClientSecret"):
            secrets.append(config["ClientSecret"])
        elif modifying and _use_existing(config) and i < len(existing):
            secrets.append(existing[i])
        elif modifying and _use_existing(config):
            raise ValidationError("UseExistingClientSecret is true, but the listener or rule has no client "
                                  "secret to use")
        else:
            raise ValidationError("A client secret must be specified for an authenticate-oidc action, or "
                                  "UseExistingClientSecret set to true when modifying a listener or rule")
    return secrets


def _hide(owner):
    """ELB's answers never carry the secret, nor the instruction to keep it."""
    for action in getattr(owner, "default_actions", None) or getattr(owner, "actions", None) or []:
        config = getattr(action, "data", {}).get("AuthenticateOidcConfig")
        if isinstance(config, dict):
            config.pop("ClientSecret", None)
            config.pop("UseExistingClientSecret", None)


def _wrap(method, arn_parameter=None):
    """`method` with the secrets of its actions checked, kept and hidden; `arn_parameter` names
    the parameter of the listener or rule a modification changes."""
    signature = inspect.signature(method)

    def wrapped(self, *args, **kwargs):
        given = signature.bind(self, *args, **kwargs).arguments
        actions = given.get("actions") or []
        existing = _secrets.get(given.get(arn_parameter), []) if arn_parameter else []
        secrets = _secrets_sent(actions, existing, modifying=arn_parameter is not None)
        owner = method(self, *args, **kwargs)
        if actions:
            with _lock:
                _secrets[owner.arn] = secrets
        _hide(owner)
        return owner

    return wrapped


ELBv2Backend.create_listener = _wrap(ELBv2Backend.create_listener)
ELBv2Backend.create_rule = _wrap(ELBv2Backend.create_rule)
ELBv2Backend.modify_listener = _wrap(ELBv2Backend.modify_listener, "arn")
ELBv2Backend.modify_rule = _wrap(ELBv2Backend.modify_rule, "rule_arn")


class ClientSecrets:
    """The tests' window on the secrets ELB keeps and never returns."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != API:
            return self.app(environ, start_response)
        arn = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("arn", [""])[0]
        with _lock:
            body = json.dumps(_secrets.get(arn, [])).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
