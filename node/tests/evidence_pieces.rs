//! Evidence pieces a peer sends are checked before they are stored: bytes
//! that do not hash to the piece asked for are refused and logged, and
//! nothing of them is kept.

mod common;
use common::{PASS, temp_root};

use casesync_crypto::keystore::KdfParams;
use casesync_node::audit::{self, Actor, Filter};
use casesync_node::{DataDir, evidence};

#[test]
fn a_piece_that_does_not_match_its_hash_is_refused_and_logged() {
    let root = temp_root("evidence-pieces");
    let node = DataDir::new(root.join("a"))
        .init_with(
            "a",
            "Unit",
            "GB",
            PASS.as_bytes(),
            KdfParams::with_memory_mib(19).unwrap(),
        )
        .unwrap();
    let actor = Actor::new(Some("serve"), None);
    let peer: libp2p::PeerId = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let asked = casesync_crypto::hash::sha256(b"the piece that was asked for");
    let got = [serde_bytes::ByteBuf::from(b"something else".to_vec())];
    let (stored, refused) = evidence::store_fetched(&node, &actor, &peer, &[asked], &got).unwrap();
    assert_eq!((stored, refused), (0, 1));
    let piece = root
        .join("a/pieces")
        .join(&asked.to_hex()[..2])
        .join(asked.to_hex());
    assert!(!piece.exists());
    let log = audit::read(&node, &Filter::default()).unwrap();
    assert!(
        log.iter().any(|e| e.action == "sync.reject"
            && e.peer.as_deref() == Some(peer.to_base58().as_str())
            && e.detail
                .as_deref()
                .unwrap_or_default()
                .contains("do not match")),
        "{log:?}"
    );
    // The right bytes for it are kept.
    let good = [serde_bytes::ByteBuf::from(
        b"the piece that was asked for".to_vec(),
    )];
    assert_eq!(
        evidence::store_fetched(&node, &actor, &peer, &[asked], &good).unwrap(),
        (1, 0)
    );
    assert!(piece.exists());
}

#[test]
fn destroying_a_file_leaves_nothing_readable_and_frees_its_disk() {
    let root = temp_root("evidence-destroy");
    let dir = root.join("a");
    common::casesync(
        &dir,
        &["init", "--name", "a", "--org", "Unit", "--country", "GB"],
    );
    let case = common::casesync(&dir, &["case", "create", "--title", "Op Lantern"]);
    let file = root.join("statement.pdf");
    std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
    let id = common::casesync(&dir, &["evidence", "add", &case, file.to_str().unwrap()]);
    let pieces = |d: &std::path::Path| {
        walk(&d.join("pieces"))
            .into_iter()
            .filter(|p| p.file_name().unwrap().len() == 64)
            .count()
    };
    assert_eq!(pieces(&dir), 4);
    let node = DataDir::new(&dir).unlock(PASS.as_bytes()).unwrap();
    let gone = evidence::destroy_file(&node, &id).unwrap();
    assert_eq!(gone.pieces, 3);
    assert!(gone.bytes > 3 << 20);
    assert_eq!(pieces(&dir), 0);
    let actor = Actor::new(Some("tester"), None);
    let err = evidence::verify(&node, &actor, &id)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not on this node"), "{err}");
    // Nothing is left to fetch: the file is not wanted from peers again.
    assert!(
        casesync_node::store::evidence_wanted(node.store.conn(), false, 100)
            .unwrap()
            .is_empty()
    );
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(d) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
