#!/usr/bin/env bash
# Cold start and resident memory of `router serve` with the default archetypes.
#
#   scripts/footprint.sh [PROMPTS.jsonl] [REQUESTS]
#
# Runs the service twice on a free port with a fresh data directory (model files cached in
# models/): the first start embeds the archetypes and saves the index bundle, the second loads
# that bundle (the usual restart). Cold start = process start to the first 200 from /ready.
# After the second start it sends REQUESTS (default 300) /classify requests with `router bench`
# and reads VmRSS / VmHWM from /proc. Needs curl. Binary: $ROUTER_BIN or target/release/router.
set -euo pipefail

bin=${ROUTER_BIN:-${CARGO_TARGET_DIR:-target}/release/router}
prompts=${1:-}
requests=${2:-300}
data=$(mktemp -d)
log=$(mktemp)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$data" "$log"' EXIT

if [ -z "$prompts" ]; then
  # Without a prompts file, the shipped archetypes' texts (they are JSONL with `text`).
  prompts=$(mktemp)
  cat archetypes/examples/*.jsonl > "$prompts"
fi

now_ms() { date +%s%3N; }

# Starts the service, waits for /ready; prints the milliseconds it took.
start() {
  : > "$log"
  local t0; t0=$(now_ms)
  ROUTER_LOG=warn,semantic_router::serve::run=info "$bin" serve --addr 127.0.0.1:0 --data-dir "$data" 2> "$log" &
  pid=$!
  local addr=
  while [ -z "$addr" ]; do
    addr=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.005
  done
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/ready")" = 200 ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.01
  done
  echo "$(( $(now_ms) - t0 )) $addr"
}

status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }

out=$(mktemp)
start > "$out"; read -r first _ < "$out"
ready_rss=$(status_kb VmRSS)
kill "$pid"; wait "$pid" 2>/dev/null || true
start > "$out"; read -r second addr < "$out"
start_rss=$(status_kb VmRSS)
"$bin" bench --url "http://$addr" --prompts "$prompts" --requests "$requests" --concurrency 4 --json > /dev/null
echo "{\"cold_start_ms_first_run\": $first, \"cold_start_ms_saved_index\": $second," \
  "\"rss_mb_ready_first_run\": $(( ready_rss / 1024 )), \"rss_mb_ready\": $(( start_rss / 1024 ))," \
  "\"rss_mb_after_requests\": $(( $(status_kb VmRSS) / 1024 )), \"hwm_mb\": $(( $(status_kb VmHWM) / 1024 )), \"requests\": $requests}"
