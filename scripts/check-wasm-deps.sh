#!/usr/bin/env bash
# Fails when the browser build links a server-only crate (database drivers, password hashing,
# tokio's runtime). Reads cargo's own dependency tree of the WASM entry point.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p frontend --target wasm32-unknown-unknown -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
if ! grep -qx app <<<"$tree" || ! grep -qx leptos <<<"$tree"; then
  echo "check-wasm-deps: the WASM tree does not contain app and leptos; the check itself is broken" >&2
  exit 1
fi
# Encrypted channels are decrypted in the browser with RustCrypto's pure-Rust secretbox: it must be
# in the WASM tree (and so build for wasm32), with no C or system crypto underneath.
for required in crypto_secretbox salsa20 poly1305; do
  if ! grep -qx "$required" <<<"$tree"; then
    echo "check-wasm-deps: $required (the browser's secretbox for encrypted channels) is not in the WASM tree" >&2
    exit 1
  fi
done
forbidden='^(sqlx.*|sea-orm.*|sea-query.*|argon2|tokio|mio|axum|leptos_axum|hyper|ring|openssl.*|libsodium.*|sodiumoxide)$'
found=$(grep -E "$forbidden" <<<"$tree" || true)
if [ -n "$found" ]; then
  echo "check-wasm-deps: the WASM build links server-only crates:" >&2
  echo "$found" | sed 's/^/  /' >&2
  exit 1
fi
echo "check-wasm-deps: 1 passed, 0 failed ($(wc -l <<<"$tree") crates in the WASM tree, none server-only, secretbox present)"
