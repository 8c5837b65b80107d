"""Builds the `deckhand` command line for release and packs one archive per target.

    python scripts/dist.py [--zig] [--tag vX.Y.Z] TARGET...

Each target gives `target/dist/deckhand-VERSION-TARGET.tar.gz` (one folder of the same name holding
the binary) and `….tar.gz.sha256` in `sha256sum -c` form. `cargo binstall` (cli/Cargo.toml) and the
GitHub Action (action.yml) fetch exactly these names from the release of tag `vVERSION`.
`--zig` builds through cargo-zigbuild (Linux targets from any host); without it, plain cargo builds
(the macOS runner, for its own target). `--tag` refuses a tag that is not `v` + the CLI's version,
so a release can never ship archives whose names the installers do not look for.
"""

import argparse
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "target" / "dist"
PACKAGE = "deckhand-cli"
BINARY = "deckhand"


def cli_version() -> str:
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return next(p["version"] for p in metadata["packages"] if p["name"] == PACKAGE)


def archive_name(version: str, target: str) -> str:
    return f"{BINARY}-{version}-{target}"


def pack(binary: Path, version: str, target: str, into: Path) -> Path:
    """A reproducible tar.gz: fixed owner, mode and time, so a rebuild of the same binary gives
    the same checksum."""
    name = archive_name(version, target)
    archive = into / f"{name}.tar.gz"
    data = binary.read_bytes()
    info = tarfile.TarInfo(f"{name}/{BINARY}")
    info.size, info.mode, info.mtime = len(data), 0o755, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    folder = tarfile.TarInfo(name)
    folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, 0
    with open(archive, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(folder)
                tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (into / f"{archive.name}.sha256").write_text(f"{digest}  {archive.name}\n")
    return archive


def build(target: str, zig: bool) -> Path:
    command = "zigbuild" if zig else "build"
    subprocess.run(
        ["cargo", command, "--release", "--locked", "-p", PACKAGE, "--target", target],
        cwd=ROOT,
        check=True,
    )
    return ROOT / "target" / target / "release" / BINARY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", metavar="TARGET")
    parser.add_argument("--zig", action="store_true", help="build with cargo-zigbuild")
    parser.add_argument("--tag", help="the release's tag, which must be v + the CLI's version")
    args = parser.parse_args()

    version = cli_version()
    if args.tag is not None and args.tag != f"v{version}":
        sys.exit(f"tag {args.tag} does not name deckhand-cli {version}: tag v{version}, or bump cli/Cargo.toml")
    DIST.mkdir(parents=True, exist_ok=True)
    for target in args.targets:
        archive = pack(build(target, args.zig), version, target, DIST)
        print(f"{archive.relative_to(ROOT)}  {archive.stat().st_size:,} bytes")
        print((DIST / f"{archive.name}.sha256").read_text().strip())


if __name__ == "__main__":
    main()
