#!/usr/bin/env python3
"""Three `casesync serve` nodes with steady edits for MINUTES; samples each
serve's resident memory (VmRSS) and prints start, end and peak per node.
Used by scripts/soak.sh; writes target/soak/rss.json. Nothing is asserted:
a flat line is the result to read."""
import json
import os
import random
import re
import subprocess
import sys
import time

BIN = os.environ.get("CASESYNC_BIN", "target/release/casesync")
MINUTES = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
# Records imported on the lead before the run: with a store past SQLite's page
# cache (32 MiB per connection), RSS growth that tracks the store is ruled out.
PREFILL = int(os.environ.get("PREFILL", "0"))
ROOT = os.path.abspath("target/soak/rss")
ENV = dict(os.environ, CASESYNC_PASSPHRASE="soak passphrase", CASESYNC_OPERATOR="soak")
NAMES = [("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")]


def cs(node, *args):
    out = subprocess.run([BIN, "--data-dir", f"{ROOT}/{node}", *args], env=ENV,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"casesync {' '.join(args)} on {node}: {out.stderr.strip()}")
    return out.stdout.strip()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def main():
    if MINUTES <= 0:
        print("RSS soak: skipped (MINUTES=0)")
        return
    subprocess.run(["rm", "-rf", ROOT], check=True)
    os.makedirs(ROOT)
    for name, cc in NAMES:
        cs(name, "init", "--name", name, "--org", f"Unit {name}", "--country", cc)
    lead = NAMES[0][0]
    cs(lead, "federation", "create", "--name", "Soak JIT")
    for name, _ in NAMES[1:]:
        token = cs(lead, "federation", "invite", cs(name, "id", "--card"))
        cs(name, "federation", "join", token)
    case = cs(lead, "case", "create", "--title", "Op Soak")
    for name, _ in NAMES[1:]:
        cs(lead, "case", "member", "add", case, cs(name, "id", "--card"), "--role", "contributor")
    if PREFILL:
        path = f"{ROOT}/prefill.jsonl"
        with open(path, "w") as f:
            for i in range(PREFILL):
                f.write(json.dumps({"type": "note", "fields": {"text": f"prefill {i} " + "z" * 300}}) + "\n")
        cs(lead, "record", "import", case, path)
    procs, addrs = {}, []
    for name, _ in NAMES:
        args = [BIN, "--data-dir", f"{ROOT}/{name}", "serve", "--listen", "/ip4/127.0.0.1/tcp/0"]
        for a in addrs:
            args += ["--peer", a]
        p = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE,
                             stderr=open(f"{ROOT}/{name}.log", "w"), text=True)
        line = p.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"serve on {name} printed {line!r}")
        addrs.append(line[len("listening on "):])
        procs[name] = p
    if PREFILL:
        # Let the initial sync finish before the baseline.
        deadline = time.time() + 1800
        def held(n):
            out = subprocess.run([BIN, "--data-dir", f"{ROOT}/{n}", "case", "show", case, "--json"],
                                 env=ENV, capture_output=True, text=True)
            return json.loads(out.stdout)["records"] if out.returncode == 0 else 0
        while time.time() < deadline and any(held(n) < PREFILL for n, _ in NAMES[1:]):
            time.sleep(2)
    rng = random.Random(7)
    records, samples, edits = [], {n: [] for n, _ in NAMES}, 0
    start = time.time()
    next_sample = start
    try:
        while time.time() - start < MINUTES * 60:
            node = rng.choice(NAMES)[0]
            if not records or rng.random() < 0.3:
                records.append(cs(node, "record", "add", case, "--type", "person",
                                  "--field", f"name=Person {edits}"))
            else:
                r = rng.choice(records)
                out = subprocess.run([BIN, "--data-dir", f"{ROOT}/{node}", "record", "edit", r,
                                      "--field", f"alias=edit {edits}"],
                                     env=ENV, capture_output=True, text=True)
                if out.returncode != 0 and "no record" not in out.stderr and "not found" not in out.stderr:
                    raise SystemExit(f"edit on {node}: {out.stderr.strip()}")
            edits += 1
            if time.time() >= next_sample:
                for n, p in procs.items():
                    if p.poll() is not None:
                        raise SystemExit(f"serve on {n} exited with {p.returncode}")
                    samples[n].append((round(time.time() - start), rss_mib(p.pid)))
                next_sample += 30
            time.sleep(0.2)
        for n, p in procs.items():
            samples[n].append((round(time.time() - start), rss_mib(p.pid)))
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(timeout=10)
    lists = {n: cs(n, "record", "list", case, "--json") for n, _ in NAMES}
    converged = len(set(lists.values())) == 1
    rows = []
    print(f"\nRSS soak: 3 nodes, {PREFILL} records before, {MINUTES:g} min, {edits} writes, {len(records)} records, "
          f"converged at stop: {converged} (pushes may still be in flight)")
    print(f"{'node':<10} {'start MiB':>10} {'end MiB':>9} {'peak MiB':>9} {'samples':>8} {'store MiB':>10}")
    for n, s in samples.items():
        vals = [v for _, v in s]
        # The first sample is taken before any sync: the one after 30 s is the baseline.
        base = vals[1] if len(vals) > 2 else vals[0]
        store = os.path.getsize(f"{ROOT}/{n}/casesync.db") / 2**20
        rows.append({"node": n, "start_mib": base, "end_mib": vals[-1], "peak_mib": max(vals),
                     "store_mib": round(store, 1), "samples": s})
        print(f"{n:<10} {base:>10.1f} {vals[-1]:>9.1f} {max(vals):>9.1f} {len(vals):>8} {store:>10.1f}")
    with open("target/soak/rss.json", "w") as f:
        json.dump({"minutes": MINUTES, "prefill": PREFILL, "writes": edits, "records": len(records),
                   "nodes": rows}, f, indent=1)


if __name__ == "__main__":
    main()
