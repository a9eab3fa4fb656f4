//! Validation of the identifiers that casesync records carry: bank accounts
//! (IBAN), crypto-currency addresses, currency codes, dates, coordinates,
//! phone numbers, country codes, SHA-256 digests and record ids.
//!
//! Every value checked here arrives from outside the process: typed on the
//! command line, read from an import file, or received from a network peer
//! that may be compromised. A malformed or deliberately crafted identifier
//! must be refused before it is stored or replicated, because a record that
//! names the wrong account or address is worse than no record at all. So
//! the checks use the real checksums where a format has one (ISO 13616
//! mod-97, bech32/bech32m, base58check, EIP-55) rather than pattern-matching
//! alone, and nothing here panics, allocates in proportion to attacker
//! choice beyond the input itself, or runs super-linear work on long input.
//!
//! Each function returns `Err` with a short lower-case reason meant for a
//! human. Reasons never echo the rejected value: it may be personal data
//! (an account number, a phone number) and error text ends up in logs.
//!
//! Longer than most files here: about 400 lines of code and 430 of tests (public
//! test vectors for every identifier).

use sha3::{Digest, Keccak256};

/// Validates an IBAN and returns it normalized: upper case, no spaces.
///
/// Spaces anywhere are ignored (IBANs are usually printed in groups of
/// four) and letters may be in either case. Checks the country code, the
/// check digits, the ISO 13616 mod-97 checksum, and the country's length and
/// BBAN format from the SWIFT IBAN registry (every country in it).
pub fn iban(s: &str) -> Result<String, String> {
    let normalized: String = s
        .chars()
        .filter(|&c| c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if normalized.is_empty() {
        return Err("IBAN is empty".into());
    }
    if !normalized.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("IBAN may contain only letters, digits and spaces".into());
    }
    // Everything is ASCII from here on, so byte slicing cannot split a char.
    let bytes = normalized.as_bytes();
    let (country, rest) = bytes.split_at(bytes.len().min(2));
    if country.len() != 2 || !country.iter().all(u8::is_ascii_uppercase) {
        return Err("IBAN must start with a two-letter country code".into());
    }
    let (check, _) = rest.split_at(rest.len().min(2));
    if check.len() != 2 || !check.iter().all(u8::is_ascii_digit) {
        return Err("IBAN country code must be followed by two check digits".into());
    }
    // ISO 13616 computes check digits as 98 - (n mod 97), so they always
    // fall in 02..=98; 00, 01 and 99 can still satisfy mod-97 but are never
    // issued.
    if matches!(check, b"00" | b"01" | b"99") {
        return Err("IBAN check digits must be between 02 and 98".into());
    }
    if !(15..=34).contains(&normalized.len()) {
        return Err("IBAN must be 15 to 34 characters".into());
    }
    if iban_mod97(bytes) != 1 {
        return Err("IBAN checksum does not match".into());
    }
    // Each country's length and BBAN format, from the SWIFT IBAN registry
    // (all of it, through the maintained `iban_validate` crate); its errors
    // are mapped to reasons that do not echo the value.
    match normalized.parse::<iban::Iban>() {
        Ok(_) => Ok(normalized),
        Err(iban::ParseIbanError::UnknownCountry(_)) => {
            Err("IBAN country code is not in the IBAN registry".into())
        }
        Err(iban::ParseIbanError::InvalidBban(_)) => {
            Err("IBAN does not follow its country's format (length or characters)".into())
        }
        Err(iban::ParseIbanError::InvalidBaseIban { .. }) => {
            Err("IBAN does not follow the IBAN rules".into())
        }
    }
}

/// ISO 13616 / ISO 7064 mod 97-10 over an upper-case alphanumeric IBAN.
///
/// The first four characters move to the end and letters become two-digit
/// numbers (A = 10 .. Z = 35). The resulting number can have 60+ digits,
/// so the remainder is folded in one digit (or letter) at a time instead
/// of building a big integer.
fn iban_mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(iban.len().min(4));
    tail.iter().chain(head).fold(0u32, |rem, &b| match b {
        b'0'..=b'9' => (rem * 10 + u32::from(b - b'0')) % 97,
        b'A'..=b'Z' => (rem * 100 + u32::from(b - b'A') + 10) % 97,
        // Unreachable after the caller's alphanumeric check; a value that
        // can never be 1 keeps this total without a panic.
        _ => 0,
    })
}

/// Longest Bitcoin address of any kind: BIP-173 caps bech32 strings at 90.
const BTC_MAX_LEN: usize = 90;

/// Validates a Bitcoin address on mainnet or testnet.
///
/// Accepts segwit addresses (HRP `bc` or `tb`; bech32 checksum for witness
/// version 0, bech32m for versions 1 and above, per BIP-173 / BIP-350) and
/// legacy base58check P2PKH / P2SH addresses (version byte 0x00 / 0x05 on
/// mainnet, 0x6f / 0xc4 on testnet, 20-byte hash).
pub fn btc_address(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("bitcoin address is empty".into());
    }
    if s.len() > BTC_MAX_LEN {
        return Err("bitcoin address is too long".into());
    }
    let prefix = s.get(..3).map(str::to_ascii_lowercase);
    if matches!(prefix.as_deref(), Some("bc1" | "tb1")) {
        btc_segwit(s)
    } else {
        btc_base58(s)
    }
}

fn btc_segwit(s: &str) -> Result<(), String> {
    use bech32::primitives::decode::SegwitHrpstringError;

    // The crate checks the checksum variant against the witness version,
    // the witness program length, padding and the 90-character limit.
    let (hrp, _version, _program) = bech32::segwit::decode(s).map_err(|e| match e.0 {
        SegwitHrpstringError::Checksum(_) => "bitcoin address checksum does not match".to_string(),
        SegwitHrpstringError::InvalidWitnessVersion(_) => {
            "bitcoin segwit address has an invalid witness version".to_string()
        }
        SegwitHrpstringError::WitnessLength(_) => {
            "bitcoin segwit address has an invalid program length".to_string()
        }
        _ => "bitcoin segwit address is malformed".to_string(),
    })?;
    if hrp != bech32::hrp::BC && hrp != bech32::hrp::TB {
        return Err("bitcoin segwit address must start with bc1 or tb1".into());
    }
    Ok(())
}

fn btc_base58(s: &str) -> Result<(), String> {
    // Legacy addresses are 25 bytes, i.e. 26 to 35 base58 characters.
    // Checking before decoding also bounds the decoder's quadratic work.
    if !(26..=35).contains(&s.len()) {
        return Err("bitcoin address has the wrong length".into());
    }
    let payload = bs58::decode(s)
        .with_check(None)
        .into_vec()
        .map_err(|e| match e {
            bs58::decode::Error::InvalidChecksum { .. } => {
                "bitcoin address checksum does not match".to_string()
            }
            bs58::decode::Error::InvalidCharacter { .. }
            | bs58::decode::Error::NonAsciiCharacter { .. } => {
                "bitcoin address contains a character outside base58".to_string()
            }
            _ => "bitcoin address is malformed".to_string(),
        })?;
    // `with_check` strips the 4-byte checksum but keeps the version byte.
    match payload.split_first() {
        Some((version, hash)) if hash.len() == 20 => match version {
            0x00 | 0x05 | 0x6f | 0xc4 => Ok(()),
            _ => Err("bitcoin address has an unknown version byte".into()),
        },
        _ => Err("bitcoin address has the wrong payload length".into()),
    }
}

/// Validates an Ethereum (or other EVM chain) address: `0x` followed by 40
/// hex digits.
///
/// All-lower-case and all-upper-case hex carry no checksum and are
/// accepted as they are; mixed case is an EIP-55 checksum and must match,
/// since a mismatch means the address was mistyped or tampered with.
pub fn eth_address(s: &str) -> Result<(), String> {
    let Some(hex) = s.strip_prefix("0x") else {
        return Err("ethereum address must start with 0x".into());
    };
    if hex.len() != 40 {
        return Err("ethereum address must have 40 hex digits after 0x".into());
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("ethereum address may contain only hex digits after 0x".into());
    }
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if !(has_lower && has_upper) {
        return Ok(());
    }
    let lower = hex.to_ascii_lowercase();
    let hash = Keccak256::digest(lower.as_bytes());
    // EIP-55: the i-th hex letter is upper case exactly when the i-th
    // nibble of keccak256(lower-case hex) is 8 or more.
    let nibbles = hash.iter().flat_map(|b| [b >> 4, b & 0x0f]);
    let ok = hex.bytes().zip(nibbles).all(|(c, nibble)| {
        if c.is_ascii_alphabetic() {
            c.is_ascii_uppercase() == (nibble >= 8)
        } else {
            true
        }
    });
    if ok {
        Ok(())
    } else {
        Err("ethereum address EIP-55 checksum does not match".into())
    }
}

/// Validates an address for the given currency.
///
/// Bitcoin and Ethereum (including ERC-20 tokens on Ethereum) get their
/// full checksum validation. For other currencies casesync does not know
/// the format, so it only insists on 1 to 128 printable ASCII characters
/// without whitespace: enough to stop control characters, homoglyphs and
/// oversized blobs without rejecting a legitimate address.
pub fn crypto_address(currency: &str, address: &str) -> Result<(), String> {
    let currency = currency.to_ascii_lowercase();
    match currency.as_str() {
        "btc" | "bitcoin" => btc_address(address),
        "eth" | "ether" | "ethereum" | "usdt-erc20" | "usdc-erc20" => eth_address(address),
        _ => {
            if address.is_empty() {
                Err("address is empty".into())
            } else if address.len() > 128 {
                Err("address must be at most 128 characters".into())
            } else if !address.bytes().all(|b| b.is_ascii_graphic()) {
                Err("address may contain only printable ASCII without spaces".into())
            } else {
                Ok(())
            }
        }
    }
}

/// Validates a currency code (ISO 4217 such as `EUR`, a ticker such as
/// `BTC`, or a token-on-chain form such as `USDT-ERC20`) and returns it in
/// upper case.
///
/// 2 to 16 ASCII letters, digits or hyphens; a hyphen may not come first
/// or last.
pub fn currency(s: &str) -> Result<String, String> {
    if !(2..=16).contains(&s.len()) {
        return Err("currency must be 2 to 16 characters".into());
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("currency may contain only letters, digits and '-'".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("currency must not start or end with '-'".into());
    }
    Ok(s.to_ascii_uppercase())
}

/// Validates a date: either a calendar date `YYYY-MM-DD` or an RFC 3339
/// date-time with a UTC offset (`2021-03-14T09:30:00Z`,
/// `2021-03-14T10:30:00+01:00`).
///
/// The date must exist (`2021-02-30` is refused). Other spellings such as
/// `14/03/2021` are refused because they are ambiguous between countries.
pub fn date(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("date is empty".into());
    }
    if s.len() == 10 {
        return calendar_date(s);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|_| ())
        .map_err(|_| "date must be YYYY-MM-DD or an RFC 3339 date-time with offset".into())
}

fn calendar_date(s: &str) -> Result<(), String> {
    const SHAPE: &str = "date must be YYYY-MM-DD or an RFC 3339 date-time with offset";
    let b = s.as_bytes();
    let shape_ok = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(SHAPE.into());
    }
    // `get` rather than indexing keeps this panic-free even if the shape
    // check above is ever loosened.
    let field = |r: std::ops::Range<usize>| s.get(r).ok_or_else(|| SHAPE.to_string());
    let year: i32 = field(0..4)?.parse().map_err(|_| SHAPE.to_string())?;
    let month: u8 = field(5..7)?.parse().map_err(|_| SHAPE.to_string())?;
    let day: u8 = field(8..10)?.parse().map_err(|_| SHAPE.to_string())?;
    let month = time::Month::try_from(month).map_err(|_| "date has no such month".to_string())?;
    time::Date::from_calendar_date(year, month, day)
        .map(|_| ())
        .map_err(|_| "date does not exist in the calendar".into())
}

/// Parses a latitude in decimal degrees, -90 to 90 inclusive.
pub fn latitude(s: &str) -> Result<f64, String> {
    coordinate(s, 90.0, "latitude")
}

/// Parses a longitude in decimal degrees, -180 to 180 inclusive.
pub fn longitude(s: &str) -> Result<f64, String> {
    coordinate(s, 180.0, "longitude")
}

fn coordinate(s: &str, limit: f64, what: &str) -> Result<f64, String> {
    // f64::from_str also accepts "inf" and "NaN"; those must not reach a map.
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{what} must be a decimal number"))?;
    if !v.is_finite() {
        return Err(format!("{what} must be a finite number"));
    }
    if !(-limit..=limit).contains(&v) {
        return Err(format!("{what} must be between -{limit} and {limit}"));
    }
    Ok(v)
}

/// Longest phone string accepted: 17 digits plus generous separators.
/// Bounds what a hostile peer can make us store under a "phone" label.
const PHONE_MAX_LEN: usize = 40;

/// Validates a phone number as people write it: an optional leading `+`,
/// then digits with optional spaces, `-`, `(`, `)` and `.` separators, 5 to
/// 17 digits in total (short codes up to E.164's 15 digits plus a trunk or
/// international prefix).
pub fn phone(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("phone number is empty".into());
    }
    if s.len() > PHONE_MAX_LEN {
        return Err(format!(
            "phone number must be at most {PHONE_MAX_LEN} characters"
        ));
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let mut digits = 0usize;
    for c in body.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '(' | ')' | '.' => {}
            _ => {
                return Err(
                    "phone number may contain only digits, spaces, '-', '(', ')', '.' and a leading '+'"
                        .into(),
                );
            }
        }
    }
    if !(5..=17).contains(&digits) {
        return Err("phone number must have 5 to 17 digits".into());
    }
    Ok(())
}

/// Validates a two-letter country code and returns it in upper case.
///
/// Only the shape is checked, not membership of ISO 3166-1: the list
/// changes, and user-assigned codes such as `XK` are in real use.
pub fn country_code(s: &str) -> Result<String, String> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(s.to_ascii_uppercase())
    } else {
        Err("country code must be two letters".into())
    }
}

/// Validates a SHA-256 digest written as 64 hex digits and returns it in
/// lower case, so equal digests compare equal as strings.
pub fn sha256_hex(s: &str) -> Result<String, String> {
    if s.len() != 64 {
        return Err("sha-256 digest must be 64 hex digits".into());
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("sha-256 digest may contain only hex digits".into());
    }
    Ok(s.to_ascii_lowercase())
}

/// A media type (`image/jpeg`, `application/pdf`): a type and a subtype of
/// RFC 6838's restricted name characters, in lower case; no parameters.
pub fn media_type(s: &str) -> Result<String, String> {
    let s = s.trim().to_ascii_lowercase();
    let name = |p: &str| {
        !p.is_empty()
            && p.len() <= 127
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match s.split_once('/') {
        Some((t, sub)) if name(t) && name(sub) => Ok(s),
        _ => Err("a media type is TYPE/SUBTYPE, e.g. application/pdf".into()),
    }
}

/// Validates a record id: a UUID in canonical hyphenated form
/// (`8-4-4-4-12` hex digits), in either case.
///
/// Braced, URN and unhyphenated spellings are refused so that one record
/// has exactly one textual id (up to case).
pub fn record_id(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(())
    } else {
        Err("record id must be a UUID like xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iban_valid() {
        for (input, want) in [
            ("GB29NWBK60161331926819", "GB29NWBK60161331926819"),
            ("RO41RNCB0082044617040001", "RO41RNCB0082044617040001"),
            ("GB29 NWBK 6016 1331 9268 19", "GB29NWBK60161331926819"),
            ("DE89370400440532013000", "DE89370400440532013000"),
            ("gb29nwbk60161331926819", "GB29NWBK60161331926819"),
            ("FR1420041010050500013M02606", "FR1420041010050500013M02606"),
            ("NL91ABNA0417164300", "NL91ABNA0417164300"),
            ("ES9121000418450200051332", "ES9121000418450200051332"),
            ("IT60X0542811101000000123456", "IT60X0542811101000000123456"),
            ("BE68539007547034", "BE68539007547034"),
            ("IE29AIBK93115212345678", "IE29AIBK93115212345678"),
            (
                "PL61109010140000071219812874",
                "PL61109010140000071219812874",
            ),
            ("BG80BNBG96611020345678", "BG80BNBG96611020345678"),
            (
                "HU42117730161111101800000000",
                "HU42117730161111101800000000",
            ),
            ("NO9386011117947", "NO9386011117947"),
            (
                "MT84MALT011000012345MTLCAST001S",
                "MT84MALT011000012345MTLCAST001S",
            ),
            // Countries the registry has beyond Europe.
            ("SA0380000000608010167519", "SA0380000000608010167519"),
            (
                "BR1800360305000010009795493C1",
                "BR1800360305000010009795493C1",
            ),
            (
                "EG380019000500000000263180002",
                "EG380019000500000000263180002",
            ),
            (
                "QA58DOHB00001234567890ABCDEFG",
                "QA58DOHB00001234567890ABCDEFG",
            ),
        ] {
            assert_eq!(iban(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn iban_invalid() {
        for input in [
            "GB29NWBK60161331926818",               // checksum
            "RO41RNCB008204461704000",              // one digit short
            "GB29NWBK6016133192681",                // one digit short
            "DE89370400440532013001",               // checksum
            "",                                     // empty
            "    ",                                 // only spaces
            "G",                                    // too short for a country
            "1B29NWBK60161331926819",               // country not letters
            "GBX9NWBK60161331926819",               // check digits not digits
            "GB29NWBK6016133192681!",               // punctuation
            "GB29-NWBK-6016-1331-9268-19",          // hyphens are not spaces
            "GB29NWBK60161331926819\u{e9}",         // non-ASCII
            "XX00123",                              // unknown country, too short
            "XX0012345678901234567890123456789012", // unknown country, too long
            "GB00NWBK60161331926819",               // check digits 00 never issued
        ] {
            assert!(iban(input).is_err(), "{input:?} should be rejected");
        }
        assert_eq!(
            iban("GB29NWBK60161331926818"),
            Err("IBAN checksum does not match".to_string())
        );
        // The checksum holds, but the registry says no: two digits short of
        // GB's 22, and a country that has no IBAN.
        assert_eq!(
            iban("GB29BARC102013456789"),
            Err("IBAN does not follow its country's format (length or characters)".to_string())
        );
        assert_eq!(
            iban("XX97123456789012345678"),
            Err("IBAN country code is not in the IBAN registry".to_string())
        );
    }

    #[test]
    fn iban_check_digits_99_refused_even_if_mod97_passes() {
        // 99 = 2 (mod 97), so swapping 02 for 99 keeps mod-97 at 1.
        let good = "GB02NWBK60161300000046";
        let bad = "GB99NWBK60161300000046";
        assert_eq!(iban(good).as_deref(), Ok(good));
        assert_eq!(iban_mod97(bad.as_bytes()), 1);
        assert_eq!(
            iban(bad),
            Err("IBAN check digits must be between 02 and 98".to_string())
        );
    }

    #[test]
    fn btc_valid() {
        for a in [
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
            "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
            // BIP-173 P2WSH testnet vector.
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            // BIP-350 v1 testnet vector.
            "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
            // BIP-350 v2 vector (bech32m).
            "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
            // Satoshi's genesis coinbase address.
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        ] {
            assert_eq!(btc_address(a), Ok(()), "{a}");
        }
    }

    #[test]
    fn btc_invalid() {
        for a in [
            // One character changed in each valid vector above.
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLz",
            "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3298",
            // BIP-350: v0 program with a bech32m checksum.
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
            // BIP-350: v1 program with a bech32 (not bech32m) checksum.
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
            // Mixed case is forbidden in bech32.
            "bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            // Another chain's HRP.
            "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9",
            // BIP-173's v2 vector: bech32 checksum, invalid since BIP-350.
            "bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",
            // Base58 alphabet excludes 0, O, I and l.
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN0",
            "",
            "bc1",
            "1",
            "not an address at all",
        ] {
            assert!(btc_address(a).is_err(), "{a:?} should be rejected");
        }
        assert_eq!(
            btc_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"),
            Err("bitcoin address checksum does not match".to_string())
        );
        assert_eq!(
            btc_address("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
            Err("bitcoin address checksum does not match".to_string())
        );
        assert!(btc_address(&"1".repeat(10_000)).is_err());
    }

    #[test]
    fn btc_segwit_foreign_hrp_refused() {
        // The HRP ends at the last '1', so "bc1a1q..." is valid bech32 with
        // HRP "bc1a": it looks like a mainnet address but is not one.
        let Ok(hrp) = bech32::Hrp::parse("bc1a") else {
            panic!("test HRP should parse");
        };
        let Ok(addr) = bech32::segwit::encode_v0(hrp, &[0u8; 20]) else {
            panic!("test address should encode");
        };
        assert!(addr.starts_with("bc1a1q"));
        assert_eq!(
            btc_address(&addr),
            Err("bitcoin segwit address must start with bc1 or tb1".to_string())
        );
    }

    #[test]
    fn btc_base58_wrong_version_refused() {
        // A valid base58check string with version byte 0x1e (Dogecoin).
        let doge = bs58::encode([0x1e; 21]).with_check().into_string();
        assert_eq!(
            btc_address(&doge),
            Err("bitcoin address has an unknown version byte".to_string())
        );
        let testnet = bs58::encode([0x6f; 21]).with_check().into_string();
        assert_eq!(btc_address(&testnet), Ok(()));
        // Right version, wrong payload length.
        let short = bs58::encode([0x00; 22]).with_check().into_string();
        assert!(btc_address(&short).is_err());
    }

    #[test]
    fn eth() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(eth_address(good), Ok(()));
        // Other EIP-55 reference vectors.
        for a in [
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
            "0x52908400098527886E0F7030069857D2E4169EE7",
            "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
            "0xde709f2102306220921060314715629080e2fb77",
            "0x27b1fdb04752bbc536007a920d24acb045561c26",
        ] {
            assert_eq!(eth_address(a), Ok(()), "{a}");
        }
        assert_eq!(eth_address(&good.to_ascii_lowercase()), Ok(()));
        assert_eq!(
            eth_address(&format!("0x{}", good[2..].to_ascii_uppercase())),
            Ok(())
        );
        // One letter's case flipped: 'a' at index 2 -> 'A'.
        let flipped = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert_eq!(
            eth_address(flipped),
            Err("ethereum address EIP-55 checksum does not match".to_string())
        );
        for a in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA\u{e9}",
        ] {
            assert!(eth_address(a).is_err(), "{a:?} should be rejected");
        }
    }

    #[test]
    fn crypto_dispatch() {
        let eth = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let btc = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
        for c in ["BTC", "btc", "Bitcoin"] {
            assert_eq!(crypto_address(c, btc), Ok(()));
            assert!(crypto_address(c, eth).is_err());
        }
        for c in ["ETH", "ether", "Ethereum", "USDT-ERC20", "usdc-erc20"] {
            assert_eq!(crypto_address(c, eth), Ok(()));
            assert!(crypto_address(c, btc).is_err());
        }
        // Unknown currencies: shape only.
        assert_eq!(
            crypto_address(
                "XMR",
                "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
            ),
            Ok(())
        );
        assert_eq!(crypto_address("LTC", "x"), Ok(()));
        assert_eq!(crypto_address("LTC", &"a".repeat(128)), Ok(()));
        assert!(crypto_address("LTC", &"a".repeat(129)).is_err());
        assert!(crypto_address("LTC", "").is_err());
        assert!(crypto_address("LTC", "abc def").is_err());
        assert!(crypto_address("LTC", "abc\n").is_err());
        assert!(crypto_address("LTC", "abc\u{430}").is_err());
    }

    #[test]
    fn currency_codes() {
        assert_eq!(currency("eur").as_deref(), Ok("EUR"));
        assert_eq!(currency("GBP").as_deref(), Ok("GBP"));
        assert_eq!(currency("usdt-erc20").as_deref(), Ok("USDT-ERC20"));
        assert_eq!(currency("BT").as_deref(), Ok("BT"));
        assert_eq!(currency(&"A".repeat(16)).as_deref(), Ok("AAAAAAAAAAAAAAAA"));
        for c in [
            "",
            "E",
            "EU R",
            "EUR$",
            "-EUR",
            "EUR-",
            "\u{20ac}",
            &"A".repeat(17),
        ] {
            assert!(currency(c).is_err(), "{c:?} should be rejected");
        }
    }

    #[test]
    fn dates() {
        for d in [
            "2021-03-14",
            "2020-02-29",
            "2000-02-29",
            "2021-03-14T09:30:00Z",
            "2021-03-14T10:30:00+01:00",
            "2021-03-14T10:30:00.123-05:00",
            // RFC 3339 section 5.6 lets a space stand in for the T.
            "2021-03-14 09:30:00Z",
        ] {
            assert_eq!(date(d), Ok(()), "{d}");
        }
        for d in [
            "",
            "2021-02-30",
            "2021-02-29",
            "1900-02-29",
            "2021-13-01",
            "2021-00-10",
            "2021-01-00",
            "14/03/2021",
            "2021/03/14",
            "2021-3-14",
            "+021-03-14",
            "2021-03-14T09:30:00", // no offset
            "2021-03-14T25:00:00Z",
            "yesterday",
        ] {
            assert!(date(d).is_err(), "{d:?} should be rejected");
        }
    }

    #[test]
    fn coordinates() {
        assert_eq!(latitude("90"), Ok(90.0));
        assert_eq!(latitude("-90"), Ok(-90.0));
        assert_eq!(latitude("0"), Ok(0.0));
        assert_eq!(latitude("51.5074"), Ok(51.5074));
        assert_eq!(longitude("180"), Ok(180.0));
        assert_eq!(longitude("-180.0"), Ok(-180.0));
        assert_eq!(longitude("-0.1278"), Ok(-0.1278));
        for s in [
            "90.0001",
            "-90.0001",
            "NaN",
            "inf",
            "-infinity",
            "",
            "51,5",
            "N51",
            " 51",
        ] {
            assert!(latitude(s).is_err(), "{s:?} should be rejected");
        }
        for s in ["180.0001", "-180.0001", "1e400", "nan", "abc"] {
            assert!(longitude(s).is_err(), "{s:?} should be rejected");
        }
        assert_eq!(
            latitude("91"),
            Err("latitude must be between -90 and 90".to_string())
        );
    }

    #[test]
    fn phones() {
        for p in [
            "+40 700 000 111",
            "07700 900123",
            "+44 (0) 20 7946 0958",
            "020.7946.0958",
            "555-0199",
            "12345",
            "+12345678901234567",
        ] {
            assert_eq!(phone(p), Ok(()), "{p}");
        }
        for p in [
            "abc",
            "",
            "+",
            "1234",
            "123456789012345678",
            "++44 20 7946 0958",
            "44+20",
            "020 7946 0958 ext 12",
            "020\t7946 0958",
            &format!("1{}2345", " ".repeat(50)),
        ] {
            assert!(phone(p).is_err(), "{p:?} should be rejected");
        }
    }

    #[test]
    fn country_codes() {
        assert_eq!(country_code("gb").as_deref(), Ok("GB"));
        assert_eq!(country_code("Ro").as_deref(), Ok("RO"));
        assert_eq!(country_code("XK").as_deref(), Ok("XK"));
        for c in ["", "G", "GBR", "G1", "\u{c9}U", "  "] {
            assert!(country_code(c).is_err(), "{c:?} should be rejected");
        }
    }

    #[test]
    fn sha256() {
        // SHA-256 of the empty string.
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(sha256_hex(upper), Ok(upper.to_ascii_lowercase()));
        assert_eq!(
            sha256_hex(&upper.to_ascii_lowercase()),
            Ok(upper.to_ascii_lowercase())
        );
        for s in [
            "",
            &upper[1..],
            &format!("{upper}0"),
            &format!("{}g", &upper[1..]),
        ] {
            assert!(sha256_hex(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(" Image/JPEG ").unwrap(), "image/jpeg");
        assert_eq!(
            media_type("application/vnd.ms-excel").unwrap(),
            "application/vnd.ms-excel"
        );
        for bad in [
            "",
            "pdf",
            "text/",
            "/plain",
            "text/plain; charset=utf-8",
            "a b/c",
        ] {
            assert!(media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_ids() {
        for s in [
            "123e4567-e89b-12d3-a456-426614174000",
            "0190F3C5-7B2A-7C3D-8E4F-0123456789AB",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(record_id(s), Ok(()), "{s}");
        }
        for s in [
            "",
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400",
            "123e4567-e89b-12d3-a456-4266141740000",
            "123e4567-e89b-12d3-a456_426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "123e456-7e89b-12d3-a456-426614174000",
        ] {
            assert!(record_id(s).is_err(), "{s:?} should be rejected");
        }
    }
}
