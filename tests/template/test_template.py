"""The template checks pass on template.yaml and catch each kind of mistake they look for."""

import copy
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_template  # noqa: E402


def granted_statements(policy):
    """The statements of one entry of a function's Policies, the scan gate's included."""
    if "Fn::If" in policy:
        policy = policy["Fn::If"][1]
    return list(policy.get("Statement", [])) if isinstance(policy, dict) else []


class TemplateChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")

    def mutated(self):
        return copy.deepcopy(self.template)

    def test_the_template_passes(self):
        self.assertEqual(check_template.problems(self.template), [])

    def test_every_function_and_trigger_is_checked(self):
        self.assertEqual(
            sorted(check_template.functions(self.template)),
            ["DeployFunction", "RollbackFunction", "SchedulerFunction"],
        )

    def actions(self, function):
        """Every action the function's inline policies allow, whatever their condition."""
        found = set()

        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "Action":
                        found.update(value if isinstance(value, list) else [value])
                    else:
                        walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.template["Resources"][function]["Properties"]["Policies"])
        return found

    def resolved(self, chat):
        import iam
        parameters = {"SlackWorkspaceId": "T0123456789", "SlackChannelId": "C0123456789"} if chat else {}
        physical = {name: {"Ref": name, "Arn": f"arn:aws:x:::{name}", "QueueName": name}
                    for name in self.template["Resources"]}
        return iam.Stack(self.template, parameters, physical)

    def test_the_chat_resources_exist_only_with_a_slack_channel(self):
        chat_resources = {"ChatTopic", "ChatChannelRole", "SlackChannel", "ChatReadAlarmsAndMetrics"}
        conditional = {name for name, r in self.template["Resources"].items() if r.get("Condition") == "HasChat"}
        self.assertEqual(conditional, chat_resources)
        for chat in (False, True):
            stack = self.resolved(chat)
            with self.subTest(chat=chat):
                self.assertEqual(stack.condition("HasChat"), chat)
                env = stack.resolve(self.template["Globals"]["Function"]["Environment"]["Variables"])
                self.assertEqual(env.get("DECKHAND_CHAT_TOPIC_ARN"), "ChatTopic" if chat else None)
        # Either parameter alone is no channel.
        import iam
        self.assertFalse(iam.Stack(self.template, {"SlackWorkspaceId": "T0123456789"}, {}).condition("HasChat"))
        channel = self.template["Resources"]["SlackChannel"]["Properties"]
        self.assertEqual(channel["GuardrailPolicies"], [{"Ref": "ChatReadAlarmsAndMetrics"}])
        self.assertEqual(channel["SnsTopicArns"], [{"Ref": "ChatTopic"}])
        for required in ("ConfigurationName", "IamRoleArn", "SlackChannelId", "SlackWorkspaceId"):
            self.assertIn(required, channel)

    def test_deckhands_own_alarms_reach_the_chat_channel_too(self):
        resources = self.template["Resources"]
        health = [name for name, r in resources.items()
                  if r["Type"] == "AWS::CloudWatch::Alarm" and "AlarmActions" in r["Properties"]]
        self.assertEqual(
            sorted(health),
            ["DeployErrorsAlarm", "FailureQueueDepthAlarm", "RollbackErrorsAlarm", "SchedulerErrorsAlarm"],
        )
        for chat in (False, True):
            stack = self.resolved(chat)
            topics = ["Topic", "ChatTopic"] if chat else ["Topic"]
            for name in health:
                with self.subTest(alarm=name, chat=chat):
                    actions = stack.resolve(resources[name]["Properties"]["AlarmActions"])
                    self.assertEqual([a for a in actions if a is not None], topics)
            with self.subTest(policy=True, chat=chat):
                policy = resources["TopicPolicy"]["Properties"]
                self.assertEqual([t for t in stack.resolve(policy["Topics"]) if t is not None], topics)
                statement = policy["PolicyDocument"]["Statement"][0]
                self.assertEqual(statement["Principal"], {"Service": "cloudwatch.amazonaws.com"})
                self.assertEqual([t for t in stack.resolve(statement["Resource"]) if t is not None], topics)

    def test_the_channel_reads_alarms_and_metrics_and_nothing_else(self):
        resources = self.template["Resources"]
        policy = resources["ChatReadAlarmsAndMetrics"]["Properties"]["PolicyDocument"]
        actions = {a for st in policy["Statement"] for a in st["Action"]}
        self.assertTrue(actions, "something to read")
        for action in actions:
            self.assertTrue(action.startswith("cloudwatch:"), action)
            verb = action.split(":")[1]
            self.assertTrue(verb.startswith(("Describe", "Get", "List")), action)
        self.assertTrue(all(st["Effect"] == "Allow" for st in policy["Statement"]))
        role = resources["ChatChannelRole"]["Properties"]
        self.assertEqual(role["ManagedPolicyArns"], [{"Ref": "ChatReadAlarmsAndMetrics"}])
        self.assertNotIn("Policies", role)
        channel = resources["SlackChannel"]["Properties"]
        self.assertEqual(channel["GuardrailPolicies"], role["ManagedPolicyArns"], "the guardrail is the same scope")
        for wanted in (False, True):
            stack = self.resolved(True)
            stack.parameters["SlackUserRoleRequired"] = "true" if wanted else "false"
            self.assertEqual(stack.resolve(channel["UserRoleRequired"]), wanted)

    def test_the_dashboard_shows_every_metric_and_the_functions_health(self):
        import json
        body = self.template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        widgets = json.loads(self.resolved(False).sub(body, {}))["widgets"]
        graphed = {tuple(m[:2]) for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]}
        spec = ["Deployments", "DeploymentFailures", "Rollbacks", "LeadTimeSeconds", "TimeToRollbackSeconds",
                "ServicesAsleep", "TaskHoursSaved", "Errors"]
        self.assertEqual({name for ns, name in graphed if ns == "deckhand"}, set(spec))
        self.assertIn(("AWS/Lambda", "Errors"), graphed)
        self.assertIn(("AWS/Lambda", "Duration"), graphed)
        self.assertIn(("AWS/SQS", "ApproximateNumberOfMessagesVisible"), graphed)
        for w in widgets:
            props = w["properties"]
            self.assertLessEqual(w["x"] + w["width"], 24, props.get("title"))

    def test_the_scan_gate_can_read_what_it_decides_from(self):
        # A pushed index is read to find its images; with enhanced scanning ECR reads Amazon
        # Inspector's findings with the caller's rights. Only the deploy function decides waits.
        needed = {"ecr:BatchGetImage", "ecr:DescribeImageScanFindings", "inspector2:ListFindings",
                  "inspector2:ListCoverage"}
        self.assertEqual(needed - self.actions("DeployFunction"), set())

    def test_the_deploy_function_hears_enhanced_scanning(self):
        events = self.template["Resources"]["DeployFunction"]["Properties"]["Events"]
        patterns = [e["Properties"]["Pattern"] for e in events.values() if e["Type"] == "EventBridgeRule"]
        inspector = [p for p in patterns if p.get("source") == ["aws.inspector2"]]
        self.assertEqual(len(inspector), 1, patterns)
        self.assertEqual(inspector[0]["detail-type"], ["Inspector2 Scan"])

    def rules(self):
        """(logical id of the rule SAM creates, its pattern) for every EventBridge rule."""
        found = []
        for name, resource in self.template["Resources"].items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            for event, trigger in resource["Properties"].get("Events", {}).items():
                if trigger["Type"] == "EventBridgeRule":
                    found.append((name + event, trigger["Properties"]["Pattern"]))
        return found

    def test_every_rule_matches_only_the_stacks_own_account(self):
        """The stack's own account, and another only for the events the parameters name it for:
        a central registry's ECR and Inspector events, an upstream stack's announcements."""
        import iam

        rules = self.rules()
        self.assertGreaterEqual(len(rules), 8)
        own = iam.ACCOUNT
        alone = iam.Stack(self.template)
        many = iam.Stack(self.template, {"RegistryAccounts": "999999999999",
                                         "PromoteFromAccounts": "111111111111,333333333333"})
        others = {
            "DeployFunctionEcrPush": ["999999999999"],
            "DeployFunctionEcrScan": ["999999999999"],
            "DeployFunctionInspectorScan": ["999999999999"],
            "DeployFunctionKnownGood": ["111111111111", "333333333333"],
        }
        for name, pattern in rules:
            self.assertEqual(alone.resolve(pattern.get("account")), [own], name)
            self.assertEqual(many.resolve(pattern.get("account")), [own] + others.get(name, []), name)
        forward = self.template["Resources"]["ForwardKnownGood"]["Properties"]["EventPattern"]
        self.assertEqual(forward["account"], [{"Ref": "AWS::AccountId"}])

    def test_the_failure_queue_takes_messages_only_from_the_stacks_rules(self):
        policy = self.template["Resources"]["FailureQueuePolicy"]["Properties"]["PolicyDocument"]
        statements = policy["Statement"]
        self.assertEqual(len(statements), 1, "one door, for EventBridge")
        condition = statements[0]["Condition"]
        arns = [arn.get("Fn::If", [None, arn])[1] for arn in condition["ArnEquals"]["aws:SourceArn"]]
        named = {arn["Fn::GetAtt"][0] for arn in arns}
        self.assertEqual(named, {name for name, _ in self.rules()} | {"ForwardKnownGood"})
        self.assertEqual(condition["StringEquals"], {"aws:SourceAccount": {"Ref": "AWS::AccountId"}})

    def test_alarms_invoke_rollback_only_from_the_stacks_account_and_region(self):
        permission = self.template["Resources"]["AlarmInvokePermission"]["Properties"]
        self.assertEqual(permission["SourceAccount"], {"Ref": "AWS::AccountId"})
        self.assertEqual(
            permission["SourceArn"],
            {"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"},
        )

    def test_the_table_refuses_deletion_and_each_function_logs_to_a_group_that_expires(self):
        resources = self.template["Resources"]
        table = resources["Table"]
        self.assertIs(table["Properties"]["DeletionProtectionEnabled"], True)
        self.assertEqual(table["DeletionPolicy"], "Retain")
        retention = self.template["Parameters"]["LogRetentionDays"]
        self.assertEqual(retention["Default"], 90)
        groups = set()
        for function in ("DeployFunction", "RollbackFunction", "SchedulerFunction"):
            group = resources[function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            self.assertEqual(resources[group]["Type"], "AWS::Logs::LogGroup", function)
            self.assertEqual(resources[group]["Properties"]["RetentionInDays"], {"Ref": "LogRetentionDays"})
            groups.add(group)
        self.assertEqual(len(groups), 3, "a group per function")

    def test_roles_are_passed_only_to_ecs_tasks(self):
        """iam:PassRole, wherever it is granted, only with iam:PassedToService = ecs-tasks."""
        found = 0

        def walk(node):
            nonlocal found
            if isinstance(node, dict):
                actions = node.get("Action", [])
                actions = actions if isinstance(actions, list) else [actions]
                if "iam:PassRole" in actions:
                    found += 1
                    self.assertEqual(node.get("Condition"),
                                     {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}, node)
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.template["Resources"])
        self.assertGreaterEqual(found, 2)

    def test_every_check_skipped_says_why(self):
        skipped = 0
        for name, resource in self.template["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                skipped += 1
                self.assertRegex(skip["id"], r"^CKV_AWS_\d+$", name)
                self.assertGreater(len(skip.get("comment", "").split()), 8, f"{name} {skip['id']}: say why")
        self.assertGreater(skipped, 0)

    def test_reconciles_never_overlap(self):
        # A reconcile of a large fleet may run long; the next one waits for it to end.
        scheduler = self.template["Resources"]["SchedulerFunction"]["Properties"]
        self.assertEqual(scheduler.get("ReservedConcurrentExecutions"), 1)
        self.assertGreaterEqual(scheduler["Timeout"], 120, "room for the minute a reconcile keeps at its end")

    def test_the_security_page_names_every_grant_of_every_role(self):
        """docs/security.md's table lists each action a role is granted, on that role's rows."""
        page = (ROOT / "docs" / "security.md").read_text()
        rows = [line.split("|") for line in page.splitlines() if line.startswith("| ") and line.count("|") >= 4]

        def named(*labels):
            cells = [r[2] for r in rows if any(r[1].strip().startswith(label) for label in labels)]
            return {w for cell in cells for w in cell.split("`")[1::2]}

        def granted(statements):
            actions = set()
            for statement in statements:
                if "Fn::If" in statement:
                    statement = statement["Fn::If"][1]
                if "Action" in statement:
                    value = statement["Action"]
                    actions.update(value if isinstance(value, list) else [value])
            return actions

        resources = self.template["Resources"]
        for logical, label in (("DeployFunction", "deploy"), ("RollbackFunction", "rollback"),
                               ("SchedulerFunction", "scheduler")):
            statements = [s for policy in resources[logical]["Properties"]["Policies"]
                          for s in granted_statements(policy)]
            with self.subTest(role=label):
                self.assertEqual(granted(statements) - named(label, "all three"), set())
        operator = resources["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual(granted(operator) - named("operator"), set())
        pipeline = resources["PipelinePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        self.assertEqual(granted(pipeline) - named("pipeline"), set())
        # And nothing is named that no role has.
        everything = set()
        for logical in ("DeployFunction", "RollbackFunction", "SchedulerFunction"):
            everything |= granted([s for policy in resources[logical]["Properties"]["Policies"]
                                   for s in granted_statements(policy)])
        everything |= granted(operator) | granted(pipeline)
        documented = {w for w in named("all three", "deploy", "rollback", "scheduler", "operator", "pipeline")
                      if ":" in w}
        self.assertEqual(documented - everything, set())

    def test_a_wildcard_action_is_caught(self):
        for action in ["*", "ecs:*", ["ecs:DescribeServices", "s3:*"]]:
            t = self.mutated()
            t["Resources"]["DeployFunction"]["Properties"]["Policies"][0]["Statement"][0]["Action"] = action
            found = check_template.wildcard_actions(t)
            self.assertEqual(len(found), 1, (action, found))
            self.assertIn("DeployFunction", found[0])
        # The key policy's own statement for IAM is kms:* by design; another kms:* is not.
        t = self.mutated()
        t["Resources"]["TopicKey"]["Properties"]["KeyPolicy"]["Statement"][1]["Action"] = "kms:*"
        self.assertEqual(len(check_template.wildcard_actions(t)), 1)

    def test_an_arn_in_one_partition_is_caught(self):
        t = self.mutated()
        statement = t["Resources"]["DeployFunction"]["Properties"]["Policies"][0]["Statement"][0]
        statement["Resource"] = "arn:aws:ecs:us-east-1:123456789012:service/prod/*"
        found = check_template.fixed_partitions(t)
        self.assertEqual(len(found), 1, found)
        self.assertIn("DeployFunction", found[0])

    def test_a_key_that_ignores_iam_policies_is_caught(self):
        # Before: the account root was given only administrative actions, so the roles'
        # kms grants had no effect and no notification was ever delivered.
        t = self.mutated()
        statements = t["Resources"]["TopicKey"]["Properties"]["KeyPolicy"]["Statement"]
        statements[0]["Action"] = ["kms:Create*", "kms:Describe*", "kms:Put*", "kms:ScheduleKeyDeletion"]
        found = check_template.kms_problems(t)
        self.assertEqual(
            sorted(f.split(":")[0] for f in found),
            ["DeployFunction", "OperatorPolicy", "RollbackFunction", "SchedulerFunction"],
            found,
        )

    def test_a_publisher_without_the_key_grant_is_caught(self):
        t = self.mutated()
        for statement in check_template.statements(t["Resources"]["RollbackFunction"]["Properties"]["Policies"]):
            if statement.get("Sid") == "EncryptNotifications":
                statement["Action"] = ["kms:Decrypt"]
        self.assertEqual(
            check_template.kms_problems(t),
            ["RollbackFunction: publishes to Topic but its role is not allowed kms:GenerateDataKey on TopicKey"],
        )

    def test_a_missing_failure_destination_is_caught(self):
        t = self.mutated()
        del t["Resources"]["RollbackFunction"]["Properties"]["EventInvokeConfig"]
        self.assertEqual(
            check_template.missing_failure_destinations(t),
            ["RollbackFunction: no on-failure destination (EventInvokeConfig.DestinationConfig.OnFailure)"],
        )
        t = self.mutated()
        del t["Resources"]["SchedulerFunction"]["Properties"]["Events"]["Reconcile"]["Properties"]["DeadLetterConfig"]
        self.assertEqual(
            check_template.missing_failure_destinations(t),
            ["SchedulerFunction.Events.Reconcile: ScheduleV2 trigger without a DeadLetterConfig"],
        )

    def test_a_trigger_pointing_at_a_missing_function_is_caught(self):
        t = self.mutated()
        t["Resources"]["AlarmInvokePermission"]["Properties"]["FunctionName"] = {"Ref": "RollbakFunction"}
        self.assertEqual(
            check_template.triggers_to_missing_functions(t),
            ["AlarmInvokePermission: points at RollbakFunction, which is not a function in this template"],
        )
        t = self.mutated()
        t["Resources"]["ExtraRule"] = {
            "Type": "AWS::Events::Rule",
            "Properties": {"Targets": [{"Id": "x", "Arn": {"Fn::GetAtt": ["Gone", "Arn"]}}]},
        }
        self.assertEqual(len(check_template.triggers_to_missing_functions(t)), 1)


if __name__ == "__main__":
    unittest.main()
