//! Made `schema/src/entry_dictionary.bin` once (2026-12-07), the frozen base
//! of the dictionary entry parts are compressed with: a first change of each
//! record type with its usual fields and empty values. The file is part of
//! the entry format and must not be rewritten: running this again (a newer
//! Automerge may encode otherwise) writes it elsewhere, for comparison.
//!
//!     cargo run -p casesync-schema --example entry_dictionary -- OUT

use casesync_schema::doc::{self, Envelope};
use casesync_schema::record::{FieldValue, RecordInput, RecordType};
use casesync_schema::{CaseId, RecordId};

fn main() {
    let out = std::env::args()
        .nth(1)
        .expect("usage: entry_dictionary OUT (never schema/src/entry_dictionary.bin)");
    let fields: [(RecordType, &[&str]); 11] = [
        (
            RecordType::Person,
            &[
                "name",
                "category",
                "dob",
                "nationality",
                "alias",
                "address",
                "occupation",
                "phone",
                "email",
                "notes",
            ],
        ),
        (
            RecordType::Organisation,
            &["name", "kind", "address", "country", "registration"],
        ),
        (
            RecordType::Vehicle,
            &["registration", "make", "model", "colour", "vin"],
        ),
        (RecordType::Phone, &["number", "imei", "imsi", "carrier"]),
        (
            RecordType::BankAccount,
            &["iban", "number", "bic", "bank", "holder"],
        ),
        (RecordType::CryptoWallet, &["address", "currency"]),
        (RecordType::Location, &["address", "lat", "lon", "name"]),
        (
            RecordType::Event,
            &["title", "when", "where", "description"],
        ),
        (
            RecordType::Link,
            &["from", "to", "link_type", "status", "direction"],
        ),
        (RecordType::Note, &["text", "title"]),
        (
            RecordType::Evidence,
            &["file", "size", "sha256", "content", "media_type", "title"],
        ),
    ];
    let actor = doc::actor_for(&[0u8; 32]);
    let mut base = Vec::new();
    for (t, names) in fields {
        let env = Envelope {
            id: RecordId([0; 16]),
            case: CaseId([0; 16]),
            originator: String::new(),
            created: "2026-01-01T00:00:00+00:00".into(),
        };
        let input = RecordInput {
            handling: Default::default(),
            record_type: t,
            fields: names
                .iter()
                .map(|n| (n.to_string(), FieldValue::Str(String::new())))
                .collect(),
            grading: None,
            releasable_to: Default::default(),
        };
        let (_, change, _) = doc::new_record(actor.clone(), &env, &input, 0).expect("template");
        base.extend_from_slice(&change);
    }
    std::fs::write(&out, &base).expect("write");
    println!(
        "{} bytes, sha256 {}",
        base.len(),
        casesync_crypto::hash::sha256(&base).to_hex()
    );
}
