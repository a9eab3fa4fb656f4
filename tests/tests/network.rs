//! Sync over the network: separate `casesync serve` processes on 127.0.0.1.
//! Every wait polls with a generous deadline; speed is measured in bench.sh.
//!
//! Longer than most files here: the `Server` and federation helpers that other
//! suites use, with the network tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::util::{Node, TestDir, card_of, files_under, find_bytes, peer_of, uuid_bytes};

/// A running `casesync serve`, stopped (SIGTERM, then SIGKILL) on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    /// With `--http`: the web front end's address (`127.0.0.1:PORT`).
    pub(crate) http: Option<String>,
    stderr: std::path::PathBuf,
}

impl Server {
    pub(crate) fn start(node: &Node, peers: &[&str]) -> Server {
        Server::start_env(node, peers, &[])
    }

    /// Like [`Server::start`], with extra environment variables.
    pub(crate) fn start_env(node: &Node, peers: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_with(node, peers, env, None)
    }

    /// `serve` with the web front end on a free loopback port as well.
    pub(crate) fn start_http(node: &Node, peers: &[&str]) -> Server {
        Server::start_with(node, peers, &[], Some(&["--http", "127.0.0.1:0"]))
    }

    /// `serve` with the web front end and `http_args` (`--http ADDR`, TLS...).
    pub(crate) fn start_with(
        node: &Node,
        peers: &[&str],
        env: &[(&str, &str)],
        http_args: Option<&[&str]>,
    ) -> Server {
        // Extra arguments may be others than `--http` (`--fetch on-open`).
        let http = http_args.is_some_and(|a| a.contains(&"--http"));
        let mut args = vec!["serve", "--listen", "/ip4/127.0.0.1/tcp/0"];
        args.extend(http_args.unwrap_or_default());
        for p in peers {
            args.push("--peer");
            args.push(p);
        }
        let stderr = node
            .dir
            .with_extension(format!("serve-{}.err", std::process::id()));
        let mut cmd = node.command(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()));
        let mut child = cmd.spawn().expect("start casesync serve");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send((false, a.to_string()));
                }
                if let Some(a) = line
                    .strip_prefix("http on http://")
                    .or_else(|| line.strip_prefix("http on https://"))
                {
                    let _ = tx.send((true, a.trim_end_matches('/').to_string()));
                }
            }
        });
        let (mut addr, mut web) = (None, None);
        while addr.is_none() || (http && web.is_none()) {
            let (is_http, a) = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!(
                        "serve printed no `listening on` (or `http on`) line; stderr: {}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    )
                });
            if is_http {
                web = Some(a);
            } else {
                addr = Some(a);
            }
        }
        Server {
            child,
            addr: addr.unwrap_or_default(),
            http: web,
            stderr,
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL: no shutdown path runs, as when a laptop loses power mid-write
    /// (short of losing the OS's page cache).
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already reaped (killed): its pid may belong to someone else now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls until `f` holds, or fails after `secs` with `what`.
pub(crate) fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

fn list(n: &Node, case: &str) -> String {
    n.cmd(&["--json", "record", "list", case]).ok()
}

/// A federation of `names`, the first as admin; returns the nodes.
pub(crate) fn federation(t: &TestDir, names: &[(&str, &str)]) -> Vec<Node> {
    let nodes: Vec<Node> = names.iter().map(|(n, _)| t.node(n)).collect();
    for (node, (name, cc)) in nodes.iter().zip(names) {
        node.init(name, &format!("Unit {name}"), cc);
    }
    nodes[0]
        .cmd(&["federation", "create", "--name", "JIT"])
        .ok();
    for n in &nodes[1..] {
        let token = nodes[0].cmd(&["federation", "invite", &card_of(n)]).ok();
        n.cmd(&["federation", "join", token.trim()]).ok();
    }
    nodes
}

#[test]
fn three_serving_nodes_converge_push_and_merge_offline_edits() {
    let t = TestDir::new("net_converge");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    for n in [b, c] {
        a.add_member(&case, n, "contributor");
    }
    let victor = a.add(&case, "person", &[("name", "Victor Ilie")], &[]);
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let sc = Server::start(c, &[&sa.addr, &sb.addr]);
    eventually(60, "B and C receive the case", || {
        b.cmd(&["record", "show", &victor]).status.success()
            && c.cmd(&["record", "show", &victor]).status.success()
    });

    // Writes on each node, made while serve runs, reach every node.
    b.add(&case, "phone", &[("number", "+40 700 000 111")], &[]);
    c.add(
        &case,
        "crypto_wallet",
        &[
            ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            ("currency", "BTC"),
        ],
        &[],
    );
    let from_a = a.add(&case, "note", &[("text", "pushed")], &[]);
    let took = eventually(60, "a record added on A is visible on C", || {
        c.cmd(&["record", "show", &from_a]).status.success()
    });
    eprintln!("A -> C visible after {took:?}");
    eventually(60, "all three hold the same case", || {
        let l = list(a, &case);
        l == list(b, &case) && l == list(c, &case)
    });
    assert_eq!(a.list(&case).len(), 4);

    // B goes offline; A and B edit the same record; B comes back.
    drop(sb);
    a.cmd(&["record", "edit", &victor, "--field", "status=arrested"])
        .ok();
    b.cmd(&[
        "record",
        "edit",
        &victor,
        "--field",
        "alias=Vic",
        "--field",
        "status=wanted",
    ])
    .ok();
    for i in 0..20 {
        a.add(
            &case,
            "note",
            &[("text", &format!("while B was down {i}"))],
            &[],
        );
    }
    let _sb = Server::start(b, &[&sa.addr]);
    eventually(60, "B catches up and its edit reaches the others", || {
        let l = list(a, &case);
        l == list(b, &case) && l == list(c, &case) && a.show(&victor)["fields"]["alias"] == "Vic"
    });
    let v = c.show(&victor);
    assert_eq!(v["fields"]["alias"], "Vic");
    let status = v["fields"]["status"].as_str().unwrap().to_string();
    assert!(status == "arrested" || status == "wanted", "{status}");
    assert_eq!(
        b.show(&victor)["fields"]["status"],
        status.as_str(),
        "the same field converges to one value"
    );
    for n in [a, b, c] {
        assert_eq!(n.json(&["log", "verify"])["failed"], 0);
    }
    drop(sc);
}

#[test]
fn a_case_never_reaches_a_non_member_and_strangers_are_refused() {
    let t = TestDir::new("net_members");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("A and B only");
    a.add_member(&case, b, "contributor");
    let r = a.add(&case, "person", &[("name", "Victim A")], &[]);
    let sa = Server::start(a, &[]);
    let _sb = Server::start(b, &[&sa.addr]);
    let _sc = Server::start(c, &[&sa.addr]);
    eventually(60, "B receives the case", || {
        b.cmd(&["record", "show", &r]).status.success()
    });
    // C has been connected to A all along (anti-entropy runs every 5 s): give it
    // two rounds, then check it holds nothing of the case.
    let out = c
        .cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "20"])
        .ok();
    assert!(out.contains("received 0 entries"), "{out}");
    let db = c.db();
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "C holds entries of a case it is not a member of");
    let case_bytes = uuid_bytes(&case);
    for f in files_under(&c.dir) {
        assert!(
            find_bytes(&std::fs::read(&f).unwrap(), &case_bytes).is_none(),
            "{} names the case",
            f.display()
        );
    }

    // A node of another federation cannot connect or obtain anything; A logs it.
    let stranger = t.node("stranger");
    stranger.init("stranger", "Nobody", "FR");
    stranger
        .cmd(&["federation", "create", "--name", "other"])
        .ok();
    let e = stranger
        .cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "5"])
        .err();
    assert!(e.contains("no peer answered"), "{e}");
    let n: i64 = stranger
        .db()
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let spid = peer_of(&stranger);
    eventually(10, "A logs the refused connection", || {
        sa.log()
            .contains(&format!("refused incoming connection from {spid}"))
    });
}

#[test]
fn the_registry_reaches_nodes_that_share_no_case() {
    let t = TestDir::new("net_registry");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    // A enrolls a new node after B joined; A and B share no case.
    let d = t.node("europol");
    d.init("europol", "Europol", "NL");
    let token = a.cmd(&["federation", "invite", &card_of(&d)]).ok();
    d.cmd(&["federation", "join", token.trim()]).ok();
    let dpid = peer_of(&d);
    let b_knows_d = || {
        b.json(&["trust", "list"])["nodes"]
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["peer_id"] == dpid.as_str()))
    };
    assert!(!b_knows_d(), "B cannot know D before any sync");
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    eventually(
        30,
        "the enrollment reaches B through sync with A",
        b_knows_d,
    );
    // B now lets D in: D syncs with B directly.
    let out = d
        .cmd(&["sync", "--once", "--peer", &sb.addr, "--timeout", "20"])
        .ok();
    assert!(out.contains("received 0 entries"), "{out}");
    assert!(
        !sb.log()
            .contains(&format!("refused incoming connection from {dpid}"))
    );
}

#[test]
fn a_revoked_node_is_cut_off_everywhere() {
    let t = TestDir::new("net_revoke");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("laptop", "GB")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    for n in [b, c] {
        a.add_member(&case, n, "contributor");
    }
    let first = a.add(&case, "person", &[("name", "Before revocation")], &[]);
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let sc = Server::start(c, &[&sa.addr, &sb.addr]);
    eventually(60, "C receives the case", || {
        c.cmd(&["record", "show", &first]).status.success()
    });
    let cpid = peer_of(c);
    // B (which learned of C by sync) leads a case of its own with C in it.
    eventually(30, "B learns of C", || {
        b.cmd(&["trust", "list"]).ok().contains(&cpid)
    });
    let case_b = b.create_case("B's case");
    b.cmd(&[
        "case",
        "member",
        "add",
        &case_b,
        &cpid,
        "--role",
        "contributor",
    ])
    .ok();
    eventually(30, "C receives B's case", || {
        c.cmd(&["case", "show", &case_b]).status.success()
    });

    // Only an admin may revoke, with a reason; the unknown and the revoked are refused.
    let e = b
        .cmd(&["trust", "revoke", &cpid, "--reason", "x"])
        .error_line();
    assert!(e.contains("only a federation admin"), "{e}");
    let e = a.cmd(&["trust", "revoke", &cpid]).err();
    assert!(e.contains("--reason"), "{e}");
    let out = a
        .cmd(&["trust", "revoke", &cpid, "--reason", "laptop seized"])
        .ok();
    assert!(out.contains("revoked laptop"), "{out}");
    assert!(
        out.contains(&format!("removed it from case {case}")),
        "the admin, lead of the case, cuts the revoked node from it: {out}"
    );
    let e = a
        .cmd(&["trust", "revoke", &cpid, "--reason", "again"])
        .error_line();
    assert!(e.contains("already revoked"), "{e}");
    let e = a
        .cmd(&["trust", "revoke", "12D3KooWnotanode", "--reason", "x"])
        .error_line();
    assert!(e.contains("not enrolled"), "{e}");

    // The statement reaches B by sync; both list C as revoked.
    eventually(30, "B learns the revocation", || {
        b.json(&["trust", "list"])["nodes"]
            .as_array()
            .is_some_and(|ns| {
                ns.iter()
                    .any(|n| n["peer_id"] == cpid.as_str() && n["status"] == "revoked")
            })
    });
    // B, lead of its own case, cuts C from it when it learns the revocation.
    eventually(30, "B removes C from the case it leads", || {
        b.json(&["case", "show", &case_b])["removed"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["peer_id"] == cpid.as_str()))
    });
    let listed = a.json(&["trust", "list"]);
    assert!(
        listed["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["revocation_reason"] == "laptop seized"),
        "{listed}"
    );

    // C gets nothing new and what it writes reaches nobody.
    let after = a.add(&case, "note", &[("text", "after revocation")], &[]);
    let from_c = c.add(
        &case,
        "note",
        &[("text", "written by the revoked node")],
        &[],
    );
    eventually(30, "B receives A's new record", || {
        b.cmd(&["record", "show", &after]).status.success()
    });
    let e = c
        .cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "5"])
        .err();
    assert!(e.contains("no peer answered"), "{e}");
    drop(sc);
    assert!(
        !c.cmd(&["record", "show", &after]).status.success(),
        "the revoked node received a record written after its revocation"
    );
    for n in [a, b] {
        assert!(
            !n.cmd(&["record", "show", &from_c]).status.success(),
            "a record by the revoked node was accepted"
        );
    }
    eventually(10, "A logs refused connections from C", || {
        sa.log()
            .contains(&format!("refused incoming connection from {cpid}"))
            || sb
                .log()
                .contains(&format!("refused incoming connection from {cpid}"))
    });
}

#[test]
fn a_removed_member_is_cut_at_its_last_entry_and_reads_nothing_new() {
    let t = TestDir::new("net_remove");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("partner", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    for n in [b, c] {
        a.add_member(&case, n, "contributor");
    }
    let cpid = peer_of(c);
    // A and C serve; B is offline. C writes one record, which A receives.
    let sa = Server::start(a, &[]);
    let sc = Server::start(c, &[&sa.addr]);
    eventually(30, "C receives the case", || {
        c.cmd(&["case", "show", &case]).status.success()
    });
    let before = c.add(&case, "person", &[("name", "Written before removal")], &[]);
    eventually(60, "A receives C's record", || {
        a.cmd(&["record", "show", &before]).status.success()
    });

    // Only a lead removes, with a reason; A cuts C's log at its entry 1.
    let e = c
        .cmd(&[
            "case",
            "member",
            "remove",
            &case,
            &peer_of(b),
            "--reason",
            "x",
        ])
        .error_line();
    assert!(e.contains("only a lead"), "{e}");
    let out = a
        .cmd(&[
            "case",
            "member",
            "remove",
            &case,
            &cpid,
            "--reason",
            "left the JIT",
        ])
        .ok();
    assert!(out.contains("cut at seq 1"), "{out}");
    let e = a
        .cmd(&[
            "case", "member", "remove", &case, &cpid, "--reason", "again",
        ])
        .error_line();
    assert!(e.contains("not a member"), "{e}");
    let shown = a.json(&["case", "show", &case]);
    assert_eq!(shown["removed"][0]["peer_id"], cpid.as_str(), "{shown}");
    assert_eq!(shown["removed"][0]["cut_seq"], 1);
    assert!(
        shown["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["peer_id"] != cpid.as_str())
    );

    // New records reach B (which also accepts C's entry up to the cut), never C.
    let after = a.add(&case, "note", &[("text", "after the removal")], &[]);
    let past_cut = c.add(&case, "note", &[("text", "written after removal")], &[]);
    let _sb = Server::start(b, &[&sa.addr]);
    eventually(
        60,
        "B receives the case, the new record and C's entry up to the cut",
        || {
            b.cmd(&["record", "show", &after]).status.success()
                && b.cmd(&["record", "show", &before]).status.success()
        },
    );
    let out = c
        .cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "20"])
        .ok();
    assert!(out.contains("received 0 entries"), "{out}");
    assert!(!c.cmd(&["record", "show", &after]).status.success());
    // What C wrote past the cut is accepted nowhere: C, no longer a member,
    // can hand A nothing of the case.
    eventually(30, "A rejects C's delivery", || {
        sa.log().contains("the sender or this node is not a member")
    });
    for n in [a, b] {
        assert!(
            !n.cmd(&["record", "show", &past_cut]).status.success(),
            "an entry past the cut was accepted"
        );
    }
    drop(sc);

    // Even with the ciphertext in hand (a bundle from A), C reads nothing new:
    // the new epoch key was never wrapped to it.
    let file = t.join("after-removal.bundle");
    a.cmd(&["bundle", "export", "--out", file.to_str().unwrap()])
        .ok();
    let out = c.cmd(&["bundle", "import", file.to_str().unwrap()]).ok();
    assert!(out.contains("not a member"), "{out}");
    assert!(!c.cmd(&["record", "show", &after]).status.success());
    for n in [a, b] {
        assert_eq!(n.json(&["log", "verify"])["failed"], 0);
    }
    let l = list(a, &case);
    eventually(30, "A and B hold the same case", || list(b, &case) == l);
}

/// Lead A, contributors B and C serving, C's first record everywhere; then A,
/// offline, removes C with a cut at C's entry 1. Returns the nodes, the case,
/// C's first record, and the servers of B and C (A's is stopped).
fn removed_while_offline(t: &TestDir) -> (Vec<Node>, String, String, Server, Server) {
    let nodes = federation(
        t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("partner", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Lantern");
    for n in [b, c] {
        a.add_member(&case, n, "contributor");
    }
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let sc = Server::start(c, &[&sa.addr, &sb.addr]);
    eventually(60, "B and C receive the case", || {
        b.cmd(&["case", "show", &case]).status.success()
            && c.cmd(&["case", "show", &case]).status.success()
    });
    let first = c.add(&case, "person", &[("name", "Within the cut")], &[]);
    eventually(60, "A and B receive C's first record", || {
        a.cmd(&["record", "show", &first]).status.success()
            && b.cmd(&["record", "show", &first]).status.success()
    });
    drop(sa);
    let out = a
        .cmd(&[
            "case",
            "member",
            "remove",
            &case,
            &peer_of(c),
            "--reason",
            "left",
        ])
        .ok();
    assert!(out.contains("cut at seq 1"), "{out}");
    (nodes, case, first, sb, sc)
}

#[test]
fn entries_past_the_cut_accepted_before_the_removal_are_taken_out() {
    let t = TestDir::new("net_cut_late");
    let (nodes, case, first, sb, sc) = removed_while_offline(&t);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // C writes again and B, not knowing of the removal, accepts it.
    let late = c.add(&case, "note", &[("text", "past the cut")], &[]);
    let edit_victim = c.cmd(&["record", "edit", &first, "--field", "status=edited late"]);
    assert!(edit_victim.status.success());
    eventually(60, "B accepts C's later writes", || {
        b.cmd(&["record", "show", &late]).status.success()
    });
    drop(sc);
    // A comes back: B learns of the removal and takes C's entries past the cut out.
    let _sa = Server::start(a, &[&sb.addr]);
    eventually(60, "B takes out what C wrote past the cut", || {
        !b.cmd(&["record", "show", &late]).status.success()
    });
    let shown = b.show(&first);
    assert!(
        shown["fields"].get("status").is_none(),
        "an edit past the cut survived: {shown}"
    );
    eventually(30, "A and B hold the same case", || {
        list(a, &case) == list(b, &case)
    });
    assert_eq!(b.json(&["log", "verify"])["failed"], 0);
}

#[test]
fn entries_past_the_cut_that_a_remaining_member_built_on_are_kept() {
    let t = TestDir::new("net_cut_vouched");
    let (nodes, case, _, sb, sc) = removed_while_offline(&t);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // C writes on; B accepts it and builds on it (an edit of C's new record),
    // not knowing of the removal.
    let late = c.add(&case, "note", &[("text", "past the cut")], &[]);
    eventually(60, "B accepts C's later write", || {
        b.cmd(&["record", "show", &late]).status.success()
    });
    drop(sc);
    b.cmd(&["record", "edit", &late, "--field", "status=checked by B"])
        .ok();
    // A comes back. B's edit has C's entry 2 in its view, so that entry stays
    // on B and is accepted on A, and B's edit is not stranded.
    let _sa = Server::start(a, &[&sb.addr]);
    eventually(60, "A holds C's vouched entry and B's edit of it", || {
        a.cmd(&["record", "show", &late]).status.success()
            && a.show(&late)["fields"]["status"] == "checked by B"
    });
    eventually(30, "A and B hold the same case", || {
        list(a, &case) == list(b, &case)
    });
    assert_eq!(b.show(&late)["fields"]["text"], "past the cut");
    for n in [a, b] {
        assert_eq!(n.json(&["log", "verify"])["failed"], 0);
    }
}

/// Issue 21 (operations): a second `serve` on a data dir that one already
/// serves, or on an address another process listens on, is refused with a
/// clear error instead of splitting partners' connections between the two.
#[test]
fn a_second_serve_on_one_data_dir_or_address_is_refused() {
    let t = TestDir::new("net_second_serve");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let sa = Server::start(a, &[]);
    let e = a
        .cmd(&["serve", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .error_line();
    assert!(e.contains("another `casesync serve` is running"), "{e}");
    // The address A listens on, taken by B.
    let listen: String = sa.addr.split("/p2p/").next().unwrap().to_string();
    let e = b.cmd(&["serve", "--listen", &listen]).error_line();
    assert!(e.contains("another process listens there"), "{e}");
    // A still serves B.
    b.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    // Once A stops, its data dir can be served again.
    drop(sa);
    let again = Server::start(a, &[]);
    b.cmd(&["sync", "--once", "--peer", &again.addr, "--timeout", "30"])
        .ok();
}

/// Issue 21 (operations): a remembered peer that cannot be reached is dialed
/// again with exponential back-off and jitter (not every second forever), each
/// failure is logged with the wait, and `status` shows the next attempt.
#[test]
fn an_unreachable_peer_is_redialed_with_back_off_and_status_shows_when() {
    let t = TestDir::new("net_redial");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let port = unused_port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", peer_of(b));
    a.cmd(&["peer", "add", &addr]).ok();
    let sa = Server::start(a, &[]);
    std::thread::sleep(Duration::from_secs(6));
    let tries = sa.log().matches("cannot reach").count();
    // The first dial and its redials: every second, that would be 7 or 8;
    // backing off from 1 s (x0.5-1.5), at most 5.
    assert!(
        (2..=5).contains(&tries),
        "{tries} attempts in 6 s:\n{}",
        sa.log()
    );
    let v = a.json(&["status"]);
    let next = &v["peers"][0]["next_attempt"];
    assert!(next.as_str().is_some_and(|s| s.contains('T')), "{v:#}");
    assert!(
        a.cmd(&["status"])
            .ok()
            .contains("unreachable, next attempt")
    );
}

/// A port nothing listens on.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve` logs through `tracing` (issue 21, operations): `RUST_LOG` filters
/// what it says and libp2p's events, and `CASESYNC_LOG_FORMAT=json` writes
/// one JSON object a line for an agency's log collector.
#[test]
fn serve_logs_as_json_lines_when_asked_and_rust_log_filters_them() {
    let t = TestDir::new("net_logs");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let port = unused_port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", peer_of(b));
    {
        let sa = Server::start_env(a, &[&addr], &[("CASESYNC_LOG_FORMAT", "json")]);
        eventually(
            20,
            "a JSON log line saying the peer cannot be reached",
            || sa.log().contains("cannot reach"),
        );
        let log = sa.log();
        let line = log
            .lines()
            .find(|l| l.contains("cannot reach"))
            .unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert_eq!(v["level"], "WARN", "{v}");
        assert!(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot reach"),
            "{v}"
        );
        assert!(v["timestamp"].is_string(), "{v}");
    }
    // Only errors: the same run says nothing about the unreachable peer.
    let sa = Server::start_env(a, &[&addr], &[("RUST_LOG", "error")]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!sa.log().contains("cannot reach"), "{}", sa.log());
}

/// A first sync that a peer stops answering in the middle (at 5 MiB, then
/// at random points) ends after `--timeout` seconds without progress (not in
/// total), says what it received and that a rerun resumes; the reruns fetch
/// only the rest, so the runs together receive each entry once.
#[test]
fn a_sync_cut_off_in_the_middle_resumes_without_fetching_again() {
    use crate::proxy::Link;
    let t = TestDir::new("net_resume");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Large");
    a.add_member(&case, b, "contributor");
    // About 12 MiB of entries that do not compress: several pulls' worth.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut text = |n: usize| -> String {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(
                    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        [(seed % 62) as usize],
                )
            })
            .collect()
    };
    for part in 0..6 {
        let lines: String = (0..1000)
            .map(|i| {
                format!(
                    "{{\"type\":\"note\",\"fields\":{{\"text\":\"{part}-{i} {}\"}}}}\n",
                    text(2000)
                )
            })
            .collect();
        let file = t.write(&format!("notes-{part}.jsonl"), lines);
        a.cmd(&["record", "import", &case, file.to_str().unwrap()])
            .ok();
    }
    let total = a.json(&["case", "show", &case])["entries"]
        .as_u64()
        .unwrap();
    let sa = Server::start(a, &[]);
    let link = Link::new();
    link.set_target(crate::partition::port_of(&sa.addr));
    let via = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", link.port(), peer_of(a));
    // The link is cut (it forwards so much, then holds everything): 5 MiB
    // into the first run, then at a random point 3 to 6 MiB into each next
    // one, which may fall before a batch is whole. Each cut run stops, keeps
    // what arrived and says a rerun resumes (also when nothing arrived: the
    // peer answered); the runs together receive every entry exactly once.
    // CASESYNC_CUT_SEED replays a run.
    let cut_seed: u64 = std::env::var("CASESYNC_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let mut rng = cut_seed | 1;
    let mut next_cut = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (3 << 20) + (rng % (3 << 20)) as usize
    };
    let mut received = Vec::new();
    let mut finished = false;
    for run in 0..3 {
        link.stall_after(if run == 0 { 5 << 20 } else { next_cut() });
        let run = b.cmd(&["--json", "sync", "--once", "--peer", &via, "--timeout", "3"]);
        let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}, CASESYNC_CUT_SEED={cut_seed}): {}",
                run.stdout
            )
        });
        received.push(got[0]["received"].as_u64().unwrap());
        link.unstall();
        if run.status.success() {
            finished = true;
            break;
        }
        let e = run.err();
        assert!(
            e.contains("sync stopped before it finished") && e.contains("run it again to resume"),
            "CASESYNC_CUT_SEED={cut_seed}: {e}"
        );
        assert!(
            got[0]["error"]
                .as_str()
                .unwrap()
                .contains("without progress"),
            "CASESYNC_CUT_SEED={cut_seed}: {got}"
        );
    }
    assert!(
        received[0] > 0 && received[0] < total,
        "CASESYNC_CUT_SEED={cut_seed}: {received:?} of {total}"
    );
    // Kept: the last run fetches only the rest.
    if !finished {
        let again: serde_json::Value = serde_json::from_str(
            &b.cmd(&[
                "--json",
                "sync",
                "--once",
                "--peer",
                &via,
                "--timeout",
                "30",
            ])
            .ok(),
        )
        .unwrap();
        received.push(again[0]["received"].as_u64().unwrap());
    }
    assert_eq!(
        received.iter().sum::<u64>(),
        total,
        "CASESYNC_CUT_SEED={cut_seed}: no entry is fetched twice: {received:?}"
    );
    assert_eq!(b.json(&["case", "show", &case])["entries"], total);
    assert_eq!(list(a, &case), list(b, &case));
}

/// Issue 22 (bytes on the wire): a node dials each peer it is given once.
/// `sync --once` and `serve` both dialed every `--peer` address at start and
/// again on their first redial tick, so each reached its peer over two
/// connections (two handshakes, two digest rounds). An edit pushed over the
/// one connection arrives, and no second connection follows.
#[test]
fn a_peer_given_with_peer_is_reached_over_one_connection() {
    use crate::proxy::Link;
    let t = TestDir::new("net_one_conn");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Single");
    a.add_member(&case, b, "contributor");
    let victor = a.add(&case, "person", &[("name", "Victor Ilie")], &[]);
    let sa = Server::start(a, &[]);
    let link = Link::new();
    link.set_target(crate::partition::port_of(&sa.addr));
    let via = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", link.port(), peer_of(a));

    b.cmd(&["sync", "--once", "--peer", &via, "--timeout", "30"])
        .ok();
    assert!(b.cmd(&["record", "show", &victor]).status.success());
    assert_eq!(
        link.forwarded(),
        1,
        "sync --once opened more than one connection"
    );

    let sb = Server::start(b, &[&via]);
    a.cmd(&["record", "edit", &victor, "--field", "status=arrested"])
        .ok();
    eventually(30, "B holds A's edit", || {
        b.cmd(&["record", "show", &victor])
            .ok()
            .contains("arrested")
    });
    // Past the first redial ticks (every second).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        link.forwarded(),
        2,
        "serve opened more than one connection to its peer:\n{}",
        sb.log()
    );
}

/// One look at what `peer` lacks, in one read of `node`'s store: the
/// batch's body, what it says was sent, whether more remain, and its mark.
fn look(
    node: &casesync_node::Node,
    peer: &[u8; 32],
    known: &mut (Vec<casesync_node::net::protocol::CaseHave>, Vec<u8>),
    scope: casesync_node::sync::Scope,
) -> (Vec<u8>, usize, bool, casesync_node::store::ChangeMark) {
    let (items, mark) = node
        .store
        .read(|tx| {
            casesync_node::sync::items_for(
                node,
                tx,
                peer,
                &mut known.0,
                &mut known.1,
                casesync_node::net::protocol::RESPONSE_BUDGET,
                scope,
            )
        })
        .unwrap();
    (items.body.encode(), items.sent.len(), items.more, mark)
}

/// A push after a complete delivery looks only at the cases changed since
/// (so it costs those, not every case the node holds), and must carry
/// exactly what a look at every case would: changes in several cases at
/// once, two in one case, a control operation alone, and a registry
/// statement (which widens it to every case). Each round checks both looks
/// against one state of the store, then goes on from the scoped one; and
/// the anti-entropy digest, brought up to date case by case, against one
/// computed afresh.
#[test]
fn a_push_looks_only_at_changed_cases_and_carries_what_a_full_look_would() {
    use casesync_node::sync::Scope;
    use casesync_schema::bundle::BundleBody;
    let t = TestDir::new("net_push_scope");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let cases: Vec<String> = (0..4)
        .map(|i| {
            let case = a.create_case(&format!("Op {i}"));
            // Case 3 is not shared with b: nothing of it may ever go.
            if i < 3 {
                a.add_member(&case, b, "contributor");
            }
            case
        })
        .collect();
    let records: Vec<String> = cases
        .iter()
        .map(|case| a.add(case, "person", &[("name", "Marin Dobre")], &[]))
        .collect();
    let unlock = |n: &Node| {
        casesync_node::DataDir::new(&n.dir)
            .unlock(crate::util::PASSPHRASE.as_bytes())
            .unwrap()
    };
    let an = unlock(a);
    let peer = unlock(b).keys.public().ed25519;
    // b holds nothing: everything goes, batch by batch, to a first mark.
    let mut known = (Vec::new(), Vec::new());
    let mut mark = loop {
        let (_, _, more, mark) = look(&an, &peer, &mut known, Scope::Every);
        if !more {
            break mark;
        }
    };
    let (body, sent, _, _) = look(&an, &peer, &mut known.clone(), Scope::ChangedSince(mark));
    assert_eq!(sent, 0, "nothing changed since the mark, yet a push sends");
    let nothing = BundleBody::decode(&body).unwrap();
    assert!(nothing.cases.is_empty() && nothing.registry_ops.is_empty());

    // The anti-entropy digest, kept by case and brought up to date from the
    // cases changed since, is the one computed afresh (by a handle with
    // nothing kept).
    let digests_agree = |what: &str| {
        let kept = casesync_node::sync::digest(&an, an.store.conn(), &peer).unwrap();
        let fresh = unlock(a);
        let new = casesync_node::sync::digest(&fresh, fresh.store.conn(), &peer).unwrap();
        assert_eq!(
            kept, new,
            "{what}: the kept digest is not the one computed afresh"
        );
    };
    digests_agree("at first");
    let case_of = |id: &[u8; 16]| cases.iter().position(|c| uuid_bytes(c) == id[..]);
    let mut round = |what: &str, changed: &[usize], registry: bool| {
        digests_agree(what);
        let mut every = known.clone();
        let full = look(&an, &peer, &mut every, Scope::Every);
        let scoped = look(&an, &peer, &mut known, Scope::ChangedSince(mark));
        assert_eq!(
            (&scoped.0, scoped.1, scoped.2),
            (&full.0, full.1, full.2),
            "{what}: the push differs from a look at every case"
        );
        assert_eq!(scoped.3, full.3);
        let body = BundleBody::decode(&scoped.0).unwrap();
        let mut went: Vec<usize> = body
            .cases
            .iter()
            .map(|c| case_of(&c.case.0).expect("a case of a's"))
            .collect();
        went.sort();
        assert_eq!(went, changed, "{what}: cases sent");
        assert_eq!(!body.registry_ops.is_empty(), registry, "{what}: registry");
        assert!(!scoped.2, "{what}: one batch holds it all");
        mark = scoped.3;
    };

    // Two cases at once, one of them twice; the case b is no member of too.
    a.cmd(&["record", "edit", &records[1], "--field", "status=seen"])
        .ok();
    a.cmd(&["record", "edit", &records[1], "--field", "alias=Dobre"])
        .ok();
    a.add(&cases[2], "phone", &[("number", "+40 721 000 111")], &[]);
    a.add(&cases[3], "phone", &[("number", "+44 7700 900123")], &[]);
    round("edits in two cases", &[1, 2], false);

    // A control operation alone (a member added), in a case untouched since.
    a.add_member(&cases[0], c, "observer");
    round("a control operation alone", &[0], false);

    // A registry statement: every case is looked at, and the statement goes
    // (with the removal from case 0 that the revocation makes).
    a.cmd(&["trust", "revoke", &peer_of(c), "--reason", "left the team"])
        .ok();
    a.cmd(&["record", "edit", &records[2], "--field", "status=moved"])
        .ok();
    round("a registry statement", &[0, 2], true);
}

/// Between serving nodes whose anti-entropy rounds are an hour apart, only
/// pushes move anything: after the first complete delivery each push looks
/// only at the cases changed since, and every change still arrives, in any
/// case, one after another or several at once, a control operation alone
/// included.
#[test]
fn every_change_is_pushed_when_pushes_look_only_at_changed_cases() {
    let t = TestDir::new("net_push_changed");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let cases: Vec<String> = (0..3).map(|i| a.create_case(&format!("Op {i}"))).collect();
    for case in &cases {
        a.add_member(case, b, "contributor");
    }
    let records: Vec<String> = cases
        .iter()
        .map(|case| a.add(case, "person", &[("name", "Marin Dobre")], &[]))
        .collect();
    let hour: &[&str] = &["--anti-entropy", "3600"];
    let sa = Server::start_with(a, &[], &[], Some(hour));
    let _sb = Server::start_with(b, &[&sa.addr], &[], Some(hour));
    for r in &records {
        eventually(60, "b receives the cases on connecting", || {
            b.cmd(&["record", "show", r]).status.success()
        });
    }
    let status_at = |n: &Node, r: &str| {
        let v = n.json(&["record", "show", r]);
        crate::util::fields_of(&v)
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string()
    };
    // One case after another (the first push looks at every case, the next
    // ones at what changed), then two at once.
    for (step, i) in [0, 1, 2, 1].into_iter().enumerate() {
        let status = format!("step {step}");
        a.cmd(&[
            "record",
            "edit",
            &records[i],
            "--field",
            &format!("status={status}"),
        ])
        .ok();
        eventually(30, &format!("b receives {status} by push"), || {
            status_at(b, &records[i]) == status
        });
    }
    a.cmd(&["record", "edit", &records[0], "--field", "status=both"])
        .ok();
    a.cmd(&["record", "edit", &records[2], "--field", "status=both"])
        .ok();
    for r in [&records[0], &records[2]] {
        eventually(30, "b receives two cases' edits by push", || {
            status_at(b, r) == "both"
        });
    }
    // A control operation alone, in a case untouched since the last push.
    let c_peer = peer_of(c);
    assert!(!b.cmd(&["case", "show", &cases[1]]).ok().contains(&c_peer));
    a.add_member(&cases[1], c, "observer");
    eventually(30, "b learns of the new member by push", || {
        b.cmd(&["case", "show", &cases[1]]).ok().contains(&c_peer)
    });
}

/// A delivery of many chunks: a receiving node prepares each chunk of
/// entries (about 1 MiB) on the pool while it writes the one before, and
/// files new records after their chunk. Records made in the first chunk
/// and edited in entries of a later one, and every other record, arrive as
/// the sender holds them: the same listing, the edits applied, each record
/// filed once in the search index under what it now says, and FTS5's own
/// check passes (`log verify`).
#[test]
fn a_delivery_of_many_chunks_arrives_whole_with_edits_across_chunks() {
    let t = TestDir::new("net_chunks");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Chunks");
    a.add_member(&case, b, "contributor");
    // Notes of random hex do not compress: about 2.5 MiB of entries.
    let lines: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"type\":\"person\",\"fields\":{{\"name\":\"Person{i} Popa\",\"notes\":\"{}\"}}}}\n",
                crate::util::random_hex(100)
            )
        })
        .collect();
    let file = t.write("people.jsonl", lines);
    a.cmd(&["record", "import", &case, file.to_str().unwrap()])
        .ok();
    let id_of = |name: &str| -> String {
        a.list(&case)
            .iter()
            .find(|r| crate::util::str_of(&r["fields"], "name") == name)
            .map(|r| crate::util::str_of(r, "id").to_string())
            .unwrap()
    };
    // The first records imported are in the first entries; their edits in
    // the last ones.
    let edited: Vec<String> = (0..5).map(|i| id_of(&format!("Person{i} Popa"))).collect();
    for (i, id) in edited.iter().enumerate() {
        a.cmd(&[
            "record",
            "edit",
            id,
            "--field",
            &format!("name=Renamed{i} Ionescu"),
        ])
        .ok();
    }
    let sa = Server::start(a, &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "120"])
        .ok();
    let bytes: i64 = b
        .db()
        .query_row("SELECT SUM(length(bytes)) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert!(
        bytes > 2 << 20,
        "only {bytes} bytes of entries: not several chunks"
    );
    let held = |n: &Node| -> Vec<(String, serde_json::Value)> {
        n.list(&case)
            .iter()
            .map(|r| {
                (
                    crate::util::str_of(r, "id").to_string(),
                    r["fields"].clone(),
                )
            })
            .collect()
    };
    let on_b = held(b);
    assert_eq!(on_b.len(), 5000);
    assert_eq!(on_b, held(a), "b holds the case otherwise than a");
    for (i, id) in edited.iter().enumerate() {
        let hits: Vec<String> = b
            .json(&["search", &format!("renamed{i}")])
            .as_array()
            .unwrap()
            .iter()
            .map(|h| crate::util::str_of(h, "record").to_string())
            .collect();
        assert_eq!(hits, vec![id.clone()], "renamed{i}");
        let old = b.json(&["search", &format!("person{i}")]);
        assert!(
            !old.as_array()
                .unwrap()
                .iter()
                .any(|h| crate::util::str_of(h, "record") == id),
            "found under its old name: {old}"
        );
        if i == 0 {
            // No other record's name starts with "person0".
            assert_eq!(old, serde_json::json!([]), "{old}");
        }
    }
    let v = b.json(&["log", "verify"]);
    assert_eq!(v["failed"], 0, "{v}");
}
