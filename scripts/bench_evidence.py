#!/usr/bin/env python3
"""Evidence file rows of scripts/bench.sh (issue 18): `evidence add`, the
sync of its pieces to two members at once, and `evidence get` on each, for files of
BENCH_EVIDENCE_MIB sizes (100 and 1024 MiB), each with its throughput and
peak RSS; against a plain copy of the file over one TCP connection on
loopback (the physical limit here). Bytes on the wire are what the
loopback interface carried while the sync ran (/proc/net/dev, both
directions): an upper bound, framing, encryption and record sync included.
"""
import os
import socket
import threading
import time

from benchlib import federation, run, run_rss, serve


def make_file(path, mib):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(mib):
            # Not one block repeated: each MiB differs in its first bytes.
            f.write(i.to_bytes(8, "big") + block[8:])


def tcp_copy_mib_s(src, dst):
    """Copies `src` to `dst` over one TCP connection on 127.0.0.1, as scp
    would without its cipher: the most the loopback and the disk give."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def receive():
        c, _ = srv.accept()
        buf = bytearray(1 << 20)
        with open(dst, "wb") as f:
            while True:
                n = c.recv_into(buf)
                if not n:
                    break
                f.write(buf[:n])
            f.flush()
            os.fsync(f.fileno())
        c.close()

    t = threading.Thread(target=receive)
    t.start()
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as s, open(src, "rb") as f:
        s.sendfile(f)
    t.join()
    dt = time.monotonic() - t0
    srv.close()
    return os.path.getsize(src) / (1 << 20) / dt


def loopback_bytes():
    """Bytes the loopback interface has carried (it counts each once)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[0])
    return 0


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return 0


def count_pieces(data):
    root = os.path.join(data, "pieces")
    n = 0
    for _, _, files in os.walk(root):
        n += sum(1 for f in files if len(f) == 64)
    return n


def evidence_rows(bin_, work, result, rows):
    sizes = [int(s) for s in os.environ.get("BENCH_EVIDENCE_MIB", "100,1024").split(",")]
    result["evidence"] = []
    for mib in sizes:
        base = os.path.join(work, f"evidence-{mib}")
        os.makedirs(base, exist_ok=True)
        a, b, c = federation(bin_, base, ["ev-a", "ev-b", "ev-c"])
        case = run(bin_, a, ["case", "create", "--title", "evidence bench"])[1].strip()
        for member in (b, c):
            card = run(bin_, member, ["id", "--card"])[1].strip()
            run(bin_, a, ["case", "member", "add", case, card, "--role", "contributor"])
        src = os.path.join(base, "exhibit.bin")
        make_file(src, mib)
        limit = tcp_copy_mib_s(src, os.path.join(base, "copy.bin"))
        os.remove(os.path.join(base, "copy.bin"))
        dt_add, rss_add = run_rss(bin_, a, ["evidence", "add", case, src])
        out = run(bin_, a, ["--json", "record", "list", case])[1]
        import json
        rid = json.loads(out)[0]["id"]
        pieces = count_pieces(a)
        pa, addr = serve(bin_, a, [])
        t0 = time.monotonic()
        w0 = loopback_bytes()
        pb, _ = serve(bin_, b, [addr])
        pc, _ = serve(bin_, c, [addr])
        try:
            while count_pieces(b) < pieces or count_pieces(c) < pieces:
                if time.monotonic() - t0 > 1800:
                    raise SystemExit("error: evidence sync did not finish in 30 minutes")
                time.sleep(0.05)
            dt_sync = time.monotonic() - t0
            wire = loopback_bytes() - w0
            rss_a, rss_b, rss_c = (peak_rss_mib(p.pid) for p in (pa, pb, pc))
        finally:
            for p in (pa, pb, pc):
                p.terminate()
                p.wait(timeout=30)
        got = os.path.join(base, "got.bin")
        dt_get, rss_get = run_rss(bin_, b, ["evidence", "get", rid, "--out", got])
        if os.path.getsize(got) != os.path.getsize(src):
            raise SystemExit("error: evidence get wrote another size")
        os.remove(got)
        _, rss_get_c = run_rss(bin_, c, ["evidence", "get", rid, "--out", got])
        if os.path.getsize(got) != os.path.getsize(src):
            raise SystemExit("error: evidence get wrote another size")
        r = {
            "mib": mib,
            "tcp_copy_mib_s": round(limit),
            "add_mib_s": round(mib / dt_add), "add_peak_rss_mib": rss_add >> 20,
            "sync_to_two_mib_s": round(mib / dt_sync), "sync_sender_peak_rss_mib": rss_a,
            "sync_receivers_peak_rss_mib": [rss_b, rss_c],
            "wire_over_file": round(wire / (mib << 20), 3),
            "get_mib_s": round(mib / dt_get), "get_peak_rss_mib": max(rss_get, rss_get_c) >> 20,
        }
        result["evidence"].append(r)
        rows.append((f"evidence {mib} MiB: add / sync to two / get", f"{r['add_mib_s']} / {r['sync_to_two_mib_s']} / {r['get_mib_s']} MiB/s",
                     f"TCP copy {r['tcp_copy_mib_s']} MiB/s",
                     f"peak RSS add {r['add_peak_rss_mib']}, serve {rss_a}, {rss_b}, {rss_c}, get {r['get_peak_rss_mib']} MiB",
                     f"wire/file {r['wire_over_file']} (two copies)"))
        for f in (src, got):
            os.remove(f)
