//! Keys that lost their authority (issue 21, finding 1): a revoked admin's
//! key, or a removed lead's backup, signs statements with the parents it
//! likes; relayed by an honest node, they change nothing anywhere.

use serde_json::Value;

use crate::concurrent::{members_of, readers_of};
use crate::network::Server;
use crate::util::{Node, TestDir, card_of, copy_dir, peer_of};

/// `trust list` as (PeerId, admin, status), sorted.
fn trust(n: &Node) -> Vec<(String, bool, String)> {
    crate::federation::nodes_of(&n.json(&["trust", "list"]))
}

fn invite(admin: &Node, n: &Node, as_admin: bool) {
    let card = card_of(n);
    let mut args = vec!["federation", "invite", card.as_str()];
    if as_admin {
        args.push("--admin");
    }
    let token = admin.cmd(&args).ok();
    n.cmd(&["federation", "join", token.trim()]).ok();
}

fn sync_with(n: &Node, server: &Server) {
    n.cmd(&["sync", "--once", "--peer", &server.addr, "--timeout", "30"])
        .ok();
}

#[test]
fn a_revoked_admins_old_key_changes_nothing() {
    let t = TestDir::new("stale_admin");
    let [uk, ro, eu, nca, accomplice] = ["uk", "ro", "eu", "nca", "accomplice"].map(|n| t.node(n));
    for (n, cc) in [
        (&uk, "GB"),
        (&ro, "RO"),
        (&eu, "NL"),
        (&nca, "GB"),
        (&accomplice, "XX"),
    ] {
        n.init(&n.dir.file_name().unwrap().to_string_lossy(), "Unit", cc);
    }
    uk.cmd(&["federation", "create", "--name", "JIT"]).ok();
    invite(&uk, &eu, false);
    invite(&uk, &nca, false);
    // ro is the second admin; its token holds everything so far.
    invite(&uk, &ro, true);
    let case = uk.create_case("Op Relay");
    uk.add_member(&case, &nca, "contributor");
    uk.add_member(&case, &eu, "contributor");
    {
        let su = Server::start(&uk, &[]);
        sync_with(&nca, &su);
        sync_with(&eu, &su);
    }
    let want = trust(&uk);
    assert_eq!(trust(&nca), want);

    // uk revokes ro. ro never hears of it (a stolen laptop, a backup).
    uk.cmd(&[
        "trust",
        "revoke",
        &peer_of(&ro),
        "--reason",
        "laptop stolen",
    ])
    .ok();
    let mut want_after: Vec<_> = want
        .iter()
        .map(|(p, admin, status)| match *p == peer_of(&ro) {
            true => (p.clone(), false, "revoked".to_string()),
            false => (p.clone(), *admin, status.clone()),
        })
        .collect();
    want_after.sort();
    assert_eq!(trust(&uk), want_after);
    {
        let su = Server::start(&uk, &[]);
        sync_with(&eu, &su);
    }
    assert_eq!(trust(&eu), want_after);

    // ro's key, in ro's own stale view: revoke uk and eu, make an accomplice
    // an admin, and the accomplice enrolls a node of its own.
    ro.cmd(&["trust", "revoke", &peer_of(&uk), "--reason", "coup"])
        .ok();
    ro.cmd(&["trust", "revoke", &peer_of(&eu), "--reason", "coup"])
        .ok();
    invite(&ro, &accomplice, true);
    let ghost = t.node("ghost");
    ghost.init("ghost", "Unit", "XX");
    accomplice
        .cmd(&["federation", "invite", &card_of(&ghost)])
        .ok();
    {
        let sr = Server::start(&ro, &[]);
        sync_with(&accomplice, &sr);
        // nca has not heard of the revocation: it takes everything from ro
        // and relays it to uk and eu in a bundle (ro itself is refused).
        sync_with(&nca, &sr);
    }
    let bundle = t.join("relay.bundle");
    nca.cmd(&[
        "bundle",
        "export",
        "--out",
        bundle.to_str().unwrap(),
        "--case",
        &case,
    ])
    .ok();
    for n in [&uk, &eu] {
        n.cmd(&["bundle", "import", bundle.to_str().unwrap()]).ok();
    }
    let su = Server::start(&uk, &[]);
    sync_with(&eu, &su);
    assert_ne!(trust(&nca), want_after, "nca took ro's statements in");

    // Nothing ro or its accomplice signed after the revocation has an effect.
    for n in [&uk, &eu] {
        assert_eq!(trust(n), want_after, "{}", n.dir.display());
    }
    // nca, which took ro's statements in first, sees uk and eu as revoked
    // and refuses their connections; a bundle from uk (revoked in nca's
    // view) still gives it uk's statements, which show ro's were void.
    let from_uk = t.join("from-uk.bundle");
    uk.cmd(&[
        "bundle",
        "export",
        "--out",
        from_uk.to_str().unwrap(),
        "--case",
        &case,
        "--for",
        &peer_of(&nca),
    ])
    .ok();
    nca.cmd(&["bundle", "import", from_uk.to_str().unwrap()])
        .ok();
    assert_eq!(
        trust(&nca),
        want_after,
        "nca recovered from the poisoned view"
    );
    sync_with(&nca, &su);
    // uk is still an admin in practice: it can invite.
    let newcomer = t.node("newcomer");
    newcomer.init("newcomer", "Unit", "FR");
    uk.cmd(&["federation", "invite", &card_of(&newcomer)]).ok();
}

/// What `case show --json` says of members and the newest key epoch.
fn members_and_readers(n: &Node, case: &str) -> (Vec<String>, Vec<String>, Value) {
    let v = n.json(&["case", "show", case]);
    (members_of(&v), readers_of(&v), v)
}

#[test]
fn a_removed_leads_backup_changes_nothing() {
    let t = TestDir::new("stale_lead");
    let nodes = crate::network::federation(
        &t,
        &[("uk", "GB"), ("ro", "RO"), ("eu", "NL"), ("nca", "GB")],
    );
    let (uk, ro, eu, nca) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let case = uk.create_case("Op Backup");
    uk.add_member(&case, ro, "lead");
    uk.add_member(&case, eu, "contributor");
    uk.add_member(&case, nca, "contributor");
    {
        let su = Server::start(uk, &[]);
        for n in [ro, eu, nca] {
            sync_with(n, &su);
        }
    }
    // A copy of ro's data dir, taken while ro was still a lead.
    let backup = Node::at(t.join("ro-backup"));
    copy_dir(&ro.dir, &backup.dir);

    uk.cmd(&[
        "case",
        "member",
        "remove",
        &case,
        &peer_of(ro),
        "--reason",
        "left the team",
    ])
    .ok();
    let su = Server::start(uk, &[]);
    sync_with(eu, &su);
    let (members, readers, _) = members_and_readers(uk, &case);
    assert_eq!(members, readers);

    // The backup, as a lead in its own view, removes eu (starting a key epoch
    // ro knows) and writes; nca, which has not synced since, relays it.
    backup
        .cmd(&[
            "case",
            "member",
            "remove",
            &case,
            &peer_of(eu),
            "--reason",
            "coup",
        ])
        .ok();
    backup.add(&case, "person", &[("name", "Written after removal")], &[]);
    {
        let sb = Server::start(&backup, &[]);
        sync_with(nca, &sb);
    }
    let (m, _, v) = members_and_readers(nca, &case);
    assert!(
        !m.contains(&peer_of(eu)),
        "nca took the backup's removal in: {v:#}"
    );
    sync_with(nca, &su);
    sync_with(eu, &su);

    for n in [uk, eu] {
        let (m, r, v) = members_and_readers(n, &case);
        assert_eq!(m, members, "{}: {v:#}", n.dir.display());
        assert_eq!(r, members, "newest epoch readable by members only: {v:#}");
        assert!(!v.to_string().contains("coup"), "{v:#}");
        let list = n.cmd(&["--json", "record", "list", &case]).ok();
        assert!(!list.contains("Written after removal"), "{list}");
    }
    // eu writes on under an epoch ro cannot read, and uk accepts it.
    let id = eu.add(&case, "person", &[("name", "After the backup")], &[]);
    sync_with(eu, &su);
    uk.cmd(&["record", "show", &id]).ok();
}
