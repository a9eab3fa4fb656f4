//! Evidence files and their pieces: which the node knows, holds and lacks.

use super::*;

/// Notes that the record `record_ref` names the file `root`; nothing if
/// already noted. Any record may name any root: what the manifest says
/// decides (`check_evidence_file`).
pub fn note_evidence_file(
    c: &Connection,
    root: &Hash,
    record_ref: i64,
    case_ref: i64,
) -> Result<()> {
    exec(
        c,
        "INSERT OR IGNORE INTO evidence_files (root, record_ref, case_ref) VALUES (?1, ?2, ?3)",
        params![&root.0[..], record_ref, case_ref],
    )?;
    Ok(())
}

/// Whether a file's manifest names the record that names the file (and
/// its key opens under that record's case): only such a file is fetched
/// and served. Set once the manifest is here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// The manifest is not here yet.
    NotYet = 0,
    /// The manifest belongs to this record.
    Belongs = 1,
    /// It belongs to another record: never fetched or served for this one.
    Foreign = 2,
}

/// Notes what checking `root`'s manifest found for the record `record_ref`.
pub fn check_evidence_file(
    c: &Connection,
    root: &Hash,
    record_ref: i64,
    checked: Checked,
) -> Result<()> {
    exec(
        c,
        "UPDATE evidence_files SET checked = ?3, \
         pieces = CASE WHEN ?3 = 2 THEN 0 ELSE pieces END, \
         missing = CASE WHEN ?3 = 2 THEN 0 ELSE missing END \
         WHERE root = ?1 AND record_ref = ?2",
        params![&root.0[..], record_ref, checked as i64],
    )?;
    Ok(())
}

/// Records a file's pieces once its manifest is here and checked, with
/// which are here.
pub fn set_evidence_pieces(c: &Connection, root: &Hash, pieces: &[(Hash, bool)]) -> Result<()> {
    let mut s = c.prepare_cached(
        "INSERT OR REPLACE INTO evidence_pieces (root, idx, hash, have) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (i, (h, have)) in pieces.iter().enumerate() {
        s.execute(params![&root.0[..], i as i64, &h.0[..], *have as i64])?;
    }
    let missing = pieces.iter().filter(|(_, h)| !h).count() as i64;
    exec(
        c,
        "UPDATE evidence_files SET pieces = ?2, missing = ?3 WHERE root = ?1 AND checked = 1",
        params![&root.0[..], pieces.len() as i64, missing],
    )?;
    Ok(())
}

/// A record naming a file this node knows of.
pub struct EvidenceFile {
    pub record_ref: i64,
    pub case_ref: i64,
    pub checked: Checked,
    /// How many pieces, once the manifest is here and checked.
    pub pieces: Option<i64>,
}

/// Every record naming the file `root`.
pub fn evidence_files_naming(c: &Connection, root: &Hash) -> Result<Vec<EvidenceFile>> {
    let mut s = c.prepare_cached(
        "SELECT record_ref, case_ref, checked, pieces FROM evidence_files WHERE root = ?1",
    )?;
    Ok(s.query_map([&root.0[..]], |r| {
        Ok(EvidenceFile {
            record_ref: r.get(0)?,
            case_ref: r.get(1)?,
            checked: match r.get::<_, i64>(2)? {
                1 => Checked::Belongs,
                2 => Checked::Foreign,
                _ => Checked::NotYet,
            },
            pieces: r.get(3)?,
        })
    })?
    .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The cases a piece (or a manifest, by its root) may be served for: those
/// of the records naming a file it is part of, whose manifest names them.
pub fn cases_of_piece(c: &Connection, hash: &Hash) -> Result<Vec<(i64, i64)>> {
    let mut s = c.prepare_cached(
        "SELECT f.case_ref, f.record_ref FROM evidence_files f WHERE f.root = ?1 AND f.checked = 1 \
         UNION SELECT f.case_ref, f.record_ref FROM evidence_pieces p JOIN evidence_files f ON f.root = p.root \
         WHERE p.hash = ?1 AND f.checked = 1",
    )?;
    Ok(s.query_map([&hash.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Marks piece `hash` here; returns the roots of files it completed.
pub fn have_evidence_piece(c: &Connection, hash: &Hash) -> Result<Vec<Hash>> {
    let mut s =
        c.prepare_cached("SELECT root FROM evidence_pieces WHERE hash = ?1 AND have = 0")?;
    let roots: Vec<Vec<u8>> = s
        .query_map([&hash.0[..]], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    exec(
        c,
        "UPDATE evidence_pieces SET have = 1 WHERE hash = ?1 AND have = 0",
        [&hash.0[..]],
    )?;
    let mut done = Vec::new();
    for root in roots {
        exec(
            c,
            "UPDATE evidence_files SET missing = (SELECT COUNT(*) FROM evidence_pieces WHERE root = ?1 AND have = 0) WHERE root = ?1 AND checked = 1",
            [&root],
        )?;
        let missing: i64 = query_one(
            c,
            "SELECT IFNULL(MIN(missing), 1) FROM evidence_files WHERE root = ?1 AND checked = 1",
            [&root],
            |r| r.get(0),
        )?;
        if missing == 0
            && let Some(h) = Hash::from_slice(&root)
        {
            done.push(h);
        }
    }
    Ok(done)
}

/// Marks a file wanted (someone asked to open it).
pub fn want_evidence_file(c: &Connection, root: &Hash) -> Result<()> {
    exec(
        c,
        "UPDATE evidence_files SET want = 1 WHERE root = ?1",
        [&root.0[..]],
    )?;
    Ok(())
}

/// What this node lacks: manifests not here, then pieces (of every file,
/// or with `wanted_only` of files someone asked to open), each with its
/// case row; at most `limit`.
pub fn evidence_wanted(c: &Connection, wanted_only: bool, limit: i64) -> Result<Vec<(Hash, i64)>> {
    let mut out = Vec::new();
    let mut s =
        c.prepare_cached("SELECT root, case_ref FROM evidence_files WHERE checked = 0 LIMIT ?1")?;
    let rows = s
        .query_map([limit], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.extend(
        rows.into_iter()
            .filter_map(|(h, c)| Some((Hash::from_slice(&h)?, c))),
    );
    let mut s = c.prepare_cached(
        "SELECT p.hash, f.case_ref FROM evidence_pieces p JOIN evidence_files f ON f.root = p.root \
         WHERE p.have = 0 AND f.checked = 1 AND (?1 = 0 OR f.want = 1) ORDER BY p.root, p.idx LIMIT ?2",
    )?;
    let rows = s
        .query_map(params![wanted_only as i64, limit], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.extend(
        rows.into_iter()
            .filter_map(|(h, c)| Some((Hash::from_slice(&h)?, c))),
    );
    out.truncate(limit as usize);
    Ok(out)
}

/// The pieces a file lists (once its manifest was here).
pub fn evidence_piece_hashes(c: &Connection, root: &Hash) -> Result<Vec<Hash>> {
    let mut s = c.prepare_cached("SELECT hash FROM evidence_pieces WHERE root = ?1")?;
    let rows = s
        .query_map([&root.0[..]], |r| r.get::<_, Vec<u8>>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.iter().filter_map(|h| Hash::from_slice(h)).collect())
}

/// A file whose content was destroyed: no pieces listed, none missing, so
/// it is neither fetched nor served again.
pub fn forget_evidence_pieces(c: &Connection, root: &Hash) -> Result<()> {
    exec(
        c,
        "DELETE FROM evidence_pieces WHERE root = ?1",
        [&root.0[..]],
    )?;
    exec(
        c,
        "UPDATE evidence_files SET pieces = 0, missing = 0, want = 0 WHERE root = ?1",
        [&root.0[..]],
    )?;
    Ok(())
}
