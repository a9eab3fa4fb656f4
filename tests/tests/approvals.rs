//! Four-eyes (issue 19): under this node's policy, adding a member,
//! exporting a bundle and erasing a record need a second person. The first
//! person's attempt files a request; another approves (and it is carried
//! out, both names in the audit entry) or denies it; nobody approves their
//! own; a request expires.

use serde_json::Value;

use crate::clock::libfaketime;
use crate::network::federation;
use crate::util::{Node, TestDir, peer_of};

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
