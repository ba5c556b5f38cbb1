#!/usr/bin/env bash
# Load matrix and soak of `router serve` on loopback, with Debian's `wrk` (apt-get install wrk).
#
#   scripts/load.sh [SECONDS_PER_RUN] [SOAK_SECONDS]
#
# Starts the real binary ($ROUTER_BIN or target/release/router) with a fresh data directory,
# once with the decision cache on and once off (ROUTER_CACHE_BYTES=0), and runs wrk
# (scripts/load.lua) at 1, 4, 16, 64 and 256 connections for SECONDS_PER_RUN (default 10) with
# short prompts (CLINC150 texts) and long ones (Dolly instructions with their context,
# 1,500-4,000 characters). One JSON line a run: successful decisions a second, each status
# apart, p50/p99/max over all answers, and the service's RSS after the run. Then, unless
# SOAK_SECONDS is 0 (default 600), a soak at 64 connections with long prompts ($SOAK_PROMPTS=short
# for short ones) and the cache off, reporting RSS at ready, peak (VmHWM) and end. Finally `router bench` at 256 clients
# times the 429s apart (refusals must be fast). Bounded: every run has a fixed duration.
# HONOUR_RETRY_AFTER=1: wrk's connections wait a 429's Retry-After before their next request
# (by default they send it at once, so refusals cost the service CPU as fast as it answers).
set -euo pipefail

secs=${1:-10}
soak=${2:-600}
soak_prompts=${SOAK_PROMPTS:-long}
bin=${ROUTER_BIN:-${CARGO_TARGET_DIR:-target}/release/router}
data_root=${SHARED_DATA:-../shared/data}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

python3 - "$data_root" "$work" <<'PY'
import json, sys
root, work = sys.argv[1], sys.argv[2]
short = [json.loads(l)["text"] for l in open(f"{root}/clinc150.jsonl")][:2000]
long = []
for l in open(f"{root}/dolly.jsonl"):
    r = json.loads(l)
    text = f"{r['instruction']}\n\n{r.get('context', '')}"
    if 1500 <= len(text) <= 4000:
        long.append(text)
long = long[:500]
for name, texts in (("short", short), ("long", long)):
    with open(f"{work}/{name}.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps({"prompt": t}) + "\n")
    with open(f"{work}/{name}.prompts.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
PY

rss_mb() { awk '$1 == "'"$1"':" {printf "%d", $2 / 1024}' "/proc/$pid/status"; }

start() {
  local log=$work/log
  : > "$log"
  ROUTER_LOG=warn,semantic_router::serve::run=info ROUTER_DECISION_LOG=off \
    "$bin" serve --addr 127.0.0.1:0 --data-dir "$work/data" "$@" 2> "$log" &
  pid=$!
  addr=
  until [ -n "$addr" ]; do
    addr=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.01
  done
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/ready")" = 200 ]; do sleep 0.02; done
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# SECONDS_PER_RUN 0 skips the matrix (a soak alone).
for cache in on off; do
  [ "$secs" -gt 0 ] || break
  if [ "$cache" = off ]; then export ROUTER_CACHE_BYTES=0; else unset ROUTER_CACHE_BYTES; fi
  start
  ready=$(rss_mb VmRSS)
  echo "{\"cache\": \"$cache\", \"rss_mb_ready\": $ready}"
  for prompts in short long; do
    for c in 1 4 16 64 256; do
      threads=$(( c < 2 ? 1 : 2 ))
      result=$(BODIES=$work/$prompts.jsonl wrk -t"$threads" -c"$c" -d"${secs}s" --timeout 10s \
        -s "$here/load.lua" "http://$addr" | tail -n1)
      echo "{\"cache\": \"$cache\", \"prompts\": \"$prompts\", \"clients\": $c, \"rss_mb_after\": $(rss_mb VmRSS), ${result#\{}"
      # Let the work admitted before wrk stopped drain, so the next run starts on an idle service.
      sleep 3
    done
  done
  stop
done
unset ROUTER_CACHE_BYTES

if [ "$soak" -gt 0 ]; then
  ROUTER_CACHE_BYTES=0 start
  ready=$(rss_mb VmRSS)
  peak_sampled=$ready
  BODIES=$work/$soak_prompts.jsonl wrk -t2 -c64 -d"${soak}s" --timeout 10s -s "$here/load.lua" \
    "http://$addr" > "$work/soak.out" &
  wrk_pid=$!
  while kill -0 "$wrk_pid" 2>/dev/null; do
    now=$(rss_mb VmRSS); [ "$now" -gt "$peak_sampled" ] && peak_sampled=$now
    sleep 5
  done
  sleep 2
  echo "{\"soak_seconds\": $soak, \"clients\": 64, \"prompts\": \"$soak_prompts\", \"cache\": \"off\"," \
    "\"rss_mb_ready\": $ready, \"rss_mb_peak\": $(rss_mb VmHWM), \"rss_mb_end\": $(rss_mb VmRSS)," \
    "\"result\": $(tail -n1 "$work/soak.out")}"
  stop
fi

# Refusals timed apart: 256 clients past capacity, cache off.
ROUTER_CACHE_BYTES=0 start
"$bin" bench --url "http://$addr" --prompts "$work/long.prompts.jsonl" --requests 6000 \
  --concurrency 256 --no-embed-baseline --json \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("concurrency","requests","throughput_rps","p50_ms","p99_ms","non_200_by_status","refusal_429_p50_ms","refusal_429_p99_ms")}))'
stop
