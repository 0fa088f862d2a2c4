#!/usr/bin/env bash
# Command 1: build Banter (release) and serve it on http://127.0.0.1:3000 with its embedded
# defaults (SQLite under data/, the embedded Pusher server). Installs missing build tools first.
# The environment overrides the defaults as for the server itself: cargo-leptos reads
# LEPTOS_SITE_ADDR from it (over Cargo.toml's site-addr) and hands it on, and DATABASE_URL etc.
# reach the server unchanged. Extra arguments go to `cargo leptos serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
ensure_toolchain
exec cargo leptos serve --release --split "$@"
