"""moto server for deckhand's tests and demo, closer to AWS where deckhand relies on it.

moto's backends take no locks, so under its threaded server two conditional writes to one
DynamoDB item can both pass their condition. DynamoDB itself applies each request atomically,
and deckhand's per-service lock relies on that; serialising requests restores it. Retries are
safe where they are on AWS: transactions honour their ClientRequestToken, and a page of
GetResources can be asked for again. CloudWatch speaks the protocol the SDK for Rust sends.

As a program: `python scripts/emulator.py PORT` prints `ready` once listening and serves until
its standard input closes, so it never outlives the process that started it.
"""

import base64
import copy
import datetime
import io
import json
import logging
import sys
import threading
import time

import moto.dynamodb.models as dynamodb_models
import cbor2
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class _NoTableCopies:
    """`copy` for moto's DynamoDB module that does not copy whole tables.

    moto backs up every table a transaction touches with a deep copy, so each
    TransactWriteItems costs time in proportion to the table: a fleet of a thousand services
    made it the slowest call by far. The backup of the items involved (below) replaces it.
    """

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _item_key(backend, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None, None
    if "Key" in op:
        return table, op["Key"]
    attrs = op.get("Item") or {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if not all(name in attrs for name in names):
        return table, None
    return table, {name: attrs[name] for name in names}


_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_with_item_backup(self, transact_items):
    """Backs up only the items a transaction writes, and restores them if it fails."""
    backup = []
    for entry in transact_items or []:
        op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
        table, key = _item_key(self, op) if isinstance(op, dict) else (None, None)
        if table is not None and key is not None:
            current = self.get_item(table.name, key)
            backup.append((table.name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, attributes in reversed(backup):
            if attributes is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise


dynamodb_models.copy = _NoTableCopies
DynamoDBBackend.transact_write_items = _transact_write_items_with_item_backup


class IdempotentParameterMismatch(DynamodbException):
    def __init__(self):
        super().__init__(
            ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
            message="ClientRequestToken was used before with different TransactItems",
        )


# DynamoDB applies a TransactWriteItems once per ClientRequestToken for ten minutes: a retry
# whose first attempt succeeded (its answer lost on the way) succeeds without applying it
# again. The SDK sends a token with every transaction and keeps it across retries; moto
# ignores it, so a retried commit would fail its own condition.
TOKEN_WINDOW_SECONDS = 600
_succeeded_by_token = {}
_handle_transact_write_items = DynamoHandler.transact_write_items


def _transact_write_items_once_per_token(self):
    token = self.body.get("ClientRequestToken")
    if not token:
        return _handle_transact_write_items(self)
    now = time.monotonic()
    for old in [t for t, (at, _, _) in _succeeded_by_token.items() if now - at > TOKEN_WINDOW_SECONDS]:
        del _succeeded_by_token[old]
    request = json.dumps(self.body.get("TransactItems"), sort_keys=True)
    if token in _succeeded_by_token:
        _, seen_request, result = _succeeded_by_token[token]
        if seen_request != request:
            raise IdempotentParameterMismatch()
        return result
    result = _handle_transact_write_items(self)
    _succeeded_by_token[token] = (now, request, result)
    return result


DynamoHandler.transact_write_items = _transact_write_items_once_per_token


# AWS pagination tokens can be sent again (for 15 minutes, in GetResources): a retried page
# gets the same page. moto keeps a generator per token and advances it, so a page whose answer
# was lost is skipped on retry, or the token is gone. Each page is answered once and kept.
PAGE_WINDOW_SECONDS = 900
_pages_by_token = {}
_handle_get_resources = ResourceGroupsTaggingAPIResponse.get_resources


def _get_resources_repeatable(self):
    token = self._get_param("PaginationToken")
    if not token:
        return _handle_get_resources(self)
    now = time.monotonic()
    for old in [t for t, (at, _) in _pages_by_token.items() if now - at > PAGE_WINDOW_SECONDS]:
        del _pages_by_token[old]
    if token not in _pages_by_token:
        _pages_by_token[token] = (now, _handle_get_resources(self))
    return _pages_by_token[token][1]


ResourceGroupsTaggingAPIResponse.get_resources = _get_resources_repeatable


class CloudWatchCbor:
    """Serves CloudWatch's Smithy RPC v2 CBOR protocol, which the AWS SDK for Rust uses and moto
    does not speak, by translating each request to CloudWatch's JSON protocol, which it does.

    Responses are translated back as plain CBOR values: enough for the operations deckhand
    and its tests call (tags, alarms, alarm state), not for timestamps in responses.
    """

    PREFIX = "/service/GraniteServiceVersion20100801/operation/"

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(self.PREFIX):
            return self.app(environ, start_response)
        operation = path[len(self.PREFIX):]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        request = cbor2.loads(raw) if raw else {}
        body = json.dumps(request, default=_json_value).encode()
        environ = dict(environ)
        environ.update({
            "PATH_INFO": "/",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"GraniteServiceVersion20100801.{operation}",
            "wsgi.input": io.BytesIO(body),
        })
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            return lambda data: None

        answer = b"".join(self.app(environ, capture))
        value = json.loads(answer) if answer.strip() else {}
        encoded = cbor2.dumps(value)
        start_response(captured["status"], [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Length", str(len(encoded))),
        ])
        return [encoded]


def _json_value(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} does not translate to JSON")


class Serialized:
    """A WSGI app that handles one request at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


class Emulator:
    def __init__(self, port, host="127.0.0.1"):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = Serialized(CloudWatchCbor(DomainDispatcherApplication(create_backend_app)))
        self.server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.thread.join()


if __name__ == "__main__":
    emulator = Emulator(int(sys.argv[1])).start()
    print("ready", flush=True)
    sys.stdin.read()
    emulator.stop()
