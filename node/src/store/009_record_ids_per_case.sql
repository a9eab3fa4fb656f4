-- A record id is unique within its case, not across cases (issue 14, finding
-- 13): a member of case B that learns a record id of case A must not be able
-- to claim it in B and so block A's record on a node in both cases.
-- SQLite cannot change a UNIQUE constraint in place: the table is rebuilt
-- (foreign keys are off while migrations run and checked after each).
CREATE TABLE records_new (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    -- HMAC of the record id (blind index); unique within the case.
    rid_index BLOB NOT NULL,
    -- HMAC of case id and record type, for `record list --type`.
    type_index BLOB NOT NULL,
    -- Sealed Automerge snapshot; NULL while the record has a single change
    -- (its entry already holds it).
    snapshot BLOB,
    -- Sealed JSON view of the current fields, for listing without Automerge.
    view BLOB NOT NULL,
    UNIQUE (case_ref, rid_index)
);
INSERT INTO records_new (id, case_ref, rid_index, type_index, snapshot, view)
    SELECT id, case_ref, rid_index, type_index, snapshot, view FROM records;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE INDEX records_by_case_type ON records (case_ref, type_index);
CREATE INDEX records_by_case ON records (case_ref);
-- `record show ID` finds a record by id alone.
CREATE INDEX records_by_rid ON records (rid_index);
