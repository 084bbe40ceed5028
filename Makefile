# The two commands: `make run` (a full policy through the local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
# aws-sam-translator: AWS's own SAM transform, for the deployment's rehearsal (scripts/translate-template.py).
PY_DEPS := 'moto[dynamodb,s3,sqs,ssm]==5.2.5' flask flask-cors 'aws-sam-translator==1.*' pyyaml
export AWS_ENDPOINT_URL ?= http://127.0.0.1:5000
export AWS_ACCESS_KEY_ID ?= local
export AWS_SECRET_ACCESS_KEY ?= local
export AWS_REGION ?= us-east-1
export CARGO_TERM_COLOR ?= never

help:
	@echo "make run    - local stack + MUST and BIMA simulators + a truck policy and a loan, printed as they go"
	@echo "make test   - every test (unit, property, end-to-end through the local stack)"
	@echo "make up     - leave the local stack running (hook API 127.0.0.1:3000); make down stops it;"
	@echo "              POLIS_MUST_URL=... POLIS_BIMA_URL=... (with credentials, see README) call a partner's sandbox"
	@echo "make check  - fmt, clippy -D warnings, template up to date, checkov + cfn-lint(-serverless), actionlint + zizmor, cargo deny"
	@echo "make validate-template - cfn-lint, sam validate --lint, sam build for arm64, each bootstrap started under qemu-aarch64"
	@echo "make translate-template - the template through AWS's SAM translator: .local/template.cfn.json"
	@echo "make bench  - release build, then the benchmark table (BENCH_ARGS='--flows 1000' for more)"
	@echo "make sim    - the deterministic simulation: SEED=7 replays one run; SEEDS, TRUCKS, LOANS, IN_FLIGHT size it"
	@echo "make soak   - the simulation at scale: 100,000 truck flows and 100,000 loans, faults on"

# Remade when the Makefile (PY_DEPS) changes; pip leaves what is already there alone.
$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(PY_DEPS)
	touch $@

toolchain:
	@scripts/toolchain.sh

deps: toolchain $(VENV)/.installed
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)

build: deps
	cargo build --workspace --bins

emulator: deps
	scripts/emulator.sh start

run: build emulator
	cargo run --quiet -p polis-e2e --bin demo

test: build emulator
	cargo test --workspace --no-fail-fast

up: build emulator
	@mkdir -p .local
	nohup target/debug/demo up > .local/up.log 2>&1 & echo $$! > .local/up.pid
	@for i in $$(seq 1 100); do grep -q "stack is running" .local/up.log && break; sleep 0.2; done
	@cat .local/up.log

down:
	@if [ -f .local/up.pid ]; then kill $$(cat .local/up.pid) 2>/dev/null || true; rm -f .local/up.pid; fi
	scripts/emulator.sh stop

# The code's and the deployment's gates: formatting, lints, the generated template parts, the bank's
# policy checks on the template (checkov, cfn-lint + serverless rules), the workflow linters
# (actionlint, zizmor) and the dependency tree (cargo deny: licences, bans, sources).
check: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo run --quiet -p xtask -- template --check
	scripts/policy-checks.sh
	scripts/lint-workflows.sh
	scripts/cargo-deny.sh

SEED ?= 1
SEEDS ?= 1
TRUCKS ?= 200
LOANS ?= 200
IN_FLIGHT ?= 64
sim:
	cargo run --release --quiet -p polis-sim --bin sim -- --seed $(SEED) --seeds $(SEEDS) \
		--trucks $(TRUCKS) --loans $(LOANS) --in-flight $(IN_FLIGHT)

soak:
	cargo run --release --quiet -p polis-sim --bin sim -- --seed $(SEED) --trucks 100000 --loans 100000 --in-flight 512

bench: deps emulator
	@command -v zip >/dev/null || (apt-get update -qq && apt-get install -y -qq zip)
	cargo build --release --workspace --bins
	cargo run --release --quiet -p polis-bench -- $(BENCH_ARGS)

validate-template:
	@mkdir -p .local
	scripts/validate-template.sh

translate-template: deps
	@mkdir -p .local
	$(VENV)/bin/python scripts/translate-template.py template.yaml -o .local/template.cfn.json
	@echo "CloudFormation as AWS would deploy it: .local/template.cfn.json (local-cloud --template reads it)"

.PHONY: toolchain help deps build emulator run test up down check bench sim soak validate-template translate-template
