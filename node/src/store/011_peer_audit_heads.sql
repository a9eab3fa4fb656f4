-- The latest signed audit head each peer has shown this node (issue 14,
-- finding 10): a peer whose audit log later shows an earlier head, or another
-- entry at the same place, rewound or rewrote it. Public: a PeerId's key, a
-- count and a hash, signed by that peer.
CREATE TABLE peer_audit_heads (
    peer BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    head BLOB NOT NULL
) WITHOUT ROWID;
