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
        self.put_all(&[(*h, bytes)], false)
    }

    /// Stores several pieces: written, then each file's data synced, then
    /// each directory once, so a batch costs one flush per piece and per
    /// directory rather than two per piece. Each is checked against its
    /// name unless the caller just computed or checked that hash (`hashed`).
    pub fn put_all(&self, pieces: &[(Hash, &[u8])], hashed: bool) -> Result<()> {
        let mut files = Vec::with_capacity(pieces.len());
        let mut dirs = std::collections::BTreeSet::new();
        for (h, bytes) in pieces {
            if !hashed && !sha256(bytes).ct_eq(h) {
                return Err(NodeError::Integrity(format!(
                    "piece {} does not hash to its name",
                    h.short()
                )));
            }
            let path = self.path(h);
            if path.exists() {
                continue;
            }
            let parent = path.parent().unwrap_or(&self.root).to_path_buf();
            crate::files::create_private_dir(&parent)?;
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
                .map_err(|e| self.io("write a piece", e))?;
            files.push((f, tmp, path));
            dirs.insert(parent);
        }
        for (f, tmp, path) in files {
            f.sync_data().map_err(|e| self.io("write a piece", e))?;
            fs::rename(&tmp, &path).map_err(|e| self.io("write a piece", e))?;
        }
        for d in dirs {
            if let Ok(d) = fs::File::open(d) {
                let _ = d.sync_all();
            }
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

    /// Reads piece `h` (at most `limit` bytes) without checking its hash:
    /// for a reader that authenticates the bytes itself (an AEAD opening)
    /// and checks the hash only to say what went wrong.
    pub fn get_unchecked(&self, h: &Hash, limit: usize) -> Result<Option<Vec<u8>>> {
        let f = match fs::File::open(self.path(h)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("read a piece", e)),
        };
        let mut bytes = Vec::new();
        f.take(limit as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io("read a piece", e))?;
        Ok(Some(bytes))
    }

    /// Bytes piece `h` takes on disk (0 if it is not here).
    pub fn size(&self, h: &Hash) -> u64 {
        fs::metadata(self.path(h)).map(|m| m.len()).unwrap_or(0)
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
