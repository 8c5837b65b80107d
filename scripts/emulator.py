"""moto server for deckhand's tests and demo, closer to AWS where deckhand relies on it.

moto's backends take no locks, so under its threaded server two conditional writes to one
DynamoDB item can both pass their condition. DynamoDB itself applies each request atomically,
and deckhand's per-service lock relies on that; serialising requests restores it. Retries are
safe where they are on AWS: transactions honour their ClientRequestToken, and a page of
GetResources can be asked for again. CloudWatch speaks the protocol the SDK for Rust sends.

Where moto accepts what AWS refuses, and deckhand's behaviour depends on the refusal, the
emulator refuses too (docs/architecture.md lists each): UpdateService with a task definition
on a service ECS does not deploy, CodeDeploy's ECS deployments (emulator_codedeploy.py), scans of an image index, which ECR never scans, a listener's
authentication action written back without its secret (emulator_elb.py), a service's
capacity provider strategy kept as ECS keeps it, and every call
a role of template.yaml makes without its policy allowing it (emulator_iam.py). Accounts are kept
apart by the credentials, and ECR serves another account's repository only as its repository
policy allows (emulator_accounts.py); EventBridge delivers between accounts as AWS does, the
event unchanged and only where the receiving bus's policy allows (emulator_events.py). Change
Calendar documents and GetCalendarState, which moto lacks, are answered from the calendars'
iCalendar events (emulator_calendar.py). ECS resolving
image tags into service revisions, ECR's archive storage class and its lifecycle policies are
modelled in emulator_registry.py. Lambda's Invoke
reaches the function wherever the test runs it (emulator_lambda.py): moto would need Docker.

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

import hashlib

import moto.dynamodb.models as dynamodb_models
import cbor2
from moto.core.exceptions import ServiceException
from moto.ecr.exceptions import ScanNotFoundException
from moto.ecr.models import ECRBackend, Image
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.resourcegroupstaggingapi.responses import ResourceGroupsTaggingAPIResponse
from moto.resourcegroupstaggingapi.models import ResourceGroupsTaggingAPIBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from emulator_accounts import Accounts
from emulator_calendar import ChangeCalendars
from emulator_codedeploy import CodeDeployControl
from emulator_deployments import ServiceDeploymentControl
from emulator_elb import ClientSecrets
from emulator_events import StackRules
from emulator_iam import IamPolicies
from emulator_lambda import LambdaInvocations
from emulator_registry import RegistryControl


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


# moto's pages resume a generator over its live dictionaries of resources: a service created
# or deleted between two pages makes the next one raise "dictionary changed size during
# iteration", and the retry of that page finds the generator closed and ends the listing
# early, without an error. AWS lists every resource that existed through all the pages. The
# listing is taken whole at its first page (requests are serialised, so nothing changes
# while it is taken) and paged from that snapshot.
_get_resources_generator = ResourceGroupsTaggingAPIBackend._get_resources_generator


def _get_resources_snapshot(self, *args, **kwargs):
    return iter(list(_get_resources_generator(self, *args, **kwargs)))


ResourceGroupsTaggingAPIBackend._get_resources_generator = _get_resources_snapshot


# ECS accepts a new task definition through UpdateService only on a service it deploys itself.
# AWS answers a CODE_DEPLOY service with "Unable to update task definition on services with a
# CODE_DEPLOY deployment controller. Use AWS CodeDeploy to trigger a new deployment."; an
# EXTERNAL one takes task definitions through task sets only. moto applies the change.
_update_service = EC2ContainerServiceBackend.update_service


def _update_service_as_aws(self, service_properties):
    if service_properties.get("task_definition"):
        cluster = service_properties.get("cluster", "default")
        name = service_properties.get("service", "").split("/")[-1]
        service = self._get_service(cluster, name)
        controller = (service.deployment_controller or {}).get("type", "ECS")
        if controller == "CODE_DEPLOY":
            raise InvalidParameterException(
                "Unable to update task definition on services with a CODE_DEPLOY deployment "
                "controller. Use AWS CodeDeploy to trigger a new deployment."
            )
        if controller == "EXTERNAL":
            raise InvalidParameterException(
                "Unable to update task definition on services with a EXTERNAL deployment "
                "controller. Use task sets to deploy a new task definition."
            )
    return _update_service(self, service_properties)


EC2ContainerServiceBackend.update_service = _update_service_as_aws


# CreateService takes a capacity provider strategy instead of a launch type (FARGATE_SPOT);
# moto ignores the strategy and gives every service the EC2 launch type. Kept here as ECS keeps
# it, so that what deckhand carries into a CodeDeploy deployment can be read back.
_create_service_response = EC2ContainerServiceResponse.create_service


def _create_service_with_capacity_providers(self):
    strategy = self._get_param("capacityProviderStrategy")
    if strategy and self._get_param("launchType"):
        raise InvalidParameterException(
            "Specifying both a launch type and capacity provider strategy is not supported. "
            "Remove one and try again.")
    result = _create_service_response(self)
    if strategy:
        service = self.ecs_backend._get_service(self._get_param("cluster", "default"),
                                                self._get_param("serviceName"))
        service.capacity_provider_strategy = strategy
        service.launch_type = None
    return result


EC2ContainerServiceResponse.create_service = _create_service_with_capacity_providers


# A registry's digest is the sha256 of the manifest as pushed. moto derives an image's from its
# layers (stable, which tests rely on) and gives a manifest without layers, such as an image
# index, a digest drawn from 101 random values: two indexes could share one. An index gets its
# real digest here.
_create_digest = Image._create_digest


def _create_digest_of_index(self):
    manifest = json.loads(self.image_manifest)
    if "layers" in manifest:
        return _create_digest(self)
    self._image_digest = "sha256:" + hashlib.sha256(self.image_manifest.encode("utf-8")).hexdigest()


Image._create_digest = _create_digest_of_index

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def _is_index(image):
    media_type = image.image_manifest_media_type
    if not media_type:
        try:
            media_type = json.loads(image.image_manifest).get("mediaType")
        except ValueError:
            return False
    return media_type in INDEX_TYPES


class UnsupportedImageTypeException(ServiceException):
    code = "UnsupportedImageTypeException"


# ECR scans the images an index lists, never the index: StartImageScan refuses it (AWS's words,
# as reported by users of buildx) and no scan of it exists to describe. moto scans anything.
_start_image_scan = ECRBackend.start_image_scan
_describe_image_scan_findings = ECRBackend.describe_image_scan_findings


def _start_image_scan_as_aws(self, registry_id, repository_name, image_id):
    repository = self._get_repository(repository_name, registry_id)
    image = repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
    if _is_index(image):
        raise UnsupportedImageTypeException(
            f"An artifact with media type '{image.image_manifest_media_type or INDEX_TYPES[0]}' "
            "cannot be scanned. For more information, see the Amazon ECR documentation."
        )
    return _start_image_scan(self, registry_id, repository_name, image_id)


def _describe_image_scan_findings_as_aws(self, registry_id, repository_name, image_id):
    repository = self._get_repository(repository_name, registry_id)
    image = repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
    if _is_index(image):
        described = f"{{imageDigest:'{image_id.get('imageDigest') or 'null'}', imageTag:'{image_id.get('imageTag') or 'null'}'}}"
        raise ScanNotFoundException(described, repository_name, repository.registry_id)
    return _describe_image_scan_findings(self, registry_id, repository_name, image_id)


ECRBackend.start_image_scan = _start_image_scan_as_aws
ECRBackend.describe_image_scan_findings = _describe_image_scan_findings_as_aws


# A tag pushed again onto another image moves: on a mutable repository AWS leaves the image it
# came from in place, untagged (a lifecycle rule on untagged images expires it later). moto
# deletes that image when the tag was its only one, so a push whose tag moved on would look
# like a push of a digest ECR never had. deckhand tells the two apart (superseded, or refused).
_put_image = ECRBackend.put_image
_batch_delete_image = ECRBackend.batch_delete_image
_moving_tag = threading.local()


def _put_image_as_aws(self, *args, **kwargs):
    _moving_tag.active = True
    try:
        return _put_image(self, *args, **kwargs)
    finally:
        _moving_tag.active = False


def _batch_delete_image_or_untag(self, repository_name, registry_id=None, image_ids=None):
    if not getattr(_moving_tag, "active", False):
        return _batch_delete_image(self, repository_name, registry_id, image_ids)
    # Called by put_image to take the tag off the image that had it.
    repository = self._get_repository(repository_name, registry_id)
    for image_id in image_ids or []:
        tag = image_id.get("imageTag")
        for image in repository.images:
            if tag in image.image_tags:
                image.remove_tag(tag)
                if not image.image_tags:
                    image.image_tag = None
    return {"imageIds": [], "failures": []}


ECRBackend.put_image = _put_image_as_aws
ECRBackend.batch_delete_image = _batch_delete_image_or_untag


class CloudWatchCbor:
    """Serves CloudWatch's Smithy RPC v2 CBOR protocol, which the AWS SDK for Rust uses and moto
    does not speak, by translating each request to CloudWatch's JSON protocol, which it does.

    Responses are translated back as plain CBOR values, with the `...Timestamp` fields as CBOR
    timestamps: enough for the operations deckhand and its tests call (tags, alarms, alarm state).
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
        encoded = cbor2.dumps(_tag_timestamps(value))
        start_response(captured["status"], [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Length", str(len(encoded))),
        ])
        return [encoded]


def _tag_timestamps(value):
    """CloudWatch's timestamps (every field named `...Timestamp`) as CBOR timestamps (tag 1):
    the SDK refuses a bare number where its model says timestamp."""
    if isinstance(value, dict):
        return {k: cbor2.CBORTag(1, v) if k.endswith("Timestamp") and isinstance(v, (int, float))
                else _tag_timestamps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag_timestamps(v) for v in value]
    return value


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
        # IAM (on CloudWatch's requests as JSON) before an invocation runs; invocations outside
        # the lock, since the function calls the emulator back while its invocation is open.
        moto = Serialized(StackRules(ChangeCalendars(RegistryControl(ClientSecrets(CodeDeployControl(ServiceDeploymentControl(
            DomainDispatcherApplication(create_backend_app))))))))
        # The caller's account first: IAM evaluates in it, moto serves from it.
        app = Accounts(CloudWatchCbor(IamPolicies(LambdaInvocations(moto))))
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
