//! Entries may arrive in any order (DESIGN.md, "Sync"): an entry whose
//! predecessor is missing waits, and is applied once the gap is filled. Two real
//! data dirs written by the real binary; the library ingests what A stored, in
//! the order a misbehaving or lossy link would deliver it.

use std::path::Path;

mod common;
use common::{PASS, casesync, temp_root};

use casesync_node::{DataDir, ingest, store};
use casesync_schema::CaseId;
use casesync_schema::bundle::{BundleBody, CaseItems};

fn count(dir: &Path, table: &str) -> i64 {
    let s = DataDir::new(dir).open_store().unwrap();
    s.conn()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn entries_that_arrive_before_their_predecessor_wait_and_then_apply() {
    let root = temp_root("ooo");
    let (a, b) = (root.join("a"), root.join("b"));
    casesync(
        &a,
        &["init", "--name", "a", "--org", "A", "--country", "GB"],
    );
    casesync(
        &b,
        &["init", "--name", "b", "--org", "B", "--country", "RO"],
    );
    let card_b = casesync(&b, &["id", "--card"]);
    let case_text = casesync(&a, &["case", "create", "--title", "order"]);
    casesync(
        &a,
        &[
            "case",
            "member",
            "add",
            &case_text,
            &card_b,
            "--role",
            "contributor",
        ],
    );
    for name in ["first", "second", "third"] {
        casesync(
            &a,
            &[
                "record",
                "add",
                &case_text,
                "--type",
                "person",
                "--field",
                &format!("name={name}"),
            ],
        );
    }
    // A's control operations and its three entries (seq 1, 2, 3).
    let case: CaseId = case_text.parse().unwrap();
    let a_store = DataDir::new(&a).open_store().unwrap();
    let row = store::case_by_id(a_store.conn(), &case.0).unwrap().unwrap();
    let control_ops: Vec<Vec<u8>> = store::control_ops(a_store.conn(), row.case_ref)
        .unwrap()
        .into_iter()
        .map(|o| o.bytes)
        .collect();
    let heads = store::log_heads(a_store.conn(), row.case_ref).unwrap();
    assert_eq!(heads.len(), 1);
    // A, the only writer, is the sender.
    let sender = heads[0].0;
    let entries: Vec<Vec<u8>> =
        store::entries_after(a_store.conn(), row.case_ref, &heads[0].0, 0, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.bytes)
            .collect();
    assert_eq!(entries.len(), 3);
    let body = |entries: Vec<Vec<u8>>| BundleBody {
        registry_ops: vec![],
        cases: vec![CaseItems {
            case,
            control_ops: control_ops.clone(),
            entries,
        }],
    };

    let node_b = DataDir::new(&b).unlock(PASS.as_bytes()).unwrap();
    // Seq 3 then 2 arrive first: both wait, nothing is applied, nothing refused.
    let r = node_b
        .store
        .write(|tx| {
            ingest::ingest(
                &node_b,
                tx,
                &body(vec![entries[2].clone(), entries[1].clone()]),
                "peer-x",
                &sender,
            )
        })
        .unwrap();
    assert_eq!((r.entries, r.waiting), (0, 2), "{r:?}");
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
    assert_eq!(count(&b, "entries"), 0);
    assert_eq!(count(&b, "records"), 0);
    assert_eq!(count(&b, "waiting_entries"), 2);
    // The same again changes nothing: they already wait.
    let r = node_b
        .store
        .write(|tx| {
            ingest::ingest(
                &node_b,
                tx,
                &body(vec![entries[2].clone()]),
                "peer-x",
                &sender,
            )
        })
        .unwrap();
    assert_eq!((r.entries, r.waiting), (0, 0), "{r:?}");
    assert_eq!(count(&b, "waiting_entries"), 2);
    // Seq 1 fills the gap: all three apply, and nothing waits any more.
    let r = node_b
        .store
        .write(|tx| {
            ingest::ingest(
                &node_b,
                tx,
                &body(vec![entries[0].clone()]),
                "peer-y",
                &sender,
            )
        })
        .unwrap();
    assert_eq!((r.entries, r.records_created), (3, 3), "{r:?}");
    assert_eq!(count(&b, "waiting_entries"), 0);
    assert_eq!(count(&b, "records"), 3);
    drop(node_b);
    let verify = casesync(&b, &["--json", "log", "verify"]);
    assert!(verify.contains("\"failed\": 0"), "{verify}");
    let _ = std::fs::remove_dir_all(&root);
}
