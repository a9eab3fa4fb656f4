#!/usr/bin/env python3
"""Drives scripts/bench.sh: runs the real casesync binary and measures it.

Each measured command runs as a child process; its wall time comes from a
monotonic clock and its peak RSS from wait4()'s rusage, so nothing here relies on
the binary reporting on itself.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

PASS = "bench-passphrase"


def run(bin_, data, args):
    """Runs casesync; returns (seconds, stdout)."""
    env = dict(os.environ, CASESYNC_PASSPHRASE=PASS, CASESYNC_OPERATOR="bench")
    t0 = time.monotonic()
    p = subprocess.Popen([bin_, "--data-dir", data] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, stdin=subprocess.DEVNULL)
    out, err = p.communicate()
    dt = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"error: casesync {' '.join(args)} failed: {err.decode(errors='replace').strip()}")
    return dt, out.decode()


def run_rss(bin_, data, args):
    """Like run() but also returns the child's peak RSS (bytes), via wait4."""
    env = dict(os.environ, CASESYNC_PASSPHRASE=PASS, CASESYNC_OPERATOR="bench")
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.execve(bin_, [bin_, "--data-dir", data] + args, env)
    _, status, ru = os.wait4(pid, 0)
    dt = time.monotonic() - t0
    if status != 0:
        sys.exit(f"error: casesync {' '.join(args)} exited with status {status}")
    return dt, ru.ru_maxrss * 1024


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    return total


FIRST = ["Marin", "Elena", "Victor", "Ana", "Ștefan", "Ioana", "Mihai", "Cristina", "George", "Raluca"]
LAST = ["Dobre", "Ilie", "Popescu", "Țăranu", "Ionescu", "Bîrlădeanu", "Smith", "Jones", "Stan", "Matei"]
CATS = ["suspect", "victim", "witness", "contact", "other"]


def make_jsonl(path, n, seed=7):
    """n person records with 8 fields each, deterministic."""
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            rec = {
                "type": "person",
                "fields": {
                    "name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)} {i}",
                    "category": rnd.choice(CATS),
                    "dob": f"19{rnd.randint(50, 99)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}",
                    "nationality": rnd.choice(["RO", "GB", "NL"]),
                    "alias": f"alias-{rnd.randrange(10**6)}",
                    "address": f"Str. Fictivă {rnd.randint(1, 200)}, Bacău",
                    "occupation": rnd.choice(["driver", "recruiter", "car wash", "factory"]),
                    "notes": "seen at location " + str(rnd.randrange(10**9)),
                },
                "grading": "3x5x2:1AP",
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def percentile(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "10000,100000").split(",")]
    work = os.path.abspath(os.path.join(a.out, "work"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rows = []
    result = {"machine": {"cores": os.cpu_count()}, "import": [], "open": None, "show": None}
    largest = None
    for n in sizes:
        src = os.path.join(work, f"people-{n}.jsonl")
        make_jsonl(src, n)
        data = os.path.join(work, f"node-{n}")
        run(a.bin, data, ["init", "--name", "bench", "--org", "Bench Unit", "--country", "GB"])
        _, case = run(a.bin, data, ["case", "create", "--title", f"bench {n}"])
        case = case.strip()
        dt, rss = run_rss(a.bin, data, ["record", "import", case, src])
        size = dir_bytes(data)
        r = {"records": n, "seconds": round(dt, 3), "records_per_s": round(n / dt), "bytes_per_record": round(size / n),
             "peak_rss_mib": round(rss / 2**20, 1), "input_bytes_per_record": round(os.path.getsize(src) / n)}
        result["import"].append(r)
        rows.append((f"import {n:,} records", f"{r['records_per_s']:,} records/s", f"{dt:.2f} s",
                     f"{r['bytes_per_record']} B/record on disk", f"peak RSS {r['peak_rss_mib']} MiB"))
        largest = (n, data, case)
    n, data, case = largest
    # Opening: `id` reads the store without unlocking; `case show` unlocks (Argon2id)
    # and resolves the case; both are whole process runs.
    opens = [run_rss(a.bin, data, ["case", "show", case]) for _ in range(5)]
    ids = [run(a.bin, data, ["id"])[0] for _ in range(5)]
    result["open"] = {"records": n, "case_show_median_s": round(statistics.median(t for t, _ in opens), 4),
                      "case_show_peak_rss_mib": round(max(r for _, r in opens) / 2**20, 1),
                      "id_without_unlock_median_s": round(statistics.median(ids), 4)}
    rows.append((f"open node with {n:,} records", f"case show {result['open']['case_show_median_s'] * 1000:.0f} ms",
                 f"id (no unlock) {result['open']['id_without_unlock_median_s'] * 1000:.0f} ms",
                 f"peak RSS {result['open']['case_show_peak_rss_mib']} MiB", ""))
    _, listing = run(a.bin, data, ["--json", "record", "list", case, "--type", "person"])
    ids_ = [r["id"] for r in json.loads(listing)]
    sample = random.Random(1).sample(ids_, min(50, len(ids_)))
    shows = [run(a.bin, data, ["record", "show", rid])[0] for rid in sample]
    # Edit a few records so show also covers the snapshot path.
    for rid in sample[:10]:
        run(a.bin, data, ["record", "edit", rid, "--field", "status=arrested"])
    shows_edited = [run(a.bin, data, ["record", "show", rid])[0] for rid in sample[:10]]
    result["show"] = {"records_in_store": n, "samples": len(shows), "p50_ms": round(percentile(shows, 50) * 1000, 1),
                      "p99_ms": round(percentile(shows, 99) * 1000, 1),
                      "edited_p50_ms": round(percentile(shows_edited, 50) * 1000, 1),
                      "note": "whole `casesync record show` process: start, Argon2id unlock, verify entries, decrypt"}
    rows.append(("record show (whole command)", f"p50 {result['show']['p50_ms']} ms", f"p99 {result['show']['p99_ms']} ms",
                 f"after edit p50 {result['show']['edited_p50_ms']} ms", ""))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "node.json"), "w") as f:
        json.dump(result, f, indent=2)
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    print()
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print(f"\nwrote {os.path.join(a.out, 'node.json')}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
