-- Deconfliction (issue 17): what this node answers a partner's private set
-- intersection with. For each selector of each record, the tag of F(k, s)
-- under the node's OPRF key (public, useless without k) and the case's
-- opaque handle sealed under a key only F(k, s) gives: no plaintext, and
-- nothing a partner can read without holding the selector. Filled from the
-- records lazily (`match_stamp` in meta: the last entry read).
CREATE TABLE match_set (
    record_ref INTEGER NOT NULL REFERENCES records(id) ON DELETE CASCADE,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    tag BLOB NOT NULL,
    hit BLOB NOT NULL
);
CREATE INDEX match_set_by_tag ON match_set (tag);
CREATE INDEX match_set_by_record ON match_set (record_ref);
-- Selectors each partner had evaluated today (the rate limit survives a
-- restart). `day`: days since 1970-01-01 (UTC).
CREATE TABLE match_quota (
    peer TEXT PRIMARY KEY,
    day INTEGER NOT NULL,
    used INTEGER NOT NULL
);
