//! `record import`: JSON Lines and CSV; everything arrives exactly as written, or
//! (on any bad line, which the error names) nothing does.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::util::{Node, TestDir, fields_of, str_of};

/// Valid identifiers to vary the generated records with.
const IBANS: [&str; 3] = [
    "RO41RNCB0082044617040001",
    "GB82WEST12345698765432",
    "DE89370400440532013000",
];
const GRADINGS: [&str; 4] = ["3x5x2:1AP", "5x5x5:B24", "europol:A1", "3x5x2:2BC"];

/// Line `i` (0-based) of a mixed import: every type but link and evidence, some
/// graded, some with releasable_to, unicode, and non-string JSON scalars. Each
/// carries a unique `ref` field to find it again.
fn mixed_line(i: usize) -> Value {
    let r = format!("imp-{i:04}");
    let (t, mut fields) = match i % 10 {
        0 => (
            "person",
            json!({"name": format!("Ștefan Țăranu {i}"), "category": "suspect", "alias": "Bîrlădeanu"}),
        ),
        1 => (
            "organisation",
            json!({"name": format!("Întreprinderea „Ș&Ț” {i}")}),
        ),
        2 => (
            "vehicle",
            json!({"registration": format!("B {i:03} ȘTF"), "make": "Dacia"}),
        ),
        3 => ("phone", json!({"number": format!("+40 721 {i:06}")})),
        4 => (
            "bank_account",
            json!({"iban": IBANS[i % IBANS.len()], "holder": "Ana Mureșan"}),
        ),
        5 => (
            "crypto_wallet",
            json!({"address": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "currency": "BTC"}),
        ),
        6 => (
            "location",
            json!({"address": format!("Str. Mihai Eminescu {i}, Iași"), "lat": "47.1585", "lon": "27.6014"}),
        ),
        7 => (
            "event",
            json!({"title": format!("Întâlnire {i}"), "when": "2021-03-14T09:30:00+02:00"}),
        ),
        8 => (
            "note",
            json!({"text": format!("notă {i}: ă â î ș ț Ă Â Î Ș Ț 🚓"), "count": i, "urgent": i.is_multiple_of(3), "score": 1.5}),
        ),
        _ => (
            "evidence",
            json!({"file": format!("scan-{i}.pdf"), "size": 1024 + i}),
        ),
    };
    fields["ref"] = json!(r);
    let mut line = json!({"type": t, "fields": fields});
    if i.is_multiple_of(3) {
        line["grading"] = json!(GRADINGS[i % GRADINGS.len()]);
    }
    if i % 4 == 1 {
        line["releasable_to"] = json!(["GB", "RO"]);
    } else if i % 4 == 2 {
        line["releasable_to"] = json!(["ROCU East"]);
    }
    line
}

fn jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn by_ref(list: &[Value]) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for v in list {
        let r = fields_of(v)
            .get("ref")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("imported record without `ref`: {v}"))
            .to_string();
        assert!(
            m.insert(r.clone(), v.clone()).is_none(),
            "`{r}` imported twice"
        );
    }
    m
}

fn setup(name: &str) -> (TestDir, Node, String) {
    let t = TestDir::new(name);
    let node = t.node("a");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    (t, node, case)
}

#[test]
fn import_jsonl_and_csv() {
    let (t, node, case) = setup("import_ok");
    let peer = str_of(&node.json(&["id"]), "peer_id").to_string();
    let input: Vec<Value> = (0..500).map(mixed_line).collect();
    let file = t.write("records.jsonl", jsonl(&input));
    let out = node.json(&["record", "import", &case, &file.display().to_string()]);
    assert_eq!(out, json!({"imported": 500}), "import --json");

    let list = node.list(&case);
    assert_eq!(list.len(), 500, "record list after importing 500");
    let got = by_ref(&list);
    for want in &input {
        let r = want["fields"]["ref"].as_str().expect("ref");
        let g = got.get(r).unwrap_or_else(|| panic!("{r} was not imported"));
        assert_eq!(g["type"], want["type"], "type of {r}");
        assert_eq!(g["fields"], want["fields"], "fields of {r}");
        assert_eq!(
            g["grading"],
            want.get("grading").cloned().unwrap_or(Value::Null),
            "grading of {r}"
        );
        assert_eq!(
            g["releasable_to"],
            want.get("releasable_to").cloned().unwrap_or(json!([])),
            "releasable_to of {r}"
        );
        assert_eq!(g["case"], case.as_str());
        assert_eq!(g["originator"], peer.as_str());
    }
    // `show` of an imported record verifies its entry and equals the list element.
    for r in ["imp-0000", "imp-0257", "imp-0499"] {
        let id = str_of(&got[r], "id");
        assert_eq!(node.show(id), got[r], "show {r}");
    }
    let notes = node.json(&["record", "list", &case, "--type", "note"]);
    assert_eq!(notes.as_array().map(Vec::len), Some(50), "50 notes");
    node.cmd(&["log", "verify"]).ok();

    // CSV: quoted commas, `;` in releasable_to, empty cells are absent fields.
    let csv = "type,name,category,grading,releasable_to\n\
               person,\"Dobre, Marin\",suspect,3x5x2:1AP,GB;RO\n\
               person,Elena Dobre,witness,,\n\
               organisation,\"Țăranu, Fiii & Co\",,europol:B2,GB\n";
    let file = t.write("people.csv", csv);
    let out = node
        .cmd(&["record", "import", &case, &file.display().to_string()])
        .ok();
    assert_eq!(out.trim(), "imported 3 record(s)");
    let list = node.list(&case);
    assert_eq!(list.len(), 503);
    let find = |name: &str| -> Value {
        let hits: Vec<&Value> = list
            .iter()
            .filter(|v| v["fields"]["name"] == name)
            .collect();
        assert_eq!(hits.len(), 1, "one record named {name:?}");
        hits[0].clone()
    };
    let marin = find("Dobre, Marin");
    assert_eq!(marin["type"], "person");
    assert_eq!(
        marin["fields"],
        json!({"name": "Dobre, Marin", "category": "suspect"})
    );
    assert_eq!(marin["grading"], "3x5x2:1AP");
    assert_eq!(marin["releasable_to"], json!(["GB", "RO"]));
    let elena = find("Elena Dobre");
    assert_eq!(
        elena["fields"],
        json!({"name": "Elena Dobre", "category": "witness"})
    );
    assert_eq!(elena["grading"], Value::Null);
    assert_eq!(elena["releasable_to"], json!([]));
    let org = find("Țăranu, Fiii & Co");
    assert_eq!(org["type"], "organisation");
    assert_eq!(org["fields"], json!({"name": "Țăranu, Fiii & Co"}));
    assert_eq!(org["grading"], "europol:B2");
    assert_eq!(org["releasable_to"], json!(["GB"]));

    // An empty file imports nothing and succeeds.
    let before = node.state(&[&case]);
    let empty = t.write("empty.jsonl", "");
    let out = node.json(&["record", "import", &case, &empty.display().to_string()]);
    assert_eq!(out, json!({"imported": 0}));
    assert_eq!(node.list(&case).len(), 503);
    // Not a single entry was written for it either.
    assert_eq!(
        node.state(&[&case]),
        before,
        "an empty import changed the store"
    );
}

#[test]
fn import_bad_line_imports_nothing() {
    let (t, node, case) = setup("import_bad");
    // Something in the case already, which must stay exactly as it is.
    node.add(&case, "person", &[("name", "Marin Dobre")], &[]);
    let input: Vec<Value> = (0..50).map(mixed_line).collect();
    let good = jsonl(&input);

    let check = |file_name: &str, content: String, expect: &[&str]| {
        let before = node.state(&[&case]);
        let file = t.write(file_name, content);
        let out = node.cmd(&["record", "import", &case, &file.display().to_string()]);
        let cmdline = out.cmdline.clone();
        let line = out.error_line();
        for e in expect {
            assert!(line.contains(e), "`{cmdline}`: expected {e:?} in: {line}");
        }
        assert!(
            before == node.state(&[&case]),
            "`{cmdline}` failed but changed the store"
        );
        assert_eq!(node.list(&case).len(), 1, "`{cmdline}` imported something");
    };

    // Line 37 is not JSON.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    lines[36] = r#"{"type": "person", "fields": {"name": "broken""#.into();
    check("bad37.jsonl", lines.join("\n") + "\n", &["line 37"]);

    // Line 12 has an IBAN whose checksum is wrong.
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    lines[11] =
        json!({"type": "bank_account", "fields": {"iban": "GB29NWBK60161331926818"}}).to_string();
    check("bad12.jsonl", lines.join("\n") + "\n", &["line 12", "iban"]);

    // Blank lines still count: the bad record is on line 5 of the file.
    let content = format!(
        "{}\n\n\n{}\n{}\n",
        input[0],
        input[1],
        json!({"type": "person", "fields": {"alias": "no name"}})
    );
    check("blank.jsonl", content, &["line 5", "name"]);

    // A link to a record that is not in the case.
    let content = format!(
        "{}\n{}\n",
        input[0],
        json!({"type": "link", "fields": {"from": "0192f0c1-7c1e-7b3a-9c1d-2f4e5a6b7c8d", "to": "0192f0c1-7c1e-7b3a-9c1d-2f4e5a6b7c8e", "link_type": "associate"}})
    );
    check("link.jsonl", content, &["line 2"]);

    // A CSV row with a cell too many.
    check(
        "bad.csv",
        "type,name\nperson,Ana\nperson,Ion,extra\n".into(),
        &["line 3"],
    );

    // A bad line after the first few thousand: earlier batches were already
    // written inside the transaction and must be rolled back too.
    let mut big: String = (0..2999).map(|i| format!("{}\n", mixed_line(i))).collect();
    big.push_str(
        &json!({"type": "event", "fields": {"title": "late", "when": "2021-02-30"}}).to_string(),
    );
    big.push('\n');
    check("late.jsonl", big, &["line 3000", "when"]);

    node.cmd(&["log", "verify"]).ok();
}

/// On a terminal, `record import` shows a progress bar on stderr; in a pipe (every
/// other test) it prints none. `script` gives the child a pseudo-terminal.
#[test]
fn import_shows_progress_on_a_terminal() {
    let t = TestDir::new("import_tty");
    let node = t.node("uk");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("tty");
    let lines: String = (0..5000)
        .map(|i| format!("{{\"type\":\"note\",\"fields\":{{\"text\":\"n{i}\"}}}}\n"))
        .collect();
    let file = t.write("notes.jsonl", lines);
    let inner = node.cmdline(
        &["record", "import", &case, &file.display().to_string()],
        &[],
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("CASESYNC_PASSPHRASE", crate::util::PASSPHRASE)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("`script` (util-linux) runs the import on a pseudo-terminal");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "import on a terminal failed: {screen}"
    );
    assert!(
        screen.contains("importing") && screen.contains("/5000 records"),
        "no progress bar on the terminal:\n{screen}"
    );
    assert!(screen.contains("imported 5000 record(s)"), "{screen}");
    // Without a terminal: no bar.
    let plain = node.cmd(&["record", "import", &case, &file.display().to_string()]);
    assert!(
        !plain.stderr.contains("importing"),
        "a bar was drawn into a pipe: {}",
        plain.stderr
    );
    assert_eq!(plain.ok().trim(), "imported 5000 record(s)");
}

/// An import larger than one audit entry lists (50,000 records) is audited
/// in parts inside its one transaction: together the parts list every
/// record once; the same file with a bad last line stores nothing and
/// leaves no part of its audit behind.
#[test]
fn a_large_import_is_audited_in_parts_and_still_all_or_nothing() {
    let (t, node, case) = setup("import_large");
    let n = 60_001;
    let good: String = (0..n)
        .map(|i| format!("{{\"type\":\"note\",\"fields\":{{\"text\":\"note {i}\"}}}}\n"))
        .collect();
    let bad = format!("{good}{{\"type\":\"note\",\"fields\":{{}}}}\n");
    let before = node.state(&[&case]);
    let file = t.write("bad.jsonl", bad);
    let line = node
        .cmd(&["record", "import", &case, file.to_str().unwrap()])
        .error_line();
    assert!(line.contains(&format!("line {}", n + 1)), "{line}");
    assert!(
        before == node.state(&[&case]),
        "a failed import changed the store"
    );
    let parts = |node: &crate::util::Node| -> Vec<Value> {
        node.json(&["audit", "list", "--action", "record.import"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["outcome"] == "ok")
            .cloned()
            .collect()
    };
    assert!(
        parts(&node).is_empty(),
        "no part of a failed import is audited"
    );

    let file = t.write("good.jsonl", good);
    let out = node.json(&["record", "import", &case, file.to_str().unwrap()]);
    assert_eq!(out["imported"], n, "{out}");
    let parts = parts(&node);
    assert_eq!(parts.len(), 2, "{} parts", parts.len());
    let mut ids: Vec<String> = parts
        .iter()
        .flat_map(|e| e["records"].as_array().unwrap().iter())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), n);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "every record listed once");
    assert!(
        parts.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("in 2 parts")),
        "{:?}",
        parts.iter().map(|e| &e["detail"]).collect::<Vec<_>>()
    );
}

/// An import holds a bounded amount of the file at a time, however large
/// the file and its records: 200 MB of notes (240 KB each) import under an
/// 80 MiB limit on the process's data, and the same file with a bad last
/// line stores nothing under that limit. Listing them holds a bounded
/// amount too.
#[test]
fn an_import_far_larger_than_its_memory_limit_completes_or_stores_nothing() {
    use std::io::Write;
    const LIMIT: u64 = 80 << 20;
    let (t, node, case) = setup("import_limited");
    let path = t.join("big.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut seed = 7u64;
    let n = 800;
    for i in 0..n {
        let mut fields = serde_json::Map::new();
        fields.insert("title".into(), json!(format!("Note {i}")));
        for part in ["text", "part_2", "part_3", "part_4"] {
            let words: Vec<String> = (0..6_000)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    format!("w{}", seed >> 37)
                })
                .collect();
            fields.insert(part.into(), json!(words.join(" ")));
        }
        writeln!(f, "{}", json!({"type": "note", "fields": fields})).unwrap();
    }
    f.flush().unwrap();
    let good_len = f.get_ref().metadata().unwrap().len();
    writeln!(f, "{}", json!({"type": "note", "fields": {}})).unwrap();
    drop(f);
    assert!(
        good_len > 2 * LIMIT,
        "the file ({good_len} bytes) is far larger than the limit"
    );
    let file = path.to_str().unwrap();

    let out = node.cmd_limited(LIMIT, &["record", "import", &case, file]);
    let line = out.error_line();
    assert!(line.contains(&format!("line {}", n + 1)), "{line}");
    let held = || node.json(&["case", "show", &case])["records"].clone();
    assert_eq!(held(), 0, "a failed import stored records");

    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(good_len)
        .unwrap();
    let out = node.cmd_limited(LIMIT, &["--json", "record", "import", &case, file]);
    let v: Value = serde_json::from_str(&out.ok()).unwrap();
    assert_eq!(v["imported"], n, "{v}");
    assert_eq!(held(), n);

    // Listed under the same limit: streamed whole, and a page stops short
    // on bytes (16 MiB of views) rather than holding 1,000 such records.
    let out = node.cmd_limited(LIMIT, &["record", "list", &case]).ok();
    assert_eq!(out.lines().filter(|l| l.contains(" note ")).count(), n);
    let out = node.cmd_limited(
        LIMIT,
        &["--json", "record", "list", &case, "--limit", "1000"],
    );
    let page: Vec<Value> = serde_json::from_str(&out.ok()).unwrap();
    assert!(page.len() > 10 && page.len() < n, "{} records", page.len());

    // Exported under the same limit: each part is sealed and written as it
    // is made (parts of 4 MiB here), never the whole case in memory at
    // once (which this limit would abort). Every entry goes, once, and the
    // parts together are far larger than the limit.
    let bundle = t.join("big.bundle");
    let out = node.cmd_limited_env(
        LIMIT,
        &[
            "--json",
            "bundle",
            "export",
            "--out",
            bundle.to_str().unwrap(),
            "--case",
            &case,
        ],
        &[("CASESYNC_BUNDLE_PART_BYTES", "4194304")],
    );
    let v: Value = serde_json::from_str(&out.ok()).unwrap();
    let entries = node.json(&["case", "show", &case])["entries"].clone();
    assert_eq!(v["entries"], entries, "{v}");
    let files = v["files"].as_array().unwrap();
    let on_disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f.as_str().unwrap()).unwrap().len())
        .sum();
    assert_eq!(on_disk, v["bytes"].as_u64().unwrap());
    assert!(on_disk > LIMIT, "{on_disk} bytes in {} files", files.len());
}
