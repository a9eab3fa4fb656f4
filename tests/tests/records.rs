//! Records of every kind round-trip through add, list and show with every field
//! exactly as given; edits change what they say and nothing else.

use serde_json::{Map, Value, json};

use crate::util::{Node, TestDir, fields_of, is_uuid, str_of};

const ENVELOPE: [&str; 9] = [
    "id",
    "case",
    "type",
    "fields",
    "originator",
    "created",
    "updated",
    "grading",
    "releasable_to",
];

/// What one `record add` asked for, and what `record show --json` must then say.
struct Expected {
    id: String,
    record_type: &'static str,
    fields: Map<String, Value>,
    grading: Value,
    releasable_to: Value,
}

fn add(
    node: &Node,
    case: &str,
    record_type: &'static str,
    fields: &[(&str, &str)],
    extra: &[&str],
) -> Expected {
    let id = node.add(case, record_type, fields, extra);
    let mut grading = Value::Null;
    let mut releasable_to = json!([]);
    for w in extra.windows(2) {
        match w[0] {
            "--grading" => grading = json!(w[1]),
            "--releasable-to" => {
                releasable_to = Value::Array(w[1].split(',').map(|s| json!(s)).collect())
            }
            _ => {}
        }
    }
    Expected {
        id,
        record_type,
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
        grading,
        releasable_to,
    }
}

#[track_caller]
fn check_envelope(v: &Value, case: &str, peer: &str) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("record is not an object: {v}"));
    for k in ENVELOPE {
        assert!(o.contains_key(k), "record lacks `{k}`: {v}");
    }
    assert!(is_uuid(str_of(v, "id")), "id: {v}");
    assert_eq!(str_of(v, "case"), case, "case: {v}");
    assert_eq!(str_of(v, "originator"), peer, "originator: {v}");
    for k in ["created", "updated"] {
        let t = str_of(v, k);
        // RFC 3339 with a date, a time and an offset.
        assert!(
            t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T',
            "`{k}` is not RFC 3339: {v}"
        );
    }
    assert!(v["releasable_to"].is_array(), "releasable_to: {v}");
    assert!(
        v["grading"].is_null() || v["grading"].is_string(),
        "grading: {v}"
    );
}

#[test]
fn records_roundtrip() {
    let t = TestDir::new("records_roundtrip");
    let node = t.node("a");
    let peer = node.init("ro-police", "Poliția Română", "RO");
    let case = node.create_case("Operațiunea Țărm");
    let note_text = "ă â î ș ț Ă Â Î Ș Ț — „ghilimele” and emoji 🚓";

    let mut want = vec![
        add(
            &node,
            &case,
            "person",
            &[
                ("name", "Ștefan Țăranu"),
                ("alias", "Bîrlădeanu"),
                ("category", "suspect"),
                ("note", note_text),
                ("dob", "1984-07-09"),
                ("nationality", "RO"),
            ],
            &[],
        ),
        add(
            &node,
            &case,
            "phone",
            &[("number", "+40 721 000 111"), ("carrier", "Orange România")],
            &[],
        ),
        add(
            &node,
            &case,
            "bank_account",
            &[
                ("iban", "RO41RNCB0082044617040001"),
                ("holder", "Ștefan Țăranu"),
            ],
            &[],
        ),
        add(
            &node,
            &case,
            "crypto_wallet",
            &[
                ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
                ("currency", "BTC"),
            ],
            &[],
        ),
        add(
            &node,
            &case,
            "crypto_wallet",
            &[
                ("address", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
                ("currency", "ETH"),
            ],
            &[],
        ),
        add(
            &node,
            &case,
            "location",
            &[
                ("lat", "44.4268"),
                ("lon", "26.1025"),
                ("label", "Piața Unirii, București"),
            ],
            &[],
        ),
        add(
            &node,
            &case,
            "event",
            &[("title", "Întâlnire la Constanța"), ("when", "2021-03-14")],
            &[],
        ),
        add(
            &node,
            &case,
            "note",
            &[("text", "Sursă: informator — fiabil")],
            &["--grading", "europol:B2"],
        ),
        add(
            &node,
            &case,
            "organisation",
            &[("name", "Țăranu & Fiii SRL")],
            &["--releasable-to", "GB,RO"],
        ),
    ];
    let (from, to) = (want[0].id.clone(), want[2].id.clone());
    want.push(add(
        &node,
        &case,
        "link",
        &[
            ("from", &from),
            ("to", &to),
            ("link_type", "holds_account"),
            ("status", "confirmed"),
        ],
        &[],
    ));

    let list = node.list(&case);
    assert_eq!(
        list.len(),
        want.len(),
        "record list should hold every record added: {list:#?}"
    );
    let ids: Vec<&str> = list.iter().map(|v| str_of(v, "id")).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "record ids must be unique: {ids:?}"
    );

    for w in &want {
        let got = list
            .iter()
            .find(|v| v["id"] == w.id.as_str())
            .unwrap_or_else(|| panic!("record {} missing from the list: {list:#?}", w.id));
        check_envelope(got, &case, &peer);
        assert_eq!(got["type"], w.record_type, "type of {}: {got}", w.id);
        assert_eq!(
            fields_of(got),
            &w.fields,
            "fields of {} ({})",
            w.id,
            w.record_type
        );
        assert_eq!(got["grading"], w.grading, "grading of {}: {got}", w.id);
        assert_eq!(
            got["releasable_to"], w.releasable_to,
            "releasable_to of {}: {got}",
            w.id
        );
        assert_eq!(
            got["created"], got["updated"],
            "a new record's updated is its created: {got}"
        );
        let shown = node.show(&w.id);
        assert_eq!(
            &shown, got,
            "record show --json must equal the list element"
        );
    }

    // Plain `record show` prints the unicode values as they are.
    let plain = node.cmd(&["record", "show", &want[0].id]).ok();
    for s in ["Ștefan Țăranu", "Bîrlădeanu", note_text] {
        assert!(plain.contains(s), "`record show` lacks {s:?}:\n{plain}");
    }

    let persons = match node.json(&["record", "list", &case, "--type", "person"]) {
        Value::Array(a) => a,
        other => panic!("expected an array, got {other}"),
    };
    assert_eq!(persons.len(), 1, "only the one person: {persons:#?}");
    assert_eq!(persons[0]["id"], want[0].id.as_str());
    assert_eq!(persons[0]["type"], "person");
    let wallets = node.json(&["record", "list", &case, "--type", "crypto_wallet"]);
    let wallets = wallets.as_array().expect("an array");
    assert_eq!(wallets.len(), 2, "two wallets: {wallets:#?}");
    assert!(wallets.iter().all(|w| w["type"] == "crypto_wallet"));
    let events = node.json(&["record", "list", &case, "--type", "vehicle"]);
    assert_eq!(events, json!([]), "no vehicles were added");

    // The case counts them.
    let shown = node.json(&["case", "show", &case]);
    assert_eq!(shown["records"], want.len(), "case show: {shown}");
    assert_eq!(shown["title"], "Operațiunea Țărm", "case show: {shown}");
    node.cmd(&["log", "verify"]).ok();
}

#[test]
fn edit_twice() {
    let t = TestDir::new("edit_twice");
    let node = t.node("a");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    let id = node.add(
        &case,
        "person",
        &[("name", "Victor Ilie"), ("category", "suspect")],
        &[],
    );
    let v0 = node.show(&id);

    let e1 = node.json(&["record", "edit", &id, "--field", "status=arrested"]);
    let v1 = node.show(&id);
    assert_eq!(e1, v1, "record edit --json prints the edited record");
    assert_eq!(
        fields_of(&v1),
        json!({"name": "Victor Ilie", "category": "suspect", "status": "arrested"})
            .as_object()
            .expect("object"),
    );
    assert_ne!(
        v1["updated"], v0["updated"],
        "the first edit moves `updated`"
    );
    assert_eq!(v1["created"], v0["created"], "an edit keeps `created`");

    node.cmd(&["record", "edit", &id, "--field", "alias=Vic"])
        .ok();
    let v2 = node.show(&id);
    assert_eq!(
        fields_of(&v2),
        json!({"name": "Victor Ilie", "category": "suspect", "status": "arrested", "alias": "Vic"})
            .as_object()
            .expect("object"),
        "both edits are kept"
    );
    assert_ne!(
        v2["updated"], v1["updated"],
        "the second edit moves `updated`"
    );
    assert!(
        str_of(&v2, "updated") > str_of(&v1, "updated"),
        "updated goes forward: {} then {}",
        v1["updated"],
        v2["updated"]
    );
    for k in [
        "id",
        "case",
        "type",
        "originator",
        "created",
        "grading",
        "releasable_to",
    ] {
        assert_eq!(v2[k], v0[k], "edits must not change `{k}`");
    }
    assert_eq!(
        node.list(&case),
        vec![v2.clone()],
        "record list shows the edit"
    );

    // Unsetting an optional field.
    node.cmd(&["record", "edit", &id, "--unset", "alias"]).ok();
    let v3 = node.show(&id);
    assert_eq!(
        fields_of(&v3),
        json!({"name": "Victor Ilie", "category": "suspect", "status": "arrested"})
            .as_object()
            .expect("object"),
    );
    assert_ne!(v3["updated"], v2["updated"]);

    // Unsetting a required field is refused and changes nothing.
    let before = node.state(&[&case]);
    let e = node
        .cmd(&["record", "edit", &id, "--unset", "name"])
        .error_line();
    assert!(e.contains("name"), "the error should name the field: {e}");
    assert_eq!(
        node.state(&[&case]),
        before,
        "a refused edit changed the store"
    );
    assert_eq!(node.show(&id), v3);

    // So is unsetting a field the record does not have, and an empty edit.
    let e = node
        .cmd(&["record", "edit", &id, "--unset", "alias"])
        .error_line();
    assert!(e.contains("alias"), "{e}");
    let e = node.cmd(&["record", "edit", &id]).error_line();
    assert!(e.contains("--field"), "{e}");
    // An edit that would make a field invalid is refused too.
    let e = node
        .cmd(&["record", "edit", &id, "--field", "category=bystander"])
        .error_line();
    assert!(e.contains("category"), "{e}");
    assert_eq!(
        node.state(&[&case]),
        before,
        "refused edits changed the store"
    );
    node.cmd(&["log", "verify"]).ok();
}

#[test]
fn normalized_values() {
    let t = TestDir::new("normalized_values");
    let node = t.node("a");
    node.init("uk-east", "ROCU East", "GB");
    let case = node.create_case("Op Lantern");
    // Values with one canonical spelling are stored in it.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Value);
    let cases: &[Case] = &[
        (
            "bank_account",
            &[("iban", "ro41 rncb 0082 0446 1704 0001")],
            json!({"iban": "RO41RNCB0082044617040001"}),
        ),
        (
            "crypto_wallet",
            &[
                ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
                ("currency", "btc"),
            ],
            json!({"address": "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "currency": "BTC"}),
        ),
        (
            "person",
            &[
                ("name", "Ana Mureșan"),
                ("category", "Witness"),
                ("nationality", "ro"),
            ],
            json!({"name": "Ana Mureșan", "category": "witness", "nationality": "RO"}),
        ),
    ];
    for (record_type, fields, want) in cases {
        let id = node.add(&case, record_type, fields, &[]);
        let v = node.show(&id);
        assert_eq!(&v["fields"], want, "{record_type} {fields:?}");
    }
    // Gradings and releasable_to too.
    let id = node.add(
        &case,
        "note",
        &[("text", "x")],
        &["--grading", "3X5X2:1ap", "--releasable-to", "gb, ro,GB"],
    );
    let v = node.show(&id);
    assert_eq!(v["grading"], "3x5x2:1AP", "{v}");
    assert_eq!(v["releasable_to"], json!(["GB", "RO"]), "{v}");
}

/// `record list --limit N --after RECORD` pages through a case: every record
/// once, in the order the whole listing streams them, the same order on a
/// second node holding the same records; a page after a record erased since
/// still goes on; each page is audited with exactly its records.
#[test]
fn paging_returns_every_record_once_in_a_stable_order() {
    use crate::network::{Server, federation};
    let t = TestDir::new("records_paging");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (a, b) = (&nodes[0], &nodes[1]);
    let case = a.create_case("Op Pages");
    a.add_member(&case, b, "contributor");
    let lines: String = (0..2_300)
        .map(|i| format!("{{\"type\":\"person\",\"fields\":{{\"name\":\"Person {i}\"}}}}\n"))
        .collect();
    let file = t.write("people.jsonl", lines);
    a.cmd(&["record", "import", &case, file.to_str().unwrap()])
        .ok();
    a.add(&case, "phone", &[("number", "+44 20 7946 0000")], &[]);
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| str_of(r, "id").to_string())
            .collect()
    };
    let whole = ids(&a.json(&["record", "list", &case]));
    assert_eq!(whole.len(), 2_301);
    let page = |n: &Node, after: Option<&str>, limit: &str| -> Vec<String> {
        let mut args = vec!["record", "list", case.as_str(), "--limit", limit];
        if let Some(x) = after {
            args.extend(["--after", x]);
        }
        ids(&n.json(&args))
    };
    let mut paged: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let p = page(a, paged.last().map(String::as_str), "1000");
        sizes.push(p.len());
        if p.is_empty() {
            break;
        }
        paged.extend(p);
    }
    assert_eq!(sizes, [1000, 1000, 301, 0]);
    assert_eq!(
        paged, whole,
        "pages are the whole listing, in order, each record once"
    );
    // A type filter pages too.
    assert_eq!(
        ids(&a.json(&["record", "list", &case, "--type", "phone", "--limit", "5"])).len(),
        1
    );
    // Each page's audit entry lists exactly its records.
    let trail = a.json(&["audit", "list", "--action", "record.list"]);
    let listed: Vec<usize> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .map(|e| e["records"].as_array().map_or(0, Vec::len))
        .collect();
    for n in [1000, 301] {
        assert!(listed.contains(&n), "{listed:?}");
    }
    // A second node holding the same records lists them alike.
    let sa = Server::start(a, &[]);
    b.cmd(&["sync", "--once", "--peer", &sa.addr]).ok();
    assert_eq!(ids(&b.json(&["record", "list", &case])), whole);
    assert_eq!(page(b, Some(&whole[999]), "1000"), whole[1000..2000]);
    // After a record erased since, the next page still starts in its place.
    drop(sa);
    a.cmd(&["record", "erase", &whole[999], "--reason", "duplicate"])
        .ok();
    assert_eq!(page(a, Some(&whole[999]), "2"), whole[1000..1002]);
    // Bad pages are refused with a clear word.
    for (args, says) in [
        (vec!["--limit", "0"], "--limit takes 1 to 10000"),
        (vec!["--limit", "10001"], "--limit takes 1 to 10000"),
        (vec!["--after", &whole[0]], "--limit"),
        (vec!["--limit", "5", "--after", "nope"], "nope"),
    ] {
        let mut full = vec!["record", "list", case.as_str()];
        full.extend(args);
        let e = a.cmd(&full).err();
        assert!(e.contains(says), "{full:?}: {e}");
    }
}

/// The search index follows every way a record changes: filed when added,
/// filed again when an edit arrives from a partner (the old name no longer
/// finds it), filed once when a record and its edit arrive together, taken out when it is erased, and rebuilt once, with each
/// record filed once, when a node finds its index from another version. FTS5's
/// own check of the index passes after each (`log verify`).
#[test]
fn the_search_index_follows_edits_from_partners_erasure_and_a_rebuild() {
    use crate::network::federation;
    let t = TestDir::new("records_search_index");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let case = a.create_case("Op Index");
    a.add_member(&case, b, "contributor");
    let id = a.add(&case, "person", &[("name", "Marin Dobre")], &[]);
    let other = a.add(&case, "person", &[("name", "Dobrescu Ana")], &[]);
    let found = |n: &Node, q: &str| -> Vec<String> {
        n.json(&["search", q])
            .as_array()
            .unwrap()
            .iter()
            .map(|h| str_of(h, "record").to_string())
            .collect()
    };
    let verified = |n: &Node| {
        let v = n.json(&["log", "verify"]);
        assert_eq!(v["failed"], 0, "{v}");
    };
    assert_eq!(found(a, "marin dobre"), vec![id.clone()]);
    assert_eq!(
        found(a, "dobre"),
        vec![id.clone(), other.clone()],
        "the word, then the prefix"
    );

    // B edits the name; A receives the edit through a bundle (the same
    // ingest as sync).
    let bundle = |from: &Node, to: &Node, name: &str| {
        let file = t.join(name);
        from.cmd(&[
            "bundle",
            "export",
            "--out",
            file.to_str().unwrap(),
            "--case",
            &case,
            "--for",
            &crate::util::peer_of(to),
        ])
        .ok();
        to.cmd(&["bundle", "import", file.to_str().unwrap()]).ok();
    };
    bundle(a, b, "to-b.bundle");
    assert_eq!(found(b, "marin dobre"), vec![id.clone()]);
    b.cmd(&["record", "edit", &id, "--field", "name=Ion Popa"])
        .ok();
    bundle(b, a, "to-a.bundle");
    assert_eq!(str_of(&a.show(&id)["fields"], "name"), "Ion Popa");
    assert_eq!(found(a, "marin"), Vec::<String>::new());
    assert_eq!(found(a, "dobre"), vec![other.clone()]);
    assert_eq!(found(a, "popa"), vec![id.clone()]);
    assert_eq!(found(a, "ion pop"), vec![id.clone()]);
    verified(a);
    verified(b);

    // A node new to the case gets the record's creation and the edit in
    // one delivery (a receiving node files new records after the entries
    // that make them, and before the edits of the same delivery): filed
    // once, under the edited name only.
    a.add_member(&case, c, "contributor");
    bundle(a, c, "to-c.bundle");
    assert_eq!(str_of(&c.show(&id)["fields"], "name"), "Ion Popa");
    assert_eq!(found(c, "popa"), vec![id.clone()]);
    assert_eq!(found(c, "marin"), Vec::<String>::new());
    assert_eq!(found(c, "dobre"), vec![other.clone()]);
    verified(c);

    // Erased: no term finds it any more.
    a.cmd(&["record", "erase", &id, "--reason", "held in error"])
        .ok();
    assert_eq!(found(a, "popa"), Vec::<String>::new());
    verified(a);

    // An index from another version is made anew at the next unlock, every
    // record filed once.
    let lines: String = (0..120)
        .map(|i| format!("{{\"type\":\"person\",\"fields\":{{\"name\":\"Popescu {i}\"}}}}\n"))
        .collect();
    let file = t.write("people.jsonl", lines);
    a.cmd(&["record", "import", &case, file.to_str().unwrap()])
        .ok();
    {
        let db = rusqlite::Connection::open(a.dir.join("casesync.db")).unwrap();
        db.execute(
            "UPDATE meta SET value = X'31' WHERE key = 'search_index_complete'",
            [],
        )
        .unwrap();
    }
    let hits = found(a, "popescu");
    assert_eq!(hits.len(), 120, "each record once");
    let distinct: std::collections::BTreeSet<&String> = hits.iter().collect();
    assert_eq!(distinct.len(), 120);
    assert_eq!(found(a, "dobrescu"), vec![other]);
    verified(a);
}
