//! The federation trust registry: create, invite, join, trust list, and members
//! added by PeerId only when enrolled.

use serde_json::Value;

use crate::util::{TestDir, card_of, find_bytes, peer_of};

/// `trust list --json` as (PeerId, admin, status), sorted.
pub(crate) fn nodes_of(trust: &Value) -> Vec<(String, bool, String)> {
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
    assert!(ro_token.starts_with("csjoin2.") && !ro_token.contains('\n'));
    // Inviting an enrolled node again makes a new token, not a new statement.
    let statements = uk
        .db()
        .query_row("SELECT COUNT(*) FROM registry_ops", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap();
    let again = uk.cmd(&["federation", "invite", &card_of(&ro)]).ok();
    assert_ne!(again.trim(), ro_token);
    assert_eq!(
        uk.db()
            .query_row("SELECT COUNT(*) FROM registry_ops", [], |r| r
                .get::<_, i64>(0))
            .unwrap(),
        statements
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
            .contains("made for another node")
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

/// Issue 21, findings 7 and 8: a join token is sealed to the invitee (nobody
/// else reads who is in the federation), signed by the inviting admin, and
/// expires; `federation join` shows who invites and where, and
/// `--expect-federation` makes a token for a look-alike federation fail; a
/// node that joined the wrong federation and holds no case can leave it; a
/// revoked node is never invited again.
#[test]
fn a_join_token_is_sealed_expires_and_shows_who_invites() {
    let t = TestDir::new("federation_join");
    let [uk, ro, fake, eu] = ["uk", "ro", "fake", "eu"].map(|n| t.node(n));
    uk.init("uk-east", "ROCU East", "GB");
    ro.init("ro-police", "Politia Romana", "RO");
    fake.init("uk-east", "ROCU East", "GB");
    eu.init("europol", "Europol", "NL");
    let fed = uk
        .cmd(&["federation", "create", "--name", "JIT Lantern"])
        .ok()
        .trim()
        .to_string();
    // A look-alike federation, same name, invites ro first.
    let fake_fed = fake
        .cmd(&["federation", "create", "--name", "JIT Lantern"])
        .ok()
        .trim()
        .to_string();
    let fake_token = fake.cmd(&["federation", "invite", &card_of(&ro)]).ok();
    let token = uk.cmd(&["federation", "invite", &card_of(&ro)]).ok();
    let token = token.trim();
    // Sealed: the federation's name and members are not in the token.
    assert!(token.starts_with("csjoin2."), "{token}");
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_start_matches("csjoin2."))
        .unwrap();
    for clear in ["JIT Lantern", "ROCU East", "Politia Romana"] {
        assert!(
            find_bytes(&raw, clear.as_bytes()).is_none(),
            "{clear} in clear"
        );
    }
    // Another node cannot use (or read) it.
    let e = eu.cmd(&["federation", "join", token]).error_line();
    assert!(e.contains("made for another node"), "{e}");
    // The look-alike's token fails the check by federation id, and joins
    // nothing.
    let e = ro
        .cmd(&[
            "federation",
            "join",
            fake_token.trim(),
            "--expect-federation",
            &fed[..16],
        ])
        .err();
    assert!(
        e.contains(&format!("invited by uk-east ({})", peer_of(&fake))),
        "{e}"
    );
    assert!(
        e.contains(&fake_fed) && e.contains("nothing was joined"),
        "{e}"
    );
    assert!(ro.cmd(&["trust", "list"]).err().contains("no federation"));
    // Joined the look-alike anyway (no check): ro holds no case, so it leaves.
    ro.cmd(&["federation", "join", fake_token.trim()]).ok();
    assert_eq!(ro.json(&["trust", "list"])["federation"], fake_fed.as_str());
    assert!(
        ro.cmd(&["federation", "leave"])
            .ok()
            .contains("left federation")
    );
    // Then the real one, checked.
    let out = ro.cmd(&["federation", "join", token, "--expect-federation", &fed]);
    let v: serde_json::Value = {
        let o = out.ok();
        assert!(o.contains("joined federation JIT Lantern"), "{o}");
        ro.json(&["trust", "list"])
    };
    assert_eq!(v["federation"], fed.as_str());
    // A node that holds a case cannot leave.
    ro.create_case("Op Held");
    let e = ro.cmd(&["federation", "leave"]).error_line();
    assert!(e.contains("holds case data"), "{e}");

    // Expiry: a week later (libfaketime), the token is refused.
    let eu_token = uk.cmd(&["federation", "invite", &card_of(&eu)]).ok();
    let lib = crate::clock::libfaketime();
    let later = [
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("FAKETIME", "+8d"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let e = eu
        .cmd_env(&["federation", "join", eu_token.trim()], &later)
        .error_line();
    assert!(e.contains("expired"), "{e}");
    // A new token for the same enrollment (no new statement) works.
    let again = uk.cmd(&["federation", "invite", &card_of(&eu)]).ok();
    eu.cmd(&["federation", "join", again.trim()]).ok();

    // A revoked node is not invited again, as an admin or not.
    uk.cmd(&["trust", "revoke", &peer_of(&eu), "--reason", "left"])
        .ok();
    for extra in [None, Some("--admin")] {
        let card = card_of(&eu);
        let mut args = vec!["federation", "invite", card.as_str()];
        args.extend(extra);
        let e = uk.cmd(&args).error_line();
        assert!(e.contains("revocation is final"), "{e}");
    }
}
