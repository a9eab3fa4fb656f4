//! Valid inputs for every target, made with the real encoders. The committed
//! corpus (`fuzz/corpus/<target>/`) is written from these by
//! `cargo run -p casesync-fuzz --example write_corpus`; the regression tests
//! check both these and the committed files are accepted.
//!
//! Each input starts with the target's mode byte where the target has modes
//! (see the target's documentation in the crate root).

use casesync_crypto::hash::Hash;
use casesync_crypto::{NodeKeys, SIGNATURE_LEN};
use casesync_node::net::protocol::{CaseHave, LogHave, SyncRequest, SyncResponse};
use casesync_schema::bundle::{self, BundleBody, CaseItems};
use casesync_schema::card::NodeCard;
use casesync_schema::control::{self, CaseMeta, ControlBody, ControlOp, Role};
use casesync_schema::doc::{self, Envelope, RecordEdit};
use casesync_schema::entry::{self, EntryHeader, LogEntry, RecordChange, ViewItem};
use casesync_schema::record::{self, FieldValue, RecordInput, RecordType, ReleasableTo};
use casesync_schema::registry::{self, RegistryBody, RegistryOp};
use casesync_schema::{CaseId, RecordId};

use crate::{fixed_card, fixed_key, fixed_keys};

fn other_keys() -> NodeKeys {
    NodeKeys::from_secret_bytes(&[8; 32], &[10; 32])
}

fn other_card() -> NodeCard {
    NodeCard::issue(&other_keys(), "ro-police", "Politia Romana", "RO", 2).expect("card")
}

fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    v
}

fn unsigned(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len() - SIGNATURE_LEN]
}

/// A log entry without the signature at the end of its head.
fn unsigned_entry(bytes: &[u8]) -> Vec<u8> {
    let head = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
    let mut b = bytes[..head - SIGNATURE_LEN].to_vec();
    b.extend_from_slice(&bytes[head..]);
    b
}

const CASE: CaseId = CaseId([2; 16]);

fn input() -> RecordInput {
    RecordInput {
        handling: Default::default(),
        record_type: RecordType::Person,
        fields: [
            ("name".to_string(), FieldValue::Str("Ana Pop".into())),
            ("age".to_string(), FieldValue::Int(41)),
        ]
        .into(),
        grading: Some(record::parse_grading("3x5x2:1AP").expect("grading")),
        releasable_to: ReleasableTo(vec!["GB".into(), "RO".into()]),
    }
}

fn envelope() -> Envelope {
    Envelope {
        id: RecordId([1; 16]),
        case: CASE,
        originator: fixed_card().peer_id(),
        created: "2026-11-26T10:00:00+00:00".into(),
    }
}

/// A record's first change and a later edit of it.
fn changes() -> (Vec<u8>, Vec<u8>) {
    let actor = doc::actor_for(&fixed_keys().public().ed25519);
    let (first, _) = doc::first_change(actor.clone(), &envelope(), &input(), 1_700_000_000_000);
    let (mut d, _, _) =
        doc::new_record(actor, &envelope(), &input(), 1_700_000_000_000).expect("record");
    let edit = RecordEdit {
        set: [("name".to_string(), FieldValue::Str("Ana Popescu".into()))].into(),
        unset: vec!["age".into()],
        grading: None,
        handling: None,
        releasable_to: None,
    };
    let second = doc::apply_edit(
        &mut d,
        &edit,
        "2026-11-26T11:00:00+00:00",
        1_700_000_100_000,
    )
    .expect("edit")
    .expect("a change");
    (first, second)
}

fn payload() -> Vec<u8> {
    let (first, _) = changes();
    entry::encode_payload(&[RecordChange {
        record: RecordId([1; 16]),
        change: first,
    }])
}

fn header(seq: u64, prev: Hash) -> EntryHeader {
    EntryHeader {
        case: CASE,
        author: [0; 32],
        seq,
        prev,
        epoch: Hash([3; 32]),
        time_ms: 1_700_000_000_000,
        view: vec![ViewItem {
            author: [4; 32],
            seq: 2,
            hash: Hash([6; 32]),
        }],
    }
}

fn entries() -> (LogEntry, LogEntry) {
    let (created, edit) = changes();
    let first = LogEntry::create(
        fixed_keys(),
        header(1, Hash::ZERO),
        fixed_key(),
        &[RecordChange {
            record: RecordId([1; 16]),
            change: created,
        }],
    )
    .expect("entry");
    let second = LogEntry::create(
        fixed_keys(),
        header(2, first.hash()),
        fixed_key(),
        &[RecordChange {
            record: RecordId([1; 16]),
            change: edit,
        }],
    )
    .expect("entry");
    (first, second)
}

/// The input of `log_entry`'s mode 2: fields, then the payload.
fn entry_fields(seq: u64, prev: Hash, payload: &[u8]) -> Vec<u8> {
    let h = header(seq, prev);
    let mut v = vec![2u8];
    v.extend_from_slice(&h.case.0);
    v.extend_from_slice(&h.seq.to_be_bytes());
    v.extend_from_slice(h.prev.as_bytes());
    v.extend_from_slice(h.epoch.as_bytes());
    v.extend_from_slice(&h.time_ms.to_be_bytes());
    v.push(h.view.len() as u8);
    for i in &h.view {
        v.extend_from_slice(&i.author);
        v.extend_from_slice(&i.seq.to_be_bytes());
        v.extend_from_slice(i.hash.as_bytes());
    }
    v.extend_from_slice(payload);
    v
}

fn control_ops() -> Vec<ControlOp> {
    let keys = fixed_keys();
    let nonce = [3; 16];
    let case = control::case_id_for(&keys.public().ed25519, &nonce);
    let salt = [4; 32];
    let meta = CaseMeta {
        title: "Operation Fuzz".into(),
        require_justification: true,
    };
    let create = ControlOp::create(
        keys,
        case,
        vec![],
        1,
        ControlBody::Create {
            nonce,
            creator: fixed_card().clone(),
            salt,
            wraps: control::wrap_to(fixed_key(), &case, &salt, &[fixed_card()]).expect("wrap"),
            sealed_meta: meta.seal(&case, fixed_key()).expect("seal"),
        },
    )
    .expect("create");
    let add = ControlOp::create(
        keys,
        case,
        vec![create.hash()],
        2,
        ControlBody::AddMember {
            card: other_card(),
            role: Role::Contributor,
        },
    )
    .expect("add");
    let salt2 = [5; 32];
    let remove = ControlOp::create(
        keys,
        case,
        vec![add.hash()],
        3,
        ControlBody::RemoveMember {
            member: other_keys().public().ed25519,
            cut: vec![],
            sealed_reason: b"sealed reason".to_vec(),
            salt: salt2,
            wraps: control::wrap_to(fixed_key(), &case, &salt2, &[fixed_card()]).expect("wrap"),
        },
    )
    .expect("remove");
    vec![create, add, remove]
}

fn registry_ops() -> Vec<RegistryOp> {
    let keys = fixed_keys();
    let genesis = RegistryOp::create(
        keys,
        Hash::ZERO,
        vec![],
        1,
        RegistryBody::Genesis {
            name: "JIT Fuzz".into(),
            nonce: [1; 16],
            admin: fixed_card().clone(),
        },
    )
    .expect("genesis");
    let fed = genesis.hash();
    let enroll = RegistryOp::create(
        keys,
        fed,
        vec![fed],
        2,
        RegistryBody::Enroll {
            card: other_card(),
            admin: false,
        },
    )
    .expect("enroll");
    let revoke = RegistryOp::create(
        keys,
        fed,
        vec![enroll.hash()],
        3,
        RegistryBody::Revoke {
            node: other_keys().public().ed25519,
            reason: "compromised".into(),
        },
    )
    .expect("revoke");
    vec![genesis, enroll, revoke]
}

fn bundle_body() -> BundleBody {
    let (e1, e2) = entries();
    BundleBody {
        registry_ops: registry_ops().iter().map(|o| o.bytes().to_vec()).collect(),
        cases: vec![CaseItems {
            case: CASE,
            control_ops: control_ops()[..1]
                .iter()
                .map(|o| o.bytes().to_vec())
                .collect(),
            entries: vec![e1.bytes().to_vec(), e2.bytes().to_vec()],
        }],
    }
}

fn cbor<T: serde::Serialize>(m: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), m).expect("cbor")
}

fn have() -> Vec<CaseHave> {
    vec![CaseHave {
        case: CASE.0.to_vec(),
        control: vec![3; 32],
        control_heads: vec![serde_bytes::ByteBuf::from(vec![5; 32])],
        logs: vec![LogHave {
            author: vec![4; 32],
            seq: 7,
            head: vec![6; 32],
        }],
        frozen: vec![LogHave {
            author: vec![9; 32],
            seq: 2,
            head: vec![],
        }],
    }]
}

/// Valid inputs of `target` (empty for an unknown target).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "log_entry" => {
            let (e1, e2) = entries();
            vec![
                with_mode(0, e1.bytes()),
                with_mode(0, e2.bytes()),
                with_mode(1, &unsigned_entry(e1.bytes())),
                with_mode(1, &unsigned_entry(e2.bytes())),
                entry_fields(1, Hash::ZERO, &payload()),
                entry_fields(2, Hash([7; 32]), &entry::encode_payload(&[])),
                // The first entry of a later chain (a restored node), from an
                // earlier entry and from nothing.
                entry_fields(entry::chain_base(9) + 1, Hash([7; 32]), &payload()),
                entry_fields(entry::chain_base(9) + 1, Hash::ZERO, &payload()),
            ]
        }
        "entry_payload" => {
            let (first, second) = changes();
            vec![
                with_mode(0, &payload()),
                with_mode(0, &entry::encode_payload(&[])),
                with_mode(1, &first),
                with_mode(1, &second),
                with_mode(2, &first),
            ]
        }
        "control_op" => control_ops()
            .iter()
            .flat_map(|o| [with_mode(0, o.bytes()), with_mode(1, unsigned(o.bytes()))])
            .collect(),
        "registry_op" => registry_ops()
            .iter()
            .flat_map(|o| [with_mode(0, o.bytes()), with_mode(1, unsigned(o.bytes()))])
            .collect(),
        "join_token" => {
            let ops = registry_ops();
            let token = registry::encode_token(&ops[..2]);
            let body = token.strip_prefix("csjoin1.").expect("prefix");
            let binary = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                body,
            )
            .expect("base64");
            let sealed = registry::seal_token(fixed_keys(), fixed_card(), &ops[..2], i64::MAX)
                .expect("sealed token");
            let sealed_binary = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                sealed.strip_prefix("csjoin2.").expect("prefix"),
            )
            .expect("base64");
            vec![
                token.into_bytes(),
                with_mode(0, &binary),
                sealed.into_bytes(),
                with_mode(1, &sealed_binary),
            ]
        }
        "node_card" => {
            let mut v = Vec::new();
            for c in [fixed_card().clone(), other_card()] {
                v.push(with_mode(0, c.bytes()));
                v.push(with_mode(2, c.to_text().as_bytes()));
            }
            v.push(with_mode(1, unsigned(fixed_card().bytes())));
            v
        }
        "bundle" => {
            let body = bundle_body();
            let keys = fixed_keys();
            let sealed =
                bundle::seal(keys, fixed_card(), Some(fixed_card()), &body).expect("bundle");
            let plain = bundle::seal(keys, fixed_card(), None, &body).expect("bundle");
            // Mode 2: what follows the sender's card, without the signature.
            let after_card = 8 + 1 + 4 + fixed_card().bytes().len();
            vec![
                with_mode(0, &body.encode()),
                with_mode(0, &BundleBody::default().encode()),
                with_mode(1, &sealed),
                with_mode(1, &plain),
                with_mode(2, unsigned(&plain[after_card..])),
                with_mode(2, unsigned(&sealed[after_card..])),
            ]
        }
        "net_message" => {
            let small = BundleBody {
                registry_ops: vec![registry_ops()[0].bytes().to_vec()],
                cases: vec![],
            }
            .encode();
            vec![
                with_mode(
                    0,
                    &cbor(&SyncRequest::Digest {
                        federation: vec![1; 32],
                        digest: vec![2; 32],
                        audit_head: vec![],
                    }),
                ),
                with_mode(
                    0,
                    &cbor(&SyncRequest::Pull {
                        federation: vec![1; 32],
                        registry: vec![3; 32],
                        have: have(),
                    }),
                ),
                with_mode(
                    0,
                    &cbor(&SyncRequest::Deliver {
                        federation: vec![1; 32],
                        body: small.clone(),
                    }),
                ),
                with_mode(
                    1,
                    &cbor(&SyncResponse::Items {
                        body: small,
                        more: true,
                        registry: vec![3; 32],
                        have: have(),
                    }),
                ),
                with_mode(1, &cbor(&SyncResponse::Digest {
                    same: false,
                    your_earlier_head: vec![],
                })),
                with_mode(
                    1,
                    &cbor(&SyncResponse::Accepted {
                        entries: 5,
                        rejected: 1,
                    }),
                ),
                with_mode(
                    1,
                    &cbor(&SyncResponse::Refused {
                        reason: "not a member".into(),
                    }),
                ),
            ]
        }
        "import_jsonl" => vec![
            b"{\"type\":\"person\",\"fields\":{\"name\":\"Ana\",\"dob\":\"1980-02-03\"}}\n\n{\"type\":\"note\",\"fields\":{\"text\":\"x\"},\"grading\":\"europol:B2\",\"releasable_to\":[\"GB\"]}\n".to_vec(),
            b"{\"type\":\"bank_account\",\"fields\":{\"iban\":\"GB82 WEST 1234 5698 7654 32\",\"currency\":\"eur\"},\"grading\":\"3x5x2:1AP\"}\n".to_vec(),
            b"{\"type\":\"crypto_wallet\",\"fields\":{\"currency\":\"btc\",\"address\":\"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq\"}}\n{\"type\":\"crypto_wallet\",\"fields\":{\"currency\":\"eth\",\"address\":\"0x52908400098527886E0F7030069857D2E4169EE7\"}}\n{\"type\":\"phone\",\"fields\":{\"number\":\"+40 721 234 567\"}}\n{\"type\":\"location\",\"fields\":{\"lat\":\"45.75\",\"lon\":21.22}}\n".to_vec(),
            b"{\"type\":\"person\",\"fields\":{\"name\":\"\\u0218tefan\",\"age\":41,\"lat\":45.5,\"alive\":true}}".to_vec(),
        ],
        "import_csv" => vec![
            b"type,name,grading,releasable_to\nperson,Ana Popescu,3x5x2:1AP,GB;RO\nperson,\"Dobre, Marin\",,\n".to_vec(),
            b"type,iban,bic\nbank_account,RO49AAAA1B31007593840000,DEUTDEFF\ncrypto_wallet,,\n".to_vec(),
        ],
        "audit_since" => vec![
            b"2026-11-27T09:00:00+00:00".to_vec(),
            b"2026-11-27T09:00:00.123456Z".to_vec(),
        ],
        _ => Vec::new(),
    }
}
