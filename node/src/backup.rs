//! `backup` and `restore`: one file that holds a node whole (its sealed
//! keystore and a consistent snapshot of its store), and a data directory made
//! from it that never signs a log position its node may already have used.
//!
//! File layout (version 1), integers big-endian:
//!
//! ```text
//! magic "casesync-backup\n" [16] | version u8 | keystore len u32 | keystore |
//! store len u64 | store (a SQLite database) | SHA-256 of every byte before [32]
//! ```
//!
//! The file is as sensitive as the data directory and no more: the keystore is
//! sealed with the passphrase, and the store holds nothing in plaintext.
//! Restoring checks the digest over the whole file before writing anything.
//!
//! A restored node may be behind what it signed: it wrote after the backup, and
//! partners hold those entries. The restored store carries a chain floor
//! ([`log::start_new_chains`]), so its next entry in every case starts a new
//! chain of its log instead of reusing a position; sync brings its later
//! entries back from partners.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use casesync_crypto::hash::Sha256Stream;

use crate::audit::{self, Action, Event};
use crate::files::write_private_file;
use crate::node::DataDir;
use crate::{Node, NodeError, Result, log, store};

const MAGIC: &[u8; 16] = b"casesync-backup\n";
const VERSION: u8 = 1;
/// Largest keystore a backup may carry (a sealed keystore is a few hundred bytes).
const MAX_KEYSTORE: u32 = 64 * 1024;

/// What `backup` wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NodeError + '_ {
    move |e| NodeError::Io(format!("{}: {e}", path.display()))
}

/// Writes a backup of `node` to `out` (refused if it exists): a consistent
/// snapshot of the store, taken while other processes (`serve`) go on writing.
/// The audit entry is in the snapshot, so a restored node shows when its copy
/// was taken.
pub fn backup(node: &Node, actor: &crate::audit::Actor, out: &Path) -> Result<BackupReport> {
    audit::audited(node, actor, Action::NodeBackup, None, None, || {
        if out.exists() {
            return Err(NodeError::Refused(format!(
                "{} exists; choose a new file for the backup",
                out.display()
            )));
        }
        let keystore = fs::read(node.dir.keystore_path()).map_err(io(&node.dir.keystore_path()))?;
        if keystore.len() > MAX_KEYSTORE as usize {
            return Err(NodeError::Integrity(
                "the keystore is larger than any casesync writes".into(),
            ));
        }
        audit::append_alone(
            node,
            actor,
            Event::new(Action::NodeBackup).detail(format!("to {}", out.display())),
        )?;
        let snapshot = out.with_extension("store-snapshot");
        let _ = fs::remove_file(&snapshot);
        let written = (|| -> Result<u64> {
            let target = snapshot.to_str().ok_or_else(|| {
                NodeError::Refused("give the backup a path that is valid UTF-8".into())
            })?;
            store::snapshot_into(node.store.conn(), target)?;
            let tmp = out.with_extension("tmp");
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let _ = fs::remove_file(&tmp);
            let file = opts.open(&tmp).map_err(io(&tmp))?;
            let mut w = HashingWriter {
                inner: BufWriter::new(file),
                hash: Sha256Stream::new(),
                count: 0,
            };
            let store_len = fs::metadata(&snapshot).map_err(io(&snapshot))?.len();
            w.write_all(MAGIC).map_err(io(&tmp))?;
            w.write_all(&[VERSION]).map_err(io(&tmp))?;
            w.write_all(&(keystore.len() as u32).to_be_bytes())
                .map_err(io(&tmp))?;
            w.write_all(&keystore).map_err(io(&tmp))?;
            w.write_all(&store_len.to_be_bytes()).map_err(io(&tmp))?;
            let mut src = fs::File::open(&snapshot).map_err(io(&snapshot))?;
            let copied = std::io::copy(&mut src, &mut w).map_err(io(&tmp))?;
            if copied != store_len {
                return Err(NodeError::Io(
                    "the store snapshot changed while it was copied".into(),
                ));
            }
            let digest = w.hash.finish();
            let mut inner = w.inner;
            inner.write_all(&digest.0).map_err(io(&tmp))?;
            let file = inner.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, out).map_err(io(out))?;
            Ok(w.count + 32)
        })();
        let _ = fs::remove_file(&snapshot);
        Ok(BackupReport {
            path: out.to_path_buf(),
            bytes: written?,
        })
    })
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256Stream,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The parts of a backup file, read after its digest held.
struct Parts {
    keystore: Vec<u8>,
    store_at: u64,
    store_len: u64,
}

/// Checks a backup file whole (layout, lengths, digest) in one streaming pass
/// with bounded memory, before anything is written.
fn check(file: &Path) -> Result<Parts> {
    let bad = |why: &str| {
        NodeError::Refused(format!(
            "{} is not a casesync backup, or it is damaged ({why}); nothing was restored",
            file.display()
        ))
    };
    let meta = fs::metadata(file).map_err(io(file))?;
    if !meta.is_file() {
        return Err(bad("not a regular file"));
    }
    let total = meta.len();
    let mut r = BufReader::new(fs::File::open(file).map_err(io(file))?);
    let mut hash = Sha256Stream::new();
    let read =
        |r: &mut BufReader<fs::File>, n: usize, hash: &mut Sha256Stream| -> Result<Vec<u8>> {
            let mut b = vec![0u8; n];
            r.read_exact(&mut b).map_err(|_| bad("truncated"))?;
            hash.update(&b);
            Ok(b)
        };
    if read(&mut r, 16, &mut hash)?[..] != MAGIC[..] {
        return Err(bad("no backup header"));
    }
    if read(&mut r, 1, &mut hash)?[0] != VERSION {
        return Err(bad("a backup version this casesync does not know"));
    }
    let ks_len = u32::from_be_bytes(
        read(&mut r, 4, &mut hash)?
            .try_into()
            .map_err(|_| bad("header"))?,
    );
    if ks_len > MAX_KEYSTORE {
        return Err(bad("keystore too large"));
    }
    let keystore = read(&mut r, ks_len as usize, &mut hash)?;
    let store_len = u64::from_be_bytes(
        read(&mut r, 8, &mut hash)?
            .try_into()
            .map_err(|_| bad("header"))?,
    );
    let store_at = 16 + 1 + 4 + u64::from(ks_len) + 8;
    if store_at
        .checked_add(store_len)
        .and_then(|n| n.checked_add(32))
        != Some(total)
    {
        return Err(bad("its length does not match its header"));
    }
    let mut left = store_len;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        r.read_exact(&mut buf[..n]).map_err(|_| bad("truncated"))?;
        hash.update(&buf[..n]);
        left -= n as u64;
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest).map_err(|_| bad("truncated"))?;
    if !casesync_crypto::hash::ct_eq(&hash.finish().0, &digest) {
        return Err(bad("its digest does not match its content"));
    }
    Ok(Parts {
        keystore,
        store_at,
        store_len,
    })
}

/// Makes `dir` (which must hold no node) the node saved in `file`, unlocked
/// with the passphrase it had when the backup was taken. Its next entry in
/// every case starts a new chain of its log.
pub fn restore(
    dir: &DataDir,
    file: &Path,
    passphrase: &[u8],
    actor: &audit::Actor,
) -> Result<Node> {
    if dir.keystore_path().exists() || dir.db_path().exists() {
        return Err(NodeError::Refused(format!(
            "{} already holds a casesync node; restore into a new or empty directory (move the old one away first)",
            dir.root.display()
        )));
    }
    let parts = check(file)?;
    // The passphrase first: a wrong one leaves the directory untouched.
    casesync_crypto::keystore::open(&parts.keystore, passphrase).map_err(|e| match e {
        casesync_crypto::CryptoError::WrongPassphrase => NodeError::Refused(
            "wrong passphrase: give the one the node had when the backup was taken; nothing was restored"
                .into(),
        ),
        e => e.into(),
    })?;
    fs::create_dir_all(&dir.root).map_err(io(&dir.root))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&dir.root, fs::Permissions::from_mode(0o700));
    }
    let db = dir.db_path();
    let tmp = db.with_extension("restoring");
    let copy = || -> Result<()> {
        let mut src = fs::File::open(file).map_err(io(file))?;
        std::io::Seek::seek(&mut src, std::io::SeekFrom::Start(parts.store_at))
            .map_err(io(file))?;
        let mut dst = fs::File::create(&tmp).map_err(io(&tmp))?;
        let n = std::io::copy(&mut src.take(parts.store_len), &mut dst).map_err(io(&tmp))?;
        if n != parts.store_len {
            return Err(NodeError::Io(format!(
                "{}: changed while it was read",
                file.display()
            )));
        }
        dst.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &db).map_err(io(&db))?;
        // The restored store may be behind what its node signed.
        let store = store::Store::open(&db)?;
        store.write(|tx| -> Result<()> {
            log::start_new_chains(tx)?;
            log::record_store_file(tx, &db)
        })?;
        Ok(())
    };
    if let Err(e) = copy() {
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(&db);
        return Err(e);
    }
    // The keystore last: its presence marks the directory initialized.
    write_private_file(&dir.keystore_path(), &parts.keystore)?;
    let node = dir.unlock_as(passphrase, actor)?;
    audit::append_alone(
        &node,
        actor,
        Event::new(Action::NodeRestore).detail(format!(
            "from {}; this node's next entry in each case starts a new chain of its log",
            file.display()
        )),
    )?;
    Ok(node)
}
