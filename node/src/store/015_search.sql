-- The search index (issue 17): for each record, keyed hashes (a blind index
-- under a storage subkey) of its selectors in canonical form and of the words
-- and word prefixes of its text. No plaintext: a term is 16 bytes of
-- HMAC-SHA256. `weight`: 3 a selector, 2 a whole word, 1 a prefix.
CREATE TABLE search_terms (
    record_ref INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    term BLOB NOT NULL,
    weight INTEGER NOT NULL
);
CREATE INDEX search_terms_by_term ON search_terms (term);
CREATE INDEX search_terms_by_record ON search_terms (record_ref);
