//! `log verify`: re-checks every stored entry and control operation without
//! needing any key: signatures over the stored bytes, hashes, per-author hash
//! chains, and that each item is filed under the case, author and seq it claims.

use std::collections::{HashMap, HashSet};

use casesync_crypto::Hash;
use casesync_schema::CaseId;
use casesync_schema::control::ControlOp;
use casesync_schema::entry::{chain_of, starts_chain};
use rusqlite::Connection;

use crate::{Result, log, store};

/// Failures listed in a report; verification continues past them to count the rest.
const MAX_LISTED: usize = 100;

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub cases: u64,
    /// Case control operations and registry statements.
    pub control_ops: u64,
    pub logs: u64,
    pub entries: u64,
    pub failed: u64,
    pub failures: Vec<Failure>,
}

#[derive(Debug, serde::Serialize)]
pub struct Failure {
    /// Which item: `log entry CASE/AUTHOR/SEQ` or `control operation CASE/HASH`.
    pub item: String,
    /// The database row, for someone inspecting the store by hand.
    pub row: i64,
    pub reason: String,
}

impl VerifyReport {
    fn fail(&mut self, item: String, row: i64, reason: String) {
        self.failed += 1;
        if self.failures.len() < MAX_LISTED {
            self.failures.push(Failure { item, row, reason });
        }
    }
}

pub fn verify_store(conn: &Connection) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    // The search index keeps no copy of what it files: FTS5's own check of
    // its structure is what can be checked without keys (that each record
    // is filed under its own terms needs them).
    if let Err(e) = store::check_search_index(conn) {
        report.fail("search index".into(), 0, e.to_string());
    }
    let cases: HashMap<i64, CaseId> = store::list_cases(conn)?
        .into_iter()
        .map(|c| (c.case_ref, CaseId(c.case_id)))
        .collect();
    report.cases = cases.len() as u64;

    for (case_ref, op) in store::all_control_ops(conn)? {
        report.control_ops += 1;
        let case = cases.get(&case_ref).copied().unwrap_or(CaseId([0; 16]));
        let item = format!("control operation {case}/{}", op.hash.short());
        match ControlOp::decode_verified(&op.bytes) {
            Err(e) => report.fail(item, op.row, e.to_string()),
            Ok(o) if !o.hash().ct_eq(&op.hash) => {
                report.fail(item, op.row, "bytes do not match the stored hash".into())
            }
            Ok(o) if o.case != case => report.fail(item, op.row, "filed under another case".into()),
            Ok(_) => {}
        }
    }

    for op in store::registry_ops(conn)? {
        report.control_ops += 1;
        let item = format!("registry statement {}", op.hash.short());
        match casesync_schema::registry::RegistryOp::decode_verified(&op.bytes) {
            Err(e) => report.fail(item, op.row, e.to_string()),
            Ok(o) if !o.hash().ct_eq(&op.hash) => {
                report.fail(item, op.row, "bytes do not match the stored hash".into())
            }
            Ok(_) => {}
        }
    }

    // Entries arrive ordered by (case, author, seq): each chain of each log is
    // checked as a chain, and a later chain starts from nothing or from an
    // entry of an earlier chain of that log (`entry::chain_of`).
    let mut prev: Option<(i64, Vec<u8>, i64, Hash)> = None;
    let mut earlier: HashSet<Hash> = HashSet::new();
    let mut failures = Vec::new();
    let mut counts = (0u64, 0u64);
    store::for_each_entry(conn, |se| {
        counts.0 += 1;
        let case = cases.get(&se.case_ref).copied().unwrap_or(CaseId([0; 16]));
        let item = format!("log entry {}", log::entry_name(&case, &se.author, se.seq));
        let same_log = matches!(&prev, Some((c, a, _, _)) if *c == se.case_ref && *a == se.author);
        if !same_log {
            counts.1 += 1;
            earlier.clear();
        }
        let seq = se.seq as u64;
        let same_chain = same_log
            && matches!(&prev, Some((_, _, pseq, _)) if chain_of(*pseq as u64) == chain_of(seq));
        match log::verify_stored(&se, &case) {
            Err(reason) => failures.push((item, se.row, reason)),
            Ok(e) => {
                let expected = match (&prev, same_chain) {
                    (Some((_, _, pseq, phash)), true) => Some((*pseq + 1, *phash)),
                    _ => None,
                };
                match expected {
                    Some((next, _)) if se.seq != next => failures.push((
                        item,
                        se.row,
                        format!("gap in the log: expected seq {next}"),
                    )),
                    Some((_, hash)) if !e.header.prev.ct_eq(&hash) => failures.push((
                        item,
                        se.row,
                        "does not chain to the previous entry's hash".into(),
                    )),
                    None if !starts_chain(seq) => failures.push((
                        item,
                        se.row,
                        "a chain of the log does not start at its first position".into(),
                    )),
                    None if chain_of(seq) > 0
                        && e.header.prev != Hash::ZERO
                        && !earlier.contains(&e.header.prev) =>
                    {
                        failures.push((
                            item,
                            se.row,
                            "a chain of the log starts from an entry the log does not hold".into(),
                        ))
                    }
                    _ => {}
                }
            }
        }
        earlier.insert(se.hash);
        prev = Some((se.case_ref, se.author.clone(), se.seq, se.hash));
    })?;
    // Each record's view and snapshot are bound to the entries they were
    // built from: a summary older than its entries (a row copied back with
    // its digest) is named here; without its digest it does not open at all.
    for (row, stored) in store::record_digests(conn)? {
        let now = log::stored_log_digest(conn, row)?;
        if !casesync_crypto::hash::ct_eq(&now.0, &stored) {
            failures.push((
                format!("record row {row}"),
                row,
                "its stored view and snapshot were built from other log entries than those that carry it (an older copy put back?)".into(),
            ));
        }
    }
    for row in store::records_with_missing_entries(conn)? {
        failures.push((
            format!("record row {row}"),
            row,
            "its history refers to a log entry that is missing".into(),
        ));
    }
    report.entries = counts.0;
    report.logs = counts.1;
    for (item, row, reason) in failures {
        report.fail(item, row, reason);
    }
    Ok(report)
}
