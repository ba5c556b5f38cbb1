#!/usr/bin/env bash
# Memory and start time of `router serve` for N tenants with E examples each, on the shared
# store (--store postgres://…, a throwaway PostgreSQL on loopback), and the time one new
# example takes to reach the other replicas.
#
#   scripts/tenant-scale.sh [TENANT_COUNTS] [EXAMPLES_PER_TENANT]    (defaults "1 10 100", 1000)
#
# For each N: a fresh PostgreSQL (scripts/lib.sh: initdb + pg_ctl from Debian's `postgresql`
# package, as `postgres` when root) and a tenants file declaring t0001…tN (`[tenants.NAME]`,
# the main policy, shared examples included). Then, each replica with its own data directory:
#   1. replica A starts on an empty data directory (embeds the shipped archetypes; every tenant
#      serves the shared index): first_start_ms;
#   2. A is seeded with E real texts per tenant from ../shared/data (CLINC150, Banking77,
#      Dolly, SNIPS, GSM8K, MBPP, each mapped to a bucket of archetypes/policy.toml; distinct
#      within a tenant, reused across tenants when N×E exceeds the pool) through
#      POST /archetypes in batches of $TENANT_SCALE_BATCH (500), admin token: seed_post_ms
#      (every batch acknowledged) and seed_ms (until every tenant's /classify serves the
#      index_version of its last acknowledgement), then A's VmRSS and VmHWM, and the size of
#      its saved tenant bundles;
#   3. A is stopped; replica B starts on an empty data directory (a new pod: it builds every
#      index from the store): cold_start_ms (process start to /ready 200), VmRSS, VmHWM;
#   4. A restarts on its own data directory (saved bundles): restart_ms, VmRSS, VmHWM; replica
#      C starts on a copy of B's data directory; one new example for the last tenant is added
#      on B, and propagation_ms is the time from its 202 until C and A serve its index_version
#      for that tenant (polled every ~20 ms; the store notifies, else replicas read every
#      $ROUTER_STORE_SYNC_MS, default 2000).
# Every replica reads its own copy of a snapshot of archetypes/ (taken at the start), so an
# edit of the repository during the run cannot change the shipped set.
# One JSON line per N on stdout, with nproc and the load average at the start and end of N.
# Progress on stderr. Every wait is bounded by $TENANT_SCALE_TIMEOUT_S (default 7200 s;
# propagation by $TENANT_SCALE_PROPAGATION_TIMEOUT_S, 120 s). Needs curl, jq, python3 and
# PostgreSQL. Binary: $ROUTER_BIN or target/release/router. Data: $SHARED_DATA or
# ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

counts=${1:-"1 10 100"}
per=${2:-1000}
batch=${TENANT_SCALE_BATCH:-500}
timeout_s=${TENANT_SCALE_TIMEOUT_S:-7200}
propagation_timeout_s=${TENANT_SCALE_PROPAGATION_TIMEOUT_S:-120}
sync_ms=${ROUTER_STORE_SYNC_MS:-2000}
data_root=${SHARED_DATA:-../shared/data}
export ROUTER_BIN=${ROUTER_BIN:-${CARGO_TARGET_DIR:-target}/release/router}
token=scale-t0ken
export ROUTER_ADMIN_TOKEN=$token ROUTER_DECISION_LOG=off
export ROUTER_LOG=warn,semantic_router::serve::run=info,semantic_router::pipeline::compose=info,semantic_router::live::watch=info
unset ROUTER_STORE ROUTER_TENANTS ROUTER_DATA_DIR

for tool in curl jq python3; do
  command -v "$tool" > /dev/null || { echo "tenant-scale: needs $tool" >&2; exit 2; }
done
[ -x "$ROUTER_BIN" ] || { echo "tenant-scale: no $ROUTER_BIN (cargo build --release)" >&2; exit 2; }
[ -d "$data_root" ] || { echo "tenant-scale: no data folder $data_root" >&2; exit 2; }
max_n=0
for n in $counts; do
  case $n in '' | *[!0-9]* | 0) echo "tenant-scale: tenant counts are positive integers: $n" >&2; exit 2 ;; esac
  [ "$n" -gt "$max_n" ] && max_n=$n
done
case $per in '' | *[!0-9]* | 0) echo "tenant-scale: examples per tenant is a positive integer" >&2; exit 2 ;; esac

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill -9 "$p" 2>/dev/null || true; done
  lib_pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "tenant-scale: $*" >&2; }
tenant_name() { printf 't%04d' "$1"; }

# The texts: one pool of distinct texts (normalised like the router's dedup, shipped
# archetypes left out), datasets interleaved so every tenant gets a mix; per tenant i its
# batches (seed/tNNNN-B.json), a /classify body for its last seeded text (…-last.json), and
# one more text for the propagation probe (…-probe.json, …-probe-classify.json).
mkdir -p "$work/seed"
cp -r archetypes "$work/archetypes"
log "preparing $max_n × $per examples from $data_root"
python3 - "$data_root" "$work/seed" "$max_n" "$per" "$batch" "$work/archetypes/examples" <<'PY'
import glob, json, sys
root, out, max_n, per, batch, shipped = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def norm(t): return " ".join(t.split()).lower()
dolly = {"closed_qa": "grounded_qa", "general_qa": "open_qa", "information_extraction": "extraction"}
def bucket(name, label):
    if name == "clinc150": return "translation" if label == "translate" else "open_qa"
    if name == "banking77": return "open_qa"
    if name == "snips": return "chit_chat"
    if name == "gsm8k": return "math_reasoning"
    if name == "mbpp": return "code"
    return dolly.get(label, label)
seen = set()
for path in glob.glob(f"{shipped}/*.jsonl"):
    for line in open(path):
        if line.strip():
            seen.add(norm(json.loads(line)["text"]))
sources = []
for name in ("clinc150", "banking77", "dolly", "snips", "gsm8k", "mbpp"):
    rows = []
    for line in open(f"{root}/{name}.jsonl"):
        r = json.loads(line)
        text = r["text"].strip()
        key = norm(text)
        if not text or len(text) > 1000 or key in seen:
            continue
        seen.add(key)
        rows.append((text, bucket(name, r.get("label"))))
    sources.append(rows)
pool = []
for i in range(max(len(s) for s in sources)):
    pool.extend(s[i] for s in sources if i < len(s))
if per + 1 > len(pool):
    sys.exit(f"only {len(pool)} distinct texts; ask for fewer than {len(pool)} examples per tenant")
for t in range(1, max_n + 1):
    name = f"t{t:04d}"
    start = (t - 1) * per
    own = [pool[(start + j) % len(pool)] for j in range(per + 1)]
    examples = [{"id": f"{name}-{j:06d}", "bucket": b, "text": x, "tenant": name} for j, (x, b) in enumerate(own[:per])]
    for k in range(0, per, batch):
        with open(f"{out}/{name}-{k // batch:05d}.json", "w") as f:
            json.dump({"examples": examples[k:k + batch]}, f)
    with open(f"{out}/{name}-last.json", "w") as f:
        json.dump({"prompt": own[per - 1][0], "tenant": name}, f)
    x, b = own[per]
    with open(f"{out}/{name}-probe.json", "w") as f:
        json.dump({"examples": [{"id": f"{name}-probe", "bucket": b, "text": x, "tenant": name}]}, f)
    with open(f"{out}/{name}-probe-classify.json", "w") as f:
        json.dump({"prompt": x, "tenant": name}, f)
print(f"pool of {len(pool)} distinct texts", file=sys.stderr)
PY

# Starts a replica on DATA_DIR (log LOG, archetypes DATA_DIR.archetypes, a private copy) and
# waits for /ready. Sets pid, addr, ready_ms (process start to /ready 200) and listen_ms.
start_replica() {
  local data=$1 log=$2 t0
  [ -d "$data.archetypes" ] || cp -r "$work/archetypes" "$data.archetypes"
  t0=$(lib_now_ms)
  lib_router_start "$log" --data-dir "$data" --archetypes "$data.archetypes/examples" \
    --policy "$data.archetypes/policy.toml" --store "$LIB_PG_URL" --tenants "$tenants_file" \
    --store-sync-ms "$sync_ms"
  pid=$LIB_ROUTER_PID addr=$LIB_ROUTER_ADDR
  pids+=("$pid")
  listen_ms=$(( $(lib_now_ms) - t0 ))
  lib_wait_ready "$addr" "$pid" "$timeout_s" || { tail -n 20 "$log" >&2; exit 1; }
  ready_ms=$(( $(lib_now_ms) - t0 ))
}

# Stops a replica and forgets it.
stop_replica() {
  local p rest=()
  lib_stop "$1"
  for p in ${pids[@]+"${pids[@]}"}; do [ "$p" = "$1" ] || rest+=("$p"); done
  pids=(${rest[@]+"${rest[@]}"})
}

# How the shared index came about at start, from the log: loaded or built.
shared_index_origin() {
  if grep -q 'index bundle loaded' "$1"; then echo loaded
  elif grep -q 'index built from archetypes' "$1"; then echo built
  else echo unknown; fi
}

# The index_version ADDR serves for the /classify body in FILE (empty on failure).
served_version() {
  curl -s --max-time 10 -H 'Content-Type: application/json' --data-binary @"$2" \
    "http://$1/classify" | jq -r '.index_version // empty' 2>/dev/null || true
}

# POSTs FILE to ADDR's /archetypes; sets ack_version; exits on anything but 202.
post_examples() {
  local addr=$1 file=$2 code
  code=$(curl -s -o "$work/ack.json" -w '%{http_code}' --max-time 300 -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data-binary @"$file" "http://$addr/archetypes" || echo 000)
  [ "$code" = 202 ] || { log "POST $file: $code $(head -c 500 "$work/ack.json")"; exit 1; }
  ack_version=$(jq -r .index_version "$work/ack.json")
}

nproc=$(nproc)
for n in $counts; do
  load_start=$(cut -d' ' -f1-3 /proc/loadavg)
  dir=$work/n$n
  mkdir -p "$dir"
  tenants_file=$dir/tenants.toml
  for t in $(seq 1 "$n"); do echo "[tenants.$(tenant_name "$t")]"; done > "$tenants_file"
  lib_pg_start
  log "N=$n: PostgreSQL at ${LIB_PG_URL##*@}"

  # 1. A on an empty data directory; every tenant serves the shared index.
  start_replica "$dir/a" "$dir/a.log"
  a_pid=$pid a_addr=$addr first_start_ms=$ready_ms
  log "N=$n: replica A ready in ${first_start_ms} ms; seeding $n × $per"

  # 2. Seeding through the admin API.
  declare -A expected=()
  t0=$(lib_now_ms)
  for t in $(seq 1 "$n"); do
    name=$(tenant_name "$t")
    for file in "$work/seed/$name"-[0-9]*.json; do
      post_examples "$a_addr" "$file"
      expected[$name]=$ack_version
    done
  done
  seed_post_ms=$(( $(lib_now_ms) - t0 ))
  deadline=$((SECONDS + timeout_s))
  for t in $(seq 1 "$n"); do
    name=$(tenant_name "$t")
    until [ "$(served_version "$a_addr" "$work/seed/$name-last.json")" = "${expected[$name]}" ]; do
      [ $SECONDS -lt $deadline ] || { log "N=$n: $name never served ${expected[$name]}"; exit 1; }
      kill -0 "$a_pid" 2>/dev/null || { tail -n 20 "$dir/a.log" >&2; exit 1; }
      sleep 0.1
    done
  done
  seed_ms=$(( $(lib_now_ms) - t0 ))
  seed_rss=$(lib_status_mb "$a_pid" VmRSS) seed_hwm=$(lib_status_mb "$a_pid" VmHWM)
  bundles_mb=$(du -sm "$dir/a/tenants" 2>/dev/null | cut -f1 || echo 0)
  log "N=$n: seeded in ${seed_ms} ms (acknowledged after ${seed_post_ms} ms), RSS ${seed_rss} MiB"
  stop_replica "$a_pid"

  # 3. B: a new replica on an empty data directory builds every index from the store.
  start_replica "$dir/b" "$dir/b.log"
  b_pid=$pid b_addr=$addr cold_ms=$ready_ms cold_listen_ms=$listen_ms
  cold_rss=$(lib_status_mb "$b_pid" VmRSS) cold_hwm=$(lib_status_mb "$b_pid" VmHWM)
  cold_origin=$(shared_index_origin "$dir/b.log")
  log "N=$n: cold start (empty data directory) ready in ${cold_ms} ms, RSS ${cold_rss} MiB"

  # 4. A again on its saved bundles, C on a copy of B's; one example added on B.
  start_replica "$dir/a" "$dir/a2.log"
  a_pid=$pid a_addr=$addr restart_ms=$ready_ms
  restart_rss=$(lib_status_mb "$a_pid" VmRSS) restart_hwm=$(lib_status_mb "$a_pid" VmHWM)
  restart_origin=$(shared_index_origin "$dir/a2.log")
  cp -a "$dir/b" "$dir/c"
  start_replica "$dir/c" "$dir/c.log"
  c_pid=$pid c_addr=$addr c_ready_ms=$ready_ms
  log "N=$n: restart on saved bundles ready in ${restart_ms} ms; C in ${c_ready_ms} ms"

  name=$(tenant_name "$n")
  probe=$work/seed/$name-probe-classify.json
  t0=$(lib_now_ms)
  post_examples "$b_addr" "$work/seed/$name-probe.json"
  acked=$(lib_now_ms)
  probe_post_ms=$((acked - t0))
  declare -A took=()
  deadline=$((SECONDS + propagation_timeout_s))
  while [ "${#took[@]}" -lt 3 ]; do
    for replica in b c a; do
      [ -z "${took[$replica]:-}" ] || continue
      case $replica in b) at=$b_addr ;; c) at=$c_addr ;; a) at=$a_addr ;; esac
      if [ "$(served_version "$at" "$probe")" = "$ack_version" ]; then took[$replica]=$(( $(lib_now_ms) - acked )); fi
    done
    [ "${#took[@]}" -lt 3 ] || break
    [ $SECONDS -lt $deadline ] || { log "N=$n: the new example did not reach every replica in ${propagation_timeout_s}s (${!took[*]} did)"; exit 1; }
    sleep 0.02
  done
  on_b=${took[b]} on_c=${took[c]} on_a=${took[a]}
  propagation_ms=$(( on_c > on_a ? on_c : on_a ))
  log "N=$n: the new example served on B after $on_b ms, on C $on_c ms, on A $on_a ms"

  after_rss=$(lib_status_mb "$b_pid" VmRSS)
  # Should stay 0 with private archetype copies (see the top): file-watch reloads.
  watch_reloads=$(cat "$dir"/*.log | grep -c 'archetype files changed' || true)
  for p in "$a_pid" "$b_pid" "$c_pid"; do stop_replica "$p"; done
  lib_pg_stop
  rm -rf "$dir"
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)

  jq -cn --argjson n "$n" --argjson per "$per" --argjson batch "$batch" --argjson sync_ms "$sync_ms" \
    --argjson nproc "$nproc" --arg load_start "$load_start" --arg load_end "$load_end" \
    --argjson first_start_ms "$first_start_ms" --argjson seed_post_ms "$seed_post_ms" \
    --argjson seed_ms "$seed_ms" --argjson seed_rss "$seed_rss" --argjson seed_hwm "$seed_hwm" \
    --argjson bundles_mb "$bundles_mb" \
    --argjson cold_ms "$cold_ms" --argjson cold_listen_ms "$cold_listen_ms" --argjson cold_rss "$cold_rss" \
    --argjson cold_hwm "$cold_hwm" --arg cold_origin "$cold_origin" \
    --argjson restart_ms "$restart_ms" --argjson restart_rss "$restart_rss" --argjson restart_hwm "$restart_hwm" \
    --arg restart_origin "$restart_origin" --argjson c_ready_ms "$c_ready_ms" \
    --argjson probe_post_ms "$probe_post_ms" --argjson on_b "$on_b" --argjson on_c "$on_c" \
    --argjson on_a "$on_a" --argjson propagation_ms "$propagation_ms" --argjson after_rss "$after_rss" \
    --argjson watch_reloads "$watch_reloads" \
    '{tenants: $n, examples_per_tenant: $per, tenant_examples_total: ($n * $per), batch: $batch,
      store_sync_ms: $sync_ms, nproc: $nproc,
      loadavg_start: ($load_start | split(" ") | map(tonumber)),
      loadavg_end: ($load_end | split(" ") | map(tonumber)),
      first_start_ms: $first_start_ms,
      seed_post_ms: $seed_post_ms, seed_ms: $seed_ms,
      seed_examples_per_s: (if $seed_ms > 0 then ($n * $per * 1000 / $seed_ms | floor) else null end),
      seed_rss_mb: $seed_rss, seed_hwm_mb: $seed_hwm, tenant_bundles_on_disk_mb: $bundles_mb,
      cold_start_ms: $cold_ms, cold_start_listen_ms: $cold_listen_ms, cold_start_shared_index: $cold_origin,
      cold_rss_mb: $cold_rss, cold_hwm_mb: $cold_hwm,
      restart_saved_ms: $restart_ms, restart_saved_shared_index: $restart_origin,
      restart_saved_rss_mb: $restart_rss, restart_saved_hwm_mb: $restart_hwm,
      copied_data_dir_start_ms: $c_ready_ms,
      propagation: {post_ms: $probe_post_ms, writer_ms: $on_b, replica2_ms: $on_c, replica3_ms: $on_a},
      propagation_ms: $propagation_ms, writer_rss_mb_after_probe: $after_rss,
      archetype_file_watch_reloads: $watch_reloads}'
  unset expected took
done
