-- Evidence files this node knows of (issue 18): each evidence record's file
-- root, its case, and once the manifest is here, its pieces and which are
-- here. What the node may serve to members, and what it still fetches.
-- `want`: a person asked to open the file (fetched even under --fetch on-open).
-- `stamp` in meta (`evidence_stamp`): the last entry whose records were looked at.
CREATE TABLE evidence_files (
    root BLOB PRIMARY KEY,
    record_ref INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    pieces INTEGER,
    missing INTEGER,
    want INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE evidence_pieces (
    root BLOB NOT NULL REFERENCES evidence_files(root) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    have INTEGER NOT NULL,
    PRIMARY KEY (root, idx)
) WITHOUT ROWID;
CREATE INDEX evidence_pieces_by_hash ON evidence_pieces (hash);
