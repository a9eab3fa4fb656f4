-- Smaller record rows (issue 22): at 10,000 records the row and its five
-- indexes took about 500 bytes per record besides the view.
--
-- - One index finds a record by id, alone or within its case: the UNIQUE
--   constraint is on (rid_index, case_ref), which answers both `record show
--   ID` (rid_index alone) and a lookup in a case, and keeps a record id
--   unique within its case (migration 009). records_by_rid goes.
-- - The type index keeps 16 bytes of its keyed hash (`sealing::type_index`):
--   it tells apart the dozen record types of one case, never anything an
--   attacker chooses, so 128 bits are far more than it needs.
-- - The view is kept compact (`schema::stored_view`), no longer JSON.
--
-- The table is rebuilt (SQLite cannot change a constraint in place); row
-- ids are kept, so every reference to a record and the search index stay.
CREATE TABLE records_new (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    -- HMAC of the record id (blind index); unique within the case.
    rid_index BLOB NOT NULL,
    -- 16 bytes of an HMAC of case id and record type, for `record list --type`.
    type_index BLOB NOT NULL,
    -- Sealed Automerge snapshot; NULL while the record has a single change
    -- (its entry already holds it).
    snapshot BLOB,
    -- Sealed view of the current fields (`schema::stored_view`), for listing
    -- without Automerge.
    view BLOB NOT NULL,
    restricted INTEGER NOT NULL DEFAULT 1,
    log_digest BLOB NOT NULL DEFAULT x'',
    tag BLOB,
    UNIQUE (rid_index, case_ref)
);
INSERT INTO records_new (id, case_ref, rid_index, type_index, snapshot, view, restricted, log_digest, tag)
    SELECT id, case_ref, rid_index, substr(type_index, 1, 16), snapshot, view, restricted, log_digest, tag
    FROM records;
DROP TABLE records;
ALTER TABLE records_new RENAME TO records;
CREATE INDEX records_by_case_type ON records (case_ref, type_index);
CREATE INDEX records_by_case ON records (case_ref);
CREATE INDEX records_restricted ON records (case_ref) WHERE restricted = 1;
CREATE INDEX records_by_tag ON records (case_ref, tag);
