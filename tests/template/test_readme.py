"""The Terraform the README and docs/adopting.md ask users to paste is valid HCL: every ```hcl
block parses, the service's lifecycle block leaves deckhand's fields alone, and the stack deployed
from Terraform names only the template's parameters and outputs."""

import re
import sys
import unittest
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parents[2]


def plain(node):
    """The parsed HCL with its keys unquoted (python-hcl2 keeps block labels in quotes)."""
    if isinstance(node, dict):
        return {key.strip('"'): plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [plain(value) for value in node]
    return node


def hcl_blocks(page="README.md"):
    text = (ROOT / page).read_text()
    return re.findall(r"```hcl\n(.*?)```", text, re.S)


class ReadmeTerraform(unittest.TestCase):
    def test_every_hcl_block_parses(self):
        blocks = hcl_blocks()
        self.assertGreaterEqual(len(blocks), 3)
        for block in blocks + hcl_blocks("docs/adopting.md"):
            with self.subTest(block=block[:60]):
                hcl2.loads(block)

    def test_the_stack_from_terraform_names_the_templates_parameters_and_outputs(self):
        sys.path.insert(0, str(ROOT / "scripts"))
        import check_template

        template = check_template.load(ROOT / "template.yaml")
        text = "\n".join(hcl_blocks("docs/adopting.md"))
        stacks = [
            resource["aws_cloudformation_stack"]
            for resource in plain(hcl2.loads(text)).get("resource", [])
            if "aws_cloudformation_stack" in resource
        ]
        self.assertEqual(len(stacks), 1, "one stack")
        stack = next(iter(stacks[0].values()))
        capabilities = [c.strip('"') for c in stack["capabilities"]]
        self.assertIn("CAPABILITY_AUTO_EXPAND", capabilities, "the SAM transform")
        self.assertIn("CAPABILITY_IAM", capabilities)
        parameters = stack["parameters"]
        parameters = parameters[0] if isinstance(parameters, list) else parameters
        for name in parameters:
            self.assertIn(name.strip('"'), template["Parameters"], name)
        outputs = set(re.findall(r'outputs\["(\w+)"\]', text))
        self.assertEqual(outputs, {"PipelinePolicyArn", "OperatorPolicyArn", "TableName"})
        for name in outputs:
            self.assertIn(name, template["Outputs"], name)

    def test_the_service_ignores_what_deckhand_changes(self):
        services = [
            resource["aws_ecs_service"]
            for block in hcl_blocks()
            for resource in plain(hcl2.loads(block)).get("resource", [])
            if "aws_ecs_service" in resource
        ]
        lifecycles = [
            service[name].get("lifecycle", [{}])[0]
            for service in services
            for name in service
            if "lifecycle" in service[name]
        ]
        self.assertTrue(lifecycles, "no aws_ecs_service with a lifecycle block")
        ignored = str(lifecycles[0].get("ignore_changes"))
        for field in ("task_definition", "desired_count"):
            self.assertIn(field, ignored)


if __name__ == "__main__":
    sys.exit(unittest.main())
