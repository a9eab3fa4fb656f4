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
