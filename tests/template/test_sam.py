"""template.yaml as CloudFormation receives it: transformed by AWS SAM's own translator
(aws-sam-translator, the library `sam deploy` and CloudFormation's Serverless transform use).

What the template names of resources SAM generates (the rules' ARNs in the failure queue's policy)
must exist after the transform, and what SAM generates must carry what deckhand relies on: every
permission to invoke a function names its source's ARN, every rule matches the stack's account,
every function logs to its own group.
"""

import copy
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_template  # noqa: E402
from stackset import expand as transformed  # noqa: E402


def get_atts(node):
    if isinstance(node, dict):
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            yield target[0] if isinstance(target, list) else target.split(".")[0]
        for value in node.values():
            yield from get_atts(value)
    elif isinstance(node, list):
        for value in node:
            yield from get_atts(value)


def without_source(resources):
    """The permissions to invoke a function that any resource of its principal could use."""
    return sorted(name for name, r in resources.items()
                  if r["Type"] == "AWS::Lambda::Permission" and "SourceArn" not in r["Properties"])


class Transformed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")
        cls.out = transformed(cls.template)
        cls.resources = cls.out["Resources"]

    def of_type(self, kind):
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def test_every_resource_the_template_names_exists_after_the_transform(self):
        named = set(get_atts(self.resources)) | set(get_atts(self.out.get("Outputs", {})))
        self.assertEqual(named - set(self.resources), set())
        queue = self.resources["FailureQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
        arns = [arn.get("Fn::If", [None, arn])[1] for arn in queue["Condition"]["ArnEquals"]["aws:SourceArn"]]
        rules = {arn["Fn::GetAtt"][0] for arn in arns}
        self.assertEqual(rules, set(self.of_type("AWS::Events::Rule")))

    def test_every_permission_to_invoke_names_its_source(self):
        self.assertGreaterEqual(len(self.of_type("AWS::Lambda::Permission")), 9)
        self.assertEqual(without_source(self.resources), [])

    def test_every_rule_matches_the_stacks_account(self):
        import iam

        stack = iam.Stack(self.out)
        for name, rule in self.of_type("AWS::Events::Rule").items():
            self.assertEqual(stack.resolve(rule["Properties"]["EventPattern"]["account"]), [iam.ACCOUNT], name)

    def test_every_function_logs_to_its_own_group_as_json(self):
        groups = set()
        for name, function in self.of_type("AWS::Lambda::Function").items():
            logging = function["Properties"]["LoggingConfig"]
            self.assertEqual(logging["LogFormat"], "JSON", name)
            groups.add(logging["LogGroup"]["Ref"])
        self.assertEqual(groups, {"DeployLogGroup", "RollbackLogGroup", "SchedulerLogGroup"})

    def test_a_permission_without_its_source_is_caught(self):
        template = copy.deepcopy(self.template)
        del template["Resources"]["AlarmInvokePermission"]["Properties"]["SourceArn"]
        self.assertEqual(without_source(transformed(template)["Resources"]), ["AlarmInvokePermission"])


if __name__ == "__main__":
    unittest.main()
