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

    // Deny by default: RO answers nobody until its admin says. (Its records
    // are filed for deconfliction on a thread of their own, as a large
    // import's would be, while the asker waits and asks again.)
    let sro = Server::start_env(ro, &[], &[("CASESYNC_MATCH_FILL_INLINE", "0")]);
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

    // A hit is followed by a signed request, filed under RO's case for its
    // lead; a handle RO never gave is refused.
    let handle = handles.iter().next().unwrap().to_string();
    let filed = uk
        .cmd(&[
            "match",
            "request",
            "--peer",
            &peer_of(ro),
            "--handle",
            &handle,
            "--kind",
            "join",
            "--message",
            "Op Lantern holds the same phone; DS Hale, ROCU East",
        ])
        .ok();
    assert!(filed.contains("filed with"), "{filed}");
    let err = uk
        .cmd(&[
            "match",
            "request",
            "--peer",
            &peer_of(ro),
            "--handle",
            "00000000000000000000000000000000",
            "--message",
            "anyone?",
        ])
        .err();
    assert!(err.contains("no case of this node has the handle"), "{err}");
    let filed = ro.json(&[
        "audit",
        "list",
        "--case",
        &danube,
        "--action",
        "match.request",
    ]);
    let filed = filed.as_array().unwrap();
    assert_eq!(filed.len(), 1, "{filed:?}");
    assert_eq!(filed[0]["peer"], peer_of(uk).as_str());
    assert!(
        filed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("Unit uk-east asks to join")
            && filed[0]["detail"].as_str().unwrap().contains("DS Hale"),
        "{filed:?}"
    );

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

/// The unblinded element of `input` (its hash to the group, a blinding
/// factor of 1): what a partner would see if the asker did not blind.
fn unblinded(input: &[u8]) -> Vec<u8> {
    use voprf::{Group, Ristretto255, VoprfClient};
    let mut one = [0u8; 32];
    one[0] = 1;
    let one = Ristretto255::deserialize_scalar(&one).unwrap();
    VoprfClient::<Ristretto255>::deterministic_blind_unchecked(input, one)
        .unwrap()
        .message
        .serialize()
        .to_vec()
}

#[test]
fn the_partner_sees_only_fresh_blinded_elements_never_a_selector() {
    use casesync_node::net::protocol::{SyncRequest, SyncResponse};
    use casesync_node::net::{self, Event};
    let t = TestDir::new("match_transcript");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (uk, ro) = (&nodes[0], &nodes[1]);
    let selectors = ["phone:+40722123456", "email:nobody-else@example.org"];
    let file = t.write("asked.txt", selectors.join("\n"));
    // The partner is this test process holding RO's keys, over real libp2p:
    // it records every request the honest asker sends it.
    let keys = casesync_node::DataDir::new(&ro.dir)
        .unlock(crate::util::PASSPHRASE.as_bytes())
        .unwrap()
        .keys
        .clone();
    let transcripts: Vec<Vec<Vec<u8>>> = crate::hostile_peer::local(async {
        let (client, mut events, event_loop) = net::new(keys.libp2p_keypair().unwrap()).unwrap();
        tokio::task::spawn_local(event_loop.run());
        let uk_peer: libp2p::PeerId = peer_of(uk).parse().unwrap();
        client.allow(vec![uk_peer], vec![]).await;
        client
            .listen("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .await
            .unwrap();
        let addr = loop {
            if let Some(Event::Listening(a)) = events.recv().await {
                break format!("{a}/p2p/{}", peer_of(ro));
            }
        };
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (bin, dir, f) = (
                crate::util::Node {
                    dir: uk.dir.clone(),
                },
                addr.clone(),
                file.clone(),
            );
            let asker = tokio::task::spawn_blocking(move || {
                bin.cmd(&["match", "--peer", &dir, "--selectors", f.to_str().unwrap()])
            });
            let blinded = loop {
                match events.recv().await {
                    Some(Event::Inbound {
                        request: SyncRequest::MatchEvaluate { blinded, .. },
                        channel,
                        ..
                    }) => {
                        client
                            .respond(
                                channel,
                                SyncResponse::Refused {
                                    reason: "seen enough".into(),
                                },
                            )
                            .await;
                        break blinded;
                    }
                    Some(_) => {}
                    None => panic!("the network stopped"),
                }
            };
            let err = asker.await.unwrap().err();
            assert!(err.contains("seen enough"), "{err}");
            seen.push(blinded.into_iter().map(|b| b.into_vec()).collect());
        }
        seen
    });
    let (first, second) = (&transcripts[0], &transcripts[1]);
    assert_eq!(first.len(), 2);
    // Fresh blinding each time: the same selectors asked twice look unrelated.
    for a in first {
        assert!(!second.contains(a), "an element was sent twice");
    }
    // Never the selector's own hash to the group (which the partner could
    // test guesses against), nor any of its bytes.
    for (s, (a, b)) in selectors.iter().zip(first.iter().zip(second)) {
        let (kind, value) = s.split_once(':').unwrap();
        let input = [kind.as_bytes(), &[0], value.as_bytes()].concat();
        let plain = unblinded(&input);
        assert_ne!(a, &plain);
        assert_ne!(b, &plain);
        assert!(find_bytes(a, &value.as_bytes()[..8]).is_none());
    }
}

#[test]
fn a_hostile_asker_is_refused_past_its_quota_and_for_malformed_requests() {
    use casesync_node::net::protocol::{SyncRequest, SyncResponse};
    use serde_bytes::ByteBuf;
    let t = TestDir::new("match_hostile");
    let nodes = federation(&t, &[("uk-east", "GB"), ("ro-police", "RO")]);
    let (uk, ro) = (&nodes[0], &nodes[1]);
    let case = ro.create_case("Op Danube");
    ro.add(&case, "phone", &[("number", "0722 123 456")], &[]);
    ro.cmd(&["match", "policy", "--allow", "*", "--per-day", "10"])
        .ok();
    let sro = Server::start(ro, &[]);
    let hn = casesync_node::DataDir::new(&uk.dir)
        .unlock(crate::util::PASSPHRASE.as_bytes())
        .unwrap();
    let federation = casesync_node::trust::load(hn.store.conn())
        .unwrap()
        .unwrap()
        .federation;
    let target: libp2p::PeerId = peer_of(ro).parse().unwrap();
    let elements = |n: usize| -> Vec<ByteBuf> {
        let inputs: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("email:x{i}@example.org").into_bytes())
            .collect();
        casesync_crypto::oprf::blind(&inputs)
            .unwrap()
            .messages
            .iter()
            .map(|m| ByteBuf::from(m.to_vec()))
            .collect()
    };
    let evaluate = |blinded: Vec<ByteBuf>| SyncRequest::MatchEvaluate {
        federation: federation.0.to_vec(),
        blinded,
    };
    let refused = |r: &SyncResponse, what: &str| match r {
        SyncResponse::Refused { reason } => assert!(reason.contains(what), "{reason}"),
        other => panic!("expected a refusal with {what:?}, got {other:?}"),
    };
    crate::hostile_peer::local(async {
        let connect = || crate::hostile_peer::connect(&hn.keys, &sro.addr, target, federation);
        // Not a group element; too many at once; a cursor that is no tag:
        // protocol violations, each costing the connection (the answer may
        // lose the race with the disconnect).
        let violation = |r: Result<SyncResponse, String>| match r {
            Ok(r) => refused(&r, "protocol violation"),
            Err(e) => assert!(e.contains("closed"), "{e}"),
        };
        let h = connect().await;
        violation(h.ask(evaluate(vec![ByteBuf::from(vec![0xff; 32])])).await);
        let h = connect().await;
        violation(h.ask(evaluate(elements(4097))).await);
        let h = connect().await;
        violation(
            h.ask(SyncRequest::MatchSet {
                federation: federation.0.to_vec(),
                after: vec![0; 17],
            })
            .await,
        );
        // Two requests of 6 at the same moment against a quota of 10: one
        // is answered, the other refused whole.
        let h = connect().await;
        let (x, y) = futures::join!(h.ask(evaluate(elements(6))), h.ask(evaluate(elements(6))));
        let (x, y) = (x.unwrap(), y.unwrap());
        let answered = [&x, &y]
            .iter()
            .filter(|r| matches!(r, SyncResponse::MatchEvaluated { .. }))
            .count();
        assert_eq!(answered, 1, "{x:?} {y:?}");
        for r in [&x, &y] {
            if let SyncResponse::MatchEvaluated {
                evaluated,
                left_today,
                ..
            } = r
            {
                assert_eq!(evaluated.len(), 6);
                assert_eq!(*left_today, 4);
            } else {
                refused(r, "rate limit: 4 of 10");
            }
        }
        // Exactly what is left, then nothing more today.
        let r = h.ask(evaluate(elements(4))).await.unwrap();
        assert!(
            matches!(r, SyncResponse::MatchEvaluated { left_today: 0, .. }),
            "{r:?}"
        );
        refused(
            &h.ask(evaluate(elements(1))).await.unwrap(),
            "rate limit: 0 of 10",
        );
        // The set is still listed (tags only), and the node still serves.
        let r = h
            .ask(SyncRequest::MatchSet {
                federation: federation.0.to_vec(),
                after: vec![],
            })
            .await
            .unwrap();
        assert!(
            matches!(r, SyncResponse::MatchSet { more: false, .. }),
            "{r:?}"
        );
    });
    // The partner's audit: the answered requests and every refusal, by count.
    let log = audit_details(ro, "match.answer");
    let ok = log.iter().filter(|e| e["outcome"] == "ok").count();
    let no = log.iter().filter(|e| e["outcome"] == "refused").count();
    assert_eq!((ok, no), (2, 2), "{log:?}");
    drop(sro);
}
