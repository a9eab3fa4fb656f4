//! Authority graphs (DESIGN.md): one pure resolution of a set of signed
//! operations into state, used by case control logs and the federation trust
//! registry alike.
//!
//! Operations name their parents (the operations their author had seen), so
//! they form a DAG. The rules:
//! - An operation is *authorized* if its author had the authority for it in the
//!   state of its own causal past (its ancestors), not in whatever the resolving
//!   node knows now.
//! - Removal wins: an operation by X that is concurrent with (neither before nor
//!   after) an authorized operation removing X is discarded. Removals themselves
//!   are never discarded this way, so two leads (or admins) that remove each
//!   other concurrently are both removed.
//! - State is the fold of the operations that are authorized and not discarded,
//!   in one deterministic topological order: parents first, ties by hash.
//!
//! An operation whose parents are not all present is left out, as are its
//! descendants. The same set of operations gives the same state on every node
//! in any arrival order (property-tested in `control`).

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

/// [`resolve`]; `incremental` reuses the state of the previous operation's
/// causal past where it can (false only in tests, as the reference).
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
    // Strict ancestors of each operation, by position.
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
    let mut authorized: Vec<Result<(), String>> = Vec::with_capacity(n);
    // Authorized removals so far: (position, removed node).
    let mut removals: Vec<(usize, [u8; 32])> = Vec::new();
    // Whether op `j` is discarded within a set (given as a membership test):
    // an authorized removal of its author in the set, concurrent with it.
    let discarded = |j: usize,
                     in_set: &dyn Fn(usize) -> bool,
                     removals: &[(usize, [u8; 32])],
                     anc: &[Bits]|
     -> bool {
        let op = order[j];
        op.op_removes().is_none()
            && removals.iter().any(|&(r, removed)| {
                removed == op.op_author() && r != j && in_set(r) && !anc[j].has(r) && !anc[r].has(j)
            })
    };
    let counts: Vec<usize> = anc.iter().map(Bits::count).collect();
    // The state of the previous operation's causal past.
    let mut past: Option<R::State> = None;
    for i in 0..n {
        // When i's causal past is exactly i-1's plus i-1 (a chain: one writer
        // after another, the usual case), its state is the previous one with
        // i-1 applied: everything else in it is an ancestor of i-1, so i-1 is
        // concurrent with none of it and discards nothing, and is discarded by
        // nothing. This keeps a long history linear instead of quadratic.
        let chain = incremental && i > 0 && anc[i].has(i - 1) && counts[i] == counts[i - 1] + 1;
        let mut state = None;
        if chain {
            state = past.take();
            if authorized[i - 1].is_ok() {
                rules.apply(&mut state, order[i - 1]);
            }
        } else {
            for j in 0..i {
                if anc[i].has(j)
                    && authorized[j].is_ok()
                    && !discarded(j, &|r| anc[i].has(r), &removals, &anc)
                {
                    rules.apply(&mut state, order[j]);
                }
            }
        }
        let verdict = rules.authorize(state.as_ref(), order[i]);
        past = state;
        if verdict.is_ok()
            && let Some(removed) = order[i].op_removes()
        {
            removals.push((i, removed));
        }
        authorized.push(verdict);
    }
    let mut out = Folded::default();
    let mut state = None;
    for (j, verdict) in authorized.into_iter().enumerate() {
        let h = order[j].op_hash();
        if verdict.is_ok() {
            out.folds.insert(h);
        }
        match verdict {
            Err(reason) => out.rejected.push((h, reason)),
            Ok(()) if discarded(j, &|_| true, &removals, &anc) => out.rejected.push((
                h,
                "its author was removed concurrently (removal wins)".into(),
            )),
            Ok(()) => {
                rules.apply(&mut state, order[j]);
                out.applied.push(h);
            }
        }
    }
    let applied: BTreeSet<Hash> = out.applied.iter().copied().collect();
    let referenced: BTreeSet<Hash> = order
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
        // Mutual removal: both are removed.
        let ops = [
            op(10, &[], 1, Some(2), None),
            op(20, &[10], 1, None, Some(2)),
            op(30, &[10], 2, None, Some(1)),
        ];
        let refs: Vec<&Op> = ops.iter().collect();
        assert_eq!(resolve(&Members, &refs).0.unwrap(), BTreeSet::new());
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
}
