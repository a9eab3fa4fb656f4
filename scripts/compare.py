"""Side by side: casesync, automerge-repo (bench/peers/js) and samod
(bench/peers/samod), in one run on this machine, each side of each scenario a
separate process on 127.0.0.1. Records are 8 string fields of 30 characters,
one change per record. Used by scripts/bench.py; prints one table and returns
the same as JSON.

Every time here is the wall clock of whole processes (start, unlock or WASM
start-up, work, durable flush), the same way for the three systems.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench as b

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JS_DIR = os.path.join(ROOT, "bench", "peers", "js")
SAMOD_BIN = os.path.join(ROOT, "bench", "peers", "samod", "target", "release", "samod-harness")


def field(r, i):
    return f"r{r:08d}f{i}".ljust(30, "x")


def make_records_jsonl(path, n):
    """The common record shape as a casesync import: person, name + 7 fields."""
    with open(path, "w") as f:
        for r in range(n):
            fields = {"name": field(r, 0)}
            for i in range(1, 8):
                fields[f"f{i}"] = field(r, i)
            f.write(json.dumps({"type": "person", "fields": fields}) + "\n")


def peers():
    """The peer systems this machine can run, name -> command prefix."""
    out = {}
    if shutil.which("node") and os.path.isdir(os.path.join(JS_DIR, "node_modules")):
        out["automerge-repo"] = ["node", os.path.join(JS_DIR, "harness.mjs")]
    if os.access(SAMOD_BIN, os.X_OK):
        out["samod"] = [SAMOD_BIN]
    return out


def timed(cmd, timeout=3600):
    """Runs a harness command; returns (result JSON, wall seconds, peak RSS bytes)."""
    fd, rss_file = tempfile.mkstemp(prefix="rss")
    os.close(fd)
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, capture_output=True,
                       text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed: {p.stderr.strip()[-400:]}")
    with open(rss_file) as f:
        kib = int(f.read().strip().splitlines()[-1])
    os.unlink(rss_file)
    return json.loads(p.stdout.strip().splitlines()[-1]), dt, kib * 1024


def peak_rss_of(pid):
    """VmHWM of a running process (a server about to be stopped), bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def net_opts(cmd):
    """samod's stock TCP dialer leaves Nagle on; ws (automerge-repo) and
    casesync's libp2p TCP set TCP_NODELAY: compare like with like."""
    return ["--nodelay"] if cmd[0] == SAMOD_BIN else []


def start_peer_server(cmd, data, extra=()):
    port = free_port()
    extra = list(extra) + net_opts(cmd)
    p = subprocess.Popen(cmd + ["serve", "--dir", data, "--port", str(port)] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if "listening" not in line:
        p.kill()
        raise RuntimeError(f"peer server did not start: {line!r}")
    return p, port


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# ---- scenarios, one function per system, each returning a dict of figures ----

def casesync_write(bin_, work, n):
    data = os.path.join(work, f"cs-write-{n}")
    src = os.path.join(work, f"records-{n}.jsonl")
    make_records_jsonl(src, n)
    b.run(bin_, data, ["init", "--name", "bench", "--org", "Bench", "--country", "GB"])
    case = b.run(bin_, data, ["case", "create", "--title", "bench"])[1].strip()
    dt, rss = b.run_rss(bin_, data, ["record", "import", case, src])
    disk = b.dir_bytes(data)
    # Reopen: a new process unlocks the node and reads every record's view.
    reopen, _ = b.run_rss(bin_, data, ["--json", "record", "list", case])
    return {"seconds": dt, "records_per_s": n / dt, "peak_rss": rss, "disk_bytes": disk, "reopen_s": reopen}


def peer_write(cmd, work, name, n):
    data = os.path.join(work, f"{name}-write-{n}")
    shutil.rmtree(data, ignore_errors=True)
    extra = ["--strings", "immutable", "--fsync"] if "harness.mjs" in cmd[-1] else []
    _, dt, rss = timed(cmd + ["write", "--dir", data, "--records", str(n)] + extra)
    disk = b.dir_bytes(data)
    _, reopen, _ = timed(cmd + ["reopen", "--dir", data])
    return {"seconds": dt, "records_per_s": n / dt, "peak_rss": rss, "disk_bytes": disk, "reopen_s": reopen,
            "data": data}


def casesync_sync(bin_, work, n, attempts):
    base = os.path.join(work, f"cs-sync-{n}")
    a, bb = b.federation(bin_, base, ["a", "b"])
    case = b.run(bin_, a, ["case", "create", "--title", "sync"])[1].strip()
    b.run(bin_, a, ["case", "member", "add", case, b.peer_id(bin_, bb), "--role", "contributor"])
    src = os.path.join(work, f"records-{n}.jsonl")
    if not os.path.exists(src):
        make_records_jsonl(src, n)
    b.run(bin_, a, ["record", "import", case, src])
    empty = os.path.join(base, "b-empty")
    shutil.copytree(bb, empty)
    runs = []
    for i in range(attempts):
        # Each attempt syncs into a fresh copy of the empty receiver.
        target = os.path.join(base, f"b{i}")
        shutil.copytree(empty, target)
        p, addr = b.serve(bin_, a, [])
        proxy = b.CountingProxy.to(addr)
        try:
            dt, rss = b.run_rss(bin_, target, ["sync", "--once", "--peer", proxy.via(addr), "--timeout", "600"])
            complete = b.max_entry(target)[1] >= b.max_entry(a)[1]
        finally:
            sender_rss = peak_rss_of(p.pid)
            stop(p)
        runs.append({"seconds": dt, "wire": proxy.take(), "rss": rss, "sender_rss": sender_rss, "complete": complete})
        shutil.rmtree(target, ignore_errors=True)
    return summarize(runs)


def peer_sync(cmd, written, work, name, n, attempts):
    runs = []
    ids = os.path.join(written, "ids.txt")
    for i in range(attempts):
        p, port = start_peer_server(cmd, written)
        proxy = b.CountingProxy(port)
        dest = os.path.join(work, f"{name}-fetch-{n}-{i}")
        shutil.rmtree(dest, ignore_errors=True)
        try:
            res, dt, rss = timed(cmd + ["fetch", "--dir", dest, "--port", str(proxy.port), "--ids", ids,
                                        "--timeout", "600"] + net_opts(cmd))
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            res, dt, rss = {"complete": False, "error": str(e)}, float("nan"), 0
        finally:
            sender_rss = peak_rss_of(p.pid)
            stop(p)
        runs.append({"seconds": dt, "wire": proxy.take(), "rss": rss, "sender_rss": sender_rss,
                     "complete": bool(res.get("complete"))})
        shutil.rmtree(dest, ignore_errors=True)
    return summarize(runs)


def summarize(runs):
    ok = [r for r in runs if r["complete"]]
    secs = [r["seconds"] for r in ok]
    return {
        "attempts": len(runs), "complete": len(ok),
        "median_s": statistics.median(secs) if secs else None,
        "min_s": min(secs) if secs else None, "max_s": max(secs) if secs else None,
        "wire_bytes": statistics.median([r["wire"] for r in ok]) if ok else None,
        "receiver_peak_rss": max((r["rss"] for r in ok), default=None),
        "sender_peak_rss": max((r["sender_rss"] for r in ok), default=None),
    }


def casesync_latency(bin_, work, edits):
    base = os.path.join(work, "cs-latency")
    a, bb = b.federation(bin_, base, ["a", "b"])
    case = b.run(bin_, a, ["case", "create", "--title", "latency"])[1].strip()
    b.run(bin_, a, ["case", "member", "add", case, b.peer_id(bin_, bb), "--role", "contributor"])
    rid = b.run(bin_, a, ["record", "add", case, "--type", "person", "--field", "name=x"])[1].strip()
    pa, addr = b.serve(bin_, a, [])
    pb, _ = b.serve(bin_, bb, [addr])
    try:
        b.wait_entries(bb, 1, timeout=120)
        lat = b.edit_latency(bin_, [a, bb], case, rid, n=edits)
    finally:
        stop(pa)
        stop(pb)
    return lat


def peer_latency(cmd, written, work, name, edits):
    with open(os.path.join(written, "ids.txt")) as f:
        doc = f.readline().strip()
    out = os.path.join(work, f"{name}-latency.json")
    p, port = start_peer_server(cmd, written, ["--watch", doc, "--expect", str(edits), "--out", out])
    try:
        key = "--url" if "harness.mjs" in cmd[-1] else "--id"
        timed(cmd + ["edit", "--port", str(port), key, doc, "--edits", str(edits), "--interval-ms", "20"]
              + net_opts(cmd))
        for _ in range(100):
            if os.path.exists(out):
                break
            time.sleep(0.1)
    finally:
        stop(p)
    with open(out) as f:
        return json.load(f)["latencies_ms"]


# ---- the table ----

def fmt_rate(x):
    return f"{x:,.0f} rec/s" if x else "n/a"


def fmt_s(x):
    return f"{x:.2f} s" if x is not None else "n/a"


def compare(bin_, work, quick, result):
    ps = peers()
    sizes = [1000] if quick else [10_000, 100_000]
    if os.environ.get("BENCH_COMPARE_SIZES"):
        sizes = [int(x) for x in os.environ["BENCH_COMPARE_SIZES"].split(",")]
    attempts = 2 if quick else int(os.environ.get("BENCH_ATTEMPTS", "5"))
    edits = 30 if quick else 100
    # automerge-repo writes ~200 records/s here: 100,000 would take most of an hour.
    js_max = int(os.environ.get("BENCH_JS_MAX", "10000"))
    rows, data = [], {"peers": sorted(ps), "sizes": sizes, "attempts": attempts}

    def row(name, values, better):
        """values: system -> (display, number or None); better: 'low' or 'high'."""
        cs = values.get("casesync", (None, None))[1]
        others = [v[1] for k, v in values.items() if k != "casesync" and v[1]]
        ratio = ""
        if cs and others:
            best = min(others) if better == "low" else max(others)
            r = best / cs if better == "low" else cs / best
            ratio = f"{r:.2f}x"
        rows.append((name, values.get("casesync", ("n/a",))[0], values.get("automerge-repo", ("n/a",))[0],
                     values.get("samod", ("n/a",))[0], ratio))

    written = {}
    for n in sizes:
        vals, rss, disk, reopen = {}, {}, {}, {}
        w = casesync_write(bin_, work, n)
        data[f"casesync_write_{n}"] = w
        vals["casesync"] = (fmt_rate(w["records_per_s"]), w["records_per_s"])
        rss["casesync"] = (f"{w['peak_rss'] / 2**20:.0f} MiB", w["peak_rss"])
        disk["casesync"] = (f"{w['disk_bytes'] / n:.0f} B/rec", w["disk_bytes"])
        reopen["casesync"] = (fmt_s(w["reopen_s"]), w["reopen_s"])
        for name, cmd in ps.items():
            if name == "automerge-repo" and n > js_max:
                vals[name] = (f"skipped (> {js_max:,})", None)
                continue
            try:
                w = peer_write(cmd, work, name, n)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"warning: {name} write {n}: {e}", file=sys.stderr)
                vals[name] = ("failed", None)
                continue
            written[(name, n)] = w["data"]
            data[f"{name}_write_{n}"] = {k: v for k, v in w.items() if k != "data"}
            vals[name] = (fmt_rate(w["records_per_s"]), w["records_per_s"])
            rss[name] = (f"{w['peak_rss'] / 2**20:.0f} MiB", w["peak_rss"])
            disk[name] = (f"{w['disk_bytes'] / n:.0f} B/rec", w["disk_bytes"])
            reopen[name] = (fmt_s(w["reopen_s"]), w["reopen_s"])
        row(f"write {n:,} records (durable)", vals, "high")
        row(f"  peak RSS", rss, "low")
        row(f"  bytes on disk", disk, "low")
        row(f"  reopen and read all", reopen, "low")

    for n in sizes:
        vals, wire, rrss, done = {}, {}, {}, {}
        s = casesync_sync(bin_, work, n, attempts)
        data[f"casesync_sync_{n}"] = s
        for name, res in [("casesync", s)] + [
                (name, peer_sync(cmd, written[(name, n)], work, name, n, attempts))
                for name, cmd in ps.items() if (name, n) in written]:
            data[f"{name}_sync_{n}"] = res
            med = res["median_s"]
            vals[name] = (f"{fmt_s(med)} ({fmt_s(res['min_s'])}-{fmt_s(res['max_s'])})" if med else "n/a", med)
            if res["wire_bytes"]:
                wire[name] = (f"{res['wire_bytes'] / 2**20:.1f} MiB", res["wire_bytes"])
            if res["receiver_peak_rss"]:
                rrss[name] = (f"{res['receiver_peak_rss'] / 2**20:.0f} / {(res['sender_peak_rss'] or 0) / 2**20:.0f} MiB",
                              res["receiver_peak_rss"])
            done[name] = (f"{res['complete']} of {res['attempts']}", res["complete"])
        row(f"initial sync {n:,} records (median, range)", vals, "low")
        row("  bytes on the wire", wire, "low")
        row("  peak RSS receiver / sender", rrss, "low")
        row("  attempts complete", done, "high")

    vals = {}
    lat = casesync_latency(bin_, work, edits)
    data["casesync_latency_ms"] = lat
    vals["casesync"] = (f"p50 {b.percentile(lat, 50):.1f} / p99 {b.percentile(lat, 99):.1f} ms", b.percentile(lat, 50))
    n0 = sizes[0]
    for name, cmd in ps.items():
        if (name, n0) not in written:
            continue
        try:
            lat = peer_latency(cmd, written[(name, n0)], work, name, edits)
        except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as e:
            print(f"warning: {name} latency: {e}", file=sys.stderr)
            continue
        data[f"{name}_latency_ms"] = lat
        if lat:
            vals[name] = (f"p50 {b.percentile(lat, 50):.1f} / p99 {b.percentile(lat, 99):.1f} ms",
                          b.percentile(lat, 50))
    row(f"edit-to-visible, 2 nodes, {edits} edits (p50 / p99)", vals, "low")

    result["compare"] = data
    header = ("scenario", "casesync", "automerge-repo", "samod", "best ratio")
    w = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    print()
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print("\nbest ratio: casesync against the better peer (above 1 = casesync ahead); times are whole processes")
    return rows
