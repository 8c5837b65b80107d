"""The IAM actions one AWS request needs, and whether a role of the template may make it.

An operation's own action is `prefix:Operation`, authorized as AWS's Service Authorization
Reference says (iam_reference.py): on one resource of each required resource type, built from
the request with the type's ARN format (the service of `StopServiceDeployment` from its service
deployment's ARN); on `"*"` when the action has no resource type, or when the request names no
resource of a required type (a listing): only a grant on `"*"` allows that. An optional type is
needed only when the request names a resource of it (a DynamoDB index). A condition key the
request sets must exist for the action.

The rest is what AWS documents beyond the reference, each with its page:

- DynamoDB's TransactWriteItems and TransactGetItems have no action of their own: each item is
  authorized as PutItem, UpdateItem, DeleteItem, ConditionCheckItem or GetItem
  (amazondynamodb/latest/developerguide/transaction-apis-iam.html).
- ECS RegisterTaskDefinition with tags also needs ecs:TagResource (condition ecs:CreateAction)
  (AmazonECS/latest/developerguide/supported-iam-actions-tagging.html), and with a task or
  execution role iam:PassRole on it (condition iam:PassedToService)
  (AmazonECS/latest/developerguide/task-iam-roles.html).
- Application Auto Scaling validates, before RegisterScalableTarget changes an ECS target, that
  the caller may itself describe and update the service and describe the alarms
  (autoscaling/application/userguide/security_iam_permission_validation.html).
- ECR reads Amazon Inspector's findings with the caller's rights under enhanced scanning
  (inspector2:ListFindings, inspector2:ListCoverage for DescribeImageScanFindings;
  AmazonECR/latest/userguide/image-scanning-enhanced-iam.html).
- SNS encrypts a message to a topic with a customer managed key with the publisher's rights:
  kms:GenerateDataKey and kms:Decrypt, which the key's policy must allow too
  (sns/latest/dg/sns-key-management.html).
- Lambda's Invoke is the action lambda:InvokeFunction, on the function's ARN with the qualifier
  the call names (`function:NAME:$LATEST`), which a grant on the unqualified ARN does not cover
  (lambda/latest/dg/lambda-api-permissions-ref.html).
- CodeDeploy's CreateDeployment also needs GetDeploymentConfig on the configuration and
  RegisterApplicationRevision or GetApplicationRevision on the application
  (codedeploy/latest/userguide/auth-and-access-control-permissions-reference.html, note 1).

An operation the reference does not know fails the request with a sentence saying so: a new
call is never allowed by accident.
"""

import re
from typing import NamedTuple

import iam
import iam_reference

# SigV4 signing name -> IAM service prefix, where they differ.
PREFIXES = {"monitoring": "cloudwatch", "tagging": "tag"}
# Operations whose action has another name.
ACTIONS = {("lambda", "Invoke"): "InvokeFunction"}


class Need(NamedTuple):
    action: str
    resource: str
    context: dict
    # The template name of the KMS key whose policy must also allow it, if any.
    key: str = ""
    # Why an action other than the operation's own is needed.
    because: str = ""


class ReferenceGap(Exception):
    """The request cannot be evaluated against the reference: an unknown action, or a condition
    key the reference does not list for it."""


def arn(service, resource, region=iam.REGION):
    return f"arn:{iam.PARTITION}:{service}:{region}:{iam.account()}:{resource}"


def ecs_service_arn(cluster, service):
    if service.startswith("arn:"):
        return service
    cluster = (cluster or "default").split("/")[-1]
    return arn("ecs", f"service/{cluster}/{service}")


def queue_arn(url):
    """The ARN of the queue at `url` (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or the
    emulator's `http://HOST/ACCOUNT/NAME`)."""
    account, name = (url.rstrip("/").split("/")[-2:] + ["", ""])[:2]
    return f"arn:{iam.PARTITION}:sqs:{iam.REGION}:{account}:{name}"


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


def deployment_group_of(deployment_id):
    """The application and group of a CodeDeploy deployment, as the emulator's CodeDeploy knows
    it (the request names only the deployment)."""
    from moto.codedeploy.models import codedeploy_backends

    deployment = codedeploy_backends[iam.account()][iam.REGION].deployments.get(deployment_id)
    if deployment is None:
        return {}
    return {"ApplicationName": deployment.application_name, "DeploymentGroupName": deployment.deployment_group_name}


def last_part(name):
    return (name or "").split("/")[-1]


def named_resources(prefix, operation, params):
    """What the request names: each an ARN, or the variables of the reference's ARN formats
    (`{"ClusterName": "prod", "ServiceName": "web"}`); several for a batch."""
    if prefix == "ecs":
        cluster = {"ClusterName": last_part(params.get("cluster") or "default")}
        found = []
        for field in ("serviceDeploymentArn", "resourceArn"):
            if params.get(field):
                found.append(params[field])
        found += params.get("serviceDeploymentArns") or []
        found += params.get("serviceRevisionArns") or []
        services = params.get("services") or ([params["service"]] if params.get("service") else [])
        for s in services:
            found.append(s if s.startswith("arn:") else {**cluster, "ServiceName": s})
        if operation == "RegisterTaskDefinition":
            # The revision it registers is not known before: any revision of the family.
            found.append({"TaskDefinitionFamilyName": params.get("family", ""), "TaskDefinitionRevisionNumber": "*"})
        found += [{"ClusterName": last_part(c)} for c in params.get("clusters") or []]
        if not found and params.get("cluster"):
            found.append(cluster)
        return found
    if prefix == "dynamodb":
        tables = list(params.get("RequestItems") or {}) or ([params["TableName"]] if params.get("TableName") else [])
        found = []
        for t in tables:
            name = t.split("/")[-1] if t.startswith("arn:") else t
            found.append({"TableName": name} | ({"IndexName": params["IndexName"]} if params.get("IndexName") else {}))
        return found
    if prefix == "ecr":
        if "repositoryName" not in params:
            return []
        return [{"RepositoryName": params["repositoryName"]}
                | ({"Account": params["registryId"]} if params.get("registryId") else {})]
    if prefix == "sns":
        return [params["TopicArn"]] if params.get("TopicArn") else []
    if prefix == "cloudwatch":
        if params.get("ResourceARN"):
            return [params["ResourceARN"]]
        return [{"AlarmName": n} for n in params.get("AlarmNames") or []]
    if prefix == "sqs":
        return [queue_arn(params["QueueUrl"])] if params.get("QueueUrl") else []
    if prefix == "lambda":
        return [function_arn(params.get("FunctionName", ""), params.get("Qualifier"))]
    if prefix == "elasticloadbalancing":
        return [params[f] for f in ("ListenerArn", "RuleArn") if params.get(f)]
    if prefix == "cloudformation":
        # A stack named by its name is authorized on its ARN, which carries the stack's id.
        name = params.get("StackName", "")
        if name.startswith("arn:") or not name:
            return [name] if name else []
        return [{"StackName": name, "Id": iam.STACK_UUID if name == iam.STACK_NAME else "00000000-0000-0000-0000-000000000000"}]
    if prefix == "ssm" and operation == "GetCalendarState":
        return [n if n.startswith("arn:") else {"DocumentName": n} for n in params.get("CalendarNames") or []]
    if prefix == "events" and params.get("EventBusName"):
        bus = params["EventBusName"]
        return [bus if bus.startswith("arn:") else {"EventBusName": bus}]
    if prefix == "codedeploy":
        application = params.get("applicationName")
        if operation == "BatchGetApplications":
            return [{"ApplicationName": a} for a in params.get("applicationNames") or []]
        if params.get("deploymentId"):
            return [deployment_group_of(params["deploymentId"])]
        found = {}
        if application:
            found["ApplicationName"] = application
        if params.get("deploymentGroupName"):
            found["DeploymentGroupName"] = params["deploymentGroupName"]
        if operation == "CreateDeployment":
            found["DeploymentConfigurationName"] = params.get("deploymentConfigName", "CodeDeployDefault.ECSAllAtOnce")
        return [found] if found else []
    if prefix == "application-autoscaling" and params.get("ResourceId"):
        # A scalable target's ARN carries an id of its own that the request does not name.
        namespace = params.get("ServiceNamespace", "")
        return [{"ResourceId": f"{namespace}-{params['ResourceId'].replace('/', '-')}"}]
    return []


def variables_of(found, item):
    """The ARN-format variables an item gives: its own, or those of the ARN parsed with the
    most specific format of the action's service that it has (`table/T/index/I` is an index)."""
    if isinstance(item, dict):
        return item
    prefix = found.name.split(":")[0]
    best = {}
    for spec in (iam_reference.service(prefix) or {}).get("resources", {}).values():
        parsed = iam_reference.parse(spec["arn"], item)
        if parsed is not None and len(parsed) > len(best):
            best = parsed
    return best


def resource_for(found, types, item):
    """The resource of one of the alternative `types` that the item names, or None."""
    if isinstance(item, str):
        for t in types:
            if iam_reference.parse(t.arn, item) is not None:
                return item
    variables = {"Partition": iam.PARTITION, "Region": iam.REGION, "Account": iam.account(),
                 **variables_of(found, item)}
    for t in types:
        built = iam_reference.fill(t.arn, variables)
        if built is not None:
            return built
    return None


def width(resource_type):
    """How many names a resource of the type has beyond partition, region and account."""
    return len(set(re.findall(r"\$\{([^}]+)\}", resource_type.arn)) - {"Partition", "Region", "Account"})


def own_needs(prefix, operation, params, context):
    name = f"{prefix}:{ACTIONS.get((prefix, operation), operation)}"
    found = iam_reference.action(name)
    if found is None:
        raise ReferenceGap(f"{name} is not in AWS's Service Authorization Reference ({iam_reference.version()})")
    for key in context:
        if not iam_reference.condition_key_exists(found, key):
            raise ReferenceGap(f"the condition key {key} does not exist for {name}")
    items = named_resources(prefix, operation, params)
    resources = []
    groups = iam_reference.required_groups(found)
    for group in groups:
        named = [r for r in (resource_for(found, group, item) for item in items) if r]
        # A request that names nothing of the type (a listing) is allowed only by a grant on "*".
        resources += named or ["*"]
    # An optional type is a resource of the request when the request names one, and it is more
    # specific than the required ones (an index of the table).
    required_width = max((width(t) for g in groups for t in g), default=0)
    for t in found.resource_types:
        if not t.required and width(t) > required_width:
            resources += [r for r in (resource_for(found, [t], item) for item in items) if r]
    return [Need(name, r, context) for r in dict.fromkeys(resources or ["*"])]


# The resource whose tags IAM reads as aws:ResourceTag/KEY, by operation.
TAGGED_RESOURCE = {
    ("elasticloadbalancing", "ModifyListener"): "ListenerArn",
    ("elasticloadbalancing", "ModifyRule"): "RuleArn",
    ("lambda", "Invoke"): "FunctionName",
}


def leading_keys(operation, params):
    """The partition key values a GetItem or Query names (deckhand's key is `pk`)."""
    if operation == "GetItem":
        value = params.get("Key", {}).get("pk", {}).get("S")
        return [value] if value is not None else []
    expression = params.get("KeyConditionExpression", "")
    names = params.get("ExpressionAttributeNames", {})
    found = re.search(r"(#?\w+)\s*=\s*(:\w+)", expression)
    if not found:
        return []
    attribute, placeholder = found.groups()
    if names.get(attribute, attribute) != "pk":
        return []
    value = params.get("ExpressionAttributeValues", {}).get(placeholder, {}).get("S")
    return [value] if value is not None else []


def context_of(prefix, operation, params, resource_tags=None):
    if prefix == "application-autoscaling" and operation == "RegisterScalableTarget":
        return {"application-autoscaling:service-namespace": params.get("ServiceNamespace", "")}
    if prefix == "dynamodb" and operation in ("GetItem", "Query"):
        # The partition keys the request reads: dynamodb:LeadingKeys.
        keys = leading_keys(operation, params)
        return {"dynamodb:LeadingKeys": keys} if keys else {}
    field = TAGGED_RESOURCE.get((prefix, operation))
    if field and resource_tags and params.get(field):
        # IAM reads the tags the resource carries when the request comes (the emulator's
        # lookup); without one, the resource has no tag and a tag condition fails.
        return {f"aws:ResourceTag/{k}": v for k, v in resource_tags(params[field]).items()}
    return {}


def ecs_extra(operation, params):
    if operation != "RegisterTaskDefinition":
        return []
    needs = []
    family = params.get("family", "")
    if params.get("tags"):
        needs += own_needs("ecs", "TagResource", {"resourceArn": arn("ecs", f"task-definition/{family}:*")},
                           {"ecs:CreateAction": "RegisterTaskDefinition"})
        needs[-1] = needs[-1]._replace(because="tags at registration")
    for field in ("taskRoleArn", "executionRoleArn"):
        if params.get(field):
            needs.append(Need("iam:PassRole", params[field], {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
                              because=f"the revision's {field}"))
    return needs


def dynamodb_transaction(operation, params):
    kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
             "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
    needs = []
    for item in params.get("TransactItems", []):
        for kind, request in item.items():
            for need in own_needs("dynamodb", kinds.get(kind, kind), {"TableName": request.get("TableName", "")}, {}):
                needs.append(need._replace(because=f"a {kind} in {operation}"))
    return needs


def autoscaling_extra(operation, params):
    resource_id = params.get("ResourceId", "")
    if operation != "RegisterScalableTarget" or params.get("ServiceNamespace") != "ecs" \
            or not resource_id.startswith("service/"):
        return []
    cluster, _, service = resource_id.removeprefix("service/").partition("/")
    validated = "Application Auto Scaling checks the caller's own rights on the target"
    return [
        Need("ecs:DescribeServices", ecs_service_arn(cluster, service), {}, because=validated),
        Need("ecs:UpdateService", ecs_service_arn(cluster, service), {}, because=validated),
        Need("cloudwatch:DescribeAlarms", arn("cloudwatch", f"alarm:TargetTracking-{resource_id}"), {},
             because=validated),
    ]


def ecr_extra(operation, params):
    if operation != "DescribeImageScanFindings" or "repositoryName" not in params:
        return []
    because = "ECR reads Amazon Inspector's findings with the caller's rights (enhanced scanning)"
    return [Need("inspector2:ListFindings", "*", {}, because=because),
            Need("inspector2:ListCoverage", "*", {}, because=because)]


def sns_extra(operation, params, stack):
    key = stack.encrypted_topics().get(params.get("TopicArn")) if operation == "Publish" else None
    if not key:
        return []
    key_arn = stack.attribute(key, "Arn")
    because = "SNS encrypts the message with the topic's key, with the publisher's rights"
    return [Need("kms:GenerateDataKey", key_arn, {}, key=key, because=because),
            Need("kms:Decrypt", key_arn, {}, key=key, because=because)]


def codedeploy_extra(operation, params):
    if operation != "CreateDeployment":
        return []
    application = params.get("applicationName", "")
    config = params.get("deploymentConfigName", "CodeDeployDefault.ECSAllAtOnce")
    because = "CodeDeploy registers and reads the revision a deployment deploys"
    return [
        Need("codedeploy:GetDeploymentConfig", arn("codedeploy", f"deploymentconfig:{config}"), {},
             because="CodeDeploy reads the deployment configuration with the caller's rights"),
        Need("codedeploy:RegisterApplicationRevision", arn("codedeploy", f"application:{application}"), {},
             because=because),
        Need("codedeploy:GetApplicationRevision", arn("codedeploy", f"application:{application}"), {},
             because=because),
    ]


def events_entries(params):
    """PutEvents is authorized entry by entry: on the entry's bus (the default one unless it
    names another), with the entry's source and detail-type as `events:source` and
    `events:detail-type` (EventBridge User Guide, "Using IAM policy conditions")."""
    found = []
    for entry in params.get("Entries", []):
        bus = entry.get("EventBusName") or "default"
        context = {"events:source": entry.get("Source", ""), "events:detail-type": entry.get("DetailType", "")}
        found += own_needs("events", "PutEvents", {"EventBusName": bus}, context)
    return found


def needs(signing_name, operation, params, stack):
    prefix = PREFIXES.get(signing_name, signing_name)
    if (prefix, operation) == ("sts", "GetCallerIdentity"):
        # "No permissions are required to perform this operation" (STS API Reference,
        # GetCallerIdentity): even an explicit deny does not stop it.
        return []
    if prefix == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return dynamodb_transaction(operation, params)
    if (prefix, operation) == ("events", "PutEvents"):
        return events_entries(params)
    tags = getattr(stack, "resource_tags", None)
    found = own_needs(prefix, operation, params, context_of(prefix, operation, params, tags))
    if prefix == "ecs":
        found += ecs_extra(operation, params)
    elif prefix == "application-autoscaling":
        found += autoscaling_extra(operation, params)
    elif prefix == "ecr":
        found += ecr_extra(operation, params)
    elif prefix == "sns":
        found += sns_extra(operation, params, stack)
    elif prefix == "codedeploy":
        found += codedeploy_extra(operation, params)
    return found


def refusals(stack, role, signing_name, operation, params):
    """Every need of the request the role is not allowed, each as a sentence naming the role,
    the operation, the action and the resource; and the needs that are allowed."""
    statements = stack.role_statements(role)
    principal = iam.role_arn(role)
    allowed, refused = [], []
    try:
        found = needs(signing_name, operation, params, stack)
    except ReferenceGap as e:
        return [], [f"{role} ({iam.ROLES.get(role, role)}) called {signing_name} {operation}, which cannot be "
                    f"evaluated: {e}"]
    for need in found:
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
