"""What a rollback target depends on, for the tests' emulator: ECS resolving image tags when it
deploys, ECR's archive storage class, and ECR's lifecycle policies. moto models none of them.

- ECS service revisions (ECS Developer Guide, "Amazon ECS service revisions"): every CreateService,
  and every UpdateService that changes the task definition or forces a new deployment, records a
  service revision whose `containerImages` hold the digest each container's image resolved to at
  that moment (a tag is looked up in the emulator's ECR; an image of another registry gets no
  digest). DescribeServices lists the service's `currentServiceRevisions` (the newest revision of
  the task definition it runs); DescribeServiceRevisions returns them by ARN, unknown ARNs under
  `failures` (MISSING). An ECR image that cannot be pulled (no such image, or ARCHIVED) leaves its
  container without a digest and fails the deployment (rolloutState FAILED,
  CannotPullContainerError), as ECS's tasks fail to start.
- ECR's archive storage class (ECR User Guide, "Archiving an image"; API UpdateImageStorageClass):
  `imageStatus` is ACTIVE, ARCHIVED or ACTIVATING; ARCHIVE archives an ACTIVE image, STANDARD
  restores an ARCHIVED one (ACTIVATING until ECR has restored it); any other change fails with
  ImageStorageClassUpdateNotSupportedException. An image that is not ACTIVE cannot be pulled:
  BatchGetImage lists it under `failures` (ImageNotFound). A test ends a restore as ECR would with
  POST /_deckhand/ecr/activate {"repositoryName": ..., "imageDigest": ...}.
- Lifecycle policies (ECR User Guide, "Lifecycle policy evaluation rules"): POST
  /_deckhand/ecr/lifecycle {"repositoryName": ..., "now": epoch seconds (optional)} applies the
  repository's policy once, as ECR's evaluator does: rules by ascending `rulePriority`; an image is
  considered only by the first rule whose tag selection matches it, and a rule of lower priority
  never expires it; `tagStatus` tagged with `tagPrefixList` or `tagPatternList` (`*` wildcards)
  selects images that have a matching tag for every entry; `imageCountMoreThan` keeps the newest
  `countNumber` of the images the rule considers, `sinceImagePushed` those pushed within
  `countNumber` days; action `expire` deletes what the rule does not keep, `transition` archives it.
  It answers with the digests expired and archived.
"""

import datetime
import fnmatch
import json
import random
import re
import string

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecr.models import ecr_backends, Image
from moto.ecr.exceptions import ImageNotFoundException
from moto.ecr.responses import ECRResponse
from moto.ecs.models import EC2ContainerServiceBackend, Service
from moto.ecs.responses import EC2ContainerServiceResponse

ACTIVATE = "/_deckhand/ecr/activate"
LIFECYCLE = "/_deckhand/ecr/lifecycle"
ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]{64}))?$")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


# --- ECR: the archive storage class -------------------------------------------------------------

Image.image_status = "ACTIVE"


class ImageStorageClassUpdateNotSupportedException(ServiceException):
    code = "ImageStorageClassUpdateNotSupportedException"


def _image(repository_name, image_id, account, region):
    backend = ecr_backends[account][region]
    repository = backend._get_repository(repository_name, None)
    return repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))


def update_image_storage_class(self):
    name = self._get_param("repositoryName")
    image_id = self._get_param("imageId") or {}
    target = self._get_param("targetStorageClass")
    repository = self.ecr_backend._get_repository(name, self._get_param("registryId"))
    image = repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
    if target == "ARCHIVE" and image.image_status == "ACTIVE":
        image.image_status = "ARCHIVED"
        image.last_archived_at = _now()
    elif target == "STANDARD" and image.image_status == "ARCHIVED":
        image.image_status = "ACTIVATING"
    else:
        raise ImageStorageClassUpdateNotSupportedException(
            f"The image {image.get_image_digest()} is {image.image_status} and cannot move to {target}.")
    return ActionResult({"registryId": repository.registry_id, "repositoryName": name,
                         "imageId": {"imageDigest": image.get_image_digest()},
                         "imageStatus": image.image_status})


ECRResponse.update_image_storage_class = update_image_storage_class

_batch_get_image = ECRResponse.batch_get_image


def _batch_get_image_of_active(self):
    """An image that is not ACTIVE cannot be pulled: ECR answers 404 for it."""
    name = self._get_param("repositoryName")
    repository = self.ecr_backend._get_repository(name, self._get_param("registryId"))
    blocked = []
    for image_id in self._get_param("imageIds") or []:
        for image in repository.images:
            if image.image_status != "ACTIVE" and (
                    image_id.get("imageDigest") == image.get_image_digest()
                    or image_id.get("imageTag") in image.image_tags):
                blocked.append(image_id)
    if not blocked:
        return _batch_get_image(self)
    result = _batch_get_image(self)
    answer = result.result if hasattr(result, "result") else None
    if isinstance(answer, dict):
        digests = {i.get("imageDigest") for i in blocked}
        tags = {i.get("imageTag") for i in blocked}
        answer["images"] = [i for i in answer.get("images", [])
                            if i.get_image_digest() not in digests and not tags & set(i.image_tags)]
        answer.setdefault("failures", []).extend(
            {"imageId": i, "failureCode": "ImageNotFound",
             "failureReason": "Requested image is archived and cannot be pulled"} for i in blocked)
    return result


ECRResponse.batch_get_image = _batch_get_image_of_active


# --- ECR: lifecycle policies ---------------------------------------------------------------------

def _selects(selection, image):
    status = selection.get("tagStatus", "any")
    if status == "untagged":
        return not image.image_tags
    if status == "any":
        return True
    if not image.image_tags:
        return False
    prefixes = selection.get("tagPrefixList") or []
    patterns = selection.get("tagPatternList") or []
    return (all(any(t.startswith(p) for t in image.image_tags) for p in prefixes)
            and all(any(fnmatch.fnmatchcase(t, p) for t in image.image_tags) for p in patterns))


def apply_lifecycle(repository, now):
    policy = json.loads(getattr(repository, "lifecycle_policy", None) or '{"rules": []}')
    rules = sorted(policy.get("rules", []), key=lambda r: r.get("rulePriority", 0))
    claimed = {}
    for image in repository.images:
        for rule in rules:
            if _selects(rule.get("selection", {}), image):
                claimed.setdefault(rule.get("rulePriority"), []).append(image)
                break
    expired, archived = [], []
    for rule in rules:
        images = claimed.get(rule.get("rulePriority"), [])
        selection = rule.get("selection", {})
        count = int(selection.get("countNumber", 0))
        if selection.get("countType") == "imageCountMoreThan":
            # Newest first; pushes of one second in the order they came.
            order = {id(i): n for n, i in enumerate(repository.images)}
            newest = sorted(images, key=lambda i: (i.image_pushed_at, order[id(i)]), reverse=True)
            doomed = newest[count:]
        else:
            days = {"days": 1}.get(selection.get("countUnit", "days"), 1) * count
            cutoff = now.timestamp() - days * 86400
            doomed = [i for i in images if i.image_pushed_at < cutoff]
        action = (rule.get("action") or {}).get("type", "expire")
        for image in doomed:
            if action == "transition":
                if image.image_status == "ACTIVE":
                    image.image_status = "ARCHIVED"
                    archived.append(image.get_image_digest())
            else:
                repository.images.remove(image)
                expired.append(image.get_image_digest())
    return expired, archived


class RegistryControl:
    """The tests' levers: a restore ends, a lifecycle policy runs. Inside the one-request lock."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path not in (ACTIVATE, LIFECYCLE):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        account = body.get("account", "123456789012")
        region = body.get("region", "us-east-1")
        backend = ecr_backends[account][region]
        repository = backend.repositories.get(body.get("repositoryName", ""))
        if repository is None:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no such repository"}']
        if path == ACTIVATE:
            for image in repository.images:
                if image.get_image_digest() == body.get("imageDigest") and image.image_status == "ACTIVATING":
                    image.image_status = "ACTIVE"
                    image.last_activated_at = _now()
            answer = {}
        else:
            at = body.get("now")
            now = datetime.datetime.fromtimestamp(at, datetime.timezone.utc) if at else _now()
            expired, archived = apply_lifecycle(repository, now)
            answer = {"expired": expired, "archived": archived}
        encoded = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(encoded)))])
        return [encoded]


# --- ECS: service revisions ----------------------------------------------------------------------

def resolve(image):
    """The digest ECS would pull for an image now, and why not when it cannot."""
    match = ECR_IMAGE.match(image)
    if not match:
        return None, None
    account, region, name, tag, digest = match.groups()
    try:
        found = _image(name, {"imageDigest": digest} if digest else {"imageTag": tag or "latest"},
                       account, region)
    except (ImageNotFoundException, Exception):  # noqa: BLE001 - any lookup failure is a failed pull
        return None, f"CannotPullContainerError: {image}: not found"
    if found.image_status != "ACTIVE":
        return None, f"CannotPullContainerError: {image}: the image is {found.image_status}"
    return found.get_image_digest(), None


def _record_revision(backend, service):
    task_definition = backend.describe_task_definition(service.task_definition)
    images, failures = [], []
    for container in task_definition.container_definitions:
        digest, failure = resolve(container.get("image", ""))
        entry = {"containerName": container.get("name"), "image": container.get("image")}
        if digest:
            entry["imageDigest"] = digest
        if failure:
            failures.append(failure)
        images.append(entry)
    suffix = "".join(random.choices(string.digits, k=19))
    cluster = service.cluster_arn.split("/")[-1]
    revision = {
        "serviceRevisionArn": f"arn:aws:ecs:{backend.region_name}:{backend.account_id}:service-revision/"
                              f"{cluster}/{service.name}/{suffix}",
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "taskDefinition": service.task_definition,
        "containerImages": images,
        "createdAt": _now(),
    }
    if not hasattr(service, "deckhand_revisions"):
        service.deckhand_revisions = []
    service.deckhand_revisions.append(revision)
    if failures and service.deployments:
        service.deployments[0]["rolloutState"] = "FAILED"
        service.deployments[0]["rolloutStateReason"] = "; ".join(failures)


_update_service = EC2ContainerServiceBackend.update_service
_create_service = EC2ContainerServiceBackend.create_service


def _update_service_resolving_images(self, service_properties):
    cluster = service_properties.get("cluster", "default")
    name = service_properties.get("service", "").split("/")[-1]
    before = self._get_service(cluster, name).task_definition
    forced = service_properties.get("force_new_deployment")
    service = _update_service(self, service_properties)
    if service.task_definition != before or forced:
        _record_revision(self, service)
    return service


def _create_service_resolving_images(self, *args, **kwargs):
    service = _create_service(self, *args, **kwargs)
    if service.task_definition:
        _record_revision(self, service)
    return service


EC2ContainerServiceBackend.update_service = _update_service_resolving_images
EC2ContainerServiceBackend.create_service = _create_service_resolving_images

def _current_service_revisions(self):
    current = [r for r in getattr(self, "deckhand_revisions", []) if r["taskDefinition"] == self.task_definition]
    return [{
        "arn": current[-1]["serviceRevisionArn"],
        "requestedTaskCount": self.desired_count,
        "runningTaskCount": self.running_count,
        "pendingTaskCount": 0,
    }] if current else []


Service.current_service_revisions = property(_current_service_revisions)


def describe_service_revisions(self):
    found, failures = [], []
    services = [s for s in self.ecs_backend.services.values()]
    for arn in self._get_param("serviceRevisionArns") or []:
        revision = next((r for s in services for r in getattr(s, "deckhand_revisions", [])
                         if r["serviceRevisionArn"] == arn), None)
        if revision is None:
            failures.append({"arn": arn, "reason": "MISSING"})
        else:
            found.append(revision)
    return ActionResult({"serviceRevisions": found, "failures": failures})


EC2ContainerServiceResponse.describe_service_revisions = describe_service_revisions
