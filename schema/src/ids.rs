//! Case and record identifiers.

use std::fmt;
use std::str::FromStr;

use crate::SchemaError;

/// A case id: 128 random bits, shown as a UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseId(pub [u8; 16]);

/// A record id: a UUIDv7 (time-ordered, so ids sort roughly by creation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub [u8; 16]);

impl CaseId {
    pub fn random() -> Result<CaseId, SchemaError> {
        let mut b = [0u8; 16];
        casesync_crypto::random_bytes(&mut b)?;
        // Version 4 / RFC 4122 variant bits, so the id is a well-formed UUID.
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Ok(CaseId(b))
    }
}

impl RecordId {
    pub fn new_v7() -> RecordId {
        RecordId(*uuid::Uuid::now_v7().as_bytes())
    }
}

macro_rules! uuid_display {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&uuid::Uuid::from_bytes(self.0).hyphenated(), f)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl FromStr for $t {
            type Err = SchemaError;
            fn from_str(s: &str) -> Result<Self, SchemaError> {
                crate::validate::record_id(s).map_err(|_| SchemaError::InvalidId(truncate(s)))?;
                let u =
                    uuid::Uuid::parse_str(s).map_err(|_| SchemaError::InvalidId(truncate(s)))?;
                Ok(Self(*u.as_bytes()))
            }
        }
    };
}
uuid_display!(CaseId);
uuid_display!(RecordId);

/// Echoes at most 64 characters of a bad value back in an error.
pub(crate) fn truncate(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(64).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let c = CaseId::random().unwrap();
        assert_eq!(c.to_string().parse::<CaseId>().unwrap(), c);
        let r = RecordId::new_v7();
        assert_eq!(r.to_string().parse::<RecordId>().unwrap(), r);
        assert!("not-a-uuid".parse::<CaseId>().is_err());
        assert!("".parse::<RecordId>().is_err());
    }
}
