//! Nothing readable at rest: unique markers written into every kind of content
//! (record fields, an edit, an import, a case title, grading conditions,
//! releasable_to) never appear in any file of the data dir, nor does the magic
//! number of an unencrypted Automerge chunk.

use serde_json::json;

use crate::util::{TestDir, files_under, find_bytes, random_hex};

const AUTOMERGE_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

#[test]
fn no_plaintext_at_rest() {
    let t = TestDir::new("at_rest");
    let node = t.node("a");
    node.init("uk-east", "ROCU East", "GB");
    let m = format!("MARKER-{}", random_hex(12));
    let title_marker = format!("TITLEMARK-{}", random_hex(12));
    let edit_marker = format!("EDITMARK-{}", random_hex(12));
    let import_marker = format!("IMPORTMARK-{}", random_hex(12));
    // Unicode text is stored as UTF-8: a marker with diacritics must not leak either.
    let ro_marker = format!("Ștefan-Țăranu-{}", random_hex(8));

    let case = node.create_case(&format!("Op {title_marker}"));
    let person = node.add(
        &case,
        "person",
        &[
            ("name", &format!("{m} Dobre")),
            ("alias", &format!("alias {m}")),
            ("note", &ro_marker),
        ],
        &[],
    );
    node.add(&case, "note", &[("text", &format!("secret {m} note"))], &[]);
    node.add(
        &case,
        "location",
        &[("address", &format!("{m} Str. Fictivă 12, București"))],
        &[],
    );
    node.add(
        &case,
        "organisation",
        &[("name", &format!("{m} SRL"))],
        &[
            "--grading",
            &format!("3x5x2:2BC:only for {m}"),
            "--releasable-to",
            &format!("GB,{m} Unit"),
        ],
    );
    node.add(
        &case,
        "bank_account",
        &[
            ("iban", "RO41RNCB0082044617040001"),
            ("holder", &format!("{m} holder")),
        ],
        &[],
    );
    node.cmd(&[
        "record",
        "edit",
        &person,
        "--field",
        &format!("status=arrested {edit_marker}"),
    ])
    .ok();
    let lines: String = (0..100)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type": "person", "fields": {"name": format!("{import_marker} {i}"), "alias": format!("{m}-{i}")}})
            )
        })
        .collect();
    let file = t.write("import.jsonl", lines);
    node.cmd(&["record", "import", &case, &file.display().to_string()])
        .ok();

    // An evidence file: its content (over several pieces) and its name.
    let content = format!("{m} evidence content; ").repeat(80_000);
    let evidence_file = t.write(&format!("{m}-statement.txt"), &content);
    let evidence = node
        .cmd(&["evidence", "add", &case, evidence_file.to_str().unwrap()])
        .ok();
    let back = t.join("back.txt");
    node.cmd(&[
        "evidence",
        "get",
        evidence.trim(),
        "--out",
        back.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), content);

    // Every marker really was written: the node gives it back.
    let listing = node.cmd(&["record", "list", &case, "--json"]).ok();
    for marker in [&m, &edit_marker, &import_marker, &ro_marker] {
        assert!(
            listing.contains(marker.as_str()),
            "marker {marker} is not in `record list --json`: the test would prove nothing"
        );
    }
    let cases = node.cmd(&["case", "list", "--json"]).ok();
    assert!(
        cases.contains(&title_marker),
        "title marker missing: {cases}"
    );
    assert_eq!(node.list(&case).len(), 106);

    // No casesync process runs now; read every file the data dir holds.
    let files = files_under(&node.dir);
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "casesync.db") && names.iter().any(|n| n == "keystore"),
        "expected casesync.db and keystore in the data dir, found {names:?}"
    );
    let mut total = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        total += bytes.len();
        for marker in [&m, &title_marker, &edit_marker, &import_marker, &ro_marker] {
            // The random part alone, too: a marker stored in pieces or re-encoded
            // around its prefix would still give it away.
            let tail = marker.rsplit('-').next().unwrap_or(marker);
            for needle in [marker.as_str(), tail] {
                if let Some(at) = find_bytes(&bytes, needle.as_bytes()) {
                    panic!("plaintext {needle:?} found in {} at byte {at}", f.display());
                }
            }
        }
        // Magic, 4 checksum bytes, then a chunk type (0 document, 1 change, 2
        // compressed change): requiring the type keeps random ciphertext from
        // matching by chance (about 1 run in a million instead of 1 in 14,000).
        let chunk_at = (0..bytes.len().saturating_sub(8))
            .find(|&i| bytes[i..i + 4] == AUTOMERGE_MAGIC && bytes[i + 8] <= 2);
        if let Some(at) = chunk_at {
            panic!(
                "an Automerge chunk header (85 6f 4a 83) is in {} at byte {at}: unencrypted Automerge data at rest",
                f.display()
            );
        }
    }
    assert!(total > 10_000, "the data dir holds only {total} bytes");
}

/// Issue 14, finding 11: a removal's reason and a failed unlock's operator
/// are sealed at rest (the reason under the key of the epoch the removal
/// starts, which the removed node never gets); exports are readable by their
/// owner only. Node names, organisations and the federation name stay
/// readable: keyless checks (`log verify`, `trust list`) need them (README).
#[test]
fn removal_reasons_and_failed_unlocks_are_sealed_and_exports_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestDir::new("at_rest_meta");
    let a = t.node("a");
    let b = t.node("b");
    a.init("uk-east", "ROCU East", "GB");
    b.init("ro-police", "Politia Romana", "RO");
    let case = a.create_case("Op Lantern");
    let card = b.cmd(&["id", "--card"]).ok().trim().to_string();
    a.cmd(&["case", "member", "add", &case, &card, "--role", "observer"])
        .ok();
    let reason = format!("REASONMARK-{}", random_hex(12));
    let operator = format!("OPMARK-{}", random_hex(12));
    a.cmd(&[
        "case",
        "member",
        "remove",
        &case,
        &crate::util::peer_of(&b),
        "--reason",
        &reason,
    ])
    .ok();
    let failed = a.cmd_env(
        &["--operator", &operator, "case", "list"],
        &[("CASESYNC_PASSPHRASE", "not-it")],
    );
    assert!(!failed.status.success());
    // The lead reads the reason back.
    let shown = a.json(&["case", "show", &case]);
    assert_eq!(shown["removed"][0]["reason"], reason.as_str(), "{shown}");
    for f in files_under(&a.dir) {
        let bytes = std::fs::read(&f).unwrap();
        for marker in [&reason, &operator] {
            assert!(
                find_bytes(&bytes, marker.as_bytes()).is_none(),
                "{marker} is readable in {}",
                f.display()
            );
        }
    }
    // Exports: owner only.
    let bundle = t.join("case.bundle");
    a.cmd(&[
        "bundle",
        "export",
        "--out",
        bundle.to_str().unwrap(),
        "--case",
        &case,
    ])
    .ok();
    let audit = t.join("audit.jsonl");
    a.cmd(&[
        "audit",
        "export",
        "--case",
        &case,
        "--out",
        audit.to_str().unwrap(),
    ])
    .ok();
    for f in [&bundle, &audit] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", f.display());
    }
}
