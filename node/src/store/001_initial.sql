-- casesync store, schema version 1.
-- Nothing here is plaintext case content: entries are sealed with case keys,
-- snapshots, views, case metadata and epoch keys with the node storage key, and
-- record lookups go through keyed hashes (blind indexes).

CREATE TABLE meta (
    -- Public node facts (the node card). Never secrets.
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    -- The case id is envelope metadata: it is in every entry header anyway.
    case_id BLOB NOT NULL UNIQUE,
    -- Title and policy, sealed with the storage key (AAD: table, case id).
    sealed_meta BLOB NOT NULL
);

CREATE TABLE control_ops (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    hash BLOB NOT NULL UNIQUE,
    -- The signed operation exactly as written or received.
    bytes BLOB NOT NULL
);

CREATE TABLE epoch_keys (
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    epoch BLOB NOT NULL,
    -- The unwrapped case key, sealed with the storage key (AAD: table, case, epoch).
    sealed_key BLOB NOT NULL,
    PRIMARY KEY (case_ref, epoch)
) WITHOUT ROWID;

CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    -- The signed, sealed entry exactly as written or received.
    bytes BLOB NOT NULL,
    UNIQUE (case_ref, author, seq)
);

CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    -- HMAC of the record id (blind index).
    rid_index BLOB NOT NULL UNIQUE,
    -- HMAC of case id and record type, for `record list --type`.
    type_index BLOB NOT NULL,
    -- Sealed Automerge snapshot; NULL while the record has a single change
    -- (its entry already holds it).
    snapshot BLOB,
    -- Sealed JSON view of the current fields, for listing without Automerge.
    view BLOB NOT NULL
);
CREATE INDEX records_by_case_type ON records (case_ref, type_index);

CREATE TABLE record_entries (
    -- Which entries carry changes of which record: to rebuild a record and to
    -- re-verify its history whenever it is shown.
    record_ref INTEGER NOT NULL REFERENCES records(id),
    entry_ref INTEGER NOT NULL REFERENCES entries(id),
    PRIMARY KEY (record_ref, entry_ref)
) WITHOUT ROWID;
