-- Retention review (issue 19), this node's own: each agency is the
-- controller of its data and reviews it on its own schedule.
-- A case's MoPI retention group (3 unless set here).
CREATE TABLE case_retention (
    case_ref INTEGER PRIMARY KEY REFERENCES cases(id),
    grp INTEGER NOT NULL CHECK (grp BETWEEN 1 AND 3)
);
-- A record's last review: retained until `next_ms` (the reason is in the
-- audit log, sealed).
CREATE TABLE review_decisions (
    record_ref INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
    next_ms INTEGER NOT NULL,
    decided_ms INTEGER NOT NULL
);
