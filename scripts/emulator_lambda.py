"""Lambda's Invoke for the tests' emulator: moto runs functions only in Docker, which the tests do
not have, so an invocation is forwarded over HTTP to whoever runs the function (the test
process, with deckhand's real handlers), and answered as Lambda answers it.

A test tells the emulator where each function runs, and the tags the function carries (IAM's
`aws:ResourceTag` reads them: a traffic gate's check function is designated by one):

    POST /_deckhand/lambda/functions/NAME   {"url": "http://127.0.0.1:PORT/deploy", "tags": {...}}

Then `POST /2015-03-31/functions/NAME|ARN[:QUALIFIER]/invocations` (the SDK's Invoke) posts
the payload to that URL. The runner answers 200 with the function's result, or with its error
object and the header `X-Function-Error: Unhandled`; Lambda's answer is then HTTP 200 with the
body and, for an error, `X-Amz-Function-Error`. An unknown function is Lambda's 404
ResourceNotFoundException. `InvocationType: Event` is answered 202 and runs in the background.

This layer sits outside the one that serialises requests: a function calls back into the
emulator while its invocation is still open.
"""

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request

from iam import ACCOUNT, REGION

INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
API = "/_deckhand/lambda/functions/"

# The tags of each function a test runs, by name: what IAM reads as aws:ResourceTag.
FUNCTION_TAGS = {}
TAGS_LOCK = threading.Lock()


def function_tags(name_or_arn):
    with TAGS_LOCK:
        return dict(FUNCTION_TAGS.get(function_name(name_or_arn), {}))


def function_name(name_or_arn):
    """NAME of `NAME`, `NAME:QUALIFIER`, `ACCOUNT:function:NAME` or a full ARN."""
    name = urllib.parse.unquote(name_or_arn)
    if name.startswith("arn:"):
        return name.split(":")[6] if name.count(":") >= 6 else name
    if ":function:" in name:
        return name.split(":function:", 1)[1].split(":")[0]
    return name.split(":")[0]


class LambdaInvocations:
    def __init__(self, app):
        self.app = app
        self.runners = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(API) and environ.get("REQUEST_METHOD") == "POST":
            name = urllib.parse.unquote(path[len(API):])
            length = int(environ.get("CONTENT_LENGTH") or 0)
            told = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self.lock:
                self.runners[name] = told["url"]
            with TAGS_LOCK:
                FUNCTION_TAGS[name] = told.get("tags") or {}
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        found = INVOKE.match(path)
        if not found or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        name = function_name(found.group(1))
        with self.lock:
            url = self.runners.get(name)
        if url is None:
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            return self.error(start_response, "404 Not Found", "ResourceNotFoundException",
                              f"Function not found: {arn}")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else b"{}"
        if environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "Event":
            threading.Thread(target=self.run, args=(url, payload), daemon=True).start()
            start_response("202 Accepted", [("Content-Length", "0")])
            return [b""]
        body, function_error = self.run(url, payload)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("X-Amz-Executed-Version", "$LATEST")]
        if function_error:
            headers.append(("X-Amz-Function-Error", function_error))
        start_response("200 OK", headers)
        return [body]

    @staticmethod
    def run(url, payload):
        request = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=900) as answer:
                return answer.read(), answer.headers.get("X-Function-Error")
        except (urllib.error.URLError, OSError) as e:
            # As Lambda reports a runtime that died mid-invocation.
            body = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": str(e)}).encode()
            return body, "Unhandled"

    @staticmethod
    def error(start_response, status, code, message):
        body = json.dumps({"Type": "User", "message": message}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                ("x-amzn-ErrorType", code)])
        return [body]
