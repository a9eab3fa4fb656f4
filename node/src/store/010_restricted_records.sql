-- Whether a record has a releasable_to list (issue 14, finding 3b): sync and
-- bundle export open the views of these records only, to withhold them from a
-- node outside the list. Records stored before this schema are marked as
-- restricted (their views are opened too) rather than guessed.
ALTER TABLE records ADD COLUMN restricted INTEGER NOT NULL DEFAULT 1;
CREATE INDEX records_restricted ON records (case_ref) WHERE restricted = 1;
