-- What each record's view and snapshot were built from: SHA-256 over the
-- hashes of the entries linked to the record (`log::record_log_digest`). It
-- is in the associated data of both sealed rows, so an older view copied back
-- does not open with today's digest, and `log verify` (keyless) recomputes it
-- from the links, so an older view copied back with its digest is named.
-- Empty: a row written before this column; `log verify` names it.
ALTER TABLE records ADD COLUMN log_digest BLOB NOT NULL DEFAULT x'';
