//! Evidence pieces on disk: the one module that reads and writes them.
//! Each piece (a sealed segment of a file, or a file's manifest) is a file
//! `pieces/ab/<sha256 hex>` under the data dir, named by the hash of its
//! bytes, so it is checked on every read and any node can hold pieces it
//! cannot open. Files rather than SQLite blobs: a gigabyte of evidence is
//! written and read in bounded pieces, and deleting a piece frees its disk
//! at once.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;

use casesync_crypto::Hash;
use casesync_crypto::hash::{hex, sha256};

use crate::node::DataDir;
use crate::{NodeError, Result};

pub struct PieceStore {
    root: PathBuf,
}

/// What a read found.
pub enum Piece {
    Here(Vec<u8>),
    Missing,
    /// On disk, but its bytes do not hash to its name.
    Damaged,
}

impl PieceStore {
    pub fn new(dir: &DataDir) -> PieceStore {
        PieceStore {
            root: dir.root.join("pieces"),
        }
    }

    fn path(&self, h: &Hash) -> PathBuf {
        let name = hex(&h.0);
        self.root.join(&name[..2]).join(name)
    }

    fn io(&self, what: &str, e: std::io::Error) -> NodeError {
        NodeError::Io(format!("cannot {what} in {}: {e}", self.root.display()))
    }

    /// Stores `bytes` as the piece `h` (checked first), durably: a piece
    /// is on disk before any record or count says it is.
    pub fn put(&self, h: &Hash, bytes: &[u8]) -> Result<()> {
        if !sha256(bytes).ct_eq(h) {
            return Err(NodeError::Integrity(format!(
                "piece {} does not hash to its name",
                h.short()
            )));
        }
        let path = self.path(h);
        if path.exists() {
            return Ok(());
        }
        let parent = path.parent().unwrap_or(&self.root);
        crate::files::create_private_dir(parent)?;
        let tmp = path.with_extension("part");
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| self.io("write a piece", e))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_data())
            .map_err(|e| self.io("write a piece", e))?;
        fs::rename(&tmp, &path).map_err(|e| self.io("write a piece", e))?;
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads piece `h`, at most `limit` bytes, and checks it.
    pub fn get(&self, h: &Hash, limit: usize) -> Result<Piece> {
        let f = match fs::File::open(self.path(h)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Piece::Missing),
            Err(e) => return Err(self.io("read a piece", e)),
        };
        let mut bytes = Vec::new();
        f.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io("read a piece", e))?;
        if bytes.len() > limit || !sha256(&bytes).ct_eq(h) {
            return Ok(Piece::Damaged);
        }
        Ok(Piece::Here(bytes))
    }

    pub fn has(&self, h: &Hash) -> bool {
        self.path(h).is_file()
    }

    /// Deletes piece `h` (its disk is free at once); a piece not here is fine.
    pub fn remove(&self, h: &Hash) -> Result<()> {
        match fs::remove_file(self.path(h)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("delete a piece", e)),
        }
    }
}
