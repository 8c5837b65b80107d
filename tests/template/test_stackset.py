"""What `make stackset` produces: template.yaml with the SAM transform expanded (a StackSet with
service-managed permissions takes no macro), its functions' code named by parameters, nothing of
one account or region fixed, and valid CloudFormation as cfn-lint reads it."""

import copy
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import check_template  # noqa: E402
import stackset  # noqa: E402


class StackSet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.template = check_template.load(ROOT / "template.yaml")
        cls.out = stackset.for_stackset(cls.template)

    def test_no_transform_is_left(self):
        self.assertNotIn("Transform", self.out)
        kinds = {r["Type"] for r in self.out["Resources"].values()}
        self.assertEqual({k for k in kinds if k.startswith("AWS::Serverless::")}, set())
        self.assertIn("AWS::Lambda::Function", kinds)
        self.assertIn("AWS::Scheduler::Schedule", kinds)

    def test_every_function_runs_the_code_the_parameters_name(self):
        for logical, name in stackset.FUNCTIONS.items():
            code = self.out["Resources"][logical]["Properties"]["Code"]
            self.assertEqual(code["S3Key"], {"Fn::Sub": f"${{ArtifactPrefix}}/{name}.zip"})
            self.assertEqual(code["S3Bucket"]["Fn::If"][2], {"Ref": "ArtifactBucket"})
        for name in ("ArtifactBucket", "ArtifactBucketPerRegion", "ArtifactPrefix"):
            self.assertIn(name, self.out["Parameters"])

    def test_what_differs_between_accounts_is_a_parameter(self):
        self.assertEqual(stackset.fixed_places(self.out), [])
        for name in ("ManagedClusters", "RegistryAccounts", "PromoteFromAccounts", "PromoteToAccounts",
                     "ChangeCalendar", "EnvironmentName", "SlackWorkspaceId"):
            self.assertIn(name, self.out["Parameters"], name)

    def test_an_account_or_a_region_written_into_the_template_is_found(self):
        for fixed in ("123456789012", "eu-west-1", "arn:aws:sns:us-gov-west-1:000000000000:x"):
            t = copy.deepcopy(self.out)
            t["Resources"]["Topic"]["Properties"]["DisplayName"] = fixed
            self.assertEqual(len(stackset.fixed_places(t)), 1, fixed)

    def test_cfn_lint_takes_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "deckhand-stackset.json"
            path.write_text(json.dumps(self.out))
            # cfn-lint beside the interpreter: the venv's.
            cfn_lint = Path(sys.executable).parent / "cfn-lint"
            linted = subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True)
            self.assertEqual(linted.returncode, 0, linted.stdout + linted.stderr)


if __name__ == "__main__":
    unittest.main()
