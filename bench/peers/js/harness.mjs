#!/usr/bin/env node
// casesync benchmark peer: one side of a benchmark, run as its own process,
// driving the published automerge-repo packages (versions pinned in
// package-lock.json). See README.md for the command contract.
//
// Output rule: every command prints exactly one JSON object on the LAST line
// of stdout. Everything else (progress, warnings, library chatter) goes to
// stderr. Failures exit non-zero with a message on stderr.

import { setMaxListeners } from "node:events";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { performance } from "node:perf_hooks";

// Keep stdout clean for the JSON result: libraries that console.log go to stderr.
for (const k of ["log", "info", "debug", "warn"]) console[k] = (...a) => console.error(...a);

const USAGE = `usage:
  node harness.mjs write  --dir DIR (--records N | --cases C --per-case P) [--batch 20] [--strings text|immutable] [--warmup 0] [--fsync]
  node harness.mjs reopen --dir DIR [--ids FILE] [--per-case P] [--concurrency 1000]
  node harness.mjs serve  --dir DIR --port PORT [--upstream PORT] [--open URL] [--watch URL --expect K --out FILE]
  node harness.mjs fetch  --dir DIR --port PORT --ids FILE [--per-case P] [--existing] [--timeout 300] [--concurrency 1000] [--fsync]
  node harness.mjs edit   --port PORT --url URL --edits K [--warmup 0] [--interval-ms 20] [--settle-ms 1000] [--timeout 60]`;

// ---------------------------------------------------------------- utilities

class UsageError extends Error {}

function die(msg, code = 1) {
  process.stderr.write(`harness: error: ${msg}\n`);
  process.exit(code);
}

function log(msg) {
  process.stderr.write(`harness: ${msg}\n`);
}

/** Print the single JSON result line and exit once stdout has taken it. */
function finish(obj, code = 0) {
  process.stdout.write(JSON.stringify(obj) + "\n", () => process.exit(code));
}

const nowMs = () => performance.timeOrigin + performance.now(); // high-res unix ms
const sleep = ms => new Promise(r => setTimeout(r, ms));

// Command line: `--name value` or `--name=value`; boolean flags take no value.
const COMMANDS = {
  write: { required: ["dir"], optional: ["records", "cases", "per-case", "batch", "strings", "warmup"], flags: ["fsync"] },
  reopen: { required: ["dir"], optional: ["ids", "per-case", "concurrency"], flags: [] },
  serve: { required: ["dir", "port"], optional: ["upstream", "open", "watch", "expect", "out"], flags: [] },
  fetch: { required: ["dir", "port", "ids"], optional: ["per-case", "timeout", "concurrency"], flags: ["fsync", "existing"] },
  edit: { required: ["port", "url", "edits"], optional: ["interval-ms", "settle-ms", "timeout", "warmup"], flags: [] },
};

function parseArgs(argv) {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "-h" || cmd === "--help") throw new UsageError("no command given");
  const spec = COMMANDS[cmd];
  if (!spec) throw new UsageError(`unknown command '${cmd}'`);
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (!a.startsWith("--")) throw new UsageError(`unexpected argument '${a}'`);
    let name = a.slice(2);
    let value;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name in opts) throw new UsageError(`--${name} given twice`);
    if (spec.flags.includes(name)) {
      if (value !== undefined) throw new UsageError(`--${name} takes no value`);
      opts[name] = true;
      continue;
    }
    if (!spec.required.includes(name) && !spec.optional.includes(name))
      throw new UsageError(`unknown option --${name} for '${cmd}'`);
    if (value === undefined) {
      if (i + 1 >= rest.length || rest[i + 1].startsWith("--"))
        throw new UsageError(`--${name} needs a value`);
      value = rest[++i];
    }
    if (value === "") throw new UsageError(`--${name} must not be empty`);
    opts[name] = value;
  }
  for (const r of spec.required) if (!(r in opts)) throw new UsageError(`'${cmd}' needs --${r}`);
  return { cmd, opts };
}

function intOpt(opts, name, { def, min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const raw = opts[name];
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new UsageError(`--${name} must be a non-negative integer, got '${raw}'`);
  const v = Number(raw);
  if (v < min || v > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${v}`);
  return v;
}

function numOpt(opts, name, { def, min = 0 } = {}) {
  const raw = opts[name];
  if (raw === undefined) return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min) throw new UsageError(`--${name} must be a number >= ${min}, got '${raw}'`);
  return v;
}

const portOpt = opts => intOpt(opts, "port", { min: 1, max: 65535 });

/** Bounded-concurrency map over items (keeps file descriptors and memory in check). */
async function pool(items, concurrency, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const k = next++;
      await fn(items[k], k);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Create DIR, refusing one that already has content (a benchmark must start clean). */
async function ensureEmptyDir(dir) {
  let entries = [];
  try {
    entries = await fsp.readdir(dir);
  } catch (e) {
    if (e.code === "ENOTDIR") throw new Error(`${dir} exists and is not a directory`);
    if (e.code !== "ENOENT") throw e;
  }
  if (entries.length > 0) throw new Error(`${dir} is not empty; give a new or empty directory`);
  await fsp.mkdir(dir, { recursive: true });
}

async function requireDir(dir) {
  let st;
  try {
    st = await fsp.stat(dir);
  } catch (e) {
    if (e.code === "ENOENT") throw new Error(`${dir} does not exist`);
    throw e;
  }
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
}

async function readIds(file, isValidAutomergeUrl) {
  let text;
  try {
    text = await fsp.readFile(file, "utf8");
  } catch (e) {
    throw new Error(`cannot read ids file ${file}: ${e.message}`);
  }
  const urls = [];
  text.split("\n").forEach((line, n) => {
    const s = line.trim();
    if (!s) return;
    if (!isValidAutomergeUrl(s)) throw new Error(`${file}:${n + 1}: not an automerge URL: '${s.slice(0, 80)}'`);
    urls.push(s);
  });
  if (urls.length === 0) throw new Error(`${file} lists no document ids`);
  if (new Set(urls).size !== urls.length) throw new Error(`${file} lists a document more than once`);
  return urls;
}

/** fsync every file and directory under dir (only with --fsync; NodeFS itself never fsyncs). */
async function fsyncTree(dir) {
  const files = [];
  const dirs = [];
  const walk = async d => {
    dirs.push(d);
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  await walk(dir);
  await pool([...files, ...dirs], 64, async p => {
    const fh = await fsp.open(p, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

// ------------------------------------------------------------ record model

const FIELDS = 8;
const FIELD_LEN = 30;
const fieldValue = (r, i) => `r${String(r).padStart(8, "0")}f${i}`.padEnd(FIELD_LEN, "x");

function hasAllFields(doc) {
  if (!doc || typeof doc !== "object") return false;
  for (let i = 0; i < FIELDS; i++) {
    const v = doc[`f${i}`];
    if (v === undefined || v === null) return false;
  }
  return true;
}

// A "case" document (write --cases C --per-case P): case c holds records
// c*P .. c*P+P-1 in one map, record key -> {f0..f7}, one change per record.
const recordKey = r => `r${String(r).padStart(8, "0")}`;

/**
 * What a complete document k (line k+1 of the ids file) looks like: one
 * record with f0..f7 (perCase undefined), or perCase records each with f0..f7.
 */
function docComplete(doc, k, perCase) {
  if (!perCase) return hasAllFields(doc);
  if (!doc || typeof doc !== "object") return false;
  for (let j = 0; j < perCase; j++) if (!hasAllFields(doc[recordKey(k * perCase + j)])) return false;
  return true;
}

const EDIT_RE = /^edit (\d+) (\d+(?:\.\d+)?)$/;

// ------------------------------------------------------------ the libraries

// Loaded after argument checking so that usage errors are instant.
async function loadLibs() {
  const [A, repoMod, fsMod, wsMod, ws] = await Promise.all([
    import("@automerge/automerge"),
    import("@automerge/automerge-repo"),
    import("@automerge/automerge-repo-storage-nodefs"),
    import("@automerge/automerge-repo-network-websocket"),
    import("ws"),
  ]);
  const { NodeFSStorageAdapter } = fsMod;

  /**
   * The real NodeFSStorageAdapter, plus bookkeeping of writes in flight. The
   * repo's own debounced autosave can still be writing a file after
   * repo.flush() resolved; drain() waits for those too, so a process never
   * exits halfway through a writeFile.
   */
  class TrackedNodeFSStorage {
    constructor(dir) {
      this.inner = new NodeFSStorageAdapter(dir);
      this.pending = new Set();
      this.saves = 0;
      this.removes = 0;
    }
    #track(p) {
      this.pending.add(p);
      const done = () => this.pending.delete(p);
      p.then(done, done);
      return p;
    }
    load(key) {
      return this.inner.load(key);
    }
    loadRange(prefix) {
      return this.inner.loadRange(prefix);
    }
    save(key, data) {
      this.saves++;
      return this.#track(this.inner.save(key, data));
    }
    remove(key) {
      this.removes++;
      return this.#track(this.inner.remove(key));
    }
    removeRange(prefix) {
      return this.#track(this.inner.removeRange(prefix));
    }
    async drain() {
      while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    }
  }

  return {
    A,
    Repo: repoMod.Repo,
    isValidAutomergeUrl: repoMod.isValidAutomergeUrl,
    parseAutomergeUrl: repoMod.parseAutomergeUrl,
    WebSocketClientAdapter: wsMod.WebSocketClientAdapter,
    WebSocketServerAdapter: wsMod.WebSocketServerAdapter,
    WebSocketServer: ws.WebSocketServer,
    TrackedNodeFSStorage,
  };
}

/**
 * Like repo.shutdown() (disconnect every network adapter, then flush), but
 * flushes only documents that are ready: repo.flush() calls doc() on every
 * cached handle and throws on one still requesting or unavailable.
 */
async function closeRepo(repo) {
  for (const adapter of repo.networkSubsystem.adapters) adapter.disconnect();
  const ready = Object.values(repo.handles)
    .filter(h => h.isReady())
    .map(h => h.documentId);
  await repo.flush(ready);
}

const sharePolicy = async () => true; // share every document with every peer that asks

// Outstanding finds in `fetch`. Fewer or more measured no different: both
// ends are CPU-bound in the library either way (README).
const FETCH_CONCURRENCY = 1000;

// ---------------------------------------------------------------- commands

/** --records N (one record per document) or --cases C --per-case P. */
function shapeOpts(opts) {
  const hasRecords = "records" in opts;
  const hasCases = "cases" in opts || "per-case" in opts;
  if (hasRecords === hasCases) throw new UsageError("give either --records N or --cases C --per-case P");
  if (hasRecords) return { docs: intOpt(opts, "records", { min: 1 }), perCase: undefined };
  if (!("cases" in opts && "per-case" in opts)) throw new UsageError("--cases and --per-case go together");
  return { docs: intOpt(opts, "cases", { min: 1 }), perCase: intOpt(opts, "per-case", { min: 1 }) };
}

async function cmdWrite(opts, L) {
  const dir = path.resolve(opts.dir);
  const { docs, perCase } = shapeOpts(opts);
  const records = perCase ? docs * perCase : docs;
  const batch = intOpt(opts, "batch", { def: 20, min: 1 });
  const warmup = intOpt(opts, "warmup", { def: 0 });
  const strings = opts.strings ?? "text";
  if (strings !== "text" && strings !== "immutable")
    throw new UsageError(`--strings must be 'text' or 'immutable', got '${strings}'`);
  await ensureEmptyDir(dir);

  const storage = new L.TrackedNodeFSStorage(dir);
  const repo = new L.Repo({ storage, network: [] });
  const wrap = strings === "immutable" ? v => new L.A.ImmutableString(v) : v => v;
  const makeRecord = r => {
    const rec = {};
    for (let i = 0; i < FIELDS; i++) rec[`f${i}`] = wrap(fieldValue(r, i));
    return rec;
  };
  // Document k: record k (one change holding all 8 fields), or case k: its
  // first record in the creating change, then one change per further record.
  const createDoc = k => {
    if (!perCase) return repo.create(makeRecord(k));
    const first = k * perCase;
    const handle = repo.create({ [recordKey(first)]: makeRecord(first) });
    for (let r = first + 1; r < first + perCase; r++)
      handle.change(d => {
        d[recordKey(r)] = makeRecord(r);
      });
    return handle;
  };

  // Optional, untimed: build throwaway records in memory first, so the timed
  // part does not include the WebAssembly warm-up of a fresh process.
  for (let r = 0; r < warmup; r++) L.A.from(makeRecord(r));

  const urls = new Array(docs);
  let lastLog = performance.now();
  const t0 = performance.now();
  // Create and flush in batches. repo.flush() saves its documents
  // concurrently, so one flush of everything would open a file per document at
  // once; and a batch flushed within the repo's 100 ms autosave debounce is
  // not written a second time by the autosave.
  for (let start = 0; start < docs; start += batch) {
    const end = Math.min(docs, start + batch);
    const ids = [];
    for (let k = start; k < end; k++) {
      const handle = createDoc(k);
      urls[k] = handle.url;
      ids.push(handle.documentId);
    }
    await repo.flush(ids);
    if (performance.now() - lastLog > 2000) {
      lastLog = performance.now();
      log(`write: ${end}/${docs} flushed`);
    }
  }
  await storage.drain();
  if (opts.fsync) await fsyncTree(dir);
  const seconds = (performance.now() - t0) / 1000;

  await fsp.writeFile(path.join(dir, "ids.txt"), urls.join("\n") + "\n");
  await closeRepo(repo);
  await storage.drain();
  log(`write: ${docs} docs, ${storage.saves} storage writes, strings=${strings}${opts.fsync ? ", fsynced" : ""}`);
  finish({ records, docs, seconds });
}

async function cmdReopen(opts, L) {
  const dir = path.resolve(opts.dir);
  const concurrency = intOpt(opts, "concurrency", { def: 1000, min: 1 });
  const perCase = intOpt(opts, "per-case", { min: 1 });
  await requireDir(dir);
  const urls = await readIds(opts.ids ?? path.join(dir, "ids.txt"), L.isValidAutomergeUrl);

  const storage = new L.TrackedNodeFSStorage(dir);
  const t0 = performance.now();
  const repo = new L.Repo({ storage, network: [] });
  let mismatched = 0;
  await pool(urls, concurrency, async (url, k) => {
    let handle;
    try {
      handle = await repo.find(url);
    } catch (e) {
      throw new Error(`document ${url} (line ${k + 1}) could not be loaded from ${dir}: ${e.message}`);
    }
    const doc = handle.doc();
    if (!docComplete(doc, k, perCase))
      throw new Error(`document ${url} (line ${k + 1}) lacks some records or some of f0..f${FIELDS - 1}`);
    const rec = perCase ? doc[recordKey(k * perCase)] : doc;
    const r = perCase ? k * perCase : k;
    for (let i = 0; i < FIELDS; i++) {
      if (String(rec[`f${i}`]) !== fieldValue(r, i)) {
        mismatched++;
        break;
      }
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  if (mismatched > 0) log(`reopen: warning: ${mismatched} docs differ from the generated record contents (edited?)`);
  finish({ docs: urls.length, seconds });
}

async function cmdServe(opts, L) {
  const dir = path.resolve(opts.dir);
  const port = portOpt(opts);
  const watching = ["watch", "expect", "out"].filter(k => k in opts);
  if (watching.length > 0 && watching.length < 3)
    throw new UsageError("--watch, --expect and --out go together");
  let expect = 0;
  if (opts.watch) {
    if (!L.isValidAutomergeUrl(opts.watch)) throw new UsageError(`--watch is not an automerge URL: '${opts.watch}'`);
    expect = intOpt(opts, "expect", { min: 1 });
  }
  const upstream = "upstream" in opts ? intOpt(opts, "upstream", { min: 1, max: 65535 }) : undefined;
  if (opts.open && !L.isValidAutomergeUrl(opts.open)) throw new UsageError(`--open is not an automerge URL: '${opts.open}'`);
  await requireDir(dir);

  const storage = new L.TrackedNodeFSStorage(dir);
  // The ws server is attached to an http server that listens only after the
  // watch is set up, so no edit can arrive before we observe the document.
  const httpServer = http.createServer((req, res) => {
    res.writeHead(426).end("websocket only\n");
  });
  const wss = new L.WebSocketServer({ server: httpServer });
  const adapter = new L.WebSocketServerAdapter(wss);
  // --upstream: also a client of another server, so a line of servers relays
  // changes hop by hop (each server syncs every open document with every peer).
  const network = [adapter];
  if (upstream) network.push(new L.WebSocketClientAdapter(`ws://127.0.0.1:${upstream}`, 1000));
  const repo = new L.Repo({ storage, network, sharePolicy });
  // Before our port opens the only peer that can appear is the upstream one.
  const upstreamUp = upstream
    ? new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no connection to upstream port ${upstream} within 30 s`)), 30_000);
        repo.networkSubsystem.once("peer", () => {
          clearTimeout(t);
          resolve();
        });
      })
    : Promise.resolve();
  // --open: load a document now, so it is synced with every peer as soon as
  // they connect (a relay in the line needs the document open to pass edits on).
  if (opts.open) {
    try {
      await repo.find(opts.open); // the repo keeps the handle
    } catch (e) {
      throw new Error(`cannot load ${opts.open} from ${dir}: ${e.message}`);
    }
  }

  let peers = 0;
  wss.on("connection", sock => {
    peers++;
    log(`serve: peer connected (${peers} open)`);
    sock.on("close", () => {
      peers--;
      log(`serve: peer disconnected (${peers} open)`);
    });
  });

  // ---- optional latency watch
  const latencies = [];
  const seen = new Set();
  let outWritten = false;
  const writeOut = () => {
    if (!opts.watch || outWritten) return;
    outWritten = true;
    const out = path.resolve(opts.out);
    const tmp = `${out}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify({ latencies_ms: latencies }) + "\n");
    fs.renameSync(tmp, out);
    log(`serve: wrote ${latencies.length} latencies to ${out}`);
  };
  if (opts.watch) {
    let handle;
    try {
      handle = await repo.find(opts.watch);
    } catch (e) {
      throw new Error(`cannot load watched document ${opts.watch} from ${dir}: ${e.message}`);
    }
    const record = (value, arrivedMs) => {
      if (value === undefined || value === null) return;
      const s = String(value);
      const m = EDIT_RE.exec(s);
      if (!m || seen.has(s)) return;
      seen.add(s);
      if (outWritten) return;
      latencies.push(arrivedMs - Number(m[2]));
      if (latencies.length >= expect) writeOut();
    };
    handle.on("change", ({ doc, patchInfo }) => {
      const arrived = nowMs();
      // A sync message can carry several changes (the sender batches changes
      // made within its sync debounce window), so look at f0 after each new
      // change, not only at the final state.
      try {
        const changes = L.A.getChanges(patchInfo.before, patchInfo.after);
        for (const c of changes) {
          const { hash } = L.A.decodeChange(c);
          record(L.A.view(patchInfo.after, [hash]).f0, arrived);
        }
      } catch (e) {
        log(`serve: warning: could not walk new changes (${e.message}); using the current value only`);
      }
      record(doc.f0, arrived);
    });
    log(`serve: watching ${opts.watch} for ${expect} edits`);
  }

  await new Promise((resolve, reject) => {
    // ws re-emits the http server's errors on the WebSocketServer.
    const onError = e =>
      reject(new Error(e.code === "EADDRINUSE" ? `port ${port} is already in use` : `cannot listen on 127.0.0.1:${port}: ${e.message}`));
    httpServer.once("error", onError);
    wss.once("error", onError);
    httpServer.listen(port, "127.0.0.1", () => {
      httpServer.off("error", onError);
      wss.off("error", onError);
      resolve();
    });
  });
  wss.on("error", e => log(`serve: websocket server error: ${e.message}`));
  // With --upstream, say "listening" only once connected to it: a driver that
  // starts a line of servers one after another then has the line connected.
  await upstreamUp;
  process.stdout.write(JSON.stringify({ listening: port }) + "\n");

  let stopping = false;
  const stop = async sig => {
    if (stopping) return;
    stopping = true;
    log(`serve: ${sig}, shutting down`);
    setTimeout(() => {
      log("serve: shutdown took over 10 s, exiting anyway");
      process.exit(0);
    }, 10_000).unref();
    try {
      writeOut();
    } catch (e) {
      log(`serve: error writing ${opts.out}: ${e.message}`);
      process.exit(1);
    }
    try {
      await closeRepo(repo); // disconnect peers, flush documents
      await storage.drain();
    } catch (e) {
      log(`serve: warning during shutdown: ${e.message}`);
    }
    wss.close();
    httpServer.close();
    httpServer.closeAllConnections?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

/** Resolves with the handle once `url` is ready and complete(doc) holds, or null if signal aborts first. */
async function findComplete(L, repo, url, signal, complete) {
  let handle;
  try {
    handle = await repo.find(url, { signal });
  } catch (e) {
    if (signal.aborted) return null;
    // "unavailable": the server said it does not have it (yet). Keep waiting on
    // the handle in case a peer delivers it before the deadline.
    handle = repo.handles[L.parseAutomergeUrl(url).documentId];
    if (!handle) throw e;
    try {
      await handle.whenReady(["ready"], { signal });
    } catch {
      return null;
    }
  }
  return waitFor(handle, "change", () => complete(handle.doc()), signal);
}

/** Resolves with handle once test() holds, re-checking on every `event` of the handle; null if signal aborts first. */
function waitFor(handle, event, test, signal) {
  if (test()) return Promise.resolve(handle);
  return new Promise(resolve => {
    const onEvent = () => {
      if (test()) {
        cleanup();
        resolve(handle);
      }
    };
    const onAbort = () => {
      cleanup();
      resolve(null);
    };
    const cleanup = () => {
      handle.off(event, onEvent);
      signal.removeEventListener("abort", onAbort);
    };
    handle.on(event, onEvent);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

const sameHeads = (a, b) => !!a && !!b && a.length === b.length && [...a].sort().join() === [...b].sort().join();

/** The storage id of the first peer to connect (the server), or null if signal aborts first. */
async function serverStorageId(repo, signal) {
  while (!signal.aborted) {
    for (const peer of repo.peers) {
      const sid = repo.getStorageIdOfPeer(peer);
      if (sid) return sid;
    }
    await sleep(5);
  }
  return null;
}

async function cmdFetch(opts, L) {
  const dir = path.resolve(opts.dir);
  const port = portOpt(opts);
  const timeout = numOpt(opts, "timeout", { def: 300, min: 0.001 });
  const concurrency = intOpt(opts, "concurrency", { def: FETCH_CONCURRENCY, min: 1 });
  const perCase = intOpt(opts, "per-case", { min: 1 });
  const urls = await readIds(opts.ids, L.isValidAutomergeUrl);
  // --existing: DIR already holds the documents (an earlier fetch); load them
  // and sync them with the server, which is how automerge-repo catches up
  // after a reconnect (one sync exchange per document).
  if (opts.existing) await requireDir(dir);
  else await ensureEmptyDir(dir);

  const storage = new L.TrackedNodeFSStorage(dir);
  const ac = new AbortController();
  setMaxListeners(0, ac.signal); // one listener per in-flight find
  const ready = [];
  const index = new Map(urls.map((u, k) => [u, k]));

  const t0 = performance.now();
  const timer = setTimeout(() => ac.abort(), timeout * 1000);
  const client = new L.WebSocketClientAdapter(`ws://127.0.0.1:${port}`, 1000);
  const repo = new L.Repo({ storage, network: [client] });
  const progress = setInterval(() => log(`fetch: ${ready.length}/${urls.length} ${opts.existing ? "in sync" : "present"}`), 2000);
  const sid = opts.existing ? serverStorageId(repo, ac.signal) : null;
  await pool(urls, concurrency, async url => {
    if (ac.signal.aborted) return;
    const complete = doc => docComplete(doc, index.get(url), perCase);
    let h = await findComplete(L, repo, url, ac.signal, complete);
    if (h && opts.existing) {
      // Loaded from disk at once; done when the server has acknowledged our
      // heads for it (the repo records the heads each peer reports per storage id).
      const storageId = await sid;
      if (!storageId) return;
      h = await waitFor(h, "remote-heads", () => sameHeads(h.getSyncInfo(storageId)?.lastHeads, h.heads()), ac.signal);
    }
    if (h) ready.push(h.documentId);
  });
  const seconds = (performance.now() - t0) / 1000;
  clearTimeout(timer);
  clearInterval(progress);
  const complete = ready.length === urls.length;
  if (!complete) log(`fetch: timed out after ${timeout} s with ${ready.length}/${urls.length} documents ${opts.existing ? "in sync" : "present"}`);

  await repo.flush(ready);
  await storage.drain();
  if (opts.fsync) await fsyncTree(dir);
  await closeRepo(repo);
  await storage.drain();
  finish({ docs: ready.length, seconds, complete });
}

async function cmdEdit(opts, L) {
  const port = portOpt(opts);
  const url = opts.url;
  if (!L.isValidAutomergeUrl(url)) throw new UsageError(`--url is not an automerge URL: '${url}'`);
  const edits = intOpt(opts, "edits", { min: 1 });
  const interval = numOpt(opts, "interval-ms", { def: 20 });
  const settle = numOpt(opts, "settle-ms", { def: 1000 });
  const timeout = numOpt(opts, "timeout", { def: 60, min: 0.001 });
  const warmup = intOpt(opts, "warmup", { def: 0 });

  const client = new L.WebSocketClientAdapter(`ws://127.0.0.1:${port}`, 1000);
  const repo = new L.Repo({ network: [client] }); // in memory: no storage
  let handle;
  try {
    handle = await repo.find(url, { signal: AbortSignal.timeout(timeout * 1000) });
  } catch (e) {
    throw new Error(`could not get ${url} from ws://127.0.0.1:${port} within ${timeout} s: ${e.message}`);
  }
  // Keep f0's type (collaborative text or immutable string) as the writer made it.
  const immutable = L.A.isImmutableString(handle.doc().f0);
  const setF0 = value =>
    handle.change(d => {
      d.f0 = immutable ? new L.A.ImmutableString(value) : value;
    });
  // --warmup: edits a watcher ignores (`warmup <i>` is not an `edit` value),
  // then a pause, so the measured edits do not pay the first-use costs
  // (JIT, WebAssembly) of every process on the way.
  if (warmup > 0) {
    for (let i = 0; i < warmup; i++) {
      setF0(`warmup ${i}`);
      if (interval > 0) await sleep(interval);
    }
    await sleep(settle);
  }
  for (let i = 0; i < edits; i++) {
    setF0(`edit ${i} ${nowMs().toFixed(3)}`);
    if (interval > 0) await sleep(interval);
  }
  await sleep(settle); // let the repo's debounced sync send the last edit
  await closeRepo(repo);
  finish({ edits });
}

// -------------------------------------------------------------------- main

const RUN = { write: cmdWrite, reopen: cmdReopen, serve: cmdServe, fetch: cmdFetch, edit: cmdEdit };

process.on("uncaughtException", e => die(`uncaught exception: ${e?.stack ?? e}`));
process.on("unhandledRejection", e => log(`warning: unhandled rejection: ${e?.message ?? e}`));

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) die(`${e.message}\n${USAGE}`, 2);
    throw e;
  }
  const L = await loadLibs();
  try {
    await RUN[parsed.cmd](parsed.opts, L);
  } catch (e) {
    if (e instanceof UsageError) die(`${e.message}\n${USAGE}`, 2);
    die(`${parsed.cmd}: ${e?.message ?? e}`);
  }
}

main().catch(e => die(e?.stack ?? String(e)));
