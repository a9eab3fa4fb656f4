"""The web front end under load (scripts/bench.sh; BENCH_WEB=0 leaves it out).

A node serving `--http` holds a case of BENCH_WEB_RECORDS records (100,000)
while a partner node adds a record every 200 ms, which reaches it by sync.
wrk (Debian's package) drives 50 connections of one analyst's session, with
the CSRF token and origin a browser sends:
  - reads: pages of 50 records (random offsets) and single records, mixed;
  - adds: a person record each request.
Each prints requests/s, p50 and p99 latency and errors (non-2xx and socket
errors). Then Debian's chromium (playwright-core, tests/browser) renders the
link chart of a 1,000-record neighbourhood with the page's own code path
(fetch, cytoscape, fcose layout) and the time is measured in the page.
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from benchlib import PASS, federation, make_jsonl, peer_id, run

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "a long bench password"


def serve_http(bin_, data, peers):
    env = dict(os.environ, CASESYNC_PASSPHRASE=PASS, CASESYNC_OPERATOR="bench")
    args = [bin_, "--data-dir", data, "serve", "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"]
    for p in peers:
        args += ["--peer", p]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    http = listen = None
    while http is None or listen is None:
        line = p.stdout.readline()
        if not line:
            sys.exit("error: serve --http did not start")
        if line.startswith("http on "):
            http = line.split("http on ", 1)[1].strip().rstrip("/")
        elif line.startswith("listening on "):
            listen = line.split(" ", 2)[2].strip()
    return p, http, listen


def add_user(bin_, data, name, role):
    env = dict(os.environ, CASESYNC_PASSPHRASE=PASS, CASESYNC_OPERATOR="bench")
    subprocess.run([bin_, "--data-dir", data, "user", "add", name, "--role", role],
                   input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True)


def login(base, name):
    req = urllib.request.Request(base + "/api/login", data=json.dumps({"name": name, "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req) as r:
        cookie = r.headers["Set-Cookie"].split(";")[0]
        return cookie, json.load(r)["csrf"]


def wrk(script, base, seconds, env):
    out = subprocess.run(["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency", "-s", script, base],
                         capture_output=True, text=True, env=dict(os.environ, **env))
    text = out.stdout
    if os.environ.get("BENCH_WEB_DEBUG"):
        print(out.stderr, file=sys.stderr)
    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return round(v / 1000 if unit == "us" else v * 1000 if unit == "s" else v, 2)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "requests": int(total.group(1)) if total else 0,
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms("50"), "p99_ms": ms("99"),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0),
    }


def web_rows(bin_, work, result, rows):
    if not shutil.which("wrk"):
        print("warning: wrk not installed; the web rows are left out", file=sys.stderr)
        return
    n = int(os.environ.get("BENCH_WEB_RECORDS", "100000"))
    seconds = int(os.environ.get("BENCH_WEB_SECONDS", "15"))
    base_dir = os.path.join(work, "web")
    os.makedirs(base_dir, exist_ok=True)
    a, b = federation(bin_, base_dir, ["web-a", "web-b"])
    add_user(bin_, a, "sam", "supervisor")
    add_user(bin_, a, "ana", "analyst")
    case = run(bin_, a, ["case", "create", "--title", "web bench"])[1].strip()
    run(bin_, a, ["case", "member", "add", case, peer_id(bin_, b), "--role", "contributor"])
    src = os.path.join(base_dir, "people.jsonl")
    make_jsonl(src, n)
    run(bin_, a, ["record", "import", case, src])
    run(bin_, a, ["user", "assign", "ana", case])
    ids = [r["id"] for r in json.loads(run(bin_, a, ["--json", "record", "list", case])[1])]
    chart_case, chart_from = star_case(bin_, a, base_dir)
    pb, _, listen_b = serve_http(bin_, b, [])
    pa, http, _ = serve_http(bin_, a, [listen_b])
    base = http
    stop = threading.Event()

    def partner():
        # The partner writes while the analysts work: every write reaches A by sync.
        i = 0
        while not stop.is_set():
            try:
                run(bin_, b, ["record", "add", case, "--type", "note", "--field", f"text=partner note {i}"])
            except SystemExit:
                pass
            i += 1
            time.sleep(0.2)
    try:
        # Wait until B holds the case (it came by sync).
        deadline = time.time() + 300
        while time.time() < deadline:
            r = subprocess.run([bin_, "--data-dir", b, "case", "show", case], capture_output=True,
                               env=dict(os.environ, CASESYNC_PASSPHRASE=PASS))
            if r.returncode == 0:
                break
            time.sleep(1)
        writer = threading.Thread(target=partner, daemon=True)
        writer.start()
        cookie, csrf = login(base, "ana")
        sample = random.Random(3).sample(ids, min(1000, len(ids)))
        ids_file = os.path.join(base_dir, "ids.txt")
        with open(ids_file, "w") as f:
            f.write("\n".join(sample) + "\n")
        env = {"BENCH_COOKIE": cookie, "BENCH_CSRF": csrf, "BENCH_CASE": case, "BENCH_IDS": ids_file,
               "BENCH_ORIGIN": base, "BENCH_TOTAL": str(n)}
        reads = wrk(os.path.join(HERE, "wrk_reads.lua"), base, seconds, env)
        adds = wrk(os.path.join(HERE, "wrk_adds.lua"), base, seconds, env)
        stop.set()
        writer.join(timeout=10)
        chart = chart_render(base, "sam", chart_case, chart_from)
    finally:
        stop.set()
        for p in (pa, pb):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    result["web"] = {"records": n, "connections": 50, "seconds": seconds, "reads": reads, "adds": adds,
                     "chart_1000": chart,
                     "note": "one analyst session on 50 connections (wrk); the partner adds a record every 200 ms, synced in"}
    rows.append((f"web reads, {n:,} records, 50 conns", f"{reads['requests_per_s']:.0f} req/s",
                 f"p50 {reads['p50_ms']} ms", f"p99 {reads['p99_ms']} ms", f"{reads['errors']} errors"))
    rows.append(("web adds, 50 conns", f"{adds['requests_per_s']:.0f} req/s", f"p50 {adds['p50_ms']} ms",
                 f"p99 {adds['p99_ms']} ms", f"{adds['errors']} errors"))
    if chart:
        rows.append((f"chart of {chart['nodes']} records (chromium)", f"{chart['ms']:.0f} ms fetch + layout + draw",
                     f"fetch {chart['fetch_ms']:.0f} ms", "", ""))


def star_case(bin_, data, work):
    """A case where one person links to 999 phones: a 1,000-record neighbourhood."""
    case = run(bin_, data, ["case", "create", "--title", "chart bench"])[1].strip()
    src = os.path.join(work, "star.jsonl")
    with open(src, "w") as f:
        for i in range(999):
            f.write(json.dumps({"type": "phone", "fields": {"number": f"+40 722 {i:06d}"}}) + "\n")
    run(bin_, data, ["record", "import", case, src])
    hub = run(bin_, data, ["record", "add", case, "--type", "person", "--field", "name=Hub Person"])[1].strip()
    phones = [r["id"] for r in json.loads(run(bin_, data, ["--json", "record", "list", case, "--type", "phone"])[1])]
    with open(src, "w") as f:
        for p in phones:
            f.write(json.dumps({"type": "link", "fields": {"from": hub, "to": p, "link_type": "uses"}}) + "\n")
    run(bin_, data, ["record", "import", case, src])
    return case, hub


def chart_render(base, user, case, record):
    script = os.path.join(ROOT, "tests", "browser", "bench_chart.mjs")
    if not os.path.isdir(os.path.join(ROOT, "tests", "browser", "node_modules", "playwright-core")):
        print("warning: playwright-core not installed (npm ci in tests/browser); the chart row is left out", file=sys.stderr)
        return None
    out = subprocess.run(["node", script], capture_output=True, text=True, cwd=os.path.dirname(script),
                         env=dict(os.environ, BASE_URL=base, USER_NAME=user, PASSWORD=PASSWORD, CASE=case, FROM=record))
    if out.returncode != 0:
        print(f"warning: the chart bench failed: {out.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def match_rows(bin_, a, b, base_dir, listen, phones, rnd, asked=10_000, shared=1_000):
    """`casesync match` from B with `asked` selectors, `shared` of them among
    A's phones, against A serving: the first run (A files its records for
    deconfliction, if serve had not finished at start) and a second run."""
    path = os.path.join(base_dir, "asked.txt")
    with open(path, "w", encoding="utf-8") as f:
        for x in rnd.sample(phones, shared):
            f.write("phone:" + x.replace(" ", "") + "\n")
        for i in range(asked - shared):
            f.write(f"email:asked-{i}@example.org\n")
    times, report = [], None
    for _ in range(2):
        t = time.monotonic()
        report = json.loads(run(bin_, b, ["--json", "match", "--peer", listen, "--selectors", path,
                                          "--timeout", "1800"])[1])
        times.append(time.monotonic() - t)
    hits = len({h["selector"] for h in report["hits"]})
    if hits != shared:
        print(f"warning: match found {hits} of {shared} shared selectors", file=sys.stderr)
    out = subprocess.run(["sqlite3", os.path.join(a, "casesync.db"), "SELECT COUNT(*) FROM match_set"],
                         capture_output=True, text=True)
    entries = int(out.stdout.strip() or 0)
    return {"asked": asked, "shared": shared, "hits": hits, "first_s": round(times[0], 2),
            "again_s": round(times[1], 2), "set_mib": round(entries * 60 / 2**20, 1)}


def search_rows(bin_, work, result, rows):
    """Search over BENCH_SEARCH_SIZES records (100,000 and 1,000,000): half
    persons (8 fields), half phones. Index build is the import's time (the
    index is written with the records); its size is the index's pages; each
    query is a whole API request (session, search, access check, audit)."""
    sizes = [int(s) for s in os.environ.get("BENCH_SEARCH_SIZES", "100000,1000000").split(",")]
    result["search"] = []
    for n in sizes:
        base_dir = os.path.join(work, f"search-{n}")
        os.makedirs(base_dir, exist_ok=True)
        a, b = federation(bin_, base_dir, ["search-a", "search-b"])
        add_user(bin_, a, "sam", "supervisor")
        case = run(bin_, a, ["case", "create", "--title", "search bench"])[1].strip()
        src = os.path.join(base_dir, "mixed.jsonl")
        rnd = random.Random(11)
        phones = []
        with open(src, "w", encoding="utf-8") as f:
            for i in range(n):
                if i % 2:
                    num = f"+40 7{rnd.choice([2, 3, 4, 5, 6])}{rnd.randint(0, 9)} {i:06d}"
                    phones.append(num)
                    f.write(json.dumps({"type": "phone", "fields": {"number": num}}) + "\n")
                else:
                    f.write(json.dumps({"type": "person", "fields": {
                        "name": f"Person {i} Dobre", "alias": f"alias-{i}",
                        "notes": "seen at location " + str(rnd.randrange(10**9))}}) + "\n")
        t0 = time.monotonic()
        run(bin_, a, ["record", "import", case, src])
        build_s = time.monotonic() - t0
        db = os.path.join(a, "casesync.db")
        idx_bytes = None
        try:
            out = subprocess.run(["sqlite3", db, "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'search_index%'"],
                                 capture_output=True, text=True)
            idx_bytes = int(out.stdout.strip() or 0)
        except (OSError, ValueError):
            pass
        run(bin_, a, ["match", "policy", "--allow", "Unit search-b", "--per-day", "10000000"])
        p, http, listen = serve_http(bin_, a, [])
        try:
            cookie, _ = login(http, "sam")
            lat = []
            queries = [("0040" + x[3:]).replace(" ", "") for x in rnd.sample(phones, 100)] + \
                      [f"alias-{2 * rnd.randrange(n // 2)}" for _ in range(100)]
            for q in queries:
                req = urllib.request.Request(http + "/api/search?" + urllib.parse.urlencode({"q": q}),
                                             headers={"Cookie": cookie})
                t = time.monotonic()
                with urllib.request.urlopen(req, timeout=60) as r:
                    hits = json.load(r)
                lat.append(time.monotonic() - t)
                if not hits:
                    print(f"warning: search {q!r} found nothing", file=sys.stderr)
            m = match_rows(bin_, a, b, base_dir, listen, phones, rnd)
        finally:
            p.terminate()
            p.wait(timeout=10)
        lat.sort()
        r = {"records": n, "index_build_s": round(build_s, 2),
             "index_bytes_per_record": round(idx_bytes / n) if idx_bytes else None,
             "p50_ms": round(lat[len(lat) // 2] * 1000, 1), "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 1)}
        r["match"] = m
        result["search"].append(r)
        rows.append((f"search over {n:,} records (API)", f"p50 {r['p50_ms']} ms", f"p99 {r['p99_ms']} ms",
                     f"import with index {r['index_build_s']} s", f"index {r['index_bytes_per_record']} B/record"))
        rows.append((f"match {m['asked']:,} selectors against {n:,} records", f"first {m['first_s']} s",
                     f"again {m['again_s']} s", f"{m['hits']:,} hits of {m['shared']:,} shared",
                     f"partner's set {m['set_mib']} MiB"))
