-- The federation trust registry: admin-signed statements, stored as received.
CREATE TABLE registry_ops (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    bytes BLOB NOT NULL
);
