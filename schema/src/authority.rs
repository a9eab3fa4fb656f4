//! Authority graphs (docs/design.md): one pure resolution of a set of signed
//! operations into state, used by case control logs and the federation trust
//! registry alike.
//!
//! Operations name their parents (the operations their author had seen), so
//! they form a DAG. The rules:
//! - An operation is *authorized* if its author had the authority for it in the
//!   state of its own causal past (its ancestors), not in whatever the resolving
//!   node knows now.
//! - Removal wins: an operation by X that is concurrent with (neither before nor
//!   after) a removal of X that takes effect is void, X's own removals
//!   included, whatever parents it claims: a stolen key of a removed node, or a
//!   removed lead's backup, changes nothing. Authority that came from a void
//!   operation is void too (validity is judged in the state of the *valid*
//!   operations of the causal past).
//! - Removals that void each other (two leads or admins removing each other
//!   while apart) are broken by seniority: the genesis's author first, then each
//!   node after the one that made it an admin or lead. See `resolve_with`.
//! - State is the fold of the operations that are authorized and not discarded,
//!   in one deterministic topological order: parents first, ties by hash.
//!
//! An operation whose parents are not all present is left out, as are its
//! descendants. The same set of operations gives the same state on every node
//! in any arrival order (property-tested in `control`).
//!
//! Longer than most files here: about 590 lines of code and 490 of tests (the
//! exhaustive check and the reference resolution live next to what they check).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use casesync_crypto::Hash;

use crate::SchemaError;
use crate::codec::{Reader, Writer};

pub trait AuthorityOp {
    fn op_hash(&self) -> Hash;
    fn op_parents(&self) -> &[Hash];
    /// The node that signed the operation.
    fn op_author(&self) -> [u8; 32];
    /// The node this operation removes (a member removal, a revocation), if any.
    fn op_removes(&self) -> Option<[u8; 32]>;
    /// The node this operation makes an admin or a lead, if any: what
    /// seniority is counted from.
    fn op_grants(&self) -> Option<[u8; 32]>;
}

/// How a state is built from operations: whether an operation is authorized in
/// a given state (`None` before the genesis), and its effect once it is.
pub trait Rules {
    type Op: AuthorityOp;
    type State;
    fn authorize(&self, state: Option<&Self::State>, op: &Self::Op) -> Result<(), String>;
    /// The effect of an operation that is authorized and not discarded; only a
    /// genesis sees `None`. Effects must tolerate concurrent effects already
    /// applied (e.g. a key wrap for a member removed meanwhile is ignored).
    fn apply(&self, state: &mut Option<Self::State>, op: &Self::Op);
    /// Whether someone in the state can still manage it (an admin, a lead):
    /// no set of concurrent removals may take that away.
    fn has_authority(&self, state: &Self::State) -> bool;
}

/// The outcome of a resolution.
#[derive(Debug, Default)]
pub struct Folded {
    /// Operations that took effect, in fold order.
    pub applied: Vec<Hash>,
    /// Operations that were well-formed but took no effect, with the reason.
    pub rejected: Vec<(Hash, String)>,
    /// Applied operations no applied operation names as parent: the parents of
    /// the next operation written.
    pub heads: Vec<Hash>,
    /// Operations whose author held the authority in their own causal past
    /// (applied, or discarded because a removal of the author was concurrent):
    /// the only ones a node stores. Which operations these are does not depend
    /// on the arrival order, so every node stores the same set.
    pub folds: BTreeSet<Hash>,
}

/// A set of positions in the topological order.
#[derive(Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn union(&mut self, o: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The deterministic topological order of `ops` (parents first, ties by hash),
/// leaving out operations with a missing parent and their descendants.
fn topological<'a, O: AuthorityOp>(ops: &[&'a O]) -> Vec<&'a O> {
    let by_hash: HashMap<Hash, &O> = ops.iter().map(|o| (o.op_hash(), *o)).collect();
    let mut waiting: HashMap<Hash, usize> = HashMap::new();
    let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
    let mut ready = BinaryHeap::new();
    for (h, op) in &by_hash {
        if op.op_parents().iter().any(|p| !by_hash.contains_key(p)) {
            continue;
        }
        waiting.insert(*h, op.op_parents().len());
        for p in op.op_parents() {
            children.entry(*p).or_default().push(*h);
        }
        if op.op_parents().is_empty() {
            ready.push(Reverse(*h));
        }
    }
    let mut order = Vec::with_capacity(by_hash.len());
    while let Some(Reverse(h)) = ready.pop() {
        let Some(op) = by_hash.get(&h) else { continue };
        order.push(*op);
        for c in children.get(&h).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse(*c));
                }
            }
        }
    }
    order
}

/// Resolves `ops` under `rules` into a state (`None` if no genesis took effect).
pub fn resolve<R: Rules>(rules: &R, ops: &[&R::Op]) -> (Option<R::State>, Folded) {
    resolve_with(rules, ops, true)
}

/// Whether a removal takes effect, as decided in `resolve_with`'s rounds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Open,
    In,
    Out,
}

/// The operations in fold order with their ancestors, fixed for a resolution.
struct Graph<'a, O> {
    order: Vec<&'a O>,
    /// Strict ancestors of each operation, by position.
    anc: Vec<Bits>,
    counts: Vec<usize>,
}

const REMOVAL_WINS: &str = "its author was removed concurrently (removal wins)";
const LAST_AUTHORITY: &str =
    "with concurrent removals that took effect it would leave no admin or lead";

/// One fold of the graph given which removals take effect (`attackers`, by
/// position): an operation is valid if it is a removal decided `In`, or it is
/// not concurrent with an attacker removing its author and its author had the
/// authority in the state of the *valid* operations of its causal past (so
/// authority that came from a void operation is void too). Returns each
/// operation's verdict and the state folded from the valid ones.
fn pass<R: Rules>(
    rules: &R,
    g: &Graph<'_, R::Op>,
    decision: &[Decision],
    out_reason: &[String],
    attackers: &[usize],
    incremental: bool,
) -> (Vec<Result<(), String>>, Option<R::State>) {
    let n = g.order.len();
    let mut by_removed: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for &r in attackers {
        if let Some(x) = g.order[r].op_removes() {
            by_removed.entry(x).or_default().push(r);
        }
    }
    let attacked = |i: usize| {
        by_removed
            .get(&g.order[i].op_author())
            .into_iter()
            .flatten()
            .any(|&r| r != i && !g.anc[i].has(r) && !g.anc[r].has(i))
    };
    let mut verdicts: Vec<Result<(), String>> = Vec::with_capacity(n);
    // The state of the previous operation's causal past.
    let mut past: Option<R::State> = None;
    for i in 0..n {
        // When i's causal past is exactly i-1's plus i-1 (a chain: one writer
        // after another, the usual case), its state is the previous one with
        // i-1 applied if valid. This keeps a long history linear instead of
        // quadratic.
        let chain =
            incremental && i > 0 && g.anc[i].has(i - 1) && g.counts[i] == g.counts[i - 1] + 1;
        let mut state = None;
        if chain {
            state = past.take();
            if verdicts[i - 1].is_ok() {
                rules.apply(&mut state, g.order[i - 1]);
            }
        } else {
            for (j, v) in verdicts.iter().enumerate() {
                if g.anc[i].has(j) && v.is_ok() {
                    rules.apply(&mut state, g.order[j]);
                }
            }
        }
        let verdict = match decision[i] {
            Decision::In => Ok(()),
            Decision::Out => Err(out_reason[i].clone()),
            Decision::Open if attacked(i) => Err(REMOVAL_WINS.into()),
            Decision::Open => rules.authorize(state.as_ref(), g.order[i]),
        };
        past = state;
        verdicts.push(verdict);
    }
    let mut state = None;
    for (op, v) in g.order.iter().zip(&verdicts) {
        if v.is_ok() {
            rules.apply(&mut state, op);
        }
    }
    (verdicts, state)
}

/// Seniority (docs/design.md): the genesis's author first, then each node after
/// the node that granted it authority, siblings in fold order. A node's key is
/// its granter's key plus the position of the grant, so a node is always
/// junior to whoever made it an admin or lead: a revoked key cannot make
/// itself an accomplice senior to the one that revoked it.
fn seniority<O: AuthorityOp>(
    order: &[&O],
    verdicts: &[Result<(), String>],
) -> HashMap<[u8; 32], Vec<usize>> {
    let mut key: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, (op, v)) in order.iter().zip(verdicts).enumerate() {
        if v.is_err() {
            continue;
        }
        if op.op_parents().is_empty() {
            key.entry(op.op_author()).or_default();
        }
        if let Some(granted) = op.op_grants()
            && !key.contains_key(&granted)
            && let Some(k) = key.get(&op.op_author())
        {
            let mut k = k.clone();
            k.push(i);
            key.insert(granted, k);
        }
    }
    key
}

/// [`resolve`]; `incremental` reuses the state of the previous operation's
/// causal past where it can (false only in tests, as the reference).
///
/// Which removals take effect is decided in rounds, since a removal voids
/// the removed node's concurrent operations, its own removals included, and
/// so may void another removal or the authority another removal stood on:
/// - fold with the removals decided so far (`In`) as the only attackers; an
///   undecided removal that is not valid even then is `Out` for good;
/// - fold again with every remaining undecided removal attacking too; those
///   still valid are `In` (nothing can void them);
/// - if none is, the removals void each other in a cycle (two leads removing
///   each other while apart): the most senior author's removals are decided
///   as if only they attacked, and those still valid are `In`.
///
/// Each round decides at least one removal, so at most one round per removal.
/// Last, if the removals that took effect leave no admin or lead, they are
/// undone one by one (the most senior removed node first) until one is back.
fn resolve_with<R: Rules>(
    rules: &R,
    ops: &[&R::Op],
    incremental: bool,
) -> (Option<R::State>, Folded) {
    let order = topological(ops);
    let n = order.len();
    let pos: HashMap<Hash, usize> = order
        .iter()
        .enumerate()
        .map(|(i, o)| (o.op_hash(), i))
        .collect();
    let mut anc: Vec<Bits> = Vec::with_capacity(n);
    for op in &order {
        let mut a = Bits::new(n);
        for p in op.op_parents() {
            if let Some(&j) = pos.get(p) {
                a.set(j);
                let pa = anc[j].clone();
                a.union(&pa);
            }
        }
        anc.push(a);
    }
    let counts: Vec<usize> = anc.iter().map(Bits::count).collect();
    let g = Graph { order, anc, counts };
    let removals: Vec<usize> = (0..n)
        .filter(|&i| g.order[i].op_removes().is_some())
        .collect();
    let mut decision = vec![Decision::Open; n];
    let mut out_reason = vec![String::new(); n];
    let mut decided_in: Vec<usize> = Vec::new();
    // No removal attacking: whether each author held the authority in its own
    // causal past. That is what a node stores (it does not depend on what else
    // arrives), and the first round's fold.
    let (first, first_state) = pass(rules, &g, &decision, &out_reason, &[], incremental);
    // Seniority by the grants each author could make in its own causal past,
    // fixed before any removal is decided (a grantee is junior to its granter
    // whether or not the grant is later void). Only removals ask for it.
    let key = match removals.is_empty() {
        true => HashMap::new(),
        false => seniority(&g.order, &first),
    };
    let senior = |node: [u8; 32]| match key.get(&node) {
        Some(k) => (0, k.clone()),
        None => (1, Vec::new()),
    };
    let folds: BTreeSet<Hash> = (0..n)
        .filter(|&i| first[i].is_ok())
        .map(|i| g.order[i].op_hash())
        .collect();
    let mut round = Some((first, first_state));
    let (verdicts, state) = loop {
        let (opt, opt_state) = match round.take() {
            Some(r) => r,
            None => pass(rules, &g, &decision, &out_reason, &decided_in, incremental),
        };
        let mut open = Vec::new();
        for &r in &removals {
            if decision[r] != Decision::Open {
                continue;
            }
            match &opt[r] {
                Err(why) => {
                    decision[r] = Decision::Out;
                    out_reason[r] = why.clone();
                }
                Ok(()) => open.push(r),
            }
        }
        if open.is_empty() {
            break (opt, opt_state);
        }
        let attackers: Vec<usize> = decided_in.iter().chain(&open).copied().collect();
        let (pes, pes_state) = pass(rules, &g, &decision, &out_reason, &attackers, incremental);
        let unvoidable: Vec<usize> = open.iter().copied().filter(|&r| pes[r].is_ok()).collect();
        if unvoidable.len() == open.len() {
            // Every undecided removal is In; deciding so changes no verdict.
            for &r in &open {
                decision[r] = Decision::In;
                decided_in.push(r);
            }
            break (pes, pes_state);
        }
        let chosen = if unvoidable.is_empty() {
            // A cycle: the most senior author's removals are decided first,
            // as if only they attacked (what junior nodes signed does not
            // decide between them); those still valid stand.
            let top = open
                .iter()
                .map(|&r| senior(g.order[r].op_author()))
                .min()
                .unwrap_or((1, Vec::new()));
            let mine: Vec<usize> = open
                .iter()
                .copied()
                .filter(|&r| senior(g.order[r].op_author()) == top)
                .collect();
            let attackers: Vec<usize> = decided_in.iter().chain(&mine).copied().collect();
            let (top_pass, _) = pass(rules, &g, &decision, &out_reason, &attackers, incremental);
            let valid: Vec<usize> = mine
                .iter()
                .copied()
                .filter(|&r| top_pass[r].is_ok())
                .collect();
            if valid.is_empty() {
                // Its removals void one another (its own key forked): the
                // first in fold order stands.
                mine.into_iter().take(1).collect()
            } else {
                valid
            }
        } else {
            unvoidable
        };
        for r in chosen {
            decision[r] = Decision::In;
            decided_in.push(r);
        }
    };
    // Removals that each left an admin or lead while apart (two admins
    // revoking themselves at once) may together leave none: then the removal
    // of the most senior removed node is undone, and so on until one is left.
    // This depends only on the removals that took effect, so nothing a void
    // key signed changes which.
    let (verdicts, state) = {
        let (mut verdicts, mut state) = (verdicts, state);
        let mut undo: Vec<usize> = decided_in.clone();
        undo.sort_by_key(|&r| (senior(g.order[r].op_removes().unwrap_or_default()), r));
        let mut undo = undo.into_iter();
        while !state.as_ref().is_some_and(|s| rules.has_authority(s)) {
            let Some(r) = undo.next() else { break };
            decision[r] = Decision::Out;
            out_reason[r] = LAST_AUTHORITY.into();
            decided_in.retain(|&x| x != r);
            (verdicts, state) = pass(rules, &g, &decision, &out_reason, &decided_in, incremental);
        }
        (verdicts, state)
    };
    let mut out = Folded {
        folds,
        ..Folded::default()
    };
    for (op, verdict) in g.order.iter().zip(verdicts) {
        let h = op.op_hash();
        match verdict {
            Ok(()) => out.applied.push(h),
            Err(reason) => out.rejected.push((h, reason)),
        }
    }
    let applied: BTreeSet<Hash> = out.applied.iter().copied().collect();
    let referenced: BTreeSet<Hash> = g
        .order
        .iter()
        .filter(|o| applied.contains(&o.op_hash()))
        .flat_map(|o| o.op_parents().iter().copied())
        .collect();
    let mut heads: Vec<Hash> = out
        .applied
        .iter()
        .copied()
        .filter(|h| !referenced.contains(h))
        .collect();
    heads.sort();
    out.heads = heads;
    (state, out)
}

/// `subset` of `graph` in an order where every operation comes after those of
/// its parents that are in the subset (ties by hash): a receiver that takes a
/// prefix of it can place every operation of that prefix.
pub fn parents_first(graph: &HashMap<Hash, Vec<Hash>>, subset: &BTreeSet<Hash>) -> Vec<Hash> {
    let mut waiting: HashMap<Hash, usize> = HashMap::new();
    let mut children: HashMap<Hash, Vec<Hash>> = HashMap::new();
    let mut ready = BinaryHeap::new();
    for h in subset {
        let parents: Vec<&Hash> = graph
            .get(h)
            .into_iter()
            .flatten()
            .filter(|p| subset.contains(p))
            .collect();
        waiting.insert(*h, parents.len());
        for p in parents {
            children.entry(*p).or_default().push(*h);
        }
        if waiting[h] == 0 {
            ready.push(Reverse(*h));
        }
    }
    let mut out = Vec::with_capacity(subset.len());
    while let Some(Reverse(h)) = ready.pop() {
        out.push(h);
        for c in children.get(&h).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse(*c));
                }
            }
        }
    }
    out
}

/// One hash of a set of operations (by hash, in any order): what sync
/// compares, so two nodes holding as many but different operations differ.
pub fn set_digest(context: &[u8], hashes: &[Hash]) -> Hash {
    let mut sorted: Vec<&Hash> = hashes.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut w = Vec::with_capacity(context.len() + 8 + 32 * sorted.len());
    w.extend_from_slice(context);
    w.extend_from_slice(&(sorted.len() as u64).to_be_bytes());
    for h in sorted {
        w.extend_from_slice(&h.0);
    }
    casesync_crypto::hash::sha256(&w)
}

/// The operations of a graph (hash -> parents) that no operation of it names
/// as a parent, sorted: what a peer that holds the same graph also lists.
pub fn graph_heads(graph: &HashMap<Hash, Vec<Hash>>) -> Vec<Hash> {
    let named: BTreeSet<&Hash> = graph.values().flatten().collect();
    let mut heads: Vec<Hash> = graph
        .keys()
        .filter(|h| !named.contains(h))
        .copied()
        .collect();
    heads.sort();
    heads
}

/// The operations of `graph` that a peer whose heads are `their_heads` may
/// lack: every one that is not one of those heads or their ancestors. A head
/// this node does not hold subtracts nothing, so a peer that forked is sent
/// more than it needs, never less.
pub fn not_below(graph: &HashMap<Hash, Vec<Hash>>, their_heads: &[Hash]) -> BTreeSet<Hash> {
    let mut known: BTreeSet<Hash> = BTreeSet::new();
    let mut stack: Vec<Hash> = their_heads
        .iter()
        .filter(|h| graph.contains_key(h))
        .copied()
        .collect();
    while let Some(h) = stack.pop() {
        if !known.insert(h) {
            continue;
        }
        for p in graph.get(&h).into_iter().flatten() {
            if graph.contains_key(p) && !known.contains(p) {
                stack.push(*p);
            }
        }
    }
    graph
        .keys()
        .filter(|h| !known.contains(h))
        .copied()
        .collect()
}

/// The header every authority operation starts with: version, scope (a case id
/// or a federation id), author, parents, and the author's clock (for people).
pub(crate) struct OpHeader<const S: usize> {
    pub scope: [u8; S],
    pub author: [u8; 32],
    pub parents: Vec<Hash>,
    pub time_ms: i64,
}

/// Writes an operation header; parents are sorted and deduplicated first, so the
/// same causal past always encodes the same way.
pub(crate) fn write_header(
    w: &mut Writer,
    version: u8,
    scope: &[u8],
    author: &[u8; 32],
    parents: &mut Vec<Hash>,
    time_ms: i64,
) {
    parents.sort();
    parents.dedup();
    w.u8(version);
    w.raw(scope);
    w.raw(author);
    w.u32(parents.len() as u32);
    for p in parents.iter() {
        w.raw(p.as_bytes());
    }
    w.i64(time_ms);
}

/// Reads what [`write_header`] wrote (the version byte was checked by `verify_signed`).
pub(crate) fn read_header<const S: usize>(
    r: &mut Reader<'_>,
    max_parents: usize,
) -> Result<OpHeader<S>, SchemaError> {
    r.u8()?;
    let scope = r.array()?;
    let author = r.array()?;
    let n = r.count(max_parents, 32)?;
    let mut parents = Vec::with_capacity(n);
    for _ in 0..n {
        parents.push(Hash(r.array()?));
    }
    Ok(OpHeader {
        scope,
        author,
        parents,
        time_ms: r.i64()?,
    })
}

/// Calls `f` with every order of `v` (from position `k` on): the property
/// tests of control logs and the registry deliver operations in each.
#[cfg(test)]
pub(crate) fn permute(v: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, f);
        v.swap(k, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy graph: members who may add and remove members.
    struct Op {
        hash: Hash,
        parents: Vec<Hash>,
        author: u8,
        add: Option<u8>,
        remove: Option<u8>,
    }
    impl std::fmt::Debug for Op {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let parents: Vec<String> = self.parents.iter().map(|p| p.short()).collect();
            write!(
                f,
                "{} by {} add {:?} remove {:?} after {parents:?}",
                self.hash.short(),
                self.author,
                self.add,
                self.remove
            )
        }
    }
    impl AuthorityOp for Op {
        fn op_hash(&self) -> Hash {
            self.hash
        }
        fn op_parents(&self) -> &[Hash] {
            &self.parents
        }
        fn op_author(&self) -> [u8; 32] {
            [self.author; 32]
        }
        fn op_removes(&self) -> Option<[u8; 32]> {
            self.remove.map(|r| [r; 32])
        }
        fn op_grants(&self) -> Option<[u8; 32]> {
            self.add.map(|a| [a; 32])
        }
    }
    struct Members;
    impl Rules for Members {
        type Op = Op;
        type State = BTreeSet<u8>;
        fn authorize(&self, st: Option<&BTreeSet<u8>>, op: &Op) -> Result<(), String> {
            match st {
                None if op.parents.is_empty() => Ok(()),
                None => Err("before genesis".into()),
                Some(s) if s.contains(&op.author) => Ok(()),
                Some(_) => Err("not a member".into()),
            }
        }
        fn has_authority(&self, st: &BTreeSet<u8>) -> bool {
            !st.is_empty()
        }
        fn apply(&self, st: &mut Option<BTreeSet<u8>>, op: &Op) {
            let s = st.get_or_insert_with(|| [op.author].into());
            if let Some(a) = op.add {
                s.insert(a);
            }
            if let Some(r) = op.remove {
                s.remove(&r);
            }
        }
    }

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }
    fn op(hash: u8, parents: &[u8], author: u8, add: Option<u8>, remove: Option<u8>) -> Op {
        Op {
            hash: h(hash),
            parents: parents.iter().map(|p| h(*p)).collect(),
            author,
            add,
            remove,
        }
    }

    /// Random histories (chains with forks, concurrent adds and removals):
    /// the incremental resolution equals the one that folds every causal
    /// past from scratch.
    #[test]
    fn incremental_resolution_equals_the_reference() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for _ in 0..300 {
            let mut ops = vec![op(1, &[], 1, Some(2), None)];
            for k in 2..=40u8 {
                let p1 = 1 + next(u64::from(k - 1)) as u8;
                let mut parents = vec![if next(4) == 0 { p1 } else { k - 1 }];
                if next(5) == 0 {
                    let p2 = 1 + next(u64::from(k - 1)) as u8;
                    if !parents.contains(&p2) {
                        parents.push(p2);
                    }
                }
                let author = 1 + next(4) as u8;
                let (add, remove) = match next(3) {
                    0 => (None, Some(1 + next(5) as u8)),
                    _ => (Some(1 + next(5) as u8), None),
                };
                ops.push(op(k, &parents, author, add, remove));
            }
            let refs: Vec<&Op> = ops.iter().collect();
            let (sa, a) = resolve_with(&Members, &refs, true);
            let (sb, b) = resolve_with(&Members, &refs, false);
            assert_eq!(sa, sb);
            assert_eq!(a.applied, b.applied);
            assert_eq!(a.rejected, b.rejected);
            assert_eq!(a.heads, b.heads);
        }
    }

    #[test]
    fn sync_sends_what_is_not_below_the_peers_heads_and_digests_see_content() {
        // 1 <- 2 <- 3 and 1 <- 4: two branches of equal length.
        let graph: HashMap<Hash, Vec<Hash>> = [
            (h(1), vec![]),
            (h(2), vec![h(1)]),
            (h(3), vec![h(2)]),
            (h(4), vec![h(1)]),
        ]
        .into();
        assert_eq!(graph_heads(&graph), vec![h(3), h(4)]);
        assert_eq!(not_below(&graph, &[h(3)]), [h(4)].into());
        assert_eq!(not_below(&graph, &[h(2), h(4)]), [h(3)].into());
        // A head this node does not hold subtracts nothing of its own.
        assert_eq!(not_below(&graph, &[h(9)]).len(), 4);
        assert!(not_below(&graph, &[h(3), h(4)]).is_empty());
        let all: BTreeSet<Hash> = graph.keys().copied().collect();
        assert_eq!(parents_first(&graph, &all), vec![h(1), h(2), h(3), h(4)]);
        // Same count, other content: the digests differ; order is irrelevant.
        let a = set_digest(b"t", &[h(1), h(2), h(3)]);
        assert_ne!(a, set_digest(b"t", &[h(1), h(2), h(4)]));
        assert_eq!(a, set_digest(b"t", &[h(3), h(1), h(2)]));
    }

    #[test]
    fn order_is_the_same_for_any_arrival_order_and_missing_parents_are_left_out() {
        let ops = [
            op(9, &[], 1, Some(2), None),
            op(3, &[9], 1, Some(3), None),
            op(5, &[9], 2, Some(4), None),
            op(1, &[3, 5], 3, Some(5), None),
            op(7, &[42], 1, Some(6), None),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (sa, a) = resolve(&Members, &refs);
        assert_eq!(a.applied, vec![h(9), h(3), h(5), h(1)]);
        let rev: Vec<&Op> = ops.iter().rev().collect();
        let (sb, b) = resolve(&Members, &rev);
        assert_eq!(a.applied, b.applied);
        assert_eq!(sa, sb);
        assert_eq!(a.heads, vec![h(1)]);
        assert_eq!(sa.unwrap(), [1, 2, 3, 4, 5].into());
    }

    #[test]
    fn authority_comes_from_the_causal_past_and_removal_wins() {
        // 1 creates and adds 2; concurrently 1 removes 2 and 2 adds 3.
        let ops = [
            op(10, &[], 1, Some(2), None),
            op(20, &[10], 1, None, Some(2)),
            op(30, &[10], 2, Some(3), None),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (st, f) = resolve(&Members, &refs);
        assert_eq!(st.unwrap(), [1].into(), "2's concurrent add is discarded");
        assert!(
            f.rejected
                .iter()
                .any(|(x, why)| *x == h(30) && why.contains("removal wins"))
        );
        // Mutual removal: the senior (1 made 2 a member) stays.
        let ops = [
            op(10, &[], 1, Some(2), None),
            op(20, &[10], 1, None, Some(2)),
            op(30, &[10], 2, None, Some(1)),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(resolve(&Members, &refs).0.unwrap(), [1].into());
        // An operation after its author's removal (in its causal past) is not authorized.
        let ops = [
            op(10, &[], 1, Some(2), None),
            op(20, &[10], 1, None, Some(2)),
            op(30, &[20], 2, Some(3), None),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        let (st, f) = resolve(&Members, &refs);
        assert_eq!(st.unwrap(), [1].into());
        assert!(
            f.rejected
                .iter()
                .any(|(x, why)| *x == h(30) && why == "not a member")
        );
    }

    /// The registry's rules in miniature: admins add admins and revoke
    /// admins, revocation is final, and the last admin cannot be revoked.
    #[derive(Clone, Debug, Default, PartialEq)]
    struct Fed {
        admins: BTreeSet<u8>,
        revoked: BTreeSet<u8>,
    }
    struct Admins;
    impl Rules for Admins {
        type Op = Op;
        type State = Fed;
        fn authorize(&self, st: Option<&Fed>, op: &Op) -> Result<(), String> {
            let Some(st) = st else {
                return match op.parents.is_empty() && op.add.is_none() && op.remove.is_none() {
                    true => Ok(()),
                    false => Err("before genesis".into()),
                };
            };
            if !st.admins.contains(&op.author) {
                return Err("not an admin".into());
            }
            match (op.add, op.remove) {
                (Some(x), None) if !st.revoked.contains(&x) && !st.admins.contains(&x) => Ok(()),
                (None, Some(x)) if st.admins.contains(&x) && st.admins.len() > 1 => Ok(()),
                _ => Err("not allowed".into()),
            }
        }
        fn has_authority(&self, st: &Fed) -> bool {
            !st.admins.is_empty()
        }
        fn apply(&self, st: &mut Option<Fed>, op: &Op) {
            let Some(s) = st else {
                *st = Some(Fed {
                    admins: [op.author].into(),
                    revoked: BTreeSet::new(),
                });
                return;
            };
            if let Some(x) = op.add
                && !s.revoked.contains(&x)
            {
                s.admins.insert(x);
            }
            if let Some(x) = op.remove {
                s.admins.remove(&x);
                s.revoked.insert(x);
            }
        }
    }

    /// An operation named by its content, so that two paths of the search that
    /// write the same operation give it the same hash.
    fn signed(author: u8, add: Option<u8>, remove: Option<u8>, parents: Vec<Hash>) -> Op {
        let mut parents = parents;
        parents.sort();
        let mut b = vec![author, add.unwrap_or(0), remove.unwrap_or(0)];
        for p in &parents {
            b.extend_from_slice(&p.0);
        }
        Op {
            hash: casesync_crypto::hash::sha256(&b),
            parents,
            author,
            add,
            remove,
        }
    }

    /// Ancestors (inclusive) of each operation of `ops`, as bit masks.
    fn closures(ops: &[Op]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::with_capacity(ops.len());
        for (i, o) in ops.iter().enumerate() {
            let mut m = 1u32 << i;
            for p in &o.parents {
                if let Some(j) = ops.iter().position(|q| q.hash == *p) {
                    m |= out[j];
                }
            }
            out.push(m);
        }
        out
    }

    struct Checked {
        sets: usize,
        revoked_key_sets: usize,
        cycles: usize,
    }

    /// Every invariant of docs/design.md's authority graphs on one set of operations.
    fn check(ops: &[Op], c: &mut Checked) {
        let refs: Vec<&Op> = ops.iter().collect();
        let (st, f) = resolve(&Admins, &refs);
        // The same state whatever the arrival order.
        let rev: Vec<&Op> = ops.iter().rev().collect();
        let (st2, f2) = resolve(&Admins, &rev);
        assert_eq!(st, st2);
        assert_eq!(f.applied, f2.applied);
        let st = st.expect("genesis");
        // Never without an admin.
        assert!(!st.admins.is_empty(), "no admin left: {ops:?}");
        let applied: BTreeSet<Hash> = f.applied.iter().copied().collect();
        let anc = closures(ops);
        let idx = |h: &Hash| ops.iter().position(|o| o.hash == *h).unwrap();
        let order = topological(&refs);
        let verdicts: Vec<Result<(), String>> = order
            .iter()
            .map(|o| match f.folds.contains(&o.hash) {
                true => Ok(()),
                false => Err(String::new()),
            })
            .collect();
        let key = seniority(&order, &verdicts);
        let removals: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].remove.is_some() && applied.contains(&ops[i].hash))
            .collect();
        let senior = |a: u8, b: u8| match (key.get(&[a; 32]), key.get(&[b; 32])) {
            (Some(ka), Some(kb)) => ka < kb,
            _ => false,
        };
        for &r in &removals {
            let x = ops[r].remove.unwrap();
            // Removal wins: nothing of x concurrent with r applies; among
            // removals that void each other in an odd cycle one must stand,
            // so x's removals are void only where r's author is senior to x.
            for (i, o) in ops.iter().enumerate() {
                let concurrent = anc[r] & (1 << i) == 0 && anc[i] & (1 << r) == 0;
                if o.author == x && concurrent && (o.remove.is_none() || senior(ops[r].author, x)) {
                    assert!(
                        !applied.contains(&o.hash),
                        "{x}'s concurrent op applied: {ops:?} {:?}",
                        f.rejected
                    );
                }
            }
            // A key revoked by a more senior admin changes nothing: leave out
            // what x signed outside r's causal past, and what only builds on
            // it (by x, or by nodes x's void statements made admins), and the
            // state is the same.
            let (Some(kr), Some(kx)) = (key.get(&[ops[r].author; 32]), key.get(&[x; 32])) else {
                continue;
            };
            if kr >= kx {
                continue;
            }
            let mut gone: u32 = 0;
            let mut accomplices: BTreeSet<u8> = BTreeSet::new();
            for (i, o) in ops.iter().enumerate() {
                let stale = o.author == x && anc[r] & (1 << i) == 0;
                let built = anc[i] & gone != 0;
                if stale || built {
                    gone |= 1 << i;
                    if stale && let Some(a) = o.add {
                        accomplices.insert(a);
                    }
                }
            }
            if gone == 0 {
                continue;
            }
            // Made an admin elsewhere too: not only x's accomplice.
            for (i, o) in ops.iter().enumerate() {
                if gone & (1 << i) == 0
                    && let Some(a) = o.add
                {
                    accomplices.remove(&a);
                }
            }
            let honest_built_on_it = ops.iter().enumerate().any(|(i, o)| {
                gone & (1 << i) != 0 && o.author != x && !accomplices.contains(&o.author)
            });
            if honest_built_on_it {
                continue;
            }
            let kept: Vec<&Op> = ops
                .iter()
                .enumerate()
                .filter(|(i, _)| gone & (1 << i) == 0)
                .map(|(_, o)| o)
                .collect();
            let (without, fw) = resolve(&Admins, &kept);
            if !fw.applied.contains(&ops[r].hash) {
                // Without x's statements the revocation takes no effect (it
                // only stood as one side of a cycle): not the case in point.
                continue;
            }
            assert_eq!(
                Some(&st),
                without.as_ref(),
                "revoked key {x} changed state: {ops:?}"
            );
            for i in 0..ops.len() {
                if gone & (1 << i) != 0 {
                    assert!(
                        !applied.contains(&ops[i].hash),
                        "{:?} of revoked {x} applied: {ops:?}",
                        ops[i]
                    );
                }
            }
            c.revoked_key_sets += 1;
        }
        if f.rejected
            .iter()
            .any(|(h, why)| why.contains("removal wins") && ops[idx(h)].remove.is_some())
        {
            c.cycles += 1;
        }
        c.sets += 1;
    }

    /// Depth-first over every set of operations the search can write: each new
    /// operation by any of 4 nodes, adding or revoking any node, with parents
    /// any downward-closed subset of what exists (a stale key writes "before"
    /// its revocation this way), kept if it folds (its author held the
    /// authority in its own causal past: what a node stores).
    fn explore(ops: &mut Vec<Op>, max: usize, seen: &mut BTreeSet<Vec<Hash>>, c: &mut Checked) {
        let mut id: Vec<Hash> = ops.iter().map(|o| o.hash).collect();
        id.sort();
        if !seen.insert(id) {
            return;
        }
        check(ops, c);
        if ops.len() == max {
            return;
        }
        let anc = closures(ops);
        let n = ops.len();
        for mask in 1u32..(1 << n) {
            // Downward closed, with the genesis.
            if mask & 1 == 0 || (0..n).any(|i| mask & (1 << i) != 0 && anc[i] & !mask != 0) {
                continue;
            }
            let parents: Vec<Hash> = (0..n)
                .filter(|&i| {
                    mask & (1 << i) != 0
                        && !(0..n).any(|j| j != i && mask & (1 << j) != 0 && anc[j] & (1 << i) != 0)
                })
                .map(|i| ops[i].hash)
                .collect();
            for author in 1..=4u8 {
                for target in 1..=4u8 {
                    for (add, remove) in [(Some(target), None), (None, Some(target))] {
                        let op = signed(author, add, remove, parents.clone());
                        if ops.iter().any(|o| o.hash == op.hash) {
                            continue;
                        }
                        ops.push(op);
                        let refs: Vec<&Op> = ops.iter().collect();
                        let folds = resolve(&Admins, &refs).1.folds;
                        if folds.contains(&ops[n].hash) {
                            explore(ops, max, seen, c);
                        }
                        ops.pop();
                    }
                }
            }
        }
    }

    /// docs/design.md's invariants, checked exhaustively in a small scope: a
    /// federation created by 1 that made 2 an admin, then every set of up to
    /// `CASESYNC_EXHAUSTIVE_OPS` operations (default 6) by up to 4 nodes that
    /// the search can write, stale-key statements with any parents included.
    #[test]
    fn every_small_history_keeps_the_invariants() {
        let max: usize = std::env::var("CASESYNC_EXHAUSTIVE_OPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(6);
        let g = signed(1, None, None, vec![]);
        let two = signed(1, Some(2), None, vec![g.hash]);
        let mut ops = vec![g, two];
        let mut seen = BTreeSet::new();
        let mut c = Checked {
            sets: 0,
            revoked_key_sets: 0,
            cycles: 0,
        };
        explore(&mut ops, max, &mut seen, &mut c);
        eprintln!(
            "checked {} sets of up to {max} operations; {} with a key revoked by a senior admin signing after; {} with removals voiding each other",
            c.sets, c.revoked_key_sets, c.cycles
        );
        assert!(c.revoked_key_sets > 0 && c.cycles > 0);
    }
}
