#!/usr/bin/env bash
# Tests scripts/toolchain.sh: ensure_toolchain runs as scripts/serve.sh runs it (sourced by a
# script under `set -euo pipefail`), against stub cargo, rustup, wasm-bindgen, npm and wasm-opt
# that record what they are asked to do. Each case checks that every missing or outdated tool
# reaches its install step (instead of the script dying on a failed probe), and that nothing is
# installed when everything is there at the right version. No real tool is run, nothing is
# installed, the repository's tools/ is not touched: the case gets a temporary BANTER_ROOT,
# HOME and CARGO_HOME, and a PATH of the stubs plus basic utilities only.
# TOOLCHAIN_SCRIPT=FILE tests another copy of toolchain.sh (e.g. an older one).
# Ends with one "toolchain: N passed, N failed" line; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLCHAIN=${TOOLCHAIN_SCRIPT:-$ROOT/scripts/toolchain.sh}
WORK=$(mktemp -d /tmp/banter-toolchain-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0
BASH_BIN=$(type -P bash)
LOCKED_BINDGEN=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
if [ -z "$LOCKED_BINDGEN" ]; then
  echo "cannot read wasm-bindgen's version from Cargo.lock"
  echo "toolchain: 0 passed, 1 failed"
  exit 1
fi

# Basic utilities only: no cargo, rustup, npm, node, wasm-bindgen or wasm-opt can be reached.
mkdir -p "$WORK/utils"
for tool in awk grep sed cat mkdir chmod dirname env rm head tail tr; do
  path=$(type -P "$tool") && ln -s "$path" "$WORK/utils/$tool"
done

# write_stub FILE BODY: an executable bash script.
write_stub() {
  printf '#!%s\n%s\n' "$BASH_BIN" "$2" >"$1"
  chmod +x "$1"
}

# wasm_opt_stub FILE VERSION: a wasm-opt answering --version like binaryen's.
wasm_opt_stub() {
  mkdir -p "$(dirname "$1")"
  write_stub "$1" "echo 'wasm-opt version $2'"
}

# run_case NAME LEPTOS BINDGEN TARGET WASM_OPT [LOCK]
#   LEPTOS, BINDGEN: the version the tool reports, or "missing".
#   TARGET: "yes" if rustup lists wasm32-unknown-unknown as installed (after the host target,
#   then a long list, so a `rustup ... | grep -q` pipe would be cut short), "no" if not.
#   WASM_OPT: the binaryen version of tools/node_modules/.bin/wasm-opt, or "missing".
#   LOCK: "no-lock" to leave Cargo.lock out of the copy.
#   FAILING: "cargo-leptos" to make its `cargo install` fail.
# Sets CASE (its directory), STATUS (ensure_toolchain's caller's exit status), LOG (calls made).
run_case() {
  local name=$1 leptos=$2 bindgen=$3 target=$4 wasm_opt=$5 lock=${6:-lock} failing=${7:-none}
  CASE="$WORK/$name"
  LOG="$CASE/calls.log"
  local stubs="$CASE/stubs" root="$CASE/root"
  mkdir -p "$stubs" "$root/tools" "$CASE/home" "$CASE/cargo-home"
  : >"$LOG"
  [ "$lock" = no-lock ] || cp Cargo.lock "$root/"
  cp tools/package.json tools/package-lock.json "$root/tools/"
  [ "$wasm_opt" = missing ] || wasm_opt_stub "$root/tools/node_modules/.bin/wasm-opt" "$wasm_opt"

  write_stub "$stubs/cargo" "
echo \"cargo \$*\" >>'$LOG'
case \$1 in
  leptos)
    if [ '$leptos' = missing ]; then echo 'error: no such command: \`leptos\`' >&2; exit 101; fi
    echo 'cargo-leptos $leptos' ;;
  install)
    case \" \$* \" in *' $failing '*) echo 'stub cargo: install failed' >&2; exit 101 ;; esac
    exit 0 ;;
  *) echo \"stub cargo: unexpected \$*\" >&2; exit 1 ;;
esac"
  write_stub "$stubs/rustup" "
echo \"rustup \$*\" >>'$LOG'
case \"\$1 \$2\" in
  'target list')
    echo x86_64-unknown-linux-gnu
    if [ '$target' = yes ]; then
      echo wasm32-unknown-unknown
      for i in {1..20000}; do echo \"other-target-\$i\"; done
    fi ;;
  'target add') exit 0 ;;
  *) echo \"stub rustup: unexpected \$*\" >&2; exit 1 ;;
esac"
  [ "$bindgen" = missing ] || write_stub "$stubs/wasm-bindgen" "echo 'wasm-bindgen $bindgen'"
  # npm ci --prefix DIR ...: binaryen's wasm-opt 132 appears in DIR/node_modules/.bin.
  write_stub "$stubs/npm" "
echo \"npm \$*\" >>'$LOG'
[ \"\$1\" = ci ] && [ \"\$2\" = --prefix ] || { echo \"stub npm: unexpected \$*\" >&2; exit 1; }
mkdir -p \"\$3/node_modules/.bin\"
printf '#!%s\necho \"wasm-opt version 132\"\n' '$BASH_BIN' >\"\$3/node_modules/.bin/wasm-opt\"
chmod +x \"\$3/node_modules/.bin/wasm-opt\""

  # As scripts/serve.sh: a fresh bash under `set -euo pipefail` that sources and calls.
  env -i PATH="$stubs:$WORK/utils" HOME="$CASE/home" CARGO_HOME="$CASE/cargo-home" BANTER_ROOT="$root" \
    "$BASH_BIN" -c 'set -euo pipefail; . "$1"; ensure_toolchain; echo "ensure_toolchain returned 0" >>"$2"' \
    _ "$TOOLCHAIN" "$LOG" >"$CASE/output" 2>&1
  STATUS=$?
}

# check DESCRIPTION COMMAND...: one test; on failure shows the case's output and calls.
check() {
  local what=$1
  shift
  if "$@"; then
    PASSED=$((PASSED + 1))
    echo "ok   $what"
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $what (exit status $STATUS)"
    sed 's/^/       output: /' "$CASE/output"
    sed 's/^/       call:   /' "$LOG"
  fi
}
called() { grep -qxF -- "$1" "$LOG"; }
not_called() { ! grep -qE -- "$1" "$LOG"; }
completed() { [ "$STATUS" = 0 ] && called "ensure_toolchain returned 0"; }
failed_install() { [ "$STATUS" != 0 ] && ! called "ensure_toolchain returned 0"; }
says_no_lock() { [ "$STATUS" = 1 ] && grep -q "cannot read the wasm-bindgen version" "$CASE/output"; }

LEPTOS_INSTALL="cargo install --locked --quiet --features no_downloads cargo-leptos --version 0.3.10"
BINDGEN_INSTALL="cargo install --quiet wasm-bindgen-cli --version $LOCKED_BINDGEN"
TARGET_ADD="rustup target add wasm32-unknown-unknown"
npm_ci() { echo "npm ci --prefix $CASE/root/tools --no-audit --no-fund --loglevel=error"; }
INSTALLS='^(cargo install|rustup target add|npm )'

run_case fresh missing missing no missing
check "fresh machine: adds the wasm32 target" called "$TARGET_ADD"
check "fresh machine: installs cargo-leptos 0.3.10" called "$LEPTOS_INSTALL"
check "fresh machine: installs wasm-bindgen-cli $LOCKED_BINDGEN (Cargo.lock's)" called "$BINDGEN_INSTALL"
check "fresh machine: installs wasm-opt with npm ci in tools/" called "$(npm_ci)"
check "fresh machine: ensure_toolchain succeeds" completed

run_case outdated 0.2.0 0.2.100 yes 108
check "outdated tools: keeps the installed wasm32 target" not_called "^rustup target add"
check "outdated tools: reinstalls cargo-leptos 0.3.10" called "$LEPTOS_INSTALL"
check "outdated tools: reinstalls wasm-bindgen-cli $LOCKED_BINDGEN" called "$BINDGEN_INSTALL"
check "outdated tools: replaces wasm-opt 108 with npm ci" called "$(npm_ci)"
check "outdated tools: ensure_toolchain succeeds" completed

run_case bindgen-missing 0.3.10 missing yes 132
check "only wasm-bindgen missing: installs wasm-bindgen-cli $LOCKED_BINDGEN" called "$BINDGEN_INSTALL"
check "only wasm-bindgen missing: installs nothing else" not_called '^(cargo install --locked|rustup target add|npm )'
check "only wasm-bindgen missing: ensure_toolchain succeeds" completed

run_case present 0.3.10 "$LOCKED_BINDGEN" yes 132
check "all present: installs nothing" not_called "$INSTALLS"
check "all present: ensure_toolchain succeeds" completed

run_case leptos-fails missing missing yes 132 lock cargo-leptos
check "cargo-leptos fails to install: wasm-bindgen-cli is installed all the same" called "$BINDGEN_INSTALL"
check "cargo-leptos fails to install: ensure_toolchain fails" failed_install

run_case no-lock 0.3.10 "$LOCKED_BINDGEN" yes 132 no-lock
check "no Cargo.lock: says so and fails" says_no_lock

echo "toolchain: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
