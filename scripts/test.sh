#!/usr/bin/env bash
# Command 2: install test dependencies, then run every test: the toolchain script's own test,
# rustfmt, clippy (server and browser feature sets), the WASM dependency check, the Rust unit and
# integration tests (SQLite, and PostgreSQL when reachable; attachments on the local disk and on
# S3 through moto, installed from PyPI and started here), the release build, command 1
# (scripts/serve.sh) until it answers /healthz, Playwright against the release build (and against
# three instances behind nginx on PostgreSQL and Redis, scripts/cluster.sh), and a smoke run of the
# load generator (bench/).
# Exits non-zero on any failure; ends with one "TOTAL: N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/toolchain.sh

# Fresh clones (CI) share one build cache per machine instead of rebuilding every dependency:
# target/ becomes a link to it. Nothing depends on the cache being there.
if [ ! -e target ] && [ "${BANTER_SHARED_TARGET:-1}" = 1 ]; then
  mkdir -p "$HOME/.cache/banter/target" && ln -s "$HOME/.cache/banter/target" target
fi

LOG_DIR="$ROOT/target/test-logs"
mkdir -p "$LOG_DIR"
PASSED=0
FAILED=0
FAILED_PHASES=()
TIMINGS=()

say() { printf '\n==> %s\n' "$*"; }

# phase NAME COMMAND...: runs COMMAND, tees its output to a log, records time and outcome.
phase() {
  local name=$1 log="$LOG_DIR/$1.log" start=$SECONDS status
  shift
  say "$name"
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  TIMINGS+=("$(printf '%-16s %5ss  %s' "$name" $((SECONDS - start)) "$([ "$status" = 0 ] && echo ok || echo FAILED)")")
  if [ "$status" != 0 ]; then
    FAILED_PHASES+=("$name")
  fi
  return "$status"
}

# Counts "N passed / N failed" from cargo test and Playwright logs into the totals.
count_cargo() {
  local p f
  p=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s+=$1} END {print s+0}')
  f=$(grep -E '^test result:' "$1" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s+=$1} END {print s+0}')
  PASSED=$((PASSED + ${p:-0}))
  FAILED=$((FAILED + ${f:-0}))
}
count_playwright() {
  local p f
  p=$(grep -E '^\s+[0-9]+ passed' "$1" | tail -1 | awk '{print $1}')
  f=$(grep -E '^\s+[0-9]+ (failed|flaky)' "$1" | awk '{s+=$1} END {print s+0}')
  PASSED=$((PASSED + ${p:-0}))
  FAILED=$((FAILED + ${f:-0}))
}
count_single() { if [ "$1" = 0 ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi; }

# install_test_deps: the build tools (compiled: minutes of CPU) in the foreground while the
# system packages, the npm packages and moto (downloads and unpacking: mostly waiting) install
# beside them; their output follows the toolchain's.
install_test_deps() {
  local log="$LOG_DIR/setup-packages.log" pid status=0
  install_packages >"$log" 2>&1 &
  pid=$!
  ensure_toolchain || status=1
  wait "$pid" || status=1
  cat "$log"
  return "$status"
}

install_packages() {
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "installing Debian's chromium for Playwright"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || return 1
    else
      echo "Playwright needs /usr/bin/chromium: run 'sudo apt-get install chromium' (Debian's package) and try again"
      return 1
    fi
  fi
  # Debian's Chromium has no colour emoji font of its own: without it emoji render as empty boxes.
  if [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's fonts-noto-color-emoji for Chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji >/dev/null \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-color-emoji >/dev/null; } \
      || return 1
  fi
  # Redis for the cluster tests (several instances on one Redis; one test starts its own server).
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
      echo "installing Debian's redis-server for the cluster tests"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
        || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
        || return 1
    else
      echo "the cluster tests need redis-server: run 'sudo apt-get install redis-server' (Debian's package) and try again"
      return 1
    fi
  fi
  # nginx (the cluster browser tests' load balancer) and psql (scripts/cluster.sh creates its database).
  for tool in nginx:nginx-light psql:postgresql-client; do
    if ! command -v "${tool%%:*}" >/dev/null && [ ! -x "/usr/sbin/${tool%%:*}" ]; then
      if [ "$(id -u)" = 0 ]; then
        echo "installing Debian's ${tool#*:}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null \
          || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null; } \
          || return 1
      else
        echo "the cluster tests need ${tool%%:*}: run 'sudo apt-get install ${tool#*:}' (Debian's package) and try again"
        return 1
      fi
    fi
  done
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error) || return 1
  ensure_moto
}

# start_redis: the machine's Redis on 6379 when it answers, else one of our own on a free port
# (REDIS_PID is then its pid); exports BANTER_TEST_REDIS_URL.
REDIS_PID=""
start_redis() {
  local port
  if [ -n "${BANTER_TEST_REDIS_URL:-}" ]; then return 0; fi
  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    export BANTER_TEST_REDIS_URL="redis://127.0.0.1:6379"
  else
    port=$(free_port) || return 1
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >"$LOG_DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
      kill -0 "$REDIS_PID" 2>/dev/null || { echo "redis-server did not start; its log:"; tail -n 20 "$LOG_DIR/redis.log"; return 1; }
      sleep 0.1
    done
    export BANTER_TEST_REDIS_URL="redis://127.0.0.1:$port"
  fi
  echo "Redis on $BANTER_TEST_REDIS_URL: the cluster tests run several instances on it"
}

postgres_url() {
  if [ -n "${BANTER_TEST_POSTGRES_URL:-}" ]; then
    echo "$BANTER_TEST_POSTGRES_URL"
  elif (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    echo "postgres://root@127.0.0.1:5432/test"
  fi
}

# An S3-compatible server for the attachment store's tests: moto (PyPI) in server mode, in a
# virtualenv of its own under ~/.cache/banter, installed once; started on a free port by
# rust_tests and stopped after them.
MOTO_VENV="$HOME/.cache/banter/moto-venv"
ensure_moto() {
  if [ -x "$MOTO_VENV/bin/moto_server" ]; then return 0; fi
  echo "installing moto (an S3-compatible test server, from PyPI) into $MOTO_VENV"
  command -v python3 >/dev/null || { echo "python3 is needed for moto (the S3 test server)"; return 1; }
  rm -rf "$MOTO_VENV"
  if ! python3 -m venv "$MOTO_VENV" 2>/dev/null; then
    # Debian's own python3 keeps venv in a package of its own.
    [ "$(id -u)" = 0 ] || { echo "python3 -m venv failed: install Debian's python3-venv"; return 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$MOTO_VENV" || return 1
  fi
  "$MOTO_VENV/bin/pip" install -q 'moto[server]>=5,<6'
}

# start_moto: starts moto on a free port, exports BANTER_TEST_S3_ENDPOINT; MOTO_PID is its pid.
MOTO_PID=""
start_moto() {
  local port deadline=$((SECONDS + 60))
  port=$(free_port) || return 1
  "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  until [ "$(http_status "http://127.0.0.1:$port/moto-api/")" = 200 ]; do
    if ! kill -0 "$MOTO_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "moto did not start; its log:"; tail -n 20 "$LOG_DIR/moto.log"
      return 1
    fi
    sleep 0.3
  done
  curl -s -f -X PUT "http://127.0.0.1:$port/banter-test" >/dev/null || { echo "cannot create the test bucket"; return 1; }
  export BANTER_TEST_S3_ENDPOINT="http://127.0.0.1:$port" BANTER_TEST_REQUIRE_S3=1
  echo "moto (S3) on $BANTER_TEST_S3_ENDPOINT: the attachment tests run on the local disk and on S3"
}

rust_tests() {
  local pg status
  ensure_moto && start_moto || return 1
  start_redis || return 1
  pg=$(postgres_url)
  if [ -n "$pg" ]; then
    echo "PostgreSQL reachable: the database suite runs on SQLite and on PostgreSQL"
    export BANTER_TEST_POSTGRES_URL="$pg"
  else
    echo "PostgreSQL NOT reachable on 127.0.0.1:5432: the database suite runs on SQLite only (PostgreSQL skipped)"
  fi
  # Release profile: the server, the app and every dependency built here are the very artifacts
  # the release build below links (same features, same environment: .cargo/config.toml), so it
  # compiles only the browser side. The load generator apart: built together, its toml (with serde)
  # would change the features of the toml under leptos_config, and with it the whole server.
  cargo test --release -p app --features ssr -p server -p migration -p pusher-protocol -p pusher-server
  status=$?
  cargo test --release -p bench || status=1
  kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; fi
  return $status
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# http_status URL: the status code of GET URL, 000 when nothing answers (curl, else Node's fetch).
http_status() {
  if command -v curl >/dev/null; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true
  else
    node -e "fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then((r) => console.log(r.status), () => console.log('000'))" "$1"
  fi
}

# Command 1 exactly as the README gives it, on a free port with a throw-away database, until
# /healthz answers 200; then stopped with everything it started (its own process group).
SERVE_DEADLINE=${BANTER_SERVE_DEADLINE:-300}
serve_command() {
  local port dir pid code="" status=1 deadline=$((SECONDS + SERVE_DEADLINE))
  port=$(free_port) || return 1
  dir=$(mktemp -d /tmp/banter-serve.XXXXXX) || return 1
  # setsid: the script, cargo-leptos and the server it starts share one new process group.
  LEPTOS_SITE_ADDR="127.0.0.1:$port" DATABASE_URL="sqlite://$dir/banter.sqlite?mode=rwc" \
    setsid bash scripts/serve.sh </dev/null >"$dir/serve.log" 2>&1 &
  pid=$!
  echo "bash scripts/serve.sh (pid $pid) on 127.0.0.1:$port, database in $dir"
  while :; do
    code=$(http_status "http://127.0.0.1:$port/healthz")
    if [ "$code" = 200 ]; then
      echo "GET /healthz answered 200 after $((SECONDS + SERVE_DEADLINE - deadline))s"
      status=0
      break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      echo "scripts/serve.sh exited (status $?) before /healthz answered; the end of its log:"
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "GET /healthz did not answer 200 within ${SERVE_DEADLINE}s (last: ${code:-none}); the end of its log:"
      break
    fi
    sleep 0.5 # polling interval, bounded by the deadline above
  done
  [ "$status" = 0 ] || tail -n 40 "$dir/serve.log" | sed 's/^/  | /'
  stop_group "$pid"
  rm -rf "$dir"
  return "$status"
}

# stop_group PID: SIGTERM to the process group PID leads, SIGKILL to what is left after 20 s.
stop_group() {
  local pid=$1 deadline=$((SECONDS + 20))
  kill -TERM -- "-$pid" 2>/dev/null || return 0
  while kill -0 -- "-$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

playwright() {
  local port encrypted_port cluster_port dbdir pg cluster_db status
  port=$(free_port)
  # The second server: the same app with end-to-end encrypted channels (the `encrypted` project).
  encrypted_port=$(free_port)
  while [ "$encrypted_port" = "$port" ]; do encrypted_port=$(free_port); done
  # The `cluster` project: three instances behind nginx (scripts/cluster.sh) on a PostgreSQL
  # database of this run's own and Redis; nginx on cluster_port, the instances just above it.
  cluster_port=$(free_port)
  pg=$(postgres_url)
  if [ -z "$pg" ]; then
    echo "the cluster browser tests need PostgreSQL on 127.0.0.1:5432 (or BANTER_TEST_POSTGRES_URL)"
    return 1
  fi
  start_redis || return 1
  cluster_db="banter_e2e_$$_$RANDOM"
  dbdir=$(mktemp -d /tmp/banter-e2e.XXXXXX)
  (cd end2end && E2E_PORT=$port E2E_ENCRYPTED_PORT=$encrypted_port E2E_DB_DIR=$dbdir \
    E2E_CLUSTER_PORT=$cluster_port E2E_CLUSTER_DIR="$dbdir/cluster" E2E_CLUSTER_DATABASE_URL="${pg%/*}/$cluster_db" \
    E2E_REDIS_URL="$BANTER_TEST_REDIS_URL" npx playwright test)
  status=$?
  psql "${pg%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$cluster_db\"" >/dev/null 2>&1 || true
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; fi
  rm -rf "$dbdir"
  return $status
}

total_start=$SECONDS
phase toolchain-script bash scripts/test-toolchain.sh; count_single $?
phase setup install_test_deps || { echo "setup failed; nothing else can run"; exit 1; }
phase fmt cargo fmt --all --check; count_single $?
phase clippy-server cargo clippy -p app -p server -p migration -p pusher-protocol -p pusher-server -p bench --features app/ssr --all-targets -- -D warnings; count_single $?
phase clippy-browser cargo clippy -p frontend -p app -p pusher-protocol --features app/hydrate --target wasm32-unknown-unknown -- -D warnings; count_single $?
phase wasm-deps bash scripts/check-wasm-deps.sh; count_single $?
phase rust-tests rust_tests; count_cargo "$LOG_DIR/rust-tests.log"
if phase release-build cargo leptos build --release --split; then
  count_single 0
  ls -l target/site/pkg/ | sed 's/^/  /'
  phase serve-command serve_command; count_single $?
  phase playwright playwright; count_playwright "$LOG_DIR/playwright.log"
  # Seconds of every load-generator scenario, so the tool never rots: numbers produced, nothing lost.
  phase bench-smoke bash scripts/bench-smoke.sh; count_single $?
else
  count_single 1
  echo "release build failed: Playwright not run"
fi

say "timings"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-16s %5ss\n' total $((SECONDS - total_start))
if [ ${#FAILED_PHASES[@]} -gt 0 ]; then
  echo "failed phases: ${FAILED_PHASES[*]}"
  [ "$FAILED" = 0 ] && FAILED=${#FAILED_PHASES[@]}
fi
echo "TOTAL: $PASSED passed, $FAILED failed"
[ ${#FAILED_PHASES[@]} -eq 0 ] && [ "$FAILED" = 0 ]
