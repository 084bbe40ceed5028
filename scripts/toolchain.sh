#!/usr/bin/env bash
# The Rust toolchain rust-toolchain.toml pins, with rustfmt and clippy, ready before any cargo command.
set -euo pipefail
cd "$(dirname "$0")/.."
# rust-toolchain.toml pins 1.95.0. Where the machine's one toolchain is that release as `stable` and no other
# can be fetched, the pinned name points at it (`rustup toolchain link` refuses official names: a symlink is
# what rustup itself would find); elsewhere rustup installs the pinned release.
pinned=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
host=$(rustc +stable -vV | sed -n 's/^host: //p')
toolchains="${RUSTUP_HOME:-$HOME/.rustup}/toolchains"
if [ ! -e "$toolchains/$pinned-$host" ]; then
  if rustc +stable --version | grep -q "^rustc $pinned "; then
    ln -s "$(rustc +stable --print sysroot)" "$toolchains/$pinned-$host"
  else
    rustup toolchain install "$pinned" --profile minimal
  fi
fi
# A linked toolchain takes no components: they go to the toolchain it points at.
rustup component add rustfmt clippy >/dev/null 2>&1 || rustup component add --toolchain stable rustfmt clippy
rustc --version
