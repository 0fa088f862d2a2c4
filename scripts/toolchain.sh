#!/usr/bin/env bash
# Installs, only where missing, what building Banter needs, from package registries only:
# the wasm32 target, cargo-leptos (no_downloads), wasm-bindgen-cli at exactly Cargo.lock's
# wasm-bindgen version, and wasm-opt from npm's binaryen (never Debian's 108, which breaks
# hydration). Source it: it puts the tools on PATH for the calling script.
#
# Safe under `set -euo pipefail` (scripts/serve.sh): a missing or outdated tool is an answer
# here, not an error, so no probe below may fail the caller. Probes capture their output with
# `|| true` and are matched afterwards (no `cmd | grep -q` pipe, which fails under pipefail when
# grep stops reading early); only a failed install returns non-zero. scripts/test-toolchain.sh
# checks this with stub tools.

CARGO_LEPTOS_VERSION=0.3.10
BANTER_ROOT="${BANTER_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export PATH="$BANTER_ROOT/tools/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

toolchain_say() { printf '[toolchain] %s\n' "$*" >&2; }

# The tools only drive cargo and rustc; how fast they run does not matter, how fast they build
# does. cargo-leptos asks for fat LTO with one codegen unit, which made its install the longest
# step of a cold run; these overrides apply to the installs below only.
quick_install() {
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo install "$@"
}

ensure_toolchain() {
  local want have
  if ! command -v cargo >/dev/null || ! command -v npm >/dev/null; then
    toolchain_say "cargo (rustup) and npm (Node.js 20+) are required; install them first"
    return 1
  fi

  have=$(rustup target list --installed 2>/dev/null || true)
  if ! grep -qx wasm32-unknown-unknown <<<"$have"; then
    toolchain_say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown >&2 || return 1
  fi

  have=$(cargo leptos --version 2>/dev/null || true)
  have=$(awk '{print $2; exit}' <<<"$have")
  if [ "$have" != "$CARGO_LEPTOS_VERSION" ]; then
    toolchain_say "installing cargo-leptos $CARGO_LEPTOS_VERSION (built from crates.io, a few minutes)"
    quick_install --locked --quiet --features no_downloads cargo-leptos --version "$CARGO_LEPTOS_VERSION" >&2 || return 1
  fi

  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$BANTER_ROOT/Cargo.lock" 2>/dev/null || true)
  if [ -z "$want" ]; then
    toolchain_say "cannot read the wasm-bindgen version from $BANTER_ROOT/Cargo.lock"
    return 1
  fi
  have=$(wasm-bindgen --version 2>/dev/null || true)
  have=$(awk '{print $2; exit}' <<<"$have")
  if [ "$have" != "$want" ]; then
    toolchain_say "installing wasm-bindgen-cli $want (must equal Cargo.lock's wasm-bindgen)"
    # Not --locked: one of its locked dependencies is no longer on the registry.
    quick_install --quiet wasm-bindgen-cli --version "$want" >&2 || return 1
  fi

  have=$("$BANTER_ROOT/tools/node_modules/.bin/wasm-opt" --version 2>/dev/null || true)
  if ! grep -q 'version 132' <<<"$have"; then
    toolchain_say "installing wasm-opt (npm binaryen 132)"
    npm ci --prefix "$BANTER_ROOT/tools" --no-audit --no-fund --loglevel=error >&2 || return 1
  fi
  have=$(command -v wasm-opt || true)
  if [ "$have" != "$BANTER_ROOT/tools/node_modules/.bin/wasm-opt" ]; then
    toolchain_say "wasm-opt on PATH is ${have:-missing}, expected the project's own"
    return 1
  fi
  return 0
}
