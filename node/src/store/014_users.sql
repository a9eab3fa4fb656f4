-- The people who use this node through its web front end (issue 16), their
-- sessions and the cases assigned to them. Passwords are Argon2id PHC strings;
-- sessions and their CSRF tokens are kept as SHA-256 of the token only, so a
-- copy of the store opens no session.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('analyst', 'supervisor', 'admin')),
    password TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    -- Failed logins since the last success, and until when the account is
    -- locked (ms since the epoch; 0: not locked).
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE TABLE case_assignments (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    PRIMARY KEY (user_id, case_ref)
);
