#!/usr/bin/env python3
"""Slowloris against the real binary on loopback (issue 13 point 2).

Starts `router serve` on a free port, measures /classify latency and resident memory, then
opens N connections that send half a request head and stop. It reports when the server
closed them (or refused them past --max-connections), the latency of normal requests while
they are open, and RSS before, at the peak and after.

    cargo build --release
    python3 scripts/slowloris.py --conns 3000 --max-connections 4096   # all cut by the timeout
    python3 scripts/slowloris.py --conns 3000                         # default cap: most refused

Only the standard library; nothing leaves the machine.
"""

import argparse
import collections
import http.client
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

HALF_HEAD = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: appl"
BODY = json.dumps({"prompt": "Write a Python function that merges two sorted lists"})  # cache off: embedded each time


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def classify_ms(host, port):
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("POST", "/classify", BODY, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, (time.perf_counter() - start) * 1e3


def summary(values):
    if not values:
        return "n=0"
    v = sorted(values)
    p99 = v[min(len(v) - 1, int(len(v) * 0.99))]
    return f"n={len(v)} p50={statistics.median(v):.1f} p99={p99:.1f} max={v[-1]:.1f}"


def start_router(args):
    cmd = [
        args.binary, "serve", "--addr", "127.0.0.1:0", "--decision-log", "off",
        "--header-read-timeout-ms", str(args.header_timeout_ms),
        "--max-connections", str(args.max_connections),
        "--data-dir", args.data_dir, "--cache-bytes", "0",  # every probe runs the model
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    addr = None
    for line in proc.stderr:
        if "listening on http://" in line:
            addr = line.split("listening on http://")[1].split()[0]
            break
    if addr is None:
        sys.exit("the router did not say where it listens")
    # Keep draining its log so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                return proc, host, int(port)
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("the router was not ready in 300 s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default="target/release/router")
    p.add_argument("--conns", type=int, default=3000)
    p.add_argument("--header-timeout-ms", type=int, default=5000)
    p.add_argument("--max-connections", type=int, default=1024)
    p.add_argument("--data-dir", default="data")
    args = p.parse_args()

    proc, host, port = start_router(args)
    try:
        for _ in range(5):
            classify_ms(host, port)  # warm
        before = [classify_ms(host, port)[1] for _ in range(30)]
        rss_before = rss_mb(proc.pid)

        sel = selectors.DefaultSelector()
        opened_at = time.perf_counter()
        socks = []
        for _ in range(args.conns):
            s = socket.create_connection((host, port))
            s.sendall(HALF_HEAD)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            socks.append(s)
        open_s = time.perf_counter() - opened_at
        rss_peak = rss_mb(proc.pid)

        during, statuses, stop = [], [], threading.Event()

        def probe():
            while not stop.is_set():
                try:
                    status, ms = classify_ms(host, port)
                    during.append(ms)
                except OSError:  # refused past the cap: reset before the 503 was read
                    status = "reset"
                statuses.append(status)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        closed, refused, close_times = 0, 0, []
        limit = opened_at + args.header_timeout_ms / 1e3 + 60
        while closed < len(socks) and time.perf_counter() < limit:
            for key, _ in sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    refused += 1
                    continue  # the close follows
                if data:
                    continue
                close_times.append(time.perf_counter() - opened_at)
                closed += 1
                sel.unregister(s)
                s.close()
            rss_peak = max(rss_peak, rss_mb(proc.pid))
        stop.set()
        prober.join()
        still_open = len(socks) - closed
        for s in socks:
            s.close()
        time.sleep(2)
        rss_after = rss_mb(proc.pid)
        after = [classify_ms(host, port)[1] for _ in range(30)]

        print(f"connections: {args.conns} half-sent heads opened in {open_s:.1f} s; "
              f"header timeout {args.header_timeout_ms} ms, max connections {args.max_connections}")
        print(f"closed by the server: {closed} (of which answered 503 too_many_connections first: {refused}); "
              f"still open at the end: {still_open}")
        if close_times:
            ct = sorted(close_times)
            print(f"closed at (s after the first open): first {ct[0]:.2f}, "
                  f"median {statistics.median(ct):.2f}, last {ct[-1]:.2f}")
        print(f"/classify ms before: {summary(before)}")
        print(f"/classify ms during: {summary(during)}; statuses {dict(collections.Counter(map(str, statuses)))}")
        print(f"/classify ms after:  {summary(after)}")
        print(f"RSS MB: before {rss_before:.0f}, peak {rss_peak:.0f}, after {rss_after:.0f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
