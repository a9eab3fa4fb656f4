//! Adding a member by its node card, and the handling rules (releasable_to)
//! that can forbid it.

use serde_json::Value;

use crate::util::{Node, TestDir, peer_of, str_of};

#[track_caller]
fn members(node: &Node, case: &str) -> Vec<Value> {
    let shown = node.json(&["case", "show", case]);
    shown["members"]
        .as_array()
        .unwrap_or_else(|| panic!("case show has no members array: {shown}"))
        .clone()
}

#[test]
fn member_add_by_card() {
    let t = TestDir::new("members");
    let a = t.node("a");
    let b = t.node("b");
    let a_peer = a.init("uk-east", "ROCU East", "GB");
    let b_peer = b.init("ro-police", "Poliția Română", "RO");
    let card = b.cmd(&["id", "--card"]).ok().trim().to_string();
    assert!(card.starts_with("cscard1."), "{card}");
    let case = a.create_case("Op Lantern");

    let out = a.json(&[
        "case",
        "member",
        "add",
        &case,
        &card,
        "--role",
        "contributor",
    ]);
    assert_eq!(out["peer_id"], b_peer.as_str(), "member add --json: {out}");
    assert_eq!(out["role"], "contributor", "member add --json: {out}");

    let m = members(&a, &case);
    assert_eq!(m.len(), 2, "A and B: {m:#?}");
    let mb = m
        .iter()
        .find(|x| x["peer_id"] == b_peer.as_str())
        .unwrap_or_else(|| panic!("B ({b_peer}) is not listed: {m:#?}"));
    assert_eq!(mb["role"], "contributor", "{mb}");
    assert_eq!(mb["name"], "ro-police", "{mb}");
    assert_eq!(mb["org"], "Poliția Română", "{mb}");
    assert_eq!(mb["country"], "RO", "{mb}");
    let ma = m
        .iter()
        .find(|x| x["peer_id"] == a_peer.as_str())
        .unwrap_or_else(|| panic!("A ({a_peer}) is not listed: {m:#?}"));
    assert_eq!(ma["role"], "lead", "{ma}");
    let plain = a.cmd(&["case", "show", &case]).ok();
    assert!(
        plain.contains(&b_peer) && plain.contains("contributor"),
        "`case show` should list B:\n{plain}"
    );

    // Each refusal: one error line, and the member list is unchanged.
    let refused = |who: &str, role: &str, expect: &[&str]| {
        let before = a.state(&[&case]);
        let out = a.cmd(&["case", "member", "add", &case, who, "--role", role]);
        let cmdline = out.cmdline.clone();
        let line = out.error_line();
        for e in expect {
            assert!(line.contains(e), "`{cmdline}`: expected {e:?} in: {line}");
        }
        assert!(before == a.state(&[&case]), "`{cmdline}` changed the store");
        line
    };
    refused(&card, "observer", &["already a member"]);
    refused(&card, "contributor", &["already a member"]);
    refused(&b_peer, "observer", &["card"]);
    refused("cscard1.AAAA", "observer", &["card"]);
    refused("garbage", "observer", &["card"]);
    // A card whose signed content was altered (one character flipped in the
    // middle of its base64) must not be accepted as B or anyone.
    let mut forged: Vec<char> = card.chars().collect();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    refused(&forged, "observer", &["card"]);
    // A's own card: A is already the lead.
    let a_card = a.cmd(&["id", "--card"]).ok().trim().to_string();
    refused(&a_card, "observer", &["already a member"]);
    assert_eq!(members(&a, &case).len(), 2);

    // Handling: B (RO) is a member, so a record releasable to GB only cannot
    // enter the case; one releasable to GB and RO can.
    let before = a.state(&[&case]);
    let line = a
        .cmd(&[
            "record",
            "add",
            &case,
            "--type",
            "person",
            "--field",
            "name=Victim A",
            "--releasable-to",
            "GB",
        ])
        .error_line();
    assert!(line.contains("releasable"), "{line}");
    assert!(
        before == a.state(&[&case]),
        "the refused record was written"
    );
    let ok = a.add(
        &case,
        "person",
        &[("name", "Victim A")],
        &["--releasable-to", "GB,RO"],
    );
    // Releasable to B's organisation by name works too.
    a.add(
        &case,
        "note",
        &[("text", "for the Romanian police")],
        &["--releasable-to", "GB,Poliția Română"],
    );
    assert_eq!(
        a.show(&ok)["releasable_to"],
        serde_json::json!(["GB", "RO"])
    );
    // The import path applies the same rule.
    let file = t.write(
        "gb-only.jsonl",
        "{\"type\":\"note\",\"fields\":{\"text\":\"x\"},\"releasable_to\":[\"GB\"]}\n",
    );
    let before = a.state(&[&case]);
    let line = a
        .cmd(&["record", "import", &case, &file.display().to_string()])
        .error_line();
    assert!(
        line.contains("releasable") && line.contains("line 1"),
        "{line}"
    );
    assert!(
        before == a.state(&[&case]),
        "the refused import was written"
    );

    // A case holding a GB-only record cannot take B on.
    let other = a.create_case("UK only");
    let gb_only = a.add(
        &other,
        "person",
        &[("name", "Victim B")],
        &["--releasable-to", "GB"],
    );
    let before = a.state(&[&other]);
    let line = a
        .cmd(&["case", "member", "add", &other, &card, "--role", "observer"])
        .error_line();
    assert!(line.contains("releasable"), "{line}");
    assert!(
        line.contains(&gb_only),
        "the error should name the record: {line}"
    );
    assert!(
        before == a.state(&[&other]),
        "the refused member was written"
    );
    let m = members(&a, &other);
    assert_eq!(m.len(), 1, "only A: {m:#?}");
    assert_eq!(str_of(&m[0], "peer_id"), a_peer);
}

/// Issue 14, finding 3a: a node re-signs its own card with another country and
/// organisation. Membership and handling go by the card enrolled in the
/// registry, so the forged labels open no record releasable elsewhere.
#[test]
fn a_card_re_signed_with_other_labels_does_not_pass_releasable_to() {
    let t = TestDir::new("members_forged_card");
    let nodes = crate::network::federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Lantern");
    a.add(
        &case,
        "person",
        &[("name", "Victim A")],
        &["--releasable-to", "GB"],
    );
    // B, holding its own keys, signs a card that says it is a GB unit.
    let hn = casesync_node::DataDir::new(&b.dir)
        .unlock(crate::util::PASSPHRASE.as_bytes())
        .unwrap();
    let forged = casesync_schema::NodeCard::issue(&hn.keys, "uk-east-2", "Unit uk-east", "GB", 1)
        .unwrap()
        .to_text();
    let before = a.state(&[&case]);
    let line = a
        .cmd(&[
            "case", "member", "add", &case, &forged, "--role", "observer",
        ])
        .error_line();
    assert!(
        line.contains("releasable") && line.contains("RO"),
        "the enrolled card (RO) decides: {line}"
    );
    assert!(before == a.state(&[&case]), "the refused member was added");
    // A record releasable to GB only still cannot enter once B (RO, as
    // enrolled) is a member by its forged card's key.
    let case2 = a.create_case("Op Beacon");
    a.cmd(&[
        "case", "member", "add", &case2, &forged, "--role", "observer",
    ])
    .ok();
    let m = members(a, &case2);
    let mb = m
        .iter()
        .find(|x| x["peer_id"] == peer_of(b).as_str())
        .unwrap_or_else(|| panic!("B is not a member: {m:#?}"));
    assert_eq!(mb["country"], "RO", "the member is shown as enrolled: {mb}");
    let line = a
        .cmd(&[
            "record",
            "add",
            &case2,
            "--type",
            "note",
            "--field",
            "text=GB eyes only",
            "--releasable-to",
            "GB",
        ])
        .error_line();
    assert!(line.contains("releasable"), "{line}");
}

/// Issue 14, finding 3b: a contributor writes a record releasable to GB only
/// while the lead, not knowing of it, adds an NL node. The record (and what
/// its author wrote after it) never reaches the NL node: not by sync, not in
/// a bundle made for it, and not from an open bundle either (the NL node
/// refuses to keep it). The lead's audit log says what was withheld.
#[test]
fn a_record_never_reaches_a_node_outside_its_releasable_to() {
    let t = TestDir::new("members_handling_race");
    let nodes = crate::network::federation(
        &t,
        &[("uk-east", "GB"), ("uk-west", "GB"), ("nl-police", "NL")],
    );
    let (a, b, n) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    let sa = crate::network::Server::start(a, &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr]).ok();
    // Apart: B writes a GB-only record, then an open one; A adds NL.
    let gb_only = b.add(
        &case,
        "person",
        &[("name", "Witness W")],
        &["--releasable-to", "GB"],
    );
    let after = b.add(&case, "note", &[("text", "written after it")], &[]);
    a.add_member(&case, n, "observer");
    let from_a = a.add(&case, "note", &[("text", "from the lead")], &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr]).ok();
    assert!(a.cmd(&["record", "show", &gb_only]).status.success());
    n.cmd(&["sync", "--once", "--peer", &sa.addr]).ok();
    assert!(
        n.cmd(&["record", "show", &from_a]).status.success(),
        "N has the case"
    );
    for r in [&gb_only, &after] {
        assert!(
            !n.cmd(&["record", "show", r]).status.success(),
            "{r} reached a node outside its releasable_to"
        );
    }
    let withheld = a.json(&["audit", "list", "--action", "sync.send"]);
    assert!(
        withheld
            .to_string()
            .contains("not releasable to the receiver"),
        "A's audit names what it withheld: {withheld}"
    );
    // A bundle made for N leaves it out too.
    let for_n = t.join("for-n.bundle");
    a.cmd(&[
        "bundle",
        "export",
        "--out",
        for_n.to_str().unwrap(),
        "--for",
        &peer_of(n),
    ])
    .ok();
    n.cmd(&["bundle", "import", for_n.to_str().unwrap()]).ok();
    assert!(!n.cmd(&["record", "show", &gb_only]).status.success());
    // An open bundle carries it, but N does not keep it.
    let open = t.join("open.bundle");
    a.cmd(&["bundle", "export", "--out", open.to_str().unwrap()])
        .ok();
    let out = n.json(&["bundle", "import", open.to_str().unwrap()]);
    assert!(
        out.to_string().contains("not to this node"),
        "N refuses the record: {out}"
    );
    assert!(!n.cmd(&["record", "show", &gb_only]).status.success());
    drop(sa);
}
