//! Two leads acting at once while apart (issue 14, findings 1 and 2): their
//! control logs differ in content, not in length, and must still converge;
//! a key epoch that a node removed by the other lead can read is replaced.

use serde_json::Value;

use crate::network::{Server, eventually, federation};
use crate::util::{Node, peer_of};

/// What a member's `case show --json` says of membership and keys, without
/// the viewer's own role.
fn control_state(n: &Node, case: &str) -> Value {
    let mut v = n.json(&["case", "show", case]);
    let o = v.as_object_mut().expect("case show --json is an object");
    for k in [
        "role",
        "records",
        "entries",
        "title",
        "require_justification",
    ] {
        o.remove(k);
    }
    v
}

/// The members' PeerIds in a `case show --json`, sorted.
pub(crate) fn members_of(v: &Value) -> Vec<String> {
    let mut m: Vec<String> = v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["peer_id"].as_str().unwrap_or_default().to_string())
        .collect();
    m.sort();
    m
}

/// Who can read the newest key epoch, by PeerId, sorted.
pub(crate) fn readers_of(v: &Value) -> Vec<String> {
    let mut readers: Vec<String> = v["key_epoch_readers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_str().unwrap_or_default().to_string())
        .collect();
    readers.sort();
    readers
}

/// The invariant after a merge is put into effect: the newest key epoch is
/// readable by current members only, and by every one of them.
#[track_caller]
fn newest_epoch_is_members_only(v: &Value) {
    assert_eq!(
        readers_of(v),
        members_of(v),
        "newest epoch readers vs members: {v:#}"
    );
}

/// `lead` removes `who` from `case`.
fn remove(lead: &Node, case: &str, who: &Node, reason: &str) {
    lead.cmd(&[
        "case",
        "member",
        "remove",
        case,
        &peer_of(who),
        "--reason",
        reason,
    ])
    .ok();
}

/// Leads A and B, contributors C and D; B holds the case. Then, apart, A
/// removes C and B removes D: two control logs of the same length.
fn two_leads_remove_apart(t: &crate::util::TestDir) -> (Vec<Node>, String) {
    let nodes = federation(t, &[("a", "GB"), ("b", "GB"), ("c", "GB"), ("d", "GB")]);
    let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let case = a.create_case("Op Twin");
    a.add_member(&case, b, "lead");
    a.add_member(&case, c, "contributor");
    a.add_member(&case, d, "contributor");
    {
        let sa = Server::start(a, &[]);
        for n in [b, c, d] {
            n.cmd(&["sync", "--once", "--peer", &sa.addr]).ok();
        }
    }
    assert_eq!(
        control_state(a, &case),
        control_state(b, &case),
        "B holds A's case before they part"
    );
    remove(a, &case, c, "left the team");
    remove(b, &case, d, "conflict of interest");
    (nodes, case)
}

#[test]
fn concurrent_removals_by_two_leads_converge() {
    let t = crate::util::TestDir::new("concurrent_removals");
    let (nodes, case) = two_leads_remove_apart(&t);
    let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let sb = Server::start(b, &[]);
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    eventually(30, "A and B resolve the same members", || {
        members_of(&control_state(a, &case)) == members_of(&control_state(b, &case))
    });
    let members = members_of(&control_state(a, &case));
    let mut expected = vec![peer_of(a), peer_of(b)];
    expected.sort();
    assert_eq!(members, expected, "both removals stand on both leads");
    // After the rotations meet, A and B hold one control state.
    eventually(60, "A and B hold the same control log", || {
        a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
        control_state(a, &case) == control_state(b, &case)
    });
    // A writes and B reads it; B writes and A reads it: no split.
    let from_a = a.add(&case, "note", &[("text", "after the merge, from A")], &[]);
    let from_b = b.add(&case, "note", &[("text", "after the merge, from B")], &[]);
    a.cmd(&["sync", "--once", "--peer", &sb.addr]).ok();
    eventually(30, "each lead reads the other's write", || {
        a.cmd(&["record", "show", &from_b]).status.success()
            && b.cmd(&["record", "show", &from_a]).status.success()
    });
    // Neither removed node receives anything new.
    for removed in [c, d] {
        // It may sync (it is still enrolled); it gets nothing of the case.
        let _ = removed.cmd(&["sync", "--once", "--peer", &sb.addr]);
        for r in [&from_a, &from_b] {
            assert!(
                !removed.cmd(&["record", "show", r]).status.success(),
                "a removed node read {r}"
            );
        }
    }
}

/// A bundle of `case` from `from`, for `to`, as a file.
fn bundle(t: &crate::util::TestDir, from: &Node, to: &Node, case: &str, name: &str) -> String {
    let out = t.join(name);
    let out = out.to_str().expect("utf-8 path").to_string();
    from.cmd(&[
        "bundle",
        "export",
        "--out",
        &out,
        "--case",
        case,
        "--for",
        &peer_of(to),
    ])
    .ok();
    out
}

#[test]
fn an_epoch_readable_by_a_removed_node_is_rotated_after_a_merge() {
    let t = crate::util::TestDir::new("concurrent_rotation");
    let nodes = federation(
        &t,
        &[
            ("a", "GB"),
            ("b", "GB"),
            ("c", "GB"),
            ("d", "GB"),
            ("e", "GB"),
        ],
    );
    let (a, b, c, d, e) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[4]);
    let case = a.create_case("Op Twin");
    a.add_member(&case, b, "lead");
    for n in [c, d, e] {
        a.add_member(&case, n, "contributor");
    }
    for n in [b, e] {
        n.cmd(&["bundle", "import", &bundle(&t, a, n, &case, "start")])
            .ok();
    }
    // Apart, A removes C and B removes D; contributor E hears of both first.
    remove(a, &case, c, "left the team");
    remove(b, &case, d, "conflict");
    e.cmd(&["bundle", "import", &bundle(&t, a, e, &case, "a-e")])
        .ok();
    e.cmd(&["bundle", "import", &bundle(&t, b, e, &case, "b-e")])
        .ok();
    let ve = control_state(e, &case);
    assert_eq!(members_of(&ve).len(), 3, "A, B and E remain: {ve:#}");
    // Every epoch E holds can be read by C or D: E must not seal under any.
    let line = e
        .cmd(&[
            "record",
            "add",
            &case,
            "--type",
            "note",
            "--field",
            "text=too early",
        ])
        .error_line();
    assert!(line.contains("removed member"), "{line}");
    // Lead A learns of B's removal: it rotates at once, for A, B and E only.
    let out = a
        .cmd(&["bundle", "import", &bundle(&t, b, a, &case, "b-a")])
        .ok();
    assert!(out.contains("rotated"), "{out}");
    let va = control_state(a, &case);
    newest_epoch_is_members_only(&va);
    let rotations = a
        .json(&["audit", "list", "--action", "case.key.rotate"])
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(rotations, 1, "A's rotation is audited");
    // E and B take the rotation and write under it; everyone agrees.
    for n in [b, e] {
        n.cmd(&["bundle", "import", &bundle(&t, a, n, &case, "rot")])
            .ok();
        newest_epoch_is_members_only(&control_state(n, &case));
    }
    e.add(&case, "note", &[("text", "sealed after the rotation")], &[]);
    assert_eq!(control_state(a, &case), control_state(e, &case));
}
