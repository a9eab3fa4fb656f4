//! Files the node writes beside its store, and the node's own card as the
//! store holds it: the bottom layer, above `store` only, so that every module
//! (the audit log included) can use them.

use std::fs;
use std::io::Write;
use std::path::Path;

use casesync_schema::NodeCard;

use crate::error::{NodeError, Result};
use crate::store;

/// The node's card as stored in the data dir (public: no passphrase needed).
pub(crate) fn stored_card(conn: &rusqlite::Connection) -> Result<NodeCard> {
    let bytes = store::meta_get(conn, "card")?.ok_or_else(|| {
        NodeError::Integrity("the store has no node card; is the data dir damaged?".into())
    })?;
    Ok(NodeCard::decode(&bytes)?)
}

pub(crate) fn create_private_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path)
        .map_err(|e| NodeError::Io(format!("cannot create {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Writes `data` to `path` atomically (temp file, fsync, rename), readable by
/// the owner only: keystores, and exports that carry case or audit data
/// (bundles, audit exports).
pub fn write_private_file(path: &Path, data: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| NodeError::Io(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = fs::remove_file(&tmp);
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
