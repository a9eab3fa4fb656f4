//! casesync-node: a casesync node on one machine.
//!
//! Layout:
//! - [`datadir`]: the data directory, the keystore file, unlocking.
//! - [`store`]: SQLite; the only module that writes SQL.
//! - [`sealing`]: storage-key sealing of rows and blind indexes.
//! - [`trust`]: the federation trust registry: create, invite, join.
//! - [`cases`]: case control logs: create, members, key epochs.
//! - [`log`]: the log engine: append signed, sealed entries; materialize records.
//! - [`records`]: record add, edit, show, list, import on top of the log engine.
//! - [`ingest`]: checks and materializes items written by other nodes.
//! - [`bundle`]: bundle export and import (air-gapped transfer).
//! - [`verify`]: `log verify`, re-checking every stored entry.
//! - [`audit`]: the audit log: append (in the action's transaction), verify, list, export.
//! - [`import`]: parsing JSON Lines and CSV import files.
//! - [`clock`]: wall-clock time for people to read (never for decisions).
//!
//! The `casesync` binary (main.rs, cli.rs) is a thin layer over these.

pub mod audit;
pub mod backup;
#[doc(hidden)]
pub mod bench;
pub mod bundle;
pub mod cases;
pub mod clock;
pub mod datadir;
pub mod files;
pub mod import;
pub mod ingest;
pub mod log;
pub mod net;
pub mod records;
pub mod sealing;
pub mod serve;
pub mod store;
pub mod sync;
pub mod trust;
pub mod verify;
pub mod wake;

pub use datadir::{DataDir, Node};

/// Errors of the node library. Each message says what failed and, where the
/// user can act, what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Schema(#[from] casesync_schema::SchemaError),
    #[error(transparent)]
    Crypto(#[from] casesync_crypto::CryptoError),
    #[error("{0}")]
    Io(String),
    /// A request that cannot be carried out as asked (unknown id, refused by policy).
    #[error("{0}")]
    Refused(String),
    /// Stored data failed an integrity check.
    #[error("{0}")]
    Integrity(String),
    /// A peer broke the sync protocol (undecodable message, another
    /// federation's id); it is disconnected.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl From<rusqlite::Error> for NodeError {
    fn from(e: rusqlite::Error) -> NodeError {
        NodeError::Store(store::StoreError::from(e))
    }
}

pub type Result<T> = std::result::Result<T, NodeError>;

/// At most 64 characters of `s` (then "..."): messages that echo what a user
/// or a peer gave never grow with it.
pub fn short(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(64).collect::<String>())
    }
}
