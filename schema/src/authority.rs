//! Authority graphs (DESIGN.md): the one deterministic order in which a set of
//! signed operations is folded into state. Used by case control logs and the
//! federation trust registry alike.
//!
//! Operations name their parents (the operations their author had seen). An
//! operation is applied only once all its parents are present and applied or
//! rejected; ready operations are taken in hash order, so the same set gives the
//! same order, and so the same state, on every node whatever the arrival order.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use casesync_crypto::Hash;

use crate::SchemaError;
use crate::codec::{Reader, Writer};

pub trait AuthorityOp {
    fn op_hash(&self) -> Hash;
    fn op_parents(&self) -> &[Hash];
}

/// The outcome of a fold.
#[derive(Debug, Default)]
pub struct Folded {
    /// Operations that took effect, in fold order.
    pub applied: Vec<Hash>,
    /// Operations that were well-formed but not authorized, with the reason.
    pub rejected: Vec<(Hash, String)>,
    /// Applied operations no applied operation names as parent: the parents of
    /// the next operation written.
    pub heads: Vec<Hash>,
}

/// Folds `ops` in deterministic topological order, calling `apply` on each; an
/// `Err(reason)` rejects that operation (it has no effect). Operations with a
/// parent that is not in `ops` are left out, as are their descendants.
pub fn fold<O: AuthorityOp>(ops: &[&O], mut apply: impl FnMut(&O) -> Result<(), String>) -> Folded {
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
    let mut out = Folded::default();
    while let Some(Reverse(h)) = ready.pop() {
        let Some(op) = by_hash.get(&h) else { continue };
        match apply(op) {
            Ok(()) => out.applied.push(h),
            Err(reason) => out.rejected.push((h, reason)),
        }
        for c in children.get(&h).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(c) {
                *n -= 1;
                if *n == 0 {
                    ready.push(Reverse(*c));
                }
            }
        }
    }
    let referenced: BTreeSet<Hash> = out
        .applied
        .iter()
        .filter_map(|h| by_hash.get(h))
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
    out
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

    struct Op(Hash, Vec<Hash>);
    impl AuthorityOp for Op {
        fn op_hash(&self) -> Hash {
            self.0
        }
        fn op_parents(&self) -> &[Hash] {
            &self.1
        }
    }

    fn h(b: u8) -> Hash {
        Hash([b; 32])
    }

    #[test]
    fn order_is_the_same_for_any_arrival_order_and_parents_come_first() {
        let ops = [
            Op(h(9), vec![]),
            Op(h(3), vec![h(9)]),
            Op(h(5), vec![h(9)]),
            Op(h(1), vec![h(3), h(5)]),
            Op(h(7), vec![h(42)]),
        ];
        let mut seen = Vec::new();
        let refs: Vec<&Op> = ops.iter().collect();
        let a = fold(&refs, |o| {
            seen.push(o.0);
            Ok(())
        });
        assert_eq!(
            seen,
            vec![h(9), h(3), h(5), h(1)],
            "missing-parent op left out"
        );
        let rev: Vec<&Op> = ops.iter().rev().collect();
        let b = fold(&rev, |_| Ok(()));
        assert_eq!(a.applied, b.applied);
        assert_eq!(a.heads, vec![h(1)]);
    }

    #[test]
    fn rejected_ops_do_not_count_as_heads() {
        let ops = [Op(h(9), vec![]), Op(h(3), vec![h(9)])];
        let refs: Vec<&Op> = ops.iter().collect();
        let f = fold(&refs, |o| {
            if o.0 == h(3) {
                Err("no".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(f.heads, vec![h(9)]);
        assert_eq!(f.rejected.len(), 1);
    }
}
