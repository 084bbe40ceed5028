#!/usr/bin/env bash
# Usage: scripts/pinned-venv.sh VENV 'pkg==x.y.z pkg2==a.b.c'
# A venv holding exactly these pinned packages: made once, remade when the pins change (its .installed
# marker records them), so a new release of a tool cannot change a gate or a build by itself.
set -euo pipefail
venv=$1 packages=$2
if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "$packages" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the list is the packages, one word each
  "$venv/bin/pip" install --quiet $packages
  echo "$packages" > "$venv/.installed"
fi
