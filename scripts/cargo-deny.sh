#!/usr/bin/env bash
# The dependency tree against deny.toml: licences, banned crates (OpenSSL, native-tls, the SDK's legacy HTTP
# stack), sources (crates.io only). Fails on any error; duplicate versions are warnings.
# Advisories (RustSec) are not checked: they need the advisory database from the network.
# `--install`: only install cargo-deny.
set -euo pipefail
cd "$(dirname "$0")/.."
# Exact version, so a release with new checks or config keys cannot change the result by itself.
# Built from crates.io (--locked: with the dependency versions its authors tested): 7 min 35 s on 2 cores.
version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $version" ]; then
  cargo install --locked cargo-deny --version "$version"
fi
[ "${1:-}" = "--install" ] && exit 0

# The crates' sources (crates.io only, every platform's): cargo deny then reads them with no network.
cargo fetch --locked --quiet
cargo deny --offline --locked check --hide-inclusion-graph licenses bans sources
