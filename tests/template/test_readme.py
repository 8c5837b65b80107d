"""The Terraform the README asks users to paste is valid HCL: every ```hcl block parses, and the
service's lifecycle block leaves deckhand's fields alone."""

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


def hcl_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```hcl\n(.*?)```", text, re.S)


class ReadmeTerraform(unittest.TestCase):
    def test_every_hcl_block_parses(self):
        blocks = hcl_blocks()
        self.assertGreaterEqual(len(blocks), 3)
        for block in blocks:
            with self.subTest(block=block[:60]):
                hcl2.loads(block)

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
