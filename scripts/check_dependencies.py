"""The AWS SDK crates resolve to one version of each runtime crate.

Two versions of `aws-smithy-http` (or of any `aws-smithy-*`, `aws-runtime`, `aws-types`,
`aws-sigv4`, `aws-credential-types`) mean two copies of the SDK's runtime in every binary:
larger Lambdas, longer builds, and two retry and timeout policies where deckhand sets one. It
happens when one SDK crate is locked at an older release than the others.

`http` 0.2 and `http-body` 0.4 have one allowed way in, and only that: `aws-sdk-cloudwatch` turns
on `aws-smithy-types`' `http-body-0-4-x` (the request compression of PutMetricData) in every
release, whatever deckhand asks. Any other crate that brings them is a failure.

Usage: check_dependencies.py (runs `cargo tree --locked`; exits non-zero with the duplicates).
"""

import re
import subprocess
import sys

RUNTIME = re.compile(r"^(aws-smithy-[a-z0-9-]+|aws-runtime|aws-types|aws-sigv4|aws-credential-types|aws-config|"
                     r"aws-sdk-[a-z0-9]+|hyper|hyper-util|h2|rustls|http-body-util) v")
# The one way in for http 0.2 and http-body 0.4 (see the module doc).
ALLOWED_LEGACY = {"http v0.2": {"aws-smithy-types", "http-body"}, "http-body v0.4": {"aws-smithy-types"}}


def cargo_tree(*args):
    out = subprocess.run(["cargo", "tree", "--locked", "--workspace", "-e", "normal", *args],
                         check=True, capture_output=True, text=True)
    return out.stdout


def duplicated(tree):
    """The crates `cargo tree -d` lists at its top level: `name vX.Y.Z`."""
    return sorted({line.split(" (")[0] for line in tree.splitlines() if line and line[0].isalnum()})


def problems():
    found = []
    dups = duplicated(cargo_tree("-d"))
    for crate in dups:
        if RUNTIME.match(crate):
            found.append(f"{crate}: two versions of an SDK runtime crate (update the SDK crate locked at an "
                         "older release: cargo update -p aws-sdk-NAME)")
    for legacy, allowed in ALLOWED_LEGACY.items():
        for crate in (c for c in dups if c.startswith(legacy)):
            spec = crate.replace(" v", "@")
            parents = {line.split("── ", 1)[1].split(" v")[0]
                       for line in cargo_tree("-i", spec, "--depth", "1").splitlines() if "── " in line}
            extra = parents - allowed
            if extra:
                found.append(f"{crate} comes in through {', '.join(sorted(extra))}, not only through "
                             f"{', '.join(sorted(allowed))}")
    return dups, found


def main():
    dups, found = problems()
    for problem in found:
        print(f"dependencies: {problem}", file=sys.stderr)
    if found:
        return 1
    legacy = [d for d in dups if d.startswith(("http v0.2", "http-body v0.4"))]
    print(f"dependencies: one version of each AWS SDK runtime crate; {', '.join(legacy) or 'no legacy http'} "
          "only through aws-sdk-cloudwatch's request compression")
    return 0


if __name__ == "__main__":
    sys.exit(main())
