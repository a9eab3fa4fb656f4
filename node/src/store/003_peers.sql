-- Peers this node dials: addresses given with `peer add` or `--peer`.
CREATE TABLE peers (
    id INTEGER PRIMARY KEY,
    addr TEXT NOT NULL UNIQUE,
    -- RFC 3339 time of the last successful sync with it, for `status`.
    last_sync TEXT
);
