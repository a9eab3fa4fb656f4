-- Listing a case's records in id order without sorting them: an index on
-- case_ref holds the rowid after it, so `WHERE case_ref = ? ORDER BY id` walks
-- it in order (with only records_by_case_type, 100,000 views were sorted,
-- spilling to temporary files).
CREATE INDEX records_by_case ON records (case_ref);
