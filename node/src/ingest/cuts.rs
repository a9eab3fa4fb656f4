//! Where removed members' logs end, taking out what lies past, and
//! freezing a log at a proved equivocation.

use super::*;

/// Where each removed writer's log ends in this case ([`control::log_ends`]),
/// counting the views of the entries held, waiting and arriving: an entry past
/// the cut is accepted after all if a remaining writer built on it. Views are
/// read only when some removed writer's log goes past its cut, here or
/// arriving; entries of frozen logs from their fork on vouch for nothing.
pub(super) fn log_ends(
    conn: &Connection,
    case: &Case,
    arriving: &[(LogEntry, Option<i64>)],
    frozen: &HashMap<[u8; 32], u64>,
) -> Result<LogEnds> {
    let cuts = control::log_ends(&case.state, []);
    let mut past = arriving.iter().any(|(e, _)| {
        cuts.get(&e.header.author)
            .is_some_and(|ends| past_end(ends, e.header.seq))
    });
    for (author, ends) in &cuts {
        for (seq, _) in store::chain_heads(conn, case.case_ref, author)? {
            past |= past_end(ends, seq);
        }
    }
    if !past {
        return Ok(cuts);
    }
    let counts = |author: &[u8; 32], seq: u64| frozen.get(author).is_none_or(|f| seq < *f);
    let mut views: Vec<([u8; 32], Vec<ViewItem>)> = arriving
        .iter()
        .map(|(e, _)| &e.header)
        .filter(|h| counts(&h.author, h.seq))
        .map(|h| (h.author, h.view.clone()))
        .collect();
    // Stored entries were verified when they were accepted; one that no longer
    // decodes vouches for nothing (`log verify` names it).
    store::for_each_entry_of_case(conn, case.case_ref, |stored| {
        if let Ok(e) = LogEntry::decode_verified(&stored.bytes)
            && counts(&e.header.author, e.header.seq)
        {
            views.push((e.header.author, e.header.view));
        }
    })?;
    Ok(control::log_ends(
        &case.state,
        views.iter().map(|(a, v)| (a, v.as_slice())),
    ))
}

/// Where each removed writer's log ends, chain by chain.
pub(super) type LogEnds = BTreeMap<[u8; 32], Vec<LogEnd>>;

/// Whether `seq` is past where its chain ends (a chain with no end keeps nothing).
pub(super) fn past_end(ends: &[LogEnd], seq: u64) -> bool {
    control::end_of_chain(ends, seq).is_none_or(|end| seq > end.seq)
}

/// Takes out a removed member's entries past where its log ends that this node
/// accepted before it learned of the removal (docs/design.md: "every node accepts
/// that member's entries up to the cut and rejects the rest"), and rebuilds the
/// records they touched, so every node holds the same log whatever the order
/// in which entries and removal arrived.
pub(super) fn enforce_cuts(
    node: &Node,
    conn: &Connection,
    case: &Case,
    ends: &LogEnds,
    report: &mut IngestReport,
) -> Result<()> {
    for (author, chain_ends) in ends {
        for (head, _) in store::chain_heads(conn, case.case_ref, author)? {
            let base = entry::chain_base(entry::chain_of(head));
            let from = match control::end_of_chain(chain_ends, head) {
                // Nothing of this chain is kept.
                None => base + 1,
                Some(end) => match store::entry_hash_at(conn, case.case_ref, author, end.seq)? {
                    // Another entry than the one the log ends with sits at its end.
                    Some(h) if !h.ct_eq(&end.hash) => end.seq,
                    _ if head > end.seq => end.seq + 1,
                    _ => continue,
                },
            };
            take_out(node, conn, case, author, from..=head, report)?;
        }
    }
    Ok(())
}

/// Takes out entries `seqs` of a removed member (one chain's tail), and says so.
pub(super) fn take_out(
    node: &Node,
    conn: &Connection,
    case: &Case,
    author: &[u8; 32],
    seqs: std::ops::RangeInclusive<u64>,
    report: &mut IngestReport,
) -> Result<()> {
    let from = *seqs.start();
    let records = store::remove_entries_in(conn, case.case_ref, author, seqs)?;
    for r in &records {
        crate::records::rebuild(node, conn, case, *r)?;
    }
    let peer = casesync_crypto::identity::peer_id_of(author).unwrap_or_default();
    report.erased.push((
        case.id,
        format!(
            "entries of removed member {peer} from seq {from} on (past where its log ends); {} record(s) rebuilt",
            records.len()
        ),
    ));
    report.rejected.push(format!(
        "case {}: entries of removed member {peer} from seq {from} on were taken out (accepted before the removal was known); {} record(s) rebuilt",
        case.id,
        records.len()
    ));
    Ok(())
}

/// `e` forks its author's log: another entry with the same seq is held. Keeps
/// both as proof, and freezes the author's log in the case before the lowest
/// proved fork: its entries from there on are taken out (records rebuilt from
/// what remains) and never accepted again. Every node that holds a proof
/// freezes at the same point, whichever fork it saw first. Returns that seq.
pub(super) fn freeze(node: &Node, conn: &Connection, case: &Case, e: &LogEntry) -> Result<u64> {
    let h = &e.header;
    let held = store::entries_after(conn, case.case_ref, &h.author, h.seq.saturating_sub(1), 1)?
        .into_iter()
        .find(|x| x.seq as u64 == h.seq)
        .ok_or_else(|| NodeError::Integrity("the forked entry vanished".into()))?;
    let at = store::insert_equivocation(
        conn,
        case.case_ref,
        &h.author,
        h.seq,
        &held.bytes,
        e.bytes(),
    )?;
    for record in store::remove_entries_from(conn, case.case_ref, &h.author, at)? {
        crate::records::rebuild(node, conn, case, record)?;
    }
    Ok(at)
}

/// An entry (author, seq) that built on the frozen log of `on`.
pub struct BuiltOnFrozen {
    pub author: [u8; 32],
    pub seq: u64,
    pub on: [u8; 32],
}

/// Entries held in `case` whose author built on an entry of a log frozen by a
/// proved equivocation (its view names a seq at or past the freeze): their
/// changes that depend on the frozen entries cannot apply. `status` shows them
/// (docs/design.md: changes that depended on frozen entries wait, and are shown).
pub fn built_on_frozen(conn: &Connection, case: &Case) -> Result<Vec<BuiltOnFrozen>> {
    let frozen: HashMap<[u8; 32], u64> = store::equivocations(conn, case.case_ref)?
        .into_iter()
        .map(|q| (q.author, q.seq))
        .collect();
    let mut out = Vec::new();
    if frozen.is_empty() {
        return Ok(out);
    }
    store::for_each_entry_of_case(conn, case.case_ref, |stored| {
        if let Ok(e) = LogEntry::decode_verified(&stored.bytes)
            && let Some(v) = e
                .header
                .view
                .iter()
                .find(|v| frozen.get(&v.author).is_some_and(|at| v.seq >= *at))
        {
            out.push(BuiltOnFrozen {
                author: e.header.author,
                seq: e.header.seq,
                on: v.author,
            });
        }
    })?;
    Ok(out)
}
