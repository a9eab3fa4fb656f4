//! The data directory's life: `init` (keys, keystore, empty store), `unlock`
//! into a [`Node`], the passphrase, the lock one `serve` holds. The types
//! themselves ([`DataDir`], [`Node`]) are defined in `crate::node`, below every
//! module that takes them.

use std::fs;

use casesync_crypto::keystore::{self, KdfParams, KeystoreSecrets};
use casesync_crypto::{NodeKeys, SymmetricKey};
use casesync_schema::NodeCard;

use crate::node::{DataDir, Node};
use crate::sealing::StorageKeys;
use crate::store::{self, Store};
use crate::{NodeError, Result};

/// What the audit log needs of a node, given from here: `audit` sits below
/// `Node`'s users and knows nothing of them.
impl crate::audit::Keyholder for Node {
    fn keys(&self) -> &NodeKeys {
        &self.keys
    }
    fn storage(&self) -> &StorageKeys {
        &self.storage
    }
    fn card(&self) -> &NodeCard {
        &self.card
    }
    fn store(&self) -> &Store {
        &self.store
    }
}

impl DataDir {
    /// Holds the data dir for one `serve` (an exclusive lock on `serve.lock`,
    /// released when the returned file is dropped, or the process ends): a
    /// second `serve` on the same data dir would split the partners'
    /// connections between two processes.
    pub fn lock_for_serve(&self) -> Result<std::fs::File> {
        let path = self.root.join("serve.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NodeError::Io(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(NodeError::Refused(format!(
                "another `casesync serve` is running on {}: stop it first (one serve per data dir)",
                self.root.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(NodeError::Io(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    fn require_initialized(&self) -> Result<()> {
        // A data dir this user may not read is not "no node".
        if let Err(e) = std::fs::metadata(self.keystore_path())
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Err(NodeError::Refused(format!(
                "cannot read the casesync node in {}: permission denied (run as the user that owns it)",
                self.root.display()
            )));
        }
        if !self.is_initialized() {
            return Err(NodeError::Refused(format!(
                "no casesync node in {}: run `casesync init --name NAME --org ORG --country CC` first (or pass --data-dir)",
                self.root.display()
            )));
        }
        Ok(())
    }

    /// Creates a new node: keys, keystore sealed with `passphrase`, empty store.
    pub fn init(&self, name: &str, org: &str, country: &str, passphrase: &[u8]) -> Result<Node> {
        self.init_with(name, org, country, passphrase, KdfParams::DEFAULT)
    }

    /// [`DataDir::init`] with the keystore's key-derivation cost given.
    pub fn init_with(
        &self,
        name: &str,
        org: &str,
        country: &str,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<Node> {
        if self.keystore_path().exists() || self.db_path().exists() {
            return Err(NodeError::Refused(format!(
                "{} is already initialized (it holds a casesync node); use another --data-dir",
                self.root.display()
            )));
        }
        check_passphrase(passphrase)?;
        let keys = NodeKeys::generate()?;
        let (ms, _) = crate::clock::now();
        let card = NodeCard::issue(&keys, name, org, country, ms)?;
        let storage = SymmetricKey::generate()?;
        crate::files::create_private_dir(&self.root)?;
        let store = Store::open(&self.db_path())?;
        store::meta_put(store.conn(), "card", card.bytes())?;
        let secrets = KeystoreSecrets {
            node: keys,
            storage,
        };
        let sealed = keystore::seal(&secrets, passphrase, kdf)?;
        // The keystore is written last: its presence is what marks the node initialized.
        crate::files::write_private_file(&self.keystore_path(), &sealed)?;
        let node = Node {
            dir: self.clone(),
            storage: StorageKeys::new(&secrets.storage),
            keys: secrets.node,
            card,
            store,
            cases: Default::default(),
            views: Default::default(),
            digests: Default::default(),
        };
        crate::search::fill_index(&node)?;
        Ok(node)
    }

    /// Re-seals the keystore under `new` with the default key-derivation cost
    /// (`passphrase change`), after `old` unlocked it. The new file replaces
    /// the old one by rename, so a crash leaves one or the other whole. The
    /// change is audited as `actor`'s under the new passphrase (the unlock
    /// proves it works); a wrong old passphrase is recorded as a failed unlock.
    pub fn change_passphrase(
        &self,
        old: &[u8],
        new: &[u8],
        actor: &crate::audit::Actor,
    ) -> Result<()> {
        use crate::audit::{Action, Event};
        check_passphrase(new)?;
        self.require_initialized()?;
        let file = fs::read(self.keystore_path()).map_err(|e| {
            NodeError::Io(format!(
                "cannot read keystore {}: {e}",
                self.keystore_path().display()
            ))
        })?;
        let secrets = match keystore::open(&file, old) {
            Ok(s) => s,
            Err(casesync_crypto::CryptoError::WrongPassphrase) => {
                self.note_failed_unlock(actor, "wrong passphrase (passphrase change)");
                return Err(NodeError::Refused(
                    "wrong passphrase: the keystore did not unlock; nothing was changed".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let sealed = keystore::seal(&secrets, new, KdfParams::DEFAULT)?;
        crate::files::write_private_file(&self.keystore_path(), &sealed)?;
        let node = self.unlock_as(new, actor)?;
        crate::audit::append_alone(
            &node,
            actor,
            Event::new(Action::PassphraseChange)
                .detail("keystore re-sealed (Argon2id, 64 MiB, 3 passes)"),
        )?;
        Ok(())
    }

    /// A wrong passphrase, kept for the audit log until the next unlock. A
    /// failure to record it is said on stderr and does not change the refusal.
    fn note_failed_unlock(&self, actor: &crate::audit::Actor, reason: &str) {
        let noted = self
            .open_store()
            .and_then(|s| crate::audit::note_failed_unlock(&s, &actor.operator, reason));
        if let Err(e) = noted {
            eprintln!("warning: the failed unlock could not be recorded for the audit log: {e}");
        }
    }

    /// The node's own card, readable without the passphrase.
    pub fn card(&self) -> Result<NodeCard> {
        self.require_initialized()?;
        crate::files::stored_card(Store::open(&self.db_path())?.conn())
    }

    /// Opens the store without unlocking keys (for commands that need no secret).
    pub fn open_store(&self) -> Result<Store> {
        self.require_initialized()?;
        Ok(Store::open(&self.db_path())?)
    }

    /// Unlocks the keystore and opens the store, the OS user unlocking.
    pub fn unlock(&self, passphrase: &[u8]) -> Result<Node> {
        self.unlock_as(passphrase, &crate::audit::Actor::new(None, None))
    }

    /// Unlocks the keystore and opens the store, `actor` unlocking: a wrong
    /// passphrase is recorded under that name for the audit log (it joins the
    /// chain at the next unlock), and what the unlock itself records (events
    /// that waited, a copied store) is recorded as `actor`'s. The node handle
    /// holds no actor: every operation names its own.
    pub fn unlock_as(&self, passphrase: &[u8], actor: &crate::audit::Actor) -> Result<Node> {
        self.require_initialized()?;
        let file = fs::read(self.keystore_path()).map_err(|e| {
            NodeError::Io(format!(
                "cannot read keystore {}: {e}",
                self.keystore_path().display()
            ))
        })?;
        let secrets = match keystore::open(&file, passphrase) {
            Ok(s) => s,
            Err(casesync_crypto::CryptoError::WrongPassphrase) => {
                self.note_failed_unlock(actor, "wrong passphrase");
                return Err(NodeError::Refused(
                    "wrong passphrase: the keystore did not unlock (check CASESYNC_PASSPHRASE)"
                        .into(),
                ));
            }
            Err(other) => return Err(NodeError::Crypto(other)),
        };
        let store = Store::open(&self.db_path())?;
        let card = crate::files::stored_card(store.conn())?;
        if card.identity != secrets.node.public() {
            return Err(NodeError::Integrity(
                "the node card in the store does not match the keystore: the data dir was mixed up"
                    .into(),
            ));
        }
        let node = Node {
            dir: self.clone(),
            storage: StorageKeys::new(&secrets.storage),
            keys: secrets.node,
            card,
            store,
            cases: Default::default(),
            views: Default::default(),
            digests: Default::default(),
        };
        crate::audit::fold_pending(&node, actor)?;
        crate::log::notice_copied_store(&node, actor)?;
        crate::search::fill_index(&node)?;
        Ok(node)
    }
}

/// The least a keystore passphrase must be: it is all that protects the
/// node's keys on a stolen disk, against guesses at the KDF's cost.
pub fn check_passphrase(p: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(p);
    let chars = text.chars().count();
    let distinct: std::collections::BTreeSet<char> = text.chars().collect();
    if chars < 12 || distinct.len() < 5 {
        return Err(NodeError::Refused(
            "the passphrase is too weak: use at least 12 characters, not one or two repeated (four or more unrelated words work well); it is all that protects this node's keys on a stolen disk".into(),
        ));
    }
    Ok(())
}
