//! casesync-schema: what a case holds and how it is encoded. No I/O.
//!
//! Layout:
//! - [`record`]: record types (POLE), required fields, validation, handling.
//! - [`validate`]: validators for identifiers (IBAN, crypto addresses, dates, ...).
//! - [`grading`]: intelligence grading systems (UK 3x5x2, 5x5x5, Europol).
//! - [`doc`]: the mapping between a record and its Automerge document.
//! - [`card`]: signed node cards (who a node is, its keys).
//! - [`entry`]: the signed, encrypted log entry and its payload of Automerge changes.
//! - [`control`]: case control operations (create, add member, key epochs).
//! - [`authority`]: the deterministic fold shared by control logs and the registry.
//! - [`registry`]: the federation trust registry (admin-signed statements).
//! - [`audit`]: how audit entries are chained and signed, and how a chain is checked.
//! - [`codec`]: the bounded binary reader/writer every encoding here uses.
//!
//! Invariants: schema knows nothing about SQLite, files or the network; every
//! decoder takes bytes from a possibly hostile peer, checks lengths against fixed
//! caps before allocating, and verifies signatures before decoding the rest.

pub mod audit;
pub mod authority;
pub mod bundle;
pub mod card;
pub mod codec;
pub mod control;
pub mod doc;
pub mod entry;
pub mod evidence;
pub mod grading;
pub mod graph;
pub mod history;
pub mod ids;
pub mod record;
pub mod registry;
pub mod retention;
pub mod selectors;
pub mod stored_view;
pub mod validate;

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    /// A small deterministic generator (xorshift), so failures replay by seed.
    pub struct Rng(pub u64);
    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }
}

pub use card::NodeCard;
pub use ids::{CaseId, RecordId};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("unknown record type `{0}` (known: {known})", known = record::RecordType::NAMES.join(", "))]
    UnknownType(String),
    #[error("{record_type} record needs field `{field}`")]
    MissingField {
        record_type: &'static str,
        field: &'static str,
    },
    #[error("field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
    #[error("invalid grading `{value}`: {reason}")]
    InvalidGrading { value: String, reason: String },
    #[error("invalid id `{0}`: expected a UUID like 0192f0c1-7c1e-7b3a-9c1d-2f4e5a6b7c8d")]
    InvalidId(String),
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("{what} is too large ({size} bytes, limit {limit})")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    #[error("signature check failed for {0}")]
    BadSignature(&'static str),
    #[error("automerge: {0}")]
    Automerge(String),
    #[error(transparent)]
    Crypto(#[from] casesync_crypto::CryptoError),
}

impl SchemaError {
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> SchemaError {
        SchemaError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}
