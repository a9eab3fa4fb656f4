//! The search index: keyed hashes of each record's selectors and words, in
//! a contentless FTS5 table (migration 025 says why). A record's row id is
//! its document id; its terms are its text.

use super::*;

/// Bytes of a keyed hash kept per term: 80 bits, so that two of the
/// hundreds of millions of terms a large node holds are not mistaken for one.
const TERM_BYTES: usize = 10;

/// Lower-case hex of the kept bytes.
fn token(term: &[u8; 16]) -> String {
    casesync_crypto::hash::hex(&term[..TERM_BYTES])
}

fn text(terms: &[[u8; 16]]) -> String {
    terms.iter().map(token).collect::<Vec<_>>().join(" ")
}

/// Files a record not filed before under `terms`. Filing one twice would
/// list it twice: a record already filed is taken out first
/// ([`unfile_search_terms`]).
pub fn file_search_terms(c: &Connection, record_ref: i64, terms: &[[u8; 16]]) -> Result<()> {
    c.prepare_cached("INSERT INTO search_index (rowid, terms) VALUES (?1, ?2)")?
        .execute(params![record_ref, text(terms)])?;
    Ok(())
}

/// Takes a record out of the index. `terms` must be those it was filed
/// under (the index keeps no copy of them); secure-delete removes them from
/// the index pages at once.
pub fn unfile_search_terms(c: &Connection, record_ref: i64, terms: &[[u8; 16]]) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO search_index (search_index, rowid, terms) VALUES ('delete', ?1, ?2)",
    )?
    .execute(params![record_ref, text(terms)])?;
    Ok(())
}

/// The record rows filed under `term`, at most `limit`, lowest first.
pub fn records_with_term(c: &Connection, term: &[u8; 16], limit: i64) -> Result<Vec<i64>> {
    let mut s =
        c.prepare_cached("SELECT rowid FROM search_index WHERE search_index MATCH ?1 LIMIT ?2")?;
    let rows = s
        .query_map(params![format!("\"{}\"", token(term)), limit], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The case row of record row `row`, if it is still held.
pub fn case_of_record(c: &Connection, row: i64) -> Result<Option<i64>> {
    Ok(query_one(
        c,
        "SELECT case_ref FROM records WHERE id = ?1",
        [row],
        |r| r.get(0),
    )
    .optional()?)
}

/// Records after row `after`, in row order, at most `limit`: for filing
/// every record again after the index changed.
pub fn records_after(c: &Connection, after: i64, limit: i64) -> Result<Vec<RecordRow>> {
    let mut s = c.prepare_cached(
        "SELECT id, case_ref, snapshot, view, rid_index, log_digest FROM records \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    Ok(s.query_map(params![after, limit], record_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Empties the index (to file every record again).
pub fn clear_search_index(c: &Connection) -> Result<()> {
    exec(
        c,
        "INSERT INTO search_index (search_index) VALUES ('delete-all')",
        [],
    )?;
    Ok(())
}

/// FTS5's own consistency check of the index (for tests and `log verify`).
pub fn check_search_index(c: &Connection) -> Result<()> {
    exec(
        c,
        "INSERT INTO search_index (search_index) VALUES ('integrity-check')",
        [],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> Store {
        let dir = std::env::temp_dir().join(format!("casesync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Store::open(&dir.join("db.sqlite")).unwrap()
    }

    fn term(n: u8) -> [u8; 16] {
        [n; 16]
    }

    /// Filing, finding, the cap, taking out (no term of the record left),
    /// and emptying.
    #[test]
    fn a_record_taken_out_leaves_no_term_behind() {
        let s = store("search-index");
        let c = s.conn();
        c.execute_batch(
            "INSERT INTO cases (id, case_id, sealed_meta) VALUES (1, x'01', x'00');
             INSERT INTO records (id, case_ref, rid_index, type_index, snapshot, view) VALUES
               (1, 1, x'91', x'98', NULL, x'97'), (2, 1, x'92', x'98', NULL, x'97');",
        )
        .unwrap();
        file_search_terms(c, 1, &[term(1), term(2)]).unwrap();
        file_search_terms(c, 2, &[term(1), term(3)]).unwrap();
        assert_eq!(case_of_record(c, 2).unwrap(), Some(1));
        assert_eq!(case_of_record(c, 3).unwrap(), None);
        assert_eq!(records_with_term(c, &term(1), 10).unwrap(), [1, 2]);
        assert_eq!(records_with_term(c, &term(1), 1).unwrap(), [1]);
        check_search_index(c).unwrap();
        unfile_search_terms(c, 1, &[term(1), term(2)]).unwrap();
        assert_eq!(records_with_term(c, &term(1), 10).unwrap(), [2]);
        assert!(records_with_term(c, &term(2), 10).unwrap().is_empty());
        check_search_index(c).unwrap();
        // Filed again under other terms, as an edit does.
        unfile_search_terms(c, 2, &[term(1), term(3)]).unwrap();
        file_search_terms(c, 2, &[term(4)]).unwrap();
        for gone in [1, 2, 3] {
            assert!(records_with_term(c, &term(gone), 10).unwrap().is_empty());
        }
        assert_eq!(records_with_term(c, &term(4), 10).unwrap(), [2]);
        check_search_index(c).unwrap();
        clear_search_index(c).unwrap();
        check_search_index(c).unwrap();
        assert!(records_with_term(c, &term(4), 10).unwrap().is_empty());
    }
}
