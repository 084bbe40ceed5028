#!/usr/bin/env bash
# Offline proof of template.yaml: cfn-lint, sam validate --lint, sam build with
# cargo-lambda, and one bootstrap per function in the build output.
# `--install`: only install the tools (SAM CLI, cfn-lint, cargo-lambda, zig).
# SAM_BUILD_MODE=debug: sam build compiles without --release (CI: the same template
# wiring proved in less time; a deploy's sam build is release).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-sam
export SAM_CLI_TELEMETRY=0
if [ ! -f "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet aws-sam-cli cargo-lambda ziglang
  touch "$venv/.installed"
fi
[ "${1:-}" = "--install" ] && exit 0
export PATH="$PWD/$venv/bin:$PATH"

echo "== cfn-lint"
cfn-lint template.yaml
echo "== sam validate --lint"
sam validate --lint --region eu-central-1
echo "== sam build (cargo-lambda, x86_64, ${SAM_BUILD_MODE:-release})"
sam build --parameter-overrides Architecture=x86_64 > .local/sam-build.log 2>&1 || { tail -50 .local/sam-build.log; exit 1; }

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
