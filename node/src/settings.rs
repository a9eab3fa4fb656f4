//! A node's own settings (its match, retention and four-eyes policies),
//! kept as JSON in `meta`; each change is written with its audit entry.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::audit::{self, Actor, Event};
use crate::{Node, NodeError, Result, store};

/// The setting under `key` (its default if never set); `what` names it in
/// an error.
pub fn load<T: DeserializeOwned + Default>(node: &Node, key: &str, what: &str) -> Result<T> {
    match store::meta_get(node.store.conn(), key)? {
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| NodeError::Integrity(format!("the stored {what} is unreadable: {e}"))),
        None => Ok(T::default()),
    }
}

/// Stores `value` under `key` and appends `ev`, in one transaction.
pub fn save<T: Serialize>(
    node: &Node,
    actor: &Actor,
    key: &str,
    value: &T,
    ev: Event,
) -> Result<()> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| NodeError::Integrity(format!("cannot encode the setting {key}: {e}")))?;
    node.store.write(|tx| -> Result<()> {
        store::meta_put(tx, key, &bytes)?;
        audit::append(node, actor, tx, ev)?;
        Ok(())
    })
}
