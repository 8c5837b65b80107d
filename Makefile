# deckhand developer commands. `make demo` and `make test` work on a fresh machine with Rust,
# Python 3 and the package registries: everything else is installed into .venv.

SHELL := bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: test demo venv fmt lint clean

## test: formatting, lints, unit and integration tests (moto server started by the tests)
test: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --locked

## demo: the whole story against a local emulator, through cargo lambda watch and invoke
demo: venv
	$(VENV)/bin/python scripts/demo.py

## venv: moto server, cfn-lint and cargo-lambda from PyPI, in .venv
venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	@command -v python3 >/dev/null || { echo "python3 is required to install moto and cargo-lambda" >&2; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV)
