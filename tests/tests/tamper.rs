//! A store edited by hand: `log verify` names the bad entry, and `record show`
//! refuses the record it carries instead of printing it.

use rusqlite::params;

use crate::util::{Node, TestDir, copy_dir};

/// A node with one case, three persons (one entry each) and an edit of the
/// first (a fourth entry).
struct Base {
    t: TestDir,
    node: Node,
    peer: String,
    case: String,
    /// Record ids, in the order added.
    ids: Vec<String>,
    names: Vec<&'static str>,
}

fn base(name: &str) -> Base {
    let t = TestDir::new(name);
    let node = t.node("base");
    let peer = node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    let names = vec!["Ana Popa", "Ion Vasilescu", "Maria Ionescu"];
    let ids: Vec<String> = names
        .iter()
        .map(|n| node.add(&case, "person", &[("name", n)], &[]))
        .collect();
    node.cmd(&["record", "edit", &ids[0], "--field", "status=arrested"])
        .ok();
    Base {
        t,
        node,
        peer,
        case,
        ids,
        names,
    }
}

impl Base {
    /// A fresh copy of the untouched data dir.
    fn copy(&self, name: &str) -> Node {
        let node = self.t.node(name);
        copy_dir(&self.node.dir, &node.dir);
        node
    }

    /// `(row id, seq, bytes)` of every entry, by seq.
    fn entries(&self) -> Vec<(i64, i64, Vec<u8>)> {
        let db = self.node.db();
        let mut s = db
            .prepare("SELECT id, seq, bytes FROM entries ORDER BY seq")
            .expect("prepare");
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .expect("cannot read entries")
    }
}

/// Where an entry's sealed payload starts and how long it is (entry layout
/// v2 with one part: a head whose length is the u32 at byte 1, then the
/// part's presence byte and its sealed bytes).
fn sealed_range(bytes: &[u8]) -> (usize, usize) {
    let be32 = |at: usize| -> usize {
        let b: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
        u32::from_be_bytes(b) as usize
    };
    let head = be32(1);
    let views = be32(133);
    let parts = be32(137 + 72 * views);
    assert_eq!(
        parts, 1,
        "the entry does not have the layout this test assumes"
    );
    assert_eq!(bytes[head], 1, "the part is here");
    (head + 1, bytes.len() - head - 1)
}

fn flip(node: &Node, table: &str, column: &str, row: i64, pos: usize) {
    let db = node.db();
    let mut b: Vec<u8> = db
        .query_row(
            &format!("SELECT {column} FROM {table} WHERE id = ?1"),
            [row],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("no {table}.{column} row {row}: {e}"));
    assert!(pos < b.len(), "byte {pos} is past the end ({})", b.len());
    b[pos] ^= 0x01;
    let n = db
        .execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2"),
            params![b, row],
        )
        .expect("update");
    assert_eq!(n, 1);
}

#[test]
fn tamper_entry_bytes() {
    let b = base("tamper_entry");
    // An untouched store verifies, and every record shows.
    let report = b.node.json(&["log", "verify"]);
    assert_eq!(report["failed"], 0, "untouched store: {report}");
    assert_eq!(report["entries"], 4, "three adds and one edit: {report}");
    for id in &b.ids {
        b.node.show(id);
    }

    let entries = b.entries();
    assert_eq!(
        entries.iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // Entry seq 2 carries the second person (added second, never edited); seq 4
    // carries the edit of the first.
    for (entry, record) in [(1usize, 1usize), (3, 0)] {
        let (row, seq, bytes) = &entries[entry];
        let (start, len) = sealed_range(bytes);
        let positions = [
            ("first byte", 0),
            ("middle byte", bytes.len() / 2),
            ("last byte", bytes.len() - 1),
            ("ciphertext byte", start + len / 3),
            ("seq in the header", 56),
        ];
        for (what, pos) in positions {
            let label = format!("seq{seq}-byte{pos}");
            let node = b.copy(&label);
            flip(&node, "entries", "bytes", *row, pos);
            let ctx = format!("entry seq {seq}, {what} (byte {pos} of {})", bytes.len());

            let name = format!("log entry {}/{}/{seq}", b.case, b.peer);
            let out = node.cmd(&["log", "verify", "--json"]);
            let stdout = out.stdout.clone();
            let line = out.error_line_allowing_stdout();
            assert!(
                line.contains(&name),
                "{ctx}: `log verify` should name {name:?}: {line}"
            );
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
                panic!("{ctx}: log verify --json printed bad JSON ({e}): {stdout}")
            });
            assert_eq!(report["failed"], 1, "{ctx}: one bad entry: {report}");
            assert_eq!(
                report["failures"][0]["item"],
                name.as_str(),
                "{ctx}: {report}"
            );

            let rid = &b.ids[record];
            let out = node.cmd(&["record", "show", rid]);
            let stderr = out.stderr.clone();
            let line = out.error_line();
            assert!(
                line.contains(rid.as_str()) && line.contains("verification"),
                "{ctx}: `record show` should say record {rid} failed verification: {line}"
            );
            assert!(
                !stderr.contains(b.names[record]),
                "{ctx}: the refused record's content was printed: {stderr}"
            );
            // Nor can it be edited on top of the altered history.
            let line = node
                .cmd(&["record", "edit", rid, "--field", "status=x"])
                .error_line();
            assert!(line.contains("verification"), "{ctx}: edit: {line}");
            // Records whose entries are intact still show.
            for (i, other) in b.ids.iter().enumerate() {
                if i != record {
                    assert_eq!(
                        node.show(other),
                        b.node.show(other),
                        "{ctx}: an untouched record changed"
                    );
                }
            }
        }
    }
}

#[test]
fn tamper_record_view() {
    let b = base("tamper_view");
    let rows: Vec<i64> = {
        let db = b.node.db();
        let mut s = db
            .prepare("SELECT id FROM records ORDER BY id")
            .expect("prepare");
        s.query_map([], |r| r.get(0))
            .and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>())
            .expect("cannot read records")
    };
    assert_eq!(rows.len(), 3);
    // Record rows are inserted in the order the records were added.
    for (i, pos) in [(1usize, 0usize), (1, 40), (0, 30)] {
        let node = b.copy(&format!("view{i}-{pos}"));
        flip(&node, "records", "view", rows[i], pos);
        let out = node.cmd(&["record", "show", &b.ids[i], "--json"]);
        let stderr = out.stderr.clone();
        let line = out.error_line();
        assert!(
            line.contains("integrity") || line.contains("verification"),
            "a flipped view byte should fail its integrity check: {line}"
        );
        assert!(
            !stderr.contains(b.names[i]),
            "record content printed: {stderr}"
        );
        let line = node.cmd(&["record", "list", &b.case]).error_line();
        assert!(
            line.contains("integrity") || line.contains("verification"),
            "record list over an altered view: {line}"
        );
    }
}

#[test]
fn deleted_entry_is_detected() {
    let b = base("tamper_delete");
    let entries = b.entries();
    let (row, seq, _) = &entries[1];
    let node = b.copy("deleted");
    {
        let db = node.db();
        // A local attacker does not care about foreign keys.
        db.execute_batch("PRAGMA foreign_keys = OFF")
            .expect("pragma");
        assert_eq!(
            db.execute("DELETE FROM entries WHERE id = ?1", [row])
                .expect("delete"),
            1
        );
    }
    let line = node.cmd(&["log", "verify"]).error_line_allowing_stdout();
    assert!(
        line.contains("missing") || line.contains(&format!("/{seq}")) || line.contains("gap"),
        "log verify should report the deleted entry: {line}"
    );
    // The record that entry carried has no verifiable history left: showing it
    // would show content that nothing vouches for.
    let out = node.cmd(&["record", "show", &b.ids[1]]);
    let line = out.error_line();
    assert!(line.contains(&b.ids[1]), "{line}");
}

/// A record's view and snapshot copied back from an older copy of the store
/// (issue 21, finding 5), with or without the digest of the entries they
/// were built from: `record show` refuses the record, and `log verify` names
/// the row when the digest came along.
#[test]
fn an_older_view_put_back_is_detected_by_show_and_log_verify() {
    let t = TestDir::new("tamper_rollback");
    let node = t.node("n");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    let id = node.add(&case, "person", &[("name", "Ana Popa")], &[]);
    node.cmd(&["record", "edit", &id, "--field", "status=suspect"])
        .ok();
    type Row = (Vec<u8>, Option<Vec<u8>>, Vec<u8>);
    let old: Row = node
        .db()
        .query_row("SELECT view, snapshot, log_digest FROM records", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("one record");
    node.cmd(&["record", "edit", &id, "--field", "status=arrested"])
        .ok();
    assert_eq!(node.show(&id)["fields"]["status"], "arrested");
    let saved = t.join("saved");
    copy_dir(&node.dir, &saved);

    for with_digest in [false, true] {
        let n = t.node(&format!("rolled-{with_digest}"));
        copy_dir(&saved, &n.dir);
        {
            let db = n.db();
            let (view, snapshot, digest) = &old;
            db.execute(
                "UPDATE records SET view = ?1, snapshot = ?2",
                params![view, snapshot],
            )
            .unwrap();
            if with_digest {
                db.execute("UPDATE records SET log_digest = ?1", params![digest])
                    .unwrap();
            }
        }
        let line = n.cmd(&["record", "show", &id]).error_line();
        assert!(
            line.contains("integrity") || line.contains("verification") || line.contains("altered"),
            "record show over an older view (digest put back: {with_digest}): {line}"
        );
        assert!(
            !line.contains("suspect"),
            "the old state is not printed: {line}"
        );
        let verify = n.cmd(&["log", "verify", "--json"]);
        if with_digest {
            assert!(!verify.status.success(), "log verify names the row");
            assert!(
                verify.stdout.contains("built from other log entries"),
                "{}",
                verify.stdout
            );
        }
    }
}
