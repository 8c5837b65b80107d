"""The docs a user follows hold: every relative link of the README and docs/ leads to a page and a
heading that exist; the Terraform they ask users to paste is valid HCL (every ```hcl block parses,
the service's lifecycle block leaves deckhand's fields alone, and the stack deployed from Terraform
names only the template's parameters and outputs); the README stays a page read to the end."""

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


PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]


def hcl_blocks(page="README.md"):
    text = (ROOT / page).read_text()
    return re.findall(r"```hcl\n(.*?)```", text, re.S)


def prose(text):
    """The page without its code blocks, where a `](` is code, not a link."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def anchors(text):
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    return {
        re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6} (.+)$", prose(text), re.M)
    }


class DocsLinks(unittest.TestCase):
    def test_every_relative_link_leads_to_a_page_and_heading_that_exist(self):
        checked = 0
        for page in PAGES:
            text = (ROOT / page).read_text()
            for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, anchor = target.partition("#")
                file = (ROOT / page).parent / path if path else ROOT / page
                with self.subTest(page=page, link=target):
                    self.assertTrue(file.exists(), f"{page} links to {target}, which does not exist")
                    if anchor and file.suffix == ".md":
                        self.assertIn(anchor, anchors(file.read_text()))
                checked += 1
        self.assertGreater(checked, 30)

    def test_the_readme_is_short_and_links_every_page_of_the_docs(self):
        readme = (ROOT / "README.md").read_text()
        self.assertLess(len(readme.splitlines()), 300)
        for page in PAGES[1:]:
            with self.subTest(page=page):
                self.assertIn(f"]({page})", readme)


class ReadmeTerraform(unittest.TestCase):
    def test_every_hcl_block_parses(self):
        blocks = [block for page in PAGES for block in hcl_blocks(page)]
        self.assertGreaterEqual(len(blocks), 8)
        for block in blocks:
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
            for page in PAGES
            for block in hcl_blocks(page)
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
