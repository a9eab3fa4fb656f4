//! Erasure (issue 19): a lead erases a record; it reaches every member by
//! sync, each destroys the record's content and signs a receipt, the logs
//! still verify, nothing of the record's sealed content is left in any file
//! of any data dir (WAL included), and it does not come back.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::network::{Server, eventually, federation};
use crate::util::{Node, TestDir, files_under, find_bytes, peer_of};

/// Every value of a blob column (`sql` selects one) in `n`'s store.
fn blobs(n: &Node, sql: &str) -> Vec<Vec<u8>> {
    let db = n.db();
    let mut s = db.prepare(sql).unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The sealed parts of record `rid` (by its tag in case `case`) in `n`'s
/// stored entries, and the sealed views of all its records.
fn sealed_of(n: &Node, case: &str, rid: &str) -> Vec<Vec<u8>> {
    use casesync_schema::entry::{LogEntry, record_tag};
    let tag = record_tag(&case.parse().unwrap(), &rid.parse().unwrap());
    let all = blobs(n, "SELECT bytes FROM entries");
    let mut out = Vec::new();
    for bytes in all {
        let e = LogEntry::decode_verified(&bytes).unwrap();
        for (i, p) in e.parts().iter().enumerate() {
            if p.tag == tag
                && let Some(b) = e.part_bytes(i)
            {
                out.push(b.to_vec());
            }
        }
    }
    out
}

/// A node's sealed parts of a record, and the sealed views of its records.
type Held = (Vec<Vec<u8>>, BTreeSet<Vec<u8>>);

fn views(n: &Node) -> BTreeSet<Vec<u8>> {
    blobs(n, "SELECT view FROM records").into_iter().collect()
}

/// Whether any file under `n`'s data dir holds `needle`.
fn anywhere(n: &Node, needle: &[u8]) -> Option<String> {
    files_under(&n.dir)
        .into_iter()
        .find(|f| find_bytes(&std::fs::read(f).unwrap_or_default(), needle).is_some())
        .map(|f| f.display().to_string())
}

#[test]
fn an_erased_record_is_gone_from_every_member_with_a_receipt_from_each() {
    let t = TestDir::new("erasure");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, c, "contributor");
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let sc = Server::start(c, &[&sa.addr]);
    // B imports two people in one entry; C edits the one to be erased.
    let lines = "{\"type\":\"person\",\"fields\":{\"name\":\"Erased Person\"}}\n\
                 {\"type\":\"person\",\"fields\":{\"name\":\"Kept Person\"}}\n";
    let file = t.write("people.jsonl", lines);
    b.cmd(&["record", "import", &case, file.to_str().unwrap()])
        .ok();
    let list = |n: &Node| n.list(&case);
    let id_of = |n: &Node, name: &str| {
        list(n)
            .iter()
            .find(|r| r["fields"]["name"] == name)
            .map(|r| r["id"].as_str().unwrap().to_string())
    };
    eventually(60, "C has B's records", || {
        id_of(c, "Erased Person").is_some()
    });
    let gone = id_of(b, "Erased Person").unwrap();
    let kept = id_of(b, "Kept Person").unwrap();
    c.cmd(&["record", "edit", &gone, "--field", "alias=The Marker"])
        .ok();
    eventually(60, "every member has C's edit", || {
        [a, b].iter().all(|n| {
            n.cmd(&["record", "show", &gone, "--json"])
                .ok()
                .contains("The Marker")
        })
    });
    // A bundle made before the erasure, for later.
    let bundle = t.join("before.bundle");
    b.cmd(&[
        "bundle",
        "export",
        "--out",
        bundle.to_str().unwrap(),
        "--case",
        &case,
        "--for",
        &peer_of(c),
    ])
    .ok();
    let before: Vec<Held> = nodes
        .iter()
        .map(|n| (sealed_of(n, &case, &gone), views(n)))
        .collect();
    for (sealed, _) in &before {
        assert_eq!(sealed.len(), 2, "the creation and the edit");
    }

    // A contributor may not erase; the lead does.
    let refused = b
        .cmd(&["record", "erase", &gone, "--reason", "mine"])
        .error_line();
    assert!(refused.contains("only a lead"), "{refused}");
    let started = a.json(&[
        "record",
        "erase",
        &gone,
        "--reason",
        "retention period over",
    ]);
    assert_eq!(started["record"], gone.as_str(), "{started}");

    // Every member erases it and signs a receipt, which reaches A.
    eventually(60, "three receipts on A", || {
        let st = a.json(&["record", "erasure", &gone]);
        st["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["state"] == "erased")
            .count()
            == 3
    });
    let st = a.json(&["record", "erasure", &gone]);
    assert_eq!(st["reason"], "retention period over", "{st}");
    let peers: BTreeSet<String> = st["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(peers, nodes.iter().map(peer_of).collect(), "{st}");
    assert!(
        st["copies_before"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "bundle.export" || e["category"] == "disclosure"),
        "{st}"
    );
    drop((sa, sb, sc));

    for (n, (sealed, views_before)) in nodes.iter().zip(&before) {
        let who = n.dir.display().to_string();
        let line = n.cmd(&["record", "show", &gone]).error_line();
        assert!(line.contains("unknown record"), "{who}: {line}");
        assert_eq!(
            n.show(&kept)["fields"]["name"],
            "Kept Person",
            "{who}: the record in the same entry stays"
        );
        let report = n.json(&["log", "verify"]);
        assert_eq!(report["failed"], 0, "{who}: {report}");
        for part in sealed {
            assert_eq!(
                anywhere(n, part),
                None,
                "{who}: the record's sealed part is left"
            );
        }
        let now = views(n);
        for v in views_before.difference(&now) {
            assert_eq!(anywhere(n, v), None, "{who}: a view of the record is left");
        }
        assert!(sealed_of(n, &case, &gone).is_empty());
        let trail = n.json(&["audit", "list", "--action", "record.erased"]);
        assert_eq!(trail.as_array().unwrap().len(), 1, "{who}: {trail}");
    }

    // The bundle made before brings nothing of it back.
    let out = c.json(&["bundle", "import", bundle.to_str().unwrap()]);
    let _: &Value = &out;
    let line = c.cmd(&["record", "show", &gone]).error_line();
    assert!(line.contains("unknown record"), "{line}");
    assert!(sealed_of(c, &case, &gone).is_empty());
}

/// Apart while the lead erases, a member edits the record: when they meet,
/// the member carries out the erasure (its own edit's part included) and
/// signs its receipt, the lead strips that edit as it arrives, and every
/// member ends with the same records and the same entries (by hash).
#[test]
fn an_edit_made_apart_from_the_erasure_is_erased_too_and_members_converge() {
    let t = TestDir::new("erasure_apart");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, c, "contributor");
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let sc = Server::start(c, &[&sa.addr]);
    eventually(60, "B has the case", || b.try_list(&case).is_some());
    let gone = b.add(&case, "person", &[("name", "Erased Person")], &[]);
    let kept = b.add(&case, "person", &[("name", "Kept Person")], &[]);
    eventually(60, "C has both records", || {
        c.try_list(&case).is_some_and(|l| l.len() == 2)
    });
    drop(sc);
    // Apart: C edits both; A erases one.
    c.cmd(&["record", "edit", &gone, "--field", "alias=Written Apart"])
        .ok();
    c.cmd(&["record", "edit", &kept, "--field", "alias=Also Apart"])
        .ok();
    a.json(&["record", "erase", &gone, "--reason", "unlawfully held"]);
    let sc = Server::start(c, &[&sa.addr]);
    eventually(60, "three receipts on A", || {
        a.json(&["record", "erasure", &gone])["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "erased")
    });
    let entries = |n: &Node| -> BTreeSet<Vec<u8>> {
        blobs(n, "SELECT hash FROM entries").into_iter().collect()
    };
    eventually(60, "every member holds the same entries", || {
        let e = entries(a);
        e.len() >= 4 && entries(b) == e && entries(c) == e
    });
    eventually(60, "every member shows the kept record's edit", || {
        nodes
            .iter()
            .all(|n| n.show(&kept)["fields"]["alias"] == "Also Apart")
    });
    drop((sa, sb, sc));
    for n in &nodes {
        assert!(
            n.cmd(&["record", "show", &gone])
                .error_line()
                .contains("unknown record")
        );
        assert!(sealed_of(n, &case, &gone).is_empty());
        assert_eq!(n.list(&case), a.list(&case));
        assert_eq!(n.json(&["log", "verify"])["failed"], 0);
    }
}

/// SIGKILL at random moments of `record erase` (5 here; the soak sets
/// CASESYNC_ERASURE_KILLS=50): whatever the moment, the node never holds a
/// receipt of its own while it still holds the record's content, and the
/// next look (`record erasure`, or `record erase` again if the operation was
/// not signed yet) finishes the erasure with the logs verifying.
#[test]
fn an_erasure_cut_by_a_kill_completes_and_never_claims_what_it_did_not_do() {
    use crate::util::{Rng, copy_dir, env_count};
    let t = TestDir::new("erasure_kills");
    let base = t.node("base");
    base.init("uk-east", "ROCU East", "GB");
    let case = base.create_case("Op Lantern");
    let gone = base.add(&case, "person", &[("name", "Erased Person")], &[]);
    for i in 0..20 {
        base.cmd(&[
            "record",
            "edit",
            &gone,
            "--field",
            &format!("alias=alias {i}"),
        ])
        .ok();
    }
    let kept = base.add(&case, "person", &[("name", "Kept Person")], &[]);
    // How long an erasure takes here, uncut.
    let probe = t.node("probe");
    copy_dir(&base.dir, &probe.dir);
    let started = std::time::Instant::now();
    probe
        .cmd(&["record", "erase", &gone, "--reason", "probe"])
        .ok();
    let whole = started.elapsed().as_millis() as u64;
    let mut rng = Rng::new(0x5eed_e7a5);
    for k in 0..env_count("CASESYNC_ERASURE_KILLS", 5) {
        let n = t.node(&format!("kill-{k}"));
        copy_dir(&base.dir, &n.dir);
        let mut child = n
            .command(&["record", "erase", &gone, "--reason", "cut short"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.below(whole + 1)));
        let _ = child.kill();
        let _ = child.wait();
        // Never a receipt of its own while it still holds the content.
        if own_receipt(&n) {
            assert!(
                sealed_of(&n, &case, &gone).is_empty(),
                "kill {k}: a receipt before the content was gone"
            );
        }
        // The next look finishes it (or the erase is asked again: the
        // operation was not signed before the kill).
        let st = n.cmd(&["record", "erasure", &gone, "--json"]);
        if !st.status.success() {
            n.cmd(&["record", "erase", &gone, "--reason", "again"]).ok();
        }
        let st = n.json(&["record", "erasure", &gone]);
        assert_eq!(st["members"][0]["state"], "erased", "kill {k}: {st}");
        assert!(own_receipt(&n), "kill {k}");
        assert!(sealed_of(&n, &case, &gone).is_empty(), "kill {k}");
        assert!(
            n.cmd(&["record", "show", &gone])
                .error_line()
                .contains("unknown record")
        );
        assert_eq!(n.show(&kept)["fields"]["name"], "Kept Person");
        assert_eq!(n.json(&["log", "verify"])["failed"], 0, "kill {k}");
        let integrity: String = n
            .db()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "kill {k}");
    }
}

/// Whether `n`'s control logs hold an erasure receipt signed by `n`.
fn own_receipt(n: &Node) -> bool {
    use casesync_schema::control::{ControlBody, ControlOp};
    let me = casesync_node::DataDir::new(&n.dir)
        .unlock(crate::util::PASSPHRASE.as_bytes())
        .unwrap()
        .keys
        .public()
        .ed25519;
    let ops = blobs(n, "SELECT bytes FROM control_ops");
    ops.iter().any(|b| {
        ControlOp::decode_verified(b).is_ok_and(|op| {
            op.author == me && matches!(op.body, ControlBody::ErasureReceipt { .. })
        })
    })
}

/// An enrolled contributor that signs what it likes: an erasure (a lead's
/// operation), a receipt for an erasure that does not exist, and one of its
/// own entries with a record's part taken out (withholding content under a
/// valid signature). Each is refused and logged; the record stays.
#[test]
fn a_contributor_cannot_erase_fake_a_receipt_or_withhold_a_part() {
    use crate::hostile_peer::{connect, local, writer};
    use casesync_node::net::protocol::{SyncRequest, SyncResponse};
    use casesync_schema::bundle::{BundleBody, CaseItems};
    use casesync_schema::control::{self, ControlBody, ControlOp};
    use casesync_schema::entry::record_tag;
    use casesync_schema::record::{FieldValue, RecordInput, RecordType, ReleasableTo};
    let t = TestDir::new("erasure_hostile");
    let nodes = federation(&t, &[("uk-east", "GB"), ("rogue", "NL")]);
    let (a, h) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, h, "contributor");
    let rid = a.add(&case, "person", &[("name", "Target")], &[]);
    let sa = Server::start(a, &[]);
    h.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    let case_id: casesync_schema::CaseId = case.parse().unwrap();
    let (hn, epoch, key, federation_id) = writer(h, case_id);
    let heads = casesync_node::cases::load(&hn, hn.store.conn(), &case_id)
        .unwrap()
        .state
        .heads;
    let (tag, sealed) =
        control::seal_erasure(&case_id, &rid.parse().unwrap(), &key, "not mine to erase").unwrap();
    let erase = ControlOp::create(
        &hn.keys,
        case_id,
        heads.clone(),
        0,
        ControlBody::EraseRecord { tag, epoch, sealed },
    )
    .unwrap();
    let receipt = ControlOp::create(
        &hn.keys,
        case_id,
        heads,
        0,
        ControlBody::ErasureReceipt {
            erasure: casesync_crypto::Hash([7; 32]),
        },
    )
    .unwrap();
    let own = casesync_schema::RecordId::new_v7();
    let target: libp2p::PeerId = peer_of(a).parse().unwrap();
    let ops_before = a
        .db()
        .query_row("SELECT COUNT(*) FROM control_ops", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    local(async {
        let hostile = connect(&hn.keys, &sa.addr, target, federation_id).await;
        let withheld = hostile
            .entry_making(
                case_id,
                1,
                casesync_crypto::Hash::ZERO,
                (epoch, &key),
                own,
                &RecordInput {
                    handling: Default::default(),
                    record_type: RecordType::Person,
                    fields: [("name".to_string(), FieldValue::Str("Hidden".into()))].into(),
                    grading: None,
                    releasable_to: ReleasableTo(vec![]),
                },
            )
            .without(&[record_tag(&case_id, &own)]);
        let body = BundleBody {
            registry_ops: vec![],
            cases: vec![CaseItems {
                case: case_id,
                control_ops: vec![erase.bytes().to_vec(), receipt.bytes().to_vec()],
                entries: vec![withheld.bytes().to_vec()],
            }],
        };
        let r = hostile
            .ask(SyncRequest::Deliver {
                federation: federation_id.0.to_vec(),
                body: body.encode(),
            })
            .await
            .unwrap();
        assert!(
            matches!(r, SyncResponse::Accepted { entries: 0, .. }),
            "{r:?}"
        );
    });
    let ops_after = a
        .db()
        .query_row("SELECT COUNT(*) FROM control_ops", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    assert_eq!(ops_after, ops_before, "neither operation is kept");
    assert_eq!(a.show(&rid)["fields"]["name"], "Target");
    assert!(
        a.cmd(&["record", "erasure", &rid])
            .error_line()
            .contains("has not been erased"),
    );
    let refusals: String = a
        .json(&["audit", "list", "--action", "sync.reject"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        refusals.contains("2 control operation(s) whose author held no authority"),
        "{refusals}"
    );
    assert!(refusals.contains("content is missing"), "{refusals}");
    drop(sa);
}

/// A lead closes a case: no member writes in it any more. Then the lead
/// erases it: every member destroys every record's content (evidence files
/// included), signs a receipt, and the logs still verify.
#[test]
fn a_closed_case_is_read_only_and_an_erased_case_is_gone_from_every_member() {
    use casesync_schema::entry::LogEntry;
    let t = TestDir::new("erasure_case");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    eventually(60, "B has the case", || b.try_list(&case).is_some());
    a.add(&case, "person", &[("name", "Ion Popescu")], &[]);
    b.add(&case, "phone", &[("number", "+40 721 000 111")], &[]);
    let file = t.write("statement.pdf", vec![5u8; (1 << 20) + 3]);
    a.cmd(&["evidence", "add", &case, file.to_str().unwrap()])
        .ok();
    eventually(60, "both hold all three records", || {
        [a, b]
            .iter()
            .all(|n| n.try_list(&case).is_some_and(|l| l.len() == 3))
    });

    let open = b.cmd(&["case", "archive", &case]).error_line();
    assert!(open.contains("is open"), "{open}");
    a.cmd(&["case", "close", &case]).ok();
    eventually(60, "B sees the case closed", || {
        b.cmd(&[
            "record",
            "add",
            &case,
            "--type",
            "note",
            "--field",
            "text=late",
        ])
        .error_line()
        .contains("read-only")
    });
    assert!(
        a.cmd(&[
            "record",
            "add",
            &case,
            "--type",
            "note",
            "--field",
            "text=late"
        ])
        .error_line()
        .contains("read-only")
    );

    // Archived on B: out of its working list, still held and shown.
    let listed = |n: &Node, all: bool| -> Vec<String> {
        let mut args = vec!["case", "list"];
        if all {
            args.push("--all");
        }
        n.json(&args)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(b.json(&["case", "archive", &case])["archived"], true);
    assert!(!listed(b, false).contains(&case));
    assert!(listed(b, true).contains(&case));
    assert!(
        listed(a, false).contains(&case),
        "archiving is B's own view"
    );
    assert!(b.json(&["case", "show", &case])["archived"].is_string());
    assert!(b.try_list(&case).is_some_and(|l| l.len() >= 3));
    assert_eq!(
        b.json(&["case", "archive", &case, "--undo"])["archived"],
        false
    );
    assert!(listed(b, false).contains(&case));

    let s = a.json(&["case", "erase", &case, "--reason", "retention period over"]);
    assert_eq!(s["case"], case.as_str(), "{s}");
    eventually(60, "both receipts on A", || {
        a.json(&["case", "erasure", &case])["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "erased")
    });
    drop((sa, sb));
    for n in &nodes {
        assert!(n.list(&case).is_empty());
        assert_eq!(n.json(&["log", "verify"])["failed"], 0);
        let entries = blobs(n, "SELECT bytes FROM entries");
        assert!(entries.len() >= 3, "the three records' entries stay");
        for bytes in entries {
            let e = LogEntry::decode_verified(&bytes).unwrap();
            assert!(e.parts().iter().all(|p| !p.is_here()), "a part is left");
        }
        let pieces = n.dir.join("pieces");
        let left = if pieces.exists() {
            files_under(&pieces)
                .into_iter()
                .filter(|f| f.file_name().unwrap().len() == 64)
                .count()
        } else {
            0
        };
        assert_eq!(left, 0, "evidence pieces are left");
    }
}

/// A case's policy, signed by its lead, binds every member: a partner's
/// bundle export needs a second person there; an originator that does not
/// lead the case asks for its record's erasure and the lead's node carries
/// it out; a writer asking for the erasure of a record it did not make
/// (signed with its own key, past its node's checks) erases nothing.
#[test]
fn a_cases_policy_binds_every_member_and_lets_an_originator_erase() {
    use casesync_schema::control::{self, ControlBody, ControlOp};
    let t = TestDir::new("erasure_policy");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("rogue", "NL")],
    );
    let (a, b, h) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, h, "contributor");
    let ra = a.add(&case, "person", &[("name", "Lead's Person")], &[]);
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    eventually(60, "B holds the case", || {
        b.cmd(&["record", "show", &ra]).status.success()
    });
    let rb = b.add(&case, "person", &[("name", "Source Person")], &[]);
    // Without a policy, an originator that does not lead may not erase.
    let refused = b
        .cmd(&["record", "erase", &rb, "--reason", "source withdrew"])
        .error_line();
    assert!(refused.contains("--originator-erases on"), "{refused}");
    // Only a lead sets the policy.
    let not_lead = b
        .cmd(&["case", "policy", &case, "--originator-erases", "on"])
        .error_line();
    assert!(not_lead.contains("only a lead"), "{not_lead}");
    let p = a.json(&[
        "case",
        "policy",
        &case,
        "--four-eyes",
        "bundle-export,member-add",
        "--originator-erases",
        "on",
    ]);
    assert_eq!(p["originator_erases"], true, "{p}");
    eventually(60, "B holds the policy and A's record", || {
        b.json(&["case", "show", &case])["policy"]["four_eyes"]
            .as_array()
            .is_some_and(|v| v.len() == 2)
            && b.cmd(&["record", "show", &ra]).status.success()
    });

    // B's own node policy asks nothing; the case's does.
    let out = t.join("b.bundle");
    let line = b
        .cmd_env(
            &[
                "bundle",
                "export",
                "--case",
                &case,
                "--out",
                out.to_str().unwrap(),
            ],
            &[("CASESYNC_OPERATOR", "alice")],
        )
        .error_line();
    assert!(
        line.contains(&format!("the policy of case {case}")),
        "{line}"
    );
    assert!(!out.exists());
    let id = line
        .split("request ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    b.cmd_env(
        &["approvals", "approve", &id, "--out", out.to_str().unwrap()],
        &[("CASESYNC_OPERATOR", "bob")],
    )
    .ok();
    assert!(out.exists());

    // B may not erase A's record; it asks for its own.
    let theirs = b
        .cmd(&["record", "erase", &ra, "--reason", "not mine"])
        .error_line();
    assert!(theirs.contains("only a lead"), "{theirs}");
    let asked = b.json(&["record", "erase", &rb, "--reason", "source withdrew"]);
    assert_eq!(asked["requested"], true, "{asked}");
    // A's node erases it from every member; the receipts reach A.
    let sh = Server::start(h, &[&sa.addr]);
    eventually(90, "the erasure is carried out with three receipts", || {
        let st = a.cmd(&["--json", "record", "erasure", &rb]);
        st.status.success() && {
            let v: Value = serde_json::from_str(&st.stdout).unwrap();
            v["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["state"] == "erased")
                .count()
                == 3
        }
    });
    let st = a.json(&["record", "erasure", &rb]);
    assert!(
        st["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("at the request of its originator {}", peer_of(b))),
        "{st}"
    );
    for n in [a, b, h] {
        assert!(!n.cmd(&["record", "show", &rb]).status.success());
        assert_eq!(n.json(&["log", "verify"])["failed"], 0);
    }

    // A hostile writer signs a request for A's record and delivers it to A.
    drop(sh);
    let (hn, federation) = crate::hostile_peer::as_member(h);
    let conn = hn.store.conn();
    let case_id: casesync_schema::CaseId = case.parse().unwrap();
    let held = casesync_node::cases::load(&hn, conn, &case_id).unwrap();
    let (epoch, key) = casesync_node::cases::current_epoch(&hn, conn, &held).unwrap();
    let (tag, sealed) =
        control::seal_erasure(&case_id, &ra.parse().unwrap(), &key, "mine now").unwrap();
    let op = ControlOp::create(
        &hn.keys,
        case_id,
        held.state.heads.clone(),
        1,
        ControlBody::EraseRequest { tag, epoch, sealed },
    )
    .unwrap();
    crate::hostile_peer::push_control(
        &hn.keys,
        federation,
        &sa.addr,
        &peer_of(a),
        case_id,
        vec![op.bytes().to_vec()],
    );
    // A refuses it (audited) and A's record stays, on A and on B.
    eventually(60, "A refuses the request", || {
        a.json(&["audit", "list", "--action", "record.erase"])
            .to_string()
            .contains("did not originate")
            || a.json(&["audit", "list", "--action", "record.erase"])
                .to_string()
                .contains("the record's originator is")
    });
    assert!(a.cmd(&["record", "show", &ra]).status.success());
    let not_erased = a.cmd(&["record", "erasure", &ra]).error_line();
    assert!(not_erased.contains("not erased yet"), "{not_erased}");
    assert!(b.cmd(&["record", "show", &ra]).status.success());
    drop((sa, sb));
}
