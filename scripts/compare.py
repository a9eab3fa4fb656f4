"""Side by side: casesync, automerge-repo (bench/peers/js) and samod
(bench/peers/samod), in one run on this machine, each side of each scenario a
separate process on 127.0.0.1. Records are 8 string fields of 30 characters,
one change per record. Used by scripts/bench.py (helpers from scripts/benchlib.py); prints one table and returns
the same as JSON.

Every time here is the wall clock of whole processes (start, unlock or WASM
start-up, work, durable flush), the same way for the three systems.

Scenarios (BENCH_ONLY=name,name,... runs a subset; `write` always runs when
`sync` needs its stores):
  write       write N records durably, reopen, disk and RSS
  sync        initial sync of N records to a second node (attempts each)
  latency     edit-to-visible between 2 connected nodes
  cases       1,000 cases of 10 records fetched by a second node (quick: 100)
  reconnect   bytes to reconnect two in-sync nodes sharing 1 and 1,000 cases
  edit-bytes  bytes on the wire per single-field edit
  line        edit-to-visible along a line of 5 nodes
"""

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import benchlib as b

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JS_DIR = os.path.join(ROOT, "bench", "peers", "js")
SAMOD_BIN = os.path.join(ROOT, "bench", "peers", "samod", "target", "release", "samod-harness")


def field(r, i):
    return f"r{r:08d}f{i}".ljust(30, "x")


def make_records_jsonl(path, n, start=0):
    """The common record shape as a casesync import: person, name + 7 fields;
    records start .. start+n-1."""
    with open(path, "w") as f:
        for r in range(start, start + n):
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


# One sync attempt (a peer's fetch, casesync's `sync --once`) gets this long;
# past it the attempt counts as incomplete. After this many attempts in a row
# time out, the remaining attempts of that scenario are not run (each would
# only wait out the same timeout) and count as incomplete.
ATTEMPT_TIMEOUT = int(os.environ.get("BENCH_ATTEMPT_TIMEOUT", "300"))
TIMEOUTS_BEFORE_SKIP = 2
# Extra time a process gets after its own deadline to flush and exit.
GRACE = 120


def timed(cmd, timeout=3600, env=None):
    """Runs a command; returns (result JSON from its last stdout line, wall
    seconds, peak RSS bytes). On timeout the whole process group is killed and
    subprocess.TimeoutExpired raised."""
    fd, rss_file = tempfile.mkstemp(prefix="rss")
    os.close(fd)
    t0 = time.monotonic()
    # Own session: on timeout, kill /usr/bin/time and the process it runs.
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        os.unlink(rss_file)
        raise
    dt = time.monotonic() - t0
    try:
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(os.path.basename(c) for c in cmd[:3])} failed: {err.strip()[-400:]}")
        with open(rss_file) as f:
            kib = int(f.read().strip().splitlines()[-1])
    finally:
        os.unlink(rss_file)
    lines = out.strip().splitlines()
    try:
        res = json.loads(lines[-1]) if lines else {}
    except ValueError:
        res = {"stdout": out}  # not a harness (casesync prints text)
    return res, dt, kib * 1024


def cs_timed(bin_, data, args, timeout):
    """Runs casesync like bench.run_rss, but a failure or timeout is returned
    (ok False) instead of ending the run. Returns (ok, seconds, peak RSS)."""
    env = dict(os.environ, CASESYNC_PASSPHRASE=b.PASS, CASESYNC_OPERATOR="bench")
    t0 = time.monotonic()
    try:
        _, dt, rss = timed([bin_, "--data-dir", data] + args, timeout=timeout, env=env)
        return True, dt, rss
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"warning: casesync {' '.join(args[:2])}: {str(e)[-300:]}", file=sys.stderr)
        return False, time.monotonic() - t0, 0


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


def is_js(cmd):
    return cmd[-1].endswith("harness.mjs")


def spawn_peer_server(cmd, data, extra=(), port=None):
    """Starts `serve`; returns (process, port) without waiting for it."""
    port = port or free_port()
    extra = list(extra) + net_opts(cmd)
    err = open(data.rstrip("/") + ".serve.log", "w") if os.environ.get("BENCH_KEEP_LOGS") else subprocess.DEVNULL
    p = subprocess.Popen(cmd + ["serve", "--dir", data, "--port", str(port)] + list(extra),
                         stdout=subprocess.PIPE, stderr=err, text=True)
    return p, port


def await_listening(p):
    line = p.stdout.readline()
    if "listening" not in line:
        p.kill()
        p.wait()
        raise RuntimeError(f"peer server did not start: {line!r}")


def start_peer_server(cmd, data, extra=()):
    p, port = spawn_peer_server(cmd, data, extra)
    await_listening(p)
    return p, port


def first_id(written):
    with open(os.path.join(written, "ids.txt")) as f:
        return f.readline().strip()


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


# How the peers hold the N records of the write and sync scenarios. "case"
# (the default): one document holding them all, one change per record, as
# casesync holds them in one case; it is the peers' fast path (the issue's
# orientation figures for them match it). "record": a document per record,
# where both peers slow down with the number of documents they hold.
PEER_MODEL = os.environ.get("BENCH_PEER_MODEL", "case")


def peer_model_args(n):
    return ["--cases", "1", "--per-case", str(n)] if PEER_MODEL == "case" else ["--records", str(n)]


def peer_check_args(n):
    return ["--per-case", str(n)] if PEER_MODEL == "case" else []


def peer_write(cmd, work, name, n):
    data = os.path.join(work, f"{name}-write-{n}")
    shutil.rmtree(data, ignore_errors=True)
    extra = ["--strings", "immutable", "--fsync"] if is_js(cmd) else []
    _, dt, rss = timed(cmd + ["write", "--dir", data] + peer_model_args(n) + extra)
    disk = b.dir_bytes(data)
    _, reopen, _ = timed(cmd + ["reopen", "--dir", data] + peer_check_args(n))
    return {"seconds": dt, "records_per_s": n / dt, "peak_rss": rss, "disk_bytes": disk, "reopen_s": reopen,
            "data": data}


def attempts_loop(attempts, one):
    """Runs one(i) -> run dict (with "complete" and "timed_out") for each
    attempt; stops early after TIMEOUTS_BEFORE_SKIP timeouts in a row."""
    runs, streak = [], 0
    for i in range(attempts):
        r = one(i)
        runs.append(r)
        streak = streak + 1 if r.get("timed_out") else 0
        if streak >= TIMEOUTS_BEFORE_SKIP and i + 1 < attempts:
            print(f"warning: {streak} attempts in a row timed out after {ATTEMPT_TIMEOUT} s; "
                  f"the other {attempts - i - 1} are not run and count as incomplete", file=sys.stderr)
            break
    return summarize(runs, attempts)


def casesync_serve_sync(bin_, a, target):
    """A serves; `target` runs `sync --once` from it through a counting proxy.
    Returns the run dict (seconds, wire bytes, RSS, complete)."""
    p, addr = b.serve(bin_, a, [])
    proxy = b.CountingProxy.to(addr)
    try:
        ok, dt, rss = cs_timed(bin_, target, ["sync", "--once", "--peer", proxy.via(addr),
                                              "--timeout", str(ATTEMPT_TIMEOUT)],
                               timeout=ATTEMPT_TIMEOUT + GRACE)
        complete = ok and b.max_entry(target)[1] >= b.max_entry(a)[1]
    finally:
        sender_rss = peak_rss_of(p.pid)
        stop(p)
    return {"seconds": dt, "wire": proxy.take(), "rss": rss, "sender_rss": sender_rss, "complete": complete,
            "timed_out": not ok and dt >= ATTEMPT_TIMEOUT}


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

    def one(i):
        # Each attempt syncs into a fresh copy of the empty receiver.
        target = os.path.join(base, f"b{i}")
        shutil.copytree(empty, target)
        try:
            return casesync_serve_sync(bin_, a, target)
        finally:
            shutil.rmtree(target, ignore_errors=True)
    return attempts_loop(attempts, one)


def peer_fetch(cmd, written, dest, extra=()):
    """One fetch from a fresh server on `written` through a counting proxy
    into `dest`. Returns the run dict."""
    p, port = start_peer_server(cmd, written)
    proxy = b.CountingProxy(port)
    timed_out = False
    try:
        res, dt, rss = timed(cmd + ["fetch", "--dir", dest, "--port", str(proxy.port),
                                    "--ids", os.path.join(written, "ids.txt"),
                                    "--timeout", str(ATTEMPT_TIMEOUT)] + list(extra) + net_opts(cmd),
                             timeout=ATTEMPT_TIMEOUT + GRACE)
        timed_out = not res.get("complete")  # the harness gave up at its --timeout
    except subprocess.TimeoutExpired as e:
        print(f"warning: {os.path.basename(cmd[-1])} fetch killed: {e}", file=sys.stderr)
        res, dt, rss, timed_out = {"complete": False}, float(ATTEMPT_TIMEOUT), 0, True
    except RuntimeError as e:
        print(f"warning: {e}", file=sys.stderr)
        res, dt, rss = {"complete": False, "error": str(e)}, float("nan"), 0
    finally:
        sender_rss = peak_rss_of(p.pid)
        stop(p)
    # seconds: the whole fetch process; harness_s: the harness's own clock
    # (connection to last document, no process start or flush).
    return {"seconds": dt, "harness_s": res.get("seconds"), "wire": proxy.take(), "rss": rss,
            "sender_rss": sender_rss, "complete": bool(res.get("complete")), "timed_out": timed_out}


def peer_sync(cmd, written, work, name, tag, attempts, extra=()):
    """`attempts` fetches of everything in `written`, each into a fresh
    directory. Returns (summary, the store of the last complete fetch or
    None).

    The fetched stores are left in `work` (removed with it at the end): on
    this machine's disk (ext4 mounted with `discard`) deleting a peer's store
    of 1,000 documents, ~3,500 files and directories, takes ~8 s, so deleting
    between attempts made up a quarter of a --quick run."""
    last = [None]

    def one(i):
        dest = os.path.join(work, f"{name}-fetch-{tag}-{i}")
        shutil.rmtree(dest, ignore_errors=True)
        r = peer_fetch(cmd, written, dest, extra)
        if r["complete"]:
            last[0] = dest
        return r
    return attempts_loop(attempts, one), last[0]


def summarize(runs, attempts=None):
    ok = [r for r in runs if r["complete"]]
    secs = [r["seconds"] for r in ok]
    return {
        "attempts": attempts or len(runs), "run": len(runs), "complete": len(ok),
        "timed_out": sum(1 for r in runs if r.get("timed_out")),
        "median_s": statistics.median(secs) if secs else None,
        "min_s": min(secs) if secs else None, "max_s": max(secs) if secs else None,
        "wire_bytes": statistics.median([r["wire"] for r in ok]) if ok else None,
        "receiver_peak_rss": max((r["rss"] for r in ok), default=None),
        "sender_peak_rss": max((r["sender_rss"] for r in ok), default=None),
    }


def casesync_latency(bin_, work, edits, other_cases=0):
    """Edit-to-visible on a case the two nodes share, with `other_cases` more
    shared cases of one record each beside it (a push costs the cases that
    changed, not every case held)."""
    base = os.path.join(work, f"cs-latency-{other_cases}")
    shutil.rmtree(base, ignore_errors=True)
    a, bb = b.federation(bin_, base, ["a", "b"])
    member = b.peer_id(bin_, bb)
    for i in range(other_cases):
        other = b.run(bin_, a, ["case", "create", "--title", f"other {i}"])[1].strip()
        b.run(bin_, a, ["case", "member", "add", other, member, "--role", "contributor"])
        b.run(bin_, a, ["record", "add", other, "--type", "person", "--field", f"name=o{i}"])
    case = b.run(bin_, a, ["case", "create", "--title", "latency"])[1].strip()
    b.run(bin_, a, ["case", "member", "add", case, member, "--role", "contributor"])
    rid = b.run(bin_, a, ["record", "add", case, "--type", "person", "--field", "name=x"])[1].strip()
    pa, addr = b.serve(bin_, a, [])
    pb, _ = b.serve(bin_, bb, [addr])
    try:
        b.wait_entries(bb, other_cases + 1, timeout=120)
        lat = b.edit_latency(bin_, [a, bb], case, rid, n=edits, warmup=LATENCY_WARMUP)
    finally:
        stop(pa)
        stop(pb)
    return lat


# Other cases two nodes share beside the edited one, for casesync's busy
# latency row.
BUSY_CASES = 200

# Latency runs start with a few edits the watcher ignores, on every side
# (casesync's first push after a sync looks at every case; later ones at
# the case that changed).
LATENCY_WARMUP = 20


def peer_edits(cmd, port, doc, edits, interval_ms, settle_ms=1000, warmup=0):
    key = "--url" if is_js(cmd) else "--id"
    timed(cmd + ["edit", "--port", str(port), key, doc, "--edits", str(edits), "--interval-ms", str(interval_ms),
                 "--settle-ms", str(settle_ms), "--warmup", str(warmup)] + net_opts(cmd), timeout=300)


def peer_latency(cmd, written, work, name, edits):
    doc = first_id(written)
    out = os.path.join(work, f"{name}-latency.json")
    p, port = start_peer_server(cmd, written, ["--watch", doc, "--expect", str(edits), "--out", out])
    try:
        peer_edits(cmd, port, doc, edits, 20, settle_ms=500, warmup=LATENCY_WARMUP)
        for _ in range(100):
            if os.path.exists(out):
                break
            time.sleep(0.1)
    finally:
        stop(p)
    with open(out) as f:
        return json.load(f)["latencies_ms"]


# ---- 1,000 cases of 10 records; reconnect between in-sync nodes ----

def casesync_cases(bin_, work, ncases, per_case, attempts):
    """A creates `ncases` cases, adds B to each and imports `per_case` records
    into each (record r of case c is c*per_case + r, as for the peers); B,
    empty, fetches them all with one `sync --once`. Returns (summary, A's
    store, the last complete receiver or None) for the reconnect scenario."""
    base = os.path.join(work, f"cs-cases-{ncases}")
    a, bb = b.federation(bin_, base, ["a", "b"])
    pid_b = b.peer_id(bin_, bb)

    def setup(c):
        src = os.path.join(base, f"case-{c}.jsonl")
        make_records_jsonl(src, per_case, start=c * per_case)
        case = b.run(bin_, a, ["case", "create", "--title", f"case {c}"])[1].strip()
        b.run(bin_, a, ["case", "member", "add", case, pid_b, "--role", "contributor"])
        b.run(bin_, a, ["record", "import", case, src])
        os.unlink(src)
    # 3 process runs per case; two at a time (2 cores).
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(setup, range(ncases)))
    empty = os.path.join(base, "b-empty")
    shutil.copytree(bb, empty)

    last = [None]

    def one(i):
        target = os.path.join(base, f"b{i}")
        shutil.copytree(empty, target)
        r = casesync_serve_sync(bin_, a, target)
        if r["complete"]:
            last[0] = target
        return r
    return attempts_loop(attempts, one), a, last[0]


def peer_write_cases(cmd, work, name, ncases, per_case):
    data = os.path.join(work, f"{name}-cases-{ncases}")
    shutil.rmtree(data, ignore_errors=True)
    extra = ["--strings", "immutable"] if is_js(cmd) else ["--no-fsync"]
    res, dt, _ = timed(cmd + ["write", "--dir", data, "--cases", str(ncases), "--per-case", str(per_case)] + extra)
    return data


def casesync_reconnect(bin_, a, b_synced):
    """B already holds everything A has; `sync --once` again through the
    proxy, twice. The first reconnect after a sync also carries B's storage
    receipts to A, the originator, for the records that sync stored
    (provenance, about 140 bytes per record, once): the nodes are in sync
    only after it. The second is the row (bytes on the wire, seconds,
    complete); the first is kept as `first_wire_bytes`."""
    first = casesync_serve_sync(bin_, a, b_synced)
    r = casesync_serve_sync(bin_, a, b_synced)
    return {"wire_bytes": r["wire"], "seconds": r["seconds"], "complete": r["complete"],
            "first_wire_bytes": first["wire"]}


def peer_reconnect(cmd, written, synced, per_case):
    """The store `synced` already holds every document of `written` (an
    earlier fetch); fetch --existing loads them and syncs each with a fresh
    server through the proxy, as the peers do on every connect."""
    r = peer_fetch(cmd, written, synced, ["--existing", "--per-case", str(per_case)])
    return {"wire_bytes": r["wire"], "seconds": r["seconds"], "complete": r["complete"]}


# ---- bytes on the wire per single-field edit ----

def casesync_edit_bytes(bin_, work, n):
    """A and B in sync, both serving, B dialing A through the proxy. Bytes for
    a session with n+1 edits minus a session with 1, over n: connection setup
    and the initial exchange cancel out. Both run with --anti-entropy 86400 so
    no periodic round falls inside the count (edits are pushed at once
    whatever the interval). Each edit is `record edit RID --field status=sN`
    on A, waited for until B holds it."""
    base = os.path.join(work, "cs-edit-bytes")
    a, bb = b.federation(bin_, base, ["a", "b"])
    case = b.run(bin_, a, ["case", "create", "--title", "edit bytes"])[1].strip()
    b.run(bin_, a, ["case", "member", "add", case, b.peer_id(bin_, bb), "--role", "contributor"])
    fields = [f"--field=name={field(0, 0)}"] + [f"--field=f{i}={field(0, i)}" for i in range(1, 8)]
    rid = b.run(bin_, a, ["record", "add", case, "--type", "person"] + fields)[1].strip()
    p, addr = b.serve(bin_, a, [])
    try:
        b.run(bin_, bb, ["sync", "--once", "--peer", addr, "--timeout", "120"])
    finally:
        stop(p)

    def session(k):
        # Fresh copies of the same in-sync pair for each session.
        ak, bk = os.path.join(base, f"a-{k}"), os.path.join(base, f"b-{k}")
        shutil.copytree(a, ak)
        shutil.copytree(bb, bk)
        pa, addr_a = b.serve(bin_, ak, [], ["--anti-entropy", "86400"])
        proxy = b.CountingProxy.to(addr_a)
        pb, _ = b.serve(bin_, bk, [proxy.via(addr_a)], ["--anti-entropy", "86400"])
        try:
            quiet(proxy)  # connected and the initial exchange over
            for i in range(k):
                before = b.max_entry(bk)[1]
                b.run(bin_, ak, ["record", "edit", rid, "--field", f"status=s{i}"])
                b.wait_entries(bk, before + 1)
            time.sleep(1)  # acknowledgements
        finally:
            stop(pa)
            stop(pb)
        return proxy.take()
    return per_edit(session, n)


def quiet(proxy, window=0.5, timeout=30):
    """Waits until some bytes have passed and then none for `window` seconds."""
    t0 = time.monotonic()
    while proxy.bytes == 0 and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    last = -1
    while proxy.bytes != last and time.monotonic() - t0 < timeout:
        last = proxy.bytes
        time.sleep(window)


def per_edit(session, n):
    one, more = session(1), session(n + 1)
    return {"edits": n, "bytes_1": one, f"bytes_{n + 1}": more, "bytes_per_edit": (more - one) / n}


def peer_edit_bytes(cmd, written, work, name, n):
    """An edit client connects through the proxy to a server holding the
    document, makes k edits of f0, settles and exits; (bytes(n+1) - bytes(1))
    / n. Edits are 150 ms apart, past automerge-repo's 100 ms sync throttle,
    so every edit is its own sync exchange as in casesync (no batching). The
    value written is `edit <i> <unix ms>`, ~25 characters (casesync's `sN` is
    2-3), so the peers carry ~22 more bytes of payload per edit."""
    doc = first_id(written)

    def session(k):
        srv = os.path.join(work, f"{name}-edit-bytes-{k}")
        shutil.rmtree(srv, ignore_errors=True)
        shutil.copytree(written, srv)  # the same starting document each time
        p, port = start_peer_server(cmd, srv)
        proxy = b.CountingProxy(port)
        try:
            peer_edits(cmd, proxy.port, doc, k, 150, settle_ms=500)
        finally:
            stop(p)
        return proxy.take()
    return per_edit(session, n)


# ---- edit-to-visible along a line of 5 ----

def peer_line_latency(cmd, written, work, name, count, edits):
    """Servers s0 .. s{count-1}, each holding the document (copies of one
    store) and each but s0 dialing the one before (serve --upstream), so an
    edit crosses count-1 server hops; the edit client is on s0, the watcher on
    the last, as casesync's n0 -> n4."""
    doc = first_id(written)
    out = os.path.join(work, f"{name}-line.json")
    ports = [free_port() for _ in range(count)]
    procs = []
    try:
        # All at once (a process start is ~1 s for Node.js): a server retries
        # its upstream until that one listens, and says "listening" only once
        # connected to it, so when all have, the line is connected.
        for i in range(count):
            d = os.path.join(work, f"{name}-line-{i}")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(written, d)
            extra = ["--open", doc] + (["--upstream", str(ports[i - 1])] if i else [])
            if i == count - 1:
                extra += ["--watch", doc, "--expect", str(edits), "--out", out]
            procs.append(spawn_peer_server(cmd, d, extra, ports[i])[0])
        for p in procs:
            await_listening(p)
        first_port = ports[0]
        time.sleep(0.5)  # let the documents' first sync exchanges along the line finish
        # 200 ms apart: casesync's edits along its line are one at a time (each
        # waited for at the end), so no edit queues behind the one before.
        # 200 ms keeps that true for the peers: automerge-repo sends at most
        # every 100 ms per document and hop, and at 100 ms apart its five
        # processes fell behind on this 2-core machine (latencies grew to
        # 200-450 ms, against ~35 ms at 200 ms apart).
        peer_edits(cmd, first_port, doc, edits, 200, settle_ms=500, warmup=LATENCY_WARMUP)
        t0 = time.monotonic()
        while not os.path.exists(out) and time.monotonic() - t0 < 30:
            time.sleep(0.1)
    finally:
        for p in procs:
            stop(p)  # the watcher writes what it has seen at SIGTERM if not done yet
    with open(out) as f:
        return json.load(f)["latencies_ms"]


# ---- the table ----

def fmt_rate(x):
    return f"{x:,.0f} rec/s" if x else "n/a"


def fmt_s(x):
    return f"{x:.2f} s" if x is not None else "n/a"


def fmt_bytes(x):
    if x is None:
        return "n/a"
    if x >= 2**20:
        return f"{x / 2**20:.1f} MiB"
    if x >= 10 * 1024:
        return f"{x / 1024:.0f} KiB"
    return f"{x:,.0f} B"


def fmt_done(res):
    s = f"{res['complete']} of {res['attempts']}"
    if res["run"] < res["attempts"]:
        s += f" ({res['attempts'] - res['run']} not run after {res['timed_out']} timeouts)"
    elif res["timed_out"]:
        s += f" ({res['timed_out']} timed out)"
    return s


SCENARIOS = ("write", "sync", "latency", "cases", "reconnect", "edit-bytes", "line")


def compare(bin_, work, quick, result):
    ps = peers()
    sizes = [1000] if quick else [10_000, 100_000]
    if os.environ.get("BENCH_COMPARE_SIZES"):
        sizes = [int(x) for x in os.environ["BENCH_COMPARE_SIZES"].split(",")]
    # The issue asks how many of 20 attempts complete; quick mode keeps 2.
    attempts = 2 if quick else int(os.environ.get("BENCH_ATTEMPTS", "20"))
    edits = 30 if quick else 100
    # 1,000 cases of 10 records (quick: 100). casesync's setup is 3 CLI runs per case.
    ncases = int(os.environ.get("BENCH_CASES", "100" if quick else "1000"))
    per_case = 10
    # Bytes per edit: sessions with 1 and n+1 edits.
    edit_n = 10 if quick else 50
    only = {x.strip() for x in os.environ.get("BENCH_ONLY", "").split(",") if x.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        sys.exit(f"error: BENCH_ONLY: unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    want = (lambda name: not only or name in only)
    # automerge-repo writes ~200 records/s here: 100,000 would take most of an hour.
    js_max = int(os.environ.get("BENCH_JS_MAX", "10000"))
    rows, data = [], {"peers": sorted(ps), "sizes": sizes, "attempts": attempts,
                      "attempt_timeout_s": ATTEMPT_TIMEOUT, "scenarios": sorted(only or SCENARIOS)}

    def row(name, values, better):
        """values: system -> (display, number or None); better: 'low', 'high' or None (no ratio)."""
        cs = values.get("casesync", (None, None))[1]
        others = [v[1] for k, v in values.items() if k != "casesync" and v[1]]
        ratio = ""
        if better and cs and others:
            best = min(others) if better == "low" else max(others)
            r = best / cs if better == "low" else cs / best
            ratio = f"{r:.2f}x"
        rows.append((name, values.get("casesync", ("n/a",))[0], values.get("automerge-repo", ("n/a",))[0],
                     values.get("samod", ("n/a",))[0], ratio))

    def sync_rows(label, res_by_system, prefix):
        vals, wire, rrss, done = {}, {}, {}, {}
        for name, res in res_by_system.items():
            data[f"{name}_{prefix}"] = res
            med = res["median_s"]
            vals[name] = (f"{fmt_s(med)} ({fmt_s(res['min_s'])}-{fmt_s(res['max_s'])})" if med else "n/a", med)
            if res["wire_bytes"]:
                wire[name] = (fmt_bytes(res["wire_bytes"]), res["wire_bytes"])
            if res["receiver_peak_rss"]:
                rrss[name] = (f"{res['receiver_peak_rss'] / 2**20:.0f} / {(res['sender_peak_rss'] or 0) / 2**20:.0f} MiB",
                              res["receiver_peak_rss"])
            done[name] = (fmt_done(res), res["complete"])
        row(f"{label} (median, range)", vals, "low")
        row("  bytes on the wire", wire, "low")
        row("  peak RSS receiver / sender", rrss, "low")
        row("  attempts complete", done, None)

    def latency_row(label, lats):
        vals = {}
        for name, lat in lats.items():
            if lat:
                vals[name] = (f"p50 {b.percentile(lat, 50):.1f} / p99 {b.percentile(lat, 99):.1f} ms",
                              b.percentile(lat, 50))
        row(label, vals, "low")

    def try_peer(name, what, fn, *args):
        """A peer's scenario that fails is left out of the table with a warning."""
        try:
            return fn(*args)
        except (RuntimeError, OSError, KeyError, ValueError, subprocess.TimeoutExpired) as e:
            print(f"warning: {name} {what}: {e}", file=sys.stderr)
            return None

    # Wall time per scenario, to keep an eye on the --quick budget.
    clock = [time.monotonic()]

    def lap(name, ran=True):
        now = time.monotonic()
        if ran:
            data.setdefault("scenario_wall_s", {})[name] = round(now - clock[0], 1)
            print(f"==> {name}: {now - clock[0]:.0f} s", file=sys.stderr)
        clock[0] = now

    written = {}
    if want("write") or want("sync"):
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
                w = try_peer(name, f"write {n}", peer_write, cmd, work, name, n)
                if w is None:
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

    lap("write", bool(written))
    if want("sync"):
        for n in sizes:
            res = {"casesync": casesync_sync(bin_, work, n, attempts)}
            for name, cmd in ps.items():
                if (name, n) in written:
                    res[name] = peer_sync(cmd, written[(name, n)], work, name, n, attempts,
                                          peer_check_args(n))[0]
            sync_rows(f"initial sync {n:,} records", res, f"sync_{n}")

    lap("sync", want("sync"))
    # Latency and bytes per edit are measured on a one-record store for every
    # system (casesync: a fresh case with one record), so the size of the
    # document edited does not weigh on one side only.
    small = {}
    if want("latency") or want("edit-bytes") or want("line"):
        for name, cmd in ps.items():
            d = os.path.join(work, f"{name}-one")
            shutil.rmtree(d, ignore_errors=True)
            extra = ["--strings", "immutable"] if is_js(cmd) else ["--no-fsync"]
            if try_peer(name, "write 1", timed, cmd + ["write", "--dir", d, "--records", "1"] + extra) is not None:
                small[name] = d
    lap("one-record stores", bool(small))
    if want("latency"):
        lats = {"casesync": casesync_latency(bin_, work, edits)}
        for name, cmd in ps.items():
            if name in small:
                lats[name] = try_peer(name, "latency", peer_latency, cmd, small[name], work, name, edits)
        for name, lat in lats.items():
            data[f"{name}_latency_ms"] = lat
        latency_row(f"edit-to-visible, 2 nodes, {edits} edits (p50 / p99)", lats)
        # casesync alone: a node holds many cases (the peers' documents are
        # independent of one another).
        busy = casesync_latency(bin_, work, edits, other_cases=BUSY_CASES)
        data["casesync_latency_busy_ms"] = busy
        latency_row(f"  casesync with {BUSY_CASES} more shared cases", {"casesync": busy})

    lap("latency", want("latency"))
    # (a) many small cases. For the peers a case is ONE document holding its
    # records (a map record id -> {f0..f7}, one change per record): 1,000
    # documents where casesync syncs 1,000 cases of 10 records, each with its
    # own log, keys and membership. This modelling favours the peers (fewer,
    # larger documents: their per-document costs are paid 10 times less often
    # than with a document per record).
    case_stores = {}  # system -> (source store, synced receiver store) for reconnect
    if want("cases") or want("reconnect"):
        counts = [ncases] if want("cases") else []
        if want("reconnect"):
            counts = sorted(set(counts) | {1, ncases})
        for nc in counts:
            # Only the asked-for size is timed attempts times; the 1-case
            # setup for reconnect is fetched once.
            tries = attempts if (nc == ncases and want("cases")) else 1
            res = {}
            res["casesync"], a, synced = casesync_cases(bin_, work, nc, per_case, tries)
            if synced:
                case_stores[("casesync", nc)] = (a, synced)
            for name, cmd in ps.items():
                src = try_peer(name, f"write {nc} cases", peer_write_cases, cmd, work, name, nc, per_case)
                if src is None:
                    continue
                res[name], synced = peer_sync(cmd, src, work, name, f"cases-{nc}", tries,
                                              ["--per-case", str(per_case)])
                if synced:
                    case_stores[(name, nc)] = (src, synced)
            if nc == ncases and want("cases"):
                sync_rows(f"{ncases:,} cases of {per_case} records, fetched by a 2nd node", res, f"cases_{nc}")
            else:
                for name, r in res.items():
                    data[f"{name}_cases_{nc}"] = r

    lap("cases (with the reconnect setups)", want("cases") or want("reconnect"))
    # (c) reconnect between in-sync nodes: the bytes it takes to find out
    # there is nothing to send. casesync: `sync --once` again, after one
    # that delivered the storage receipts (`casesync_reconnect`); the peers
    # sync every document on connect (their anti-entropy).
    if want("reconnect"):
        for nc in (1, ncases):
            vals = {}
            for name in ["casesync"] + list(ps):
                if (name, nc) not in case_stores:
                    continue
                src, synced = case_stores[(name, nc)]
                r = (casesync_reconnect(bin_, src, synced) if name == "casesync" else
                     try_peer(name, f"reconnect {nc}", peer_reconnect, ps[name], src, synced, per_case))
                if not r:
                    continue
                data[f"{name}_reconnect_{nc}"] = r
                vals[name] = ((fmt_bytes(r["wire_bytes"]) if r["complete"] else "incomplete"),
                              r["wire_bytes"] if r["complete"] else None)
            row(f"reconnect in sync, {nc:,} shared case{'s' if nc > 1 else ''}/doc{'s' if nc > 1 else ''}: bytes",
                vals, "low")
            first = data.get(f"casesync_reconnect_{nc}", {}).get("first_wire_bytes")
            if first is not None:
                row("&nbsp;&nbsp;casesync's first reconnect after a sync (with storage receipts)",
                    {"casesync": (fmt_bytes(first), first)}, "low")

    lap("reconnect", want("reconnect"))
    # (b) bytes per single-field edit, and (d) the 5-node line, both on a
    # one-record store.
    if want("edit-bytes"):
        res = {"casesync": casesync_edit_bytes(bin_, work, edit_n)}
        for name, d in small.items():
            res[name] = try_peer(name, "edit bytes", peer_edit_bytes, ps[name], d, work, name, edit_n)
        vals = {}
        for name, r in res.items():
            if r:
                data[f"{name}_edit_bytes"] = r
                vals[name] = (f"{r['bytes_per_edit']:,.0f} B", r["bytes_per_edit"])
        row(f"bytes on the wire per single-field edit ({edit_n + 1} vs 1 edits)", vals, "low")

    lap("edit-bytes", want("edit-bytes"))
    if want("line"):
        lats = {"casesync": b.line_latency(bin_, os.path.join(work, "cs-line-5"), 5, edits, warmup=LATENCY_WARMUP)}
        for name, d in small.items():
            lats[name] = try_peer(name, "line", peer_line_latency, ps[name], d, work, name, 5, edits)
        for name, lat in lats.items():
            data[f"{name}_line5_latency_ms"] = lat
        latency_row(f"edit-to-visible, 5-node line, end to end, {edits} edits (p50 / p99)", lats)

    lap("line", want("line"))
    result["compare"] = data
    header = ("scenario", "casesync", "automerge-repo", "samod", "best ratio")
    w = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    print()
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)).rstrip())
    print("\nbest ratio: casesync against the better peer (above 1 = casesync ahead); times are whole processes")
    return rows
