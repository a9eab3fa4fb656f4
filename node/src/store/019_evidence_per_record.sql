-- Evidence files are known per (root, record), not per root alone (issue 18,
-- review): any member can write a record naming any root, another case's
-- included. Keyed by root alone, the first record to name a root owned it:
-- a member of case X who learnt a root of case Y could claim Y's file for X
-- on a node that saw X's record first, and stop the node's evidence sync
-- with a manifest that names another record.
-- `checked`: 0 the manifest is not here yet; 1 the manifest names this
-- record (the only row a node fetches pieces for or serves); 2 it names
-- another record (logged, never fetched or served).
CREATE TABLE evidence_files_by_record (
    root BLOB NOT NULL,
    record_ref INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    checked INTEGER NOT NULL DEFAULT 0,
    pieces INTEGER,
    missing INTEGER,
    want INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (root, record_ref)
) WITHOUT ROWID;
INSERT INTO evidence_files_by_record (root, record_ref, case_ref, checked, pieces, missing, want)
    SELECT root, record_ref, case_ref, CASE WHEN pieces IS NULL THEN 0 ELSE 1 END, pieces, missing, want
    FROM evidence_files;
-- A manifest's pieces, by its root: the same for every record naming it.
CREATE TABLE evidence_manifest_pieces (
    root BLOB NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    have INTEGER NOT NULL,
    PRIMARY KEY (root, idx)
) WITHOUT ROWID;
INSERT INTO evidence_manifest_pieces SELECT root, idx, hash, have FROM evidence_pieces;
DROP TABLE evidence_pieces;
DROP TABLE evidence_files;
ALTER TABLE evidence_files_by_record RENAME TO evidence_files;
ALTER TABLE evidence_manifest_pieces RENAME TO evidence_pieces;
CREATE INDEX evidence_pieces_by_hash ON evidence_pieces (hash);
CREATE INDEX evidence_files_by_record_ref ON evidence_files (record_ref);
