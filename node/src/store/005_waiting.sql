-- Entries that arrived before what they build on (their author's previous entry
-- or an entry in their view): signature-checked and from a writer of the case,
-- kept until the gap is filled ("gaps wait"), and bounded per source.
CREATE TABLE waiting_entries (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    hash BLOB NOT NULL UNIQUE,
    -- The signed, sealed entry exactly as received.
    bytes BLOB NOT NULL,
    -- Who sent it: a PeerId, or "bundle from PEER_ID".
    source TEXT NOT NULL
);
CREATE INDEX waiting_by_case ON waiting_entries (case_ref);
CREATE INDEX waiting_by_source ON waiting_entries (source);
