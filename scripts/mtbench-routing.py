#!/usr/bin/env python3
"""Single-turn routing of MT-Bench-101 user turns, by dialogue task (issue 10, point 5).

Each dialogue's first user turn (or, with --turns later, every user turn after the first, each
on its own, without the history) becomes one {"text"} line for `router classify`; the script
reports, per MT-Bench-101 task code, the share of decisions per bucket and per target tier
(tiers read from the policy's [targets]), and the share that abstained.

What to expect (the task codes are explained in ../shared/data/README.md): MR (maths) and GR
(general reasoning: deductions, coin flips, riddles) should reach the reasoning target. CR
(content rephrasing) and FR (format rephrasing) open with an ordinary question and ask for the
rewrite in their follow-ups, so their first turns are open_qa and their later turns rewriting.
PI openers are small talk; SI openers announce a task whose input follows in the next turns.

Usage: scripts/mtbench-routing.py [--turns first|later] [--json]
Env: ROUTER (binary, default target/release/router), DATA (default ../shared/data),
     ARCHETYPES (default archetypes/examples), POLICY (default archetypes/policy.toml).
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import tomllib

TASKS = ["MR", "GR", "CR", "FR", "SI", "SC", "SA", "AR", "CM", "CC", "TS", "IC", "PI"]


def turns(path, which):
    """(task, text) for each chosen user turn, in file order."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            users = [h["user"] for h in d["history"]]
            chosen = users[:1] if which == "first" else users[1:]
            for text in chosen:
                if text.strip():
                    yield d["task"], text


def classify(router, archetypes, policy, texts):
    """One decision per text, in order, from `router classify` on a fresh data directory."""
    with tempfile.TemporaryDirectory() as data_dir:
        stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
        out = subprocess.run(
            [router, "classify", "--archetypes", archetypes, "--policy", policy,
             "--data-dir", data_dir],
            input=stdin, capture_output=True, text=True, check=False)
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    if out.returncode != 0 or len(lines) != len(texts):
        sys.exit(f"router classify failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", choices=["first", "later"], default="first")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    ap.add_argument("--top", type=int, default=4, help="buckets listed per task")
    args = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    router = os.environ.get("ROUTER", "target/release/router")
    data = os.environ.get("DATA", "../shared/data")
    archetypes = os.environ.get("ARCHETYPES", "archetypes/examples")
    policy = os.environ.get("POLICY", "archetypes/policy.toml")
    path = os.path.join(data, "mtbench101.jsonl")
    if not os.path.isfile(path):
        print(f"skipped: {path} is absent", file=sys.stderr)
        return
    with open(policy, "rb") as f:
        tier_of = {name: t["tier"] for name, t in tomllib.load(f)["targets"].items()}

    rows = list(turns(path, args.turns))
    decisions = classify(router, archetypes, policy, [t for _, t in rows])
    by_task = collections.defaultdict(list)
    for (task, _), d in zip(rows, decisions):
        by_task[task].append(d)

    report = {}
    for task in [t for t in TASKS if t in by_task] + sorted(set(by_task) - set(TASKS)):
        ds = by_task[task]
        n = len(ds)
        share = lambda c: {k: round(v / n, 3) for k, v in c.most_common()}
        report[task] = {
            "n": n,
            "buckets": share(collections.Counter(d["bucket"] for d in ds)),
            "tiers": share(collections.Counter(tier_of[d["target"]["name"]] for d in ds)),
            "reasoning_target": round(
                sum(d["target"]["name"].startswith("reasoning") for d in ds) / n, 3),
            "abstained": round(sum(d["abstained"] for d in ds) / n, 3),
        }
    if args.json:
        print(json.dumps({"turns": args.turns, "tasks": report}))
        return
    print(f"MT-Bench-101, {args.turns} user turn(s), {len(rows)} prompts, policy {policy}")
    print(f"{'task':<5}{'n':>5}  {'abst':>5}  {'reason':>6}  tiers (small/mid/frontier)  top buckets")
    for task, r in report.items():
        tiers = "/".join(f"{r['tiers'].get(t, 0):.2f}" for t in ["small", "mid", "frontier"])
        top = ", ".join(f"{b} {s:.2f}" for b, s in list(r["buckets"].items())[:args.top])
        print(f"{task:<5}{r['n']:>5}  {r['abstained']:>5.2f}  {r['reasoning_target']:>6.2f}  "
              f"{tiers:<26}  {top}")


if __name__ == "__main__":
    main()
