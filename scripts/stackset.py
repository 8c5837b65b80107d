"""template.yaml as a CloudFormation StackSet takes it, for a whole organisation.

A StackSet with service-managed permissions (deployed by AWS Organizations to every account of an
organisational unit) provisions with a default execution role that cannot run "nested stacks,
transforms, or macros" (CloudFormation User Guide, "Configure a custom execution role template
for StackSets"), and `Transform: AWS::Serverless-2016-10-31` is a transform. So it is expanded here,
with AWS SAM's own translator (the `aws-sam-translator` package that CloudFormation's transform
runs), and the functions' code is named by parameters instead of a local path: a bucket that
every member account can read (Lambda takes code only from a bucket of the function's own region:
with `ArtifactBucketPerRegion` = true the bucket is `ArtifactBucket-REGION` in each region), and a
key prefix under which `make package`'s three zips were uploaded.

    python scripts/stackset.py OUT_DIR [ZIP_DIR]

writes OUT_DIR/deckhand-stackset.json, and copies the three bootstrap zips from ZIP_DIR (default
target/lambda) as deploy.zip, rollback.zip and scheduler.zip beside it, ready to upload. The
template is over the 51,200 bytes `CreateStackSet` takes as `TemplateBody`: it goes up as a
`TemplateURL` (1 MB at most).
"""

import json
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = {"DeployFunction": "deploy", "RollbackFunction": "rollback", "SchedulerFunction": "scheduler"}
# Nothing of one account or region may be fixed in what every account deploys.
ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")
REGION = re.compile(r"\b(?:us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-(?:north|south|east|west|central|northeast|"
                    r"southeast|northwest|southwest|gov-east|gov-west)-\d\b")


def expand(template):
    """The template with the SAM transform applied by AWS SAM's translator."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

    document = json.loads(json.dumps(template))
    # The translator checks that code is in S3; the code is named by parameters below.
    document["Globals"]["Function"]["CodeUri"] = "s3://deckhand-artifacts/deckhand.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(document, {}, NoManagedPolicies())


def for_stackset(template):
    """The expanded template, its functions' code named by the artifact parameters."""
    out = expand(template)
    out["Parameters"]["ArtifactBucket"] = {
        "Type": "String",
        "Description": "S3 bucket holding the functions' zips, readable by every member account",
    }
    out["Parameters"]["ArtifactBucketPerRegion"] = {
        "Type": "String",
        "Default": "false",
        "AllowedValues": ["true", "false"],
        "Description": "true: each region reads its own bucket, named ArtifactBucket-REGION",
    }
    out.setdefault("Conditions", {})["ArtifactBucketPerRegion"] = {
        "Fn::Equals": [{"Ref": "ArtifactBucketPerRegion"}, "true"]}
    out["Parameters"]["ArtifactPrefix"] = {
        "Type": "String",
        "Default": "deckhand",
        "Description": "key prefix of deploy.zip, rollback.zip and scheduler.zip in the bucket",
    }
    for logical, name in FUNCTIONS.items():
        function = out["Resources"][logical]
        assert function["Type"] == "AWS::Lambda::Function", logical
        function["Properties"]["Code"] = {
            "S3Bucket": {"Fn::If": ["ArtifactBucketPerRegion", {"Fn::Sub": "${ArtifactBucket}-${AWS::Region}"},
                                    {"Ref": "ArtifactBucket"}]},
            "S3Key": {"Fn::Sub": f"${{ArtifactPrefix}}/{name}.zip"},
        }
    return out


def fixed_places(template):
    """Every string in the resources and outputs that names an account ID or a region outright."""
    from check_template import strings

    found = []
    for part in ("Resources", "Outputs"):
        for where, text in strings(template.get(part, {}), part):
            if ACCOUNT_ID.search(text) or REGION.search(text):
                found.append(f"{where}: {text!r}")
    return found


def main(argv):
    sys.path.insert(0, str(ROOT / "scripts"))
    import check_template

    out_dir = Path(argv[1]) if len(argv) > 1 else ROOT / "target" / "stackset"
    zips = Path(argv[2]) if len(argv) > 2 else ROOT / "target" / "lambda"
    out_dir.mkdir(parents=True, exist_ok=True)
    template = for_stackset(check_template.load(ROOT / "template.yaml"))
    fixed = fixed_places(template)
    if fixed:
        print("an account or region is fixed in the template:\n" + "\n".join(fixed), file=sys.stderr)
        return 1
    path = out_dir / "deckhand-stackset.json"
    path.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n")
    copied = []
    for name in FUNCTIONS.values():
        built = zips / name / "bootstrap.zip"
        if built.exists():
            shutil.copyfile(built, out_dir / f"{name}.zip")
            copied.append(f"{name}.zip")
    print(f"{path}: {path.stat().st_size:,} bytes, {len(template['Resources'])} resources, no transform, "
          f"no account or region fixed")
    if copied:
        print(f"{out_dir}: {', '.join(copied)} (upload them under ArtifactPrefix in ArtifactBucket)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
