//! The node library's error type, and the one rule for echoing input in it.

use crate::store;

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
    /// The actor may not do this (its role, or a case not assigned to it).
    #[error("{0}")]
    Forbidden(String),
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
