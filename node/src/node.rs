//! The types every engine module takes, defined below them all: [`DataDir`]
//! (where a node lives) and [`Node`] (a node unlocked: its keys in memory,
//! its store open, and what this process has already resolved). How a data
//! directory is created and unlocked is `crate::datadir`; what a node does
//! is the engine's modules, each taking a `&Node`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use casesync_crypto::{Hash, NodeKeys};
use casesync_schema::control::CaseState;
use casesync_schema::{CaseId, NodeCard};

use crate::error::Result;
use crate::sealing::StorageKeys;
use crate::store::{ChangeMark, Store};

pub(crate) const KEYSTORE_FILE: &str = "keystore";
pub(crate) const DB_FILE: &str = "casesync.db";

/// A node's data directory: `keystore` (the sealed keys) and `casesync.db`
/// (the store).
#[derive(Clone, Debug)]
pub struct DataDir {
    pub root: PathBuf,
}

/// An unlocked node: its keys in memory and its store open.
pub struct Node {
    pub dir: DataDir,
    pub keys: NodeKeys,
    pub storage: StorageKeys,
    pub card: NodeCard,
    pub store: Store,
    /// Cases already loaded (control log verified and resolved) by this process,
    /// shared by every handle of the node.
    pub(crate) cases: CaseCache,
    /// The opened views of the cases the web UI pages through, per process.
    pub(crate) views: ViewCache,
    /// The last sync digest computed for each peer, with the store's mark.
    pub(crate) digests: DigestCache,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// Bytes an unprivileged writer may still use on the file system that
    /// holds the data dir, if that can be found out.
    pub fn free_bytes(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.root).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// `$XDG_DATA_HOME/casesync`, else `~/.local/share/casesync`.
    pub fn platform_default() -> Option<PathBuf> {
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(x).join("casesync"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/casesync"))
    }

    pub fn keystore_path(&self) -> PathBuf {
        self.root.join(KEYSTORE_FILE)
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join(DB_FILE)
    }

    pub fn is_initialized(&self) -> bool {
        self.keystore_path().exists()
    }
}

impl Node {
    /// A second handle on the same node: its own SQLite connection, the same keys.
    /// Network exchanges run on their own handle so inbound requests are served
    /// while an exchange waits on a peer.
    pub fn try_clone(&self) -> Result<Node> {
        Ok(Node {
            dir: self.dir.clone(),
            keys: self.keys.clone(),
            storage: self.storage.clone(),
            card: self.card.clone(),
            store: Store::open(&self.dir.db_path())?,
            cases: self.cases.clone(),
            views: self.views.clone(),
            digests: self.digests.clone(),
        })
    }
}

/// Case states this process has resolved, by case id, with the fingerprint of
/// the control operations they were resolved from. Verifying and resolving a
/// control log costs signature checks, and a long-running `serve` loads every
/// shared case on every sync round: this does it once per change of the log.
/// `resolve` is a pure function of the operations, so the same operations (by
/// hash, checked against their bytes when first verified) give the same state.
#[derive(Clone, Default)]
pub struct CaseCache(Arc<Mutex<HashMap<[u8; 16], Resolved>>>);

/// A case state and the fingerprint of the operations it was resolved from.
type Resolved = (Hash, CaseState);

impl CaseCache {
    pub(crate) fn get(&self, id: &CaseId, fingerprint: &Hash) -> Option<CaseState> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id.0)
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, s)| s.clone())
    }
    pub(crate) fn put(&self, id: &CaseId, fingerprint: Hash, state: &CaseState) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(id.0, (fingerprint, state.clone()));
    }
}

/// The last sync digest (`sync::digest`) computed for each peer: the
/// store's mark it was computed at, and what each case it shares with the
/// peer added to it, so the next one looks again only at the cases changed
/// since. About 100 bytes per shared case and peer.
#[derive(Clone, Default)]
pub struct DigestCache(Arc<Mutex<HashMap<[u8; 32], DigestParts>>>);

pub(crate) struct DigestParts {
    pub(crate) mark: ChangeMark,
    /// By case id.
    pub(crate) parts: std::collections::BTreeMap<[u8; 16], Vec<u8>>,
    pub(crate) digest: Hash,
}

impl DigestCache {
    /// Taken out while a digest is computed (two threads computing one for
    /// the same peer each start from what they find; the last put stays).
    pub(crate) fn take(&self, peer: &[u8; 32]) -> Option<DigestParts> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(peer)
    }
    pub(crate) fn put(&self, peer: &[u8; 32], parts: DigestParts) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(*peer, parts);
    }
}

/// The opened views of a few cases, with the stamp of the store they were
/// read at (`store::records_stamp`): paging through a case of 100,000 records
/// opens them once, not on every page, and after new entries only the records
/// they changed. Held in memory only (about 1 KiB a record), for at most
/// `VIEW_CACHE_CASES` cases; the least recently used goes first.
#[derive(Clone, Default)]
pub struct ViewCache(Arc<Mutex<Vec<Arc<CaseViews>>>>);

/// One version of a case's opened views: record row ids and views, in row
/// order, and the orders pages were sorted in (computed once per version).
/// Shared, never changed: a newer version is a new value.
pub struct CaseViews {
    pub case_ref: i64,
    pub stamp: [i64; 4],
    pub rows: Vec<i64>,
    pub views: Vec<Arc<casesync_schema::doc::RecordView>>,
    /// Indexes into `views` by a sort's name.
    pub orders: Mutex<HashMap<&'static str, Arc<Vec<u32>>>>,
}

const VIEW_CACHE_CASES: usize = 4;

impl ViewCache {
    /// The newest views held of the case, whatever their stamp.
    pub(crate) fn get(&self, case_ref: i64) -> Option<Arc<CaseViews>> {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = v.iter().position(|c| c.case_ref == case_ref)?;
        let hit = v.remove(i);
        v.push(hit.clone());
        Some(hit)
    }
    pub(crate) fn put(&self, views: Arc<CaseViews>) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|c| c.case_ref != views.case_ref);
        if v.len() >= VIEW_CACHE_CASES {
            v.remove(0);
        }
        v.push(views);
    }
}
