//! A case key wrapped to another node's card must be unwrappable by that node
//! alone. Two real data dirs, the real binary for every write; the library only
//! reads what the binary stored, as the next issue's sync will ship it.

mod common;
use common::{PASS, casesync, temp_root};

use casesync_node::{DataDir, cases, store};
use casesync_schema::control::{self, ControlOp};
use casesync_schema::doc;
use casesync_schema::entry::LogEntry;
use casesync_schema::{CaseId, RecordId};

#[test]
fn case_key_wrapped_to_a_card_unwraps_only_on_that_node() {
    let root = temp_root("keyshare");
    let (a, b, c) = (root.join("a"), root.join("b"), root.join("c"));
    casesync(
        &a,
        &[
            "init",
            "--name",
            "uk-east",
            "--org",
            "ROCU East",
            "--country",
            "GB",
        ],
    );
    casesync(
        &b,
        &[
            "init",
            "--name",
            "ro-police",
            "--org",
            "IGPR",
            "--country",
            "RO",
        ],
    );
    casesync(
        &c,
        &[
            "init",
            "--name",
            "outsider",
            "--org",
            "Other",
            "--country",
            "FR",
        ],
    );
    let card_b = casesync(&b, &["id", "--card"]);
    let case_text = casesync(&a, &["case", "create", "--title", "Op Lantern"]);
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
    let rid_text = casesync(
        &a,
        &[
            "record",
            "add",
            &case_text,
            "--type",
            "person",
            "--field",
            "name=Marin Dobre",
        ],
    );
    let case: CaseId = case_text.parse().unwrap();
    let rid: RecordId = rid_text.parse().unwrap();

    // What node A would send: its control operations and entries, as stored.
    let a_store = DataDir::new(&a).open_store().unwrap();
    let row = store::case_by_id(a_store.conn(), &case.0).unwrap().unwrap();
    let ops: Vec<ControlOp> = store::control_ops(a_store.conn(), row.case_ref)
        .unwrap()
        .iter()
        .map(|o| ControlOp::decode_verified(&o.bytes).unwrap())
        .collect();
    let mut entries = Vec::new();
    store::for_each_entry(a_store.conn(), |e| {
        entries.push(LogEntry::decode_verified(&e.bytes).unwrap())
    })
    .unwrap();

    // Node B, from its own data dir and keystore, unwraps the epoch key...
    let node_b = DataDir::new(&b).unlock(PASS.as_bytes()).unwrap();
    let state = control::resolve(case, &ops).unwrap();
    let epoch = state.epochs.last().unwrap();
    let key_b = cases::unwrap_epoch(&node_b.keys, &case, epoch).unwrap();

    // ...which is the key A holds, and opens A's entry to the record A wrote.
    let node_a = DataDir::new(&a).unlock(PASS.as_bytes()).unwrap();
    let case_a = cases::load(&node_a, node_a.store.conn(), &case).unwrap();
    let key_a = cases::epoch_key(&node_a, node_a.store.conn(), &case_a, &epoch.id).unwrap();
    assert_eq!(key_a, key_b);
    let entry = entries.iter().find(|e| e.header.case == case).unwrap();
    let changes = entry.open(&key_b).unwrap();
    let change = changes.iter().find(|c| c.record == rid).unwrap();
    let d = doc::from_changes(
        vec![doc::parse_change(&change.change).unwrap()],
        doc::actor_for(&[0; 32]),
    )
    .unwrap();
    assert_eq!(
        doc::view(&d).unwrap().fields["name"].as_text(),
        "Marin Dobre"
    );
    let meta = control::CaseMeta::open(&state.sealed_meta, &case, &key_b).unwrap();
    assert_eq!(meta.title, "Op Lantern");

    // Node C was never added: it holds no wrap, and B's wrap does not open for it.
    let node_c = DataDir::new(&c).unlock(PASS.as_bytes()).unwrap();
    assert!(cases::unwrap_epoch(&node_c.keys, &case, epoch).is_err());
    let mut forged = epoch.clone();
    let b_wrap = forged.wraps[&node_b.keys.public().ed25519].clone();
    forged.wraps.insert(node_c.keys.public().ed25519, b_wrap);
    assert!(cases::unwrap_epoch(&node_c.keys, &case, &forged).is_err());
    let _ = std::fs::remove_dir_all(&root);
}
