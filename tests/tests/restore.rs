//! Restoring a node from a backup (issue 21, finding 2): node a writes "one",
//! syncs it to b, is backed up, writes "two", syncs it, and is restored from
//! the backup; it writes "three" before it syncs again. Nothing is lost on
//! either node, the restored node writes on, and its first sync fetches "two"
//! back. Once with a copied data directory, once with `backup` and `restore`.

use std::collections::BTreeSet;

use crate::network::Server;
use crate::util::{Node, TestDir, card_of, check_store, copy_dir, peer_of};

/// The `name` fields of a case's person records on `n`.
fn names(n: &Node, case: &str) -> BTreeSet<String> {
    n.list(case)
        .iter()
        .filter_map(|r| r["fields"]["name"].as_str().map(str::to_string))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn sync_with(n: &Node, server: &Server) {
    n.cmd(&["sync", "--once", "--peer", &server.addr, "--timeout", "30"])
        .ok();
}

/// a (admin, lead) and b (contributor) share a case; returns its id.
fn pair(t: &TestDir) -> (Node, Node, String) {
    let (a, b) = (t.node("a"), t.node("b"));
    a.init("a", "Unit A", "GB");
    b.init("b", "Unit B", "RO");
    a.cmd(&["federation", "create", "--name", "JIT"]).ok();
    let token = a.cmd(&["federation", "invite", &card_of(&b)]).ok();
    b.cmd(&["federation", "join", token.trim()]).ok();
    let case = a.create_case("Op Backup");
    a.add_member(&case, &b, "contributor");
    (a, b, case)
}

fn person(n: &Node, case: &str, name: &str) -> String {
    n.add(case, "person", &[("name", name)], &[])
}

/// The scenario of the finding, with `save` taking a backup of a's data dir
/// and `restore` putting it back in place of a.
fn restored_node_loses_nothing(t: &TestDir, save: impl FnOnce(&Node), restore: impl FnOnce(&Node)) {
    let (a, b, case) = pair(t);
    let one = person(&a, &case, "one");
    {
        let sa = Server::start(&a, &[]);
        sync_with(&b, &sa);
    }
    assert_eq!(names(&b, &case), set(&["one"]));
    save(&a);

    // After the backup: a writes "two" (and edits "one"), and b takes both.
    person(&a, &case, "two");
    a.cmd(&["record", "edit", &one, "--field", "nationality=GB"])
        .ok();
    {
        let sa = Server::start(&a, &[]);
        sync_with(&b, &sa);
    }
    assert_eq!(names(&b, &case), set(&["one", "two"]));

    // The disk fails; a is restored from the backup and writes at once,
    // before any sync: "three", and an edit of the record it edited after
    // the backup (the same Automerge position of its old actor).
    restore(&a);
    assert_eq!(names(&a, &case), set(&["one"]));
    person(&a, &case, "three");
    a.cmd(&["record", "edit", &one, "--field", "dob=1980-01-02"])
        .ok();

    // Its first sync fetches "two" back and gives b "three"; nothing is
    // frozen as an equivocation, nothing erased.
    {
        let sb = Server::start(&b, &[]);
        sync_with(&a, &sb);
    }
    let all = set(&["one", "two", "three"]);
    assert_eq!(
        names(&a, &case),
        all,
        "the restored node fetched back what it wrote after the backup"
    );
    assert_eq!(names(&b, &case), all, "the partner lost nothing");
    for n in [&a, &b] {
        let shown = n.show(&one);
        assert_eq!(
            shown["fields"]["nationality"], "GB",
            "both edits of one record stand"
        );
        assert_eq!(shown["fields"]["dob"], "1980-01-02");
        let status = n.json(&["status"]);
        assert_eq!(
            status["cases"][0]["frozen"],
            serde_json::json!([]),
            "no log is frozen as an equivocation: {status}"
        );
        check_store(n, "after the restore");
    }

    // The restored node writes on, and what it writes reaches b.
    person(&a, &case, "four");
    {
        let sb = Server::start(&b, &[]);
        sync_with(&a, &sb);
    }
    assert_eq!(names(&b, &case), set(&["one", "two", "three", "four"]));
    assert_eq!(names(&a, &case), names(&b, &case));
    let audit = a.json(&["audit", "list"]).to_string();
    assert!(
        audit.contains("node.new_chains") || audit.contains("node.restore"),
        "the restored node's audit log says its next entries start new chains"
    );
}

#[test]
fn a_restored_node_from_a_copied_data_dir_loses_nothing_and_writes_on() {
    let t = TestDir::new("restore_copy");
    let saved = t.join("a-copy");
    restored_node_loses_nothing(
        &t,
        |a| copy_dir(&a.dir, &saved),
        |a| {
            std::fs::remove_dir_all(&a.dir).unwrap();
            copy_dir(&saved, &a.dir);
        },
    );
}

#[test]
fn a_node_restored_with_the_backup_command_loses_nothing_and_writes_on() {
    let t = TestDir::new("restore_cmd");
    let file = t.join("a.csbackup");
    restored_node_loses_nothing(
        &t,
        |a| {
            let out = a.cmd(&["backup", "--out", file.to_str().unwrap()]).ok();
            assert!(out.contains("backup written to"), "{out}");
            // A second backup to the same file is refused, the first kept.
            let err = a
                .cmd(&["backup", "--out", file.to_str().unwrap()])
                .error_line();
            assert!(err.contains("exists"), "{err}");
        },
        |a| {
            std::fs::remove_dir_all(&a.dir).unwrap();
            let out = a.cmd(&["restore", file.to_str().unwrap()]).ok();
            assert!(out.contains("restored node"), "{out}");
        },
    );
}

#[test]
fn restore_refuses_a_damaged_file_a_wrong_passphrase_and_a_dir_that_holds_a_node() {
    let t = TestDir::new("restore_refusals");
    let a = t.node("a");
    a.init("a", "Unit A", "GB");
    let file = t.join("a.csbackup");
    a.cmd(&["backup", "--out", file.to_str().unwrap()]).ok();

    let err = a.cmd(&["restore", file.to_str().unwrap()]).error_line();
    assert!(err.contains("already holds a casesync node"), "{err}");

    let fresh = t.node("fresh");
    let bytes = std::fs::read(&file).unwrap();
    for (what, damaged) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("a flipped byte", {
            let mut b = bytes.clone();
            let i = b.len() - 100;
            b[i] ^= 1;
            b
        }),
        ("not a backup", b"hello".to_vec()),
    ] {
        let bad = t.write("damaged.csbackup", &damaged);
        let err = fresh.cmd(&["restore", bad.to_str().unwrap()]).error_line();
        assert!(err.contains("nothing was restored"), "{what}: {err}");
        assert!(
            !fresh.dir.join("keystore").exists(),
            "{what}: nothing written"
        );
    }
    let err = fresh
        .cmd_env(
            &["restore", file.to_str().unwrap()],
            &[("CASESYNC_PASSPHRASE", "another passphrase")],
        )
        .error_line();
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(!fresh.dir.join("keystore").exists());
    fresh.cmd(&["restore", file.to_str().unwrap()]).ok();
    assert_eq!(peer_of(&fresh), peer_of(&a));
}

/// A member restored from a backup starts a new chain of its log; a lead that
/// removed it having seen only its old chain cuts that chain, and the new one
/// (signed after the removal, whatever it claims), relayed by a member that
/// had not heard of the removal yet, is refused by the lead and taken out by
/// the relay once it learns of the removal.
#[test]
fn a_removed_members_new_chain_changes_nothing() {
    let t = TestDir::new("restore_removed");
    let (a, b, case) = pair(&t);
    let c = t.node("c");
    c.init("c", "Unit C", "NL");
    let token = a.cmd(&["federation", "invite", &card_of(&c)]).ok();
    c.cmd(&["federation", "join", token.trim()]).ok();
    a.add_member(&case, &c, "contributor");
    {
        let sa = Server::start(&a, &[]);
        sync_with(&b, &sa);
        sync_with(&c, &sa);
        person(&b, &case, "b-before");
        sync_with(&b, &sa);
    }
    assert_eq!(names(&a, &case), set(&["b-before"]));
    let saved = t.join("b-copy");
    copy_dir(&b.dir, &saved);
    a.cmd(&[
        "case",
        "member",
        "remove",
        &case,
        &peer_of(&b),
        "--reason",
        "left the team",
    ])
    .ok();
    // b, restored and unaware, writes on a new chain and gives it to c,
    // which has not heard of the removal either.
    std::fs::remove_dir_all(&b.dir).unwrap();
    copy_dir(&saved, &b.dir);
    person(&b, &case, "b-after");
    {
        let sc = Server::start(&c, &[]);
        sync_with(&b, &sc);
    }
    assert_eq!(names(&c, &case), set(&["b-before", "b-after"]));
    // c relays it to the lead in a bundle (before it hears of the removal)...
    let bundle = t.join("relay.bundle");
    c.cmd(&[
        "bundle",
        "export",
        "--out",
        bundle.to_str().unwrap(),
        "--case",
        &case,
        "--for",
        &peer_of(&a),
    ])
    .ok();
    let imported = a.cmd(&["bundle", "import", bundle.to_str().unwrap()]);
    assert_eq!(
        names(&a, &case),
        set(&["b-before"]),
        "the lead refuses the new chain"
    );
    let refused = a.json(&["audit", "list"]).to_string();
    assert!(
        refused.contains("this chain of its log is not within its cut"),
        "the lead says why: {} {}",
        imported.stdout,
        imported.stderr
    );
    // ...and c takes in the removal.
    {
        let sa = Server::start(&a, &[]);
        sync_with(&c, &sa);
    }
    assert_eq!(
        names(&c, &case),
        set(&["b-before"]),
        "the relay took it out"
    );
    check_store(&a, "after the removed member's new chain");
    check_store(&c, "after the removed member's new chain");
}

/// Copies a's database files to `to` (or back over a's own, in place: the
/// database keeps its file identity, as after a rolled-back disk snapshot).
fn copy_store(from: &std::path::Path, to: &std::path::Path) {
    for name in ["casesync.db", "casesync.db-wal", "casesync.db-shm"] {
        let (src, dst) = (from.join(name), to.join(name));
        if src.exists() {
            std::fs::copy(&src, &dst).unwrap();
        } else {
            let _ = std::fs::remove_file(&dst);
        }
    }
}

/// A store rolled back in place (the database file copied back over itself,
/// or a disk snapshot rolled back) keeps its file identity, so the node cannot
/// tell by itself. Its partners can: they saw its audit log further. Here b
/// saw a's audit head after the copy was taken, and the entry a wrote after
/// the copy ("two") is on c only; the first partner a meets after the rollback
/// is b, which answers with the head it saw before, so a's next entry starts a
/// new chain and meeting c later loses nothing.
#[test]
fn a_store_rolled_back_in_place_learns_it_from_a_partner() {
    let t = TestDir::new("restore_in_place");
    let nodes = crate::network::federation(&t, &[("a", "GB"), ("b", "RO"), ("c", "NL")]);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Rollback");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, c, "contributor");
    {
        let sa = Server::start(a, &[]);
        sync_with(b, &sa);
        sync_with(c, &sa);
    }
    person(a, &case, "one");
    let (sb, sc) = (Server::start(b, &[]), Server::start(c, &[]));
    sync_with(a, &sc);
    sync_with(a, &sb);
    let saved = t.join("a-saved");
    std::fs::create_dir_all(&saved).unwrap();
    copy_store(&a.dir, &saved);

    // After the copy: a consults the case (its audit log grows) and meets b;
    // then writes "two" and meets c only.
    a.cmd(&["case", "show", &case]).ok();
    sync_with(a, &sb);
    person(a, &case, "two");
    sync_with(a, &sc);
    assert_eq!(names(c, &case), set(&["one", "two"]));
    assert_eq!(names(b, &case), set(&["one"]));

    // Rolled back in place; its first partner is b, which lacks "two".
    copy_store(&saved, &a.dir);
    assert_eq!(names(a, &case), set(&["one"]));
    sync_with(a, &sb);
    let audit = a.json(&["audit", "list"]).to_string();
    assert!(
        audit.contains("node.new_chains"),
        "a was told its store went back"
    );
    person(a, &case, "three");
    sync_with(a, &sc);
    sync_with(a, &sb);
    let all = set(&["one", "two", "three"]);
    assert_eq!(
        names(a, &case),
        all,
        "a fetched back what it wrote after the copy"
    );
    assert_eq!(names(c, &case), all, "c lost nothing");
    for n in [a, b, c] {
        let status = n.json(&["status"]);
        assert_eq!(
            status["cases"][0]["frozen"],
            serde_json::json!([]),
            "{status}"
        );
    }
}
