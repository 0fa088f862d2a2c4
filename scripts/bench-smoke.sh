#!/usr/bin/env bash
# Smoke run of the load generator (issue 5): every scenario at tiny sizes (chat also with encrypted channels,
# search over a 20,000-message corpus) against a server it spawns itself (target/release/server, free port,
# temporary database). Builds nothing but the generator:
# run `cargo leptos build --release --split` first. Exits non-zero when any scenario errors or reports lost or
# duplicated messages, or when a size budget of bench/budgets.toml is broken; the table goes to stdout, the
# report to target/bench/report-all.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x target/release/server || ! -f target/release/hash.txt ]]; then
  echo "bench-smoke: target/release/server or its bundle (target/release/hash.txt) is missing; run cargo leptos build --release --split first" >&2
  exit 1
fi

cargo run --quiet --release -p bench -- all --smoke --spawn --encrypted --check bench/budgets.toml "$@"
