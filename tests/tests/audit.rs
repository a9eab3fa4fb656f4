//! The audit log: every operation on case data leaves an entry naming who,
//! what, which records or entries, which peer, the outcome and why; a sync
//! leaves a disclosure on the sender and a collection on the receiver; the
//! chain exposes any edit, deletion, reordering or truncation; entries are
//! sealed at rest.

use serde_json::Value;

use crate::network::{Server, federation};
use crate::util::{Node, OPERATOR, TestDir, copy_dir, find_bytes, peer_of, sqlite3, str_of};

/// `audit list --json ARGS`, as an array.
#[track_caller]
fn audit(n: &Node, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["audit", "list"];
    a.extend_from_slice(args);
    match n.json(&a) {
        Value::Array(v) => v,
        other => panic!("audit list --json should print an array, got {other}"),
    }
}

/// The newest entry with `action`.
#[track_caller]
fn last(n: &Node, action: &str) -> Value {
    audit(n, &["--action", action])
        .pop()
        .unwrap_or_else(|| panic!("no `{action}` entry in the audit log"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn assert_entry(e: &Value, category: &str, operator: &str, case: Option<&str>, peer: Option<&str>) {
    assert_eq!(e["category"], category, "{e}");
    assert_eq!(e["operator"], operator, "{e}");
    assert_eq!(e["outcome"], "ok", "{e}");
    assert_eq!(e["case"].as_str(), case, "{e}");
    assert_eq!(e["peer"].as_str(), peer, "{e}");
    // RFC 3339 with an explicit numeric offset.
    let time = e["time"].as_str().unwrap_or_default();
    assert!(
        time.len() >= 29
            && time.as_bytes()[10] == b'T'
            && matches!(time.as_bytes()[23], b'+' | b'-'),
        "time {time:?} is not RFC 3339 with an offset"
    );
}

#[test]
fn every_operation_leaves_an_entry_naming_who_what_and_why() {
    let t = TestDir::new("audit_ops");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let (pa, pb) = (peer_of(a), peer_of(b));

    assert_entry(&last(a, "federation.create"), "trust", OPERATOR, None, None);
    assert_entry(
        &last(a, "federation.invite"),
        "trust",
        OPERATOR,
        None,
        Some(&pb),
    );
    assert_entry(&last(b, "federation.join"), "trust", OPERATOR, None, None);

    let case = a.create_case("Op Lantern");
    assert_entry(
        &last(a, "case.create"),
        "membership",
        OPERATOR,
        Some(&case),
        None,
    );

    // Collection, combination, alteration.
    let p = a.add(&case, "person", &[("name", "Marin Dobre")], &[]);
    let e = last(a, "record.add");
    assert_entry(&e, "collection", OPERATOR, Some(&case), None);
    assert_eq!(strings(&e["records"]), vec![p.clone()]);
    let q = a.add(&case, "person", &[("name", "Victor Ilie")], &[]);
    let l = a.add(
        &case,
        "link",
        &[("from", &p), ("to", &q), ("link_type", "associate")],
        &[],
    );
    let e = last(a, "record.link");
    assert_entry(&e, "combination", OPERATOR, Some(&case), None);
    assert_eq!(
        strings(&e["records"]),
        vec![l.clone(), p.clone(), q.clone()]
    );
    a.cmd(&[
        "--operator",
        "j.smith",
        "record",
        "edit",
        &p,
        "--field",
        "status=arrested",
    ])
    .ok();
    let e = last(a, "record.edit");
    assert_entry(&e, "alteration", "j.smith", Some(&case), None);
    assert_eq!(strings(&e["records"]), vec![p.clone()]);

    // Consultation: by `record show` and by `record list --json`.
    a.cmd(&["record", "show", &q]).ok();
    let e = last(a, "record.show");
    assert_entry(&e, "consultation", OPERATOR, Some(&case), None);
    assert_eq!(strings(&e["records"]), vec![q.clone()]);
    a.json(&["record", "list", &case]);
    let e = last(a, "record.list");
    assert_entry(&e, "consultation", OPERATOR, Some(&case), None);
    // In the listing's order (by entry tag), every record once.
    let mut all = vec![p.clone(), q.clone(), l.clone()];
    all.sort();
    let mut listed = strings(&e["records"]);
    listed.sort();
    assert_eq!(listed, all);

    // Import.
    let file = t.write(
        "people.jsonl",
        "{\"type\":\"person\",\"fields\":{\"name\":\"Ana Pop\"}}\n{\"type\":\"note\",\"fields\":{\"text\":\"seen at the port\"}}\n",
    );
    a.cmd(&["record", "import", &case, &file.display().to_string()])
        .ok();
    let e = last(a, "record.import");
    assert_entry(&e, "collection", OPERATOR, Some(&case), None);
    assert_eq!(strings(&e["records"]).len(), 2);

    // Disclosure: a member added gets the keys; a bundle for it names the entries.
    a.add_member(&case, b, "contributor");
    assert_entry(
        &last(a, "case.member.add"),
        "disclosure",
        OPERATOR,
        Some(&case),
        Some(&pb),
    );
    let bundle = t.join("for-b.bundle").display().to_string();
    a.cmd(&[
        "bundle", "export", "--case", &case, "--for", &pb, "--out", &bundle,
    ])
    .ok();
    let e = last(a, "bundle.export");
    assert_entry(&e, "disclosure", OPERATOR, Some(&case), Some(&pb));
    let from_a = format!("{case}/{pa}/1-");
    assert!(
        strings(&e["entries"])
            .iter()
            .any(|r| r.starts_with(&from_a)),
        "entries named: {e}"
    );
    // The receiver records a collection from A, naming entries and records.
    b.cmd(&["bundle", "import", &bundle]).ok();
    let e = last(b, "bundle.import");
    assert_entry(&e, "collection", OPERATOR, Some(&case), Some(&pa));
    assert!(
        strings(&e["entries"])
            .iter()
            .any(|r| r.starts_with(&from_a)),
        "{e}"
    );
    assert!(strings(&e["records"]).contains(&p), "{e}");

    // A failed unlock is recorded (at the next unlock).
    let wrong = a.cmd_env(&["case", "list"], &[("CASESYNC_PASSPHRASE", "not-it")]);
    assert!(!wrong.status.success());
    a.cmd(&["case", "list"]).ok();
    let e = last(a, "node.unlock");
    assert_eq!(e["outcome"], "refused", "{e}");
    assert_eq!(e["category"], "access", "{e}");

    // A case that requires a justification refuses actions without one, and
    // the refusal is audited; with one, it is recorded with the action.
    let strict = a
        .cmd(&[
            "case",
            "create",
            "--title",
            "Op Sentinel",
            "--require-justification",
        ])
        .ok()
        .trim()
        .to_string();
    let refused = a
        .cmd(&[
            "record", "add", &strict, "--type", "note", "--field", "text=x",
        ])
        .err();
    assert!(refused.contains("requires a justification"), "{refused}");
    let e = last(a, "record.add");
    assert_eq!(e["outcome"], "refused", "{e}");
    assert_eq!(e["case"], strict.as_str(), "{e}");
    assert!(
        e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("justification")
    );
    let refused = a.cmd(&["record", "list", &strict]).err();
    assert!(refused.contains("--justification"), "{refused}");
    assert_eq!(last(a, "record.list")["outcome"], "refused");
    let n = a
        .cmd(&[
            "--justification",
            "court order 2026/114",
            "record",
            "add",
            &strict,
            "--type",
            "note",
            "--field",
            "text=x",
        ])
        .ok()
        .trim()
        .to_string();
    let e = last(a, "record.add");
    assert_entry(&e, "collection", OPERATOR, Some(&strict), None);
    assert_eq!(e["justification"], "court order 2026/114");
    assert_eq!(strings(&e["records"]), vec![n]);

    // Membership and trust operations.
    a.cmd(&[
        "case",
        "member",
        "remove",
        &case,
        &pb,
        "--reason",
        "left the JIT",
    ])
    .ok();
    assert_entry(
        &last(a, "case.member.remove"),
        "membership",
        OPERATOR,
        Some(&case),
        Some(&pb),
    );
    a.cmd(&["trust", "revoke", &pb, "--reason", "laptop seized"])
        .ok();
    assert_entry(&last(a, "trust.revoke"), "trust", OPERATOR, None, Some(&pb));

    // Filters.
    let only = audit(a, &["--case", &strict]);
    assert!(!only.is_empty() && only.iter().all(|e| e["case"] == strict.as_str()));
    let smith = audit(a, &["--by", "j.smith"]);
    assert_eq!(smith.len(), 1, "{smith:?}");
    assert_eq!(smith[0]["action"], "record.edit");
    let looked = audit(a, &["--action", "consultation"]);
    assert!(looked.len() >= 2 && looked.iter().all(|e| e["category"] == "consultation"));
    assert!(audit(a, &["--since", "2999-01-01T00:00:00+00:00"]).is_empty());
    assert!(audit(a, &["--since", "2000-01-01T00:00:00Z"]).len() > 20);

    for n in [a, b] {
        let v = n.json(&["audit", "verify"]);
        assert_eq!(v["ok"], true, "{v}");
    }
    // At rest, entries are sealed: the operator and the record ids appear in
    // no audit row.
    let db = a.db();
    let mut s = db.prepare("SELECT sealed FROM audit_log").unwrap();
    let rows: Vec<Vec<u8>> = s
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.len() > 20);
    for r in &rows {
        for needle in [b"j.smith".as_slice(), p.as_bytes(), b"record.show"] {
            assert!(
                find_bytes(r, needle).is_none(),
                "an audit row holds plaintext"
            );
        }
    }
}

#[test]
fn a_sync_leaves_a_disclosure_on_the_sender_and_a_collection_on_the_receiver() {
    let t = TestDir::new("audit_sync");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let (pa, pb) = (peer_of(a), peer_of(b));
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    let r = a.add(&case, "person", &[("name", "Marin Dobre")], &[]);
    let sa = Server::start(a, &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    drop(sa);
    let range = format!("{case}/{pa}/1-1");
    let sent: Vec<Value> = audit(a, &["--action", "sync.send"])
        .into_iter()
        .filter(|e| e["peer"] == pb.as_str() && e["case"] == case.as_str())
        .collect();
    assert!(
        sent.iter().any(|e| strings(&e["entries"]).contains(&range)),
        "no disclosure to B naming A's entry: {sent:?}"
    );
    assert!(sent.iter().all(|e| e["category"] == "disclosure"));
    let got = last(b, "sync.receive");
    assert_entry(&got, "collection", OPERATOR, Some(&case), Some(&pa));
    assert_eq!(strings(&got["entries"]), vec![range]);
    assert_eq!(strings(&got["records"]), vec![r]);
    for n in [a, b] {
        assert_eq!(n.json(&["audit", "verify"])["ok"], true);
    }
}

#[test]
fn an_edited_deleted_reordered_or_truncated_audit_log_fails_verify_at_the_place() {
    let t = TestDir::new("audit_tamper");
    let a = t.node("a");
    a.init("uk-east", "ROCU East", "GB");
    let case = a.create_case("Op Lantern");
    for i in 0..4 {
        let r = a.add(&case, "note", &[("text", &format!("note {i}"))], &[]);
        a.cmd(&["record", "show", &r]).ok();
    }
    let v = a.json(&["audit", "verify"]);
    assert_eq!(v["ok"], true, "{v}");
    let n = v["entries"].as_u64().unwrap();
    assert!(n >= 9, "{v}");
    assert!(a.cmd(&["audit", "verify"]).ok().contains("verified"));

    // No code path may edit or delete: the store refuses it.
    for sql in [
        "DELETE FROM audit_log WHERE seq = 1",
        "UPDATE audit_log SET sealed = X'00' WHERE seq = 1",
    ] {
        let e = a.db().execute(sql, []).unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
    }

    // Someone with the sqlite3 tool drops the guards and edits rows.
    let cases = [
        ("deleted", "DELETE FROM audit_log WHERE seq = 3".to_string(), 3),
        (
            "edited",
            "UPDATE audit_log SET sealed = X'00' || substr(sealed, 2) WHERE seq = 4".into(),
            4,
        ),
        (
            "reordered",
            "UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 5; UPDATE audit_log SET seq = 5 WHERE seq = -1".into(),
            2,
        ),
        (
            "truncated",
            format!("DELETE FROM audit_log WHERE seq > {}", n - 2),
            n - 1,
        ),
        // Issue 14, finding 10: the last two entries deleted and the head
        // rewritten to name the entry before them (its seq and link are on
        // record); the head's signature cannot be forged.
        (
            "truncated with the head rewound",
            format!(
                "DELETE FROM audit_log WHERE seq > {k}; \
                 UPDATE meta SET value = (SELECT CAST(X'{k:016x}' || hash || signature AS BLOB) FROM audit_log WHERE seq = {k}) WHERE key = 'audit_head'",
                k = n - 2
            ),
            n - 2,
        ),
    ];
    for (what, sql, at) in cases {
        let dir = t.join(what);
        copy_dir(&a.dir, &dir);
        let c = Node::at(&dir);
        sqlite3(
            &c.db_path(),
            &format!("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; {sql};"),
        );
        let err = c.cmd(&["audit", "verify"]).err();
        assert!(
            err.contains(&format!("failed at entry {at}:")),
            "{what}: {err}"
        );
        let v = c.cmd(&["audit", "verify", "--json"]);
        assert!(!v.status.success());
        eprintln!("{what}: {}", err.trim());
    }
    // The untouched original still verifies.
    assert_eq!(a.json(&["audit", "verify"])["ok"], true);
}

/// Issue 14, finding 10: a row put into `audit_pending` by hand (no passphrase
/// needed) is folded at the next unlock, but as unauthenticated, with neither
/// its claimed time nor its claimed operator taken as the entry's; and a real
/// failed unlock names its operator nowhere in the store before it is folded.
#[test]
fn a_pending_event_written_by_hand_is_folded_as_unauthenticated() {
    let t = TestDir::new("audit_pending");
    let a = t.node("a");
    a.init("uk-east", "ROCU East", "GB");
    let wrong = a.cmd_env(
        &["--operator", "Marker-Operator-7731", "case", "list"],
        &[("CASESYNC_PASSPHRASE", "not-it")],
    );
    assert!(!wrong.status.success());
    let raw = std::fs::read(a.db_path()).unwrap();
    assert!(
        find_bytes(&raw, b"Marker-Operator-7731").is_none(),
        "the failed unlock's operator is readable in the store"
    );
    sqlite3(
        &a.db_path(),
        r#"INSERT INTO audit_pending (entry) VALUES ('{"time":"2020-01-01T00:00:00+00:00","operator":"chief.constable","detail":"all fine"}')"#,
    );
    a.cmd(&["case", "list"]).ok();
    let unlocks = audit(&a, &["--action", "node.unlock"]);
    assert_eq!(unlocks.len(), 2, "{unlocks:#?}");
    let real = &unlocks[0];
    assert_eq!(real["operator"], "Marker-Operator-7731", "{real}");
    assert!(str_of(real, "detail").contains("unauthenticated"), "{real}");
    let forged = &unlocks[1];
    assert!(
        str_of(forged, "detail").contains("unauthenticated"),
        "{forged}"
    );
    assert_ne!(forged["operator"], "chief.constable", "{forged}");
    assert!(!str_of(forged, "time").starts_with("2020"), "{forged}");
    assert_eq!(a.json(&["audit", "verify"])["ok"], true);
}

/// Issue 14, finding 10: nodes show each other their signed audit heads with
/// every sync, so a node whose audit log goes back (entries cut off with an
/// old copy of the head, or a restore from an older copy) is noticed by its
/// peers, and recorded in their audit logs.
#[test]
fn a_peers_rewound_audit_log_is_noticed_by_another_node() {
    let t = TestDir::new("audit_peer_head");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    let sb = Server::start(b, &[]);
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    // A copy of A's data dir, then more audited work on A, seen by B.
    let copy = t.join("uk-east-copy");
    copy_dir(&a.dir, &copy);
    let r = a.add(&case, "note", &[("text", "after the copy")], &[]);
    a.cmd(&["record", "show", &r]).ok();
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    assert!(audit(b, &["--action", "audit.peer_rewound"]).is_empty());
    // A's data dir is put back to the copy: its audit log is shorter.
    std::fs::remove_dir_all(&a.dir).unwrap();
    copy_dir(&copy, &a.dir);
    assert_eq!(
        a.json(&["audit", "verify"])["ok"],
        true,
        "the copy verifies alone"
    );
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    let seen = audit(b, &["--action", "audit.peer_rewound"]);
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["peer"], peer_of(a).as_str(), "{}", seen[0]);
    assert!(
        str_of(&seen[0], "detail").contains("went back"),
        "{}",
        seen[0]
    );
    assert!(sb.log().contains("went back"), "{}", sb.log());
}
