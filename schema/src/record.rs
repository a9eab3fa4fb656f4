//! Record types (POLE: people, objects, locations, events), their required fields,
//! validation and handling rules.
//!
//! A record is a map of fields. Each type names the fields it cannot do without and
//! validates the identifiers it knows (IBAN, crypto addresses, dates, coordinates);
//! any other field name is accepted, so analysts can record what the schema did not
//! foresee and a newer node's fields survive on an older one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::grading::Grading;
use crate::{SchemaError, validate};

/// Longest field value: a note can be long, an identifier cannot.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest total of field values in one record: keeps one record's change well
/// inside one log entry.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;
/// Most fields in one record.
pub const MAX_FIELDS: usize = 256;
/// Longest field name.
pub const MAX_FIELD_NAME: usize = 64;
/// Most entries in a releasable_to list.
pub const MAX_RELEASABLE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    Person,
    Organisation,
    Vehicle,
    Phone,
    BankAccount,
    CryptoWallet,
    Location,
    Event,
    Link,
    Note,
    Evidence,
}

impl RecordType {
    pub const ALL: [RecordType; 11] = [
        RecordType::Person,
        RecordType::Organisation,
        RecordType::Vehicle,
        RecordType::Phone,
        RecordType::BankAccount,
        RecordType::CryptoWallet,
        RecordType::Location,
        RecordType::Event,
        RecordType::Link,
        RecordType::Note,
        RecordType::Evidence,
    ];
    pub const NAMES: [&'static str; 11] = [
        "person",
        "organisation",
        "vehicle",
        "phone",
        "bank_account",
        "crypto_wallet",
        "location",
        "event",
        "link",
        "note",
        "evidence",
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RecordType {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<RecordType, SchemaError> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = if lower == "organization" {
            "organisation".to_string()
        } else {
            lower
        };
        RecordType::NAMES
            .iter()
            .position(|n| *n == lower)
            .map(|i| RecordType::ALL[i])
            .ok_or_else(|| SchemaError::UnknownType(crate::ids::truncate(s)))
    }
}

/// A field value: a JSON scalar. Strings are the norm; numbers and booleans from
/// JSON imports are kept as they came.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// By the JSON type, in one pass. (Serde's `untagged` would try each variant in
/// turn and format an error for every miss: most of the time of reading 100,000
/// stored views went to error messages for strings that were not booleans.)
impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar;
        impl serde::de::Visitor<'_> for Scalar {
            type Value = FieldValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<FieldValue, E> {
                Ok(i64::try_from(v).map_or(FieldValue::Float(v as f64), FieldValue::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<FieldValue, E> {
                Ok(FieldValue::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Str(v))
            }
        }
        d.deserialize_any(Scalar)
    }
}

impl FieldValue {
    /// The value as text, for validation and display.
    pub fn as_text(&self) -> String {
        match self {
            FieldValue::Str(s) => s.clone(),
            FieldValue::Int(i) => i.to_string(),
            FieldValue::Float(f) => f.to_string(),
            FieldValue::Bool(b) => b.to_string(),
        }
    }

    fn is_blank(&self) -> bool {
        matches!(self, FieldValue::Str(s) if s.trim().is_empty())
    }

    /// Converts a JSON value; objects, arrays and null are not field values.
    pub fn from_json(field: &str, v: &serde_json::Value) -> Result<FieldValue, SchemaError> {
        match v {
            serde_json::Value::String(s) => Ok(FieldValue::Str(s.clone())),
            serde_json::Value::Bool(b) => Ok(FieldValue::Bool(*b)),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(FieldValue::Int(i)),
                (None, Some(f)) if f.is_finite() => Ok(FieldValue::Float(f)),
                _ => Err(invalid(field, "number out of range")),
            },
            _ => Err(invalid(field, "must be a string, number or boolean")),
        }
    }
}

pub type Fields = BTreeMap<String, FieldValue>;

/// Who may receive a record: organisations or countries (ISO 3166 alpha-2).
/// Empty means no restriction beyond case membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasableTo(pub Vec<String>);

impl ReleasableTo {
    /// Parses a comma-separated list: two letters are a country code (upper-cased),
    /// anything else an organisation name.
    pub fn parse_list(s: &str) -> Result<ReleasableTo, SchemaError> {
        Self::from_items(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    pub fn from_items(items: Vec<String>) -> Result<ReleasableTo, SchemaError> {
        if items.len() > MAX_RELEASABLE {
            return Err(invalid(
                "releasable_to",
                &format!("at most {MAX_RELEASABLE} entries"),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let item = item.trim().to_string();
            if item.is_empty() || item.len() > 200 || item.chars().any(char::is_control) {
                return Err(invalid(
                    "releasable_to",
                    "entries must be 1-200 printable characters",
                ));
            }
            let norm = if item.len() == 2 && item.chars().all(|c| c.is_ascii_alphabetic()) {
                item.to_ascii_uppercase()
            } else {
                item
            };
            if !out.contains(&norm) {
                out.push(norm);
            }
        }
        Ok(ReleasableTo(out))
    }

    pub fn is_restricted(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether a node of `org` in `country` may receive the record.
    pub fn permits(&self, org: &str, country: &str) -> bool {
        !self.is_restricted()
            || self
                .0
                .iter()
                .any(|r| r.eq_ignore_ascii_case(country) || r.eq_ignore_ascii_case(org))
    }
}

/// What a user supplies for a new record (from `record add` or an import line).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordInput {
    pub record_type: RecordType,
    pub fields: Fields,
    pub grading: Option<Grading>,
    pub releasable_to: ReleasableTo,
    /// H0 unless given.
    pub handling: crate::grading::HandlingCode,
}

fn invalid(field: &str, reason: &str) -> SchemaError {
    SchemaError::InvalidField {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// Data-subject categories (Law Enforcement Directive Art. 6).
pub const PERSON_CATEGORIES: [&str; 6] = [
    "suspect",
    "convicted",
    "victim",
    "witness",
    "contact",
    "other",
];
pub const LINK_STATUSES: [&str; 2] = ["confirmed", "unconfirmed"];
pub const LINK_DIRECTIONS: [&str; 4] = ["from_to", "to_from", "both", "none"];

fn is_date_field(name: &str) -> bool {
    matches!(
        name,
        "when" | "date" | "dob" | "date_of_birth" | "start" | "end"
    ) || name.ends_with("_date")
        || name.ends_with("_at")
}

impl RecordInput {
    /// Bytes of its text values: what [`MAX_RECORD_BYTES`] bounds, and what
    /// a bulk import counts to bound what it holds.
    pub fn content_bytes(&self) -> usize {
        self.fields
            .values()
            .map(|v| match v {
                FieldValue::Str(s) => s.len(),
                _ => 0,
            })
            .sum()
    }

    /// Checks required fields and every known identifier; normalizes values that
    /// have one canonical spelling (IBAN, currency, hashes, enums).
    pub fn validate(mut self) -> Result<RecordInput, SchemaError> {
        let t = self.record_type;
        if self.fields.len() > MAX_FIELDS {
            return Err(invalid("fields", &format!("at most {MAX_FIELDS} fields")));
        }
        for (name, value) in &self.fields {
            check_field_name(name)?;
            if let FieldValue::Str(s) = value
                && s.len() > MAX_VALUE_BYTES
            {
                return Err(invalid(
                    name,
                    &format!("longer than {MAX_VALUE_BYTES} bytes"),
                ));
            }
        }
        if self.content_bytes() > MAX_RECORD_BYTES {
            return Err(invalid(
                "fields",
                &format!("record content exceeds {MAX_RECORD_BYTES} bytes"),
            ));
        }
        let present = |f: &Fields, k: &str| f.get(k).is_some_and(|v| !v.is_blank());
        let need = |f: &Fields, k: &'static str| -> Result<(), SchemaError> {
            if present(f, k) {
                Ok(())
            } else {
                Err(SchemaError::MissingField {
                    record_type: t.name(),
                    field: k,
                })
            }
        };
        match t {
            RecordType::Person | RecordType::Organisation => need(&self.fields, "name")?,
            RecordType::Vehicle => need(&self.fields, "registration")?,
            RecordType::Phone => need(&self.fields, "number")?,
            RecordType::BankAccount => {
                if !present(&self.fields, "iban") {
                    need(&self.fields, "number")?;
                }
            }
            RecordType::CryptoWallet => {
                need(&self.fields, "address")?;
                need(&self.fields, "currency")?;
            }
            RecordType::Location => {
                if !present(&self.fields, "address") {
                    if !present(&self.fields, "lat") && !present(&self.fields, "lon") {
                        return Err(SchemaError::MissingField {
                            record_type: t.name(),
                            field: "address",
                        });
                    }
                    need(&self.fields, "lat")?;
                    need(&self.fields, "lon")?;
                }
            }
            RecordType::Event => {
                need(&self.fields, "title")?;
                need(&self.fields, "when")?;
            }
            RecordType::Link => {
                need(&self.fields, "from")?;
                need(&self.fields, "to")?;
                need(&self.fields, "link_type")?;
            }
            RecordType::Note => need(&self.fields, "text")?,
            RecordType::Evidence => need(&self.fields, "file")?,
        }
        let mut normalized: Vec<(String, FieldValue)> = Vec::new();
        for (name, value) in &self.fields {
            if value.is_blank() {
                continue;
            }
            let text = value.as_text();
            let fail = |reason: String| SchemaError::InvalidField {
                field: name.clone(),
                reason,
            };
            let norm = match (t, name.as_str()) {
                (_, "iban") => Some(validate::iban(&text).map_err(fail)?),
                (_, "lat") => validate::latitude(&text).map(|_| None).map_err(fail)?,
                (_, "lon") => validate::longitude(&text).map(|_| None).map_err(fail)?,
                (RecordType::Phone, "number") => {
                    validate::phone(&text).map(|_| None).map_err(fail)?
                }
                (RecordType::CryptoWallet, "currency") => {
                    Some(validate::currency(&text).map_err(fail)?)
                }
                (RecordType::CryptoWallet, "address") => {
                    let currency = self
                        .fields
                        .get("currency")
                        .map(FieldValue::as_text)
                        .unwrap_or_default();
                    validate::crypto_address(&currency, &text)
                        .map(|_| None)
                        .map_err(fail)?
                }
                (RecordType::Person, "category") => Some(one_of(name, &text, &PERSON_CATEGORIES)?),
                (RecordType::Link, "from" | "to") => {
                    validate::record_id(&text).map(|_| None).map_err(fail)?
                }
                (RecordType::Link, "status") => Some(one_of(name, &text, &LINK_STATUSES)?),
                (RecordType::Link, "direction") => Some(one_of(name, &text, &LINK_DIRECTIONS)?),
                (RecordType::Evidence, "sha256" | "content") => {
                    Some(validate::sha256_hex(&text).map_err(fail)?)
                }
                (RecordType::Evidence, "media_type") => {
                    Some(validate::media_type(&text).map_err(fail)?)
                }
                (RecordType::Evidence, "size") => match value {
                    FieldValue::Int(i) if *i >= 0 => None,
                    _ => match text.parse::<u64>() {
                        Ok(_) => None,
                        Err(_) => return Err(fail("must be a whole number of bytes".into())),
                    },
                },
                (_, "country" | "nationality") => {
                    Some(validate::country_code(&text).map_err(fail)?)
                }
                (_, n) if is_date_field(n) => validate::date(&text).map(|_| None).map_err(fail)?,
                _ => None,
            };
            if let Some(n) = norm
                && matches!(value, FieldValue::Str(_))
            {
                normalized.push((name.clone(), FieldValue::Str(n)));
            }
        }
        for (k, v) in normalized {
            self.fields.insert(k, v);
        }
        Ok(self)
    }
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, SchemaError> {
    let v = value.trim().to_ascii_lowercase();
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(invalid(
            field,
            &format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

/// Field names: lower-case ASCII letters, digits and `_`, starting with a letter.
pub fn check_field_name(name: &str) -> Result<(), SchemaError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_FIELD_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(SchemaError::InvalidField {
            field: crate::ids::truncate(name),
            reason: format!(
                "field names are 1-{MAX_FIELD_NAME} of a-z, 0-9, _ and start with a letter"
            ),
        })
    }
}

/// Parses `--grading SYSTEM:CODE`.
pub fn parse_grading(s: &str) -> Result<Grading, SchemaError> {
    s.parse::<Grading>()
        .map_err(|reason| SchemaError::InvalidGrading {
            value: crate::ids::truncate(s),
            reason,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_read_back_as_the_json_type_they_were_written_as() {
        let values = [
            FieldValue::Bool(true),
            FieldValue::Int(-7),
            FieldValue::Float(2.5),
            FieldValue::Str("12".into()),
            FieldValue::Str("true".into()),
        ];
        for v in values {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(
                serde_json::from_str::<FieldValue>(&json).unwrap(),
                v,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::from_str::<FieldValue>("18446744073709551615").unwrap(),
            FieldValue::Float(u64::MAX as f64)
        );
        for bad in ["null", "{}", "[1]"] {
            assert!(serde_json::from_str::<FieldValue>(bad).is_err(), "{bad}");
        }
    }

    fn input(t: &str, fields: &[(&str, &str)]) -> RecordInput {
        RecordInput {
            handling: Default::default(),
            record_type: t.parse().unwrap(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), FieldValue::Str(v.to_string())))
                .collect(),
            grading: None,
            releasable_to: ReleasableTo::default(),
        }
    }

    fn check(t: &str, fields: &[(&str, &str)]) -> Result<RecordInput, String> {
        input(t, fields).validate().map_err(|e| e.to_string())
    }

    #[test]
    fn required_fields_per_type() {
        assert!(check("person", &[("name", "Marin Dobre")]).is_ok());
        assert_eq!(
            check("person", &[]).unwrap_err(),
            "person record needs field `name`"
        );
        assert_eq!(
            check("person", &[("name", "  ")]).unwrap_err(),
            "person record needs field `name`"
        );
        assert!(check("bank_account", &[("number", "12345678")]).is_ok());
        assert!(check("bank_account", &[]).is_err());
        assert!(check("location", &[("lat", "46.57"), ("lon", "26.91")]).is_ok());
        assert!(check("location", &[("lat", "46.57")]).is_err());
        assert!(check("event", &[("title", "meeting")]).is_err());
        assert!(check("crypto_wallet", &[("address", "x")]).is_err());
    }

    #[test]
    fn identifiers_are_validated_and_normalized() {
        let r = check("bank_account", &[("iban", "gb29 nwbk 6016 1331 9268 19")]).unwrap();
        assert_eq!(
            r.fields["iban"],
            FieldValue::Str("GB29NWBK60161331926819".into())
        );
        assert!(check("bank_account", &[("iban", "GB29NWBK60161331926818")]).is_err());
        assert!(check("event", &[("title", "t"), ("when", "2021-02-30")]).is_err());
        assert!(check("event", &[("title", "t"), ("when", "2021-03-14")]).is_ok());
        let w = check(
            "crypto_wallet",
            &[
                ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
                ("currency", "btc"),
            ],
        );
        assert_eq!(w.unwrap().fields["currency"], FieldValue::Str("BTC".into()));
        assert!(
            check(
                "crypto_wallet",
                &[
                    ("address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
                    ("currency", "BTC")
                ]
            )
            .is_err()
        );
        assert!(
            check(
                "crypto_wallet",
                &[
                    ("address", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
                    ("currency", "ETH")
                ]
            )
            .is_ok()
        );
        assert!(check("person", &[("name", "x"), ("category", "Victim")]).is_ok());
        assert!(check("person", &[("name", "x"), ("category", "villain")]).is_err());
        assert!(
            check(
                "link",
                &[("from", "nope"), ("to", "nope"), ("link_type", "associate")]
            )
            .is_err()
        );
        assert!(check("location", &[("lat", "91"), ("lon", "0")]).is_err());
    }

    #[test]
    fn unknown_types_and_bad_field_names_are_refused() {
        assert!("spaceship".parse::<RecordType>().is_err());
        assert_eq!(
            "Organization".parse::<RecordType>().unwrap(),
            RecordType::Organisation
        );
        assert!(check("note", &[("text", "x"), ("Bad Name", "y")]).is_err());
        assert!(check("note", &[("text", "x"), ("nickname_2", "y")]).is_ok());
    }

    #[test]
    fn releasable_to_permits_by_country_or_org() {
        let r = ReleasableTo::parse_list("gb, RO ,Europol").unwrap();
        assert_eq!(r.0, vec!["GB", "RO", "Europol"]);
        assert!(r.permits("Some Force", "GB"));
        assert!(r.permits("europol", "NL"));
        assert!(!r.permits("Politie", "NL"));
        assert!(ReleasableTo::default().permits("anyone", "FR"));
    }
}
