//! The harness: find the binary, make a temp dir per test, run the binary as a
//! node (its own data dir, passphrase and operator in the environment, no stdin)
//! and check what it printed.
//!
//! Longer than most files here: the helpers every end-to-end suite uses.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

pub const PASSPHRASE: &str = "test passphrase";
pub const OPERATOR: &str = "tester";

/// The `casesync` binary: `CASESYNC_BIN`, else `target/debug/casesync` next to
/// this test executable (which lives in `target/debug/deps/`).
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = std::env::var_os("CASESYNC_BIN").filter(|b| !b.is_empty()) {
            let b = PathBuf::from(b);
            assert!(
                b.is_file(),
                "CASESYNC_BIN={} does not exist; build it first: cargo build -p casesync-node",
                b.display()
            );
            return b;
        }
        let exe = std::env::current_exe().expect("cannot find the test executable's path");
        // target/debug/deps/e2e-HASH -> target/debug/casesync
        let mut dir = exe.parent().expect("the test executable has a directory");
        if dir.file_name().is_some_and(|n| n == "deps") {
            dir = dir.parent().expect("deps/ has a parent");
        }
        let b = dir.join(format!("casesync{}", std::env::consts::EXE_SUFFIX));
        assert!(
            b.is_file(),
            "no casesync binary at {}; build it first: cargo build -p casesync-node",
            b.display()
        );
        b
    })
}

/// A unique directory per test, removed when the test passes and kept (with its
/// path printed) when it fails.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir()
            .join("casesync-e2e")
            .join(format!("{name}-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .unwrap_or_else(|e| panic!("cannot clear stale {}: {e}", path.display()));
        }
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path.join(p)
    }

    /// Writes a file in the test dir and returns its path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(name);
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
        p
    }

    /// A node whose data dir is `<test dir>/<name>` (not created: `init` does that).
    pub fn node(&self, name: &str) -> Node {
        Node::at(self.join(name))
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept its directory {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What one run of the binary did.
pub struct Output {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts exit 0; returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "expected success\n{}",
            self.describe()
        );
        self.stdout
    }

    /// Asserts a non-zero exit; returns stderr.
    #[track_caller]
    pub fn err(self) -> String {
        assert!(
            !self.status.success(),
            "expected failure\n{}",
            self.describe()
        );
        assert!(
            self.status.code().is_some(),
            "expected a non-zero exit, not death by a signal\n{}",
            self.describe()
        );
        self.stderr
    }

    /// Asserts a failure as the CLI contract has it: non-zero exit, exactly one
    /// line on stderr starting `error: `, nothing on stdout. Returns that line.
    #[track_caller]
    pub fn error_line(self) -> String {
        self.check_error_line(true)
    }

    /// Like [`Output::error_line`], for commands that print a report on stdout
    /// before failing (`log verify`).
    #[track_caller]
    pub fn error_line_allowing_stdout(self) -> String {
        self.check_error_line(false)
    }

    #[track_caller]
    fn check_error_line(self, stdout_must_be_empty: bool) -> String {
        let d = self.describe();
        let stdout_empty = !stdout_must_be_empty || self.stdout.trim().is_empty();
        let stderr = self.err();
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines.len() == 1 && stderr.ends_with('\n'),
            "expected exactly one line on stderr\n{d}"
        );
        assert!(
            lines[0].starts_with("error: ") && lines[0].len() > "error: ".len(),
            "expected stderr to start with `error: `\n{d}"
        );
        assert!(stdout_empty, "expected nothing on stdout on failure\n{d}");
        lines[0].to_string()
    }
}

/// A casesync node: one data dir, driven through the binary.
pub struct Node {
    pub dir: PathBuf,
}

fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

impl Node {
    pub fn at(dir: impl Into<PathBuf>) -> Node {
        Node { dir: dir.into() }
    }

    /// The command to run `casesync --data-dir DIR ARGS...` as this node, with the
    /// test passphrase and operator, no stdin and captured output.
    pub fn command(&self, args: &[&str]) -> Command {
        self.configured(Command::new(bin()), args)
    }

    /// `c` (the binary, or a wrapper whose last argument is the binary) with
    /// this node's data dir, `args` and the test environment.
    fn configured(&self, mut c: Command, args: &[&str]) -> Command {
        c.arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env("CASESYNC_PASSPHRASE", PASSPHRASE)
            .env("CASESYNC_OPERATOR", OPERATOR)
            .env_remove("CASESYNC_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    pub fn cmdline(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut s = String::new();
        for (k, v) in env {
            let _ = write!(s, "{k}={} ", quote(v));
        }
        let _ = write!(
            s,
            "{} --data-dir {}",
            bin().display(),
            quote(&self.dir.display().to_string())
        );
        for a in args {
            let _ = write!(s, " {}", quote(a));
        }
        s
    }

    /// Runs the binary with `args`.
    pub fn cmd(&self, args: &[&str]) -> Output {
        self.cmd_env(args, &[])
    }

    /// Runs the binary with `args` and extra environment variables (which
    /// override the defaults).
    pub fn cmd_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let cmdline = self.cmdline(args, env);
        self.output_of(c, cmdline)
    }

    /// Runs the binary with `args` under a limit of `bytes` on its data
    /// (heap and private mappings: `prlimit --data`), as a machine with
    /// little memory would.
    pub fn cmd_limited(&self, bytes: u64, args: &[&str]) -> Output {
        self.cmd_limited_env(bytes, args, &[])
    }

    /// [`Node::cmd_limited`] with `env` set.
    pub fn cmd_limited_env(&self, bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut wrapper = Command::new("prlimit");
        wrapper.arg(format!("--data={bytes}")).arg("--").arg(bin());
        let mut c = self.configured(wrapper, args);
        for (k, v) in env {
            c.env(k, v);
        }
        let cmdline = format!("prlimit --data={bytes} -- {}", self.cmdline(args, env));
        self.output_of(c, cmdline)
    }

    fn output_of(&self, mut c: Command, cmdline: String) -> Output {
        let out = c
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
        Output {
            cmdline,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `args --json`, asserts success and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.cmd(&a);
        let cmdline = out.cmdline.clone();
        let stdout = out.ok();
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("`{cmdline}` printed invalid JSON ({e}):\n{stdout}"))
    }

    /// `init`; returns the PeerId it printed.
    #[track_caller]
    pub fn init(&self, name: &str, org: &str, country: &str) -> String {
        // The least key-derivation memory `init` accepts: the tests run
        // thousands of commands, each unlocking once (the default is checked
        // in `cli::passphrases_are_checked_changed_and_read_from_files`).
        let out = self
            .cmd(&[
                "init",
                "--name",
                name,
                "--org",
                org,
                "--country",
                country,
                "--kdf-memory-mib",
                "19",
            ])
            .ok();
        let peer = out.trim().to_string();
        assert!(
            peer.starts_with("12D3KooW") && !peer.contains(char::is_whitespace),
            "init should print one PeerId, got {out:?}"
        );
        peer
    }

    /// `case create`; returns the case id.
    #[track_caller]
    pub fn create_case(&self, title: &str) -> String {
        let out = self.cmd(&["case", "create", "--title", title]).ok();
        let id = out.trim().to_string();
        assert!(
            is_uuid(&id),
            "case create should print a case id, got {out:?}"
        );
        id
    }

    /// `case member add CASE PEER_ID --role ROLE`, with `member`'s PeerId.
    #[track_caller]
    pub fn add_member(&self, case: &str, member: &Node, role: &str) {
        let pid = peer_of(member);
        self.cmd(&["case", "member", "add", case, &pid, "--role", role])
            .ok();
    }

    /// `record add CASE --type TYPE --field K=V... EXTRA...`; returns the record id.
    #[track_caller]
    pub fn add(
        &self,
        case: &str,
        record_type: &str,
        fields: &[(&str, &str)],
        extra: &[&str],
    ) -> String {
        let args = add_args(case, record_type, fields, extra);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.cmd(&a).ok();
        let id = out.trim().to_string();
        assert!(
            is_uuid(&id),
            "record add should print a record id, got {out:?}"
        );
        id
    }

    /// `record list CASE --json`, as an array.
    #[track_caller]
    pub fn list(&self, case: &str) -> Vec<Value> {
        match self.json(&["record", "list", case]) {
            Value::Array(a) => a,
            other => panic!("record list --json should print an array, got {other}"),
        }
    }

    /// `record list CASE --json`, or None while this node does not hold the
    /// case (for checks repeated until something arrives).
    pub fn try_list(&self, case: &str) -> Option<Vec<Value>> {
        let out = self.cmd(&["--json", "record", "list", case]);
        if !out.status.success() {
            return None;
        }
        match serde_json::from_str(&out.stdout) {
            Ok(Value::Array(a)) => Some(a),
            _ => None,
        }
    }

    /// `record show ID --json`.
    #[track_caller]
    pub fn show(&self, id: &str) -> Value {
        self.json(&["record", "show", id])
    }

    /// Everything observable about the node's content, for "nothing changed"
    /// checks: CLI listings plus every row of every table and the keystore bytes.
    #[track_caller]
    pub fn state(&self, cases: &[&str]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "case list: {}", self.json(&["case", "list"]));
        for c in cases {
            let _ = writeln!(s, "record list {c}: {}", self.json(&["record", "list", c]));
        }
        let _ = writeln!(s, "log verify: {}", self.json(&["log", "verify"]));
        s.push_str(&dump_db(&self.db_path()));
        let ks = std::fs::read(self.dir.join("keystore")).unwrap_or_default();
        let _ = writeln!(s, "keystore: {}", hex(&ks));
        s
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("casesync.db")
    }

    /// A rusqlite connection to the node's store (no casesync process may run).
    pub fn db(&self) -> rusqlite::Connection {
        let p = self.db_path();
        rusqlite::Connection::open(&p)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", p.display()))
    }
}

pub fn add_args(
    case: &str,
    record_type: &str,
    fields: &[(&str, &str)],
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "record".into(),
        "add".into(),
        case.into(),
        "--type".into(),
        record_type.into(),
    ];
    for (k, v) in fields {
        args.push("--field".into());
        args.push(format!("{k}={v}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Every row of every table, in a stable order, as text; the audit log (and
/// its head) left out: every command, reads and refusals included, adds to it,
/// and "nothing stored changed" means nothing but that record.
pub fn dump_db(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let mut tables: Vec<String> = conn
        // A virtual table (the search index) is read through its shadow
        // tables, which are listed as tables of their own.
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
        )
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("cannot list tables");
    tables.sort();
    let mut out = String::new();
    for t in tables {
        let query = match t.as_str() {
            "audit_log" | "audit_pending" => continue,
            "meta" => "SELECT * FROM meta WHERE key != 'audit_head'".to_string(),
            _ => format!("SELECT * FROM \"{t}\""),
        };
        let mut stmt = conn.prepare(&query).expect("cannot read a table");
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    let _ = write!(line, "{v:?}|");
                }
                Ok(line)
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .expect("cannot read rows");
        rows.sort();
        let _ = writeln!(out, "table {t}: {} rows", rows.len());
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `n` random bytes as hex, without a rand dependency: hashes of fresh
/// `RandomState`s (randomly keyed per process), the time and a counter.
pub fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let mut out = String::new();
    while out.len() < n * 2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(COUNTER.fetch_add(1, Ordering::SeqCst));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        let _ = write!(out, "{:016x}", h.finish());
    }
    out.truncate(n * 2);
    out
}

/// Copies a (flat) data dir: every file in it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()));
    for e in entries {
        let e = e.expect("cannot read a directory entry");
        let ft = e.file_type().expect("cannot stat a directory entry");
        if ft.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if ft.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .unwrap_or_else(|err| panic!("cannot copy {}: {err}", e.path().display()));
        }
    }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for e in entries {
            let e = e.expect("cannot read a directory entry");
            let p = e.path();
            let t = e.file_type().expect("cannot stat");
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                // Regular files only: a running serve's wake socket holds nothing.
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Where `needle` occurs in `hay`, if anywhere.
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `fields` object of a record view.
#[track_caller]
pub fn fields_of(v: &Value) -> &serde_json::Map<String, Value> {
    v.get("fields")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("record has no `fields` object: {v}"))
}

/// A string member of a JSON object.
#[track_caller]
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("expected string `{key}` in {v}"))
}

/// The node's signed card (`id --card`).
pub fn card_of(n: &Node) -> String {
    n.cmd(&["id", "--card"]).ok().trim().to_string()
}

/// The node's PeerId (`id --json`).
pub fn peer_of(n: &Node) -> String {
    n.json(&["id"])["peer_id"].as_str().unwrap().to_string()
}

/// The 16 bytes of a hyphenated UUID (a case id as it would sit in a file).
pub fn uuid_bytes(s: &str) -> Vec<u8> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Runs `sql` on the store at `db` with the sqlite3 command-line tool, as a
/// local operator editing the database by hand would (scripts/test.sh installs it).
#[track_caller]
pub fn sqlite3(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sqlite3 ({e}); scripts/test.sh installs it"));
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small seeded generator (splitmix64) for the harnesses that make random
/// choices: the same seed makes the same choices, so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A count from the environment (`name`), else `default`: CI runs a few
/// iterations, `scripts/soak.sh` sets hundreds.
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        _ => default,
    }
}

/// Appends one JSON line to `$CASESYNC_SOAK_REPORT` when it is set, so
/// `scripts/soak.sh` can print what the harnesses did.
pub fn soak_report(line: &Value) {
    if let Some(p) = std::env::var_os("CASESYNC_SOAK_REPORT").filter(|p| !p.is_empty()) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap_or_else(|e| panic!("cannot open the soak report: {e}"));
        writeln!(f, "{line}").unwrap_or_else(|e| panic!("cannot write the soak report: {e}"));
    }
}

/// The checks after a crash or a chaotic run: SQLite's own integrity check, every entry
/// and control operation re-verified, the audit chain intact.
#[track_caller]
pub fn check_store(node: &Node, after: &str) {
    {
        let conn = node.db();
        let rows: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| panic!("{after}: integrity_check failed to run: {e}"));
        assert_eq!(rows, vec!["ok".to_string()], "{after}: integrity_check");
    }
    let log = node.json(&["log", "verify"]);
    assert_eq!(log["failed"], 0, "{after}: log verify: {log}");
    let audit = node.json(&["audit", "verify"]);
    assert_eq!(audit["ok"], true, "{after}: audit verify: {audit}");
}

/// `case show CASE --json` without the viewer's own role (which differs per
/// node): the case's state as every member should hold it. None if the node
/// does not hold the case.
pub fn case_state(node: &Node, case: &str) -> Option<Value> {
    let out = node.cmd(&["case", "show", case, "--json"]);
    if !out.status.success() {
        return None;
    }
    let mut v: Value = serde_json::from_str(&out.stdout).ok()?;
    v.as_object_mut()?.remove("role");
    Some(v)
}
