# shellcheck shell=bash
# Shell helpers for the measurement scripts (sourced, not run): a throwaway PostgreSQL on
# loopback and `router serve` processes on port 0.
#
#   . "$(dirname "$0")/lib.sh"
#
# PostgreSQL comes from Debian's `postgresql` package (initdb and pg_ctl, the newest
# /usr/lib/postgresql/*/bin, or $ROUTER_TEST_PG_BIN), like tests/it/common/postgres.rs: a
# fresh cluster in its own temporary directory, trust authentication for the user `router`,
# listening on 127.0.0.1 only. As root the server runs as `postgres` (PostgreSQL refuses root).
# Helpers report through global variables (LIB_*), so call them directly, never in $(...).

# Milliseconds since the epoch.
lib_now_ms() { date +%s%3N; }

# A free loopback TCP port (the kernel's choice; released before it is used, so racy in theory).
lib_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The directory with initdb and pg_ctl, or nothing.
lib_pg_bin() {
  if [ -n "${ROUTER_TEST_PG_BIN:-}" ]; then echo "$ROUTER_TEST_PG_BIN"; return; fi
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# Runs a PostgreSQL tool from $LIB_PG_BIN, as `postgres` when we are root.
lib_pg_run() {
  local tool=$1; shift
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$LIB_PG_BIN/$tool" "$@"
  else
    "$LIB_PG_BIN/$tool" "$@"
  fi
}

# Starts a fresh server in a new temporary directory. Sets LIB_PG_DIR (remove it with
# lib_pg_stop) and LIB_PG_URL (for `router serve --store`).
lib_pg_start() {
  LIB_PG_BIN=$(lib_pg_bin) || true
  [ -n "$LIB_PG_BIN" ] || { echo "no PostgreSQL binaries: apt-get install postgresql (or set ROUTER_TEST_PG_BIN)" >&2; return 1; }
  LIB_PG_DIR=$(mktemp -d)
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$LIB_PG_DIR"; fi
  local port
  port=$(lib_free_port)
  lib_pg_run initdb -D "$LIB_PG_DIR/data" -U router --auth=trust -E UTF8 --locale=C > "$LIB_PG_DIR/initdb.log" 2>&1 \
    || { cat "$LIB_PG_DIR/initdb.log" >&2; return 1; }
  lib_pg_run pg_ctl -D "$LIB_PG_DIR/data" start -w -t 60 -l "$LIB_PG_DIR/server.log" \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $LIB_PG_DIR" > /dev/null \
    || { cat "$LIB_PG_DIR/server.log" >&2; return 1; }
  # shellcheck disable=SC2034 # read by the sourcing script
  LIB_PG_URL="postgres://router:unused@127.0.0.1:$port/postgres"
}

# Stops the server started by lib_pg_start (immediately: nothing of it is kept) and removes
# its directory. Safe to call twice, and when none was started.
lib_pg_stop() {
  if [ -n "${LIB_PG_DIR:-}" ]; then
    lib_pg_run pg_ctl -D "$LIB_PG_DIR/data" stop -m immediate > /dev/null 2>&1 || true
    rm -rf "$LIB_PG_DIR"
  fi
  LIB_PG_DIR=
}

# Starts `$ROUTER_BIN serve --addr 127.0.0.1:0 ARGS...` with its stderr in LOG and waits (at
# most 60 s) for its "listening on" line. Sets LIB_ROUTER_PID and LIB_ROUTER_ADDR. The log
# level must let semantic_router::serve::run log at info (ROUTER_LOG); the environment passes.
lib_router_start() {
  local log=$1; shift
  : > "$log"
  "${ROUTER_BIN:-${CARGO_TARGET_DIR:-target}/release/router}" serve --addr 127.0.0.1:0 "$@" 2> "$log" &
  LIB_ROUTER_PID=$!
  LIB_ROUTER_ADDR=
  local deadline=$((SECONDS + 60))
  until [ -n "$LIB_ROUTER_ADDR" ]; do
    LIB_ROUTER_ADDR=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    [ -n "$LIB_ROUTER_ADDR" ] && break
    kill -0 "$LIB_ROUTER_PID" 2>/dev/null || { cat "$log" >&2; echo "the router exited before listening" >&2; return 1; }
    [ $SECONDS -lt $deadline ] || { cat "$log" >&2; echo "the router never listened" >&2; return 1; }
    sleep 0.01
  done
}

# Waits until http://ADDR/ready answers 200, at most TIMEOUT_S seconds; fails early when PID
# exits.
lib_wait_ready() {
  local addr=$1 pid=$2 timeout_s=$3
  local deadline=$((SECONDS + timeout_s))
  until [ "$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "http://$addr/ready")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "the router ($pid) exited before /ready" >&2; return 1; }
    [ $SECONDS -lt $deadline ] || { echo "http://$addr not ready within ${timeout_s}s" >&2; return 1; }
    sleep 0.02
  done
}

# Stops PID: SIGTERM, then SIGKILL after 10 s.
lib_stop() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A /proc/PID/status field (VmRSS, VmHWM) in whole MiB.
lib_status_mb() { awk -v k="$2:" '$1 == k {printf "%d", $2 / 1024}' "/proc/$1/status"; }
