//! What must stay linear however an enrolled partner behaves (issue 14):
//! resolving a case's control log, ingesting a record's edits delivered at
//! once, and a federation's registry. Each is measured at two sizes in one
//! process and printed as one JSON object with the cost per item, so a ratio
//! near 1 between the sizes shows linear growth. Run by `scripts/bench.sh`.
//!
//!   hardening_cost DIR [OPS=2500,10000] [EDITS=1000,5000] [NODES=250,1000]

use std::time::Instant;

use casesync_crypto::NodeKeys;
use casesync_node::{DataDir, Node, cases, records, trust};
use casesync_schema::NodeCard;
use casesync_schema::control::{self, ControlBody, ControlOp};
use casesync_schema::record::{FieldValue, RecordInput, RecordType, ReleasableTo};
use casesync_schema::registry::{self, RegistryOp};
use serde_json::json;

fn sizes(arg: Option<&String>, default: [usize; 2]) -> [usize; 2] {
    let v: Vec<usize> = arg
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    match v.as_slice() {
        [a, b] => [*a, *b],
        _ => default,
    }
}

/// A control log of `n` operations by one lead: members added and removed,
/// and key rotations, each on the one before (the shape a long case has).
/// Returns the seconds to verify every signature and resolve.
fn resolve_cost(n: usize) -> f64 {
    let lead = NodeKeys::generate().expect("keys");
    let card = NodeCard::issue(&lead, "lead", "Bench Unit", "GB", 0).expect("card");
    let nonce = [1u8; 16];
    let case = control::case_id_for(&lead.public().ed25519, &nonce);
    let mut ops = vec![
        ControlOp::create(
            &lead,
            case,
            vec![],
            0,
            ControlBody::Create {
                nonce,
                creator: card,
                salt: [2; 32],
                wraps: vec![],
                sealed_meta: vec![],
            },
        )
        .expect("create"),
    ];
    let member = NodeKeys::generate().expect("keys");
    let mut members = Vec::new();
    while ops.len() < n {
        let parents = vec![ops[ops.len() - 1].hash()];
        let body = match ops.len() % 3 {
            1 => {
                // A fresh member each time: removal is final.
                let k = NodeKeys::generate().unwrap_or_else(|_| member.clone());
                let c = NodeCard::issue(&k, "member", "Bench Unit", "GB", 0).expect("card");
                members.push(k.public().ed25519);
                ControlBody::AddMember {
                    card: c,
                    role: control::Role::Contributor,
                }
            }
            2 => ControlBody::RemoveMember {
                member: *members.last().expect("added before"),
                cut: vec![],
                sealed_reason: vec![0; 40],
                salt: [3; 32],
                wraps: vec![],
            },
            _ => ControlBody::KeyEpoch {
                salt: [4; 32],
                wraps: vec![],
            },
        };
        ops.push(ControlOp::create(&lead, case, parents, 0, body).expect("op"));
    }
    let bytes: Vec<Vec<u8>> = ops.iter().map(|o| o.bytes().to_vec()).collect();
    let t = Instant::now();
    let verified: Vec<ControlOp> = bytes
        .iter()
        .map(|b| ControlOp::decode_verified(b).expect("verifies"))
        .collect();
    let state = control::resolve(case, &verified).expect("resolves");
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(state.folds.len(), n, "every operation folds");
    dt
}

fn node(dir: &std::path::Path, name: &str) -> Node {
    DataDir::new(dir.join(name))
        .init(name, "Bench Unit", "GB", b"bench-passphrase")
        .expect("init")
}

/// One record with `n` edits by A, delivered to B at once (the items of one
/// delivery: A's control log and entries). Returns B's ingest seconds. The
/// edits are made in memory and sealed as A's entries, as A's node would.
fn ingest_cost(dir: &std::path::Path, n: usize) -> f64 {
    use automerge::transaction::Transactable;
    use casesync_schema::bundle::{BundleBody, CaseItems};
    use casesync_schema::entry::{EntryHeader, LogEntry, RecordChange};
    let a = node(dir, &format!("edits-a-{n}"));
    let b = node(dir, &format!("edits-b-{n}"));
    let case = cases::create(&a, &bench_actor(), "bench", false).expect("case");
    cases::add_member(
        &a,
        &bench_actor(),
        &case.to_string(),
        &b.card.to_text(),
        control::Role::Contributor,
    )
    .expect("member");
    let input = RecordInput {
        handling: Default::default(),
        record_type: RecordType::Person,
        fields: [("name".to_string(), FieldValue::Str("Marin Dobre".into()))].into(),
        grading: None,
        releasable_to: ReleasableTo::default(),
    };
    let rid: casesync_schema::RecordId = records::add(&a, &bench_actor(), &case.to_string(), input)
        .expect("add")
        .id
        .parse()
        .expect("id");
    let conn = a.store.conn();
    let c = cases::load(&a, conn, &case).expect("case");
    let (epoch, key) = cases::current_epoch(&a, conn, &c).expect("epoch");
    let me = a.keys.public().ed25519;
    let first = casesync_node::store::entries_after(conn, c.case_ref, &me, 0, 1).expect("entry");
    let first = LogEntry::decode_verified(&first[0].bytes).expect("verifies");
    let change = first.open(&key).expect("opens").remove(0).change;
    let mut doc = casesync_schema::doc::from_changes(
        vec![casesync_schema::doc::parse_change(&change).expect("change")],
        casesync_schema::doc::actor_for(&me),
    )
    .expect("doc");
    let fields = match automerge::ReadDoc::get(&doc, automerge::ROOT, "fields").expect("get") {
        Some((_, id)) => id,
        None => panic!("no fields"),
    };
    let mut entries = vec![first.bytes().to_vec()];
    let mut prev = first.hash();
    for i in 0..n {
        doc.put(&fields, "status", format!("seen {i}"))
            .expect("put");
        doc.commit();
        let change = doc
            .get_last_local_change()
            .expect("change")
            .raw_bytes()
            .to_vec();
        let header = EntryHeader {
            case,
            author: me,
            seq: i as u64 + 2,
            prev,
            epoch,
            time_ms: 0,
            view: vec![],
        };
        let changes = [RecordChange {
            record: rid,
            change,
        }];
        let e = LogEntry::create(&a.keys, header, &key, &changes).expect("entry");
        prev = e.hash();
        entries.push(e.bytes().to_vec());
    }
    let body = BundleBody {
        registry_ops: vec![],
        cases: vec![CaseItems {
            case,
            control_ops: casesync_node::store::control_ops(conn, c.case_ref)
                .expect("ops")
                .into_iter()
                .map(|o| o.bytes)
                .collect(),
            entries,
        }],
    };
    let t = Instant::now();
    let report = b
        .store
        .write(|tx| casesync_node::ingest::ingest(&b, tx, &body, "bench", &me))
        .expect("ingest");
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(report.entries, n + 1, "{:?}", report.rejected);
    dt
}

/// A federation of `n` enrolled nodes; returns the seconds to verify and
/// resolve its registry from scratch, and for a new node to join with it.
fn registry_cost(dir: &std::path::Path, n: usize) -> (f64, f64) {
    let admin = node(dir, &format!("registry-{n}"));
    trust::create(&admin, &bench_actor(), "bench").expect("federation");
    for i in 0..n {
        let k = NodeKeys::generate().expect("keys");
        let card = NodeCard::issue(&k, &format!("node {i}"), "Bench Unit", "GB", 0).expect("card");
        trust::invite(&admin, &bench_actor(), &card, false).expect("invite");
    }
    let joiner = node(dir, &format!("registry-joiner-{n}"));
    let token = trust::invite(&admin, &bench_actor(), &joiner.card, false).expect("invite");
    let conn = admin.store.conn();
    let stored = casesync_node::store::registry_ops(conn).expect("ops");
    let fed = trust::load(conn)
        .expect("load")
        .expect("federation")
        .federation;
    let t = Instant::now();
    let ops: Vec<RegistryOp> = stored
        .iter()
        .map(|o| RegistryOp::decode_verified(&o.bytes).expect("verifies"))
        .collect();
    let st = registry::resolve(fed, &ops).expect("resolves");
    let resolve = t.elapsed().as_secs_f64();
    assert_eq!(st.nodes.len(), n + 2);
    let t = Instant::now();
    trust::join(&joiner, &bench_actor(), &token, |_| Ok(())).expect("join");
    (resolve, t.elapsed().as_secs_f64())
}

fn per(seconds: f64, n: usize) -> f64 {
    (seconds / n as f64 * 1e6 * 10.0).round() / 10.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .expect("usage: hardening_cost DIR [OPS] [EDITS] [NODES]"),
    );
    casesync_node::clock::init();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    let mut resolve = Vec::new();
    for n in sizes(args.get(2), [2_500, 10_000]) {
        let s = resolve_cost(n);
        resolve.push(json!({"ops": n, "seconds": s, "us_per_op": per(s, n)}));
    }
    let mut ingest = Vec::new();
    for n in sizes(args.get(3), [1_000, 5_000]) {
        let s = ingest_cost(&dir, n);
        ingest.push(json!({"edits": n, "seconds": s, "us_per_edit": per(s, n)}));
    }
    let mut reg = Vec::new();
    for n in sizes(args.get(4), [250, 1_000]) {
        let (r, j) = registry_cost(&dir, n);
        reg.push(
            json!({"nodes": n, "resolve_seconds": r, "us_per_statement": per(r, n),
                        "join_seconds": j, "join_us_per_statement": per(j, n)}),
        );
    }
    println!(
        "{}",
        json!({"resolve": resolve, "ingest_edits": ingest, "registry": reg})
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Who the benchmark's operations are audited as.
fn bench_actor() -> casesync_node::audit::Actor {
    casesync_node::audit::Actor::new(Some("bench"), None)
}
