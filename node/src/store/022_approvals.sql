-- Four-eyes (issue 19): operations this node's policy lets one person only
-- ask for, waiting for a second person. What the request would do is
-- sealed (it may carry a reason that names someone).
CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    action TEXT NOT NULL,
    sealed BLOB NOT NULL,
    requester TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    -- pending, approved, denied
    state TEXT NOT NULL DEFAULT 'pending',
    decided_by TEXT,
    decided_ms INTEGER
);
