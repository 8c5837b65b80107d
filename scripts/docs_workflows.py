"""Writes the GitHub Actions workflows the docs ask users to paste, as they read after the change,
to a directory, so that `make template` lints them as it lints .github/workflows.

    python scripts/docs_workflows.py OUT_DIR

A workflow in the docs is a ```diff (or ```yaml) block that starts with ` name:`; its `-` lines are
what the change removes, so the file keeps the ` ` and `+` lines without their first column."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def workflows(text: str) -> list[str]:
    found = []
    for kind, body in re.findall(r"```(diff|yaml)\n(.*?)```", text, re.S):
        lines = body.splitlines()
        if kind == "diff":
            if not lines or not lines[0].startswith(" name:"):
                continue
            lines = [line[1:] for line in lines if not line.startswith("-")]
        elif not lines or not lines[0].startswith("name:") or "jobs:" not in body:
            continue
        found.append("\n".join(lines) + "\n")
    return found


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yml"):
        old.unlink()
    count = 0
    for page in PAGES:
        for number, workflow in enumerate(workflows(page.read_text()), start=1):
            (out / f"{page.stem}-{number}.yml").write_text(workflow)
            count += 1
    if count == 0:
        sys.exit("no workflow found in the docs: docs/adopting.md shows one")
    print(f"{count} workflow(s) from the docs in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
