//! Four-eyes (issue 19): under this node's policy, adding a member,
//! exporting a bundle and erasing a record need a second person. The first
//! person's attempt files a request; another approves (and it is carried
//! out, both names in the audit entry) or denies it; nobody approves their
//! own; a request expires.

use serde_json::Value;

use crate::clock::libfaketime;
use crate::network::{Server, federation};
use crate::util::{Node, TestDir, card_of, peer_of};

fn by(n: &Node, who: &str, args: &[&str]) -> crate::util::Output {
    n.cmd_env(args, &[("CASESYNC_OPERATOR", who)])
}

fn json_by(n: &Node, who: &str, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend(args);
    let out = by(n, who, &full).ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// The id of the request the refusal names.
fn filed(line: &str) -> String {
    line.split("request ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no request named: {line}"))
        .to_string()
}

#[test]
fn a_second_person_approves_denies_or_lets_a_request_expire() {
    let t = TestDir::new("approvals");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Lantern");
    let rid = a.add(&case, "person", &[("name", "Ion Popescu")], &[]);
    let p = json_by(
        a,
        "dpo",
        &[
            "approvals",
            "policy",
            "--require",
            "member-add,erase,bundle-export",
        ],
    );
    assert_eq!(p["expires_hours"], 24, "{p}");

    // Alice's member add files a request; nothing changes yet.
    let line = by(
        a,
        "alice",
        &[
            "case",
            "member",
            "add",
            &case,
            &peer_of(b),
            "--role",
            "contributor",
        ],
    )
    .error_line();
    assert!(line.contains("second person"), "{line}");
    let add = filed(&line);
    let members = |n: &Node| {
        n.json(&["case", "show", &case])["members"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(members(a), 1);
    // Not by herself.
    let own = by(a, "alice", &["approvals", "approve", &add]).error_line();
    assert!(own.contains("a second person must decide"), "{own}");
    // Bob sees it and approves: B is added, both names in the audit entry.
    let list = json_by(a, "bob", &["approvals", "list"]);
    let req = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_i64().map(|i| i.to_string()).as_deref() == Some(add.as_str()))
        .unwrap()
        .clone();
    assert_eq!(
        (req["state"].as_str(), req["requester"].as_str()),
        (Some("pending"), Some("alice")),
        "{list}"
    );
    assert!(
        req["what"].as_str().unwrap().contains("as contributor"),
        "{req}"
    );
    json_by(a, "bob", &["approvals", "approve", &add]);
    assert_eq!(members(a), 2);
    let trail = a.json(&["audit", "list", "--action", "case.member.add"]);
    let done = trail
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "ok")
        .unwrap();
    assert_eq!(
        (done["operator"].as_str(), done["approved_by"].as_str()),
        (Some("alice"), Some("bob")),
        "{trail}"
    );
    // Decided once.
    let again = by(a, "carol", &["approvals", "approve", &add]).error_line();
    assert!(again.contains("approved already"), "{again}");

    // An erasure denied stays undone, and cannot be approved after.
    let erase = filed(&by(a, "alice", &["record", "erase", &rid, "--reason", "old"]).error_line());
    by(
        a,
        "bob",
        &["approvals", "deny", &erase, "--reason", "still needed"],
    )
    .ok();
    assert_eq!(a.show(&rid)["fields"]["name"], "Ion Popescu");
    assert!(
        by(a, "carol", &["approvals", "approve", &erase])
            .error_line()
            .contains("denied already")
    );

    // A bundle export approved is written where the approver says.
    let export = filed(
        &by(
            a,
            "alice",
            &[
                "bundle",
                "export",
                "--out",
                "/nonexistent",
                "--case",
                &case,
                "--for",
                &peer_of(b),
            ],
        )
        .error_line(),
    );
    let no_out = by(a, "bob", &["approvals", "approve", &export]).error_line();
    assert!(no_out.contains("--out"), "{no_out}");
    let out = t.join("approved.bundle");
    by(
        a,
        "bob",
        &[
            "approvals",
            "approve",
            &export,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(out.metadata().unwrap().len() > 0);

    // A request waits its hours, then expires.
    let late = filed(&by(a, "alice", &["record", "erase", &rid, "--reason", "late"]).error_line());
    let lib = libfaketime();
    let expired = a
        .cmd_env(
            &["approvals", "approve", &late],
            &[
                ("CASESYNC_OPERATOR", "bob"),
                ("LD_PRELOAD", lib.to_str().unwrap()),
                ("FAKETIME", "+25h"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        )
        .error_line();
    assert!(expired.contains("expired"), "{expired}");
    assert_eq!(a.show(&rid)["fields"]["name"], "Ion Popescu");
    // With the policy off, one person is enough again.
    json_by(a, "dpo", &["approvals", "policy", "--require", "none"]);
    by(
        a,
        "alice",
        &["record", "erase", &rid, "--reason", "reviewed"],
    )
    .ok();
    assert!(
        a.cmd(&["record", "show", &rid])
            .error_line()
            .contains("unknown record")
    );
}

/// The request token at the end of a refusal under the two-admin policy.
fn request_token(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("csreq1."))
        .unwrap_or_else(|| panic!("no request token: {line}"))
        .to_string()
}

#[test]
fn two_admin_nodes_enroll_and_revoke_together_under_the_federations_policy() {
    let t = TestDir::new("approvals_federation");
    let names = [
        ("uk-east", "GB"),
        ("europol", "NL"),
        ("ro-police", "RO"),
        ("nl-police", "NL"),
        ("de-bka", "DE"),
    ];
    let nodes: Vec<Node> = names.iter().map(|(n, _)| t.node(n)).collect();
    for (n, (name, cc)) in nodes.iter().zip(names) {
        n.init(name, &format!("Unit {name}"), cc);
    }
    let (a, b, c, d, e) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[4]);
    a.cmd(&["federation", "create", "--name", "JIT"]).ok();
    // One admin node: the policy cannot go on.
    let one = a
        .cmd(&["federation", "policy", "--two-admins", "on"])
        .error_line();
    assert!(one.contains("enroll a second admin first"), "{one}");
    let tb = a
        .cmd(&["federation", "invite", &card_of(b), "--admin"])
        .ok();
    b.cmd(&["federation", "join", tb.trim()]).ok();
    assert_eq!(
        a.json(&["federation", "policy", "--two-admins", "on"])["two_admins"],
        true
    );
    assert_eq!(a.json(&["federation", "policy"])["two_admins"], true);
    // B has not seen the policy yet: alone, it enrolls E on its own node.
    b.cmd(&["federation", "invite", &card_of(e)]).ok();

    // A alone enrolls nothing: the refusal carries the request, nothing is stored.
    let line = a.cmd(&["federation", "invite", &card_of(c)]).error_line();
    assert!(line.contains("needs two admins"), "{line}");
    let enroll_c = request_token(&line);
    let listed = |n: &Node| {
        n.json(&["trust", "list"])["nodes"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(a), 2);
    // A cannot second its own request; a forged or garbled request is refused.
    let own = a.cmd(&["approvals", "approve", &enroll_c]).error_line();
    assert!(own.contains("its own statement"), "{own}");
    let mut bad = enroll_c.clone().into_bytes();
    let i = bad.len() - 10;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let forged = b
        .cmd(&["approvals", "approve", std::str::from_utf8(&bad).unwrap()])
        .error_line();
    assert!(forged.contains("does not verify"), "{forged}");
    // A non-admin node cannot second.
    let td = a.cmd(&["federation", "invite", &card_of(d)]).error_line();
    let enroll_d = request_token(&td);

    // B seconds: its join token lets C in; both statements reach A by sync.
    let done = b.json(&["approvals", "approve", &enroll_c]);
    assert_eq!(done["done"], "enrolled", "{done}");
    assert_eq!(done["peer"], peer_of(c).as_str());
    c.cmd(&["federation", "join", done["token"].as_str().unwrap()])
        .ok();
    let not_admin = c.cmd(&["approvals", "approve", &enroll_d]).error_line();
    assert!(not_admin.contains("admin"), "{not_admin}");
    let audit = b
        .json(&["audit", "list", "--action", "approval.approve"])
        .to_string();
    assert!(
        audit.contains("seconded the request of admin node uk-east"),
        "{audit}"
    );
    let sb = Server::start(b, &[]);
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    assert_eq!(listed(a), 3);
    // Once the two meet, the policy wins over B's lone enrollment, on both.
    let enrolled = |n: &Node, who: &Node| {
        n.json(&["trust", "list"])["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["peer_id"] == peer_of(who).as_str())
    };
    assert!(!enrolled(a, e));
    assert!(
        !enrolled(b, e),
        "B learnt the policy and voids its own lone statement"
    );
    assert_eq!(a.json(&["log", "verify"])["failed"], 0);

    // A revocation takes two as well; so does turning the policy off.
    let line = b
        .cmd(&["trust", "revoke", &peer_of(c), "--reason", "left the team"])
        .error_line();
    let revoke_c = request_token(&line);
    let off = a
        .cmd(&["federation", "policy", "--two-admins", "off"])
        .error_line();
    let off = request_token(&off);
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    assert_eq!(
        a.json(&["approvals", "approve", &revoke_c])["done"],
        "revoked"
    );
    let status = |n: &Node| {
        n.json(&["trust", "list"])["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["peer_id"] == peer_of(c).as_str())
            .map(|x| x["status"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(status(a).as_deref(), Some("revoked"));
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    assert_eq!(status(b).as_deref(), Some("revoked"));
    assert_eq!(b.json(&["approvals", "approve", &off])["two_admins"], false);
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    assert_eq!(a.json(&["federation", "policy"])["two_admins"], false);
    // One admin acts alone again.
    a.cmd(&["federation", "invite", &card_of(d)]).ok();
    drop(sb);
}
