-- The audit log (docs/design.md, "Audit"): append-only, hash-chained, signed by the
-- node key, each entry sealed with the storage key. `case_index` is a blind
-- index of the case, for listing one case's entries without opening the rest.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    case_index BLOB,
    sealed BLOB NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX audit_by_case ON audit_log (case_index, seq);

-- No command edits or deletes the audit log; these stop any code path that
-- tried (someone with the sqlite3 tool can drop them: `audit verify` catches that).
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Events recorded before the keystore is unlocked (a wrong passphrase): they
-- cannot be sealed or signed yet, so they wait here in the clear (they name no
-- case data) and join the chain at the next unlock.
CREATE TABLE audit_pending (
    id INTEGER PRIMARY KEY,
    entry TEXT NOT NULL
);
