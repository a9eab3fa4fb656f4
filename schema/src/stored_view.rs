//! How a node keeps a record's view (its current fields, for listing and
//! search without Automerge) before sealing it with its storage key. Never
//! sent: a peer gets the record's changes, not this.
//!
//! A view was kept as the JSON of `record show --json`: about 610 bytes for
//! a person of eight 30-character fields, the largest column of the store
//! (issue 22). This form keeps the same values:
//!
//! - no key names, short lengths (LEB128), the record and case ids as their
//!   16 bytes and the originator's PeerId as its bytes (each only when the
//!   text is their canonical form, so any other text comes back unchanged);
//! - `updated` only when it differs from `created`;
//! - then LZ4 with the frozen dictionary entry parts use (record type and
//!   field names, template timestamps), as each part of an entry is
//!   compressed alone: the view holds one record, and what the dictionary
//!   gives back is never another record's content.
//!
//! Compressing before sealing shows the compressed length to whoever reads
//! the file, as entry parts already do (issue 19); a view holds one record's
//! fields, so no one's input is compressed together with another's secret.
//!
//! A view kept as JSON before this (its first byte `{`) still opens; it is
//! written in this form when its record next changes.

use std::collections::BTreeMap;

use crate::SchemaError;
use crate::codec::{Reader, Writer};
use crate::doc::RecordView;
use crate::grading::HandlingCode;
use crate::record::FieldValue;

const WHAT: &str = "stored record view";

/// The first byte of a view in this form (a JSON view starts with `{`).
const VERSION: u8 = 1;

/// The most a stored view may decompress to: far above any record the
/// schema accepts (`record::MAX_RECORD_BYTES`), so nothing a node stored is
/// refused, and a bound before anything is allocated.
pub const MAX_STORED_VIEW_BYTES: usize = 16 << 20;

/// Value kinds in a field.
const STR: u8 = 0;
const INT: u8 = 1;
const FLOAT: u8 = 2;
const FALSE: u8 = 3;
const TRUE: u8 = 4;
/// How an id or the originator is written: its bytes, or its text.
const AS_BYTES: u8 = 0;
const AS_TEXT: u8 = 1;

/// The bytes a node seals as a record's view.
pub fn encode(view: &RecordView) -> Result<Vec<u8>, SchemaError> {
    let mut w = Writer::new();
    put_uuid(&mut w, &view.id);
    put_uuid(&mut w, &view.case);
    w.var_bytes(view.record_type.as_bytes());
    w.var(view.fields.len() as u64);
    for (name, value) in &view.fields {
        w.var_bytes(name.as_bytes());
        match value {
            FieldValue::Str(s) => {
                w.u8(STR);
                w.var_bytes(s.as_bytes());
            }
            FieldValue::Int(i) => {
                w.u8(INT);
                w.i64(*i);
            }
            FieldValue::Float(f) => {
                w.u8(FLOAT);
                w.u64(f.to_bits());
            }
            FieldValue::Bool(b) => w.u8(if *b { TRUE } else { FALSE }),
        }
    }
    put_peer(&mut w, &view.originator);
    w.var_bytes(view.created.as_bytes());
    if view.updated == view.created {
        w.u8(0);
    } else {
        w.u8(1);
        w.var_bytes(view.updated.as_bytes());
    }
    match &view.grading {
        None => w.u8(0),
        Some(g) => {
            w.u8(1);
            w.var_bytes(g.as_bytes());
        }
    }
    w.var_bytes(view.handling.to_string().as_bytes());
    w.var(view.releasable_to.len() as u64);
    for r in &view.releasable_to {
        w.var_bytes(r.as_bytes());
    }
    if view.extra.is_empty() {
        w.var(0);
    } else {
        w.var_bytes(&serde_json::to_vec(&view.extra).map_err(|e| malformed(e.to_string()))?);
    }
    if w.buf.len() > MAX_STORED_VIEW_BYTES {
        // Larger than any record the schema accepts: kept as JSON, which has
        // no bound here, rather than refused.
        return serde_json::to_vec(view).map_err(|e| malformed(e.to_string()));
    }
    let packed = lz4_flex::block::compress_with_dict(&w.buf, crate::entry::DICTIONARY_BASE);
    let mut out = Writer::new();
    out.u8(VERSION);
    out.var(w.buf.len() as u64);
    out.raw(&packed);
    Ok(out.buf)
}

/// A stored view, in this form or the JSON one.
pub fn decode(bytes: &[u8]) -> Result<RecordView, SchemaError> {
    match bytes.first() {
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string())),
        Some(&VERSION) => decode_compact(&bytes[1..]),
        Some(&version) => Err(SchemaError::UnsupportedVersion {
            what: WHAT,
            version,
        }),
        None => Err(malformed("empty")),
    }
}

fn decode_compact(bytes: &[u8]) -> Result<RecordView, SchemaError> {
    let mut r = Reader::new(bytes, WHAT);
    let size = r.var()?;
    if size > MAX_STORED_VIEW_BYTES as u64 {
        return Err(SchemaError::TooLarge {
            what: WHAT,
            size: usize::try_from(size).unwrap_or(usize::MAX),
            limit: MAX_STORED_VIEW_BYTES,
        });
    }
    let size = size as usize;
    let mut plain = vec![0u8; size];
    let got = lz4_flex::block::decompress_into_with_dict(
        &bytes[r.position()..],
        &mut plain,
        crate::entry::DICTIONARY_BASE,
    )
    .map_err(|e| malformed(e.to_string()))?;
    if got != size {
        return Err(malformed("declared size does not match"));
    }
    let mut r = Reader::new(&plain, WHAT);
    let all = plain.len();
    let id = take_uuid(&mut r)?;
    let case = take_uuid(&mut r)?;
    let record_type = r.var_str(all)?.to_string();
    let n = r.var_count(all, 2)?;
    let mut fields = BTreeMap::new();
    for _ in 0..n {
        let name = r.var_str(all)?.to_string();
        let value = match r.u8()? {
            STR => FieldValue::Str(r.var_str(all)?.to_string()),
            INT => FieldValue::Int(r.i64()?),
            FLOAT => FieldValue::Float(f64::from_bits(r.u64()?)),
            FALSE => FieldValue::Bool(false),
            TRUE => FieldValue::Bool(true),
            k => return Err(malformed(format!("unknown value kind {k}"))),
        };
        fields.insert(name, value);
    }
    let originator = take_peer(&mut r)?;
    let created = r.var_str(all)?.to_string();
    let updated = match r.u8()? {
        0 => created.clone(),
        1 => r.var_str(all)?.to_string(),
        k => return Err(malformed(format!("unknown updated marker {k}"))),
    };
    let grading = match r.u8()? {
        0 => None,
        1 => Some(r.var_str(all)?.to_string()),
        k => return Err(malformed(format!("unknown grading marker {k}"))),
    };
    let handling: HandlingCode = r.var_str(all)?.parse().map_err(malformed)?;
    let n = r.var_count(all, 1)?;
    let mut releasable_to = Vec::with_capacity(n);
    for _ in 0..n {
        releasable_to.push(r.var_str(all)?.to_string());
    }
    let extra = match r.var_bytes(all)? {
        [] => BTreeMap::new(),
        json => serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?,
    };
    r.finish()?;
    Ok(RecordView {
        id,
        case,
        record_type,
        fields,
        originator,
        created,
        updated,
        grading,
        handling,
        releasable_to,
        extra,
    })
}

fn malformed(reason: impl Into<String>) -> SchemaError {
    SchemaError::malformed(WHAT, reason)
}

fn put_uuid(w: &mut Writer, text: &str) {
    match uuid::Uuid::parse_str(text) {
        Ok(u) if u.hyphenated().to_string() == text => {
            w.u8(AS_BYTES);
            w.raw(u.as_bytes());
        }
        _ => {
            w.u8(AS_TEXT);
            w.var_bytes(text.as_bytes());
        }
    }
}

fn take_uuid(r: &mut Reader) -> Result<String, SchemaError> {
    match r.u8()? {
        AS_BYTES => Ok(uuid::Uuid::from_bytes(r.array()?).hyphenated().to_string()),
        AS_TEXT => Ok(r.var_str(r.remaining())?.to_string()),
        k => Err(malformed(format!("unknown id form {k}"))),
    }
}

fn put_peer(w: &mut Writer, text: &str) {
    match bs58::decode(text).into_vec() {
        Ok(b) if !b.is_empty() && bs58::encode(&b).into_string() == text => {
            w.u8(AS_BYTES);
            w.var_bytes(&b);
        }
        _ => {
            w.u8(AS_TEXT);
            w.var_bytes(text.as_bytes());
        }
    }
}

fn take_peer(r: &mut Reader) -> Result<String, SchemaError> {
    match r.u8()? {
        AS_BYTES => Ok(bs58::encode(r.var_bytes(r.remaining())?).into_string()),
        AS_TEXT => Ok(r.var_str(r.remaining())?.to_string()),
        k => Err(malformed(format!("unknown originator form {k}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> RecordView {
        let mut fields = BTreeMap::new();
        for (i, k) in [
            "name",
            "dob",
            "nationality",
            "phone",
            "email",
            "address",
            "alias",
            "notes",
        ]
        .iter()
        .enumerate()
        {
            fields.insert(k.to_string(), FieldValue::Str(format!("value {i} of {k}")));
        }
        RecordView {
            id: "01a2526e-a289-7190-b0c6-496ef9f38f10".into(),
            case: "634c174a-24c8-4820-8dd6-bc9e81be7340".into(),
            record_type: "person".into(),
            fields,
            originator: "12D3KooWBPGacUU4HzBqGdvTVA25xwFwjqAwXqvujcGacnHdih36".into(),
            created: "2026-12-07T21:35:11.966+00:00".into(),
            updated: "2026-12-07T21:35:11.966+00:00".into(),
            grading: None,
            handling: HandlingCode::H0,
            releasable_to: vec![],
            extra: BTreeMap::new(),
        }
    }

    fn round_trip(v: &RecordView) -> Vec<u8> {
        let bytes = encode(v).unwrap();
        assert_eq!(bytes[0], VERSION);
        assert_eq!(&decode(&bytes).unwrap(), v, "{v:?}");
        bytes
    }

    #[test]
    fn a_view_comes_back_as_it_went_in_and_takes_less_than_its_json() {
        let v = person();
        let bytes = round_trip(&v);
        let json = serde_json::to_vec(&v).unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "{} vs {} bytes",
            bytes.len(),
            json.len()
        );
    }

    /// Every kind of value and every text that is not in its canonical form
    /// (an upper-case UUID, an originator that is not Base58, an `updated`
    /// of its own), so that what is kept as bytes and what as text both come
    /// back exactly; then many views made by a seeded generator.
    #[test]
    fn every_form_of_every_part_comes_back_exactly() {
        let mut v = person();
        v.fields.insert("n".into(), FieldValue::Int(i64::MIN));
        v.fields.insert("m".into(), FieldValue::Int(i64::MAX));
        v.fields.insert("f".into(), FieldValue::Float(-0.0));
        v.fields.insert("g".into(), FieldValue::Float(1e-310));
        v.fields.insert("t".into(), FieldValue::Bool(true));
        v.fields.insert("u".into(), FieldValue::Bool(false));
        v.fields
            .insert("empty".into(), FieldValue::Str(String::new()));
        v.fields
            .insert("ünï".into(), FieldValue::Str("日本語 🙂".repeat(40)));
        round_trip(&v);
        for (id, case, originator) in [
            (
                "01A2526E-A289-7190-B0C6-496EF9F38F10",
                "634c174a24c848208dd6bc9e81be7340",
                "not base58 0OIl",
            ),
            ("", "", ""),
            (
                "x",
                "{urn:uuid:634c174a-24c8-4820-8dd6-bc9e81be7340}",
                "1111",
            ),
        ] {
            let mut w = v.clone();
            w.id = id.into();
            w.case = case.into();
            w.originator = originator.into();
            w.updated = "2027-01-01T00:00:00Z".into();
            w.grading = Some("B2".into());
            w.handling = HandlingCode::H3("only with a warrant".into());
            w.releasable_to = vec!["GB".into(), "org:Europol".into()];
            w.extra.insert(
                "later".into(),
                serde_json::json!({"a": [1, 2.5, null, "x"]}),
            );
            round_trip(&w);
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let mut w = person();
            w.fields.clear();
            for _ in 0..next() % 12 {
                let name: String = (0..1 + next() % 10)
                    .map(|_| (b'a' + (next() % 26) as u8) as char)
                    .collect();
                let value = match next() % 4 {
                    0 => FieldValue::Int(next() as i64),
                    1 => FieldValue::Float(next() as i64 as f64 / 1024.0),
                    2 => FieldValue::Bool(next() % 2 == 0),
                    _ => FieldValue::Str(
                        (0..next() % 300)
                            .map(|_| char::from(b' ' + (next() % 95) as u8))
                            .collect(),
                    ),
                };
                w.fields.insert(name, value);
            }
            if next() % 2 == 0 {
                w.updated = format!("2026-12-0{}T00:00:00+00:00", next() % 9);
            }
            round_trip(&w);
        }
    }

    #[test]
    fn a_view_kept_as_json_still_opens() {
        let v = person();
        let json = serde_json::to_vec(&v).unwrap();
        assert_eq!(decode(&json).unwrap(), v);
        let mut w = v.clone();
        w.extra.insert("newer".into(), serde_json::json!(true));
        assert_eq!(decode(&serde_json::to_vec(&w).unwrap()).unwrap(), w);
    }

    /// The bytes are the node's own and sealed, but a damaged disk or a
    /// restored file can hold anything: every truncation and every flipped
    /// byte gives an error or a view, never a panic or an allocation past
    /// the bound.
    #[test]
    fn damaged_bytes_give_an_error_not_a_panic() {
        let bytes = encode(&person()).unwrap();
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let _ = decode(&b);
            }
        }
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(matches!(decode(&huge), Err(SchemaError::TooLarge { .. })));
        assert!(matches!(
            decode(&[9, 0]),
            Err(SchemaError::UnsupportedVersion { .. })
        ));
        assert!(decode(&[]).is_err());
    }
}
