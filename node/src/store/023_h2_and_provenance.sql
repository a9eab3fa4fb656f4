-- Provenance (issue 19). On a node holding another agency's records: when
-- each arrived here and how often people here consulted it (per person,
-- under a pseudonym this node keys), until reported to the record's
-- originator in a signed report. On the originator: what its partners
-- reported, per record and holder, and each report as received (sealed:
-- it names record ids).
CREATE TABLE provenance_out (
    record_ref INTEGER PRIMARY KEY REFERENCES records(id) ON DELETE CASCADE,
    originator BLOB NOT NULL,
    stored_ms INTEGER NOT NULL,
    reads INTEGER NOT NULL DEFAULT 0,
    -- JSON object: reader pseudonym -> reads
    readers TEXT NOT NULL DEFAULT '{}',
    -- bumped at each change; the originator acknowledged `reported`
    version INTEGER NOT NULL DEFAULT 1,
    reported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX provenance_out_due ON provenance_out (originator, reported, version);

CREATE TABLE provenance_reports (
    id INTEGER PRIMARY KEY,
    holder BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    hash BLOB NOT NULL,
    sealed BLOB NOT NULL
);

CREATE TABLE provenance_in (
    case_ref INTEGER NOT NULL REFERENCES cases(id) ON DELETE CASCADE,
    rid_index BLOB NOT NULL,
    holder BLOB NOT NULL,
    stored_ms INTEGER NOT NULL,
    reads INTEGER NOT NULL,
    readers INTEGER NOT NULL,
    report_ref INTEGER NOT NULL REFERENCES provenance_reports(id),
    PRIMARY KEY (case_ref, rid_index, holder)
);

-- Parts of entries held here without their bytes because the record is
-- under H2 and its originator had not consented that this node hold it:
-- asked for again once it has (`ingest`, `sync`).
CREATE TABLE withheld_parts (
    entry_ref INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    tag BLOB NOT NULL,
    PRIMARY KEY (entry_ref, tag)
);
