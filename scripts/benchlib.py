#!/usr/bin/env python3
"""What scripts/bench.py and scripts/compare.py share: running the real
casesync binary (wall time from a monotonic clock, peak RSS from wait4()'s
rusage), making import files, federations and serving nodes, counting bytes
on the wire (CountingProxy), and waiting for entries to arrive.
"""
import json
import os
import random
import shutil
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


def run_rss(bin_, data, args, refused=False):
    """Like run() but also returns the child's peak RSS (bytes).

    Measured by /usr/bin/time (%M): a small process that forks the binary, so
    the figure is casesync's own. (wait4 on a child this Python process forks or
    vforks would count the Python process's memory too.) With `refused`, the
    command must fail, and its error line comes third."""
    env = dict(os.environ, CASESYNC_PASSPHRASE=PASS, CASESYNC_OPERATOR="bench")
    out = os.path.join(os.path.dirname(os.path.abspath(data)), ".rss")
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, bin_, "--data-dir", data] + args,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.monotonic() - t0
    if (p.returncode != 0) != refused:
        sys.exit(f"error: casesync {' '.join(args)}: exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
    with open(out) as f:
        kib = int(f.read().strip().splitlines()[-1])
    if not refused:
        return dt, kib * 1024
    err = [l for l in p.stderr.decode(errors="replace").splitlines() if l.startswith("error:")]
    return dt, kib * 1024, (err[-1] if err else "")


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


def peer_id(bin_, data):
    return json.loads(run(bin_, data, ["--json", "id"])[1])["peer_id"]


def federation(bin_, work, names):
    """Inits nodes, the first creates a federation and enrolls the rest."""
    dirs = [os.path.join(work, n) for n in names]
    for d, n in zip(dirs, names):
        run(bin_, d, ["init", "--name", n, "--org", f"Unit {n}", "--country", "GB"])
    run(bin_, dirs[0], ["federation", "create", "--name", "bench"])
    for d in dirs[1:]:
        card = run(bin_, d, ["id", "--card"])[1].strip()
        token = run(bin_, dirs[0], ["federation", "invite", card])[1].strip()
        run(bin_, d, ["federation", "join", token])
    return dirs


def serve(bin_, data, peers, extra=()):
    env = dict(os.environ, CASESYNC_PASSPHRASE=PASS, CASESYNC_OPERATOR="bench")
    args = [bin_, "--data-dir", data, "serve", "--listen", "/ip4/127.0.0.1/tcp/0"] + list(extra)
    for p in peers:
        args += ["--peer", p]
    err = open(data + ".serve.log", "w") if os.environ.get("BENCH_KEEP_LOGS") else subprocess.DEVNULL
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        sys.exit(f"error: serve did not start: {line!r}")
    return p, line.split(" ", 2)[2].strip()


class CountingProxy:
    """A TCP relay on 127.0.0.1 that counts every byte in both directions: the
    bytes on the wire (Noise, Yamux and protocol framing included)."""

    def __init__(self, target_port):
        import socket
        import threading
        self.target = target_port
        self.bytes = 0
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self.lock:
                    self.bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def take(self):
        with self.lock:
            b, self.bytes = self.bytes, 0
        return b

    def via(self, addr):
        """The multiaddr `addr` (…/tcp/PORT/p2p/ID) rewritten to dial through the proxy."""
        parts = addr.split("/")
        parts[parts.index("tcp") + 1] = str(self.port)
        return "/".join(parts)

    @staticmethod
    def to(addr):
        parts = addr.split("/")
        return CountingProxy(int(parts[parts.index("tcp") + 1]))


def max_entry(data):
    import sqlite3
    c = sqlite3.connect(f"file:{os.path.join(data, 'casesync.db')}?mode=ro", uri=True, timeout=30)
    try:
        return c.execute("SELECT IFNULL(MAX(id), 0), COUNT(*) FROM entries").fetchone()
    finally:
        c.close()


def wait_entries(data, count, timeout=120):
    """The time `data`'s store first holds `count` entries. One read-only
    connection, polled every 0.2 ms (each query is its own read transaction,
    so it sees every commit): opening one per poll and sleeping 2 ms
    between polls added about 2 ms to every latency measured."""
    import sqlite3
    c = sqlite3.connect(f"file:{os.path.join(data, 'casesync.db')}?mode=ro", uri=True, timeout=30)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if c.execute("SELECT COUNT(*) FROM entries").fetchone()[0] >= count:
                return time.monotonic()
            time.sleep(0.0002)
    finally:
        c.close()
    sys.exit(f"error: {data} did not reach {count} entries")


def edit_latency(bin_, nodes, case, rid, n=30, warmup=0):
    """Edits on nodes[0]; time until the last node holds the new entry (polling its
    store read-only, so no unlock cost is counted). The first `warmup` edits
    are not counted, as the peers' watchers ignore theirs."""
    lat = []
    for i in range(warmup + n):
        before = max_entry(nodes[-1])[1]
        run(bin_, nodes[0], ["record", "edit", rid, "--field", f"status=s{i}"])
        t_written = time.monotonic()
        t_seen = wait_entries(nodes[-1], before + 1)
        lat.append((t_seen - t_written) * 1000)
    return lat[warmup:]


def line_latency(bin_, base, count, n=30, warmup=0):
    """Edit-to-visible along a line of `count` serving nodes, n0 - n1 - ... (each
    dials the one before): edits on n0, latency until the last node holds each
    (milliseconds, one per edit). Also used by compare.py."""
    nodes = federation(bin_, base, [f"n{i}" for i in range(count)])
    _, case = run(bin_, nodes[0], ["case", "create", "--title", "latency"])
    case = case.strip()
    for d in nodes[1:]:
        run(bin_, nodes[0], ["case", "member", "add", case, peer_id(bin_, d), "--role", "contributor"])
    rid = run(bin_, nodes[0], ["record", "add", case, "--type", "person", "--field", "name=x"])[1].strip()
    procs, prev = [], []
    try:
        for d in nodes:
            p, addr = serve(bin_, d, prev[-1:])
            procs.append(p)
            prev.append(addr)
        wait_entries(nodes[-1], 1, timeout=120)
        return edit_latency(bin_, nodes, case, rid, n=n, warmup=warmup)
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def percentile(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def remove_in_background(path):
    """Removes `path` in a detached rm at idle I/O priority. The peers' stores
    are tens of thousands of small files, and this machine's disk (ext4 with
    `discard`) deletes ~450 a second: removing a --quick run's work
    directory in the foreground took close to a minute."""
    trash = f"{path}.removing-{os.getpid()}"
    os.rename(path, trash)
    rm = ["rm", "-rf", trash]
    if shutil.which("ionice"):
        rm = ["ionice", "-c", "3"] + rm
    p = subprocess.Popen(rm, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    print(f"removing {path} in the background (pid {p.pid})")


def _flatten(v, path, out):
    """Numbers of a result by path; list items by their size or count key;
    a list of raw samples by its median."""
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        import statistics
        out[path] = float(statistics.median(v))
    elif isinstance(v, dict):
        for k, x in v.items():
            _flatten(x, f"{path}.{k}" if path else k, out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            tag = str(i)
            if isinstance(x, dict):
                for key in ("records", "nodes", "cases", "count", "size", "peer", "system"):
                    if key in x and not isinstance(x[key], (dict, list)):
                        tag = f"{key}={x[key]}"
                        break
            _flatten(x, f"{path}[{tag}]", out)
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        out[path] = float(v)


def _better(key):
    """+1 if more is better, -1 if less is, 0 if the name does not say."""
    k = key.rsplit(".", 1)[-1]
    if k.endswith("per_s") or k.endswith("speedup"):
        return 1
    if (k.endswith("_s") or k.endswith("_ms") or k.endswith("seconds") or "rss" in k
            or "bytes" in k or k.endswith("_mib")):
        return -1
    return 0


def fell_behind(prev, cur, tolerance=0.25):
    """The figures of `cur` worse than the same figures of `prev` by more than
    `tolerance` (a fraction: the machines are shared and noisy), as
    (path, before, now) for the regression guard at the end of a run."""
    a, b = {}, {}
    _flatten(prev, "", a)
    _flatten(cur, "", b)
    worse = []
    for path, now in sorted(b.items()):
        before = a.get(path)
        d = _better(path)
        if before is None or d == 0 or before <= 0:
            continue
        change = (now - before) / before
        if -d * change > tolerance:
            worse.append((path, before, now))
    return worse


def guard(out_path, result):
    """Compares `result` with the run before it (the file at `out_path`,
    kept as *.prev.json) and prints what fell behind; then writes `result`."""
    prev = None
    if os.path.exists(out_path):
        try:
            with open(out_path) as f:
                prev = json.load(f)
            shutil.copyfile(out_path, out_path.replace(".json", ".prev.json"))
        except (OSError, ValueError):
            prev = None
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    name = os.path.basename(out_path)
    if prev is None:
        print(f"\nregression guard: no previous {name} to compare with")
        return
    worse = fell_behind(prev, result)
    if not worse:
        print(f"\nregression guard: nothing in {name} fell behind the previous run by more than 25%")
        return
    print(f"\nregression guard: {len(worse)} figure(s) of {name} fell behind the previous run by more than 25%:")
    for path, before, now in worse:
        print(f"  {path}: {before:g} -> {now:g}")
