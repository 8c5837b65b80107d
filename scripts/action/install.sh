#!/usr/bin/env bash
# Installs the released `deckhand` for this runner into $RUNNER_TEMP and puts it on $GITHUB_PATH.
# The archive's SHA-256 is checked before anything is unpacked. The archive names are those
# scripts/dist.py writes. DECKHAND_RELEASE_URL replaces the GitHub release (a mirror, the tests).
set -euo pipefail

fail() {
  echo "::error title=deckhand::$1"
  exit 1
}

version="${DECKHAND_VERSION:-}"
case "$version" in
  v[0-9]*.[0-9]*.[0-9]*) ;;
  *) fail "version '${version}' is not a release tag (vX.Y.Z): use the action at a release tag, or give its version input" ;;
esac

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64) target=x86_64-unknown-linux-musl ;;
  Linux/ARM64) target=aarch64-unknown-linux-musl ;;
  macOS/ARM64) target=aarch64-apple-darwin ;;
  *) fail "no release build of deckhand for ${RUNNER_OS:-?} ${RUNNER_ARCH:-?}: build it with cargo install --locked --path cli" ;;
esac

name="deckhand-${version#v}-${target}"
base="${DECKHAND_RELEASE_URL:-https://github.com/${DECKHAND_REPOSITORY:?}/releases/download/${version}}"
work="${RUNNER_TEMP:?}/deckhand-${version}"
rm -rf "$work"
mkdir -p "$work/download" "$work/bin"
cd "$work/download"

for file in "$name.tar.gz" "$name.tar.gz.sha256"; do
  curl --fail --silent --show-error --location --retry 3 --output "$file" "$base/$file" ||
    fail "could not download $base/$file"
done

# The checksum file names the archive it is for: refuse one made for another file.
read -r expected listed < "$name.tar.gz.sha256" || fail "$name.tar.gz.sha256 is empty"
[ "$listed" = "$name.tar.gz" ] || fail "$name.tar.gz.sha256 is for '$listed', not $name.tar.gz"
if command -v sha256sum >/dev/null; then
  actual="$(sha256sum "$name.tar.gz" | cut -d' ' -f1)"
else
  actual="$(shasum -a 256 "$name.tar.gz" | cut -d' ' -f1)"
fi
[ "$actual" = "$expected" ] || fail "$name.tar.gz has SHA-256 $actual, the release says $expected: not installed"

tar -xzf "$name.tar.gz"
install -m 0755 "$name/deckhand" "$work/bin/deckhand"
echo "$work/bin" >> "${GITHUB_PATH:?}"
echo "installed deckhand ${version} (${target}) in $work/bin"
