//! Selectors: the values analysts search and deconflict on (a phone number,
//! an IBAN, a BIC, a wallet address, a vehicle registration, an email, a name
//! with a date of birth), each in one canonical form, so the same selector
//! written two ways is one value. Pure functions; the search index and the
//! deconfliction protocol key on these forms.
//!
//! - phone: E.164 (`+40722123456`), by libphonenumber's metadata (the
//!   `phonenumber` crate), a national number read in the case's country;
//! - IBAN: upper case without spaces, checked (`validate::iban`);
//! - BIC: upper case, 11 characters (an 8-character BIC is its head office,
//!   `XXX`);
//! - BTC: bech32/bech32m addresses in lower case (BIP-173/350), base58 ones
//!   as written (their case is part of them); checked;
//! - ETH: `0x` and 40 lower-case hex digits; a mixed-case address must carry
//!   a valid EIP-55 checksum;
//! - vehicle: upper case letters and digits, without spaces or dashes;
//! - email: trimmed, lower case;
//! - name: case, diacritics (Romanian ș/ş and ț/ţ alike) and word order
//!   folded, with `|` and the date of birth when there is one.

use std::str::FromStr;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use crate::record::{FieldValue, RecordType};
use crate::validate;

/// What kind of value a selector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectorKind {
    Phone,
    Iban,
    Bic,
    Btc,
    Eth,
    Vehicle,
    Email,
    Name,
}

impl SelectorKind {
    pub const ALL: [SelectorKind; 8] = [
        SelectorKind::Phone,
        SelectorKind::Iban,
        SelectorKind::Bic,
        SelectorKind::Btc,
        SelectorKind::Eth,
        SelectorKind::Vehicle,
        SelectorKind::Email,
        SelectorKind::Name,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SelectorKind::Phone => "phone",
            SelectorKind::Iban => "iban",
            SelectorKind::Bic => "bic",
            SelectorKind::Btc => "btc",
            SelectorKind::Eth => "eth",
            SelectorKind::Vehicle => "vehicle",
            SelectorKind::Email => "email",
            SelectorKind::Name => "name",
        }
    }
}

impl FromStr for SelectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<SelectorKind, String> {
        SelectorKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown selector type {:?}: use phone, iban, bic, btc, eth, vehicle, email or name",
                    s.chars().take(32).collect::<String>()
                )
            })
    }
}

/// A selector in its canonical form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Selector {
    pub kind: SelectorKind,
    pub value: String,
}

impl Selector {
    /// The bytes a keyed hash of the selector is taken over: kind and value,
    /// so a phone and a name that happen to be spelt alike stay apart.
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.value.len() + 12);
        b.extend_from_slice(self.kind.name().as_bytes());
        b.push(0);
        b.extend_from_slice(self.value.as_bytes());
        b
    }
}

/// A phone number in E.164; a national number is read in `region` (ISO
/// 3166 alpha-2, the case's or the node's country).
pub fn phone(text: &str, region: Option<&str>) -> Result<String, String> {
    let region = region
        .map(|r| phonenumber::country::Id::from_str(&r.trim().to_ascii_uppercase()))
        .transpose()
        .map_err(|_| "unknown country for a phone number".to_string())?;
    let n =
        phonenumber::parse(region, text.trim()).map_err(|e| format!("not a phone number ({e})"))?;
    if !phonenumber::is_valid(&n) {
        return Err("not a valid phone number for its country".into());
    }
    Ok(n.format().mode(phonenumber::Mode::E164).to_string())
}

/// An IBAN: checked, upper case, no spaces.
pub fn iban(text: &str) -> Result<String, String> {
    validate::iban(text)
}

/// A BIC (ISO 9362): 4 letters of institution, 2 of country, 2 of location,
/// optionally 3 of branch; an 8-character BIC is `XXX`, the head office.
pub fn bic(text: &str) -> Result<String, String> {
    let b: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let ok = (b.len() == 8 || b.len() == 11)
        && b.chars().all(|c| c.is_ascii_alphanumeric())
        && b[..6].chars().all(|c| c.is_ascii_alphabetic());
    if !ok {
        return Err("not a BIC (8 or 11 letters and digits, the first six letters)".into());
    }
    Ok(if b.len() == 8 { format!("{b}XXX") } else { b })
}

/// A Bitcoin address: checked; bech32 in lower case, base58 as written.
pub fn btc(text: &str) -> Result<String, String> {
    let t = text.trim();
    validate::btc_address(t)?;
    let lower = t.to_ascii_lowercase();
    Ok(if lower.starts_with("bc1") || lower.starts_with("tb1") {
        lower
    } else {
        t.to_string()
    })
}

/// An Ethereum address: checked (EIP-55 when in mixed case), lower case.
pub fn eth(text: &str) -> Result<String, String> {
    let t = text.trim();
    validate::eth_address(t)?;
    Ok(format!("0x{}", t[2..].to_ascii_lowercase()))
}

/// A vehicle registration: letters and digits, upper case; at least one
/// digit (every plate scheme of the partners' countries has one, and a name
/// is not a plate).
pub fn vehicle(text: &str) -> Result<String, String> {
    let v: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    if v.is_empty() || v.chars().count() > 16 || !v.chars().any(|c| c.is_ascii_digit()) {
        return Err("not a vehicle registration".into());
    }
    Ok(v)
}

/// An email address: trimmed, lower case, one `@` with text on both sides.
pub fn email(text: &str) -> Result<String, String> {
    let e = text.trim().to_lowercase();
    match e.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !e.chars().any(char::is_whitespace) =>
        {
            Ok(e)
        }
        _ => Err("not an email address".into()),
    }
}

/// Letters without their diacritics, lower case: `Ștefan` and `ştefan`
/// (comma below or cedilla) are `stefan`.
pub fn fold(text: &str) -> String {
    text.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect()
}

/// A name: folded, its words sorted (`DOBRE Marin` = `marin  dobre`), and
/// `|` and the date of birth when known.
pub fn name(text: &str, dob: Option<&str>) -> Result<String, String> {
    let folded = fold(text);
    let mut words: Vec<&str> = folded.split_whitespace().collect();
    if words.is_empty() {
        return Err("a name needs at least one letter".into());
    }
    words.sort_unstable();
    let mut n = words.join(" ");
    if let Some(d) = dob.map(str::trim).filter(|d| !d.is_empty()) {
        validate::date(d)?;
        n.push('|');
        n.push_str(d);
    }
    Ok(n)
}

/// A selector of `kind` from what a person typed.
pub fn parse(kind: SelectorKind, text: &str, region: Option<&str>) -> Result<Selector, String> {
    let value = match kind {
        SelectorKind::Phone => phone(text, region)?,
        SelectorKind::Iban => iban(text)?,
        SelectorKind::Bic => bic(text)?,
        SelectorKind::Btc => btc(text)?,
        SelectorKind::Eth => eth(text)?,
        SelectorKind::Vehicle => vehicle(text)?,
        SelectorKind::Email => email(text)?,
        SelectorKind::Name => name(text, None)?,
    };
    Ok(Selector { kind, value })
}

/// Every selector a query could be: each kind it parses as, in canonical
/// form. `+40 722 123 456` is a phone; `RO49 AAAA 1B31 0075 9384 0000` an
/// IBAN (and, folded, a name's words); a name is always tried.
pub fn guess(text: &str, region: Option<&str>) -> Vec<Selector> {
    SelectorKind::ALL
        .into_iter()
        .filter_map(|k| parse(k, text, region).ok())
        .collect()
}

/// The selectors a record holds, by its type and fields: what the search
/// index files it under. A field that does not parse is skipped (a record
/// is valid without its selectors being canonical).
pub fn of_record(
    record_type: RecordType,
    fields: &std::collections::BTreeMap<String, FieldValue>,
    region: Option<&str>,
) -> Vec<Selector> {
    let text = |k: &str| match fields.get(k) {
        Some(FieldValue::Str(s)) => Some(s.as_str()),
        _ => None,
    };
    // (kind, field) pairs to parse, by the record's type.
    let mut wanted: Vec<(SelectorKind, &str)> = match record_type {
        RecordType::Person => vec![(SelectorKind::Phone, "phone")],
        RecordType::Organisation => vec![(SelectorKind::Name, "name")],
        RecordType::Phone => vec![(SelectorKind::Phone, "number")],
        RecordType::BankAccount => vec![(SelectorKind::Iban, "iban"), (SelectorKind::Bic, "bic")],
        RecordType::CryptoWallet => {
            match text("currency")
                .map(|c| c.trim().to_ascii_uppercase())
                .as_deref()
            {
                Some("BTC") => vec![(SelectorKind::Btc, "address")],
                Some("ETH") => vec![(SelectorKind::Eth, "address")],
                _ => vec![],
            }
        }
        RecordType::Vehicle => vec![(SelectorKind::Vehicle, "registration")],
        _ => vec![],
    };
    wanted.push((SelectorKind::Email, "email"));
    let mut out: Vec<Selector> = wanted
        .into_iter()
        .filter_map(|(kind, field)| parse(kind, text(field)?, region).ok())
        .collect();
    if record_type == RecordType::Person
        && let Some(n) = text("name")
    {
        // With the date of birth, and without it, so a name alone finds it.
        for dob in [text("dob"), None] {
            if let Ok(value) = name(n, dob) {
                out.push(Selector {
                    kind: SelectorKind::Name,
                    value,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libphonenumber's own example numbers (PhoneNumberMetadata.xml,
    /// `exampleNumber`) for GB, RO and NL, written as people write them.
    #[test]
    fn phones_from_libphonenumber_examples() {
        for (text, region, e164) in [
            ("01212 345678", "GB", "+441212345678"),
            ("07400 123456", "GB", "+447400123456"),
            ("+44 7400 123456", "RO", "+447400123456"),
            ("021 123 4567", "RO", "+40211234567"),
            ("0712 034 567", "RO", "+40712034567"),
            ("+40 (712) 034-567", "GB", "+40712034567"),
            ("010 123 4567", "NL", "+31101234567"),
            ("06 12345678", "NL", "+31612345678"),
            ("0031 6 12345678", "NL", "+31612345678"),
        ] {
            assert_eq!(
                phone(text, Some(region)).unwrap(),
                e164,
                "{text} in {region}"
            );
        }
        assert!(phone("12", Some("GB")).is_err());
        assert!(phone("not a number", Some("RO")).is_err());
        assert!(
            phone("07400 123456", None).is_err(),
            "national without a region"
        );
    }

    /// The SWIFT IBAN registry's examples.
    #[test]
    fn ibans_from_the_registry() {
        for (text, canonical) in [
            ("GB29 NWBK 6016 1331 9268 19", "GB29NWBK60161331926819"),
            ("ro49 aaaa 1b31 0075 9384 0000", "RO49AAAA1B31007593840000"),
            ("NL91ABNA0417164300", "NL91ABNA0417164300"),
        ] {
            assert_eq!(iban(text).unwrap(), canonical);
        }
        assert!(iban("GB29 NWBK 6016 1331 9268 18").is_err(), "checksum");
    }

    #[test]
    fn bics_name_the_head_office_alike() {
        assert_eq!(bic("deutdeff").unwrap(), "DEUTDEFFXXX");
        assert_eq!(bic("DEUT DE FF XXX").unwrap(), "DEUTDEFFXXX");
        assert_eq!(bic("RNCBROBU").unwrap(), "RNCBROBUXXX");
        assert!(bic("DEU1DEFF").is_err());
        assert!(bic("DEUTDEF").is_err());
    }

    /// BIP-173 and BIP-350 test vectors, and EIP-55's.
    #[test]
    fn wallets_from_the_bips_and_eip55() {
        assert_eq!(
            btc("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4").unwrap(),
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        );
        assert_eq!(
            btc("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0").unwrap(),
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
        );
        // A base58 address keeps its case: it is part of the address.
        assert_eq!(
            btc("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2").unwrap(),
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
        );
        assert!(btc("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5").is_err());
        for (text, canonical) in [
            (
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            ),
            (
                "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359",
            ),
            (
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
                "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
            ),
        ] {
            assert_eq!(eth(text).unwrap(), canonical);
        }
        assert!(
            eth("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").is_err(),
            "EIP-55"
        );
    }

    #[test]
    fn names_fold_case_diacritics_word_order_and_romanian_variants() {
        let a = name("DOBRE Marin", None).unwrap();
        assert_eq!(a, "dobre marin");
        assert_eq!(name("marin  dobre", None).unwrap(), a);
        // Comma below (ș, ț) and cedilla (ş, ţ) alike, and the capitals.
        let s = name("Ștefan Țăranu", None).unwrap();
        assert_eq!(s, "stefan taranu");
        assert_eq!(name("Ştefan Ţăranu", None).unwrap(), s);
        assert_eq!(name("TARANU, STEFAN", None).unwrap(), s);
        assert_eq!(name("Ioana Bîrlădeanu", None).unwrap(), "birladeanu ioana");
        assert_eq!(
            name("Dobre Marin", Some("1984-03-02")).unwrap(),
            "dobre marin|1984-03-02"
        );
        assert!(name("  ,. ", None).is_err());
        assert!(name("Dobre", Some("1984-13-02")).is_err());
    }

    #[test]
    fn vehicles_and_emails() {
        assert_eq!(vehicle("B 123 ABC").unwrap(), "B123ABC");
        assert_eq!(vehicle("b-123-abc").unwrap(), "B123ABC");
        assert_eq!(
            email(" Marin.Dobre@Example.RO ").unwrap(),
            "marin.dobre@example.ro"
        );
        assert!(email("no at sign").is_err());
    }

    #[test]
    fn a_query_is_every_selector_it_parses_as() {
        let g = guess("+40 722 123 456", Some("GB"));
        assert!(g.contains(&Selector {
            kind: SelectorKind::Phone,
            value: "+40722123456".into()
        }));
        let g = guess("0722 123 456", Some("RO"));
        assert!(
            g.iter()
                .any(|s| s.kind == SelectorKind::Phone && s.value == "+40722123456")
        );
        let g = guess("DOBRE Marin", None);
        assert_eq!(
            g,
            vec![Selector {
                kind: SelectorKind::Name,
                value: "dobre marin".into()
            }]
        );
    }

    #[test]
    fn a_records_selectors() {
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), FieldValue::Str(v.to_string())))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let s = of_record(
            RecordType::Person,
            &f(&[("name", "Marin Dobre"), ("dob", "1984-03-02")]),
            Some("RO"),
        );
        assert_eq!(
            s.iter().map(|s| s.value.as_str()).collect::<Vec<_>>(),
            ["dobre marin", "dobre marin|1984-03-02"]
        );
        let s = of_record(
            RecordType::Phone,
            &f(&[("number", "0722 123 456")]),
            Some("RO"),
        );
        assert_eq!(s[0].value, "+40722123456");
        let s = of_record(
            RecordType::CryptoWallet,
            &f(&[
                ("address", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
                ("currency", "eth"),
            ]),
            None,
        );
        assert_eq!(s[0].kind, SelectorKind::Eth);
        assert!(of_record(RecordType::Note, &f(&[("text", "nothing")]), None).is_empty());
    }
}
