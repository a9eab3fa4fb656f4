//! The federation trust registry: create, invite, join, trust list, and members
//! added by PeerId only when enrolled.

use serde_json::Value;

use crate::util::{TestDir, card_of, peer_of};

fn nodes_of(trust: &Value) -> Vec<(String, bool, String)> {
    let mut v: Vec<_> = trust["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["peer_id"].as_str().unwrap().to_string(),
                n["admin"].as_bool().unwrap(),
                n["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn create_invite_join_and_trust_list() {
    let t = TestDir::new("federation");
    let uk = t.node("uk");
    let ro = t.node("ro");
    let eu = t.node("eu");
    let stranger = t.node("stranger");
    let uk_peer = uk.init("uk-east", "ROCU East", "GB");
    let ro_peer = ro.init("ro-police", "Poliția Română", "RO");
    let eu_peer = eu.init("europol", "Europol", "NL");
    stranger.init("stranger", "Nobody", "FR");

    assert!(uk.cmd(&["trust", "list"]).err().contains("no federation"));
    let fed = uk
        .cmd(&["federation", "create", "--name", "JIT Lantern"])
        .ok()
        .trim()
        .to_string();
    assert_eq!(fed.len(), 64, "federation id is a SHA-256 hex: {fed}");
    assert!(
        uk.cmd(&["federation", "create", "--name", "again"])
            .err()
            .contains("already belongs")
    );

    let ro_token = uk
        .cmd(&["federation", "invite", &card_of(&ro)])
        .ok()
        .trim()
        .to_string();
    assert!(ro_token.starts_with("csjoin1.") && !ro_token.contains('\n'));
    assert!(
        uk.cmd(&["federation", "invite", &card_of(&ro)])
            .err()
            .contains("already enrolled")
    );
    let eu_token = uk
        .cmd(&["federation", "invite", &card_of(&eu), "--admin"])
        .ok()
        .trim()
        .to_string();

    // A token only enrolls the node it was made for.
    assert!(
        stranger
            .cmd(&["federation", "join", &ro_token])
            .err()
            .contains("does not enroll this node")
    );
    // A tampered token is refused whole.
    let mut bad = ro_token.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let e = ro
        .cmd(&["federation", "join", std::str::from_utf8(&bad).unwrap()])
        .err();
    assert!(e.contains("join token"), "{e}");
    assert!(
        ro.cmd(&["federation", "join", "hello"])
            .err()
            .contains("join token")
    );

    let joined = ro.json(&["federation", "join", &ro_token]);
    assert_eq!(joined["federation"], fed.as_str());
    eu.json(&["federation", "join", &eu_token]);

    let on_uk = uk.json(&["trust", "list"]);
    assert_eq!(on_uk["federation"], fed.as_str());
    assert_eq!(on_uk["name"], "JIT Lantern");
    let want = {
        let mut w = vec![
            (uk_peer.clone(), true, "active".to_string()),
            (ro_peer.clone(), false, "active".to_string()),
            (eu_peer.clone(), true, "active".to_string()),
        ];
        w.sort();
        w
    };
    assert_eq!(nodes_of(&on_uk), want);
    // The European admin's own view has everything up to its invitation.
    assert_eq!(nodes_of(&eu.json(&["trust", "list"])), want);
    // ro joined before europol was invited: it knows what its token held.
    assert_eq!(nodes_of(&ro.json(&["trust", "list"])).len(), 2);

    // Only admins invite; the second admin can.
    assert!(
        ro.cmd(&["federation", "invite", &card_of(&stranger)])
            .err()
            .contains("admin")
    );
    eu.cmd(&["federation", "invite", &card_of(&stranger)]).ok();
    // Registry statements are covered by log verify.
    assert_eq!(uk.json(&["log", "verify"])["failed"], 0);
}

#[test]
fn members_by_peer_id_must_be_enrolled() {
    let t = TestDir::new("federation_members");
    let uk = t.node("uk");
    let ro = t.node("ro");
    let out = t.node("out");
    uk.init("uk-east", "ROCU East", "GB");
    ro.init("ro-police", "Poliția Română", "RO");
    out.init("outsider", "Nobody", "FR");
    let case = uk.create_case("joint");

    // No federation yet: a PeerId cannot be resolved, a card can't be checked.
    let e = uk
        .cmd(&[
            "case",
            "member",
            "add",
            &case,
            &peer_of(&ro),
            "--role",
            "contributor",
        ])
        .err();
    assert!(e.contains("federation"), "{e}");

    uk.cmd(&["federation", "create", "--name", "JIT"]).ok();
    let token = uk.cmd(&["federation", "invite", &card_of(&ro)]).ok();
    ro.cmd(&["federation", "join", token.trim()]).ok();

    uk.cmd(&[
        "case",
        "member",
        "add",
        &case,
        &peer_of(&ro),
        "--role",
        "contributor",
    ])
    .ok();
    let show = uk.json(&["case", "show", &case]);
    assert!(
        show["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["peer_id"] == peer_of(&ro).as_str() && m["role"] == "contributor")
    );

    // Not enrolled: refused by PeerId and by card, and nothing changes.
    let before = uk.json(&["case", "show", &case]);
    let e = uk
        .cmd(&[
            "case",
            "member",
            "add",
            &case,
            &peer_of(&out),
            "--role",
            "observer",
        ])
        .err();
    assert!(e.contains("not enrolled"), "{e}");
    let e = uk
        .cmd(&[
            "case",
            "member",
            "add",
            &case,
            &card_of(&out),
            "--role",
            "observer",
        ])
        .err();
    assert!(e.contains("not enrolled"), "{e}");
    assert_eq!(uk.json(&["case", "show", &case]), before);
}
