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

# quick_install OPT_LEVEL ARGS...: `cargo install ARGS...` with a release profile that builds
# fast. The tools only drive cargo and rustc, and how fast they build matters more than how fast
# they run: cargo-leptos asks for fat LTO with one codegen unit, which made its install the longest
# step of a cold run. OPT_LEVEL 0 for cargo-leptos, whose own work in a build is a fraction of a
# second (splitting the module: 0.16 s at opt-level 1, 0.7 s at 0; the rest is wasm-bindgen and
# wasm-opt), and 340 s to build against 553 s. wasm-bindgen-cli keeps 1: it rewrites the whole
# module on every build.
quick_install() {
  local opt=$1
  shift
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo install "$@"
}

# cargo-leptos's cargo-generate (`cargo leptos new`, never used here) asks for a vendored OpenSSL:
# three minutes of compiling OpenSSL's C, the longest single step of the install. The system's
# OpenSSL (Debian's libssl-dev) does instead when pkg-config finds it.
install_cargo_leptos() {
  local no_vendor=0
  if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl 2>/dev/null; then
    no_vendor=1
  fi
  OPENSSL_NO_VENDOR=$no_vendor quick_install 0 --locked --quiet --features no_downloads cargo-leptos --version "$CARGO_LEPTOS_VERSION"
}

ensure_toolchain() {
  local want have leptos=0 leptos_pid="" failed=0
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
    leptos=1
  fi

  want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$BANTER_ROOT/Cargo.lock" 2>/dev/null || true)
  if [ -z "$want" ]; then
    toolchain_say "cannot read the wasm-bindgen version from $BANTER_ROOT/Cargo.lock"
    return 1
  fi
  have=$(wasm-bindgen --version 2>/dev/null || true)
  have=$(awk '{print $2; exit}' <<<"$have")

  # Both at once when both are missing: each leaves a core idle for part of its build (build
  # scripts, its last crate, linking), which the other fills.
  if [ "$leptos" = 1 ]; then
    toolchain_say "installing cargo-leptos $CARGO_LEPTOS_VERSION (built from crates.io, a few minutes)"
    install_cargo_leptos >&2 &
    leptos_pid=$!
  fi
  if [ "$have" != "$want" ]; then
    toolchain_say "installing wasm-bindgen-cli $want (must equal Cargo.lock's wasm-bindgen)"
    # Not --locked: one of its locked dependencies is no longer on the registry.
    quick_install 1 --quiet wasm-bindgen-cli --version "$want" >&2 || failed=1
  fi
  if [ -n "$leptos_pid" ]; then
    wait "$leptos_pid" || failed=1
  fi
  if [ "$failed" = 1 ]; then
    return 1
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
