//! Deconfliction between agencies (`casesync match`): does a partner already
//! hold any of these selectors? Asked and answered by private set
//! intersection (`casesync_crypto::oprf`, RFC 9497), so the asker learns
//! which of its selectors the partner holds (with an opaque handle of the
//! case and the partner's contact) and the partner learns only how many
//! were asked. Neither can test selectors offline: the partner sees blinded
//! elements only, and the asker cannot evaluate the partner's function
//! without asking, which the partner counts against a daily quota.
//!
//! The answering side keeps a set (`match_set`): for each selector of each
//! record, a tag of `F(k, selector)` and the case's handle sealed under a
//! key only `F(k, selector)` gives. It is filled lazily from the records
//! written since it was last filled (computing `F` costs about 0.1 ms a
//! selector, too much to add to every write). Deny by default: a node
//! answers only the peers and organisations its policy names.

use std::collections::HashMap;

use casesync_crypto::oprf::{self, MatchSecret};
use casesync_schema::record::RecordType;
use casesync_schema::record::ReleasableTo;
use casesync_schema::selectors::{self, Selector, SelectorKind};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use crate::access::Need;
use crate::audit::{self, Action, Actor, Event};
use crate::net::Client;
use crate::net::protocol::{SyncRequest, SyncResponse};
use crate::{Node, NodeError, Result, cases, store};

/// Most blinded selectors in one request (the asker splits larger sets).
pub const MAX_BATCH: usize = 4096;
/// Entries of the set in one page (65,536 x 60 B: under 4 MiB).
pub const PAGE_ENTRIES: usize = 65_536;
/// Bytes of a sealed hit: nonce, the 16-byte case handle, AEAD tag.
pub const HIT_LEN: usize = casesync_crypto::aead::NONCE_LEN + 16 + casesync_crypto::aead::TAG_LEN;
/// Bytes of one entry of a page: tag, sealed hit.
pub const ENTRY_LEN: usize = oprf::TAG_LEN + HIT_LEN;
/// Selectors a partner may have evaluated per day unless the policy says.
pub const DEFAULT_PER_DAY: u64 = 10_000;
/// Most selectors one `match` asks about.
pub const MAX_SELECTORS: usize = 1_000_000;
/// Most pages the asker reads (a partner cannot keep it reading forever).
const MAX_PAGES: usize = 4096;
/// Records filled into the set per transaction.
const FILL_BATCH: i64 = 2_000;
/// Records an answer files before it replies; more are filed on a thread of
/// their own while the asker is told to ask again (a request must not wait
/// past the protocol's timeout for a million records).
const FILL_INLINE: u64 = 20_000;
/// How long the asker waits before asking a preparing partner again.
const PREPARING_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

const POLICY_KEY: &str = "match_policy";
const STAMP_KEY: &str = "match_stamp";

/// Who may ask this node, how much, and who they are told to contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// PeerIds or organisations (as enrolled) that may ask; `*`: every
    /// enrolled node of the federation. Empty: nobody (the default).
    pub allow: Vec<String>,
    /// Selectors one partner may have evaluated per day (UTC).
    pub per_day: u64,
    /// Given with each hit; by default this node's name and organisation.
    pub contact: Option<String>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            allow: Vec::new(),
            per_day: DEFAULT_PER_DAY,
            contact: None,
        }
    }
}

impl Policy {
    /// Whether a node with this PeerId and organisation may ask.
    pub fn permits(&self, peer: &str, org: &str) -> bool {
        self.allow
            .iter()
            .any(|a| a == "*" || a == peer || (!org.is_empty() && a.eq_ignore_ascii_case(org)))
    }

    fn check(&self) -> Result<()> {
        if self.allow.len() > 256 || self.allow.iter().any(|a| a.is_empty() || a.len() > 128) {
            return Err(NodeError::Refused(
                "a match policy names at most 256 peers or organisations, each 1 to 128 characters"
                    .into(),
            ));
        }
        if self.per_day > 10_000_000 {
            return Err(NodeError::Refused("--per-day is at most 10,000,000".into()));
        }
        if self
            .contact
            .as_ref()
            .is_some_and(|c| c.trim().is_empty() || c.len() > 256)
        {
            return Err(NodeError::Refused(
                "a contact is 1 to 256 characters".into(),
            ));
        }
        Ok(())
    }
}

/// What a partner may have evaluated today, after it asks for `asked` more:
/// the new count, or, if that would pass `per_day`, how many it had left.
pub fn take_quota(used: u64, asked: u64, per_day: u64) -> std::result::Result<u64, u64> {
    match used.checked_add(asked) {
        Some(n) if n <= per_day => Ok(n),
        _ => Err(per_day.saturating_sub(used)),
    }
}

/// Days since 1970-01-01 (UTC): the quota's period.
fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// This node's policy (the default if none was set).
pub fn policy(node: &Node) -> Result<Policy> {
    crate::settings::load(node, POLICY_KEY, "match policy")
}

/// `casesync match policy ...`: sets who may ask this node (the federation's
/// trust, so an admin's or the operator's call), audited.
pub fn set_policy(node: &Node, actor: &Actor, p: Policy) -> Result<Policy> {
    audit::audited(node, actor, Action::MatchPolicy, None, None, || {
        actor.require(Need::Trust)?;
        p.check()?;
        let ev = Event::new(Action::MatchPolicy).detail(format!(
            "allow {}; {} selectors per partner per day; contact {}",
            if p.allow.is_empty() {
                "nobody".to_string()
            } else {
                p.allow.join(", ")
            },
            p.per_day,
            p.contact
                .as_deref()
                .unwrap_or("(this node's name and organisation)")
        ));
        crate::settings::save(node, actor, POLICY_KEY, &p, ev)?;
        Ok(p)
    })
}

/// The sealed hit for one selector of a record of the case `case_id`: the
/// case's handle, readable only with `F(k, selector)`, bound to its tag.
fn hit_for(
    storage: &crate::sealing::StorageKeys,
    secret: &MatchSecret,
    case_id: &[u8; 16],
) -> Result<([u8; 16], Vec<u8>)> {
    let tag = secret.tag();
    let hit = secret
        .hit_key()
        .seal(&tag, &storage.match_handle(case_id))?;
    Ok((tag, hit))
}

/// Serializes fills: two answers at once must not both compute the set.
static FILLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn filled_up_to(node: &Node) -> Result<i64> {
    Ok(store::meta_stamp(node.store.conn(), STAMP_KEY)?)
}

/// Records written since the set was last filled.
pub fn unfiled(node: &Node) -> Result<u64> {
    Ok(store::count_records_changed_after(
        node.store.conn(),
        filled_up_to(node)?,
    )?)
}

/// Brings the set up to date with every record written since it was last
/// filled; returns how many records were (re)filed (a record changed by
/// entries far apart may count twice).
pub fn refresh(node: &Node) -> Result<u64> {
    use rayon::prelude::*;
    let _one = FILLING.lock().unwrap_or_else(|p| p.into_inner());
    let conn = node.store.conn();
    let stamp = filled_up_to(node)?;
    let upto = store::last_entry_id(conn)?;
    if upto <= stamp {
        return Ok(0);
    }
    let key = node.storage.match_key()?;
    let case_ids: HashMap<i64, [u8; 16]> = cases::list(node)?
        .into_iter()
        .map(|c| (c.case_ref, c.id.0))
        .collect();
    let region = Some(node.card.country.as_str());
    let (mut cursor, mut filed) = ((stamp, i64::MAX), 0u64);
    loop {
        // A record changed by entries of two pages is filed twice, from its
        // current view both times: the same rows.
        let links = store::records_changed_between(conn, cursor, upto, FILL_BATCH)?;
        let Some(last) = links.last() else { break };
        cursor = (last.entry, last.row);
        let mut wanted: Vec<i64> = links.iter().map(|l| l.row).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut rows = Vec::with_capacity(wanted.len());
        for row in wanted {
            rows.extend(store::record_by_row(conn, row)?);
        }
        type Filed = (i64, i64, Vec<([u8; 16], Vec<u8>)>);
        let storage = &node.storage;
        let computed: Vec<Filed> = rows
            .par_iter()
            .map(|r| -> Result<Filed> {
                let view = storage.record_view(r)?;
                let Some(case_id) = case_ids.get(&r.case_ref) else {
                    return Ok((r.row, r.case_ref, Vec::new()));
                };
                let mut out = Vec::new();
                if let Ok(t) = view.record_type.parse::<RecordType>() {
                    for s in selectors::of_record(t, &view.fields, region) {
                        let secret = key.output(&s.key_bytes())?;
                        out.push(hit_for(storage, &secret, case_id)?);
                    }
                }
                out.sort();
                out.dedup_by(|a, b| a.0 == b.0);
                Ok((r.row, r.case_ref, out))
            })
            .collect::<Result<_>>()?;
        node.store.write(|tx| -> Result<()> {
            for (row, case_ref, filed) in &computed {
                store::replace_match_rows(tx, *row, *case_ref, filed)?;
            }
            Ok(())
        })?;
        filed += computed.len() as u64;
    }
    node.store
        .write(|tx| store::set_meta_stamp(tx, STAMP_KEY, upto))?;
    Ok(filed)
}

/// The enrolled organisation and country of `peer`, if it may ask at all.
fn asker(node: &Node, peer: &PeerId) -> Result<(String, String, Policy)> {
    let who = peer.to_base58();
    let st = crate::trust::load(node.store.conn())?
        .ok_or_else(|| NodeError::Refused("this node belongs to no federation".into()))?;
    let card = st
        .by_peer_id(&who)
        .filter(|n| !n.revoked)
        .map(|n| n.card.clone())
        .ok_or_else(|| NodeError::Refused("not an enrolled node".into()))?;
    let p = policy(node)?;
    if !p.permits(&who, &card.org) {
        return Err(NodeError::Refused(format!(
            "this node's match policy does not allow {} ({}) to ask; its admin can (`casesync match policy --allow ...`)",
            who, card.org
        )));
    }
    Ok((card.org, card.country, p))
}

/// Answers a partner's blinded selectors: policy, then its daily quota,
/// then one evaluation with a proof. Audited with the count only: the
/// answering node never learns what was asked.
pub fn answer_evaluate(
    node: &Node,
    actor: &Actor,
    peer: &PeerId,
    blinded: &[serde_bytes::ByteBuf],
) -> Result<SyncResponse> {
    let who = peer.to_base58();
    let refuse = |e: NodeError| -> Result<SyncResponse> {
        audit::append_alone(
            node,
            actor,
            Event::new(Action::MatchAnswer)
                .peer(who.clone())
                .refused(format!("{} selector(s) asked: {e}", blinded.len())),
        )?;
        Ok(SyncResponse::Refused {
            reason: e.to_string(),
        })
    };
    let policy = match asker(node, peer) {
        Ok((_, _, p)) => p,
        Err(e) => return refuse(e),
    };
    if blinded.is_empty() || blinded.len() > MAX_BATCH {
        return Err(NodeError::Protocol(format!(
            "a match request carries 1 to {MAX_BATCH} selectors, not {}",
            blinded.len()
        )));
    }
    let bytes: Vec<Vec<u8>> = blinded.iter().map(|b| b.to_vec()).collect();
    // Checked before it is counted: a malformed request costs no quota.
    if !oprf::well_formed(&bytes) {
        return Err(NodeError::Protocol(
            "a blinded selector is not a valid group element".into(),
        ));
    }
    let day = today();
    let asked = blinded.len() as u64;
    let taken = node
        .store
        .write(|tx| -> Result<std::result::Result<u64, u64>> {
            let used = store::match_quota_used(tx, &who, day)?;
            let t = take_quota(used, asked, policy.per_day);
            if let Ok(n) = t {
                store::set_match_quota_used(tx, &who, day, n)?;
                audit::append(
                    node,
                    actor,
                    tx,
                    Event::new(Action::MatchAnswer)
                        .peer(who.clone())
                        .detail(format!(
                            "evaluated {asked} blinded selector(s); {} of {} left today",
                            policy.per_day - n,
                            policy.per_day
                        )),
                )?;
            }
            Ok(t)
        })?;
    let used = match taken {
        Ok(n) => n,
        Err(left) => {
            return refuse(NodeError::Refused(format!(
                "rate limit: {left} of {} selectors left today for this node; ask again tomorrow (UTC) or ask its admin to raise --per-day",
                policy.per_day
            )));
        }
    };
    let key = node.storage.match_key()?;
    let (evaluated, proof) = key.evaluate_blinded(&bytes).map_err(|_| {
        NodeError::Protocol("a blinded selector is not a valid group element".into())
    })?;
    Ok(SyncResponse::MatchEvaluated {
        public_key: key.public_key().to_vec(),
        evaluated: evaluated
            .iter()
            .map(|e| serde_bytes::ByteBuf::from(e.to_vec()))
            .collect(),
        proof: proof.to_vec(),
        left_today: policy.per_day - used,
    })
}

/// A page of this node's set for `peer`, after tag `after`: what it holds,
/// less records whose releasable_to leaves the peer out, and other
/// agencies' H2 records (unless the peer is of that agency).
pub fn answer_set(node: &Node, peer: &PeerId, after: &[u8]) -> Result<SyncResponse> {
    let (org, country, policy) = match asker(node, peer) {
        Ok(a) => a,
        Err(e) => {
            return Ok(SyncResponse::Refused {
                reason: e.to_string(),
            });
        }
    };
    if after.len() > oprf::TAG_LEN {
        return Err(NodeError::Protocol("a set cursor is a 16-byte tag".into()));
    }
    // A fill under way, or too large to finish within the request: fill on
    // a thread of its own and say so; the asker asks again.
    let busy = FILLING.try_lock().is_err();
    let left = if busy { 0 } else { unfiled(node)? };
    // Tests set a small limit to take this path without a million records.
    let inline = std::env::var("CASESYNC_MATCH_FILL_INLINE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FILL_INLINE);
    if busy || left > inline {
        if !busy {
            let handle = node.try_clone()?;
            std::thread::spawn(move || {
                if let Err(e) = refresh(&handle) {
                    tracing::warn!(target: "casesync", "filing records for deconfliction failed: {e}");
                }
            });
        }
        return Ok(SyncResponse::MatchPreparing { records_left: left });
    }
    refresh(node)?;
    let conn = node.store.conn();
    let (rows, more) = store::match_page(conn, after, PAGE_ENTRIES)?;
    let registry = crate::trust::load(conn)?;
    let own_org = crate::cases::own_labels(node, conn)?.org;
    let mut releasable: HashMap<i64, bool> = HashMap::new();
    let mut entries = Vec::with_capacity(rows.len() * ENTRY_LEN);
    let mut last: Option<(&[u8], i64)> = None;
    for r in &rows {
        if last == Some((&r.tag[..], r.case_ref))
            || r.tag.len() != oprf::TAG_LEN
            || r.hit.len() != HIT_LEN
        {
            continue;
        }
        if r.restricted {
            let ok = match releasable.get(&r.record_ref) {
                Some(ok) => *ok,
                None => {
                    let ok = match store::record_by_row(conn, r.record_ref)? {
                        Some(row) => {
                            let view = node.storage.record_view(&row)?;
                            // Another agency's H2 record tells no one outside
                            // the case it exists, but that agency itself.
                            let h2_ok = !view.handling.is_h2() || {
                                let case = crate::cases::load_ref(node, conn, r.case_ref)?;
                                let h = crate::cases::Handling::new(registry.as_ref(), &case);
                                !h.others_h2(&view, &own_org)
                                    || h.originator_org(&view.originator)
                                        .is_some_and(|o| o.eq_ignore_ascii_case(&org))
                            };
                            h2_ok && ReleasableTo(view.releasable_to).permits(&org, &country)
                        }
                        None => false,
                    };
                    releasable.insert(r.record_ref, ok);
                    ok
                }
            };
            if !ok {
                continue;
            }
        }
        last = Some((&r.tag[..], r.case_ref));
        entries.extend_from_slice(&r.tag);
        entries.extend_from_slice(&r.hit);
    }
    let contact = policy
        .contact
        .unwrap_or_else(|| format!("{}, {}", node.card.name, node.card.org));
    Ok(SyncResponse::MatchSet {
        public_key: node.storage.match_key()?.public_key().to_vec(),
        entries,
        more,
        contact,
    })
}

/// Domain of a follow-up's signature.
const FOLLOW_UP_CONTEXT: &[u8] = b"casesync/match-follow-up/v1";
/// Most bytes of a follow-up's message.
pub const MAX_FOLLOW_UP_MESSAGE: usize = 2000;

/// After a hit, a request to the partner about its case: join it, or share
/// what it holds. Signed by the asking node, so the partner keeps proof of
/// who asked; filed in the partner's audit log under the case the handle
/// names, where its lead sees it (`audit list --case CASE --action match.request`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FollowUp {
    /// The partner's PeerId: a request signed for one node is no use at another.
    pub to: String,
    pub handle: String,
    /// `join` or `share`.
    pub kind: String,
    pub message: String,
    pub time: String,
}

impl FollowUp {
    fn check(&self) -> Result<()> {
        if !matches!(self.kind.as_str(), "join" | "share") {
            return Err(NodeError::Refused(
                "a follow-up asks to `join` or to `share`".into(),
            ));
        }
        if self.message.trim().is_empty() || self.message.len() > MAX_FOLLOW_UP_MESSAGE {
            return Err(NodeError::Refused(format!(
                "a follow-up's message is 1 to {MAX_FOLLOW_UP_MESSAGE} bytes"
            )));
        }
        if self.handle.len() != 32 || casesync_crypto::hash::from_hex(&self.handle).is_none() {
            return Err(NodeError::Refused(
                "a case handle is 32 hex digits, as `match` printed it".into(),
            ));
        }
        Ok(())
    }
}

/// Files a partner's signed follow-up under the case its handle names.
pub fn answer_follow_up(
    node: &Node,
    actor: &Actor,
    peer: &PeerId,
    key: &[u8; 32],
    request: &[u8],
    signature: &[u8],
) -> Result<SyncResponse> {
    let who = peer.to_base58();
    let refuse = |e: NodeError| -> Result<SyncResponse> {
        audit::append_alone(
            node,
            actor,
            Event::new(Action::MatchRequest)
                .peer(who.clone())
                .refused(e.to_string()),
        )?;
        Ok(SyncResponse::Refused {
            reason: e.to_string(),
        })
    };
    let (org, _, _) = match asker(node, peer) {
        Ok(a) => a,
        Err(e) => return refuse(e),
    };
    if request.len() > 4 * MAX_FOLLOW_UP_MESSAGE {
        return Err(NodeError::Protocol("a follow-up is at most 8 KiB".into()));
    }
    // Verified before it is decoded.
    let sig = <[u8; casesync_crypto::SIGNATURE_LEN]>::try_from(signature)
        .map_err(|_| NodeError::Protocol("a follow-up's signature is 64 bytes".into()))?;
    if casesync_crypto::identity::verify(key, FOLLOW_UP_CONTEXT, request, &sig).is_err() {
        return Err(NodeError::Protocol(
            "a follow-up's signature does not verify".into(),
        ));
    }
    let f: FollowUp = match serde_json::from_slice(request) {
        Ok(f) => f,
        Err(e) => return refuse(NodeError::Refused(format!("malformed follow-up: {e}"))),
    };
    if let Err(e) = f.check() {
        return refuse(e);
    }
    if f.to != node.card.peer_id() {
        return refuse(NodeError::Refused(
            "the follow-up was signed for another node".into(),
        ));
    }
    let wanted = casesync_crypto::hash::from_hex(&f.handle).unwrap_or_default();
    let case = cases::list(node)?
        .into_iter()
        .find(|c| casesync_crypto::hash::ct_eq(&node.storage.match_handle(&c.id.0), &wanted));
    let Some(case) = case else {
        return refuse(NodeError::Refused(format!(
            "no case of this node has the handle {}",
            f.handle
        )));
    };
    audit::append_alone(
        node,
        actor,
        Event::new(Action::MatchRequest)
            .case(case.id)
            .peer(who)
            .detail(format!(
                "{org} asks to {} after a deconfliction hit (handle {}), signed {}: {}",
                f.kind,
                f.handle,
                casesync_crypto::hash::hex(&sig[..8]),
                f.message
            )),
    )?;
    Ok(SyncResponse::MatchFollowUpFiled)
}

/// Sends `peer` a signed follow-up about its case `handle`; audited here as
/// a disclosure with the message.
pub async fn follow_up(
    node: &Node,
    actor: &Actor,
    client: &Client,
    peer: PeerId,
    handle: &str,
    kind: &str,
    message: &str,
) -> Result<()> {
    let f = FollowUp {
        to: peer.to_base58(),
        handle: handle.trim().to_ascii_lowercase(),
        kind: kind.trim().to_string(),
        message: message.trim().to_string(),
        time: crate::clock::now().1,
    };
    let r = async {
        f.check()?;
        let request = serde_json::to_vec(&f)
            .map_err(|e| NodeError::Integrity(format!("cannot encode the follow-up: {e}")))?;
        let signature = node.keys.sign(FOLLOW_UP_CONTEXT, &request).to_vec();
        let federation = crate::trust::load(node.store.conn())?
            .ok_or_else(|| NodeError::Refused("this node belongs to no federation".into()))?
            .federation
            .0
            .to_vec();
        let answer = client
            .request(
                peer,
                SyncRequest::MatchFollowUp {
                    federation,
                    request,
                    signature,
                },
            )
            .await
            .map_err(|e| unanswered(&peer, e))?;
        match answer {
            SyncResponse::MatchFollowUpFiled => Ok(()),
            other => Err(refused_by(&peer, other)),
        }
    }
    .await;
    let ev = Event::new(Action::MatchRequest).peer(peer.to_base58());
    let what = format!(
        "asked to {} case handle {}: {}",
        f.kind, f.handle, f.message
    );
    let ev = match &r {
        Ok(()) => ev.detail(what),
        Err(e) => ev.refused(format!("{what}: {e}")),
    };
    audit::append_alone(node, actor, ev)?;
    r
}

/// One selector the partner holds.
#[derive(Clone, Debug, Serialize)]
pub struct MatchHit {
    #[serde(rename = "type")]
    pub kind: SelectorKind,
    pub selector: String,
    /// The partner's opaque handle of a case that holds it (hex): quote it
    /// to the contact; it means nothing elsewhere.
    pub handle: String,
}

/// What `casesync match` learned.
#[derive(Clone, Debug, Serialize)]
pub struct MatchReport {
    pub peer: String,
    pub asked: usize,
    pub hits: Vec<MatchHit>,
    /// Who to contact at the partner about a hit.
    pub contact: String,
    /// Selectors this node may still ask the partner about today.
    pub left_today: u64,
}

/// The selectors of every record of a case, canonical, without repeats.
pub fn selectors_of_case(node: &Node, actor: &Actor, case_text: &str) -> Result<Vec<Selector>> {
    let conn = node.store.conn();
    let case = cases::load_by_text(node, conn, case_text)?;
    cases::require_access(actor, conn, &case, Need::Read)?;
    let views = node
        .store
        .read(|tx| crate::browse::case_views(node, tx, &case))?;
    let region = Some(node.card.country.as_str());
    let mut out: Vec<Selector> = views
        .views
        .iter()
        .filter_map(|v| v.record_type.parse::<RecordType>().ok().map(|t| (t, v)))
        .flat_map(|(t, v)| selectors::of_record(t, &v.fields, region))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Selectors from a file, one per line: `TYPE:VALUE` or a value whose type
/// is guessed (a line that could be several is asked as each). Blank lines
/// and `#` comments are skipped; a line that is no selector is an error
/// naming it.
pub fn selectors_from_text(text: &str, region: Option<&str>) -> Result<Vec<Selector>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let typed = line
            .split_once(':')
            .and_then(|(k, v)| k.parse::<SelectorKind>().ok().map(|k| (k, v)));
        let found = match typed {
            Some((k, v)) => vec![
                selectors::parse(k, v, region)
                    .map_err(|e| NodeError::Refused(format!("line {}: {e}", i + 1)))?,
            ],
            None => selectors::guess(line, region),
        };
        if found.is_empty() {
            return Err(NodeError::Refused(format!(
                "line {}: {:?} is no selector (write TYPE:VALUE, e.g. phone:+40722123456)",
                i + 1,
                crate::short(line)
            )));
        }
        out.extend(found);
        if out.len() > MAX_SELECTORS {
            return Err(NodeError::Refused(format!(
                "at most {MAX_SELECTORS} selectors in one match"
            )));
        }
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(NodeError::Refused("the file names no selector".into()));
    }
    Ok(out)
}

/// A request that got no answer: most often a partner that does not (yet)
/// know this node as enrolled and drops the connection.
fn unanswered(peer: &PeerId, e: String) -> NodeError {
    NodeError::Io(format!(
        "{peer} did not answer: {e} (if it closed the connection, it may not know this node as enrolled yet: sync the federation with it or its admin first)"
    ))
}

fn refused_by(peer: &PeerId, r: SyncResponse) -> NodeError {
    match r {
        SyncResponse::Refused { reason } => NodeError::Refused(format!("{peer} refused: {reason}")),
        _ => NodeError::Protocol(format!(
            "{peer} answered a match request with something else"
        )),
    }
}

/// The address to dial for `text`: a full address, or a PeerId whose
/// address was given with `casesync peer add`.
pub fn peer_address(node: &Node, text: &str) -> Result<libp2p::Multiaddr> {
    let text = text.trim();
    if text.starts_with('/') {
        return text.parse().map_err(|e| {
            NodeError::Refused(format!("`{}` is not an address ({e})", crate::short(text)))
        });
    }
    let suffix = format!("/p2p/{text}");
    store::peers(node.store.conn())?
        .into_iter()
        .find(|p| p.addr.ends_with(&suffix))
        .and_then(|p| p.addr.parse().ok())
        .ok_or_else(|| {
            NodeError::Refused(format!(
                "no address known for {}: add it with `casesync peer add /ip4/HOST/tcp/PORT/p2p/{}`",
                crate::short(text),
                crate::short(text)
            ))
        })
}

/// Asks `peer` (connected through `client`) which of `sels` it holds.
/// Audited on this node with every selector asked and every hit, sealed;
/// a failure is audited as refused.
pub async fn ask(
    node: &Node,
    actor: &Actor,
    client: &Client,
    peer: PeerId,
    case: Option<&str>,
    sels: &[Selector],
) -> Result<MatchReport> {
    let r = ask_inner(node, client, peer, sels).await;
    let asked: Vec<String> = sels
        .iter()
        .map(|s| format!("{}:{}", s.kind.name(), s.value))
        .collect();
    let mut ev = Event::new(Action::Match).peer(peer.to_base58());
    if let Some(c) = case.and_then(|c| c.trim().parse().ok()) {
        ev = ev.case(c);
    }
    let ev = match &r {
        Ok(rep) => ev.detail(format!(
            "asked {} selector(s): {}; {} held there: {}",
            asked.len(),
            asked.join(", "),
            rep.hits.len(),
            rep.hits
                .iter()
                .map(|h| format!("{}:{} (case {})", h.kind.name(), h.selector, h.handle))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => ev.refused(format!(
            "asked {} selector(s): {}: {e}",
            asked.len(),
            asked.join(", ")
        )),
    };
    audit::append_alone(node, actor, ev)?;
    r
}

async fn ask_inner(
    node: &Node,
    client: &Client,
    peer: PeerId,
    sels: &[Selector],
) -> Result<MatchReport> {
    if sels.is_empty() || sels.len() > MAX_SELECTORS {
        return Err(NodeError::Refused(format!(
            "a match asks about 1 to {MAX_SELECTORS} selectors"
        )));
    }
    let federation = crate::trust::load(node.store.conn())?
        .ok_or_else(|| NodeError::Refused("this node belongs to no federation".into()))?
        .federation
        .0
        .to_vec();
    let inputs: Vec<Vec<u8>> = sels.iter().map(Selector::key_bytes).collect();
    let mut secrets: Vec<MatchSecret> = Vec::with_capacity(inputs.len());
    let mut public_key: Option<Vec<u8>> = None;
    let mut left_today = 0;
    for chunk in inputs.chunks(MAX_BATCH) {
        let blinding = oprf::blind(chunk)?;
        let request = SyncRequest::MatchEvaluate {
            federation: federation.clone(),
            blinded: blinding
                .messages
                .iter()
                .map(|m| serde_bytes::ByteBuf::from(m.to_vec()))
                .collect(),
        };
        let answer = client
            .request(peer, request)
            .await
            .map_err(|e| unanswered(&peer, e))?;
        let SyncResponse::MatchEvaluated {
            public_key: pk,
            evaluated,
            proof,
            left_today: left,
        } = answer
        else {
            return Err(refused_by(&peer, answer));
        };
        if public_key.as_ref().is_some_and(|k| *k != pk) {
            return Err(NodeError::Protocol(format!(
                "{peer} answered under two keys in one match"
            )));
        }
        let evaluated: Vec<Vec<u8>> = evaluated.into_iter().map(|e| e.into_vec()).collect();
        secrets.extend(
            blinding
                .finalize(chunk, &evaluated, &proof, &pk)
                .map_err(|_| {
                    NodeError::Protocol(format!(
                        "{peer}'s answer does not prove it used one key for every selector"
                    ))
                })?,
        );
        public_key = Some(pk);
        left_today = left;
    }
    let public_key = public_key.unwrap_or_default();
    let mut by_tag: HashMap<[u8; oprf::TAG_LEN], Vec<usize>> = HashMap::new();
    for (i, s) in secrets.iter().enumerate() {
        by_tag.entry(s.tag()).or_default().push(i);
    }
    let mut hits = Vec::new();
    let mut after: Vec<u8> = Vec::new();
    let mut pages = 0;
    while pages < MAX_PAGES {
        let answer = client
            .request(
                peer,
                SyncRequest::MatchSet {
                    federation: federation.clone(),
                    after: after.clone(),
                },
            )
            .await
            .map_err(|e| unanswered(&peer, e))?;
        if let SyncResponse::MatchPreparing { .. } = answer {
            // The caller bounds the whole match in time.
            tokio::time::sleep(PREPARING_RETRY).await;
            continue;
        }
        pages += 1;
        let SyncResponse::MatchSet {
            public_key: pk,
            entries,
            more,
            contact: c,
        } = answer
        else {
            return Err(refused_by(&peer, answer));
        };
        if pk != public_key {
            return Err(NodeError::Protocol(format!(
                "{peer} listed its set under another key than it evaluated with"
            )));
        }
        if entries.len() % ENTRY_LEN != 0 {
            return Err(NodeError::Protocol(format!(
                "{peer} sent a malformed set page"
            )));
        }
        let contact = crate::short(&c).to_string();
        for e in entries.chunks_exact(ENTRY_LEN) {
            let (tag, hit) = e.split_at(oprf::TAG_LEN);
            // Tags ascend, so a page cannot send the asker back.
            if tag < after.as_slice() {
                return Err(NodeError::Protocol(format!(
                    "{peer} sent its set out of order"
                )));
            }
            after = tag.to_vec();
            let Ok(tag) = <[u8; oprf::TAG_LEN]>::try_from(tag) else {
                continue;
            };
            for &i in by_tag.get(&tag).into_iter().flatten() {
                let handle = secrets[i].hit_key().open(&tag, hit).map_err(|_| {
                    NodeError::Protocol(format!("{peer} sent a hit that does not open"))
                })?;
                hits.push(MatchHit {
                    kind: sels[i].kind,
                    selector: sels[i].value.clone(),
                    handle: casesync_crypto::hash::hex(&handle),
                });
            }
        }
        if !more {
            hits.sort_by(|a, b| {
                (a.kind, &a.selector, &a.handle).cmp(&(b.kind, &b.selector, &b.handle))
            });
            hits.dedup_by(|a, b| {
                a.kind == b.kind && a.selector == b.selector && a.handle == b.handle
            });
            return Ok(MatchReport {
                peer: peer.to_base58(),
                asked: sels.len(),
                hits,
                contact,
                left_today,
            });
        }
    }
    Err(NodeError::Protocol(format!(
        "{peer} listed more than {MAX_PAGES} pages"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_denies_by_default_and_names_peers_or_organisations() {
        let p = Policy::default();
        assert!(!p.permits("12D3KooWA", "RO Police"));
        let p = Policy {
            allow: vec!["12D3KooWA".into(), "Europol".into()],
            ..Policy::default()
        };
        assert!(p.permits("12D3KooWA", "RO Police"));
        assert!(p.permits("12D3KooWB", "EUROPOL"));
        assert!(!p.permits("12D3KooWB", "NCA"));
        assert!(!p.permits("12D3KooWB", ""));
        let all = Policy {
            allow: vec!["*".into()],
            ..Policy::default()
        };
        assert!(all.permits("anyone", "any"));
    }

    #[test]
    fn the_quota_counts_every_selector_and_never_overflows() {
        assert_eq!(take_quota(0, 10, 10), Ok(10));
        assert_eq!(take_quota(10, 1, 10), Err(0));
        assert_eq!(take_quota(4, 7, 10), Err(6));
        assert_eq!(take_quota(u64::MAX, 1, 10), Err(0));
        assert_eq!(take_quota(3, u64::MAX, 10), Err(7));
    }

    #[test]
    fn a_selector_file_reads_typed_and_guessed_lines() {
        let s = selectors_from_text(
            "# asked by the RO unit\nphone:+40 (722) 123-456\n\nRO49AAAA1B31007593840000\n",
            Some("RO"),
        )
        .unwrap();
        assert!(
            s.iter()
                .any(|x| x.kind == SelectorKind::Phone && x.value == "+40722123456")
        );
        assert!(s.iter().any(|x| x.kind == SelectorKind::Iban));
        let e = selectors_from_text("phone:not a number", Some("RO")).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(selectors_from_text("# nothing\n", None).is_err());
    }
}
