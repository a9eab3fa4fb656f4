-- Erasures this node has carried out (issue 19): per case and record tag,
-- the erasure operation and when its content was destroyed here. An
-- erasure in the case's control log with no row here is still to do (a
-- kill between the two is finished at the next look); a row here is what
-- the receipt this node signs says.
CREATE TABLE erasures_done (
    case_ref INTEGER NOT NULL REFERENCES cases(id),
    tag BLOB NOT NULL,
    op BLOB NOT NULL,
    done_ms INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    PRIMARY KEY (case_ref, tag)
) WITHOUT ROWID;
