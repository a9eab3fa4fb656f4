//! Intelligence grading codes used by UK and European police, parsed from
//! and printed as one compact string such as `3x5x2:2BC` or `europol:A1`.
//!
//! A grading travels with every intelligence record and controls who may
//! see it and how far it may be trusted, so it is parsed strictly: the
//! system must be named (the same letters and digits mean different things
//! in different systems), every position must hold one of its allowed
//! values, and anything else is refused with a reason that lists what is
//! allowed. The text arrives from the CLI, import files and network peers,
//! so the free-text handling conditions are bounded in length and may not
//! contain control or bidirectional-override characters.
//!
//! The canonical form is `SYSTEM:CODE` with the system in lower case and the
//! code in upper case, plus `:CONDITIONS` for a 3x5x2 `C` handling code. It
//! is what `Display` prints, what serde reads and writes, and it round-trips
//! through `FromStr`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Upper bound on 3x5x2 handling conditions, in characters. Real conditions
/// are a sentence or two; the bound stops a peer from inflating records.
pub const MAX_CONDITIONS_CHARS: usize = 500;

/// An intelligence grading under one of the supported systems.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Grading {
    /// UK 3x5x2 (College of Policing APP): source evaluation 1-3, intelligence assessment A-E, handling code P (may be disseminated) or C (conditions apply; conditions text optional).
    Uk3x5x2 {
        source: u8,
        intelligence: char,
        handling: char,
        conditions: Option<String>,
    },
    /// Legacy UK 5x5x5: source A-E, intelligence 1-5, handling 1-5.
    Legacy5x5x5 {
        source: char,
        intelligence: u8,
        handling: u8,
    },
    /// Europol 4x4: source reliability A, B, C or X; information 1-4.
    Europol { source: char, information: u8 },
}

impl Grading {
    /// The grading system's name as used in the canonical string:
    /// `"3x5x2"`, `"5x5x5"` or `"europol"`.
    pub fn system(&self) -> &'static str {
        match self {
            Grading::Uk3x5x2 { .. } => "3x5x2",
            Grading::Legacy5x5x5 { .. } => "5x5x5",
            Grading::Europol { .. } => "europol",
        }
    }
}

const EXPECTED_FORM: &str = "expected SYSTEM:CODE such as 3x5x2:1AP, 5x5x5:B24 or europol:A1";

impl FromStr for Grading {
    type Err = String;

    /// Parses `SYSTEM:CODE` or, for 3x5x2 with handling code C,
    /// `3x5x2:CODE:CONDITIONS`. System names and code letters are accepted
    /// in any case; conditions are kept as written apart from surrounding
    /// whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(format!("grading is empty; {EXPECTED_FORM}"));
        }
        // Conditions are free text and may themselves contain ':', so only
        // the first two colons are structural.
        let mut parts = s.splitn(3, ':');
        let system = parts.next().unwrap_or_default();
        let Some(code) = parts.next() else {
            return Err(format!("grading has no code; {EXPECTED_FORM}"));
        };
        let extra = parts.next();
        match system.to_ascii_lowercase().as_str() {
            "3x5x2" => parse_3x5x2(code, extra),
            "5x5x5" => {
                no_extra("5x5x5", extra)?;
                parse_5x5x5(code)
            }
            "europol" => {
                no_extra("europol", extra)?;
                parse_europol(code)
            }
            _ => Err(format!(
                "unknown grading system{}; expected 3x5x2, 5x5x5 or europol",
                quoted(system)
            )),
        }
    }
}

/// Quotes the rejected system name for the error if it is short enough to
/// be useful; `{:?}` escapes control characters so the message cannot
/// smuggle terminal escapes into a log or console.
fn quoted(s: &str) -> String {
    if s.chars().count() < 64 {
        format!(" {s:?}")
    } else {
        String::new()
    }
}

fn no_extra(system: &str, extra: Option<&str>) -> Result<(), String> {
    match extra {
        None => Ok(()),
        Some(_) => Err(format!(
            "{system} grading takes no conditions; only 3x5x2 with handling code C does"
        )),
    }
}

/// Splits a code into exactly `N` characters, or `None` if it has any other
/// length. Works on chars, not bytes, so non-ASCII input gives a clean error.
fn code_chars<const N: usize>(code: &str) -> Option<[char; N]> {
    let mut out = ['\0'; N];
    let mut chars = code.chars();
    for slot in &mut out {
        *slot = chars.next()?;
    }
    match chars.next() {
        Some(_) => None,
        None => Some(out),
    }
}

/// The numeric value of `c` if it is an ASCII digit in `range`.
fn digit_in(c: char, range: std::ops::RangeInclusive<u8>) -> Option<u8> {
    let d = u8::try_from(c.to_digit(10)?).ok()?;
    range.contains(&d).then_some(d)
}

/// `c` in upper case if it is one of `allowed` (given in upper case).
fn letter_in(c: char, allowed: &[char]) -> Option<char> {
    let c = c.to_ascii_uppercase();
    allowed.contains(&c).then_some(c)
}

fn parse_3x5x2(code: &str, conditions: Option<&str>) -> Result<Grading, String> {
    let [s, i, h] = code_chars::<3>(code)
        .ok_or("3x5x2 code must be 3 characters: source 1-3, intelligence A-E, handling P or C")?;
    let source = digit_in(s, 1..=3).ok_or("3x5x2 source must be 1, 2 or 3")?;
    let intelligence = letter_in(i, &['A', 'B', 'C', 'D', 'E'])
        .ok_or("3x5x2 intelligence must be A, B, C, D or E")?;
    let handling = letter_in(h, &['P', 'C']).ok_or("3x5x2 handling code must be P or C")?;
    let conditions = match conditions {
        None => None,
        Some(_) if handling != 'C' => {
            return Err("3x5x2 conditions are only allowed with handling code C".into());
        }
        Some(text) => Some(parse_conditions(text)?),
    };
    Ok(Grading::Uk3x5x2 {
        source,
        intelligence,
        handling,
        conditions,
    })
}

fn parse_conditions(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        // An empty string after the colon is almost certainly a mistake;
        // omit the colon to record C with no conditions text.
        return Err("3x5x2 conditions must not be empty (omit the second ':' for none)".into());
    }
    conditions_text("3x5x2", text)
}

/// Free-text conditions (3x5x2 `C`, handling code H3): trimmed, bounded,
/// one printable line.
fn conditions_text(what: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{what} conditions must not be empty"));
    }
    if text.chars().count() > MAX_CONDITIONS_CHARS {
        return Err(format!(
            "{what} conditions must be at most {MAX_CONDITIONS_CHARS} characters"
        ));
    }
    // Control characters (newlines, escapes) would let a peer break the
    // one-line canonical form or drive a terminal; bidi overrides would let
    // it make the conditions read differently from what is stored.
    if text.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(format!(
            "{what} conditions must not contain control or bidi formatting characters"
        ));
    }
    Ok(text.to_string())
}

/// Unicode bidirectional formatting characters (UAX #9): marks, embeddings,
/// overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

fn parse_5x5x5(code: &str) -> Result<Grading, String> {
    let [s, i, h] = code_chars::<3>(code)
        .ok_or("5x5x5 code must be 3 characters: source A-E, intelligence 1-5, handling 1-5")?;
    let source =
        letter_in(s, &['A', 'B', 'C', 'D', 'E']).ok_or("5x5x5 source must be A, B, C, D or E")?;
    let intelligence = digit_in(i, 1..=5).ok_or("5x5x5 intelligence must be 1, 2, 3, 4 or 5")?;
    let handling = digit_in(h, 1..=5).ok_or("5x5x5 handling must be 1, 2, 3, 4 or 5")?;
    Ok(Grading::Legacy5x5x5 {
        source,
        intelligence,
        handling,
    })
}

fn parse_europol(code: &str) -> Result<Grading, String> {
    let [s, i] = code_chars::<2>(code)
        .ok_or("europol code must be 2 characters: source A, B, C or X and information 1-4")?;
    let source =
        letter_in(s, &['A', 'B', 'C', 'X']).ok_or("europol source must be A, B, C or X")?;
    let information = digit_in(i, 1..=4).ok_or("europol information must be 1, 2, 3 or 4")?;
    Ok(Grading::Europol {
        source,
        information,
    })
}

impl fmt::Display for Grading {
    /// Prints the canonical form. Letters are upper-cased here too, so a
    /// value built directly with a lower-case letter still prints the form
    /// that `FromStr` produces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grading::Uk3x5x2 {
                source,
                intelligence,
                handling,
                conditions,
            } => {
                write!(
                    f,
                    "3x5x2:{source}{}{}",
                    intelligence.to_ascii_uppercase(),
                    handling.to_ascii_uppercase()
                )?;
                match conditions {
                    Some(text) => write!(f, ":{text}"),
                    None => Ok(()),
                }
            }
            Grading::Legacy5x5x5 {
                source,
                intelligence,
                handling,
            } => write!(
                f,
                "5x5x5:{}{intelligence}{handling}",
                source.to_ascii_uppercase()
            ),
            Grading::Europol {
                source,
                information,
            } => write!(f, "europol:{}{information}", source.to_ascii_uppercase()),
        }
    }
}

impl TryFrom<String> for Grading {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Grading> for String {
    fn from(g: Grading) -> Self {
        g.to_string()
    }
}

/// A handling code (Europol's SIENA codes), on every record: how far the
/// agency that shared it lets it go. Canonical text `H0`, `H1`, `H2`, or
/// `H3:CONDITIONS`; a record without one is H0.
///
/// - H0: for law-enforcement purposes only.
/// - H1: not to be used in judicial proceedings without the originator's
///   permission.
/// - H2: not to be disseminated further without the originator's
///   permission (enforced: a new member of the case gets another agency's
///   H2 records only with that originator's signed consent, and no bundle
///   or selector export carries them).
/// - H3: other restrictions, in free text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HandlingCode {
    #[default]
    H0,
    H1,
    H2,
    H3(String),
}

impl HandlingCode {
    /// What the code asks of a holder, in a few words (for `record show`).
    pub fn meaning(&self) -> &'static str {
        match self {
            HandlingCode::H0 => "law-enforcement use only",
            HandlingCode::H1 => "not for judicial use without the originator's permission",
            HandlingCode::H2 => "no further dissemination without the originator's permission",
            HandlingCode::H3(_) => "other restrictions apply",
        }
    }

    pub fn is_h2(&self) -> bool {
        matches!(self, HandlingCode::H2)
    }
}

impl fmt::Display for HandlingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlingCode::H0 => f.write_str("H0"),
            HandlingCode::H1 => f.write_str("H1"),
            HandlingCode::H2 => f.write_str("H2"),
            HandlingCode::H3(c) => write!(f, "H3:{c}"),
        }
    }
}

impl FromStr for HandlingCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (code, conditions) = match s.trim().split_once(':') {
            Some((c, rest)) => (c.trim(), Some(rest)),
            None => (s.trim(), None),
        };
        let h = match (code.to_ascii_uppercase().as_str(), conditions) {
            ("H0", None) => HandlingCode::H0,
            ("H1", None) => HandlingCode::H1,
            ("H2", None) => HandlingCode::H2,
            ("H3", Some(text)) => HandlingCode::H3(conditions_text("H3", text)?),
            ("H3", None) => {
                return Err("H3 needs its conditions: H3:TEXT".into());
            }
            ("H0" | "H1" | "H2", Some(_)) => {
                return Err(format!("{code} takes no conditions; only H3 does"));
            }
            _ => {
                return Err(format!(
                    "unknown handling code{}: use H0, H1, H2 or H3:CONDITIONS",
                    quoted(s)
                ));
            }
        };
        Ok(h)
    }
}

impl TryFrom<String> for HandlingCode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<HandlingCode> for String {
    fn from(h: HandlingCode) -> String {
        h.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Grading, String> {
        s.parse()
    }

    #[test]
    fn valid_forms() {
        let cases = [
            (
                "3x5x2:1AP",
                Grading::Uk3x5x2 {
                    source: 1,
                    intelligence: 'A',
                    handling: 'P',
                    conditions: None,
                },
            ),
            (
                "3x5x2:2BC",
                Grading::Uk3x5x2 {
                    source: 2,
                    intelligence: 'B',
                    handling: 'C',
                    conditions: None,
                },
            ),
            (
                "3x5x2:2BC:only to named officers",
                Grading::Uk3x5x2 {
                    source: 2,
                    intelligence: 'B',
                    handling: 'C',
                    conditions: Some("only to named officers".into()),
                },
            ),
            (
                "3x5x2:3EC:not to be shared: see SIO",
                Grading::Uk3x5x2 {
                    source: 3,
                    intelligence: 'E',
                    handling: 'C',
                    conditions: Some("not to be shared: see SIO".into()),
                },
            ),
            (
                "5x5x5:B24",
                Grading::Legacy5x5x5 {
                    source: 'B',
                    intelligence: 2,
                    handling: 4,
                },
            ),
            (
                "5x5x5:E55",
                Grading::Legacy5x5x5 {
                    source: 'E',
                    intelligence: 5,
                    handling: 5,
                },
            ),
            (
                "europol:A1",
                Grading::Europol {
                    source: 'A',
                    information: 1,
                },
            ),
            (
                "europol:X4",
                Grading::Europol {
                    source: 'X',
                    information: 4,
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(want.clone()), "{input}");
            assert_eq!(want.to_string(), input);
        }
    }

    #[test]
    fn every_value_in_range_round_trips() {
        let mut n = 0;
        for s in 1..=3 {
            for i in ['A', 'B', 'C', 'D', 'E'] {
                for h in ['P', 'C'] {
                    let text = format!("3x5x2:{s}{i}{h}");
                    let g = parse(&text);
                    assert_eq!(g.as_ref().map(ToString::to_string), Ok(text));
                    n += 1;
                }
            }
        }
        for s in ['A', 'B', 'C', 'D', 'E'] {
            for i in 1..=5 {
                for h in 1..=5 {
                    let text = format!("5x5x5:{s}{i}{h}");
                    assert_eq!(parse(&text).map(|g| g.to_string()), Ok(text));
                    n += 1;
                }
            }
        }
        for s in ['A', 'B', 'C', 'X'] {
            for i in 1..=4 {
                let text = format!("europol:{s}{i}");
                assert_eq!(parse(&text).map(|g| g.to_string()), Ok(text));
                n += 1;
            }
        }
        assert_eq!(n, 30 + 125 + 16);
    }

    #[test]
    fn case_insensitive_input_normalized_output() {
        for (input, canonical) in [
            ("3X5X2:1ap", "3x5x2:1AP"),
            (
                "3x5x2:2bc:Only To Named Officers",
                "3x5x2:2BC:Only To Named Officers",
            ),
            ("5X5X5:b24", "5x5x5:B24"),
            ("EUROPOL:a1", "europol:A1"),
            ("Europol:x4", "europol:X4"),
            ("3x5x2:2BC:  padded  ", "3x5x2:2BC:padded"),
        ] {
            assert_eq!(
                parse(input).map(|g| g.to_string()).as_deref(),
                Ok(canonical)
            );
        }
    }

    #[test]
    fn display_upper_cases_directly_built_values() {
        let g = Grading::Europol {
            source: 'x',
            information: 2,
        };
        assert_eq!(g.to_string(), "europol:X2");
    }

    #[test]
    fn system_names() {
        assert_eq!(parse("3x5x2:1AP").map(|g| g.system()), Ok("3x5x2"));
        assert_eq!(parse("5x5x5:B24").map(|g| g.system()), Ok("5x5x5"));
        assert_eq!(parse("europol:A1").map(|g| g.system()), Ok("europol"));
    }

    #[test]
    fn invalid_inputs() {
        for (input, reason) in [
            ("3x5x2:4AP", "3x5x2 source must be 1, 2 or 3"),
            ("3x5x2:0AP", "3x5x2 source must be 1, 2 or 3"),
            ("3x5x2:1FP", "3x5x2 intelligence must be A, B, C, D or E"),
            ("3x5x2:1AX", "3x5x2 handling code must be P or C"),
            ("5x5x5:F11", "5x5x5 source must be A, B, C, D or E"),
            ("5x5x5:A61", "5x5x5 intelligence must be 1, 2, 3, 4 or 5"),
            ("5x5x5:A10", "5x5x5 handling must be 1, 2, 3, 4 or 5"),
            ("europol:D1", "europol source must be A, B, C or X"),
            ("europol:A5", "europol information must be 1, 2, 3 or 4"),
            ("europol:A0", "europol information must be 1, 2, 3 or 4"),
            (
                "foo:1",
                "unknown grading system \"foo\"; expected 3x5x2, 5x5x5 or europol",
            ),
            (
                "3x5x2",
                "grading has no code; expected SYSTEM:CODE such as 3x5x2:1AP, 5x5x5:B24 or europol:A1",
            ),
            (
                "",
                "grading is empty; expected SYSTEM:CODE such as 3x5x2:1AP, 5x5x5:B24 or europol:A1",
            ),
            (
                "3x5x2:1AP:no conditions with P",
                "3x5x2 conditions are only allowed with handling code C",
            ),
            (
                "europol:A1:extra",
                "europol grading takes no conditions; only 3x5x2 with handling code C does",
            ),
        ] {
            assert_eq!(parse(input), Err(reason.to_string()), "{input:?}");
        }
        for input in [
            "3x5x2:",
            "3x5x2:1A",
            "3x5x2:1APP",
            "3x5x2: 1AP",
            "3x5x2:1AP ",
            "3x5x2:\u{ff11}AP", // fullwidth digit one
            "3x5x2:2BC:",
            "3x5x2:2BC:   ",
            "3x5x2:2BC:line one\nline two",
            "3x5x2:2BC:\u{1b}[31mred",
            "3x5x2:2BC:only to \u{202e}srecciffo",
            "5x5x5:B2",
            "5x5x5:B245",
            "5x5x5:B24:x",
            "europol:A",
            "europol:A12",
            "europol:\u{c0}1",
            ":1AP",
            ":",
            "1AP",
            "3x5x2 :1AP",
            "uk:1AP",
        ] {
            assert!(parse(input).is_err(), "{input:?} should be rejected");
        }
    }

    #[test]
    fn conditions_length_limit() {
        let at_limit = "x".repeat(MAX_CONDITIONS_CHARS);
        let g = parse(&format!("3x5x2:2BC:{at_limit}"));
        assert!(g.is_ok());
        // Counted in characters, not bytes.
        let multibyte = "\u{e9}".repeat(MAX_CONDITIONS_CHARS);
        assert!(parse(&format!("3x5x2:2BC:{multibyte}")).is_ok());
        let over = "x".repeat(MAX_CONDITIONS_CHARS + 1);
        assert_eq!(
            parse(&format!("3x5x2:2BC:{over}")),
            Err("3x5x2 conditions must be at most 500 characters".to_string())
        );
    }

    #[test]
    fn long_unknown_system_is_not_echoed() {
        let long = "s".repeat(100);
        let Err(reason) = parse(&format!("{long}:1AP")) else {
            panic!("should be rejected");
        };
        assert!(!reason.contains(&long));
        let Err(reason) = parse("a\u{1b}b:1AP") else {
            panic!("should be rejected");
        };
        assert!(!reason.contains('\u{1b}'));
    }

    #[test]
    fn serde_uses_canonical_string() {
        use serde::de::IntoDeserializer;
        use serde::de::value::{Error as DeError, StrDeserializer};

        let de: StrDeserializer<'_, DeError> =
            "3x5x2:2bc:only to named officers".into_deserializer();
        let g = Grading::deserialize(de);
        assert_eq!(
            g.as_ref().map(|g| String::from(g.clone())),
            Ok("3x5x2:2BC:only to named officers".to_string())
        );

        let de: StrDeserializer<'_, DeError> = "europol:D1".into_deserializer();
        let err = Grading::deserialize(de).map_err(|e| e.to_string());
        assert_eq!(err, Err("europol source must be A, B, C or X".to_string()));

        assert_eq!(
            Grading::try_from("5x5x5:b24".to_string()).map(String::from),
            Ok("5x5x5:B24".to_string())
        );
    }

    #[test]
    fn handling_codes_round_trip_and_refuse_the_rest() {
        for (text, want) in [
            ("H0", HandlingCode::H0),
            ("h1", HandlingCode::H1),
            (" H2 ", HandlingCode::H2),
            (
                "H3: ask DS Reid first ",
                HandlingCode::H3("ask DS Reid first".into()),
            ),
        ] {
            let h: HandlingCode = text.parse().unwrap();
            assert_eq!(h, want, "{text}");
            assert_eq!(h.to_string().parse::<HandlingCode>().unwrap(), h);
        }
        for bad in [
            "",
            "H4",
            "H3",
            "H3:",
            "H2:x",
            "H0:y",
            "3x5x2:1AP",
            "H3:a\u{202e}b",
            "H3:a\nb",
        ] {
            assert!(bad.parse::<HandlingCode>().is_err(), "{bad:?} accepted");
        }
        let long = format!("H3:{}", "x".repeat(MAX_CONDITIONS_CHARS + 1));
        assert!(long.parse::<HandlingCode>().is_err());
        assert_eq!(HandlingCode::default(), HandlingCode::H0);
    }
}
