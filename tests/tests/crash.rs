//! SIGKILL in the middle of a long import: the store still verifies and holds
//! all of the import or none of it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::TestDir;

/// How a test kills the import.
struct Plan {
    /// Lines of the import file.
    records: usize,
    /// Kill once the WAL is larger than this: the import is writing its
    /// transaction to disk.
    wal_big: u64,
    /// Kill this long after the WAL appears even if it stays small (SQLite keeps
    /// dirty pages in its 32 MiB cache until the cache is full).
    after_wal: Duration,
}

/// 60,000 small records (a debug build on two cores takes several seconds),
/// killed once the WAL passes 1 MB or 3 s after it appears, whichever is first.
#[test]
fn crash_during_import() {
    run(
        "crash",
        &Plan {
            records: 60_000,
            wal_big: 1024 * 1024,
            after_wal: Duration::from_secs(3),
        },
        |i| {
            format!(
                r#"{{"type":"person","fields":{{"name":"Persoana {i}","alias":"p{i}","category":"contact"}}}}"#
            )
        },
    );
}

/// 20,000 notes of ~1.5 KB of incompressible text, killed only once the WAL
/// passes 1 MB: uncommitted frames of the import are on disk when it dies.
#[test]
fn crash_with_uncommitted_wal() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz ăâîșț".chars().collect();
    run(
        "crash_wal",
        &Plan {
            records: 20_000,
            wal_big: 1024 * 1024,
            after_wal: Duration::from_secs(120),
        },
        move |i| {
            let text: String = (0..1500)
                .map(|_| {
                    // xorshift64: text that LZ4 cannot shrink much.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            serde_json::json!({"type": "note", "fields": {"text": format!("nota {i} {text}")}})
                .to_string()
        },
    );
}

fn run(name: &str, plan: &Plan, mut line: impl FnMut(usize) -> String) {
    let n = plan.records;
    let t = TestDir::new(name);
    let node = t.node("a");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    node.add(&case, "note", &[("text", "before the import")], &[]);
    let before = node.list(&case);

    let path = t.join("big.jsonl");
    {
        let mut w = BufWriter::new(File::create(&path).expect("create big.jsonl"));
        for i in 0..n {
            writeln!(w, "{}", line(i)).expect("write big.jsonl");
        }
        w.flush().expect("flush big.jsonl");
    }

    let wal = node.dir.join("casesync.db-wal");
    assert!(
        !wal.exists(),
        "a WAL file is left over from earlier commands; the test cannot tell when the import starts"
    );
    let out_path = t.join("import.out");
    let err_path = t.join("import.err");
    let mut child = node
        .command(&["record", "import", &case, &path.display().to_string()])
        .stdout(Stdio::from(File::create(&out_path).expect("create")))
        .stderr(Stdio::from(File::create(&err_path).expect("create")))
        .spawn()
        .expect("cannot start casesync record import");
    let started = Instant::now();
    let mut wal_seen: Option<Instant> = None;
    let mut killed_at = None;
    let finished_alone = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if let Ok(m) = std::fs::metadata(&wal) {
            let seen = *wal_seen.get_or_insert_with(Instant::now);
            if m.len() > plan.wal_big || seen.elapsed() > plan.after_wal {
                // Child::kill is SIGKILL on Unix: no destructor, no rollback, no checkpoint.
                let _ = child.kill();
                killed_at = Some((started.elapsed(), m.len()));
                break None;
            }
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the import neither finished nor wrote a WAL in 300 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let status = match finished_alone {
        Some(s) => s,
        None => child.wait().expect("wait for the killed import"),
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    #[cfg(unix)]
    let by_signal = {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    };
    #[cfg(not(unix))]
    let by_signal = killed_at.is_some() && !status.success();
    match (killed_at, by_signal) {
        (Some((at, wal_len)), true) => {
            eprintln!("killed the import with SIGKILL after {at:?} (WAL {wal_len} bytes)")
        }
        _ => {
            assert!(
                status.success(),
                "the import failed on its own ({status}): {stderr}"
            );
            eprintln!(
                "did not manage to interrupt: the import finished in {:?} before the kill",
                started.elapsed()
            );
        }
    }

    // Recovery: the store verifies, and holds the import entirely or not at all.
    let report = node.json(&["log", "verify"]);
    assert_eq!(report["failed"], 0, "log verify after the crash: {report}");
    let after = node.list(&case);
    assert!(
        after.len() >= before.len(),
        "records from before the import were lost: {} then {}",
        before.len(),
        after.len()
    );
    let imported = after.len() - before.len();
    eprintln!("after the crash the case holds {imported} of {n} imported records");
    // The import and its audit entry commit together or not at all.
    let audit = node.json(&["audit", "verify"]);
    assert_eq!(audit["ok"], true, "audit verify after the crash: {audit}");
    let imports = node.json(&["audit", "list", "--action", "record.import"]);
    let done: Vec<_> = imports
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .collect();
    assert_eq!(
        done.len(),
        usize::from(imported == n),
        "{imported} records imported, audit entries: {imports}"
    );
    if let Some(e) = done.first() {
        assert_eq!(e["records"].as_array().unwrap().len(), n);
    }
    assert!(
        imported == 0 || imported == n,
        "a killed import must be all or nothing, but {imported} of {n} records are there"
    );
    if imported == 0 {
        assert_eq!(after, before, "the records from before the import changed");
    } else {
        assert!(
            before.iter().all(|r| after.contains(r)),
            "the records from before the import changed"
        );
    }
    if by_signal {
        eprintln!(
            "observed: {}",
            if imported == 0 {
                "nothing imported (killed before commit)"
            } else {
                "everything imported (killed after commit)"
            }
        );
    }
    let shown = node.json(&["case", "show", &case]);
    assert_eq!(shown["records"], after.len(), "case show: {shown}");

    // The store still takes writes and still verifies.
    node.add(&case, "note", &[("text", "after the crash")], &[]);
    assert_eq!(node.list(&case).len(), after.len() + 1);
    let report = node.json(&["log", "verify"]);
    assert_eq!(report["failed"], 0, "log verify after a write: {report}");
}
