//! Evidence files (issue 18): stored with the case in sealed pieces, given
//! back verified, every step in the custody trail, exported with a sheet a
//! court checks with `sha256sum` and `openssl`; and every kind of tampering
//! with the stored pieces found and named.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::{Node, TestDir, files_under};

/// Bytes that do not repeat (a counter through SHA-256), so a piece moved
/// within the file cannot open as another by chance.
fn file_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        let mut block = vec![seed];
        block.extend_from_slice(&i.to_be_bytes());
        out.extend_from_slice(&casesync_crypto::hash::sha256(&block).0);
        i += 1;
    }
    out.truncate(len);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    casesync_crypto::hash::sha256(bytes).to_hex()
}

/// The path of a stored piece by its hash.
fn piece_path(n: &Node, hash: &str) -> PathBuf {
    n.dir.join("pieces").join(&hash[..2]).join(hash)
}

fn node_with_case(t: &TestDir) -> (Node, String) {
    let n = t.node("uk-east");
    n.init("uk-east", "ROCU East", "GB");
    let case = n.create_case("Op Lantern");
    (n, case)
}

fn add(n: &Node, case: &str, file: &Path, extra: &[&str]) -> String {
    let mut args = vec!["evidence", "add", case, file.to_str().unwrap()];
    args.extend(extra);
    n.cmd(&args).ok().trim().to_string()
}

/// The pieces of a record's file, in order, from its export's sheet.
fn pieces_of(t: &TestDir, n: &Node, record: &str, tag: &str) -> Vec<String> {
    let dir = t.join(format!("sheet-{tag}"));
    n.cmd(&[
        "--justification",
        "test",
        "evidence",
        "export",
        record,
        "--out",
        dir.to_str().unwrap(),
    ])
    .ok();
    let sheet: Value =
        serde_json::from_slice(&std::fs::read(dir.join("sheet.json")).unwrap()).unwrap();
    sheet["pieces_sha256"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn evidence_is_stored_given_back_verified_and_exported_with_its_custody() {
    let t = TestDir::new("evidence_round_trip");
    let (n, case) = node_with_case(&t);
    // Two and a half pieces.
    let bytes = file_bytes(5 << 19, 1);
    let src = t.write("phone-extraction.zip", &bytes);
    let id = add(
        &n,
        &case,
        &src,
        &["--title", "Samsung A52", "--field", "exhibit=JH/3"],
    );
    let rec = n.json(&["record", "show", &id]);
    assert_eq!(rec["type"], "evidence");
    assert_eq!(rec["fields"]["file"], "phone-extraction.zip");
    assert_eq!(rec["fields"]["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(rec["fields"]["size"], bytes.len() as u64);
    assert_eq!(rec["fields"]["media_type"], "application/zip");
    assert_eq!(rec["fields"]["exhibit"], "JH/3");
    assert_eq!(rec["fields"]["title"], "Samsung A52");
    // Three sealed pieces and a manifest, none of them the plaintext.
    let stored = files_under(&n.dir.join("pieces"));
    assert_eq!(stored.len(), 4, "{stored:?}");
    // The computed fields cannot be set by hand.
    let err = n
        .cmd(&[
            "evidence",
            "add",
            &case,
            src.to_str().unwrap(),
            "--field",
            "sha256=00",
        ])
        .err();
    assert!(err.contains("computed from the file"), "{err}");

    // Given back whole, never over a file that exists.
    let out = t.join("back.zip");
    let said = n
        .cmd(&[
            "--justification",
            "review",
            "evidence",
            "get",
            &id,
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    assert!(said.contains(&sha256_hex(&bytes)), "{said}");
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let err = n
        .cmd(&["evidence", "get", &id, "--out", out.to_str().unwrap()])
        .err();
    assert!(err.contains("exists"), "{err}");
    let v = n.json(&["evidence", "verify", &id]);
    assert_eq!(v["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(v["pieces"], 3);

    // Export: a disclosure, so a justification first.
    let dir = t.join("exhibit-JH3");
    let err = n
        .cmd(&["evidence", "export", &id, "--out", dir.to_str().unwrap()])
        .err();
    assert!(err.contains("--justification"), "{err}");
    n.cmd(&[
        "--justification",
        "disclosure to CPS",
        "evidence",
        "export",
        &id,
        "--out",
        dir.to_str().unwrap(),
    ])
    .ok();
    // A court checks it with standard tools, as the README there says.
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    let signed = [
        b"casesync/evidence-sheet/v1\0".as_slice(),
        &std::fs::read(dir.join("sheet.json")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("sheet.signed"), &signed).unwrap();
    let check = |sig: &str| {
        Command::new("openssl")
            .args([
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "node-key.pem",
                "-rawin",
                "-in",
                "sheet.signed",
                "-sigfile",
                sig,
            ])
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let ok = check("sheet.json.sig");
    assert!(
        ok.status.success()
            && String::from_utf8_lossy(&ok.stdout).contains("Verified Successfully"),
        "{ok:?}"
    );
    // A sheet changed after signing does not verify.
    let mut forged = signed.clone();
    let at = forged.len() - 10;
    forged[at] ^= 1;
    std::fs::write(dir.join("sheet.signed"), &forged).unwrap();
    assert!(!check("sheet.json.sig").status.success());
    let sheet: Value =
        serde_json::from_slice(&std::fs::read(dir.join("sheet.json")).unwrap()).unwrap();
    assert_eq!(sheet["sha256"], sha256_hex(&bytes).as_str());
    assert_eq!(sheet["pieces_sha256"].as_array().unwrap().len(), 3);
    let actions: Vec<&str> = sheet["custody"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // Refusals are custody events too (the second get, the export without
    // a justification).
    assert_eq!(
        actions,
        [
            "evidence.add",
            "evidence.open",
            "evidence.open",
            "evidence.verify",
            "evidence.export"
        ]
    );

    // The custody trail: each step, the person and why.
    let trail = n.json(&["evidence", "custody", &id]);
    let trail = trail.as_array().unwrap();
    let steps: Vec<(&str, Option<&str>)> = trail
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["justification"].as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("evidence.add", None),
            ("evidence.open", Some("review")),
            ("evidence.open", None),
            ("evidence.verify", None),
            ("evidence.export", None),
            ("evidence.export", Some("disclosure to CPS")),
        ],
        "{trail:?}"
    );
    assert_eq!(trail[2]["outcome"], "refused");
    assert_eq!(trail[4]["outcome"], "refused");
}

#[test]
fn tampered_pieces_are_found_and_named_and_nothing_is_written() {
    let t = TestDir::new("evidence_tamper");
    let (n, case) = node_with_case(&t);
    let a = file_bytes(3 << 20, 1);
    let id = add(&n, &case, &t.write("a.bin", &a), &[]);
    let b = file_bytes(3 << 20, 2);
    let other = add(&n, &case, &t.write("b.bin", &b), &[]);
    let pa = pieces_of(&t, &n, &id, "a");
    let pb = pieces_of(&t, &n, &other, "b");
    assert_eq!((pa.len(), pb.len()), (3, 3));
    let out = t.join("out.bin");
    let fails = |what: &str, piece: usize| {
        let err = n.cmd(&["evidence", "verify", &id]).err();
        assert!(
            err.contains(&format!("piece {piece} of 3 ({}", &pa[piece - 1][..12]))
                && err.contains(what),
            "{err}"
        );
        let err = n
            .cmd(&["evidence", "get", &id, "--out", out.to_str().unwrap()])
            .err();
        assert!(err.contains(&format!("piece {piece} of 3")), "{err}");
        assert!(!out.exists(), "a failed get leaves no file");
        let dir = out.parent().unwrap();
        assert!(
            files_under(dir)
                .iter()
                .all(|f| !f.to_string_lossy().contains("casesync-part")),
            "a failed get leaves no partial file"
        );
    };
    let keep = |i: usize| std::fs::read(piece_path(&n, &pa[i])).unwrap();
    let put = |i: usize, bytes: &[u8]| std::fs::write(piece_path(&n, &pa[i]), bytes).unwrap();
    let originals: Vec<Vec<u8>> = (0..3).map(keep).collect();

    // A flipped byte.
    let mut flipped = originals[1].clone();
    flipped[1000] ^= 0x20;
    put(1, &flipped);
    fails("damaged", 2);
    put(1, &originals[1]);
    // Two pieces swapped.
    put(0, &originals[2]);
    put(2, &originals[0]);
    fails("damaged", 1);
    put(0, &originals[0]);
    put(2, &originals[2]);
    // The last piece cut short.
    put(2, &originals[2][..originals[2].len() / 2]);
    fails("damaged", 3);
    put(2, &originals[2]);
    // A piece of another file put in its place.
    put(1, &std::fs::read(piece_path(&n, &pb[1])).unwrap());
    fails("damaged", 2);
    put(1, &originals[1]);
    // A piece gone.
    std::fs::remove_file(piece_path(&n, &pa[2])).unwrap();
    fails("not on this node", 3);
    put(2, &originals[2]);

    // Whole again: verified, and every failure is in the trail as refused.
    n.cmd(&["evidence", "verify", &id]).ok();
    let trail = n.json(&["evidence", "custody", &id]);
    let refused = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "refused")
        .count();
    assert_eq!(refused, 10, "{trail}");
}

/// The record's file on `n`: verified whole (its pieces all here and sound).
fn verified(n: &Node, id: &str) -> bool {
    n.cmd(&["evidence", "verify", id]).status.success()
}

#[test]
fn evidence_reaches_members_by_their_fetch_policy_and_no_one_else() {
    use crate::network::{Server, eventually, federation};
    let t = TestDir::new("evidence_sync");
    let nodes = federation(
        &t,
        &[
            ("uk-east", "GB"),
            ("ro-police", "RO"),
            ("europol", "NL"),
            ("outsider", "NL"),
        ],
    );
    let (a, b, c, d) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    a.add_member(&case, c, "observer");
    let bytes = file_bytes((7 << 19) + 11, 3);
    let id = add(a, &case, &t.write("bank-statement.pdf", &bytes), &[]);
    let hashes = pieces_of(&t, a, &id, "a");
    let sa = Server::start(a, &[]);
    let sb = Server::start(b, &[&sa.addr]);
    let sc = Server::start_with(c, &[&sa.addr], &[], Some(&["--fetch", "on-open"]));
    let sd = Server::start(d, &[&sa.addr]);

    // B (eager) fetches the file as soon as its record arrives, checked.
    eventually(60, "B holds the whole file", || verified(b, &id));
    let out = t.join("b.pdf");
    b.cmd(&["evidence", "get", &id, "--out", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let trail = b.json(&["evidence", "custody", &id]);
    assert!(
        trail
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "evidence.receive"
                && e["peer"] == crate::util::peer_of(a).as_str()),
        "{trail}"
    );

    // C (an observer, on-open) has the record and the manifest, not the
    // file, until someone opens it; then serve fetches it.
    eventually(60, "C has the record", || {
        c.cmd(&["record", "show", &id]).status.success()
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    let held = |n: &Node| hashes.iter().filter(|h| piece_path(n, h).exists()).count();
    assert_eq!(held(c), 0, "on-open fetched pieces nobody opened");
    let err = c
        .cmd(&[
            "evidence",
            "get",
            &id,
            "--out",
            t.join("c.pdf").to_str().unwrap(),
        ])
        .err();
    assert!(err.contains("not on this node"), "{err}");
    eventually(60, "C fetches the file once opened", || verified(c, &id));

    // D is no member: nothing of the case, and a direct request for the
    // pieces by their hashes is answered empty.
    assert!(!d.cmd(&["record", "show", &id]).status.success());
    assert_eq!(held(d), 0);
    let empty = ask_for_pieces(d, &sa.addr, a, &hashes);
    assert!(
        empty.iter().all(|p| p.is_empty()),
        "a non-member got pieces"
    );

    // Removed, C gets nothing added after: not the record, not the pieces.
    a.cmd(&[
        "case",
        "member",
        "remove",
        &case,
        &crate::util::peer_of(c),
        "--reason",
        "left the JIT",
    ])
    .ok();
    let later = add(a, &case, &t.write("later.bin", file_bytes(1 << 20, 4)), &[]);
    let later_pieces = pieces_of(&t, a, &later, "later");
    eventually(60, "B holds the later file", || verified(b, &later));
    assert!(!c.cmd(&["record", "show", &later]).status.success());
    let empty = ask_for_pieces(c, &sa.addr, a, &later_pieces);
    assert!(
        empty.iter().all(|p| p.is_empty()),
        "a removed member got new pieces"
    );
    drop((sa, sb, sc, sd));
}

/// A member of case X who learnt the root of case Y's file (a former member
/// of Y, say) names it in records of its own in X: one of its own id, one
/// claiming the id of Y's record. Neither gets it Y's file: its manifest
/// belongs to Y's record (it names it, and its key opens only under Y's
/// keys). A node that saw X's records first still fetches, keeps and opens
/// Y's file for Y, serves it to no one through X, and logs the claims.
#[test]
fn a_member_cannot_take_another_cases_file_by_naming_its_root() {
    use crate::hostile_peer::{accepted, connect, local, writer};
    use crate::network::{Server, eventually, federation};
    use casesync_schema::record::{FieldValue, RecordInput, RecordType, ReleasableTo};
    let t = TestDir::new("evidence_claimed_root");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("rogue", "NL")],
    );
    let (a, b, h) = (&nodes[0], &nodes[1], &nodes[2]);
    let x = a.create_case("X");
    a.add_member(&x, h, "contributor");
    let y = a.create_case("Y");
    let bytes = file_bytes((3 << 20) + 5, 9);
    let id_y = add(a, &y, &t.write("ledger.xlsx", &bytes), &[]);
    let root = a.show(&id_y)["fields"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let mut hashes = vec![root.clone()];
    hashes.extend(pieces_of(&t, a, &id_y, "y"));
    let sa = Server::start(a, &[]);
    h.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();

    // H writes two evidence records in X naming Y's file.
    let case_x: casesync_schema::CaseId = x.parse().unwrap();
    let (hn, epoch_x, key_x, federation_id) = writer(h, case_x);
    let target: libp2p::PeerId = crate::util::peer_of(a).parse().unwrap();
    let claim = |id_field: &str| RecordInput {
        handling: Default::default(),
        record_type: RecordType::Evidence,
        fields: [
            ("file", FieldValue::Str("ledger.xlsx".into())),
            ("size", FieldValue::Int(bytes.len() as i64)),
            ("sha256", FieldValue::Str(sha256_hex(&bytes))),
            ("content", FieldValue::Str(root.clone())),
            ("media_type", FieldValue::Str(id_field.into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        grading: None,
        releasable_to: ReleasableTo(vec![]),
    };
    let own = casesync_schema::RecordId::new_v7();
    local(async {
        let hostile = connect(&hn.keys, &sa.addr, target, federation_id).await;
        let one = hostile.entry_making(
            case_x,
            1,
            casesync_crypto::Hash::ZERO,
            (epoch_x, &key_x),
            own,
            &claim("application/octet-stream"),
        );
        let two = hostile.entry_making(
            case_x,
            2,
            one.hash(),
            (epoch_x, &key_x),
            id_y.parse().unwrap(),
            &claim("application/vnd.ms-excel"),
        );
        let r = hostile
            .deliver(case_x, vec![one.bytes().to_vec(), two.bytes().to_vec()])
            .await;
        assert_eq!(accepted(&r), (2, 0), "H's records are records of X");
    });
    let claimed_own = format!("{own}@{x}");
    let claimed_id = format!("{id_y}@{x}");
    // A, who made the file, gives H nothing of it.
    eventually(30, "A checked H's claims", || {
        a.json(&["audit", "list", "--action", "sync.reject"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("names file")
            })
            .count()
            == 2
    });
    let got = ask_for_pieces(h, &sa.addr, a, &hashes);
    assert!(got.iter().all(|p| p.is_empty()), "H got Y's file from A");

    // B sees X's records first (a member of X), then joins Y.
    a.add_member(&x, b, "contributor");
    b.cmd(&["sync", "--once", "--peer", &sa.addr, "--timeout", "30"])
        .ok();
    assert!(b.cmd(&["record", "show", &claimed_own]).status.success());
    a.add_member(&y, b, "contributor");
    let sb = Server::start(b, &[&sa.addr]);
    // (By id alone the record is ambiguous on B: H claimed it in X.)
    let in_y = format!("{id_y}@{y}");
    eventually(60, "B holds Y's file, checked", || verified(b, &in_y));
    let out = t.join("b.xlsx");
    b.cmd(&["evidence", "get", &in_y, "--out", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Through X the file opens for no one, and B serves H none of it.
    for claimed in [&claimed_own, &claimed_id] {
        let err = b
            .cmd(&[
                "evidence",
                "get",
                claimed,
                "--out",
                t.join("h.bin").to_str().unwrap(),
            ])
            .err();
        assert!(
            err.contains("another record") || err.contains("no key epoch"),
            "{claimed}: {err}"
        );
    }
    let got = ask_for_pieces(h, &sb.addr, b, &hashes);
    assert!(got.iter().all(|p| p.is_empty()), "H got Y's file from B");
    let rejected = b.json(&["audit", "list", "--action", "sync.reject"]);
    let named: Vec<&str> = rejected
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .filter(|d| d.contains("names file"))
        .collect();
    assert_eq!(named.len(), 2, "{rejected}");
    drop((sa, sb));
}

/// Asks `from`'s serving node at `addr` for pieces, as `asker` (its keys, over
/// real libp2p): what a node would get if it asked by hash.
fn ask_for_pieces(asker: &Node, addr: &str, from: &Node, hashes: &[String]) -> Vec<Vec<u8>> {
    use casesync_node::net::protocol::{PieceRequest, PieceResponse};
    let hn = casesync_node::DataDir::new(&asker.dir)
        .unlock(crate::util::PASSPHRASE.as_bytes())
        .unwrap();
    let federation = casesync_node::trust::load(hn.store.conn())
        .unwrap()
        .unwrap()
        .federation;
    let target: libp2p::PeerId = crate::util::peer_of(from).parse().unwrap();
    crate::hostile_peer::local(async {
        let h = crate::hostile_peer::connect(&hn.keys, addr, target, federation).await;
        let r = h
            .client
            .request_pieces(
                target,
                PieceRequest::Get {
                    federation: federation.0.to_vec(),
                    hashes: hashes
                        .iter()
                        .take(8)
                        .map(|x| {
                            serde_bytes::ByteBuf::from(casesync_crypto::hash::from_hex(x).unwrap())
                        })
                        .collect(),
                },
            )
            .await
            .unwrap();
        match r {
            PieceResponse::Pieces { pieces } => pieces.into_iter().map(|p| p.into_vec()).collect(),
            PieceResponse::Refused { .. } => vec![],
        }
    })
}

/// Hashes of the complete pieces on `n` (written and renamed into place).
fn stored_pieces(n: &Node) -> std::collections::BTreeSet<String> {
    let dir = n.dir.join("pieces");
    if !dir.exists() {
        return Default::default();
    }
    files_under(&dir)
        .into_iter()
        .filter_map(|f| f.file_name().map(|x| x.to_string_lossy().into_owned()))
        .filter(|name| name.len() == 64)
        .collect()
}

/// Hashes `serve` logged as sent (at debug level), in order.
fn sent(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.split("sent evidence piece ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn a_fetch_cut_by_kills_resumes_and_never_fetches_a_stored_piece_again() {
    use crate::network::{Server, eventually, federation};
    let t = TestDir::new("evidence_kills");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Lantern");
    a.add_member(&case, b, "contributor");
    let bytes = file_bytes(96 << 20, 5);
    let id = add(a, &case, &t.write("cctv.mp4", &bytes), &[]);
    let debug = [("RUST_LOG", "casesync=debug")];
    let mut sa = Server::start_env(a, &[], &debug);
    let random = |k: u64, below: u64| {
        let r = u64::from_str_radix(&crate::util::random_hex(4), 16).unwrap();
        (r + k * 997) % below
    };
    // Kills of the receiver, each at a random point of the fetch (once
    // it holds up to a third of what it lacks): what it had stored before
    // each is never sent to it again.
    // 5 in CI; the soak (scripts/soak.sh) sets CASESYNC_EVIDENCE_KILLS=50.
    let kills: u64 = std::env::var("CASESYNC_EVIDENCE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for k in 0..kills {
        let offset = sa.log().len();
        let had = stored_pieces(b);
        let sb = Server::start(b, &[&sa.addr]);
        // A share of what is left each time (a third over five kills, less
        // over more), so every kill cuts the fetch.
        let left = 97 - had.len() as u64;
        let share = if kills > 5 { left / 12 } else { left / 3 };
        let target = (had.len() + 1 + random(k, share.max(1)) as usize).min(96);
        eventually(120, "B fetches some pieces", || {
            stored_pieces(b).len() >= target
        });
        sb.kill9();
        let again: Vec<String> = sent(&sa.log()[offset..])
            .into_iter()
            .filter(|h| had.contains(h))
            .collect();
        assert!(
            again.is_empty(),
            "pieces stored before kill {k} were sent again: {again:?}"
        );
    }
    // 96 pieces and the manifest make the whole file: the kills cut it.
    if kills <= 5 {
        assert!(
            stored_pieces(b).len() < 97,
            "the fetch ended before the kills"
        );
    }
    let delay = |k: u64| std::time::Duration::from_millis(300 + random(k, 1200));
    // Two kills of the sender.
    for k in 5..7 {
        sa.kill9();
        sa = Server::start_env(a, &[], &debug);
        let sb = Server::start(b, &[&sa.addr]);
        std::thread::sleep(delay(k));
        drop(sb);
    }
    // Resumed to the end: the whole file, checked, the same as the original.
    let sb = Server::start(b, &[&sa.addr]);
    eventually(120, "B holds the whole file", || verified(b, &id));
    let out = t.join("b.mp4");
    b.cmd(&["evidence", "get", &id, "--out", out.to_str().unwrap()])
        .ok();
    assert_eq!(
        sha256_hex(&std::fs::read(&out).unwrap()),
        sha256_hex(&bytes)
    );
    drop((sa, sb));
}
