"""The IAM evaluation the tests' emulator applies: on template.yaml as it is, on mutations of
it that AWS would refuse, and through the emulator itself."""

import copy
import json
import socket
import sys
import unittest
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_template  # noqa: E402
import iam  # noqa: E402
import iam_actions  # noqa: E402

TABLE = "deckhand-1"
TOPIC = f"arn:aws:sns:{iam.REGION}:{iam.ACCOUNT}:deckhand-1"
CHAT_TOPIC = f"arn:aws:sns:{iam.REGION}:{iam.ACCOUNT}:deckhand-chat-1"
KEY = f"arn:aws:kms:{iam.REGION}:{iam.ACCOUNT}:key/00000000-0000-0000-0000-000000000001"
PHYSICAL = {
    "Table": {"Ref": TABLE, "Arn": f"arn:aws:dynamodb:{iam.REGION}:{iam.ACCOUNT}:table/{TABLE}"},
    "Topic": {"Ref": TOPIC, "TopicName": "deckhand-1"},
    "ChatTopic": {"Ref": CHAT_TOPIC, "TopicName": "deckhand-chat-1"},
    "TopicKey": {"Ref": KEY.rsplit("/", 1)[-1], "Arn": KEY},
    "FailureQueue": {"Ref": f"https://sqs.{iam.REGION}.amazonaws.com/{iam.ACCOUNT}/deckhand-failures-1",
                     "Arn": f"arn:aws:sqs:{iam.REGION}:{iam.ACCOUNT}:deckhand-failures-1",
                     "QueueName": "deckhand-failures-1"},
    **{f"{kind}Function": {"Ref": f"deckhand-1-{kind.lower()}",
                           "Arn": f"arn:aws:lambda:{iam.REGION}:{iam.ACCOUNT}:function:deckhand-1-{kind.lower()}"}
       for kind in ("Deploy", "Rollback", "Scheduler")},
}
SERVICE = {"cluster": "prod", "service": "web"}


class Evaluation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")

    def stack(self, template=None, gate=False, chat=False):
        parameters = {"ScanGateSeverity": "HIGH"} if gate else {}
        if chat:
            parameters.update(SlackWorkspaceId="T0123456789", SlackChannelId="C0123456789")
        return iam.Stack(template or self.template, parameters, PHYSICAL)

    def refused(self, role, signing_name, operation, params, **kwargs):
        return iam_actions.refusals(self.stack(**kwargs), role, signing_name, operation, params)[1]

    # The roles that act on services and notify; the pipeline only reads the table.
    PUBLISHERS = [role for role in iam.ROLES if role != "pipeline"]

    def test_every_role_may_make_its_own_calls(self):
        for role in self.PUBLISHERS:
            with self.subTest(role=role):
                self.assertEqual(self.refused(role, "ecs", "DescribeServices", {"cluster": "prod", "services": ["web"]}), [])
                self.assertEqual(self.refused(role, "sns", "Publish", {"TopicArn": TOPIC}), [])
                self.assertEqual(self.refused(role, "dynamodb", "Query", {"TableName": TABLE}), [])

    def test_the_key_policy_of_before_denies_every_publish(self):
        # The policy as it was: the account root had only administrative actions on the key.
        t = copy.deepcopy(self.template)
        statements = t["Resources"]["TopicKey"]["Properties"]["KeyPolicy"]["Statement"]
        statements[0]["Action"] = ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:Put*", "kms:Update*"]
        for role in self.PUBLISHERS:
            refused = self.refused(role, "sns", "Publish", {"TopicArn": TOPIC}, template=t)
            self.assertEqual(len(refused), 2, refused)
            self.assertIn("kms:GenerateDataKey", refused[0])
            self.assertIn("neither names the role nor lets IAM policies grant", refused[0])

    def test_the_pipeline_reads_the_table_and_nothing_else(self):
        for operation in ("GetItem", "Query"):
            self.assertEqual(self.refused("pipeline", "dynamodb", operation, {"TableName": TABLE}), [])
        # A wait on a side of a pair reads the service's tags.
        self.assertEqual(self.refused("pipeline", "ecs", "DescribeServices", {"cluster": "prod", "services": ["web"]}), [])
        for signing_name, operation, params in [
            ("dynamodb", "UpdateItem", {"TableName": TABLE}),
            ("ecs", "UpdateService", {"cluster": "prod", "service": "web"}),
            ("sns", "Publish", {"TopicArn": TOPIC}),
        ]:
            self.assertNotEqual(self.refused("pipeline", signing_name, operation, params), [], operation)

    def test_the_pipeline_reads_its_own_stacks_outputs_and_no_other_stack(self):
        self.assertEqual(self.refused("pipeline", "cloudformation", "DescribeStacks", {"StackName": iam.STACK_NAME}), [])
        for other in ({"StackName": "payments"}, {}):
            with self.subTest(params=other):
                self.assertNotEqual(self.refused("pipeline", "cloudformation", "DescribeStacks", other), [])
        for role in self.PUBLISHERS:
            with self.subTest(role=role):
                self.assertNotEqual(self.refused(role, "cloudformation", "DescribeStacks", {"StackName": iam.STACK_NAME}), [])

    def test_a_key_policy_naming_the_role_is_enough_without_an_iam_grant(self):
        t = copy.deepcopy(self.template)
        t["Resources"]["TopicKey"]["Properties"]["KeyPolicy"]["Statement"] = [{
            "Effect": "Allow", "Principal": {"AWS": iam.role_arn("deploy")},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": "*",
        }]
        self.assertEqual(self.refused("deploy", "sns", "Publish", {"TopicArn": TOPIC}, template=t), [])
        self.assertEqual(len(self.refused("rollback", "sns", "Publish", {"TopicArn": TOPIC}, template=t)), 2)

    def test_transactions_are_authorized_item_by_item(self):
        put = {"TransactItems": [{"Put": {"TableName": TABLE}}, {"Update": {"TableName": TABLE}}]}
        self.assertEqual(self.refused("deploy", "dynamodb", "TransactWriteItems", put), [])
        check = {"TransactItems": [{"ConditionCheck": {"TableName": TABLE}}]}
        # The deploy function checks a processed mark inside its lock's transaction; the
        # rollback function never does.
        self.assertEqual(self.refused("deploy", "dynamodb", "TransactWriteItems", check), [])
        refused = self.refused("rollback", "dynamodb", "TransactWriteItems", check)
        self.assertEqual(len(refused), 1)
        self.assertIn("dynamodb:ConditionCheckItem", refused[0])

    def test_only_the_scheduler_announces_and_only_deckhands_events_on_its_own_bus(self):
        def put(source="deckhand", detail_type="Deckhand Known-Good", bus=None):
            entry = {"Source": source, "DetailType": detail_type, "Detail": "{}"}
            if bus:
                entry["EventBusName"] = bus
            return {"Entries": [entry]}

        self.assertEqual(self.refused("scheduler", "events", "PutEvents", put()), [])
        self.assertEqual(self.refused("scheduler", "events", "PutEvents", put(bus="default")), [])
        # Another source or detail-type: what other rules of the account react to.
        self.assertEqual(len(self.refused("scheduler", "events", "PutEvents", put(source="aws.ecr"))), 1)
        self.assertEqual(len(self.refused("scheduler", "events", "PutEvents", put(detail_type="ECR Image Action"))), 1)
        # Another bus, here or in a downstream account: forwarding is the rule's, not the role's.
        other = "arn:aws:events:us-east-1:111111111111:event-bus/default"
        self.assertEqual(len(self.refused("scheduler", "events", "PutEvents", put(bus=other))), 1)
        self.assertEqual(len(self.refused("scheduler", "events", "PutEvents", put(bus="audit"))), 1)
        # Each entry is authorized: one forged among good ones is refused.
        two = {"Entries": put()["Entries"] + put(source="aws.ecs")["Entries"]}
        self.assertEqual(len(self.refused("scheduler", "events", "PutEvents", two)), 1)
        for role in ("deploy", "rollback", "operator"):
            self.assertEqual(len(self.refused(role, "events", "PutEvents", put())), 1, role)

    def test_the_table_grant_does_not_reach_its_indexes_or_other_tables(self):
        self.assertEqual(len(self.refused("deploy", "dynamodb", "Query", {"TableName": TABLE, "IndexName": "by"})), 1)
        self.assertEqual(len(self.refused("deploy", "dynamodb", "GetItem", {"TableName": "another"})), 1)

    def test_registration_needs_its_conditions(self):
        untagged = {"family": "web", "containerDefinitions": []}
        self.assertEqual(self.refused("deploy", "ecs", "RegisterTaskDefinition", untagged), [])
        tagged = {**untagged, "tags": [{"key": "deckhand:event", "value": "e"}],
                  "taskRoleArn": f"arn:aws:iam::{iam.ACCOUNT}:role/web"}
        self.assertEqual(self.refused("deploy", "ecs", "RegisterTaskDefinition", tagged), [])
        # The rollback role registers a pinned clone of a target that names tags, on the same
        # conditions; without them it may not.
        self.assertEqual(self.refused("rollback", "ecs", "RegisterTaskDefinition", tagged), [])
        t = copy.deepcopy(self.template)
        statements = t["Resources"]["RollbackFunction"]["Properties"]["Policies"][0]["Statement"]
        statements[:] = [s for s in statements if s.get("Sid") != "PassPinnedTargetRolesToEcsTasksOnly"]
        refused = self.refused("rollback", "ecs", "RegisterTaskDefinition", tagged, template=t)
        self.assertEqual(
            [r.split(" which needs ")[1].split(" on ")[0] for r in refused],
            ["iam:PassRole"],
        )

    def test_autoscaling_checks_the_callers_rights_on_the_service(self):
        ecs = {"ServiceNamespace": "ecs", "ResourceId": "service/prod/web",
               "ScalableDimension": "ecs:service:DesiredCount"}
        self.assertEqual(self.refused("scheduler", "application-autoscaling", "RegisterScalableTarget", ecs), [])
        t = copy.deepcopy(self.template)
        statements = t["Resources"]["SchedulerFunction"]["Properties"]["Policies"][0]["Statement"]
        statements[:] = [s for s in statements if s.get("Sid") != "AutoscalingChecksAlarms"]
        refused = self.refused("scheduler", "application-autoscaling", "RegisterScalableTarget", ecs, template=t)
        self.assertEqual(len(refused), 1)
        self.assertIn("cloudwatch:DescribeAlarms", refused[0])
        self.assertIn("Application Auto Scaling checks", refused[0])
        dynamodb = {**ecs, "ServiceNamespace": "dynamodb", "ResourceId": "table/t"}
        self.assertEqual(len(self.refused("scheduler", "application-autoscaling", "RegisterScalableTarget", dynamodb)), 1)

    def test_the_chat_topic_takes_every_publishers_messages_only_with_a_channel(self):
        for role in self.PUBLISHERS:
            with self.subTest(role=role):
                self.assertEqual(self.refused(role, "sns", "Publish", {"TopicArn": CHAT_TOPIC}, chat=True), [])
                refused = self.refused(role, "sns", "Publish", {"TopicArn": CHAT_TOPIC})
                self.assertEqual(len(refused), 1, refused)
        self.assertNotEqual(self.refused("pipeline", "sns", "Publish", {"TopicArn": CHAT_TOPIC}, chat=True), [])

    def test_only_the_deploy_function_reads_scan_findings_and_registers_revisions(self):
        # The deploy function's own round decides the scan gate's waits and deploys held pushes:
        # the scheduler reads no findings and registers nothing, gate or not.
        findings = {"repositoryName": "web", "imageId": {"imageDigest": "sha256:0"}}
        self.assertEqual(self.refused("deploy", "ecr", "DescribeImageScanFindings", findings), [])
        for gate in (False, True):
            refused = self.refused("scheduler", "ecr", "DescribeImageScanFindings", findings, gate=gate)
            self.assertEqual(len(refused), 3, refused)
        register = {"family": "web", "containerDefinitions": []}
        self.assertEqual(self.refused("deploy", "ecs", "RegisterTaskDefinition", register), [])
        self.assertEqual(len(self.refused("scheduler", "ecs", "RegisterTaskDefinition", register)), 1)

    def test_the_operator_redrives_the_failure_queue_to_the_functions_only(self):
        queue = {"QueueUrl": PHYSICAL["FailureQueue"]["Ref"]}
        for operation in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility"):
            self.assertEqual(self.refused("operator", "sqs", operation, queue), [])
            self.assertEqual(len(self.refused("deploy", "sqs", operation, queue)), 1)
        other = {"QueueUrl": f"https://sqs.{iam.REGION}.amazonaws.com/{iam.ACCOUNT}/another"}
        self.assertEqual(len(self.refused("operator", "sqs", "ReceiveMessage", other)), 1)
        deploy = PHYSICAL["DeployFunction"]["Arn"]
        for name in (deploy, f"{deploy}:$LATEST", "deckhand-1-scheduler"):
            self.assertEqual(self.refused("operator", "lambda", "Invoke", {"FunctionName": name}), [], name)
        self.assertEqual(
            self.refused("operator", "lambda", "Invoke", {"FunctionName": "deckhand-1-rollback", "Qualifier": "$LATEST"}),
            [])
        refused = self.refused("operator", "lambda", "Invoke", {"FunctionName": "someone-elses"})
        self.assertEqual(len(refused), 1)
        self.assertIn(f"lambda:InvokeFunction on arn:aws:lambda:{iam.REGION}:{iam.ACCOUNT}:function:someone-elses",
                      refused[0])
        # Without the qualified grant, Lambda's records (function:NAME:$LATEST) cannot be redriven.
        t = copy.deepcopy(self.template)
        for statement in t["Resources"]["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]:
            if statement.get("Sid") == "RedriveToFunctions":
                statement["Resource"] = [r for r in statement["Resource"] if "Fn::Sub" not in r]
        self.assertEqual(len(self.refused("operator", "lambda", "Invoke", {"FunctionName": f"{deploy}:$LATEST"},
                                          template=t)), 1)

    def test_an_operation_is_authorized_on_the_resources_the_reference_requires(self):
        # ecs:DeleteService requires the service (Service Authorization Reference).
        refused = self.refused("deploy", "ecs", "DeleteService", SERVICE)
        self.assertEqual(len(refused), 1)
        self.assertIn(f"called ecs DeleteService, which needs ecs:DeleteService on "
                      f"arn:aws:ecs:{iam.REGION}:{iam.ACCOUNT}:service/prod/web", refused[0])

    def test_iam_semantics(self):
        allow = {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"}
        deny = {"Effect": "Deny", "Action": "ecs:describeservices", "Resource": "arn:aws:ecs:*:*:service/prod/*"}
        self.assertEqual(iam.decide([allow], "ecs:DescribeServices", "x"), "allow")
        self.assertEqual(iam.decide([allow, deny], "ecs:DescribeServices", "arn:aws:ecs:r:a:service/prod/web"), "deny")
        self.assertEqual(iam.decide([allow], "ecs:UpdateService", "x"), None)
        not_action = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
        self.assertEqual(iam.decide([not_action], "iam:PassRole", "x"), None)
        self.assertEqual(iam.decide([not_action], "ecs:UpdateService", "x"), "allow")
        conditioned = {**allow, "Condition": {"StringEquals": {"k": "v"}}}
        self.assertEqual(iam.decide([conditioned], "ecs:DescribeServices", "x", {"k": "v"}), "allow")
        self.assertEqual(iam.decide([conditioned], "ecs:DescribeServices", "x", {}), None)
        unknown = {**allow, "Condition": {"NumericLessThan": {"k": "3"}}}
        self.assertEqual(iam.decide([unknown], "ecs:DescribeServices", "x", {"k": "1"}), None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThroughTheEmulator(unittest.TestCase):
    """A call signed as a role reaches moto only if the template allows it, and is refused as
    AWS refuses it otherwise; the refusal is listed for the stack."""

    @classmethod
    def setUpClass(cls):
        import emulator

        cls.port = free_port()
        cls.emulator = emulator.Emulator(cls.port).start()
        cls.url = f"http://127.0.0.1:{cls.port}"
        cls.post("/_deckhand/iam/stacks/7", PHYSICAL, {})

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    @classmethod
    def post(cls, path, body, headers):
        request = urllib.request.Request(cls.url + path, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ecs(self, key, operation, body):
        return self.post("/", body, {
            "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20261129/us-east-1/ecs/aws4_request, "
                             "SignedHeaders=host, Signature=0",
        })

    def test_allowed_calls_reach_moto_and_refused_ones_never_do(self):
        status, _ = self.ecs("deckhand.rollback.7", "ListClusters", {})
        self.assertEqual(status, 400)
        status, answer = self.ecs("deckhand.deploy.7", "CreateCluster", {"clusterName": "c7"})
        self.assertEqual(status, 400)
        self.assertEqual(answer["__type"], "AccessDeniedException")
        self.assertIn("deploy (DeployFunction) called ecs CreateCluster, which needs ecs:CreateCluster on *",
                      answer["message"])
        status, answer = self.ecs("testing", "ListClusters", {})
        self.assertEqual((status, answer["clusterArns"]), (200, []), "the cluster was never created")
        # Allowed: moto answers it (there is no such cluster).
        status, answer = self.ecs("deckhand.deploy.7", "DescribeServices", {"cluster": "c", "services": ["w"]})
        self.assertEqual(answer["__type"], "ClusterNotFoundException", answer)
        with urllib.request.urlopen(self.url + "/_deckhand/iam/refused/7") as answer:
            refused = json.loads(answer.read())
        self.assertEqual(len(refused), 2, refused)
        self.assertIn("rollback (RollbackFunction) called ecs ListClusters", refused[0])


if __name__ == "__main__":
    sys.exit(unittest.main())
