"""CodeDeploy's ECS deployments for the tests' emulator. moto stores CodeDeploy deployments and
does nothing with them (they stay `Created`, no ECS service changes), accepts a second
deployment while one runs, and has no StopDeployment. A small model, as the CodeDeploy User
Guide describes an ECS blue/green deployment:

- CreateDeployment in a group of an ECS application needs an `AppSpecContent` revision whose
  JSON names a TargetService (InvalidRevisionException otherwise: AWS takes YAML too, deckhand
  sends JSON); a group with a deployment still running refuses another
  (DeploymentLimitExceededException). The deployment starts InProgress and ECS gets a task set
  of the AppSpec's task definition beside the primary one (moto's CreateTaskSet), placed as the
  AppSpec says ("AppSpec 'resources' section for Amazon ECS deployments"): its
  CapacityProviderStrategy, else none (the FARGATE launch type: a FARGATE_SPOT service the
  AppSpec does not repeat runs its new tasks on FARGATE); its PlatformVersion, else LATEST; its
  NetworkConfiguration, else the service's current one. An AppSpec
  whose task definition ECS lacks, or whose container name and port are not those of the
  service's load balancer, fails the deployment at once (AWS fails it when it runs, not when it
  is created) and creates no task set;
- StopDeployment of a running deployment ends it Stopped; with autoRollbackEnabled the new task
  set is removed and the traffic stays on the primary (AWS reroutes it back first); it answers
  `Succeeded`. A deployment that ended fails with DeploymentAlreadyCompletedException, an unknown
  one with DeploymentDoesNotExistException;
- a test ends a deployment as CodeDeploy would with
  POST /_deckhand/codedeploy/deployments/end {"deploymentId": ..., "status": "Succeeded"|"Failed"}:
  Succeeded makes the new task set primary (the service's taskDefinition follows) and removes the
  old ones; Failed removes the new one. With "rollback": true a Failed deployment is followed by
  CodeDeploy's own rollback deployment, as a group with automatic rollback makes one: InProgress,
  created by `codeDeployRollback`, deploying the service's primary revision (the failed one's task
  set runs until the rollback succeeds and removes the others), and GetDeployment
  shows `rollbackInfo` on both (moto answers it empty); its id is returned as
  {"rollbackDeploymentId": ...}. A deployment a test creates itself is one deckhand did not
  start.

No traffic, hooks, wait times or events of its own: the tests send CodeDeploy's events.
"""

import json
import random
import string

from moto.codedeploy.exceptions import CodeDeployException, DeploymentDoesNotExistException
from moto.codedeploy.models import CodeDeployBackend, codedeploy_backends
from moto.codedeploy import responses as codedeploy_responses
from moto.codedeploy.responses import CodeDeployResponse
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ecs.models import ecs_backends

API = "/_deckhand/codedeploy/deployments/end"
RUNNING = {"Created", "Queued", "InProgress", "Baking", "Ready"}


class InvalidRevisionException(CodeDeployException):
    code = 400

    def __init__(self, message):
        super().__init__("InvalidRevisionException", message)


class DeploymentLimitExceededException(CodeDeployException):
    code = 400

    def __init__(self, message):
        super().__init__("DeploymentLimitExceededException", message)


class DeploymentAlreadyCompletedException(CodeDeployException):
    code = 400

    def __init__(self, message):
        super().__init__("DeploymentAlreadyCompletedException", message)


def _target_service(revision):
    if (revision or {}).get("revisionType") != "AppSpecContent":
        raise InvalidRevisionException("An ECS deployment needs an AppSpecContent (or S3) revision.")
    content = ((revision or {}).get("appSpecContent") or {}).get("content") or ""
    try:
        spec = json.loads(content)
        return spec["Resources"][0]["TargetService"]["Properties"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise InvalidRevisionException("The AppSpec content names no TargetService.") from None


def _fail(deployment, message):
    deployment.status = "Failed"
    deployment.complete_time = utcnow()
    deployment.deckhand_error = message


_create_deployment = CodeDeployBackend.create_deployment


def _create_deployment_as_aws(self, application_name, deployment_group_name, revision, *args, **kwargs):
    group = self.get_deployment_group(application_name, deployment_group_name)
    if self.applications[application_name].compute_platform != "ECS":
        return _create_deployment(self, application_name, deployment_group_name, revision, *args, **kwargs)
    properties = _target_service(revision)
    for d in self.deployments.values():
        if d.application_name == application_name and d.deployment_group_name == deployment_group_name \
                and d.status in RUNNING:
            raise DeploymentLimitExceededException(
                f"The Deployment Group '{deployment_group_name}' already has an active Deployment "
                f"'{d.deployment_id}'")
    created = _create_deployment(self, application_name, deployment_group_name, revision, *args, **kwargs)
    # CodeDeploy's ids look like d-A1B2C3D4E (moto gives a UUID).
    deployment = self.deployments.pop(created)
    deployment_id = "d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9))
    deployment.deployment_id = deployment_id
    self.deployments[deployment_id] = deployment
    deployment.status = "InProgress"
    deployment.start_time = utcnow()
    deployment.deckhand_task_set = None
    ecs_service = (group.ecs_services or [{}])[0]
    ecs = ecs_backends[self.account_id][self.region_name]
    cluster, name = ecs_service.get("clusterName", ""), ecs_service.get("serviceName", "")
    try:
        service = ecs._get_service(cluster, name)
        task_definition = ecs.describe_task_definition(properties.get("TaskDefinition", ""))
    except Exception as e:  # noqa: BLE001 - AWS fails the deployment, whatever ECS lacks
        _fail(deployment, f"ECS: {e}")
        return deployment_id
    balancer = (service.load_balancers or [{}])[0]
    wanted = properties.get("LoadBalancerInfo") or {}
    if (wanted.get("ContainerName"), wanted.get("ContainerPort")) != \
            (balancer.get("containerName"), balancer.get("containerPort")):
        _fail(deployment, "The AppSpec's container name and port are not the service's load balancer's.")
        return deployment_id
    strategy = [{"capacityProvider": i.get("CapacityProvider"), "weight": i.get("Weight", 0),
                 "base": i.get("Base", 0)} for i in properties.get("CapacityProviderStrategy") or []]
    awsvpc = (properties.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration")
    network = {"awsvpcConfiguration": {"subnets": awsvpc.get("Subnets", []),
                                       "securityGroups": awsvpc.get("SecurityGroups", []),
                                       "assignPublicIp": awsvpc.get("AssignPublicIp", "DISABLED")}} \
        if awsvpc else (getattr(service, "network_configuration", None) or None)
    task_set = ecs.create_task_set(service.name, cluster, task_definition.arn, launch_type="FARGATE",
                                   load_balancers=service.load_balancers, network_configuration=network,
                                   capacity_provider_strategy=strategy or None,
                                   platform_version=properties.get("PlatformVersion") or "LATEST")
    if strategy:
        # ECS takes a capacity provider strategy or a launch type, never both.
        task_set.launch_type = None
    deployment.deckhand_task_set = task_set.task_set_arn
    deployment.deckhand_service = (cluster, service.name)
    return deployment_id


CodeDeployBackend.create_deployment = _create_deployment_as_aws


def _remove_task_set(backend, deployment):
    arn = getattr(deployment, "deckhand_task_set", None)
    if not arn:
        return
    cluster, name = deployment.deckhand_service
    ecs = ecs_backends[backend.account_id][backend.region_name]
    service = ecs._get_service(cluster, name)
    service.task_sets = [t for t in service.task_sets if t.task_set_arn != arn]


def _succeed(backend, deployment):
    arn = getattr(deployment, "deckhand_task_set", None)
    if arn:
        cluster, name = deployment.deckhand_service
        ecs = ecs_backends[backend.account_id][backend.region_name]
        ecs.update_service_primary_task_set(cluster, name, arn)
        service = ecs._get_service(cluster, name)
        service.task_sets = [t for t in service.task_sets if t.task_set_arn == arn]
    deployment.status = "Succeeded"
    deployment.complete_time = utcnow()


def stop_deployment(self):
    deployment_id = self._get_param("deploymentId")
    backend = self.codedeploy_backend
    deployment = backend.deployments.get(deployment_id)
    if deployment is None:
        raise DeploymentDoesNotExistException(f"The deployment {deployment_id} could not be found.")
    if deployment.status not in RUNNING:
        raise DeploymentAlreadyCompletedException(f"Deployment {deployment_id} is already completed.")
    if self._get_param("autoRollbackEnabled"):
        _remove_task_set(backend, deployment)
    deployment.status = "Stopped"
    deployment.complete_time = utcnow()
    return ActionResult({"status": "Succeeded", "statusMessage": "Deployment stopped."})


CodeDeployResponse.stop_deployment = stop_deployment


class CodeDeployControl:
    """The tests' lever: a deployment ends as CodeDeploy would end it. Runs inside the
    emulator's one-request lock, like the calls it changes."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != API:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        status = body.get("status", "Succeeded")
        found = None
        for account in list(codedeploy_backends.keys()):
            for backend in codedeploy_backends[account].values():
                deployment = backend.deployments.get(body.get("deploymentId", ""))
                if deployment is not None:
                    found = (backend, deployment)
        if found is None or status not in ("Succeeded", "Failed") or found[1].status not in RUNNING:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "no such deployment running, or no such status"}']
        backend, deployment = found
        answer = {}
        if status == "Succeeded":
            _succeed(backend, deployment)
        elif body.get("rollback"):
            # The failed deployment's task set runs until the rollback deployment ends.
            _fail(deployment, "failed by the test")
            answer["rollbackDeploymentId"] = _roll_back(backend, deployment)
        else:
            _remove_task_set(backend, deployment)
            _fail(deployment, "failed by the test")
        body = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _roll_back(backend, failed):
    """CodeDeploy's automatic rollback of a failed deployment: a deployment of the revision the
    service ran before it."""
    cluster, name = failed.deckhand_service
    ecs = ecs_backends[backend.account_id][backend.region_name]
    primary = ecs._get_service(cluster, name).task_definition
    spec = json.loads(_target_service_content(failed.revision))
    spec["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"] = primary
    revision = {"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(spec)}}
    rollback_id = backend.create_deployment(failed.application_name, failed.deployment_group_name, revision,
                                            description=f"rollback of {failed.deployment_id}")
    rollback = backend.deployments[rollback_id]
    rollback.creator = "codeDeployRollback"
    rollback.deckhand_rollback_info = {"rollbackTriggeringDeploymentId": failed.deployment_id,
                                       "rollbackMessage": f"Deployment {failed.deployment_id} failed."}
    failed.deckhand_rollback_info = {"rollbackDeploymentId": rollback_id,
                                     "rollbackMessage": f"Rolled back by {rollback_id}."}
    return rollback_id


def _target_service_content(revision):
    return ((revision or {}).get("appSpecContent") or {}).get("content") or "{}"


# GetDeployment shows the rollback a deployment took part in; moto always answers it empty.
_deployment_info = codedeploy_responses._deployment_info


def _deployment_info_with_rollback(deployment):
    info = _deployment_info(deployment)
    info["rollbackInfo"] = getattr(deployment, "deckhand_rollback_info", None) or {}
    return info


codedeploy_responses._deployment_info = _deployment_info_with_rollback
