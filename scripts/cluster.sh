#!/usr/bin/env bash
# Several Banter instances behind nginx on this machine, sharing PostgreSQL and Redis:
#
#   bash scripts/cluster.sh [INSTANCES]      # default 3; Ctrl-C (or SIGTERM) stops everything
#
# then open http://127.0.0.1:8080. nginx (Debian's nginx-light, installed if missing and root)
# balances HTTP and WebSocket upgrades over the instances and sets X-Forwarded-For/-Proto; the
# instances trust it (TRUSTED_PROXIES) and share one database and one Redis (REDIS_URL).
#
# Environment (all optional):
#   CLUSTER_PORT     nginx's port (8080); instance i listens on CLUSTER_PORT+i, and nginx also on
#                    CLUSTER_PORT+10+i for instance i alone (tests and debugging)
#   CLUSTER_BALANCE  round-robin (default) or failover (every request to instance 1 while it is up,
#                    then to the others: deterministic for tests)
#   DATABASE_URL     postgres://root@127.0.0.1:5432/banter_cluster (created when missing)
#   REDIS_URL        redis://127.0.0.1:6379
#   CLUSTER_DIR      where pids (instance-i.pid), logs and nginx.conf go (a new temp dir)
#   BANTER_SERVER    the server binary (target/release/server, built when missing)
# Every other variable (PUSHER_*, LIMIT_*, RUST_LOG, ...) reaches every instance unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

instances=${1:-3}
port=${CLUSTER_PORT:-8080}
balance=${CLUSTER_BALANCE:-round-robin}
database_url=${DATABASE_URL:-postgres://root@127.0.0.1:5432/banter_cluster}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
dir=${CLUSTER_DIR:-$(mktemp -d /tmp/banter-cluster.XXXXXX)}
server=${BANTER_SERVER:-target/release/server}
mkdir -p "$dir/nginx-temp"

case "$balance" in round-robin | failover) ;; *) echo "CLUSTER_BALANCE must be round-robin or failover" >&2; exit 2 ;; esac
[[ "$instances" =~ ^[1-9][0-9]?$ ]] || { echo "INSTANCES must be 1 to 99" >&2; exit 2; }

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's nginx-light"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
  else
    echo "nginx is needed: run 'sudo apt-get install nginx-light' (Debian's package)" >&2
    exit 1
  fi
fi
nginx=$(command -v nginx || echo /usr/sbin/nginx)

if [ ! -x "$server" ]; then
  echo "building the release server (cargo leptos build --release --split)"
  . scripts/toolchain.sh
  ensure_toolchain
  cargo leptos build --release --split
fi

# The database: created when it does not exist yet (PostgreSQL; the instances migrate it).
case "$database_url" in
  postgres://* | postgresql://*)
    name=${database_url##*/}
    name=${name%%\?*}
    admin=${database_url%/*}/postgres
    if ! command -v psql >/dev/null; then
      echo "psql is needed to create the database $name (Debian's postgresql-client)" >&2
      exit 1
    fi
    if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
      psql "$admin" -qc "CREATE DATABASE \"$name\"" >/dev/null
      echo "created the database $name"
    fi
    ;;
esac

pids=()
nginx_pid=""
stop() {
  trap - INT TERM EXIT
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 0' INT TERM

wait_healthy() {
  local url=$1 deadline=$((SECONDS + 60))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" = 200 ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "$url did not answer 200 within 60 s" >&2; return 1; fi
    sleep 0.2
  done
}

# Instance 1 starts alone first: it migrates the database and generates the shared Pusher
# credentials (kept in the database), which the others then read.
upstream=""
pinned=""
for i in $(seq 1 "$instances"); do
  instance_port=$((port + i))
  LEPTOS_SITE_ADDR="127.0.0.1:$instance_port" LEPTOS_SITE_ROOT=target/site LEPTOS_OUTPUT_NAME=banter \
    DATABASE_URL="$database_url" REDIS_URL="$redis_url" TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1}" \
    UPLOADS_DIR="${UPLOADS_DIR:-$dir/uploads}" \
    "$server" >"$dir/instance-$i.log" 2>&1 &
  pids+=($!)
  echo $! >"$dir/instance-$i.pid"
  [ "$i" = 1 ] && wait_healthy "http://127.0.0.1:$instance_port/healthz"
  if [ "$balance" = failover ] && [ "$i" != 1 ]; then backup=" backup"; else backup=""; fi
  upstream+="    server 127.0.0.1:$instance_port max_fails=1 fail_timeout=2s$backup;"$'\n'
  pinned+="  upstream instance$i { server 127.0.0.1:$instance_port; }"$'\n'
  pinned+="  server { listen 127.0.0.1:$((port + 10 + i)); location / { proxy_pass http://instance$i; } }"$'\n'
done
for i in $(seq 2 "$instances"); do wait_healthy "http://127.0.0.1:$((port + i))/healthz"; done

cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/nginx-temp/body;
  proxy_temp_path $dir/nginx-temp/proxy;
  fastcgi_temp_path $dir/nginx-temp/fastcgi;
  uwsgi_temp_path $dir/nginx-temp/uwsgi;
  scgi_temp_path $dir/nginx-temp/scgi;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  # Every request and WebSocket upgrade goes to an instance with what it needs to know who asked.
  proxy_http_version 1.1;
  proxy_set_header Host \$http_host;
  proxy_set_header Upgrade \$http_upgrade;
  proxy_set_header Connection \$connection_upgrade;
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  proxy_set_header X-Forwarded-Proto \$scheme;
  proxy_set_header X-Request-Id \$request_id;
  proxy_read_timeout 1h;
  proxy_send_timeout 1h;
  proxy_buffering off;
  client_max_body_size 30m;
  proxy_next_upstream error timeout;
  upstream banter {
$upstream  }
  server { listen 127.0.0.1:$port; location / { proxy_pass http://banter; } }
$pinned}
EOF
"$nginx" -c "$dir/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
wait_healthy "http://127.0.0.1:$port/healthz"
echo "Banter: $instances instances behind nginx at http://127.0.0.1:$port ($balance); state in $dir"
wait "$nginx_pid"
