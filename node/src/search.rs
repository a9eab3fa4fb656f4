//! Local search (`casesync search`): which records of the cases a person may
//! see hold a selector, or a name or word. Each record is filed, in the
//! transaction that writes it, under keyed hashes (`sealing::search_term`) of
//! its selectors in canonical form (`casesync_schema::selectors`), of the
//! folded words of its text fields and of their prefixes (3 to 12 letters);
//! the index holds no plaintext. A query is cut the same way and looked up;
//! results are ranked (a selector before a whole word before a prefix, more
//! matching terms first), checked against the person's access, and marked
//! when the same selector is in more than one case. Each search is audited
//! as a consultation, the query sealed in its entry.

use std::collections::{BTreeSet, HashMap};

use casesync_schema::doc::RecordView;
use casesync_schema::record::RecordType;
use casesync_schema::selectors::{self, Selector, SelectorKind};
use rusqlite::Connection;
use serde::Serialize;

use crate::access::Actor;
use crate::audit::{self, Action, Event};
use crate::sealing::StorageKeys;
use crate::store::{self, RecordRow};
use crate::{Node, NodeError, Result, cases};

const W_SELECTOR: i64 = 3;
const W_WORD: i64 = 2;
const W_PREFIX: i64 = 1;
/// Terms one record is filed under, at most (a long note adds no more).
const MAX_TERMS: usize = 256;
/// Records one term may bring in before ranking.
const MAX_CANDIDATES: i64 = 10_000;
/// Records a term brought in: row -> score.
type Candidates = HashMap<i64, i64>;

/// Results one search returns, at most.
pub const MAX_RESULTS: usize = 200;

fn words(text: &str) -> Vec<String> {
    selectors::fold(text)
        .split_whitespace()
        .filter(|w| w.chars().count() >= 2)
        .map(String::from)
        .collect()
}

fn prefixes(word: &str) -> impl Iterator<Item = String> + '_ {
    let n = word.chars().count();
    (3..n.min(12)).map(move |k| word.chars().take(k).collect())
}

fn word_term(w: &str) -> Vec<u8> {
    [b"word\0".as_slice(), w.as_bytes()].concat()
}

fn prefix_term(p: &str) -> Vec<u8> {
    [b"prefix\0".as_slice(), p.as_bytes()].concat()
}

/// The terms a record is filed under (national phone numbers read in
/// `region`, the node's country). A pure function of the view: a record is
/// taken out of the index with the terms computed again from its stored
/// view, so a change here must file every record again (bump
/// [`INDEX_VERSION`]).
pub fn terms(storage: &StorageKeys, region: Option<&str>, view: &RecordView) -> Vec<[u8; 16]> {
    let mut out: BTreeSet<[u8; 16]> = BTreeSet::new();
    let hash = storage.search_terms();
    let mut add = |bytes: Vec<u8>| {
        out.insert(hash.term(&bytes));
    };
    if let Ok(t) = view.record_type.parse::<RecordType>() {
        for s in selectors::of_record(t, &view.fields, region) {
            add(s.key_bytes());
        }
    }
    let mut seen = BTreeSet::new();
    for v in view.fields.values() {
        if let casesync_schema::record::FieldValue::Str(s) = v {
            for w in words(s) {
                if seen.len() >= MAX_TERMS || !seen.insert(w.clone()) {
                    continue;
                }
                for p in prefixes(&w) {
                    add(prefix_term(&p));
                }
                add(word_term(&w));
            }
        }
    }
    out.into_iter().take(MAX_TERMS * 4).collect()
}

fn terms_of(node: &Node, view: &RecordView) -> Vec<[u8; 16]> {
    terms(&node.storage, Some(&node.card.country), view)
}

/// Files a record again under its new view, in the transaction that writes
/// it; `old` is its row as stored until now.
pub fn refile(node: &Node, tx: &Connection, old: &RecordRow, view: &RecordView) -> Result<()> {
    let before = filed_terms(node, old)?;
    let after = terms_of(node, view);
    if before != after {
        store::unfile_search_terms(tx, old.row, &before)?;
        store::file_search_terms(tx, old.row, &after)?;
    }
    Ok(())
}

/// Takes a record out of the index before its row is deleted.
pub fn unfile(node: &Node, tx: &Connection, old: &RecordRow) -> Result<()> {
    Ok(store::unfile_search_terms(
        tx,
        old.row,
        &filed_terms(node, old)?,
    )?)
}

/// The terms a stored row is filed under: those of its stored view (the
/// index keeps no copy).
fn filed_terms(node: &Node, row: &RecordRow) -> Result<Vec<[u8; 16]>> {
    Ok(terms_of(node, &node.storage.record_view(row)?))
}

/// What `terms` files, and how: when this changes, every record is filed
/// again at the next unlock.
const INDEX_VERSION: &[u8] = b"2";
/// Meta keys: the index version every record is filed under, and while
/// filing, the last record row filed.
const INDEX_COMPLETE: &str = "search_index_complete";
const INDEX_FILED: &str = "search_index_filed";

/// Files every record, once, after the index was made anew (an upgrade, or
/// a change of [`INDEX_VERSION`]); from then on each record is filed as it
/// is written. Runs at unlock, before anything can write a record, in
/// transactions of 5,000 records that pick up where another left off.
pub(crate) fn fill_index(node: &Node) -> Result<()> {
    // Every unlock asks: a read, not the write lock, when all is filed.
    if store::meta_get(node.store.conn(), INDEX_COMPLETE)?.as_deref() == Some(INDEX_VERSION) {
        return Ok(());
    }
    loop {
        let done = node.store.write(|tx| -> Result<bool> {
            let version = store::meta_get(tx, INDEX_COMPLETE)?;
            if version.as_deref() == Some(INDEX_VERSION) {
                return Ok(true);
            }
            if version.is_some() {
                // Filed under other terms: start again.
                store::clear_search_index(tx)?;
                store::meta_delete(tx, INDEX_COMPLETE)?;
                store::meta_delete(tx, INDEX_FILED)?;
            }
            let after = store::meta_stamp(tx, INDEX_FILED)?;
            let rows: Vec<RecordRow> = store::records_after(tx, after, 5_000)?;
            for r in &rows {
                store::file_search_terms(tx, r.row, &filed_terms(node, r)?)?;
            }
            if let Some(last) = rows.last() {
                store::set_meta_stamp(tx, INDEX_FILED, last.row)?;
            }
            let done = rows.len() < 5_000;
            if done {
                store::meta_put(tx, INDEX_COMPLETE, INDEX_VERSION)?;
                store::meta_delete(tx, INDEX_FILED)?;
            }
            Ok(done)
        })?;
        if done {
            return Ok(());
        }
    }
}

/// One search result.
#[derive(Clone, Debug, Serialize)]
pub struct Hit {
    pub case: String,
    pub case_title: String,
    pub record: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub summary: String,
    pub score: i64,
    /// The selectors of the query this record holds.
    pub selectors: Vec<Selector>,
    /// Other cases this person may see that hold one of those selectors.
    pub also_in: Vec<String>,
}

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub text: String,
    pub kind: Option<SelectorKind>,
    pub case: Option<String>,
}

/// `casesync search`: the records of the cases `actor` may see that match
/// `q`, best first.
pub fn search(node: &Node, actor: &Actor, q: &Query) -> Result<Vec<Hit>> {
    audit::audited(node, actor, Action::Search, q.case.as_deref(), None, || {
        let text = q.text.trim();
        if text.is_empty() || text.chars().count() > 256 {
            return Err(NodeError::Refused(
                "a search needs 1 to 256 characters".into(),
            ));
        }
        let region = Some(node.card.country.as_str());
        let sels: Vec<Selector> = match q.kind {
            Some(k) => vec![selectors::parse(k, text, region).map_err(NodeError::Refused)?],
            None => selectors::guess(text, region),
        };
        let conn = node.store.conn();
        let only_case = q
            .case
            .as_deref()
            .map(|c| cases::load_by_text(node, conn, c))
            .transpose()?;
        // Score each candidate: selectors, then every query word (as a word,
        // or else as a prefix) must be there for a text match.
        let mut score: HashMap<i64, (i64, Vec<Selector>)> = HashMap::new();
        for s in &sels {
            let t = node.storage.search_term(&s.key_bytes());
            for r in store::records_with_term(conn, &t, MAX_CANDIDATES)? {
                let e = score.entry(r).or_default();
                e.0 += W_SELECTOR * 10;
                e.1.push(s.clone());
            }
        }
        if q.kind.is_none() || q.kind == Some(SelectorKind::Name) {
            let ws = words(text);
            // Each word's records; a word so common that it filled its cap
            // says little and is left out of the intersection (the rarer
            // words decide), unless every word is that common.
            let mut per_word: Vec<(Candidates, bool)> = Vec::new();
            for w in &ws {
                let mut this: Candidates = HashMap::new();
                let mut capped = false;
                for (bytes, weight) in [(word_term(w), W_WORD), (prefix_term(w), W_PREFIX)] {
                    let t = node.storage.search_term(&bytes);
                    let rows = store::records_with_term(conn, &t, MAX_CANDIDATES)?;
                    capped |= rows.len() as i64 >= MAX_CANDIDATES;
                    for r in rows {
                        let e = this.entry(r).or_insert(0);
                        *e = (*e).max(weight);
                    }
                }
                per_word.push((this, capped));
            }
            let selective = per_word.iter().any(|(_, capped)| !*capped);
            let mut text_hits: Option<Candidates> = None;
            for (this, capped) in per_word {
                if selective && capped {
                    continue;
                }
                text_hits = Some(match text_hits {
                    None => this,
                    Some(prev) => prev
                        .into_iter()
                        .filter_map(|(r, s)| this.get(&r).map(|s2| (r, s + s2)))
                        .collect(),
                });
            }
            for (r, s) in text_hits.unwrap_or_default() {
                score.entry(r).or_default().0 += s;
            }
        }
        // Best first; then each one's case and the person's access to it,
        // until there are enough (the index gives rows only: a record's case
        // is looked up for the candidates that may be shown, not for each of
        // up to 20,000 a common word brings in).
        let mut ranked: Vec<(i64, i64, Vec<Selector>)> =
            score.into_iter().map(|(r, (s, sel))| (r, s, sel)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut may: HashMap<i64, bool> = HashMap::new();
        let mut found: Vec<(i64, i64, i64, Vec<Selector>)> = Vec::new();
        for (r, s, sel) in ranked {
            if found.len() >= MAX_RESULTS {
                break;
            }
            let Some(c) = store::case_of_record(conn, r)? else {
                continue;
            };
            if only_case.as_ref().is_some_and(|oc| oc.case_ref != c) {
                continue;
            }
            let ok = match may.get(&c) {
                Some(ok) => *ok,
                None => {
                    let ok = actor.may_read(conn, c)?;
                    may.insert(c, ok);
                    ok
                }
            };
            if ok {
                found.push((r, c, s, sel));
            }
        }
        // Which cases hold each selector, for "also in".
        let mut holders: HashMap<Selector, BTreeSet<i64>> = HashMap::new();
        for (_, c, _, sel) in &found {
            for s in sel {
                holders.entry(s.clone()).or_default().insert(*c);
            }
        }
        let mut titles: HashMap<i64, (String, String)> = HashMap::new();
        let mut hits = Vec::new();
        for (r, c, s, sel) in found {
            let Some(row) = store::record_by_row(conn, r)? else {
                continue;
            };
            let v = node.storage.record_view(&row)?;
            let (case_id, case_title) = match titles.get(&c) {
                Some(t) => t.clone(),
                None => {
                    let case = cases::load_ref(node, conn, c)?;
                    let t = (case.id.to_string(), case.meta.title.clone());
                    titles.insert(c, t.clone());
                    t
                }
            };
            let mut also: BTreeSet<i64> = BTreeSet::new();
            for s in &sel {
                also.extend(holders.get(s).into_iter().flatten().filter(|x| **x != c));
            }
            let mut also_in = Vec::new();
            for other in also {
                if let Some((id, _)) = titles.get(&other) {
                    also_in.push(id.clone());
                } else {
                    also_in.push(cases::load_ref(node, conn, other)?.id.to_string());
                }
            }
            hits.push(Hit {
                case: case_id,
                case_title,
                record: v.id.clone(),
                record_type: v.record_type.clone(),
                summary: v.summary(),
                score: s,
                selectors: sel,
                also_in,
            });
        }
        let mut ev = Event::new(Action::Search)
            .records(hits.iter().map(|h| h.record.clone()))
            .detail(format!(
                "query {:?}{}: {} result(s)",
                crate::short(text),
                q.kind
                    .map(|k| format!(" (type {})", k.name()))
                    .unwrap_or_default(),
                hits.len()
            ));
        if let Some(c) = &only_case {
            ev = ev.case(c.id);
        }
        audit::append_alone(node, actor, ev)?;
        Ok(hits)
    })
}
