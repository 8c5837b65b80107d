"""ECS service deployments for the tests' emulator: moto implements none of
ListServiceDeployments, DescribeServiceDeployments or StopServiceDeployment, and deckhand rolls a
traffic-shifting service (blue/green, linear, canary) back through them. A small model, as the
ECS Developer Guide describes service deployments:

- every UpdateService that changes the task definition starts one service deployment, IN_PROGRESS,
  from the revision the service ran (sourceServiceRevisions) to the new one
  (targetServiceRevision), with the service's deploymentConfiguration.strategy; the deployment it
  replaces, if still in progress, becomes STOPPED ("a new deployment started");
- ListServiceDeployments returns a service's deployments, newest first, filtered by status;
  DescribeServiceDeployments returns them by ARN, unknown ARNs under `failures` (MISSING);
- StopServiceDeployment with ROLLBACK on a PENDING or IN_PROGRESS deployment puts the service
  back on the source revision at once and ends ROLLBACK_SUCCESSFUL (ECS passes through
  ROLLBACK_REQUESTED and ROLLBACK_IN_PROGRESS while it shifts the traffic back); on one already
  rolling back it changes nothing; on one that ended it fails with ConflictException; ABORT, which
  ECS documents but does not accept ("the valid values are ROLLBACK"), fails with
  InvalidParameterException; an unknown ARN with ServiceDeploymentNotFoundException;
- the PAUSE hooks among the service's deploymentConfiguration.lifecycleHooks (up to ten, several
  at one stage) pause the deployment at the first lifecycle stage that has any, in ECS's order of
  stages (a ROLLING deployment passes no traffic stage): `lifecycleHookDetails` holds every pause
  hook of that stage AWAITING_ACTION with its expiry and timeout action. ContinueServiceDeployment
  with a hookId and CONTINUE marks that hook SUCCEEDED; once every hook of the stage is, the
  deployment moves to the next stage with pause hooks and waits there, or goes on. ROLLBACK on any
  hook rolls the deployment back (as StopServiceDeployment does). A hook that awaits nothing, or
  a deployment that is not in progress, fails with ConflictException, an unknown hookId with
  InvalidParameterException; the timeout is not modelled;
- a test ends a deployment as ECS would after its bake time with
  POST /_deckhand/ecs/service-deployments/complete {"serviceDeploymentArn": ...}.

It runs no tasks, no lifecycle hooks, no bake time and no alarms of its own: the tests send the ECS
events and say when a deployment ends.
"""

import datetime
import json
import random
import string

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse

ENDED = {"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"}
ROLLING_BACK = {"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
API = "/_deckhand/ecs/service-deployments/complete"


class ServiceDeploymentNotFoundException(ServiceException):
    code = "ServiceDeploymentNotFoundException"


class ConflictException(ServiceException):
    code = "ConflictException"


class InvalidParameterException(ServiceException):
    code = "InvalidParameterException"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _deployments(backend):
    if not hasattr(backend, "deckhand_service_deployments"):
        backend.deckhand_service_deployments = []
    return backend.deckhand_service_deployments


_update_service = EC2ContainerServiceBackend.update_service


def _update_service_with_deployments(self, service_properties):
    cluster = service_properties.get("cluster", "default")
    name = service_properties.get("service", "").split("/")[-1]
    target = service_properties.get("task_definition")
    before = self._get_service(cluster, name).task_definition if target else None
    service = _update_service(self, service_properties)
    if target and service.task_definition != before:
        for d in _deployments(self):
            if d["serviceArn"] == service.arn and d["status"] in ("PENDING", "IN_PROGRESS"):
                d.update(status="STOPPED", statusReason="a new service deployment started",
                         finishedAt=_now(), updatedAt=_now())
        configuration = getattr(service, "deployment_configuration", None) or {}
        strategy = configuration.get("strategy", "ROLLING")
        suffix = "".join(random.choices(string.ascii_letters + string.digits, k=22))
        cluster_name = service.cluster_arn.split("/")[-1]
        _deployments(self).append({
            "serviceDeploymentArn": f"arn:aws:ecs:{self.region_name}:{self.account_id}:service-deployment/"
                                    f"{cluster_name}/{service.name}/{suffix}",
            "serviceArn": service.arn,
            "clusterArn": service.cluster_arn,
            "createdAt": _now(),
            "startedAt": _now(),
            "updatedAt": _now(),
            "sourceServiceRevisions": [{"arn": before, "requestedTaskCount": service.desired_count}],
            "targetServiceRevision": {"arn": service.task_definition, "requestedTaskCount": service.desired_count},
            "status": "IN_PROGRESS",
            "deploymentConfiguration": {k: v for k, v in configuration.items()
                                        if k in ("strategy", "lifecycleHooks", "bakeTimeInMinutes")}
                                       | {"strategy": strategy},
            "strategy": strategy,
        } | _paused_at_hooks(configuration, strategy))
    return service


EC2ContainerServiceBackend.update_service = _update_service_with_deployments


STAGES = ["RECONCILE_SERVICE", "PRE_SCALE_UP", "POST_SCALE_UP", "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT",
          "PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]


def _paused_at_hooks(configuration, strategy, after=None):
    """The first stage after `after` with PAUSE hooks, every one of its pause hooks awaiting
    action; a rolling deployment passes no traffic stage. Empty when no stage ahead pauses."""
    pauses = [h for h in configuration.get("lifecycleHooks") or [] if h.get("targetType") == "PAUSE"]
    start = STAGES.index(after) + 1 if after in STAGES else 0
    for stage in STAGES[start:]:
        if strategy == "ROLLING" and "TRAFFIC_SHIFT" in stage:
            continue
        here = [h for h in pauses if stage in (h.get("lifecycleStages") or [])]
        if not here:
            continue
        details = []
        for hook in here:
            timeout = hook.get("timeoutConfiguration") or {}
            suffix = "".join(random.choices(string.ascii_letters + string.digits + "_", k=43))
            details.append({
                "hookId": f"ecs-pause-{suffix}",
                "targetType": "PAUSE",
                "status": "AWAITING_ACTION",
                "expiresAt": _now() + datetime.timedelta(minutes=timeout.get("timeoutInMinutes", 60)),
                "timeoutAction": timeout.get("action", "ROLLBACK"),
            })
        return {"lifecycleStage": stage, "lifecycleHookDetails": details}
    return {}


def _roll_back(backend, d, reason):
    cluster = d["clusterArn"].split("/")[-1]
    name = d["serviceArn"].split("/")[-1]
    source = d["sourceServiceRevisions"][0]["arn"]
    if source:
        backend._get_service(cluster, name).task_definition = source
    d.update(status="ROLLBACK_SUCCESSFUL", statusReason=reason, finishedAt=_now(),
             updatedAt=_now(), rollback={"reason": reason, "startedAt": _now()})


def _summary(d):
    return {k: d[k] for k in ("serviceDeploymentArn", "serviceArn", "clusterArn", "startedAt", "createdAt",
                              "status", "statusReason", "finishedAt") if k in d} | {
        "targetServiceRevisionArn": d["targetServiceRevision"]["arn"]}


def _full(d):
    out = {k: v for k, v in d.items() if k not in ("strategy",)}
    out["targetServiceRevision"] = {"arn": d["targetServiceRevision"]["arn"],
                                    "requestedTaskCount": d["targetServiceRevision"]["requestedTaskCount"]}
    return out


def _find(backend, arn):
    for d in _deployments(backend):
        if d["serviceDeploymentArn"] == arn:
            return d
    raise ServiceDeploymentNotFoundException(f"The service deployment {arn} does not exist.")


def list_service_deployments(self):
    cluster = self._get_param("cluster", "default").split("/")[-1]
    service = self._get_param("service", "").split("/")[-1]
    statuses = self._get_param("status") or []
    found = [d for d in _deployments(self.ecs_backend)
             if d["clusterArn"].split("/")[-1] == cluster and d["serviceArn"].split("/")[-1] == service
             and (not statuses or d["status"] in statuses)]
    found.sort(key=lambda d: d["createdAt"], reverse=True)
    return ActionResult({"serviceDeployments": [_summary(d) for d in found]})


def describe_service_deployments(self):
    found, failures = [], []
    for arn in self._get_param("serviceDeploymentArns") or []:
        try:
            found.append(_full(_find(self.ecs_backend, arn)))
        except ServiceDeploymentNotFoundException:
            failures.append({"arn": arn, "reason": "MISSING"})
    return ActionResult({"serviceDeployments": found, "failures": failures})


def stop_service_deployment(self):
    arn = self._get_param("serviceDeploymentArn")
    stop_type = self._get_param("stopType") or "ROLLBACK"
    if stop_type != "ROLLBACK":
        raise InvalidParameterException("The valid stop type is ROLLBACK.")
    d = _find(self.ecs_backend, arn)
    if d["status"] in ENDED:
        raise ConflictException(f"The service deployment {arn} is {d['status']} and cannot be stopped.")
    if d["status"] not in ROLLING_BACK:
        _roll_back(self.ecs_backend, d, "stopped with ROLLBACK")
    return ActionResult({"serviceDeploymentArn": arn})


def continue_service_deployment(self):
    arn = self._get_param("serviceDeploymentArn")
    hook_id = self._get_param("hookId")
    action = self._get_param("action") or "CONTINUE"
    if action not in ("CONTINUE", "ROLLBACK"):
        raise InvalidParameterException("The valid actions are CONTINUE and ROLLBACK.")
    d = _find(self.ecs_backend, arn)
    hook = next((h for h in d.get("lifecycleHookDetails", []) if h["hookId"] == hook_id), None)
    if hook is None:
        raise InvalidParameterException(f"The lifecycle hook {hook_id} does not exist for {arn}.")
    if hook["status"] != "AWAITING_ACTION" or d["status"] != "IN_PROGRESS":
        raise ConflictException(f"The lifecycle hook {hook_id} is {hook['status']} and awaits no action.")
    hook["status"] = "SUCCEEDED"
    d["updatedAt"] = _now()
    if action == "ROLLBACK":
        _roll_back(self.ecs_backend, d, "rolled back at a pause hook")
    elif all(h["status"] == "SUCCEEDED" for h in d["lifecycleHookDetails"] if h["targetType"] == "PAUSE"):
        # Every hook of the stage answered: on to the next stage that pauses, if any.
        ahead = _paused_at_hooks(d["deploymentConfiguration"], d["strategy"], d.get("lifecycleStage"))
        d.update(ahead or {"lifecycleHookDetails": []})
    return ActionResult({"serviceDeploymentArn": arn})


EC2ContainerServiceResponse.list_service_deployments = list_service_deployments
EC2ContainerServiceResponse.describe_service_deployments = describe_service_deployments
EC2ContainerServiceResponse.stop_service_deployment = stop_service_deployment
EC2ContainerServiceResponse.continue_service_deployment = continue_service_deployment


class ServiceDeploymentControl:
    """The tests' lever: a service deployment ends SUCCESSFUL, as ECS ends one after its bake
    time. Runs inside the emulator's one-request lock, like the calls it changes."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != API:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        arn = body.get("serviceDeploymentArn", "")
        region, account = arn.split(":")[3:5] if arn.count(":") >= 5 else ("", "")
        try:
            d = _find(ecs_backends[account][region], arn)
        except (ServiceDeploymentNotFoundException, KeyError):
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no such service deployment"}']
        d.update(status="SUCCESSFUL", finishedAt=_now(), updatedAt=_now())
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]
