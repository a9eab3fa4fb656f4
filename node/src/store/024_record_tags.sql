-- A record's tag in entries (`schema::entry::record_tag`), kept with its
-- row so a node can find the record an H2 declaration names and check
-- that the declaring node made it. Rows stored before have none.
ALTER TABLE records ADD COLUMN tag BLOB;
CREATE INDEX records_by_tag ON records (case_ref, tag);
