-- The search index clustered by term (issue 17): a lookup reads one
-- contiguous range of the table and stops at its cap, instead of one row
-- lookup per hit after gathering every hit to group them (at 1,000,000
-- records a common word cost 0.4 s that way). A record is filed under a
-- term once.
CREATE TABLE search_terms_new (
    term BLOB NOT NULL,
    record_ref INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    weight INTEGER NOT NULL,
    PRIMARY KEY (term, record_ref)
) WITHOUT ROWID;
INSERT INTO search_terms_new (term, record_ref, case_ref, weight)
    SELECT term, record_ref, MIN(case_ref), MAX(weight) FROM search_terms GROUP BY term, record_ref;
DROP TABLE search_terms;
ALTER TABLE search_terms_new RENAME TO search_terms;
CREATE INDEX search_terms_by_record ON search_terms (record_ref);
