//! casesync benchmark peer for samod (the Rust port of automerge-repo): one
//! side of a benchmark, run as its own process. Same command contract as
//! ../js/harness.mjs; see README.md.
//!
//! Output rule: every command prints exactly one JSON object on the LAST line
//! of stdout. Progress and warnings go to stderr. Failures exit non-zero (2 for
//! bad arguments, 1 otherwise) with `harness: error: ...` on stderr.
//!
//! Longer than most files here: one benchmark harness for a peer implementation,
//! kept whole so it can be read beside the other peers' harnesses.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    io::Write as _,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use automerge::{
    Automerge, AutomergeError, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value,
    transaction::Transactable,
};
use futures::{FutureExt, StreamExt, stream};
use samod::{
    AutomergeUrl, BackoffConfig, DialError, DialerHandle, DocHandle, DocumentId, Repo, SearchState,
    ShareConfig, Transport, Url, storage::TokioFilesystemStorage,
};
use serde_json::{Value as Json, json};

const USAGE: &str = "usage:
  samod-harness write  --dir DIR (--records N | --cases C --per-case P) [--concurrency 64] [--warmup 0] [--no-fsync]
  samod-harness reopen --dir DIR [--ids FILE] [--per-case P] [--concurrency 1000]
  samod-harness serve  --dir DIR --port PORT [--upstream PORT] [--open ID] [--watch ID --expect K --out FILE] [--nodelay]
  samod-harness fetch  --dir DIR --port PORT --ids FILE [--per-case P] [--existing] [--timeout 300] [--concurrency 1000] [--no-fsync] [--nodelay]
  samod-harness edit   --port PORT --id ID --edits K [--warmup 0] [--interval-ms 20] [--settle-ms 1000] [--timeout 60] [--nodelay]";

// ---------------------------------------------------------------- utilities

#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn log(msg: impl AsRef<str>) {
    eprintln!("harness: {}", msg.as_ref());
}

/// Wall-clock unix time in milliseconds (fractional), the clock both the edit
/// sender and the watching server use.
fn now_unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

struct CommandSpec {
    required: &'static [&'static str],
    optional: &'static [&'static str],
    flags: &'static [&'static str],
    /// (alias, canonical name)
    aliases: &'static [(&'static str, &'static str)],
}

fn spec(cmd: &str) -> Option<CommandSpec> {
    Some(match cmd {
        "write" => CommandSpec {
            required: &["dir"],
            optional: &["records", "cases", "per-case", "concurrency", "warmup", "strings"],
            flags: &["fsync", "no-fsync"],
            aliases: &[("batch", "concurrency")],
        },
        "reopen" => CommandSpec {
            required: &["dir"],
            optional: &["ids", "per-case", "concurrency"],
            flags: &[],
            aliases: &[],
        },
        "serve" => CommandSpec {
            required: &["dir", "port"],
            optional: &["upstream", "open", "watch", "expect", "out"],
            flags: &["nodelay"],
            aliases: &[],
        },
        "fetch" => CommandSpec {
            required: &["dir", "port", "ids"],
            optional: &["per-case", "timeout", "concurrency"],
            flags: &["fsync", "no-fsync", "nodelay", "existing"],
            aliases: &[],
        },
        "edit" => CommandSpec {
            required: &["port", "id", "edits"],
            optional: &["interval-ms", "settle-ms", "timeout", "warmup"],
            flags: &["nodelay"],
            aliases: &[("url", "id")],
        },
        _ => return None,
    })
}

struct Opts {
    cmd: String,
    values: HashMap<String, String>,
    flags: HashSet<String>,
}

/// Command line: `CMD --name value` or `--name=value`; flags take no value.
fn parse_args(argv: &[String]) -> Result<Opts> {
    let Some((cmd, rest)) = argv.split_first() else {
        return Err(usage("no command given"));
    };
    if cmd == "-h" || cmd == "--help" {
        return Err(usage("help requested"));
    }
    let spec = spec(cmd).ok_or_else(|| usage(format!("unknown command '{cmd}'")))?;
    let mut values = HashMap::new();
    let mut flags = HashSet::new();
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let Some(body) = a.strip_prefix("--") else {
            return Err(usage(format!("unexpected argument '{a}'")));
        };
        let (mut name, mut value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        if let Some((_, canon)) = spec.aliases.iter().find(|(al, _)| *al == name) {
            name = canon.to_string();
        }
        if values.contains_key(&name) || flags.contains(&name) {
            return Err(usage(format!("--{name} given twice")));
        }
        if spec.flags.contains(&name.as_str()) {
            if value.is_some() {
                return Err(usage(format!("--{name} takes no value")));
            }
            flags.insert(name);
            i += 1;
            continue;
        }
        if !spec.required.contains(&name.as_str()) && !spec.optional.contains(&name.as_str()) {
            return Err(usage(format!("unknown option --{name} for '{cmd}'")));
        }
        if value.is_none() {
            if i + 1 >= rest.len() || rest[i + 1].starts_with("--") {
                return Err(usage(format!("--{name} needs a value")));
            }
            i += 1;
            value = Some(rest[i].clone());
        }
        let value = value.unwrap();
        if value.is_empty() {
            return Err(usage(format!("--{name} must not be empty")));
        }
        values.insert(name, value);
        i += 1;
    }
    for r in spec.required {
        if !values.contains_key(*r) {
            return Err(usage(format!("'{cmd}' needs --{r}")));
        }
    }
    Ok(Opts {
        cmd: cmd.clone(),
        values,
        flags,
    })
}

impl Opts {
    fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn req(&self, name: &str) -> &str {
        self.str(name)
            .expect("required option checked by the parser")
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.contains(name)
    }

    fn int(&self, name: &str, def: Option<u64>, min: u64, max: u64) -> Result<u64> {
        let Some(raw) = self.str(name) else {
            return def.ok_or_else(|| usage(format!("'{}' needs --{name}", self.cmd)));
        };
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(usage(format!(
                "--{name} must be a non-negative integer, got '{raw}'"
            )));
        }
        let v: u64 = raw
            .parse()
            .map_err(|_| usage(format!("--{name} is too large: '{raw}'")))?;
        if v < min || v > max {
            return Err(usage(format!(
                "--{name} must be between {min} and {max}, got {v}"
            )));
        }
        Ok(v)
    }

    fn num(&self, name: &str, def: f64, min: f64) -> Result<f64> {
        let Some(raw) = self.str(name) else {
            return Ok(def);
        };
        match raw.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= min => Ok(v),
            _ => Err(usage(format!(
                "--{name} must be a number >= {min}, got '{raw}'"
            ))),
        }
    }

    fn port(&self) -> Result<u16> {
        Ok(self.int("port", None, 1, 65535)? as u16)
    }
}

/// Create DIR, refusing one that already has content (a benchmark must start clean).
fn ensure_empty_dir(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty; give a new or empty directory",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            bail!("{} exists and is not a directory", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn require_dir(dir: &Path) -> Result<()> {
    let md = std::fs::metadata(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("{} does not exist", dir.display())
        } else {
            anyhow!("cannot stat {}: {e}", dir.display())
        }
    })?;
    if !md.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(())
}

fn abs(p: &str) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("bad path '{p}'"))
}

/// A document id in either form: `automerge:<bs58check>` (what `write` emits)
/// or the bare bs58check DocumentId string.
fn parse_doc_id(s: &str) -> Result<DocumentId> {
    if s.starts_with("automerge:") {
        let url = AutomergeUrl::from_str(s).map_err(|e| anyhow!("{e}"))?;
        Ok(url.document_id().clone())
    } else {
        DocumentId::from_str(s).map_err(|e| anyhow!("{e}"))
    }
}

fn read_ids(file: &Path) -> Result<Vec<DocumentId>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read ids file {}", file.display()))?;
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let s = line.trim();
        if s.is_empty() {
            continue;
        }
        let id = parse_doc_id(s).map_err(|e| {
            let shown: String = s.chars().take(80).collect();
            anyhow!(
                "{}:{}: not an automerge URL or document id: '{shown}' ({e})",
                file.display(),
                n + 1
            )
        })?;
        if !seen.insert(id.to_string()) {
            bail!("{} lists document {id} more than once", file.display());
        }
        ids.push(id);
    }
    if ids.is_empty() {
        bail!("{} lists no document ids", file.display());
    }
    Ok(ids)
}

/// fsync every regular file and directory under `dir` (samod's
/// TokioFilesystemStorage writes with `tokio::fs::write` and never fsyncs).
/// Returns how many files and directories were synced.
async fn fsync_tree(dir: &Path) -> Result<(usize, usize)> {
    let root = dir.to_path_buf();
    let (files, dirs) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("read_dir {}", d.display()))? {
                let e = e?;
                let ft = e.file_type()?;
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    files.push(e.path());
                }
            }
            dirs.push(d);
        }
        Ok((files, dirs))
    })
    .await??;
    let (nf, nd) = (files.len(), dirs.len());
    // Files first, then the directories holding their entries.
    for batch in [files, dirs] {
        let results: Vec<Result<()>> = stream::iter(batch)
            .map(|p| {
                tokio::task::spawn_blocking(move || -> Result<()> {
                    let f = std::fs::File::open(&p)
                        .with_context(|| format!("open {} for fsync", p.display()))?;
                    f.sync_all()
                        .with_context(|| format!("fsync {}", p.display()))
                })
                .map(|r| r.map_err(anyhow::Error::from).and_then(|x| x))
            })
            .buffer_unordered(64)
            .collect()
            .await;
        for r in results {
            r?;
        }
    }
    Ok((nf, nd))
}

/// Stop a repo: waits until every document actor has finished its storage
/// writes, and closes every connection. Bounded so a stuck stop cannot hang
/// the process forever.
async fn stop_repo(repo: &Repo, what: &str) {
    if tokio::time::timeout(Duration::from_secs(60), repo.stop())
        .await
        .is_err()
    {
        log(format!(
            "{what}: warning: Repo::stop did not finish within 60 s"
        ));
    }
}

// ------------------------------------------------------------ record model

const FIELDS: usize = 8;
/// How many documents `fetch` searches for at once. 50, 200 and all of them
/// measured the same: the time goes to samod-core's hub, which does work per
/// loaded document on every event whatever the number of searches (README).
const FETCH_CONCURRENCY: u64 = 1000;
const FIELD_LEN: usize = 30;

fn field_value(r: usize, i: usize) -> String {
    let mut s = format!("r{r:08}f{i}");
    while s.len() < FIELD_LEN {
        s.push('x');
    }
    s
}

/// Puts record `r`'s f0..f7 as scalar strings into `obj`.
fn put_record(tx: &mut impl Transactable, obj: &ObjId, r: usize) -> Result<(), AutomergeError> {
    for i in 0..FIELDS {
        tx.put(obj, format!("f{i}"), field_value(r, i))?;
    }
    Ok(())
}

/// A fresh Automerge document holding record `r`: one change (one
/// transaction) putting f0..f7 as scalar strings.
fn make_record(r: usize) -> Result<Automerge> {
    let mut doc = Automerge::new();
    doc.transact::<_, _, AutomergeError>(|tx| put_record(tx, &ROOT, r))
        .map_err(|f| anyhow!("building record {r}: {}", f.error))?;
    Ok(doc)
}

/// The key of record `r` in a case document.
fn record_key(r: usize) -> String {
    format!("r{r:08}")
}

/// A fresh "case" document `k` (write --cases C --per-case P): records
/// k*P .. k*P+P-1 in one map, record key -> map of f0..f7, one change
/// (one transaction) per record.
fn make_case(k: usize, per_case: usize) -> Result<Automerge> {
    let mut doc = Automerge::new();
    for r in k * per_case..(k + 1) * per_case {
        doc.transact::<_, _, AutomergeError>(|tx| {
            let rec = tx.put_object(ROOT, record_key(r), ObjType::Map)?;
            put_record(tx, &rec, r)
        })
        .map_err(|f| anyhow!("building case {k}, record {r}: {}", f.error))?;
    }
    Ok(doc)
}

/// The string form of field `key` of `obj`: a scalar string, any other scalar
/// rendered, or the content of a text object. `heads` = None reads the
/// current state.
fn field_string(
    doc: &Automerge,
    obj: &ObjId,
    key: &str,
    heads: Option<&[ChangeHash]>,
) -> Option<String> {
    let got = match heads {
        Some(h) => doc.get_at(obj, key, h),
        None => doc.get(obj, key),
    };
    match got.ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(x) => Some(x.to_string()),
            ScalarValue::Null => None,
            other => Some(other.to_string()),
        },
        (Value::Object(ObjType::Text), id) => match heads {
            Some(h) => doc.text_at(&id, h).ok(),
            None => doc.text(&id).ok(),
        },
        (Value::Object(_), _) => Some(String::new()),
    }
}

fn record_fields(doc: &Automerge, obj: &ObjId) -> Option<Vec<String>> {
    (0..FIELDS)
        .map(|i| field_string(doc, obj, &format!("f{i}"), None))
        .collect()
}

fn has_all_fields(doc: &Automerge, obj: &ObjId) -> bool {
    (0..FIELDS).all(|i| {
        doc.get(obj, format!("f{i}"))
            .ok()
            .flatten()
            .is_some_and(|(v, _)| !matches!(v, Value::Scalar(ref s) if s.is_null()))
    })
}

/// The object holding record `r` of document `k`: the root (one record per
/// document), or the record's map in a case document.
fn record_obj(doc: &Automerge, k: usize, per_case: Option<usize>, j: usize) -> Option<ObjId> {
    match per_case {
        None => Some(ROOT),
        Some(p) => match doc.get(ROOT, record_key(k * p + j)).ok()?? {
            (Value::Object(ObjType::Map), id) => Some(id),
            _ => None,
        },
    }
}

/// Whether document `k` (line k+1 of the ids file) is complete: one record
/// with f0..f7, or all `per_case` records of case k, each with f0..f7.
fn doc_complete(doc: &Automerge, k: usize, per_case: Option<usize>) -> bool {
    (0..per_case.unwrap_or(1)).all(|j| {
        record_obj(doc, k, per_case, j).is_some_and(|obj| has_all_fields(doc, &obj))
    })
}

/// `edit <i> <unix_ms_float>` -> the timestamp.
fn parse_edit(s: &str) -> Option<f64> {
    let rest = s.strip_prefix("edit ")?;
    let (i, ts) = rest.split_once(' ')?;
    if i.is_empty() || !i.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (whole, frac) = match ts.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (ts, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    ts.parse().ok()
}

// ------------------------------------------------------------ networking

fn tcp_url(port: u16) -> Result<Url> {
    Ok(Url::parse(&format!("tcp://127.0.0.1:{port}"))?)
}

/// Same as samod's `tokio_io::TcpDialer` (length-delimited frames via
/// `Transport::from_tokio_io`) but with TCP_NODELAY set (only with --nodelay).
struct NoDelayTcpDialer {
    port: u16,
}

impl samod::Dialer for NoDelayTcpDialer {
    fn url(&self) -> Url {
        tcp_url(self.port).expect("valid url")
    }

    type Error = Infallible;

    fn connect(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<Transport, DialError<Infallible>>> {
        let port = self.port;
        async move {
            let io = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(DialError::transient)?;
            io.set_nodelay(true).map_err(DialError::transient)?;
            Ok(Transport::from_tokio_io(io))
        }
        .boxed()
    }
}

/// Connect `repo` to 127.0.0.1:PORT with a reconnecting dialer (first retry
/// after 100 ms, then backing off to at most 1 s between attempts, forever),
/// so the server may start after the client.
fn dial(repo: &Repo, port: u16, nodelay: bool) -> Result<DialerHandle<Infallible>> {
    let backoff = BackoffConfig {
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        max_retries: None,
    };
    if nodelay {
        repo.dial(backoff, Arc::new(NoDelayTcpDialer { port }))
            .map_err(|e| anyhow!("dial: {e}"))
    } else {
        repo.dial_tcp(tcp_url(port)?, backoff)
            .map_err(|e| anyhow!("dial_tcp: {e}"))
    }
}

/// Wait until `doc_id` is present locally. Unlike `Repo::find`, a peer saying
/// "unavailable" is not final: keep listening to the search until some peer
/// delivers it (the caller bounds the wait).
async fn search_until_found(repo: &Repo, doc_id: DocumentId) -> Result<DocHandle> {
    let (mut state, mut updates) = repo.search(doc_id).map_err(|_| anyhow!("repo stopped"))?;
    loop {
        if let SearchState::Found(handle) = state {
            return Ok(handle);
        }
        state = updates
            .next()
            .await
            .ok_or_else(|| anyhow!("repo stopped during search"))?;
    }
}

/// Wait until document `k` is complete (normally true as soon as it is found).
async fn until_complete(handle: &DocHandle, k: usize, per_case: Option<usize>) -> Result<()> {
    let mut changes = handle.changes(); // subscribe before looking: no missed change
    loop {
        if handle.with_document(|d| doc_complete(d, k, per_case)) {
            return Ok(());
        }
        changes
            .next()
            .await
            .ok_or_else(|| anyhow!("document closed while waiting for its fields"))?;
    }
}

// ---------------------------------------------------------------- commands

/// `--records N` (one record per document) or `--cases C --per-case P`:
/// (number of documents, records per case document).
fn shape_opts(o: &Opts) -> Result<(usize, Option<usize>)> {
    let records = o.str("records").is_some();
    let cases = o.str("cases").is_some() || o.str("per-case").is_some();
    if records == cases {
        return Err(usage("give either --records N or --cases C --per-case P"));
    }
    if records {
        return Ok((o.int("records", None, 1, 100_000_000)? as usize, None));
    }
    Ok((
        o.int("cases", None, 1, 100_000_000)? as usize,
        Some(o.int("per-case", None, 1, 1_000_000)? as usize),
    ))
}

fn per_case_opt(o: &Opts) -> Result<Option<usize>> {
    match o.str("per-case") {
        Some(_) => Ok(Some(o.int("per-case", None, 1, 1_000_000)? as usize)),
        None => Ok(None),
    }
}

async fn cmd_write(o: &Opts) -> Result<Option<Json>> {
    let dir = abs(o.req("dir"))?;
    let (docs, per_case) = shape_opts(o)?;
    let records = docs * per_case.unwrap_or(1);
    let concurrency = o.int("concurrency", Some(64), 1, 1_000_000)? as usize;
    let warmup = o.int("warmup", Some(0), 0, 100_000_000)? as usize;
    if let Some(s) = o.str("strings")
        && s != "immutable"
    {
        return Err(usage(format!(
            "--strings: this harness stores scalar strings only ('immutable'), got '{s}'"
        )));
    }
    if o.flag("fsync") && o.flag("no-fsync") {
        return Err(usage("--fsync and --no-fsync contradict each other"));
    }
    let fsync = !o.flag("no-fsync");
    ensure_empty_dir(&dir)?;

    // Optional, untimed: exercise the automerge code paths first.
    for r in 0..warmup {
        make_record(r)?;
    }

    let repo = Repo::build_tokio()
        .with_storage(TokioFilesystemStorage::new(&dir))
        .load()
        .await;

    let t0 = Instant::now();
    let mut urls: Vec<String> = Vec::with_capacity(docs);
    let mut last_log = Instant::now();
    {
        let mut created = stream::iter(0..docs)
            .map(|k| {
                let repo = repo.clone();
                async move {
                    let doc = match per_case {
                        None => make_record(k)?,
                        Some(p) => make_case(k, p)?,
                    };
                    repo.create(doc)
                        .await
                        .map_err(|_| anyhow!("repo stopped while creating document {k}"))
                }
            })
            .buffered(concurrency); // keeps order: urls[k] is document k
        while let Some(handle) = created.next().await {
            urls.push(handle?.url().to_string());
            if last_log.elapsed() > Duration::from_secs(2) {
                last_log = Instant::now();
                log(format!("write: {}/{docs} created", urls.len()));
            }
        }
    }
    // Repo::stop resolves once every document actor has no storage put in flight.
    stop_repo(&repo, "write").await;
    let synced = if fsync {
        Some(fsync_tree(&dir).await?)
    } else {
        None
    };
    let seconds = t0.elapsed().as_secs_f64();

    let ids_path = dir.join("ids.txt");
    std::fs::write(&ids_path, urls.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", ids_path.display()))?;
    match synced {
        Some((f, d)) => log(format!(
            "write: {docs} docs, fsynced {f} files and {d} directories"
        )),
        None => log(format!("write: {docs} docs, not fsynced (--no-fsync)")),
    }
    Ok(Some(
        json!({"records": records, "docs": docs, "seconds": seconds}),
    ))
}

async fn cmd_reopen(o: &Opts) -> Result<Option<Json>> {
    let dir = abs(o.req("dir"))?;
    let concurrency = o.int("concurrency", Some(1000), 1, 1_000_000)? as usize;
    let per_case = per_case_opt(o)?;
    require_dir(&dir)?;
    let ids_file = match o.str("ids") {
        Some(f) => abs(f)?,
        None => dir.join("ids.txt"),
    };
    let ids = read_ids(&ids_file)?;

    let t0 = Instant::now();
    let repo = Repo::build_tokio()
        .with_storage(TokioFilesystemStorage::new(&dir))
        .load()
        .await;
    let mismatched = AtomicUsize::new(0);
    let results: Vec<Result<()>> = stream::iter(ids.iter().cloned().enumerate())
        .map(|(k, id)| {
            let repo = repo.clone();
            let mismatched = &mismatched;
            let dir = &dir;
            async move {
                let handle = repo
                    .find(id.clone())
                    .await
                    .map_err(|_| anyhow!("repo stopped"))?
                    .ok_or_else(|| {
                        anyhow!("document {id} (line {}) is not in {}", k + 1, dir.display())
                    })?;
                // Complete, and the first record's values as generated.
                let fields = handle.with_document(|d| {
                    if !doc_complete(d, k, per_case) {
                        return None;
                    }
                    record_fields(d, &record_obj(d, k, per_case, 0)?)
                });
                let fields = fields.ok_or_else(|| {
                    anyhow!(
                        "document {id} (line {}) lacks some records or some of f0..f{}",
                        k + 1,
                        FIELDS - 1
                    )
                })?;
                let first = k * per_case.unwrap_or(1);
                if fields
                    .iter()
                    .enumerate()
                    .any(|(i, v)| *v != field_value(first, i))
                {
                    mismatched.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = t0.elapsed().as_secs_f64();
    for r in results {
        r?;
    }
    let m = mismatched.load(Ordering::Relaxed);
    if m > 0 {
        log(format!(
            "reopen: warning: {m} docs differ from the generated record contents (edited?)"
        ));
    }
    // Not timed: loading makes samod re-put each document's changes, so let
    // those writes finish rather than exit in the middle of one.
    stop_repo(&repo, "reopen").await;
    Ok(Some(json!({"docs": ids.len(), "seconds": seconds})))
}

#[derive(Default)]
struct Watch {
    latencies: Vec<f64>,
    seen: HashSet<String>,
    written: bool,
}

fn write_latencies(out: &Path, w: &mut Watch) -> Result<()> {
    if w.written {
        return Ok(());
    }
    w.written = true;
    let tmp = PathBuf::from(format!("{}.tmp-{}", out.display(), std::process::id()));
    let body = serde_json::to_string(&json!({"latencies_ms": w.latencies}))? + "\n";
    std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("cannot rename to {}", out.display()))?;
    log(format!(
        "serve: wrote {} latencies to {}",
        w.latencies.len(),
        out.display()
    ));
    Ok(())
}

async fn cmd_serve(o: &Opts) -> Result<Option<Json>> {
    use tokio::signal::unix::{SignalKind, signal};

    let dir = abs(o.req("dir"))?;
    let port = o.port()?;
    let nodelay = o.flag("nodelay");
    let given = ["watch", "expect", "out"]
        .iter()
        .filter(|k| o.str(k).is_some())
        .count();
    if given != 0 && given != 3 {
        return Err(usage("--watch, --expect and --out go together"));
    }
    let watch = match o.str("watch") {
        Some(w) => Some((
            parse_doc_id(w).map_err(|e| usage(format!("--watch: {e}")))?,
            o.int("expect", None, 1, 100_000_000)? as usize,
            abs(o.req("out"))?,
        )),
        None => None,
    };
    let upstream = match o.str("upstream") {
        Some(_) => Some(o.int("upstream", None, 1, 65535)? as u16),
        None => None,
    };
    let open = match o.str("open") {
        Some(id) => Some(parse_doc_id(id).map_err(|e| usage(format!("--open: {e}")))?),
        None => None,
    };
    require_dir(&dir)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let repo = Repo::build_tokio()
        .with_storage(TokioFilesystemStorage::new(&dir))
        // Share (and announce) every document with every peer, read and write
        // (this is also samod's default).
        .with_share_policy(ShareConfig::read_write())
        .load()
        .await;

    // --open: load a document now. samod connects every loaded document to
    // every connection, so a relay in a line of servers passes its edits on.
    let _opened = match open {
        Some(doc_id) => Some(
            repo.find(doc_id.clone())
                .await
                .map_err(|_| anyhow!("repo stopped"))?
                .ok_or_else(|| anyhow!("cannot load {doc_id} from {}", dir.display()))?,
        ),
        None => None,
    };
    // --upstream: also dial another server, so a line of servers relays
    // changes hop by hop.
    let _upstream = match upstream {
        Some(up) => Some(dial(&repo, up, nodelay)?),
        None => None,
    };

    // ---- optional latency watch, set up before the port opens so no edit
    // can arrive unobserved.
    let state = Arc::new(Mutex::new(Watch::default()));
    let mut _watched: Option<DocHandle> = None;
    if let Some((doc_id, expect, out)) = watch.clone() {
        let handle = repo
            .find(doc_id.clone())
            .await
            .map_err(|_| anyhow!("repo stopped"))?
            .ok_or_else(|| {
                anyhow!(
                    "cannot load watched document {doc_id} from {}",
                    dir.display()
                )
            })?;
        let mut changes = handle.changes();
        let mut last_heads = handle.with_document(|d| d.get_heads());
        let h = handle.clone();
        let state = state.clone();
        tokio::spawn(async move {
            while changes.next().await.is_some() {
                let arrived = now_unix_ms();
                // One sync message can carry several changes, so read f0 as of
                // every newly received change, not only the final state.
                let values = h.with_document(|d| {
                    let mut vals = Vec::new();
                    for c in d.get_changes(&last_heads) {
                        if let Some(v) = field_string(d, &ROOT, "f0", Some(&[c.hash()])) {
                            vals.push(v);
                        }
                    }
                    if let Some(v) = field_string(d, &ROOT, "f0", None) {
                        vals.push(v);
                    }
                    last_heads = d.get_heads();
                    vals
                });
                let mut w = state.lock().unwrap();
                for v in values {
                    let Some(ts) = parse_edit(&v) else { continue };
                    if !w.seen.insert(v) || w.written {
                        continue;
                    }
                    w.latencies.push(arrived - ts);
                    if w.latencies.len() >= expect
                        && let Err(e) = write_latencies(&out, &mut w)
                    {
                        log(format!("serve: error: {e:#}"));
                        std::process::exit(1);
                    }
                }
            }
        });
        log(format!("serve: watching {doc_id} for {expect} edits"));
        _watched = Some(handle);
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                anyhow!("port {port} is already in use")
            } else {
                anyhow!("cannot listen on 127.0.0.1:{port}: {e}")
            }
        })?;
    let acceptor = repo
        .make_acceptor(tcp_url(port)?)
        .map_err(|e| anyhow!("make_acceptor: {e}"))?;
    {
        let acc = acceptor.clone();
        tokio::spawn(async move {
            let mut events = acc.events();
            while let Some(ev) = events.next().await {
                match ev {
                    samod::AcceptorEvent::ClientConnected { peer_info, .. } => log(format!(
                        "serve: peer {} connected ({} open)",
                        peer_info.peer_id,
                        acc.connection_count()
                    )),
                    samod::AcceptorEvent::ClientDisconnected { reason, .. } => log(format!(
                        "serve: peer disconnected: {reason:?} ({} open)",
                        acc.connection_count()
                    )),
                }
            }
        });
    }
    // With --upstream, say "listening" only once connected to it: a driver
    // that starts a line of servers one after another then has the line
    // connected.
    if let Some(d) = &_upstream {
        match tokio::time::timeout(Duration::from_secs(30), d.established()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("connection to upstream port {} failed: {e:?}", upstream.unwrap()),
            Err(_) => bail!("no connection to upstream port {} within 30 s", upstream.unwrap()),
        }
    }
    print_result(&json!({"listening": port}));

    let sig = loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _addr)) => {
                    if nodelay && let Err(e) = sock.set_nodelay(true) {
                        log(format!("serve: warning: set_nodelay: {e}"));
                    }
                    if let Err(e) = acceptor.accept_tokio_io(sock) {
                        log(format!("serve: warning: accept: {e}"));
                    }
                }
                Err(e) => log(format!("serve: warning: accept failed: {e}")),
            },
            _ = sigterm.recv() => break "SIGTERM",
            _ = sigint.recv() => break "SIGINT",
        }
    };
    log(format!("serve: {sig}, shutting down"));
    if let Some((_, _, out)) = &watch {
        let mut w = state.lock().unwrap();
        write_latencies(out, &mut w)?;
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), repo.stop())
        .await
        .is_err()
    {
        log("serve: shutdown took over 10 s, exiting anyway");
    }
    Ok(None) // {"listening": PORT} stays the last stdout line
}

async fn cmd_fetch(o: &Opts) -> Result<Option<Json>> {
    let dir = abs(o.req("dir"))?;
    let port = o.port()?;
    let timeout = o.num("timeout", 300.0, 0.001)?;
    let concurrency = o.int("concurrency", Some(FETCH_CONCURRENCY), 1, 1_000_000)? as usize;
    let per_case = per_case_opt(o)?;
    if o.flag("fsync") && o.flag("no-fsync") {
        return Err(usage("--fsync and --no-fsync contradict each other"));
    }
    let fsync = !o.flag("no-fsync");
    let nodelay = o.flag("nodelay");
    let ids = read_ids(&abs(o.req("ids"))?)?;
    // --existing: DIR already holds the documents (an earlier fetch); load
    // them and sync them with the server, which is how samod catches up after
    // a reconnect (one sync exchange per document).
    let existing = o.flag("existing");
    if existing {
        require_dir(&dir)?;
    } else {
        ensure_empty_dir(&dir)?;
    }

    let repo = Repo::build_tokio()
        .with_storage(TokioFilesystemStorage::new(&dir))
        .load()
        .await;
    let present = Arc::new(AtomicUsize::new(0));
    let total = ids.len();

    let t0 = Instant::now();
    let dialer = dial(&repo, port, nodelay)?;
    let progress = {
        let present = present.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                log(format!(
                    "fetch: {}/{total} {}",
                    present.load(Ordering::Relaxed),
                    if existing { "in sync" } else { "present" }
                ));
            }
        })
    };
    // The connection to the server, once it is up (for --existing).
    let conn = {
        let dialer = dialer.clone();
        async move {
            // (String errors: a shared future's output must be Clone.)
            dialer
                .established()
                .await
                .map_err(|e| format!("connection failed: {e:?}"))?;
            dialer
                .connection_id()
                .ok_or_else(|| "connection closed".to_string())
        }
        .boxed()
        .shared()
    };
    let all = stream::iter(ids.into_iter().enumerate())
        .map(|(k, id)| {
            let repo = repo.clone();
            let present = present.clone();
            let conn = conn.clone();
            async move {
                let handle = search_until_found(&repo, id).await?;
                until_complete(&handle, k, per_case).await?;
                if existing {
                    // Loaded from disk at once; done when both sides have
                    // said they hold each other's heads.
                    let conn = conn.await.map_err(|e| anyhow!("{e}"))?;
                    handle.they_have_our_changes(conn).await;
                    handle.we_have_their_changes(conn).await;
                }
                present.fetch_add(1, Ordering::Relaxed);
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>();
    let finished = tokio::time::timeout(Duration::from_secs_f64(timeout), all).await;
    let seconds = t0.elapsed().as_secs_f64();
    progress.abort();
    if let Ok(results) = finished {
        for r in results {
            r?;
        }
    }
    let docs = present.load(Ordering::Relaxed);
    let complete = docs == total;
    if !complete {
        log(format!(
            "fetch: timed out after {timeout} s with {docs}/{total} documents present"
        ));
    }

    // Not timed: make sure what arrived is on disk.
    dialer.close();
    stop_repo(&repo, "fetch").await;
    if fsync {
        let (f, d) = fsync_tree(&dir).await?;
        log(format!("fetch: fsynced {f} files and {d} directories"));
    }
    Ok(Some(
        json!({"docs": docs, "seconds": seconds, "complete": complete}),
    ))
}

async fn cmd_edit(o: &Opts) -> Result<Option<Json>> {
    let port = o.port()?;
    let doc_id = parse_doc_id(o.req("id")).map_err(|e| usage(format!("--id: {e}")))?;
    let edits = o.int("edits", None, 1, 100_000_000)?;
    let interval = o.num("interval-ms", 20.0, 0.0)?;
    let settle = o.num("settle-ms", 1000.0, 0.0)?;
    let timeout = o.num("timeout", 60.0, 0.001)?;
    let warmup = o.int("warmup", Some(0), 0, 100_000_000)?;
    let nodelay = o.flag("nodelay");

    let repo = Repo::build_tokio().load().await; // in memory: no storage
    let _dialer = dial(&repo, port, nodelay)?;
    let handle = tokio::time::timeout(
        Duration::from_secs_f64(timeout),
        search_until_found(&repo, doc_id.clone()),
    )
    .await
    .map_err(|_| {
        anyhow!("could not get {doc_id} from tcp://127.0.0.1:{port} within {timeout} s")
    })??;

    let set_f0 = |value: &str| {
        handle.with_document(|d| {
            d.transact::<_, _, AutomergeError>(|tx| {
                // Keep f0's kind: a text object is updated in place, a
                // scalar string (what `write` makes) is overwritten.
                match tx.get(ROOT, "f0")? {
                    Some((Value::Object(ObjType::Text), text)) => tx.update_text(&text, value)?,
                    _ => tx.put(ROOT, "f0", value)?,
                }
                Ok(())
            })
            .map(|_| ())
            .map_err(|f| anyhow!("{}", f.error))
        })
    };
    let pause = |ms: f64| tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0));
    // --warmup: edits a watcher ignores (`warmup <i>` is not an `edit`
    // value), then a pause, so the measured edits do not pay the first-use
    // costs of every process on the way.
    if warmup > 0 {
        for i in 0..warmup {
            set_f0(&format!("warmup {i}")).map_err(|e| anyhow!("warm-up edit {i}: {e}"))?;
            pause(interval).await;
        }
        pause(settle).await;
    }
    for i in 0..edits {
        set_f0(&format!("edit {i} {:.3}", now_unix_ms())).map_err(|e| anyhow!("edit {i}: {e}"))?;
        if interval > 0.0 {
            pause(interval).await;
        }
    }
    // Let the last change reach the server before the connection goes away.
    tokio::time::sleep(Duration::from_secs_f64(settle / 1000.0)).await;
    stop_repo(&repo, "edit").await;
    Ok(Some(json!({"edits": edits})))
}

// -------------------------------------------------------------------- main

fn print_result(v: &Json) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&argv) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("harness: error: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness: error: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        match opts.cmd.as_str() {
            "write" => cmd_write(&opts).await,
            "reopen" => cmd_reopen(&opts).await,
            "serve" => cmd_serve(&opts).await,
            "fetch" => cmd_fetch(&opts).await,
            "edit" => cmd_edit(&opts).await,
            other => Err(usage(format!("unknown command '{other}'"))),
        }
    });
    match result {
        Ok(json) => {
            if let Some(v) = json {
                print_result(&v);
            }
            // Exit here: do not wait for the runtime to wind down blocking tasks.
            std::process::exit(0);
        }
        Err(e) => {
            if e.downcast_ref::<UsageError>().is_some() {
                eprintln!("harness: error: {e}\n{USAGE}");
                std::process::exit(2);
            }
            eprintln!("harness: error: {}: {e:#}", opts.cmd);
            std::process::exit(1);
        }
    }
}
