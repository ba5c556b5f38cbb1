#!/usr/bin/env bash
# Measure the shipped archetypes (archetypes/examples/*.jsonl) on real task prompts from
# ../shared/data mapped onto the default buckets (issue 4, item 6).
#
# Usage: scripts/eval-shipped.sh [dev|heldout|all] [extra router eval args, e.g. --compare]
#   dev:     Dolly every 20th row from offset 0, GSM8K every 40th row, MBPP every 4th row
#   heldout: Dolly every 20th row from offset 10, GSM8K every 40th from offset 20, MBPP every 4th from offset 2
#   all:     every row of Dolly, GSM8K and MBPP (slow: ~10 minutes on two cores)
# Env: ROUTER (binary, default target/release/router), DATA (default ../shared/data),
#      OUT (working dir, default a fresh temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
sample="${1:-dev}"; shift || true
ROUTER="${ROUTER:-target/release/router}"
DATA="${DATA:-../shared/data}"
OUT="${OUT:-$(mktemp -d)}"
if [ ! -d "$DATA" ]; then echo "skipped: $DATA is absent" >&2; exit 0; fi
mkdir -p "$OUT"
cat archetypes/examples/*.jsonl > "$OUT/train.jsonl"
python3 - "$sample" "$DATA" "$OUT" <<'PY'
import json, sys
sample, data, out = sys.argv[1:4]
dolly_map = {"classification": "classification", "information_extraction": "extraction",
             "summarization": "summarization", "closed_qa": "grounded_qa", "open_qa": "open_qa",
             "general_qa": "open_qa", "brainstorming": "brainstorming",
             "creative_writing": "creative_writing"}
plan = {"dev": {"dolly": (20, 0), "gsm8k": (40, 0), "mbpp": (4, 0)},
        "heldout": {"dolly": (20, 10), "gsm8k": (40, 20), "mbpp": (4, 2)},
        "all": {"dolly": (1, 0), "gsm8k": (1, 0), "mbpp": (1, 0)}}[sample]
label_of = {"dolly": lambda r: dolly_map[r["label"]], "gsm8k": lambda r: "math_reasoning",
            "mbpp": lambda r: "code"}
for src, (step, off) in plan.items():
    with open(f"{data}/{src}.jsonl") as f, open(f"{out}/{src}.jsonl", "w") as g:
        for i, line in enumerate(f):
            if i % step != off:
                continue
            r = json.loads(line)
            g.write(json.dumps({"text": r["text"], "label": label_of[src](r)}) + "\n")
PY
for src in dolly gsm8k mbpp; do
  echo "== $src ($sample, $(wc -l < "$OUT/$src.jsonl") rows)"
  "$ROUTER" eval --train "$OUT/train.jsonl" --test "$OUT/$src.jsonl" "$@" > "$OUT/$src.out"
  cat "$OUT/$src.out"
done
echo "outputs in $OUT"
