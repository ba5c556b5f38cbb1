#!/usr/bin/env bash
# kill -9 drills against the release binary: a rebuild (and its bundle swap) and a policy
# reload, each killed at a random moment, ROUNDS times (default 10).
#
#   scripts/fault-drill.sh [ROUNDS]
#
# One data directory for the whole drill. Each round: start the service, send an acknowledged
# batch of archetypes through the admin API (a rebuild starts), classify while it runs, SIGKILL
# at a random 0-500 ms; check that a complete bundle is on disk (bundle/CURRENT names a version
# with a manifest); restart; rewrite the policy with a new version, SIGHUP, SIGKILL at a random
# 0-20 ms; restart and check /ready (200, the new policy version), /classify (200) and that
# every archetype acknowledged so far is listed. Prints a summary; exits non-zero when any
# round lost something. Needs curl and jq. Binary: $ROUTER_BIN or target/release/router.
set -euo pipefail

bin=${ROUTER_BIN:-${CARGO_TARGET_DIR:-target}/release/router}
rounds=${1:-10}
work=$(mktemp -d)
data=$work/data
policy=$work/policy.toml
log=$work/log
token=drill-token
pid=
addr=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cp archetypes/policy.toml "$policy"

runs=0 recovered=0 lost=0 acked=0 server_errors=0 no_bundle=0 requests=0
export ROUTER_ADMIN_TOKEN=$token ROUTER_MAX_IN_FLIGHT=256 ROUTER_QUEUE_BUDGET_MS=600000

start() {
  : > "$log"
  ROUTER_LOG=warn,semantic_router::serve::run=info "$bin" serve --addr 127.0.0.1:0 \
    --data-dir "$data" --policy "$policy" 2> "$log" &
  pid=$!
  addr=
  while [ -z "$addr" ]; do
    addr=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.01
  done
  local deadline=$((SECONDS + 300))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/ready")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || { echo "not ready in time" >&2; return 1; }
    sleep 0.05
  done
}

kill9() { kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# Sets $code; any 5xx counts (the drill only classifies after /ready answered 200).
classify() {
  code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"prompt": "Write a bash script that renames every .txt file to .md"}' "http://$addr/classify" || echo 000)
  requests=$((requests + 1))
  case $code in 5*) server_errors=$((server_errors + 1)) ;; esac
}

bundle_on_disk() {
  local current
  current=$(cat "$data/index/CURRENT" 2>/dev/null || true)
  [ -n "$current" ] && [ -f "$data/index/$current/manifest.json" ]
}

start
for round in $(seq 1 "$rounds"); do
  runs=$((runs + 1))
  batch=$(jq -cn --arg r "$round" '{examples: [range(0; 20) | {id: "drill-\($r)-\(.)", bucket: "classification",
    text: "Sort customer complaint \($r)-\(.) about a damaged parcel into billing, shipping or product"}]}')
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$batch" "http://$addr/archetypes")
  [ "$code" = 202 ] && acked=$((acked + 20))
  delay=$((RANDOM % 500))
  end=$(( $(date +%s%3N) + delay ))
  while [ "$(date +%s%3N)" -lt $end ]; do classify; done
  kill9
  bundle_on_disk || { no_bundle=$((no_bundle + 1)); echo "round $round: no complete bundle on disk" >&2; }
  start

  sed -i "s/^policy_version = .*/policy_version = \"2026-10-01.$round\"/" "$policy"
  kill -HUP "$pid"
  sleep "0.0$((RANDOM % 20))"
  kill9
  ok=1
  start || ok=0
  if [ $ok = 1 ]; then
    version=$(curl -s "http://$addr/ready" | jq -r .policy_version)
    [ "$version" = "2026-10-01.$round" ] || { ok=0; echo "round $round: policy $version" >&2; }
    classify
    [ "$code" = 200 ] || ok=0
    listed=$(curl -s -H "Authorization: Bearer $token" \
      "http://$addr/archetypes?bucket=classification&limit=1000" | jq '[.archetypes[].id | select(startswith("drill-"))] | length')
    missing=$((acked - listed))
    [ $missing -le 0 ] || { ok=0; lost=$((lost + missing)); echo "round $round: $missing lost" >&2; }
  fi
  [ $ok = 1 ] && recovered=$((recovered + 1))
  echo "round $round: rebuild killed after ${delay} ms, recovered=$ok, acknowledged so far $acked" >&2
done

printf 'runs %d, recovered %d, acknowledged archetypes %d, lost %d, moments with no bundle on disk %d, 5xx %d of %d classify requests\n' \
  "$runs" "$recovered" "$acked" "$lost" "$no_bundle" "$server_errors" "$requests"
[ "$recovered" = "$runs" ] && [ "$lost" = 0 ] && [ "$no_bundle" = 0 ] && [ "$server_errors" = 0 ]
