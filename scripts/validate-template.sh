#!/usr/bin/env bash
# Offline proof of template.yaml: cfn-lint, sam validate --lint, sam build with
# cargo-lambda for arm64 (the architecture the stack deploys: cross-compiled with zig), one
# bootstrap per function in the build output, and each bootstrap started once under
# qemu-aarch64 against a local Lambda Runtime API (scripts/prove-arm64.sh).
# `--install`: only install the tools (SAM CLI, cfn-lint, cargo-lambda, zig, Rust's aarch64
# target, qemu-user and the aarch64 sysroot).
# SAM_BUILD_MODE=debug: sam build compiles without --release (CI: the same template
# wiring proved in less time; a deploy's sam build is release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-sam
export SAM_CLI_TELEMETRY=0
# Exact versions (the ones .github/workflows/pipeline.yml builds with): a release cannot change a build by itself.
packages='aws-sam-cli==1.170.0 cargo-lambda==1.9.2 ziglang==0.17.1'
scripts/pinned-venv.sh "$venv" "$packages"
# Rust's aarch64 standard library, for the pinned toolchain (rust-toolchain.toml); where that is a link to
# `stable` (scripts/toolchain.sh), to the toolchain it points at.
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || rustup target add --toolchain stable aarch64-unknown-linux-gnu
scripts/prove-arm64.sh --install
[ "${1:-}" = "--install" ] && exit 0
export PATH="$PWD/$venv/bin:$PATH"

echo "== cfn-lint"
cfn-lint template.yaml
echo "== sam validate --lint"
sam validate --lint --region eu-central-1
echo "== sam build (cargo-lambda, arm64, ${SAM_BUILD_MODE:-release})"
sam build --parameter-overrides Architecture=arm64 > .local/sam-build.log 2>&1 || { tail -50 .local/sam-build.log; exit 1; }

functions=$(python3 - <<'PY'
import re
text = open("template.yaml").read()
print("\n".join(re.findall(r"^  (\w+):\n    Type: AWS::Serverless::Function", text, re.M)))
PY
)
count=0
for f in $functions; do
  [ -x ".aws-sam/build/$f/bootstrap" ] || { echo "no bootstrap for $f" >&2; exit 1; }
  count=$((count + 1))
done
echo "sam build produced a bootstrap for each of the $count functions"

echo "== arm64 bootstraps under qemu-user"
scripts/prove-arm64.sh
