"""IAM for the tests' emulator: every call signed as one of the template's roles is evaluated
against that role's policy in template.yaml, as AWS would, and refused as AWS refuses it when
the policy does not allow it. moto enforces no IAM at all.

A test signs its calls with the access key `deckhand.ROLE.STACK` (`.gate` appended when the
stack runs with the scan gate, `.chat` when it publishes to a chat topic: both have conditional
statements), after telling the emulator the
physical names of its stack's resources:

    POST /_deckhand/iam/stacks/STACK   {"Table": {"Ref": "...", "Arn": "..."}, ...}
    GET  /_deckhand/iam/refused/STACK  every refusal so far, as sentences naming the role, the
                                       operation, the action and the resource
    DELETE /_deckhand/iam/refused/STACK  the same, taken: a test that expects them

Calls signed with any other key (the tests' own set-up) are not evaluated. This layer runs
outside the emulator's one-request-at-a-time lock, so that a Lambda invocation it allows can
call back into the emulator (emulator_lambda.py); its own state is under its own lock. With DECKHAND_IAM_LOG
set, every action a role was allowed is appended to that file once, as a JSON line
{"role", "operation", "action"}: scripts/iam_report.py reads them.
"""

import html
import io
import json
import os
import re
import threading
import urllib.parse
from collections import defaultdict
from pathlib import Path

import iam
import iam_actions

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
API = "/_deckhand/iam/"
LAMBDA_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


def resource_tags(arn):
    """The tags a resource carries, which IAM's aws:ResourceTag reads: a listener or rule in
    moto, or a function a test runs (emulator_lambda.py)."""
    if ":lambda:" in arn or ":" not in arn:
        from emulator_lambda import function_tags

        return function_tags(arn)
    return elbv2_tags(arn)


def elbv2_tags(arn):
    """The tags a listener or rule carries in moto, which IAM's aws:ResourceTag reads."""
    from moto.elbv2.models import elbv2_backends

    fields = arn.split(":")
    if len(fields) < 6:
        return {}
    backend = elbv2_backends[fields[4]][fields[3]]
    return backend.tagging_service.get_tag_dict_for_resource(arn)


class IamPolicies:
    def __init__(self, app, template_path=TEMPLATE, log_path=None):
        self.app = app
        self.template_path = template_path
        self.template = None
        self.log_path = log_path if log_path is not None else os.environ.get("DECKHAND_IAM_LOG")
        self.physical = {}
        self.refused = defaultdict(list)
        self.logged = set()
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(API):
            return self.api(path[len(API):], environ, start_response)
        found = CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not found or not found.group(1).startswith("deckhand."):
            return self.app(environ, start_response)
        key, signing_name = found.groups()
        role, stack_id, *flags = key.split(".")[1:]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        target = environ.get("HTTP_X_AMZ_TARGET")
        invocation = LAMBDA_INVOKE.match(environ.get("PATH_INFO", ""))
        if target:
            operation = target.rsplit(".", 1)[-1]
            params = json.loads(body) if body.strip() else {}
        elif signing_name == "lambda" and invocation:
            # Lambda speaks REST: the operation and its parameters are in the path and query.
            operation = "Invoke"
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            params = {"FunctionName": urllib.parse.unquote(invocation.group(1)),
                      "Qualifier": query.get("Qualifier", [None])[0]}
        else:
            form = urllib.parse.parse_qs(body.decode())
            operation = form.get("Action", [""])[0]
            params = {k: v[0] for k, v in form.items()}
        try:
            allowed, refused = iam_actions.refusals(self.stack(stack_id, flags), role, signing_name, operation,
                                                    params)
        except iam.TemplateError as e:
            allowed, refused = [], [f"{role} called {signing_name} {operation}, which cannot be evaluated: {e}"]
        self.log(role, f"{signing_name}:{operation}", allowed)
        if not refused:
            return self.app(environ, start_response)
        with self.lock:
            self.refused[stack_id].extend(refused)
        return self.refuse(bool(target), signing_name, refused, start_response)

    def stack(self, stack_id, flags):
        with self.lock:
            if self.template is None:
                from cfnlint.decode import cfn_yaml

                self.template = cfn_yaml.load(str(self.template_path))
            physical = self.physical.get(stack_id)
        if physical is None:
            raise iam.TemplateError(f"stack {stack_id} signs as a role but never told the emulator its resources")
        parameters = {"ScanGateSeverity": "HIGH"} if "gate" in flags else {}
        # The stack's own parameters (RegistryAccounts, PromoteFromAccounts...), as it told them.
        parameters.update(physical.get("@parameters", {}))
        if "chat" in flags:
            # The chat topic and its statements exist only with a Slack channel.
            parameters.update(SlackWorkspaceId="T0123456789", SlackChannelId="C0123456789")
        stack = iam.Stack(self.template, parameters, physical)
        stack.resource_tags = resource_tags
        return stack

    def log(self, role, operation, allowed):
        # Requests are evaluated concurrently (outside the emulator's one-at-a-time lock).
        with self.lock:
            fresh = [n for n in allowed if (role, operation, n.action) not in self.logged]
            self.logged.update((role, operation, n.action) for n in fresh)
            if fresh and self.log_path:
                lines = "".join(
                    json.dumps({"role": role, "operation": operation, "action": n.action, "because": n.because})
                    + "\n"
                    for n in fresh
                )
                with open(self.log_path, "a") as f:
                    f.write(lines)

    @staticmethod
    def refuse(json_protocol, signing_name, refused, start_response):
        message = "; ".join(refused)
        if json_protocol:
            body = json.dumps({"__type": "AccessDeniedException", "message": message}).encode()
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        if signing_name == "elasticloadbalancing":
            code, namespace = "AccessDenied", "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
        else:
            code = "KMSAccessDenied" if "kms:" in message else "AuthorizationError"
            namespace = "http://sns.amazonaws.com/doc/2010-03-31/"
        body = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{html.escape(message)}</Message></Error>"
            "<RequestId>iam</RequestId></ErrorResponse>"
        ).encode()
        start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def api(self, rest, environ, start_response):
        kind, _, stack_id = rest.partition("/")
        if kind == "stacks" and environ.get("REQUEST_METHOD") == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            physical = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self.lock:
                self.physical[stack_id] = physical
            answer = {}
        elif kind == "refused":
            with self.lock:
                answer = list(self.refused.get(stack_id, []))
                # A test that expects a refusal takes it, and only the others fail it.
                if environ.get("REQUEST_METHOD") == "DELETE":
                    self.refused.pop(stack_id, None)
        else:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        body = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
