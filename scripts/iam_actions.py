"""The IAM actions one AWS request needs, and whether a role of the template may make it.

An operation's own action is `prefix:Operation` on the resources its parameters name. Some
operations need more, as AWS documents:

- DynamoDB's TransactWriteItems and TransactGetItems are authorized item by item (PutItem,
  UpdateItem, DeleteItem, ConditionCheckItem, GetItem); there is no action of their own.
- ECS RegisterTaskDefinition with tags also needs ecs:TagResource (condition ecs:CreateAction),
  and with a task or execution role iam:PassRole on it (condition iam:PassedToService).
- Application Auto Scaling validates, before RegisterScalableTarget changes an ECS target, that
  the caller may itself describe and update the service and describe the alarms
  (autoscaling/application/userguide/security_iam_permission_validation.html).
- ECR reads Amazon Inspector's findings with the caller's rights under enhanced scanning
  (inspector2:ListFindings, inspector2:ListCoverage for DescribeImageScanFindings).
- SNS encrypts a message to a topic with a customer managed key with the publisher's rights:
  kms:GenerateDataKey and kms:Decrypt, which the key's policy must allow too.
- Lambda's Invoke is the action lambda:InvokeFunction, on the function's ARN with the qualifier
  the call names (`function:NAME:$LATEST`), which a grant on the unqualified ARN does not cover.

An operation absent from the tables below needs `prefix:Operation` on `*`: right for the actions
without resource-level permissions, and refused by any statement scoped to resources, so a new
call is never allowed by accident.
"""

from typing import NamedTuple

import iam

# SigV4 signing name -> IAM service prefix, where they differ.
PREFIXES = {"monitoring": "cloudwatch", "tagging": "tag"}


class Need(NamedTuple):
    action: str
    resource: str
    context: dict
    # The template name of the KMS key whose policy must also allow it, if any.
    key: str = ""
    # Why an action other than the operation's own is needed.
    because: str = ""


def arn(service, resource, region=iam.REGION):
    return f"arn:{iam.PARTITION}:{service}:{region}:{iam.ACCOUNT}:{resource}"


def ecs_service_arn(cluster, service):
    if service.startswith("arn:"):
        return service
    cluster = (cluster or "default").split("/")[-1]
    return arn("ecs", f"service/{cluster}/{service}")


def repository_arn(params):
    return arn("ecr", f"repository/{params.get('repositoryName', '')}")


def table_arn(name):
    return name if name.startswith("arn:") else arn("dynamodb", f"table/{name}")


def ecs_needs(operation, params):
    action = f"ecs:{operation}"
    if operation == "DescribeServices":
        return [Need(action, ecs_service_arn(params.get("cluster"), s), {}) for s in params.get("services", [])]
    if operation == "UpdateService":
        return [Need(action, ecs_service_arn(params.get("cluster"), params.get("service", "")), {})]
    if operation == "RegisterTaskDefinition":
        needs = [Need(action, "*", {})]
        family = params.get("family", "")
        if params.get("tags"):
            needs.append(Need("ecs:TagResource", arn("ecs", f"task-definition/{family}:1"),
                              {"ecs:CreateAction": "RegisterTaskDefinition"},
                              because="tags at registration"))
        for field in ("taskRoleArn", "executionRoleArn"):
            if params.get(field):
                needs.append(Need("iam:PassRole", params[field],
                                  {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
                                  because=f"the revision's {field}"))
        return needs
    if operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        return [Need(action, params.get("resourceArn", "*"), {})]
    # Service deployments: listed by their service, described and stopped by their own ARN.
    if operation == "ListServiceDeployments":
        return [Need(action, ecs_service_arn(params.get("cluster"), params.get("service", "")), {})]
    if operation == "DescribeServiceDeployments":
        return [Need(action, a, {}) for a in params.get("serviceDeploymentArns", [])]
    if operation in ("StopServiceDeployment", "ContinueServiceDeployment"):
        return [Need(action, params.get("serviceDeploymentArn", "*"), {})]
    return [Need(action, "*", {})]


def dynamodb_needs(operation, params):
    if operation in ("TransactWriteItems", "TransactGetItems"):
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                 "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
        needs = []
        for item in params.get("TransactItems", []):
            for kind, request in item.items():
                needs.append(Need(f"dynamodb:{kinds.get(kind, kind)}", table_arn(request.get("TableName", "")), {},
                                  because=f"a {kind} in {operation}"))
        return needs
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Need(f"dynamodb:{operation}", table_arn(t), {}) for t in params.get("RequestItems", {})]
    table = params.get("TableName")
    if table is None:
        return [Need(f"dynamodb:{operation}", "*", {})]
    resource = table_arn(table)
    if params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    return [Need(f"dynamodb:{operation}", resource, {})]


def autoscaling_needs(operation, params):
    action = f"application-autoscaling:{operation}"
    if operation != "RegisterScalableTarget":
        return [Need(action, "*", {})]
    namespace = params.get("ServiceNamespace", "")
    resource_id = params.get("ResourceId", "")
    target = arn("application-autoscaling", f"scalable-target/{namespace}-{resource_id.replace('/', '-')}")
    needs = [Need(action, target, {"application-autoscaling:service-namespace": namespace})]
    if namespace == "ecs" and resource_id.startswith("service/"):
        cluster, _, service = resource_id.removeprefix("service/").partition("/")
        validated = "Application Auto Scaling checks the caller's own rights on the target"
        needs += [
            Need("ecs:DescribeServices", ecs_service_arn(cluster, service), {}, because=validated),
            Need("ecs:UpdateService", ecs_service_arn(cluster, service), {}, because=validated),
            Need("cloudwatch:DescribeAlarms", arn("cloudwatch", f"alarm:TargetTracking-{resource_id}"), {},
                 because=validated),
        ]
    return needs


def ecr_needs(operation, params):
    action = f"ecr:{operation}"
    if "repositoryName" not in params:
        return [Need(action, "*", {})]
    needs = [Need(action, repository_arn(params), {})]
    if operation == "DescribeImageScanFindings":
        because = "ECR reads Amazon Inspector's findings with the caller's rights (enhanced scanning)"
        needs += [Need("inspector2:ListFindings", "*", {}, because=because),
                  Need("inspector2:ListCoverage", "*", {}, because=because)]
    return needs


def sns_needs(operation, params, stack):
    action = f"sns:{operation}"
    topic = params.get("TopicArn")
    if topic is None:
        return [Need(action, "*", {})]
    needs = [Need(action, topic, {})]
    key = stack.encrypted_topics().get(topic) if operation == "Publish" else None
    if key:
        key_arn = stack.attribute(key, "Arn")
        because = "SNS encrypts the message with the topic's key, with the publisher's rights"
        needs += [Need("kms:GenerateDataKey", key_arn, {}, key=key, because=because),
                  Need("kms:Decrypt", key_arn, {}, key=key, because=because)]
    return needs


def cloudwatch_needs(operation, params):
    action = f"cloudwatch:{operation}"
    if operation == "ListTagsForResource":
        return [Need(action, params.get("ResourceARN", "*"), {})]
    if operation == "DescribeAlarms" and params.get("AlarmNames"):
        return [Need(action, arn("cloudwatch", f"alarm:{n}"), {}) for n in params["AlarmNames"]]
    return [Need(action, "*", {})]


def queue_arn(url):
    """The ARN of the queue at `url` (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or the
    emulator's `http://HOST/ACCOUNT/NAME`)."""
    account, name = (url.rstrip("/").split("/")[-2:] + ["", ""])[:2]
    return f"arn:{iam.PARTITION}:sqs:{iam.REGION}:{account}:{name}"


def sqs_needs(operation, params):
    url = params.get("QueueUrl")
    return [Need(f"sqs:{operation}", queue_arn(url) if url else "*", {})]


def function_arn(name, qualifier=None):
    """The ARN Lambda authorizes an invocation of `name` (a name, a partial or a full ARN, with or
    without a version or alias) on: qualified when the call names a qualifier."""
    if name.startswith("arn:"):
        resource = name
    elif ":" in name:  # ACCOUNT:function:NAME[:QUALIFIER]
        resource = f"arn:{iam.PARTITION}:lambda:{iam.REGION}:{name}"
    else:
        resource = arn("lambda", f"function:{name}")
    if qualifier and resource.count(":") == 6:
        resource += f":{qualifier}"
    return resource


def lambda_needs(operation, params):
    if operation == "Invoke":
        return [Need("lambda:InvokeFunction", function_arn(params.get("FunctionName", ""), params.get("Qualifier")),
                     {})]
    return [Need(f"lambda:{operation}", "*", {})]


def elb_needs(operation, params):
    """Describe* has no resource-level permissions; a change is authorized on the listener or
    rule it changes (`ModifyListener`, `ModifyRule`)."""
    action = f"elasticloadbalancing:{operation}"
    if operation == "ModifyListener":
        return [Need(action, params.get("ListenerArn", "*"), {})]
    if operation == "ModifyRule":
        return [Need(action, params.get("RuleArn", "*"), {})]
    return [Need(action, "*", {})]


def deployment_group_of(deployment_id):
    from moto.codedeploy.models import codedeploy_backends

    deployment = codedeploy_backends[iam.ACCOUNT][iam.REGION].deployments.get(deployment_id)
    if deployment is None:
        return arn("codedeploy", "deploymentgroup:*")
    return arn("codedeploy", f"deploymentgroup:{deployment.application_name}/{deployment.deployment_group_name}")


def codedeploy_needs(operation, params):
    """CodeDeploy authorizes an application's calls on the application, a group's on the
    deployment group (`deploymentgroup:APP/GROUP`), a deployment's on its group; ListApplications
    has no resource. CreateDeployment also reads the group's deployment configuration and
    registers the revision it deploys (CodeDeploy User Guide, permissions reference)."""
    action = f"codedeploy:{operation}"
    application = params.get("applicationName", "")
    group = arn("codedeploy", f"deploymentgroup:{application}/{params.get('deploymentGroupName', '')}")
    if operation == "BatchGetApplications":
        return [Need(action, arn("codedeploy", f"application:{a}"), {}) for a in params.get("applicationNames", [])]
    if operation == "ListDeploymentGroups":
        return [Need(action, arn("codedeploy", f"application:{application}"), {})]
    if operation in ("GetDeploymentGroup", "ListDeployments"):
        return [Need(action, group, {})]
    if operation == "CreateDeployment":
        because = "CodeDeploy registers and reads the revision a deployment deploys"
        config = params.get("deploymentConfigName", "CodeDeployDefault.ECSAllAtOnce")
        return [
            Need(action, group, {}),
            Need("codedeploy:GetDeploymentConfig", arn("codedeploy", f"deploymentconfig:{config}"), {},
                 because="CodeDeploy reads the deployment configuration with the caller's rights"),
            Need("codedeploy:RegisterApplicationRevision", arn("codedeploy", f"application:{application}"), {},
                 because=because),
            Need("codedeploy:GetApplicationRevision", arn("codedeploy", f"application:{application}"), {},
                 because=because),
        ]
    if operation == "StopDeployment":
        # Authorized on the group of the deployment, which the emulator's CodeDeploy knows.
        return [Need(action, deployment_group_of(params.get("deploymentId", "")), {})]
    return [Need(action, "*", {})]


def needs(signing_name, operation, params, stack):
    prefix = PREFIXES.get(signing_name, signing_name)
    if prefix == "ecs":
        return ecs_needs(operation, params)
    if prefix == "dynamodb":
        return dynamodb_needs(operation, params)
    if prefix == "application-autoscaling":
        return autoscaling_needs(operation, params)
    if prefix == "ecr":
        return ecr_needs(operation, params)
    if prefix == "sns":
        return sns_needs(operation, params, stack)
    if prefix == "cloudwatch":
        return cloudwatch_needs(operation, params)
    if prefix == "sqs":
        return sqs_needs(operation, params)
    if prefix == "lambda":
        return lambda_needs(operation, params)
    if prefix == "elasticloadbalancing":
        return elb_needs(operation, params)
    if prefix == "codedeploy":
        return codedeploy_needs(operation, params)
    return [Need(f"{prefix}:{operation}", "*", {})]


def refusals(stack, role, signing_name, operation, params):
    """Every need of the request the role is not allowed, each as a sentence naming the role,
    the operation, the action and the resource; and the needs that are allowed."""
    statements = stack.role_statements(role)
    principal = iam.role_arn(role)
    allowed, refused = [], []
    for need in needs(signing_name, operation, params, stack):
        if need.key:
            ok, why = iam.key_allows(stack.key_statements(need.key), statements, principal, need.action,
                                     need.resource, need.context)
        else:
            verdict = iam.decide(statements, need.action, need.resource, need.context)
            ok = verdict == "allow"
            why = "a statement denies it" if verdict == "deny" else "no statement of its policy allows it"
        if ok:
            allowed.append(need)
        else:
            via = f" (needed for {need.because})" if need.because else ""
            refused.append(
                f"{role} ({iam.ROLES.get(role, role)}) called {signing_name} {operation}, which needs "
                f"{need.action} on {need.resource}{via}: {why}"
            )
    return allowed, refused
