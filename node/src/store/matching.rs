//! The deconfliction set (`match_set`) and each partner's daily quota.

use super::*;

/// The last entry stored: what the set was filled up to.
pub fn last_entry_id(c: &Connection) -> Result<i64> {
    Ok(query_one(
        c,
        "SELECT IFNULL(MAX(id), 0) FROM entries",
        [],
        |r| r.get(0),
    )?)
}

/// One record an entry changed or made: the link a walk over changed
/// records stands at, with what tells whether the record is of interest
/// before its view is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedRecord {
    pub entry: i64,
    pub row: i64,
    pub case_ref: i64,
    pub type_index: Vec<u8>,
}

/// Where a walk over changed records stands: the last (entry, record) link
/// it saw. A walk of the records changed after entry `since` starts at
/// `(since, i64::MAX)`.
pub type ChangeCursor = (i64, i64);

const CHANGED_BETWEEN: &str = "SELECT re.entry_ref, re.record_ref, r.case_ref, r.type_index \
     FROM record_entries re JOIN records r ON r.id = re.record_ref \
     WHERE (re.entry_ref, re.record_ref) > (?1, ?2) AND re.entry_ref <= ?3 \
     ORDER BY re.entry_ref, re.record_ref LIMIT ?4";

/// The next `limit` links of records to the entries that changed or made
/// them, after `cursor` and up to entry `upto`, in entry order: a record
/// changed by several of those entries comes once for each. Each page reads
/// only its own links (the index of migration 027), so walking every record
/// of a store costs one pass, not a pass per page.
pub fn records_changed_between(
    c: &Connection,
    cursor: ChangeCursor,
    upto: i64,
    limit: i64,
) -> Result<Vec<ChangedRecord>> {
    let mut s = c.prepare_cached(CHANGED_BETWEEN)?;
    Ok(s.query_map(params![cursor.0, cursor.1, upto, limit], |r| {
        Ok(ChangedRecord {
            entry: r.get(0)?,
            row: r.get(1)?,
            case_ref: r.get(2)?,
            type_index: r.get(3)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// How many records entries stored after `entry_id` changed or made.
pub fn count_records_changed_after(c: &Connection, entry_id: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(DISTINCT record_ref) FROM record_entries WHERE entry_ref > ?1",
        [entry_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Replaces what a record contributes to the set.
pub fn replace_match_rows(
    c: &Connection,
    record_ref: i64,
    case_ref: i64,
    rows: &[([u8; 16], Vec<u8>)],
) -> Result<()> {
    exec(
        c,
        "DELETE FROM match_set WHERE record_ref = ?1",
        [record_ref],
    )?;
    let mut s = c.prepare_cached(
        "INSERT INTO match_set (record_ref, case_ref, tag, hit) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (tag, hit) in rows {
        s.execute(params![record_ref, case_ref, &tag[..], hit])?;
    }
    Ok(())
}

/// One row of the set as a page lists it.
pub struct MatchRow {
    pub tag: Vec<u8>,
    pub hit: Vec<u8>,
    pub case_ref: i64,
    pub record_ref: i64,
    /// The record has a releasable_to list (its view is checked per asker).
    pub restricted: bool,
}

/// Rows with a tag after `after`, in tag order: at least `limit` (unless
/// the set ends), and never a tag cut between two pages. Also whether more
/// follow.
pub fn match_page(c: &Connection, after: &[u8], limit: usize) -> Result<(Vec<MatchRow>, bool)> {
    let mut s = c.prepare_cached(
        "SELECT m.tag, m.hit, m.case_ref, m.record_ref, r.restricted \
         FROM match_set m JOIN records r ON r.id = m.record_ref WHERE m.tag > ?1 ORDER BY m.tag, m.case_ref",
    )?;
    let mut rows = s.query([after])?;
    let mut out: Vec<MatchRow> = Vec::new();
    while let Some(r) = rows.next()? {
        let tag: Vec<u8> = r.get(0)?;
        if out.len() >= limit && out.last().is_some_and(|l| l.tag != tag) {
            return Ok((out, true));
        }
        out.push(MatchRow {
            tag,
            hit: r.get(1)?,
            case_ref: r.get(2)?,
            record_ref: r.get(3)?,
            restricted: r.get::<_, i64>(4)? != 0,
        });
    }
    Ok((out, false))
}

/// Rows in the set, in all.
pub fn match_set_size(c: &Connection) -> Result<u64> {
    Ok(query_one(c, "SELECT COUNT(*) FROM match_set", [], |r| {
        r.get::<_, i64>(0)
    })? as u64)
}

/// `peer`'s count today (`day`), or 0 if its last use was another day.
pub fn match_quota_used(c: &Connection, peer: &str, day: i64) -> Result<u64> {
    let used: Option<(i64, i64)> = query_one(
        c,
        "SELECT day, used FROM match_quota WHERE peer = ?1",
        [peer],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?;
    Ok(match used {
        Some((d, n)) if d == day => n.max(0) as u64,
        _ => 0,
    })
}

pub fn set_match_quota_used(c: &Connection, peer: &str, day: i64, used: u64) -> Result<()> {
    exec(
        c,
        "INSERT OR REPLACE INTO match_quota (peer, day, used) VALUES (?1, ?2, ?3)",
        params![peer, day, used as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 entries and 30 records; record r is linked to the entries whose
    /// number is a multiple of (r % 7) + 1 and to the entry r + 5, so
    /// records share entries, entries carry many records, and a record
    /// comes in entries far apart.
    fn linked_store(name: &str) -> (Store, Vec<(i64, i64)>) {
        let dir = std::env::temp_dir().join(format!("casesync-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir.join("db.sqlite")).unwrap();
        let c = s.conn();
        c.execute_batch("INSERT INTO cases (id, case_id, sealed_meta) VALUES (1, x'01', x'00');")
            .unwrap();
        for e in 1..=40i64 {
            c.execute(
                "INSERT INTO entries (id, case_ref, author, seq, hash, bytes) VALUES (?1, 1, x'aa', ?1, x'00', x'00')",
                [e],
            )
            .unwrap();
        }
        let mut links = Vec::new();
        for r in 1..=30i64 {
            c.execute(
                "INSERT INTO records (id, case_ref, rid_index, type_index, snapshot, view) VALUES (?1, 1, ?2, x'98', NULL, x'97')",
                params![r, r.to_be_bytes().to_vec()],
            )
            .unwrap();
            for e in 1..=40i64 {
                if e % (r % 7 + 1) == 0 || e == r + 5 {
                    c.execute(
                        "INSERT INTO record_entries (record_ref, entry_ref) VALUES (?1, ?2)",
                        [r, e],
                    )
                    .unwrap();
                    links.push((e, r));
                }
            }
        }
        links.sort();
        (s, links)
    }

    /// Walking the records changed after any mark, in pages of any size,
    /// gives every link after the mark and up to the bound once, in entry
    /// order, and nothing else.
    #[test]
    fn a_walk_of_changed_records_gives_every_link_once_in_order() {
        let (s, links) = linked_store("changed-walk");
        let c = s.conn();
        for since in [0, 1, 6, 17, 39, 40] {
            for upto in [since, since + 1, 25, 40] {
                let want: Vec<(i64, i64)> = links
                    .iter()
                    .copied()
                    .filter(|(e, _)| *e > since && *e <= upto)
                    .collect();
                for page in [1, 2, 7, 1000] {
                    let (mut cursor, mut got) = ((since, i64::MAX), Vec::new());
                    loop {
                        let p = records_changed_between(c, cursor, upto, page).unwrap();
                        assert!(p.len() <= page as usize);
                        let Some(last) = p.last() else { break };
                        cursor = (last.entry, last.row);
                        for l in p {
                            assert_eq!((l.case_ref, l.type_index.as_slice()), (1, &[0x98u8][..]));
                            got.push((l.entry, l.row));
                        }
                    }
                    assert_eq!(got, want, "since {since}, upto {upto}, pages of {page}");
                }
            }
        }
    }

    /// Each page starts where the last one stopped in the index by entry:
    /// without it (or with a plan that reads record_entries whole) every
    /// page of a walk over a large store costs the whole table.
    #[test]
    fn a_page_of_changed_records_is_read_from_the_index_by_entry() {
        let (s, _) = linked_store("changed-plan");
        let plan: Vec<String> = s
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {CHANGED_BETWEEN}"))
            .unwrap()
            .query_map([1, 2, 3, 4], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("record_entries_by_entry ((entry_ref,record_ref)>(?,?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
