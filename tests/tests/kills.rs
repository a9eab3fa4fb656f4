//! SIGKILL at random points: during import, edits, sync (sender and receiver),
//! key rotation and membership change. After every kill the store passes
//! `PRAGMA integrity_check`, `log verify` and `audit verify`, every write whose
//! command returned success is there, and at the end the node resyncs to the
//! same state as its peer.
//!
//! CI makes `CASESYNC_KILLS` (default 3) kills per scenario; `scripts/soak.sh`
//! makes hundreds and prints the counts each scenario reports. The kill times
//! come from a seeded generator (`CASESYNC_KILL_SEED`, printed), though a replay
//! cannot repeat the processes' own timing.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::network::{Server, eventually, federation};
use crate::util::{
    Node, Output, Rng, TestDir, card_of, case_state, check_store, env_count, peer_of, soak_report,
};

/// What one command did before the kill.
enum Run {
    Done(Output),
    Killed,
}

/// What a finished command printed (it printed little: the pipes never filled).
fn collect(
    mut child: std::process::Child,
    cmdline: String,
    status: std::process::ExitStatus,
) -> Output {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Output {
        cmdline,
        status,
        stdout,
        stderr,
    }
}

/// Kills commands at random moments and keeps the counts.
struct Harness {
    scenario: &'static str,
    seed: u64,
    rng: Rng,
    /// Kills delivered while the process ran.
    killed: usize,
    /// Commands that finished before their kill time.
    finished: usize,
    /// How long each kind of command usually takes (ms), learnt from the
    /// runs that finished: kill times are drawn from 0 to 1.25x this.
    typical: BTreeMap<&'static str, u64>,
    /// Scenario-specific counts for the report.
    notes: serde_json::Map<String, Value>,
}

impl Harness {
    fn new(scenario: &'static str) -> Harness {
        let seed = std::env::var("CASESYNC_KILL_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("kill scenario {scenario}: seed {seed} (CASESYNC_KILL_SEED={seed} to reuse)");
        Harness {
            scenario,
            seed,
            rng: Rng::new(seed),
            killed: 0,
            finished: 0,
            typical: BTreeMap::new(),
            notes: serde_json::Map::new(),
        }
    }

    fn kills(&self) -> usize {
        env_count("CASESYNC_KILLS", 3)
    }

    /// Runs `args` on `node` and sends SIGKILL at a random moment within the
    /// time such a command usually takes (`kind`, first guess `guess_ms`).
    fn run(&mut self, node: &Node, kind: &'static str, guess_ms: u64, args: &[&str]) -> Run {
        let typical = *self.typical.entry(kind).or_insert(guess_ms);
        let at = Duration::from_millis(self.rng.below(typical * 5 / 4 + 1));
        let cmdline = node.cmdline(args, &[]);
        let mut child = node
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let took = started.elapsed().as_millis() as u64;
                self.typical
                    .insert(kind, (typical + took).div_ceil(2).max(1));
                self.finished += 1;
                return Run::Done(collect(child, cmdline, status));
            }
            if started.elapsed() >= at {
                // Child::kill is SIGKILL: no destructor, no rollback, no checkpoint.
                let _ = child.kill();
                let status = child.wait().expect("wait for the killed command");
                use std::os::unix::process::ExitStatusExt;
                if status.signal() == Some(9) {
                    self.killed += 1;
                    return Run::Killed;
                }
                // It finished between the last poll and the kill.
                self.finished += 1;
                return Run::Done(collect(child, cmdline, status));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn note(&mut self, key: &str, value: impl Into<Value>) {
        self.notes.insert(key.to_string(), value.into());
    }

    /// Prints the counts (and appends them to the soak report).
    fn report(self) {
        let mut line = json!({
            "harness": "kills",
            "scenario": self.scenario,
            "seed": self.seed,
            "kills": self.killed,
            "finished": self.finished,
        });
        for (k, v) in self.notes {
            line[k] = v;
        }
        eprintln!("kill scenario report: {line}");
        soak_report(&line);
    }
}

/// A peer that syncs with the killed node (now serving) ends up with the
/// same records, and both stores still verify.
fn resyncs(killed: &Node, peer: &Node, case: &str) {
    let server = Server::start(killed, &[]);
    peer.cmd(&["sync", "--once", "--peer", &server.addr, "--timeout", "300"])
        .ok();
    drop(server);
    assert_eq!(
        peer.list(case),
        killed.list(case),
        "the peer's records differ after a resync"
    );
    check_store(peer, "the resync");
}

/// A federation of two nodes sharing one case, led by the first.
fn shared_case(t: &TestDir) -> (Vec<Node>, String) {
    let nodes = federation(t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let case = nodes[0].create_case("Op Lantern");
    nodes[0].add_member(&case, &nodes[1], "contributor");
    (nodes, case)
}

/// The ids of the case's records on `node`.
fn record_ids(node: &Node, case: &str) -> std::collections::BTreeSet<String> {
    node.list(case)
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect()
}

fn records_in(node: &Node, case: &str) -> u64 {
    let shown = node.json(&["case", "show", case]);
    shown["records"]
        .as_u64()
        .unwrap_or_else(|| panic!("case show has no record count: {shown}"))
}

/// The texts of the case's notes, with how often each occurs.
fn note_texts(node: &Node, case: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in node.list(case) {
        if let Some(t) = r["fields"]["text"].as_str() {
            *out.entry(t.to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn kills_during_import() {
    const N: usize = 300;
    let mut h = Harness::new("import");
    let t = TestDir::new("kill_import");
    let (nodes, case) = shared_case(&t);
    let node = &nodes[0];
    let file = |i: usize| {
        let mut s = String::new();
        for j in 0..N {
            s.push_str(&format!(
                "{{\"type\":\"note\",\"fields\":{{\"text\":\"imp{i}-{j}\"}}}}\n"
            ));
        }
        t.write(&format!("batch{i}.jsonl"), s)
    };
    let mut acked = vec![];
    let mut landed_killed = 0;
    for i in 0..h.kills() {
        let path = file(i).display().to_string();
        let before = records_in(node, &case) as usize;
        match h.run(node, "import", 600, &["record", "import", &case, &path]) {
            Run::Done(out) => {
                out.ok();
                acked.push(i);
            }
            Run::Killed => {}
        }
        check_store(node, &format!("import {i}"));
        let after = records_in(node, &case) as usize;
        let added = after - before;
        assert!(
            added == 0 || added == N,
            "import {i}: a killed import must be all or nothing, {added} of {N} landed"
        );
        if acked.last() == Some(&i) {
            assert_eq!(added, N, "import {i} returned success but did not land");
        } else if added == N {
            landed_killed += 1;
        }
    }
    let texts = note_texts(node, &case);
    for i in 0..h.kills() {
        let n = (0..N)
            .filter(|j| texts.get(&format!("imp{i}-{j}")) == Some(&1))
            .count();
        assert!(n == 0 || n == N, "import {i}: {n} of {N} records");
        if acked.contains(&i) {
            assert_eq!(n, N, "acknowledged import {i} lost records");
        }
    }
    resyncs(node, &nodes[1], &case);
    h.note("committed_before_kill", landed_killed);
    h.report();
}

#[test]
fn kills_during_edits() {
    let mut h = Harness::new("edit");
    let t = TestDir::new("kill_edit");
    let (nodes, case) = shared_case(&t);
    let node = &nodes[0];
    let victor = node.add(&case, "person", &[("name", "Victor Ilie")], &[]);
    // After each kill the alias is one of these: the last acknowledged value
    // or a value whose command was killed since.
    let mut alias: Vec<Value> = vec![Value::Null];
    let mut acked_notes = vec![];
    let mut killed_notes = vec![];
    for i in 0..h.kills() {
        if h.rng.percent(50) {
            let v = format!("alias-{i}");
            let field = format!("alias={v}");
            match h.run(
                node,
                "edit",
                80,
                &["record", "edit", &victor, "--field", &field],
            ) {
                Run::Done(out) => {
                    out.ok();
                    alias = vec![Value::from(v)];
                }
                Run::Killed => alias.push(Value::from(v)),
            }
        } else {
            let text = format!("note-{i}");
            let field = format!("text={text}");
            match h.run(
                node,
                "add",
                80,
                &["record", "add", &case, "--type", "note", "--field", &field],
            ) {
                Run::Done(out) => {
                    out.ok();
                    acked_notes.push(text);
                }
                Run::Killed => killed_notes.push(text),
            }
        }
        check_store(node, &format!("edit {i}"));
        let now = node.show(&victor)["fields"]["alias"].clone();
        assert!(
            alias.contains(&now),
            "after edit {i} the alias is {now}, expected one of {alias:?}"
        );
        alias = vec![now];
    }
    let texts = note_texts(node, &case);
    for n in &acked_notes {
        assert_eq!(
            texts.get(n),
            Some(&1),
            "acknowledged note {n} is not there once"
        );
    }
    let landed = killed_notes
        .iter()
        .filter(|n| texts.get(*n).copied().unwrap_or(0) == 1)
        .count();
    assert_eq!(
        texts.len(),
        acked_notes.len() + landed,
        "notes that no command wrote: {texts:?}"
    );
    resyncs(node, &nodes[1], &case);
    h.note("acknowledged_notes", acked_notes.len());
    h.report();
}

#[test]
fn kills_of_the_receiver_during_sync() {
    kills_during_sync(true);
}

#[test]
fn kills_of_the_sender_during_sync() {
    kills_during_sync(false);
}

/// A (the sender: it imports a batch before each round) and B sync; one of
/// them is SIGKILLed at a random moment of each round while the batch flows.
/// The killed node also writes while serving; those writes must survive.
fn kills_during_sync(kill_receiver: bool) {
    const N: usize = 400;
    let mut h = Harness::new(if kill_receiver {
        "sync_receiver"
    } else {
        "sync_sender"
    });
    let t = TestDir::new(if kill_receiver {
        "kill_sync_recv"
    } else {
        "kill_sync_send"
    });
    let (nodes, case) = shared_case(&t);
    let (a, b) = (&nodes[0], &nodes[1]);
    let (victim, steady) = if kill_receiver { (b, a) } else { (a, b) };
    let steady_server = Server::start(steady, &[]);
    let mut acked_on_victim = vec![];
    let mut mid_sync = 0;
    for i in 0..h.kills() {
        let mut batch = String::new();
        for j in 0..N {
            batch.push_str(&format!(
                "{{\"type\":\"note\",\"fields\":{{\"text\":\"sync{i}-{j}\"}}}}\n"
            ));
        }
        let path = t.write(&format!("batch{i}.jsonl"), batch);
        a.cmd(&["record", "import", &case, &path.display().to_string()])
            .ok();
        let server = Server::start(victim, &[&steady_server.addr]);
        let started = Instant::now();
        let id = victim.add(&case, "note", &[("text", &format!("victim-{i}"))], &[]);
        acked_on_victim.push(id);
        let typical = *h.typical.entry("sync").or_insert(700);
        let at = Duration::from_millis(h.rng.below(typical));
        std::thread::sleep(at.saturating_sub(started.elapsed()));
        server.kill9();
        h.killed += 1;
        check_store(victim, &format!("{} killed in round {i}", h.scenario));
        // This round's acknowledged write survived the kill (all of them are
        // checked again at the end).
        if let Some(id) = acked_on_victim.last() {
            victim.cmd(&["record", "show", id]).ok();
        }
        if records_in(a, &case) != records_in(b, &case) {
            mid_sync += 1;
        }
    }
    // The victim comes back for good: both converge.
    let _server = Server::start(victim, &[&steady_server.addr]);
    eventually(120, "both nodes hold the same records", || {
        let l = a.list(&case);
        l.len() == h.kills() * (N + 1) && l == b.list(&case)
    });
    drop(_server);
    drop(steady_server);
    let held = record_ids(victim, &case);
    for id in &acked_on_victim {
        assert!(held.contains(id), "acknowledged record {id} was lost");
    }
    for n in [a, b] {
        check_store(n, "the final resync");
    }
    h.note("killed_while_behind", mid_sync);
    h.report();
}

#[test]
fn kills_during_membership_changes_and_key_rotation() {
    let mut h = Harness::new("membership_and_rotation");
    let t = TestDir::new("kill_members");
    let (nodes, case) = shared_case(&t);
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut acked = vec![a.add(&case, "note", &[("text", "epoch 1")], &[])];
    let is_member = |pid: &str| {
        a.json(&["case", "show", &case])["members"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["peer_id"] == pid))
    };
    let (mut add_killed, mut remove_killed) = (0, 0);
    for i in 0..h.kills() {
        // A new node for each round: removal is final.
        let p = t.node(&format!("pool{i}"));
        p.init(&format!("pool-{i}"), "Pool", "DE");
        let (card, pid) = (card_of(&p), peer_of(&p));
        a.cmd(&["federation", "invite", &card]).ok();
        let add = [
            "case",
            "member",
            "add",
            &case,
            &card,
            "--role",
            "contributor",
        ];
        if let Run::Done(out) = h.run(a, "member add", 300, &add) {
            out.ok();
            assert!(is_member(&pid), "member add {i} returned success");
        } else {
            add_killed += 1;
        }
        check_store(a, &format!("member add {i}"));
        if !is_member(&pid) {
            a.cmd(&add).ok();
        }
        let epochs_before = a.json(&["case", "show", &case])["key_epochs"].clone();
        let remove = [
            "case", "member", "remove", &case, &pid, "--reason", "rotation",
        ];
        if let Run::Done(out) = h.run(a, "member remove", 400, &remove) {
            out.ok();
            assert!(!is_member(&pid), "member remove {i} returned success");
        } else {
            remove_killed += 1;
        }
        check_store(a, &format!("member remove {i}"));
        let shown = a.json(&["case", "show", &case]);
        if is_member(&pid) {
            assert_eq!(shown["key_epochs"], epochs_before, "{shown}");
            a.cmd(&remove).ok();
        }
        let shown = a.json(&["case", "show", &case]);
        assert_eq!(
            shown["key_epochs"],
            i as u64 + 2,
            "one epoch per removal: {shown}"
        );
        assert_eq!(
            shown["removed"].as_array().map(Vec::len),
            Some(i + 1),
            "{shown}"
        );
        acked.push(a.add(&case, "note", &[("text", &format!("epoch {}", i + 2))], &[]));
    }
    let on_a = record_ids(a, &case);
    assert!(
        acked.iter().all(|id| on_a.contains(id)),
        "A lost an acknowledged record"
    );
    // B, a member throughout, receives every epoch key and every record.
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let state = |n: &Node| case_state(n, &case);
    eventually(120, "B holds the case as A does", || {
        state(b).is_some() && state(b) == state(a) && b.list(&case) == a.list(&case)
    });
    drop(sb);
    drop(sa);
    // Every record, from every epoch, opens on B.
    let on_b = record_ids(b, &case);
    assert!(
        acked.iter().all(|id| on_b.contains(id)),
        "B lacks an acknowledged record"
    );
    b.cmd(&["record", "show", &acked[acked.len() - 1]]).ok();
    b.cmd(&["record", "show", &acked[0]]).ok();
    check_store(a, "the final resync");
    check_store(b, "the final resync");
    h.note("member_add_killed", add_killed);
    h.note("member_remove_killed", remove_killed);
    h.report();
}
