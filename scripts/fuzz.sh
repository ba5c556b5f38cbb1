#!/usr/bin/env bash
# Coverage-guided fuzzing of the router's parsers with AFL++ through cargo-afl (stable
# toolchain; no nightly needed). Targets (fuzz/src/lib.rs):
#   classify_request  a /classify or /classify/batch JSON body → wire type → pipeline input
#   policy            a policy TOML file → parsed and validated Policy
#   archetypes        archetype JSONL (strict and lenient readers) and archetype-journal lines
#   manifest          an index bundle's manifest.json → BundleManifest, written back, re-read
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 30 s, every target)
# Builds fuzz/ (its own workspace) with instrumentation, seeds each target from
# fuzz/corpus/<target> with the dictionaries in fuzz/dict, runs it for the given time, prints
# executions, corpus and findings per target, and exits 1 if any target crashed. Findings are
# kept in fuzz/out/<target>/default/{crashes,hangs}; replay one with
#   fuzz/target/release/<target> < fuzz/out/<target>/default/crashes/<file>
# Installs cargo-afl (crates.io) on first use; its install builds AFL++ from the sources the
# crate carries (no download). AFL_OPT_LEVEL (default 1 here) is the targets' -C opt-level:
# 1 keeps the instrumented build of every dependency affordable on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(classify_request policy archetypes manifest)

export CARGO_TERM_COLOR=never
if ! cargo afl --version >/dev/null 2>&1; then
    echo "installing cargo-afl (cargo install --locked cargo-afl)"
    cargo install --locked cargo-afl
fi
# AFL++ itself (afl-fuzz and the runtime linked into the targets), built once per machine.
afl_help=$(cargo afl fuzz -h 2>&1 || true)   # afl-fuzz -h exits 1
if [[ "$afl_help" != *afl-fuzz* ]]; then
    echo "building AFL++ (cargo afl config --build)"
    cargo afl config --build
fi

echo "building the fuzz targets (instrumented; the first build compiles every dependency)"
start=$(date +%s)
AFL_OPT_LEVEL="${AFL_OPT_LEVEL:-1}" cargo afl build --release --locked --manifest-path fuzz/Cargo.toml
echo "built in $(( $(date +%s) - start )) s"

# Two shared cores: no CPU binding, no frequency check, no core-dump handler to insist on,
# plain log lines instead of the curses screen.
export AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_QUIET=1

field() { sed -n "s/^$2 *: *//p" "$1" | head -1; }
failed=()
summary=()
for t in "${targets[@]}"; do
    out="fuzz/out/$t"
    rm -rf "$out"
    mkdir -p "$out"
    echo
    echo "== fuzz $t for ${seconds} s =="
    rc=0
    cargo afl fuzz -V "$seconds" -i "fuzz/corpus/$t" -o "$out" \
        -x fuzz/dict/json.dict -x "fuzz/dict/$t.dict" \
        -- "fuzz/target/release/$t" >"$out/afl.log" 2>&1 || rc=$?
    stats="$out/default/fuzzer_stats"
    if [ ! -f "$stats" ]; then
        tail -30 "$out/afl.log"
        echo "$t: afl-fuzz did not run (exit $rc)"
        failed+=("$t")
        continue
    fi
    execs=$(field "$stats" execs_done)
    crashes=$(field "$stats" saved_crashes)
    hangs=$(field "$stats" saved_hangs)
    line="$t: $execs executions ($(field "$stats" execs_per_sec)/s), corpus $(field "$stats" corpus_count), edges covered $(field "$stats" bitmap_cvg), crashes $crashes, hangs $hangs"
    echo "$line"
    summary+=("$line")
    if [ "${crashes:-0}" != "0" ]; then
        failed+=("$t")
        for f in "$out"/default/crashes/id:*; do
            echo "--- $f"
            head -c 300 "$f" | od -c | head -8
            "fuzz/target/release/$t" <"$f" 2>&1 | grep -m3 -A2 "panicked" || true
        done
    fi
done

echo
echo "== fuzz summary (${seconds} s per target) =="
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/out/<target>/default/crashes)"
    exit 1
fi
echo "no crashes"
