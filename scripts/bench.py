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

from benchlib import (
    run,
    run_rss,
    dir_bytes,
    make_jsonl,
    peer_id,
    federation,
    serve,
    CountingProxy,
    wait_entries,
    line_latency,
    percentile,
    remove_in_background,
    guard,
)


def sync_rows(bin_, work, sizes, result, rows):
    result["sync"] = {"initial": [], "latency": []}
    for n in sizes:
        base = os.path.join(work, f"sync-{n}")
        a, b = federation(bin_, base, ["a", "b"])
        _, case = run(bin_, a, ["case", "create", "--title", "sync bench"])
        case = case.strip()
        run(bin_, a, ["case", "member", "add", case, peer_id(bin_, b), "--role", "contributor"])
        run(bin_, a, ["record", "import", case, os.path.join(work, f"people-{n}.jsonl")])
        import sqlite3
        c = sqlite3.connect(os.path.join(a, "casesync.db"))
        entry_bytes = c.execute("SELECT SUM(length(bytes)) FROM entries").fetchone()[0]
        c.close()
        p, addr = serve(bin_, a, [])
        proxy = CountingProxy.to(addr)
        try:
            dt, rss = run_rss(bin_, b, ["sync", "--once", "--peer", proxy.via(addr), "--timeout", "600"])
        finally:
            p.terminate()
            p.wait()
        wire = proxy.take()
        r = {"records": n, "seconds": round(dt, 2), "receiver_peak_rss_mib": round(rss / 2**20, 1),
             "entry_bytes": entry_bytes, "wire_bytes": wire}
        result["sync"]["initial"].append(r)
        rows.append((f"initial sync {n:,} records", f"{dt:.2f} s", f"{wire / 2**20:.1f} MiB on the wire "
                     f"({entry_bytes / 2**20:.1f} MiB of entries)",
                     f"receiver peak RSS {r['receiver_peak_rss_mib']} MiB", "whole `sync --once` process"))
    # Edit-to-visible: two connected nodes, then a line of five.
    for count in (2, 5):
        lat = line_latency(bin_, os.path.join(work, f"line-{count}"), count)
        r = {"nodes": count, "p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1), "samples": len(lat)}
        result["sync"]["latency"].append(r)
        rows.append((f"edit-to-visible, {'2 connected nodes' if count == 2 else '5-node line, end to end'}",
                     f"p50 {r['p50_ms']} ms", f"p99 {r['p99_ms']} ms", f"{len(lat)} edits", ""))


def anti_entropy_rows(bin_, work, result, rows, counts=(1, 1000)):
    """Bytes per anti-entropy round between two in-sync serving nodes that share
    `count` cases. Only B runs rounds (A's interval is a day), one per second, so
    the bytes counted over a window divided by the seconds is bytes per round."""
    from concurrent.futures import ThreadPoolExecutor
    result["sync"]["anti_entropy"] = []
    for count in counts:
        base = os.path.join(work, f"entropy-{count}")
        a, b = federation(bin_, base, ["a", "b"])
        pid_b = peer_id(bin_, b)

        def shared_case(i):
            _, case = run(bin_, a, ["case", "create", "--title", f"case {i}"])
            run(bin_, a, ["case", "member", "add", case.strip(), pid_b, "--role", "contributor"])
            return case.strip()
        with ThreadPoolExecutor(2) as ex:
            cases = list(ex.map(shared_case, range(count)))
        run(bin_, a, ["record", "add", cases[0], "--type", "person", "--field", "name=x"])
        pa, addr_a = serve(bin_, a, [], ["--anti-entropy", "86400"])
        proxy = CountingProxy.to(addr_a)
        pb, _ = serve(bin_, b, [proxy.via(addr_a)], ["--anti-entropy", "1"])
        try:
            wait_entries(b, 1, timeout=300)
            import sqlite3
            t0 = time.monotonic()
            while True:
                c = sqlite3.connect(f"file:{os.path.join(b, 'casesync.db')}?mode=ro", uri=True, timeout=30)
                held = c.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
                c.close()
                if held >= count:
                    break
                if time.monotonic() - t0 > 600:
                    sys.exit(f"error: B holds {held} of {count} cases")
                time.sleep(0.1)
            # Settled when two seconds pass with no more than two rounds' worth
            # of bytes (the initial exchanges, summaries included, are over).
            proxy.take()
            for _ in range(30):
                time.sleep(2)
                if proxy.take() < 4096:
                    break
            window = 10
            time.sleep(window)
            wire = proxy.take()
        finally:
            for p in (pa, pb):
                p.terminate()
                p.wait()
        per_round = wire / window
        r = {"shared_cases": count, "bytes_per_round": round(per_round), "window_s": window, "rounds_per_s": 1}
        result["sync"]["anti_entropy"].append(r)
        rows.append((f"anti-entropy round, in sync, {count:,} shared case{'s' if count > 1 else ''}",
                     f"{per_round:,.0f} B/round", "both directions, on the wire", f"{window} rounds measured", ""))


def audit_cost_rows(bin_, work, result, rows):
    """The cost of auditing: import N records and show 1,000 of them through the
    audited command paths and through the same raw operations, in one process
    (node/examples/audit_cost.rs), as ratios."""
    ex = os.path.join(os.path.dirname(bin_), "examples", "audit_cost")
    n = int(os.environ.get("BENCH_AUDIT_N", "10000"))
    out = subprocess.run([ex, os.path.join(work, "audit-cost"), str(n), "1000"],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    result["audit_cost"] = r
    rows.append((f"audit cost: import {n:,} records", f"audited {r['import_audited_s']:.2f} s",
                 f"raw {r['import_raw_s']:.2f} s", f"ratio {r['import_ratio']:.2f}x", ""))
    rows.append((f"audit cost: show {r['show_records']:,} records", f"audited {r['show_audited_s']:.2f} s",
                 f"raw {r['show_raw_s']:.2f} s", f"ratio {r['show_ratio']:.2f}x",
                 f"{(r['show_audited_s'] - r['show_raw_s']) / r['show_records'] * 1000:.2f} ms per audited show"))


def hardening_rows(bin_, work, result, rows):
    """What must stay linear however a partner behaves (issue 14): resolving a
    control log (verify + resolve), ingesting one record's edits delivered at
    once (a bundle import), and a registry (verify + resolve, and a join), each
    at two sizes in one process (node/examples/hardening_cost.rs). The ratio of
    per-item costs (large / small) is near 1 when growth is linear."""
    ex = os.path.join(os.path.dirname(bin_), "examples", "hardening_cost")
    args = [ex, os.path.join(work, "hardening"),
            os.environ.get("BENCH_CONTROL_OPS", "2500,10000"),
            os.environ.get("BENCH_EDITS", "1000,5000"),
            os.environ.get("BENCH_REGISTRY", "250,1000")]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    result["hardening"] = r
    for key, what, unit, per in [("resolve", "control log", "ops", "us_per_op"),
                                 ("ingest_edits", "one record's edits", "edits", "us_per_edit"),
                                 ("registry", "registry", "nodes", "us_per_statement")]:
        small, large = r[key]
        secs = "seconds" if "seconds" in small else "resolve_seconds"
        rows.append((f"{what}: {small[unit]:,} / {large[unit]:,} {unit}",
                     f"{small[secs]:.3f} s / {large[secs]:.3f} s",
                     f"{small[per]} / {large[per]} us each",
                     f"ratio {large[per] / max(small[per], 0.1):.2f}",
                     f"join {small['join_seconds']:.3f} s / {large['join_seconds']:.3f} s" if key == "registry" else ""))


def memory_rows(bin_, work, result, rows):
    """Peak RSS of a node under the files a partner or an operator may hand it
    (issue 21, findings 10-11): the largest bundle a partner can send (an
    export of BENCH_BUNDLE_RECORDS records, split into files within the
    bundle size), a stranger's bundle padded to just under it, a CSV with one
    300 MiB cell, and JSON Lines of the same. Target: none above 256 MiB.
    The same records give the scale rows (issue 22): the import's time, the
    store on disk, listing them streamed and a page, and the first sync of
    them all to a new member (time, peak RSS on both sides)."""
    n = int(os.environ.get("BENCH_BUNDLE_RECORDS", "1000000"))
    base = os.path.join(work, "memory")
    os.makedirs(base, exist_ok=True)
    a, b, c = federation(bin_, base, ["mem-a", "mem-b", "mem-c"])
    _, case = run(bin_, a, ["case", "create", "--title", "memory"])
    case = case.strip()
    for m in (b, c):
        run(bin_, a, ["case", "member", "add", case, peer_id(bin_, m), "--role", "contributor"])
    src = os.path.join(base, "people.jsonl")
    make_jsonl(src, n)
    import_s, import_rss = run_rss(bin_, a, ["record", "import", case, src])
    scale_rows(bin_, (a, c), case, n, (import_s, import_rss), result, rows)
    out = os.path.join(base, "all.bundle")
    _, shown = run(bin_, a, ["--json", "bundle", "export", "--out", out, "--for", peer_id(bin_, b)])
    files = json.loads(shown)["files"]
    peaks = []
    for f in files:
        _, rss = run_rss(bin_, b, ["bundle", "import", f])
        peaks.append((os.path.getsize(f), rss))
    biggest = max(peaks)
    # A stranger's bundle, padded to just under the size limit.
    s = os.path.join(base, "stranger")
    run(bin_, s, ["init", "--name", "stranger", "--org", "Nobody", "--country", "FR"])
    run(bin_, s, ["case", "create", "--title", "x"])
    padded = os.path.join(base, "stranger.bundle")
    run(bin_, s, ["bundle", "export", "--out", padded])
    with open(padded, "r+b") as f:
        f.truncate(31 << 20)
    _, stranger_rss, stranger_err = run_rss(bin_, b, ["bundle", "import", padded], refused=True)
    # One 300 MiB cell.
    cell = os.path.join(base, "cell.csv")
    with open(cell, "wb") as f:
        f.write(b"type,name\nperson,")
        chunk = b"a" * (1 << 20)
        for _ in range(300):
            f.write(chunk)
        f.write(b"\n")
    _, cell_rss, cell_err = run_rss(bin_, a, ["record", "import", case, cell], refused=True)
    line = os.path.join(base, "line.jsonl")
    with open(line, "wb") as f:
        f.write(b'{"type": "person", "fields": {"name": "')
        for _ in range(300):
            f.write(chunk)
        f.write(b'"}}\n')
    _, line_rss, line_err = run_rss(bin_, a, ["record", "import", case, line], refused=True)
    mib = lambda x: round(x / 2**20, 1)
    r = {"records": n, "record_import_peak_rss_mib": mib(import_rss),
         "bundle_files": len(files), "largest_bundle_mib": mib(biggest[0]),
         "bundle_import_peak_rss_mib": mib(max(p for _, p in peaks)),
         "stranger_bundle_mib": 31, "stranger_bundle_peak_rss_mib": mib(stranger_rss), "stranger_error": stranger_err,
         "csv_cell_mib": 300, "csv_cell_peak_rss_mib": mib(cell_rss), "csv_cell_error": cell_err,
         "jsonl_line_mib": 300, "jsonl_line_peak_rss_mib": mib(line_rss), "jsonl_line_error": line_err}
    result["memory"] = r
    rows.append((f"record import {n:,} records", f"peak RSS {r['record_import_peak_rss_mib']} MiB", "", "", ""))
    rows.append((f"bundle import of {n:,} records", f"{len(files)} files, largest {r['largest_bundle_mib']} MiB",
                 f"peak RSS {r['bundle_import_peak_rss_mib']} MiB", "", ""))
    rows.append(("bundle import: a stranger's 31 MiB", f"peak RSS {r['stranger_bundle_peak_rss_mib']} MiB",
                 "refused", "", ""))
    rows.append(("record import: CSV, one 300 MiB cell", f"peak RSS {r['csv_cell_peak_rss_mib']} MiB", "refused", "", ""))
    rows.append(("record import: JSON Lines, one 300 MiB line", f"peak RSS {r['jsonl_line_peak_rss_mib']} MiB",
                 "refused", "", ""))


def scale_rows(bin_, nodes, case, n, imported, result, rows):
    """A node holding `n` records (the memory rows' import into `a`): what
    it costs on disk, to list, and to sync whole to a new member `c`."""
    import sqlite3
    a, c = nodes
    import_s, import_rss = imported
    size = dir_bytes(a)
    db = sqlite3.connect(os.path.join(a, "casesync.db"))
    try:
        tables = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    except sqlite3.Error:
        tables = {}
    db.close()
    part = lambda prefix: sum(v for k, v in tables.items() if k.startswith(prefix))
    list_s, list_rss = run_rss(bin_, a, ["record", "list", case])
    page_s, _ = run_rss(bin_, a, ["record", "list", case, "--limit", "1000"])
    p, addr = serve(bin_, a, [])
    try:
        sync_s, sync_rss = run_rss(bin_, c, ["sync", "--once", "--peer", addr])
        with open(f"/proc/{p.pid}/status") as f:
            hwm = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
    finally:
        p.terminate()
        p.wait()
    _, shown = run(bin_, c, ["--json", "case", "show", case])
    held = json.loads(shown)["records"]
    if held != n:
        sys.exit(f"error: the first sync of {n} records left {held} on the new member")
    mib = lambda x: round(x / 2**20, 1)
    r = {"records": n, "import_s": round(import_s, 1), "import_records_per_s": round(n / import_s),
         "import_peak_rss_mib": mib(import_rss), "disk_bytes_per_record": round(size / n),
         "disk_table_bytes_per_record": {k: round(part(k) / n) for k in ("records", "entries", "search_index", "audit_log")},
         "list_s": round(list_s, 2), "list_peak_rss_mib": mib(list_rss), "page_1000_s": round(page_s, 3),
         "sync_s": round(sync_s, 1), "sync_records_per_s": round(n / sync_s),
         "sync_receiver_peak_rss_mib": mib(sync_rss), "sync_sender_peak_rss_mib": mib(hwm)}
    result["scale"] = r
    t = r["disk_table_bytes_per_record"]
    rows.append((f"{n:,} records: import", f"{import_s:.0f} s ({r['import_records_per_s']:,}/s)",
                 f"peak RSS {r['import_peak_rss_mib']} MiB", "", ""))
    rows.append((f"{n:,} records: on disk", f"{r['disk_bytes_per_record']} B/record",
                 f"views {t['records']}, entries {t['entries']}, search {t['search_index']}, audit {t['audit_log']}",
                 "", ""))
    rows.append((f"{n:,} records: record list", f"{list_s:.1f} s streamed", f"peak RSS {r['list_peak_rss_mib']} MiB",
                 f"page of 1,000: {page_s * 1000:.0f} ms", ""))
    rows.append((f"{n:,} records: first sync --once", f"{sync_s:.0f} s ({r['sync_records_per_s']:,}/s)",
                 f"receiver peak RSS {r['sync_receiver_peak_rss_mib']} MiB",
                 f"sender peak RSS {r['sync_sender_peak_rss_mib']} MiB",
                 f"{sync_s / import_s:.2f}x the import's time"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true", help="the side-by-side table only, at small sizes")
    ap.add_argument("--no-compare", action="store_true", help="casesync's own rows only")
    ap.add_argument("--compare-only", action="store_true",
                    help="the side-by-side table only, at full sizes (BENCHMARKS.md's main table)")
    ap.add_argument("--scale-only", action="store_true",
                    help="the memory and scale rows only, at BENCH_BUNDLE_RECORDS records (scripts/soak.sh)")
    a = ap.parse_args()
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "10000,100000").split(",")]
    work = os.path.abspath(os.path.join(a.out, "work"))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rows = []
    result = {"machine": {"cores": os.cpu_count()}, "import": [], "open": None, "show": None}
    if not a.no_compare:
        import compare
        compare.compare(a.bin, work, a.quick, result)
        os.makedirs(a.out, exist_ok=True)
        guard(os.path.join(a.out, "compare.json"), result)
        print(f"\nwrote {os.path.join(a.out, 'compare.json')}")
        if a.quick or a.compare_only:
            remove_in_background(work)
            return
    if a.scale_only:
        sizes = []
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
    if largest is None:
        memory_rows(a.bin, work, result, rows)
        finish(a.out, rows, result, work)
        return
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
    audit_cost_rows(a.bin, work, result, rows)
    hardening_rows(a.bin, work, result, rows)
    if os.environ.get("BENCH_MEMORY", "1") != "0":
        memory_rows(a.bin, work, result, rows)
    if os.environ.get("BENCH_SYNC", "1") != "0":
        sync_rows(a.bin, work, sizes, result, rows)
        anti_entropy_rows(a.bin, work, result, rows)
    if os.environ.get("BENCH_EVIDENCE", "1") != "0":
        import bench_evidence
        bench_evidence.evidence_rows(a.bin, work, result, rows)
    if os.environ.get("BENCH_WEB", "1") != "0":
        import bench_web
        bench_web.web_rows(a.bin, work, result, rows)
        bench_web.search_rows(a.bin, work, result, rows)
    finish(a.out, rows, result, work)


def finish(out, rows, result, work):
    """Prints the table, compares with the run before, writes node.json."""
    os.makedirs(out, exist_ok=True)
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    print()
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    guard(os.path.join(out, "node.json"), result)
    print(f"\nwrote {os.path.join(out, 'node.json')}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
