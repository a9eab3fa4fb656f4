//! Handling codes (issue 19): every record carries one; an H2 record of one
//! agency reaches a member of another added later only with the
//! originator's signed consent; no bundle for any holder or selector export
//! carries another agency's H2 records; only the originator regrades a
//! record, and every member takes the regrade.

use serde_json::Value;

use crate::network::{Server, eventually, federation};
use crate::util::{Node, TestDir, peer_of};

/// How many parts of record `rid`'s changes `n`'s stored entries hold
/// (withheld parts are listed in an entry's head, their bytes absent).
fn parts_held(n: &Node, case: &str, rid: &str) -> usize {
    use casesync_schema::entry::{LogEntry, record_tag};
    let tag = record_tag(&case.parse().unwrap(), &rid.parse().unwrap());
    let db = n.db();
    let mut s = db.prepare("SELECT bytes FROM entries").unwrap();
    let all: Vec<Vec<u8>> = s
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    all.iter()
        .map(|b| LogEntry::decode_verified(b).unwrap())
        .filter(|e| e.holds(&tag))
        .count()
}

/// The id of the record of `case` on `n` whose `name` or `text` field is
/// `label`, if `n` holds it.
fn id_of(n: &Node, case: &str, label: &str) -> Option<String> {
    n.try_list(case)?
        .iter()
        .find(|r| r["fields"]["name"] == label || r["fields"]["text"] == label)
        .map(|r| r["id"].as_str().unwrap().to_string())
}

#[test]
fn an_h2_record_reaches_a_later_member_only_with_its_originators_consent() {
    let t = TestDir::new("handling_h2");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);

    // B shares an open record, then one under H2 (the members then, A,
    // have its consent from that moment), then H3 with its conditions.
    let open = b.add(&case, "person", &[("name", "Open Person")], &[]);
    let secret = b.add(
        &case,
        "person",
        &[("name", "Source Person")],
        &["--handling", "H2", "--grading", "3x5x2:2BP"],
    );
    let shown = b.cmd(&["record", "show", &secret]).ok();
    assert!(
        shown.contains(
            "handling:      H2 (no further dissemination without the originator's permission)"
        ),
        "{shown}"
    );
    let bad = b
        .cmd(&[
            "record",
            "add",
            &case,
            "--type",
            "note",
            "--field",
            "text=x",
            "--handling",
            "H3",
        ])
        .error_line();
    assert!(bad.contains("H3 needs its conditions"), "{bad}");
    let h3 = b.add(
        &case,
        "note",
        &[("text", "Conditional note")],
        &["--handling", "H3:not for court without DS Reid"],
    );
    assert_eq!(b.show(&h3)["handling"], "H3:not for court without DS Reid");
    assert_eq!(
        b.show(&open)["handling"],
        "H0",
        "a record without one is H0"
    );
    eventually(60, "A holds B's three records", || {
        a.try_list(&case).is_some_and(|l| l.len() == 3)
    });
    assert_eq!(a.show(&secret)["handling"], "H2");
    let listed = a.cmd(&["record", "list", &case]).ok();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&secret) && l.contains("  H2  ")),
        "{listed}"
    );

    // Only B regrades its record: A is refused, here and (by a forged
    // change) on every member (tests/hostile_peer.rs).
    let refused = a
        .cmd(&[
            "record",
            "regrade",
            &secret,
            "--handling",
            "H0",
            "--reason",
            "mine now",
        ])
        .error_line();
    assert!(refused.contains("only its originator"), "{refused}");
    let no_reason = b
        .cmd(&[
            "record",
            "regrade",
            &secret,
            "--grading",
            "3x5x2:1AP",
            "--reason",
            " ",
        ])
        .error_line();
    assert!(no_reason.contains("--reason"), "{no_reason}");

    // Exports leaving the case: A may not carry B's H2 record away; B may.
    let bundle = t.join("any.bundle");
    let line = a
        .cmd(&[
            "bundle",
            "export",
            "--out",
            bundle.to_str().unwrap(),
            "--case",
            &case,
        ])
        .error_line();
    assert!(
        line.contains("handling code H2")
            && line.contains(&secret)
            && line.contains("Unit ro-police"),
        "{line}"
    );
    assert!(!bundle.exists());
    let sel = t.join("selectors.json");
    let line = a
        .cmd(&[
            "--justification",
            "request 2026/118",
            "selectors",
            "export",
            "--case",
            &case,
            "--for",
            "Unit europol",
            "--out",
            sel.to_str().unwrap(),
        ])
        .error_line();
    assert!(line.contains("handling code H2"), "{line}");
    let own = t.join("own.bundle");
    b.cmd(&[
        "bundle",
        "export",
        "--out",
        own.to_str().unwrap(),
        "--case",
        &case,
    ])
    .ok();

    // C joins: A is told what stays away from it.
    let added = a.json(&[
        "case",
        "member",
        "add",
        &case,
        &peer_of(c),
        "--role",
        "contributor",
    ]);
    assert_eq!(
        added["h2_held_back"],
        serde_json::json!([{"org": "Unit ro-police", "records": 1}]),
        "{added}"
    );
    let sc = Server::start(c, &[&sa.addr, &sb.addr]);
    // A writes after C joined: once C holds it, C has synced with both.
    let later = a.add(&case, "note", &[("text", "Lead note")], &[]);
    // C gets the rest of the case, what B wrote after the H2 record
    // included (every entry reaches it, without that record's parts).
    eventually(60, "C holds everything but the H2 record", || {
        ["Lead note", "Open Person", "Conditional note"]
            .iter()
            .all(|l| id_of(c, &case, l).is_some())
    });
    // Whatever the rounds, the H2 record stays away: after each of three
    // more notes of A's, and an edit of it by A, reached C, C still lacks it.
    a.cmd(&["record", "edit", &secret, "--field", "alias=Marker Alias"])
        .ok();
    for i in 0..3 {
        let text = format!("Lead note {i}");
        a.add(&case, "note", &[("text", &text)], &[]);
        eventually(60, "C holds A's next note", || {
            id_of(c, &case, &text).is_some()
        });
        assert_eq!(id_of(c, &case, "Source Person"), None);
    }
    assert_eq!(
        parts_held(c, &case, &secret),
        0,
        "C holds none of its parts"
    );
    assert_eq!(
        parts_held(a, &case, &secret),
        2,
        "A holds B's creation and its own edit"
    );
    let status = c.json(&["status"]);
    assert_eq!(
        status["cases"][0]["waiting"], 0,
        "nothing waits on what is withheld: {status}"
    );
    assert_eq!(status["cases"][0]["withheld_parts"], 2, "{status}");
    assert!(
        c.cmd(&["record", "show", &secret])
            .error_line()
            .contains("unknown record")
    );
    assert!(c.show(&later)["fields"]["text"] == "Lead note");
    // Only B consents, once.
    let line = a
        .cmd(&[
            "case",
            "consent",
            &case,
            &peer_of(c),
            "--reason",
            "JIT annex",
        ])
        .ok();
    assert!(
        line.contains("0 record(s)"),
        "A has no H2 records of its own: {line}"
    );
    let consent = b.json(&[
        "case",
        "consent",
        &case,
        &peer_of(c),
        "--reason",
        "Europol joined the JIT",
    ]);
    assert_eq!(consent["h2_records"], 1, "{consent}");
    let again = b
        .cmd(&["case", "consent", &case, &peer_of(c), "--reason", "again"])
        .error_line();
    assert!(again.contains("already"), "{again}");
    eventually(
        60,
        "C holds the H2 record, with A's edit, after B's consent",
        || {
            id_of(c, &case, "Source Person").is_some()
                && c.show(&secret)["fields"]["alias"] == "Marker Alias"
        },
    );
    assert_eq!(c.show(&secret)["handling"], "H2");
    assert_eq!(c.show(&secret), a.show(&secret));
    assert_eq!(parts_held(c, &case, &secret), 2);
    assert_eq!(c.json(&["status"])["cases"][0]["withheld_parts"], 0);
    let report = c.json(&["log", "verify"]);
    assert_eq!(report["failed"], 0, "{report}");

    // B regrades: every member takes it; the audit log has the reason.
    let v = b.json(&[
        "record",
        "regrade",
        &secret,
        "--handling",
        "H1",
        "--grading",
        "3x5x2:1AP",
        "--reason",
        "source cleared for wider use",
    ]);
    assert_eq!(v["handling"], "H1", "{v}");
    eventually(60, "A and C take B's regrade", || {
        [a, c].iter().all(|n| {
            let v = n.show(&secret);
            v["handling"] == "H1" && v["grading"] == "3x5x2:1AP"
        })
    });
    let trail = b.json(&["audit", "list", "--action", "record.regrade"]);
    let details: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        details.iter().any(|d| d.contains("handling H2 -> H1")
            && d.contains("grading 3x5x2:2BP -> 3x5x2:1AP")
            && d.contains("source cleared for wider use")),
        "{trail}"
    );
    let trail = b.json(&["audit", "list", "--action", "case.consent"]);
    let outcomes: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["ok", "refused"], "{trail}");
    let history = c.json(&["record", "history", &secret]);
    let last: &Value = history.as_array().unwrap().last().unwrap();
    assert_eq!(last["handling"], "H1", "{history}");
    drop((sa, sb, sc));
}

/// Provenance: each partner holding a record reports to its originator,
/// signed, since when it holds it and how often (by how many people) it
/// was read there; only the originator shows it.
#[test]
fn the_originator_sees_which_partners_hold_its_record_and_how_often_it_was_read() {
    let t = TestDir::new("provenance");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, c, "observer");
    let r = a.add(&case, "person", &[("name", "Shared Person")], &[]);
    let other = a.add(&case, "person", &[("name", "Unread Person")], &[]);
    let fast = [("CASESYNC_PROVENANCE_SECS", "1")];
    let sa = Server::start_env(a, &[], &fast);
    let sb = Server::start_env(b, &[&sa.addr], &fast);
    let sc = Server::start_env(c, &[&sa.addr], &fast);
    eventually(60, "B and C hold A's records", || {
        [b, c]
            .iter()
            .all(|n| id_of(n, &case, "Unread Person").is_some())
    });
    for (n, who) in [(b, "alice"), (b, "alice"), (b, "bob"), (c, "carol")] {
        n.cmd(&["--operator", who, "record", "show", &r]).ok();
    }
    b.cmd(&["--operator", "alice", "record", "history", &r])
        .ok();
    let holder = |p: &Value, n: &Node| -> Value {
        p["holders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["node"] == peer_of(n).as_str())
            .cloned()
            .unwrap_or(Value::Null)
    };
    eventually(60, "A has B's and C's reports with their reads", || {
        let p = a.json(&["record", "provenance", &r]);
        holder(&p, b)["reads"] == 4 && holder(&p, c)["reads"] == 1
    });
    let p = a.json(&["record", "provenance", &r]);
    assert_eq!(holder(&p, a)["state"], "originator", "{p}");
    for (n, readers, org) in [(b, 2, "Unit ro-police"), (c, 1, "Unit europol")] {
        let h = holder(&p, n);
        assert_eq!(h["state"], "holds", "{p}");
        assert_eq!(h["readers"], readers, "{p}");
        assert_eq!(h["org"], org, "{p}");
        assert!(
            h["since"].as_str().is_some_and(|s| s.starts_with("20")),
            "{p}"
        );
        assert!(h["report"].as_str().is_some_and(|s| s.len() == 16), "{p}");
    }
    // A record held but not read: held, no reads.
    let p = a.json(&["record", "provenance", &other]);
    assert_eq!(holder(&p, b)["reads"], 0, "{p}");
    // Only the originator keeps provenance.
    let line = b.cmd(&["record", "provenance", &r]).error_line();
    assert!(line.contains("its provenance is kept there"), "{line}");
    // Both sides audit it.
    let sent = b.json(&["audit", "list", "--action", "provenance.send"]);
    assert!(!sent.as_array().unwrap().is_empty(), "{sent}");
    let got = a.json(&["audit", "list", "--action", "provenance.receive"]);
    assert!(
        got.as_array()
            .unwrap()
            .iter()
            .any(|e| e["outcome"] == "ok" && e["peer"] == peer_of(c).as_str()),
        "{got}"
    );
    drop((sa, sb, sc));
}

/// An enrolled member that signs what it likes cannot file receipts of a
/// record in a case it does not share, of a record the node did not make,
/// or in another node's name; a report for another node is refused, and a
/// forged signature costs the connection.
#[test]
fn a_partner_cannot_file_receipts_it_has_no_standing_for() {
    use crate::hostile_peer::{connect, local};
    use casesync_node::net::protocol::{SyncRequest, SyncResponse};
    use casesync_node::provenance::{Item, REPORT_CONTEXT, Report};
    let t = TestDir::new("provenance_hostile");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("rogue", "NL")],
    );
    let (a, b, h) = (&nodes[0], &nodes[1], &nodes[2]);
    let x = a.create_case("X");
    a.add_member(&x, b, "contributor");
    a.add_member(&x, h, "contributor");
    let y = a.create_case("Y");
    a.add_member(&y, b, "contributor");
    let in_x = a.add(&x, "person", &[("name", "In X")], &[]);
    let in_y = a.add(&y, "person", &[("name", "In Y")], &[]);
    let sa = Server::start(a, &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    let of_b = b.add(&x, "person", &[("name", "B's own")], &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    let (hn, federation) = crate::hostile_peer::as_member(h);
    let item = |case: &str, record: &str| Item {
        case: case.to_string(),
        record: record.to_string(),
        stored_ms: 1,
        reads: 5,
        readers: [("abcd".to_string(), 5)].into(),
    };
    let signed = |to: &str, items: Vec<Item>| {
        let report = serde_json::to_vec(&Report {
            to: to.to_string(),
            time: "now".into(),
            items,
        })
        .unwrap();
        let signature = hn.keys.sign(REPORT_CONTEXT, &report).to_vec();
        (report, signature)
    };
    let request = |(report, signature): (Vec<u8>, Vec<u8>)| SyncRequest::Provenance {
        federation: federation.0.to_vec(),
        report,
        signature,
    };
    let target: libp2p::PeerId = peer_of(a).parse().unwrap();
    local(async {
        let hostile = connect(&hn.keys, &sa.addr, target, federation).await;
        // One of three items stands: A's record of a case H shares.
        let r = hostile
            .ask(request(signed(
                &peer_of(a),
                vec![item(&x, &in_x), item(&y, &in_y), item(&x, &of_b)],
            )))
            .await
            .unwrap();
        assert!(
            matches!(r, SyncResponse::ProvenanceFiled { items: 1 }),
            "{r:?}"
        );
        // Signed for B: refused whole.
        let r = hostile
            .ask(request(signed(&peer_of(b), vec![item(&x, &in_x)])))
            .await
            .unwrap();
        assert!(
            matches!(&r, SyncResponse::Refused { reason } if reason.contains("another node")),
            "{r:?}"
        );
        // A signature over other bytes: a protocol violation.
        let (report, _) = signed(&peer_of(a), vec![item(&x, &in_x)]);
        let (_, other) = signed(&peer_of(a), vec![]);
        match hostile.ask(request((report, other))).await {
            Ok(SyncResponse::Refused { .. }) | Err(_) => {}
            Ok(r) => panic!("a forged report was answered {r:?}"),
        }
    });
    let p = a.json(&["record", "provenance", &in_x]);
    let rogue: Vec<&serde_json::Value> = p["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["node"] == peer_of(h).as_str())
        .collect();
    assert_eq!(rogue.len(), 1, "{p}");
    assert_eq!(rogue[0]["reads"], 5, "{p}");
    let p = a.json(&["record", "provenance", &in_y]);
    assert!(
        p["holders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["node"] != peer_of(h).as_str()),
        "{p}"
    );
    let got = a.json(&["audit", "list", "--action", "provenance.receive"]);
    let outcomes: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["peer"] == peer_of(h).as_str())
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["ok", "refused"], "{got}");
}

/// A writer that declares another agency's record H2 (to keep it from a
/// member it does not consent to) changes nothing where the record is
/// held: the declaring node did not make it, so its holders send it whole.
#[test]
fn a_writer_cannot_keep_anothers_record_away_by_declaring_it_h2() {
    use casesync_schema::control::{ControlBody, ControlOp};
    use casesync_schema::entry::record_tag;
    let t = TestDir::new("h2_false_declaration");
    let nodes = federation(&t, &[("uk-east", "GB"), ("rogue", "NL"), ("europol", "DE")]);
    let (a, h, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("X");
    a.add_member(&case, h, "contributor");
    let r = a.add(&case, "person", &[("name", "Open Record")], &[]);
    let sa = Server::start(a, &[]);
    h.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    let (hn, federation) = crate::hostile_peer::as_member(h);
    let conn = hn.store.conn();
    let case_id: casesync_schema::CaseId = case.parse().unwrap();
    let state = casesync_node::cases::load(&hn, conn, &case_id)
        .unwrap()
        .state;
    let op = ControlOp::create(
        &hn.keys,
        case_id,
        state.heads.clone(),
        1,
        ControlBody::H2 {
            records: vec![record_tag(&case_id, &r.parse().unwrap())],
            lifted: vec![],
            consents: vec![],
        },
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
    // The declaration folds (it is H's word about a tag), but A, holding
    // the record A made, does not stand by it.
    a.add_member(&case, c, "contributor");
    let added = a.json(&["case", "show", &case]);
    assert!(
        added["h2_consents"].as_array().unwrap().is_empty(),
        "{added}"
    );
    let sc = Server::start(c, &[&sa.addr]);
    eventually(60, "C holds A's record", || {
        id_of(c, &case, "Open Record").is_some()
    });
    assert_eq!(c.json(&["status"])["cases"][0]["withheld_parts"], 0);
    drop((sa, sc));
}
