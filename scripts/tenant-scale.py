#!/usr/bin/env python3
"""Memory and start time of one replica serving N tenants with 1,000 examples each.

For each N: writes a tenants file and a journal holding N x 1,000 tenant examples (Dolly
instructions from ../shared/data, each prefixed with its tenant so texts are distinct), starts
`router serve --tenants`, and reports the time to /ready, resident memory when ready (VmRSS)
and its peak (VmHWM). Then it starts the same data directory again: the second start loads
the saved tenant bundles instead of embedding.

    cargo build --release && python3 scripts/tenant-scale.py 1 10 100

The shared index is built once in a scratch directory and copied into each run, so every run
embeds only the tenants' own texts.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "router")
DOLLY = os.path.join(ROOT, "..", "shared", "data", "dolly.jsonl")
PER_TENANT = 1000


def rows():
    with open(DOLLY) as f:
        for line in f:
            row = json.loads(line)
            if 20 <= len(row["text"]) <= 400:
                yield row["label"], row["text"]


def start(data_dir, tenants_file):
    env = dict(os.environ, ROUTER_LOG="warn", ROUTER_DECISION_LOG="off")
    env.setdefault("ROUTER_MODELS_ROOT", os.path.join(ROOT, "models"))
    args = [BINARY, "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir]
    if tenants_file:
        args += ["--tenants", tenants_file]
    began = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in proc.stderr:
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            addr = m.group(1)
            break
    assert addr, "the router did not say where it listens"
    while True:
        try:
            with urllib.request.urlopen(f"http://{addr}/ready", timeout=5) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"router exited with {proc.returncode}")
        time.sleep(0.1)
    ready_s = time.monotonic() - began
    status = open(f"/proc/{proc.pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024
    peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) // 1024
    proc.terminate()
    proc.wait()
    return ready_s, rss, peak


def main():
    counts = [int(a) for a in sys.argv[1:]] or [1, 10]
    scratch = tempfile.mkdtemp(prefix="tenant-scale-")
    base = os.path.join(scratch, "base")
    ready_s, rss, peak = start(base, None)
    print(f"tenants=0 ready={ready_s:.1f}s rss={rss}MiB peak={peak}MiB (builds the shared index)")
    source = rows()
    for n in counts:
        run = os.path.join(scratch, f"n{n}")
        shutil.copytree(os.path.join(base, "index"), os.path.join(run, "index"))
        tenants_file = os.path.join(run, "tenants.toml")
        with open(tenants_file, "w") as f:
            for t in range(n):
                f.write(f"[tenants.t{t}]\n")
        with open(os.path.join(run, "archetypes.journal.jsonl"), "w") as f:
            for t in range(n):
                for i in range(PER_TENANT):
                    try:
                        bucket, text = next(source)
                    except StopIteration:
                        source = rows()
                        bucket, text = next(source)
                    entry = {"op": "add", "id": f"t{t}-{i}", "bucket": bucket,
                             "text": f"[t{t}] {text}", "tenant": f"t{t}"}
                    f.write(json.dumps(entry) + "\n")
        first = start(run, tenants_file)
        again = start(run, tenants_file)
        print(f"tenants={n} examples={n * PER_TENANT} "
              f"first start: ready={first[0]:.1f}s rss={first[1]}MiB peak={first[2]}MiB; "
              f"restart: ready={again[0]:.1f}s rss={again[1]}MiB peak={again[2]}MiB")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
