//! Deconfliction between agencies (`casesync match`, issue 17): a private
//! set intersection between separate `serve` processes on 127.0.0.1. The
//! asker learns exactly the selectors both hold; the partner's audit shows a
//! count and nothing it was asked; a node outside the partner's policy is
//! refused; the partner's daily limit holds.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::network::{Server, federation};
use crate::util::{TestDir, files_under, find_bytes, peer_of};

fn hits(report: &Value) -> BTreeSet<String> {
    report["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            format!(
                "{}:{}",
                h["type"].as_str().unwrap(),
                h["selector"].as_str().unwrap()
            )
        })
        .collect()
}

fn audit_details(n: &crate::util::Node, action: &str) -> Vec<Value> {
    n.json(&["audit", "list", "--action", action])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn match_finds_exactly_the_shared_selectors_and_the_partner_learns_only_a_count() {
    let t = TestDir::new("match_psi");
    let nodes = federation(
        &t,
        &[("uk-east", "GB"), ("ro-police", "RO"), ("europol", "NL")],
    );
    let (uk, ro, eu) = (&nodes[0], &nodes[1], &nodes[2]);

    // The Romanian unit's case: national formats, diacritics.
    let danube = ro.create_case("Op Danube");
    ro.add(&danube, "phone", &[("number", "0722 123 456")], &[]);
    ro.add(
        &danube,
        "crypto_wallet",
        &[
            ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            ("currency", "BTC"),
        ],
        &[],
    );
    ro.add(
        &danube,
        "person",
        &[("name", "Ştefan Ţăranu"), ("dob", "1984-03-02")],
        &[],
    );
    ro.add(
        &danube,
        "bank_account",
        &[("iban", "RO49 AAAA 1B31 0075 9384 0000")],
        &[],
    );
    // Held by RO but releasable to Romanian units only: never a hit for UK.
    ro.add(
        &danube,
        "phone",
        &[("number", "0700 000 999")],
        &["--releasable-to", "RO"],
    );

    // The UK unit's case: the same phone, wallet and person in other forms,
    // and selectors RO does not hold.
    let lantern = uk.create_case("Op Lantern");
    uk.add(&lantern, "phone", &[("number", "+40 (722) 123-456")], &[]);
    uk.add(
        &lantern,
        "crypto_wallet",
        &[
            ("address", "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"),
            ("currency", "BTC"),
        ],
        &[],
    );
    uk.add(
        &lantern,
        "person",
        &[("name", "TARANU, STEFAN"), ("dob", "1984-03-02")],
        &[],
    );
    uk.add(&lantern, "phone", &[("number", "+44 7400 123456")], &[]);
    uk.add(&lantern, "phone", &[("number", "+40 700 000 999")], &[]);
    uk.add(
        &lantern,
        "bank_account",
        &[("iban", "GB82 WEST 1234 5698 7654 32")],
        &[],
    );

    // Deny by default: RO answers nobody until its admin says.
    let sro = Server::start(ro, &[]);
    uk.cmd(&["peer", "add", &sro.addr]).ok();
    let err = uk
        .cmd(&["match", "--peer", &peer_of(ro), "--case", &lantern])
        .err();
    assert!(err.contains("match policy does not allow"), "{err}");

    let policy = ro
        .cmd(&[
            "match",
            "policy",
            "--allow",
            "Unit uk-east",
            "--per-day",
            "12",
            "--contact",
            "Comisar Popescu, IGPR, +40 21 000 0000",
        ])
        .ok();
    assert!(policy.contains("Unit uk-east"), "{policy}");

    let report = uk.json(&["match", "--peer", &peer_of(ro), "--case", &lantern]);
    let asked = report["asked"].as_u64().unwrap();
    let expected: BTreeSet<String> = [
        "phone:+40722123456",
        "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "name:stefan taranu|1984-03-02",
        "name:stefan taranu",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(hits(&report), expected, "{report}");
    assert_eq!(report["contact"], "Comisar Popescu, IGPR, +40 21 000 0000");
    // Every hit names one case at RO by the same opaque handle, not its id.
    let handles: BTreeSet<&str> = report["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["handle"].as_str().unwrap())
        .collect();
    assert_eq!(handles.len(), 1, "{report}");
    assert!(!handles.contains(danube.replace('-', "").as_str()));
    assert_eq!(report["left_today"].as_u64().unwrap(), 12 - asked);

    // The partner's audit: the count, who asked, nothing of what.
    let answers = audit_details(ro, "match.answer");
    let ok: Vec<&Value> = answers.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 1, "{answers:?}");
    let detail = ok[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("evaluated {asked} blinded selector(s)")),
        "{detail}"
    );
    assert_eq!(ok[0]["peer"], peer_of(uk).as_str());
    for secret in ["447400123456", "GB82", "7400 123", "+44"] {
        assert!(!detail.contains(secret), "{detail}");
    }
    // Nowhere in the partner's data dir (store, WAL, keystore) is a selector
    // it was asked and does not hold, in any form the asker could send it.
    drop(sro);
    for f in files_under(&ro.dir) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in ["+447400123456", "447400123456", "GB82WEST12345698765432"] {
            assert!(
                find_bytes(&bytes, needle.as_bytes()).is_none(),
                "{needle} found in {}",
                f.display()
            );
        }
    }
    // The asker's audit has its query and the hits (sealed at rest).
    let asks = audit_details(uk, "match");
    let d = asks
        .iter()
        .find(|e| e["outcome"] == "ok")
        .and_then(|e| e["detail"].as_str())
        .unwrap();
    assert!(
        d.contains("phone:+447400123456") && d.contains("4 held there"),
        "{d}"
    );

    // A node outside the policy is refused, and the refusal is audited. RO
    // first learns from the admin's node that Europol was enrolled after it.
    let suk = Server::start(uk, &[]);
    let sro = Server::start(ro, &[&suk.addr]);
    crate::network::eventually(60, "RO knows Europol is enrolled", || {
        ro.cmd(&["trust", "list"]).ok().contains("europol")
    });
    // `match --peer ADDR --selectors FILE` with `lines` in FILE.
    let ask = |n: &crate::util::Node, name: &str, lines: &str, json: bool| {
        let file = t.write(name, lines);
        let mut args = vec!["match", "--peer", &sro.addr, "--selectors"];
        args.push(file.to_str().unwrap());
        if json {
            args.insert(0, "--json");
        }
        n.cmd(&args)
    };
    let err = ask(eu, "asked.txt", "phone:+40722123456\n", false).err();
    assert!(err.contains("match policy does not allow"), "{err}");
    assert!(
        audit_details(ro, "match.answer")
            .iter()
            .any(|e| e["outcome"] == "refused" && e["peer"] == peer_of(eu).as_str()),
        "the refusal is in the partner's audit log"
    );

    // The daily limit: one selector more than is left is refused whole and
    // costs nothing; exactly what is left is answered.
    let left = 12 - asked as usize;
    let emails = |n: usize| -> String {
        (0..n)
            .map(|i| format!("email:a{i}@example.org\n"))
            .collect()
    };
    let err = ask(uk, "many.txt", &emails(left + 1), false).err();
    assert!(err.contains("rate limit"), "{err}");
    let r: Value = serde_json::from_str(&ask(uk, "exact.txt", &emails(left), true).ok()).unwrap();
    assert_eq!(r["hits"], serde_json::json!([]), "{r}");
    assert_eq!(r["left_today"], 0);
    let err = ask(uk, "one.txt", "phone:+40722123456\n", false).err();
    assert!(err.contains("rate limit: 0 of 12"), "{err}");
    drop((sro, suk));
}

#[test]
fn selectors_export_needs_a_justification_and_lists_every_selector_in_the_audit() {
    let t = TestDir::new("selectors_export");
    let n = t.node("uk-east");
    n.init("uk-east", "ROCU East", "GB");
    let case = n.create_case("Op Lantern");
    n.add(
        &case,
        "crypto_wallet",
        &[
            ("address", "0x52908400098527886E0F7030069857D2E4169EE7"),
            ("currency", "ETH"),
        ],
        &[],
    );
    n.add(
        &case,
        "crypto_wallet",
        &[
            ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            ("currency", "BTC"),
        ],
        &[],
    );
    n.add(&case, "phone", &[("number", "07400 123456")], &[]);
    // Releasable to GB units only: not for the exchange.
    n.add(
        &case,
        "crypto_wallet",
        &[
            (
                "address",
                "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
            ),
            ("currency", "BTC"),
        ],
        &["--releasable-to", "GB"],
    );
    let out = t.join("for-exchange.csv");
    let args = [
        "selectors",
        "export",
        "--case",
        &case,
        "--for",
        "Exchange Intelligence",
        "--type",
        "btc",
        "--type",
        "eth",
        "--out",
        out.to_str().unwrap(),
    ];
    let err = n.cmd(&args).err();
    assert!(err.contains("--justification"), "{err}");
    assert!(!out.exists());
    let mut with = vec!["--justification", "request 2026/118"];
    with.extend(args);
    let said = n.cmd(&with).ok();
    assert!(said.contains("wrote 2 selector(s)"), "{said}");
    assert!(said.contains("withheld 1 record"), "{said}");
    let csv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        csv,
        "type,selector\nbtc,bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4\neth,0x52908400098527886e0f7030069857d2e4169ee7\n"
    );
    // Never over a file that exists.
    assert!(n.cmd(&with).err().contains("exists"));
    // JSON for a .json file, every type by default.
    let json_out = t.join("all.json");
    let j = n.json(&[
        "--justification",
        "request 2026/118",
        "selectors",
        "export",
        "--case",
        &case,
        "--for",
        "Exchange Intelligence",
        "--out",
        json_out.to_str().unwrap(),
    ]);
    assert_eq!(j["selectors"], 3, "{j}");
    let file: Value = serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    assert_eq!(file["for"], "Exchange Intelligence");
    assert!(
        file["selectors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["type"] == "phone" && s["selector"] == "+447400123456"),
        "{file}"
    );
    // The disclosures, each selector named; the refusal too.
    let log = audit_details(&n, "selectors.export");
    let ok: Vec<&Value> = log.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 2, "{log:?}");
    assert!(
        ok.iter().any(|e| e["justification"] == "request 2026/118"
            && e["detail"]
                .as_str()
                .unwrap()
                .contains("btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")),
        "{log:?}"
    );
    assert!(log.iter().any(|e| e["outcome"] == "refused"), "{log:?}");
}
