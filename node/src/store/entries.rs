//! Log entries, proofs of equivocation, and entries waiting for what they build on.

use super::*;

pub struct StoredEntry {
    pub row: i64,
    pub case_ref: i64,
    pub author: Vec<u8>,
    pub seq: i64,
    pub hash: Hash,
    pub bytes: Vec<u8>,
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEntry> {
    Ok(StoredEntry {
        row: r.get(0)?,
        case_ref: r.get(1)?,
        author: r.get(2)?,
        seq: r.get(3)?,
        hash: hash_of(r.get(4)?),
        bytes: r.get(5)?,
    })
}

const ENTRY_COLS: &str = "e.id, e.case_ref, e.author, e.seq, e.hash, e.bytes";

pub fn insert_entry(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    hash: &Hash,
    bytes: &[u8],
) -> Result<i64> {
    exec(
        c,
        "INSERT INTO entries (case_ref, author, seq, hash, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![case_ref, &author[..], seq as i64, &hash.0[..], bytes],
    )?;
    Ok(c.last_insert_rowid())
}

/// The last (seq, hash) of one author's log in a case.
pub fn log_head(c: &Connection, case_ref: i64, author: &[u8; 32]) -> Result<Option<(u64, Hash)>> {
    Ok(c
        .query_row(
            "SELECT seq, hash FROM entries WHERE case_ref = ?1 AND author = ?2 ORDER BY seq DESC LIMIT 1",
            params![case_ref, &author[..]],
            |r| Ok((r.get::<_, i64>(0)? as u64, hash_of(r.get(1)?))),
        )
        .optional()?)
}

/// The last (seq, hash) of every chain of one author's log in a case.
pub fn chain_heads(c: &Connection, case_ref: i64, author: &[u8; 32]) -> Result<Vec<(u64, Hash)>> {
    let mut s = c.prepare_cached(
        "SELECT MAX(seq), hash FROM entries WHERE case_ref = ?1 AND author = ?2 \
         GROUP BY seq >> 32 ORDER BY MAX(seq)",
    )?;
    let rows = s
        .query_map(params![case_ref, &author[..]], |r| {
            Ok((r.get::<_, i64>(0)? as u64, hash_of(r.get(1)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The seq of `author`'s entry with `hash` in a case, if held (where a new
/// chain of its log starts from).
pub fn seq_of_entry(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    hash: &Hash,
) -> Result<Option<u64>> {
    Ok(query_one(
        c,
        "SELECT seq FROM entries WHERE case_ref = ?1 AND author = ?2 AND hash = ?3",
        params![case_ref, &author[..], &hash.0[..]],
        |r| Ok(r.get::<_, i64>(0)? as u64),
    )
    .optional()?)
}

/// The hash of the entry at (author, seq) of a case, if held.
pub fn entry_hash_at(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
) -> Result<Option<Hash>> {
    Ok(query_one(
        c,
        "SELECT hash FROM entries WHERE case_ref = ?1 AND author = ?2 AND seq = ?3",
        params![case_ref, &author[..], seq as i64],
        |r| Ok(hash_of(r.get(0)?)),
    )
    .optional()?)
}

/// The last (seq, hash) of every chain of every author's log in a case
/// (`entry::chain_of`), ordered by author and seq.
pub fn log_heads(c: &Connection, case_ref: i64) -> Result<Vec<([u8; 32], u64, Hash)>> {
    let mut s = c.prepare_cached(
        "SELECT author, MAX(seq), hash FROM entries WHERE case_ref = ?1 \
         GROUP BY author, seq >> 32 ORDER BY author, MAX(seq)",
    )?;
    let rows = s
        .query_map([case_ref], |r| {
            let author = key_of(r.get(0)?);
            Ok((author, r.get::<_, i64>(1)? as u64, hash_of(r.get(2)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The entries that carry a record's changes. `None` in the list marks a link to
/// an entry that is no longer there (a hand-edited store); callers must refuse.
pub fn entries_of_record(c: &Connection, record_ref: i64) -> Result<Vec<Option<StoredEntry>>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM record_entries re LEFT JOIN entries e ON e.id = re.entry_ref \
         WHERE re.record_ref = ?1 ORDER BY re.entry_ref"
    ))?;
    let rows = s
        .query_map([record_ref], |r| match r.get::<_, Option<i64>>(0)? {
            Some(_) => entry_row(r).map(Some),
            None => Ok(None),
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Calls `f` for every stored entry in (case, author, seq) order, one at a time,
/// so verifying a large store does not hold it all in memory.
pub fn for_each_entry(c: &Connection, mut f: impl FnMut(StoredEntry)) -> Result<()> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM entries e ORDER BY e.case_ref, e.author, e.seq"
    ))?;
    let mut rows = s.query([])?;
    while let Some(r) = rows.next()? {
        f(entry_row(r)?);
    }
    Ok(())
}

/// Every entry of one case, in (author, seq) order.
pub fn for_each_entry_of_case(
    c: &Connection,
    case_ref: i64,
    mut f: impl FnMut(StoredEntry),
) -> Result<()> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM entries e WHERE e.case_ref = ?1 ORDER BY e.author, e.seq"
    ))?;
    let mut rows = s.query([case_ref])?;
    while let Some(r) = rows.next()? {
        f(entry_row(r)?);
    }
    Ok(())
}

/// The (author, seq) of each entry of a case, in that order, without the
/// entries' bytes.
pub fn for_each_entry_key_of_case(
    c: &Connection,
    case_ref: i64,
    mut f: impl FnMut(&[u8], i64),
) -> Result<()> {
    let mut s = c.prepare_cached(
        "SELECT e.author, e.seq FROM entries e WHERE e.case_ref = ?1 ORDER BY e.author, e.seq",
    )?;
    let mut rows = s.query([case_ref])?;
    while let Some(r) = rows.next()? {
        let author: Vec<u8> = r.get(0)?;
        f(&author, r.get(1)?);
    }
    Ok(())
}

/// Up to `limit` entries of one author's log after `seq`, in order.
pub fn entries_after(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>> {
    entries_within(c, case_ref, author, seq, (limit, usize::MAX))
}

/// Like [`entries_after`], stopping after the entry that brings the bytes
/// read to `max_bytes` (it is included, so a caller with nothing yet can
/// still send one large entry): a batch for a peer reads what it can send,
/// not the rest of the log (at 1,000,000 records, 400 MB per batch).
pub fn entries_within(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    (limit, max_bytes): (usize, usize),
) -> Result<Vec<StoredEntry>> {
    let mut s = c.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM entries e WHERE e.case_ref = ?1 AND e.author = ?2 AND e.seq > ?3 ORDER BY e.seq LIMIT ?4"
    ))?;
    let rows = s
        .query_map(
            params![case_ref, &author[..], seq as i64, limit as i64],
            entry_row,
        )?
        .take_while(within_bytes(max_bytes, |e: &StoredEntry| e.bytes.len()))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Records a proof that `author` equivocated at `seq` in a case; keeps the
/// lowest seq if there are several. Returns the seq the log is frozen before.
pub fn insert_equivocation(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
    entry_a: &[u8],
    entry_b: &[u8],
) -> Result<u64> {
    exec(
        c,
        "INSERT INTO equivocations (case_ref, author, seq, entry_a, entry_b) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (case_ref, author) DO UPDATE SET seq = excluded.seq, entry_a = excluded.entry_a, entry_b = excluded.entry_b \
         WHERE excluded.seq < equivocations.seq",
        params![case_ref, &author[..], seq as i64, entry_a, entry_b],
    )?;
    Ok(query_one(
        c,
        "SELECT seq FROM equivocations WHERE case_ref = ?1 AND author = ?2",
        params![case_ref, &author[..]],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// A proof of equivocation: the author, the seq, and the two entries.
pub struct Equivocation {
    pub author: [u8; 32],
    pub seq: u64,
    pub entry_a: Vec<u8>,
    pub entry_b: Vec<u8>,
}

pub fn equivocations(c: &Connection, case_ref: i64) -> Result<Vec<Equivocation>> {
    let mut s = c.prepare_cached(
        "SELECT author, seq, entry_a, entry_b FROM equivocations WHERE case_ref = ?1 ORDER BY author",
    )?;
    let rows = s
        .query_map([case_ref], |r| {
            let author = key_of(r.get(0)?);
            Ok(Equivocation {
                author,
                seq: r.get::<_, i64>(1)? as u64,
                entry_a: r.get(2)?,
                entry_b: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Every author proved to have equivocated, with the number of cases.
pub fn equivocators(c: &Connection) -> Result<Vec<([u8; 32], u64)>> {
    let mut s = c.prepare_cached("SELECT author, COUNT(*) FROM equivocations GROUP BY author")?;
    let rows = s
        .query_map([], |r| {
            let author = key_of(r.get(0)?);
            Ok((author, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Removes an author's entries from `seq` on in a case (a frozen log), with
/// their links and waiting copies; returns the records they touched.
pub fn remove_entries_from(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
) -> Result<Vec<i64>> {
    remove_entries_in(c, case_ref, author, seq..=i64::MAX as u64)
}

/// Takes out `author`'s entries with a seq in `seqs` (one chain's tail: a
/// removal's cut is per chain); returns the records they touched.
pub fn remove_entries_in(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seqs: std::ops::RangeInclusive<u64>,
) -> Result<Vec<i64>> {
    let (from, to) = (*seqs.start() as i64, *seqs.end() as i64);
    let mut s = c.prepare_cached(
        "SELECT DISTINCT re.record_ref FROM record_entries re JOIN entries e ON e.id = re.entry_ref \
         WHERE e.case_ref = ?1 AND e.author = ?2 AND e.seq >= ?3 AND e.seq <= ?4",
    )?;
    let records = s
        .query_map(params![case_ref, &author[..], from, to], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    exec(
        c,
        "DELETE FROM record_entries WHERE entry_ref IN \
         (SELECT id FROM entries WHERE case_ref = ?1 AND author = ?2 AND seq >= ?3 AND seq <= ?4)",
        params![case_ref, &author[..], from, to],
    )?;
    let gone = exec(
        c,
        "DELETE FROM entries WHERE case_ref = ?1 AND author = ?2 AND seq >= ?3 AND seq <= ?4",
        params![case_ref, &author[..], from, to],
    )?;
    if gone > 0 {
        count_removal(c)?;
    }
    Ok(records)
}

/// Keeps an entry that cannot be applied yet; returns whether it was new.
pub fn insert_waiting(
    c: &Connection,
    case_ref: i64,
    hash: &Hash,
    bytes: &[u8],
    source: &str,
) -> Result<bool> {
    Ok(exec(
        c,
        "INSERT OR IGNORE INTO waiting_entries (case_ref, hash, bytes, source) VALUES (?1, ?2, ?3, ?4)",
        params![case_ref, &hash.0[..], bytes, source],
    )? > 0)
}

/// The waiting entries of a case: (row, bytes).
pub fn waiting_in_case(c: &Connection, case_ref: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut s =
        c.prepare_cached("SELECT id, bytes FROM waiting_entries WHERE case_ref = ?1 ORDER BY id")?;
    let rows = s
        .query_map([case_ref], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn delete_waiting(c: &Connection, row: i64) -> Result<()> {
    exec(c, "DELETE FROM waiting_entries WHERE id = ?1", [row])?;
    Ok(())
}

/// How many entries of a case wait for entries they build on.
pub fn waiting_count(c: &Connection, case_ref: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM waiting_entries WHERE case_ref = ?1",
        [case_ref],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// How many entries, and how many bytes, wait from `source`.
pub fn waiting_from(c: &Connection, source: &str) -> Result<(u64, u64)> {
    Ok(query_one(
        c,
        "SELECT COUNT(*), IFNULL(SUM(length(bytes)), 0) FROM waiting_entries WHERE source = ?1",
        [source],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// How many entries, and how many bytes, wait in all (every source).
pub fn waiting_total(c: &Connection) -> Result<(u64, u64)> {
    Ok(query_one(
        c,
        "SELECT COUNT(*), IFNULL(SUM(length(bytes)), 0) FROM waiting_entries",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}

/// A number that changes whenever anything is appended to the store (by this or
/// another process): how `serve` notices local writes to push.
pub fn change_marker(c: &Connection) -> Result<(i64, i64, i64)> {
    let m = change_mark(c)?;
    Ok((m.entries, m.control_ops, m.registry_ops))
}

/// How far the rows that sync sends reach: the highest id of each table,
/// and how many times such rows were removed (entries taken out by a cut,
/// a federation left). Rows are added with higher ids than any before, so
/// with no removal in between, a case with no row above a mark has not
/// changed since the mark was read. (A row deleted at the very top gives
/// its id to the next one: the count of removals tells the two apart.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeMark {
    pub entries: i64,
    pub control_ops: i64,
    pub registry_ops: i64,
    pub equivocations: i64,
    pub removals: i64,
}

impl ChangeMark {
    /// Whether the cases changed since `earlier` are those with rows above
    /// it ([`cases_changed_since`]): nothing was removed in between, and no
    /// registry statement came (labels decide what may go where, in every
    /// case).
    pub fn cases_found_since(&self, earlier: &ChangeMark) -> bool {
        self.registry_ops == earlier.registry_ops && self.removals == earlier.removals
    }
}

/// The meta key counting removals of rows sync sends ([`ChangeMark::removals`]).
const REMOVALS: &str = "sync.removals";

/// Counts a removal of rows sync sends ([`ChangeMark`]), in the removing
/// transaction.
pub(super) fn count_removal(c: &Connection) -> Result<()> {
    set_meta_stamp(c, REMOVALS, meta_stamp(c, REMOVALS)?.saturating_add(1))
}

pub fn change_mark(c: &Connection) -> Result<ChangeMark> {
    let removals = meta_stamp(c, REMOVALS)?;
    Ok(query_one(
        c,
        "SELECT (SELECT IFNULL(MAX(id), 0) FROM entries), (SELECT IFNULL(MAX(id), 0) FROM control_ops), \
         (SELECT IFNULL(MAX(id), 0) FROM registry_ops), (SELECT IFNULL(MAX(id), 0) FROM equivocations)",
        [],
        |r| {
            Ok(ChangeMark {
                entries: r.get(0)?,
                control_ops: r.get(1)?,
                registry_ops: r.get(2)?,
                equivocations: r.get(3)?,
                removals,
            })
        },
    )?)
}

pub fn entry_count(c: &Connection, case_ref: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM entries WHERE case_ref = ?1",
        [case_ref],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Notes that a part of entry `entry_ref` (record `tag`) is held here
/// without its bytes: withheld from this node (handling code H2).
pub fn insert_withheld_part(c: &Connection, entry_ref: i64, tag: &[u8; 16]) -> Result<()> {
    exec(
        c,
        "INSERT OR IGNORE INTO withheld_parts (entry_ref, tag) VALUES (?1, ?2)",
        params![entry_ref, &tag[..]],
    )?;
    Ok(())
}

pub fn delete_withheld_part(c: &Connection, entry_ref: i64, tag: &[u8; 16]) -> Result<()> {
    exec(
        c,
        "DELETE FROM withheld_parts WHERE entry_ref = ?1 AND tag = ?2",
        params![entry_ref, &tag[..]],
    )?;
    Ok(())
}

/// The tags of the parts of one entry withheld from this node.
pub fn withheld_parts_of_entry(c: &Connection, entry_ref: i64) -> Result<Vec<[u8; 16]>> {
    let mut s = c.prepare_cached("SELECT tag FROM withheld_parts WHERE entry_ref = ?1")?;
    Ok(s.query_map([entry_ref], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|t| <[u8; 16]>::try_from(t.as_slice()).ok())
        .collect())
}

/// A part of an entry withheld from this node: the entry's author and
/// seq, and the record's tag.
pub struct WithheldPart {
    pub author: [u8; 32],
    pub seq: u64,
    pub tag: [u8; 16],
}

/// Parts withheld from this node in a case, in log order, at most `limit`.
pub fn withheld_in_case(c: &Connection, case_ref: i64, limit: usize) -> Result<Vec<WithheldPart>> {
    let mut s = c.prepare_cached(
        "SELECT e.author, e.seq, w.tag FROM withheld_parts w JOIN entries e ON e.id = w.entry_ref \
         WHERE e.case_ref = ?1 ORDER BY e.author, e.seq LIMIT ?2",
    )?;
    let rows = s
        .query_map(params![case_ref, limit as i64], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(a, s, t)| {
            Some(WithheldPart {
                author: <[u8; 32]>::try_from(a.as_slice()).ok()?,
                seq: s as u64,
                tag: <[u8; 16]>::try_from(t.as_slice()).ok()?,
            })
        })
        .collect())
}

/// The entry of one author's log at `seq` in a case.
pub fn entry_at(
    c: &Connection,
    case_ref: i64,
    author: &[u8; 32],
    seq: u64,
) -> Result<Option<StoredEntry>> {
    Ok(
        entries_after(c, case_ref, author, seq.saturating_sub(1), 1)?
            .into_iter()
            .find(|e| e.seq as u64 == seq),
    )
}

/// Forgets the parts withheld from this node of record `tag` in a case (of
/// every record with `None`): erased, they are never asked for again.
pub fn forget_withheld_parts(c: &Connection, case_ref: i64, tag: Option<&[u8; 16]>) -> Result<()> {
    exec(
        c,
        "DELETE FROM withheld_parts WHERE entry_ref IN (SELECT id FROM entries WHERE case_ref = ?1) \
         AND (?2 IS NULL OR tag = ?2)",
        params![case_ref, tag.map(|t| t.to_vec())],
    )?;
    Ok(())
}

/// How many parts are withheld from this node in a case.
pub fn withheld_count(c: &Connection, case_ref: i64) -> Result<u64> {
    Ok(query_one(
        c,
        "SELECT COUNT(*) FROM withheld_parts w JOIN entries e ON e.id = w.entry_ref WHERE e.case_ref = ?1",
        [case_ref],
        |r| r.get::<_, i64>(0),
    )? as u64)
}
