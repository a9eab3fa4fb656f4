-- Proofs of equivocation: two entries signed by one author with the same
-- (case, author, seq) and different content. The author's log in that case is
-- frozen before `seq`: entries from `seq` on are not accepted, whoever sends them.
CREATE TABLE equivocations (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    -- Both signed entries exactly as received: the proof, forwarded to peers.
    entry_a BLOB NOT NULL,
    entry_b BLOB NOT NULL,
    UNIQUE (case_ref, author)
);
