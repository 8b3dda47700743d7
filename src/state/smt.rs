//! A compact sparse Merkle tree over 256-bit keys: the committed state root of the account ledger.
//!
//! # Definition (consensus)
//!
//! The tree commits to a *set* of pairs `(key, value_hash)`, each a 32-byte string, with at most
//! one pair per key. `value_hash` is supplied by the caller (typically the SHA-256 of the encoded
//! account); this module never looks inside it. `H` below is SHA-256 and `||` is concatenation.
//!
//! * **Key bits.** Bit `i` (`0 <= i < 256`) of a key is bit `7 - i % 8` of byte `i / 8`, i.e. the
//!   key is read most significant bit first. The subtree at depth `d` reached by the path
//!   `b_0 .. b_{d-1}` holds exactly the pairs whose keys begin with those `d` bits; its left child
//!   (bit `d` = 0) and right child (bit `d` = 1) split it by bit `d`. Bit 0 chooses the root's
//!   child, 0 = left.
//! * **Leaf hash.** `leaf_hash(key, value_hash) = H(0x00 || key || value_hash)` (a 65-byte
//!   message).
//! * **Subtree hash**, by the number of pairs the subtree holds:
//!   * none: 32 zero bytes;
//!   * exactly one, `(k, v)`: `leaf_hash(k, v)`, whatever the subtree's depth. The leaf sits at the
//!     highest level where it is alone; there is no chain of single-child internal nodes above a
//!     lone leaf;
//!   * two or more: `H(0x01 || left_hash || right_hash)` (a 65-byte message) over the hashes of its
//!     two children, computed by the same rules (one of them may be empty, hashing as zeros; this
//!     happens along a shared key prefix).
//! * **Root** = the hash of the whole tree (depth 0). The root of the empty set is 32 zero bytes;
//!   the root of a one-pair set is that pair's leaf hash.
//!
//! Because the shape is a function of the set alone, the root depends only on the set of pairs,
//! not on the order in which they were inserted, replaced or removed. The prefixes `0x00` and
//! `0x01` separate leaf from internal messages, and a leaf hash commits to its full key, so a leaf
//! cannot be moved to another position.
//!
//! # Implementation
//!
//! [`SparseMerkleTree`] keeps the canonical shape at all times: a binary trie of boxed nodes in which
//! an internal node exists exactly where its subtree holds two or more pairs, an absent child is an
//! empty subtree, and a leaf sits where it is alone. Every node caches its hash; an update clears
//! the caches along the path it changed (and a removal collapses single-leaf subtrees back into
//! the leaf), so [`SparseMerkleTree::root`] rehashes only those paths. Depth is at most 256, so
//! recursion is bounded. [`root_of`] computes the same root from scratch, independently of the
//! trie, and is the reference the tree is tested against.

use std::fmt;

use sha2::{Digest, Sha256};

/// A 32-byte key, value hash or node hash.
type Hash = [u8; 32];

/// The hash of an empty subtree (and the root of the empty tree).
const EMPTY: Hash = [0u8; 32];

/// Bit `i` of `key` (most significant first), as a child index: 0 = left, 1 = right.
#[inline]
fn bit(key: &Hash, i: usize) -> usize {
    // `& 31` keeps the index in range without a bounds check; callers pass `i < 256`.
    usize::from((key[(i >> 3) & 31] >> (7 - (i & 7))) & 1)
}

/// The index of the first bit where `a` and `b` differ; 256 when they are equal.
#[inline]
fn first_diff(a: &Hash, b: &Hash) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).map_or(256, |i| i * 8 + (a[i] ^ b[i]).leading_zeros() as usize)
}

/// `H(prefix || a || b)`: a node hash over one 65-byte message.
#[inline]
fn hash65(prefix: u8, a: &Hash, b: &Hash) -> Hash {
    let mut msg = [0u8; 65];
    msg[0] = prefix;
    msg[1..33].copy_from_slice(a);
    msg[33..].copy_from_slice(b);
    Sha256::digest(msg).into()
}

/// The hash of a subtree holding the single pair `(key, value_hash)`: `H(0x00 || key || value_hash)`.
fn leaf_hash(key: &[u8; 32], value_hash: &[u8; 32]) -> [u8; 32] {
    hash65(0x00, key, value_hash)
}

/// The hash of a subtree holding two or more pairs: `H(0x01 || left || right)`.
fn internal_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    hash65(0x01, left, right)
}

/// A trie node. An absent child (`None`) is an empty subtree.
#[derive(Clone)]
enum Node {
    /// A subtree holding exactly one pair.
    Leaf {
        key: Hash,
        value_hash: Hash,
        /// `leaf_hash(key, value_hash)`, once computed.
        hash: Option<Hash>,
    },
    /// A subtree holding two or more pairs, split by the bit at the node's depth.
    Internal {
        children: [Option<Box<Node>>; 2],
        /// `internal_hash(left, right)`, once computed and while nothing below has changed.
        hash: Option<Hash>,
    },
}

impl Node {
    fn leaf(key: Hash, value_hash: Hash) -> Box<Node> {
        Box::new(Node::Leaf { key, value_hash, hash: None })
    }
}

/// An incremental sparse Merkle tree over 256-bit keys; see the [module documentation](self) for
/// the exact definition of its root.
#[derive(Clone, Default)]
pub struct SparseMerkleTree {
    root: Option<Box<Node>>,
    len: usize,
    hashes_computed: u64,
}

impl fmt::Debug for SparseMerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached_root = match self.root.as_deref() {
            None => Some(EMPTY),
            Some(Node::Leaf { hash, .. } | Node::Internal { hash, .. }) => *hash,
        };
        f.debug_struct("SparseMerkleTree")
            .field("len", &self.len)
            .field("cached_root", &cached_root.map(hex::encode))
            .field("hashes_computed", &self.hashes_computed)
            .finish()
    }
}

impl SparseMerkleTree {
    /// An empty tree (root = 32 zero bytes).
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces. Returns the previous value_hash if any.
    pub fn insert(&mut self, key: [u8; 32], value_hash: [u8; 32]) -> Option<[u8; 32]> {
        let (old, _) = insert_at(&mut self.root, 0, &key, value_hash);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes; returns the previous value_hash if any. The tree collapses so that the shape is
    /// exactly as if the key had never been inserted.
    pub fn remove(&mut self, key: &[u8; 32]) -> Option<[u8; 32]> {
        let old = remove_at(&mut self.root, 0, key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value_hash stored under `key`, if any.
    pub fn get(&self, key: &[u8; 32]) -> Option<[u8; 32]> {
        let mut node = self.root.as_deref()?;
        let mut depth = 0;
        loop {
            match node {
                Node::Leaf { key: k, value_hash, .. } => return (k == key).then_some(*value_hash),
                Node::Internal { children, .. } => {
                    node = children[bit(key, depth)].as_deref()?;
                    depth += 1;
                }
            }
        }
    }

    /// The root; recomputes only nodes on paths changed since the last call (cached hashes
    /// elsewhere).
    pub fn root(&mut self) -> [u8; 32] {
        match self.root.as_deref_mut() {
            None => EMPTY,
            Some(node) => node_hash(node, &mut self.hashes_computed),
        }
    }

    /// The number of pairs in the tree.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the tree holds no pairs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// SHA-256 compressions-worth of node hashes computed by `root()` so far (a counter, for tests
    /// that check cost is proportional to the keys touched). It counts node hashes: each leaf or
    /// internal hash computed adds 1 (each is one SHA-256 of a 65-byte message).
    pub fn hashes_computed(&self) -> u64 {
        self.hashes_computed
    }
}

/// Inserts `(key, value_hash)` into the subtree in `slot` at `depth`. Returns the previous value
/// hash and whether the subtree's contents changed (if so, the caches on the path are cleared).
fn insert_at(slot: &mut Option<Box<Node>>, depth: usize, key: &Hash, value_hash: Hash) -> (Option<Hash>, bool) {
    let split_at = match slot.as_deref_mut() {
        None => {
            *slot = Some(Node::leaf(*key, value_hash));
            return (None, true);
        }
        Some(Node::Internal { children, hash }) => {
            let result = insert_at(&mut children[bit(key, depth)], depth + 1, key, value_hash);
            if result.1 {
                *hash = None;
            }
            return result;
        }
        Some(Node::Leaf { key: k, value_hash: v, hash }) => {
            if k == key {
                let old = std::mem::replace(v, value_hash);
                let changed = old != value_hash;
                if changed {
                    *hash = None;
                }
                return (Some(old), changed);
            }
            // Both keys share the path's `depth` bits, so they first differ at or below `depth`.
            first_diff(k, key)
        }
    };
    // A lone leaf meets a second key: the leaf moves down to where the two keys part (its own hash
    // is unchanged), under a chain of single-child internal nodes along their common prefix.
    let new_leaf = Node::leaf(*key, value_hash);
    let Some(existing) = slot.take() else {
        *slot = Some(new_leaf);
        return (None, true);
    };
    let mut children = [None, None];
    let new_side = bit(key, split_at);
    children[new_side] = Some(new_leaf);
    children[new_side ^ 1] = Some(existing);
    let mut node = Box::new(Node::Internal { children, hash: None });
    for d in (depth..split_at).rev() {
        let mut children = [None, None];
        children[bit(key, d)] = Some(node);
        node = Box::new(Node::Internal { children, hash: None });
    }
    *slot = Some(node);
    (None, true)
}

/// Removes `key` from the subtree in `slot` at `depth`, collapsing any subtree left with a single
/// leaf into that leaf. Returns the removed value hash.
fn remove_at(slot: &mut Option<Box<Node>>, depth: usize, key: &Hash) -> Option<Hash> {
    match slot.as_deref_mut()? {
        Node::Leaf { key: k, value_hash, .. } => {
            if k != key {
                return None;
            }
            let old = *value_hash;
            *slot = None;
            Some(old)
        }
        Node::Internal { children, hash } => {
            let old = remove_at(&mut children[bit(key, depth)], depth + 1, key)?;
            *hash = None;
            // The subtree held two or more pairs and lost one. If only one remains, it is a leaf
            // child next to an empty one (a child holding one pair is always a leaf node), and it
            // takes this node's place; a parent left the same way collapses in its turn.
            let lone = match children {
                [None, Some(n)] | [Some(n), None] => matches!(**n, Node::Leaf { .. }),
                _ => false,
            };
            if lone {
                let [left, right] = children;
                let leaf = left.take().or_else(|| right.take());
                *slot = leaf;
            }
            Some(old)
        }
    }
}

/// The hash of `node`, from its cache where present, filling the caches it computes.
fn node_hash(node: &mut Node, counter: &mut u64) -> Hash {
    match node {
        Node::Leaf { hash: Some(h), .. } | Node::Internal { hash: Some(h), .. } => *h,
        Node::Leaf { key, value_hash, hash } => {
            *counter += 1;
            *hash.insert(leaf_hash(key, value_hash))
        }
        Node::Internal { children: [left, right], hash } => {
            let l = left.as_deref_mut().map_or(EMPTY, |n| node_hash(n, counter));
            let r = right.as_deref_mut().map_or(EMPTY, |n| node_hash(n, counter));
            *counter += 1;
            *hash.insert(internal_hash(&l, &r))
        }
    }
}

/// The root of a set computed from scratch (the reference the incremental tree is tested against).
///
/// Where a key appears more than once, its last pair counts (as if the pairs were inserted in
/// order).
pub fn root_of(pairs: &[([u8; 32], [u8; 32])]) -> [u8; 32] {
    let mut sorted: Vec<([u8; 32], [u8; 32])> = pairs.to_vec();
    // Stable: equal keys keep their order, so the last of a run is the last given.
    sorted.sort_by_key(|pair| pair.0);
    let mut set: Vec<([u8; 32], [u8; 32])> = Vec::with_capacity(sorted.len());
    for pair in sorted {
        match set.last_mut() {
            Some(last) if last.0 == pair.0 => *last = pair,
            _ => set.push(pair),
        }
    }
    subtree_root(&set, 0)
}

/// The hash of the subtree at `depth` holding `pairs` (sorted by key, distinct keys, all sharing
/// their first `depth` bits).
fn subtree_root(pairs: &[([u8; 32], [u8; 32])], depth: usize) -> Hash {
    match pairs {
        [] => EMPTY,
        [(key, value_hash)] => leaf_hash(key, value_hash),
        // Two distinct keys differ in some bit below 256, so `depth < 256` here.
        _ => {
            // Sorted order puts the keys with bit `depth` = 0 first.
            let split = pairs.partition_point(|(key, _)| bit(key, depth) == 0);
            let (left, right) = pairs.split_at(split);
            internal_hash(&subtree_root(left, depth + 1), &subtree_root(right, depth + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    fn random_key(rng: &mut StdRng) -> Hash {
        rng.gen()
    }

    /// Key with bit `i` (most significant first) flipped.
    fn flip(mut key: Hash, i: usize) -> Hash {
        key[i / 8] ^= 0x80 >> (i % 8);
        key
    }

    fn pairs_of(map: &BTreeMap<Hash, Hash>) -> Vec<(Hash, Hash)> {
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }

    /// Number of nodes in the trie.
    fn node_count(tree: &SparseMerkleTree) -> usize {
        fn count(node: Option<&Node>) -> usize {
            match node {
                None => 0,
                Some(Node::Leaf { .. }) => 1,
                Some(Node::Internal { children: [l, r], .. }) => 1 + count(l.as_deref()) + count(r.as_deref()),
            }
        }
        count(tree.root.as_deref())
    }

    /// Checks the canonical shape (internal nodes hold two or more leaves, every leaf lies on its
    /// key's path, no depth past 255) and that every cached hash is correct. Returns the leaf
    /// count and the subtree hash.
    fn check(node: Option<&Node>, depth: usize, path: &[usize]) -> (usize, Hash) {
        match node {
            None => (0, EMPTY),
            Some(Node::Leaf { key, value_hash, hash }) => {
                assert!(path.iter().enumerate().all(|(i, b)| bit(key, i) == *b), "leaf off its key's path");
                let h = leaf_hash(key, value_hash);
                if let Some(cached) = hash {
                    assert_eq!(*cached, h, "stale leaf cache");
                }
                (1, h)
            }
            Some(Node::Internal { children: [l, r], hash }) => {
                assert!(depth < 256, "internal node at depth 256");
                let mut p = path.to_vec();
                p.push(0);
                let (nl, hl) = check(l.as_deref(), depth + 1, &p);
                p[depth] = 1;
                let (nr, hr) = check(r.as_deref(), depth + 1, &p);
                assert!(nl + nr >= 2, "internal node with fewer than two leaves");
                let h = internal_hash(&hl, &hr);
                if let Some(cached) = hash {
                    assert_eq!(*cached, h, "stale internal cache");
                }
                (nl + nr, h)
            }
        }
    }

    fn check_tree(tree: &SparseMerkleTree) {
        let (n, _) = check(tree.root.as_deref(), 0, &[]);
        assert_eq!(n, tree.len());
    }

    #[test]
    fn empty_tree_root_is_zero() {
        let mut tree = SparseMerkleTree::new();
        assert_eq!(tree.root(), [0u8; 32]);
        assert_eq!(root_of(&[]), [0u8; 32]);
        assert!(tree.is_empty());
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.get(&[7u8; 32]), None);
        assert_eq!(tree.remove(&[7u8; 32]), None);
        assert_eq!(tree.root(), [0u8; 32]);
        assert_eq!(tree.hashes_computed(), 0);
    }

    #[test]
    fn single_leaf_root_is_its_leaf_hash() {
        let key = [0xabu8; 32];
        let value = [0x11u8; 32];
        let mut expected_msg = vec![0x00];
        expected_msg.extend_from_slice(&key);
        expected_msg.extend_from_slice(&value);
        let expected: Hash = Sha256::digest(&expected_msg).into();

        let mut tree = SparseMerkleTree::new();
        assert_eq!(tree.insert(key, value), None);
        assert_eq!(tree.root(), expected);
        assert_eq!(root_of(&[(key, value)]), expected);
        assert_eq!(tree.hashes_computed(), 1);
        assert_eq!(tree.get(&key), Some(value));
        assert_eq!(tree.len(), 1);
    }

    #[test]
    fn two_leaves_at_the_root_split() {
        // Keys differing in bit 0: the root is H(0x01 || leaf(left) || leaf(right)).
        let a = [0x00u8; 32];
        let b = flip(a, 0);
        let (va, vb) = ([1u8; 32], [2u8; 32]);
        let mut tree = SparseMerkleTree::new();
        tree.insert(b, vb);
        tree.insert(a, va);
        let mut msg = vec![0x01];
        msg.extend_from_slice(&leaf_hash(&a, &va));
        msg.extend_from_slice(&leaf_hash(&b, &vb));
        let expected: Hash = Sha256::digest(&msg).into();
        assert_eq!(tree.root(), expected);
        assert_eq!(root_of(&[(a, va), (b, vb)]), expected);
    }

    #[test]
    fn keys_differing_only_in_the_last_bit() {
        let mut r = rng(1);
        let a = random_key(&mut r);
        let b = flip(a, 255);
        let (va, vb) = (random_key(&mut r), random_key(&mut r));
        let (lo, hi) = if bit(&a, 255) == 0 { ((a, va), (b, vb)) } else { ((b, vb), (a, va)) };

        // By hand: split at depth 255, then 255 single-child levels up to the root.
        let mut expected = internal_hash(&leaf_hash(&lo.0, &lo.1), &leaf_hash(&hi.0, &hi.1));
        for d in (0..255).rev() {
            expected =
                if bit(&a, d) == 0 { internal_hash(&expected, &EMPTY) } else { internal_hash(&EMPTY, &expected) };
        }

        let mut tree = SparseMerkleTree::new();
        tree.insert(a, va);
        let single = tree.root();
        tree.insert(b, vb);
        assert_eq!(tree.root(), expected);
        assert_eq!(root_of(&[(a, va), (b, vb)]), expected);
        assert_eq!(node_count(&tree), 256 + 2);
        check_tree(&tree);
        assert_eq!(tree.get(&a), Some(va));
        assert_eq!(tree.get(&b), Some(vb));

        // Removing either collapses the 256 internal nodes back into a lone leaf.
        tree.remove(&b);
        assert_eq!(node_count(&tree), 1);
        assert_eq!(tree.root(), single);
        assert_eq!(single, leaf_hash(&a, &va));
        tree.insert(b, vb);
        tree.remove(&a);
        assert_eq!(tree.root(), leaf_hash(&b, &vb));
        check_tree(&tree);
    }

    #[test]
    fn insert_then_remove_restores_root_and_shape() {
        let mut r = rng(2);
        let mut tree = SparseMerkleTree::new();
        for _ in 0..1000 {
            tree.insert(random_key(&mut r), random_key(&mut r));
        }
        let a = random_key(&mut r);
        tree.insert(a, random_key(&mut r));
        let before = tree.root();
        let nodes_before = node_count(&tree);

        // A fresh random key.
        let k = random_key(&mut r);
        assert_eq!(tree.insert(k, [9u8; 32]), None);
        assert_ne!(tree.root(), before);
        assert_eq!(tree.remove(&k), Some([9u8; 32]));
        assert_eq!(tree.root(), before);
        assert_eq!(node_count(&tree), nodes_before);

        // A key sharing a 200-bit prefix with `a`: a deep split whose removal must collapse.
        let b = flip(a, 200);
        assert_eq!(tree.insert(b, [7u8; 32]), None);
        assert!(node_count(&tree) > nodes_before + 150);
        check_tree(&tree);
        let split_root = tree.root();
        assert_ne!(split_root, before);
        let mut pairs: Vec<(Hash, Hash)> = Vec::new();
        collect(tree.root.as_deref(), &mut pairs);
        assert_eq!(root_of(&pairs), split_root);
        assert_eq!(tree.remove(&b), Some([7u8; 32]));
        assert_eq!(tree.root(), before);
        assert_eq!(node_count(&tree), nodes_before);
        check_tree(&tree);

        // Also with `a` removed instead: `b` takes its place as a lone leaf.
        let va = tree.get(&a).unwrap_or_default();
        tree.insert(b, [7u8; 32]);
        tree.remove(&a);
        tree.insert(a, va);
        tree.remove(&b);
        assert_eq!(tree.root(), before);
        assert_eq!(node_count(&tree), nodes_before);

        // Replacing and restoring a value also restores the root.
        assert_eq!(tree.insert(a, [1u8; 32]), Some(va));
        assert_ne!(tree.root(), before);
        assert_eq!(tree.insert(a, va), Some([1u8; 32]));
        assert_eq!(tree.root(), before);
    }

    fn collect(node: Option<&Node>, out: &mut Vec<(Hash, Hash)>) {
        match node {
            None => {}
            Some(Node::Leaf { key, value_hash, .. }) => out.push((*key, *value_hash)),
            Some(Node::Internal { children: [l, r], .. }) => {
                collect(l.as_deref(), out);
                collect(r.as_deref(), out);
            }
        }
    }

    #[test]
    fn order_independence() {
        let mut r = rng(3);
        let mut pairs: Vec<(Hash, Hash)> = (0..2000).map(|_| (random_key(&mut r), random_key(&mut r))).collect();
        // Some clustered keys too (shared long prefixes).
        let base = random_key(&mut r);
        for i in [255, 254, 200, 128, 64, 9] {
            pairs.push((flip(base, i), random_key(&mut r)));
        }
        pairs.push((base, random_key(&mut r)));
        let reference = root_of(&pairs);
        let mut first_nodes = None;
        for round in 0..5 {
            pairs.shuffle(&mut r);
            let mut tree = SparseMerkleTree::new();
            for (k, v) in &pairs {
                tree.insert(*k, *v);
            }
            assert_eq!(tree.root(), reference, "round {round}");
            assert_eq!(root_of(&pairs), reference);
            let nodes = node_count(&tree);
            assert_eq!(*first_nodes.get_or_insert(nodes), nodes);
        }
        // Built with detours: extra keys inserted, values replaced, then undone.
        let mut tree = SparseMerkleTree::new();
        let extra: Vec<Hash> = (0..500).map(|_| random_key(&mut r)).collect();
        for (i, (k, v)) in pairs.iter().enumerate() {
            tree.insert(*k, [0xee; 32]);
            if let Some(x) = extra.get(i) {
                tree.insert(*x, *v);
            }
            if i % 7 == 0 {
                tree.root();
            }
            tree.insert(*k, *v);
        }
        for x in &extra {
            tree.remove(x);
        }
        assert_eq!(tree.root(), reference);
        check_tree(&tree);
    }

    #[test]
    fn incremental_root_matches_reference_on_random_ops() {
        let mut r = rng(4);
        let mut tree = SparseMerkleTree::new();
        let mut model: BTreeMap<Hash, Hash> = BTreeMap::new();
        // A small key pool (so replaces and removes hit), clustered around shared prefixes.
        let mut pool: Vec<Hash> = (0..300).map(|_| random_key(&mut r)).collect();
        for i in 0..100 {
            let base = pool[i];
            let d = r.gen_range(0..256);
            pool.push(flip(base, d));
        }
        // Fewer steps in unoptimized builds, where hashing is slow.
        let steps = if cfg!(debug_assertions) { 1_500 } else { 20_000 };
        for step in 0..steps {
            let key = pool[r.gen_range(0..pool.len())];
            match r.gen_range(0..10) {
                0..=4 => {
                    let v = random_key(&mut r);
                    assert_eq!(tree.insert(key, v), model.insert(key, v), "step {step}");
                }
                5..=7 => assert_eq!(tree.remove(&key), model.remove(&key), "step {step}"),
                _ => {
                    // Rewrite the same value: no change.
                    if let Some(v) = model.get(&key) {
                        assert_eq!(tree.insert(key, *v), Some(*v));
                    }
                }
            }
            assert_eq!(tree.len(), model.len());
            assert_eq!(tree.get(&key), model.get(&key).copied());
            if step % 5 == 0 {
                assert_eq!(tree.root(), root_of(&pairs_of(&model)), "step {step}");
            }
            if step % 997 == 0 {
                check_tree(&tree);
            }
        }
        assert_eq!(tree.root(), root_of(&pairs_of(&model)));
        check_tree(&tree);
        // Drain completely.
        let keys: Vec<Hash> = model.keys().copied().collect();
        for k in keys {
            assert_eq!(tree.remove(&k), model.remove(&k));
        }
        assert!(tree.is_empty());
        assert_eq!(node_count(&tree), 0);
        assert_eq!(tree.root(), EMPTY);
    }

    #[test]
    fn root_of_last_duplicate_wins() {
        let k = [5u8; 32];
        let other = [6u8; 32];
        let set = [(k, [1u8; 32]), (other, [3u8; 32]), (k, [2u8; 32])];
        assert_eq!(root_of(&set), root_of(&[(other, [3u8; 32]), (k, [2u8; 32])]));
    }

    #[test]
    fn update_cost_is_proportional_to_keys_touched() {
        let mut r = rng(5);
        let mut tree = SparseMerkleTree::new();
        let keys: Vec<Hash> = (0..100_000).map(|_| random_key(&mut r)).collect();
        for k in &keys {
            tree.insert(*k, random_key(&mut r));
        }
        tree.root();
        // A full build hashes every node once.
        assert_eq!(tree.hashes_computed(), node_count(&tree) as u64);
        // Nothing changed: free.
        let built = tree.hashes_computed();
        tree.root();
        assert_eq!(tree.hashes_computed(), built);

        for k in keys.choose_multiple(&mut r, 10) {
            tree.insert(*k, random_key(&mut r));
        }
        let root = tree.root();
        let cost = tree.hashes_computed() - built;
        assert!(cost <= 10 * 64, "10 updates cost {cost} hashes");
        assert!(cost >= 10, "10 updates cost only {cost} hashes");

        // Also inserts of new keys and removals.
        let before = tree.hashes_computed();
        for _ in 0..5 {
            tree.insert(random_key(&mut r), random_key(&mut r));
        }
        for k in keys.choose_multiple(&mut r, 5) {
            tree.remove(k);
        }
        tree.root();
        let cost = tree.hashes_computed() - before;
        assert!(cost <= 10 * 64, "10 inserts/removes cost {cost} hashes");
        assert_ne!(tree.root(), root);
        check_tree(&tree);
    }

    /// Prints throughput (not asserted). Full size in release builds, scaled down in debug ones.
    #[test]
    fn throughput() {
        let (n, m) = if cfg!(debug_assertions) { (100_000, 1_000) } else { (1_000_000, 10_000) };
        let mut r = rng(6);
        let pairs: Vec<(Hash, Hash)> = (0..n).map(|_| (random_key(&mut r), random_key(&mut r))).collect();
        let mut tree = SparseMerkleTree::new();
        let t = Instant::now();
        for (k, v) in &pairs {
            tree.insert(*k, *v);
        }
        let t_insert = t.elapsed();
        let root = tree.root();
        let t_build = t.elapsed();
        let hashes = tree.hashes_computed();

        let updates: Vec<(Hash, Hash)> =
            pairs.choose_multiple(&mut r, m).map(|(k, _)| (*k, random_key(&mut r))).collect();
        let t = Instant::now();
        for (k, v) in &updates {
            tree.insert(*k, *v);
        }
        let new_root = tree.root();
        let t_update = t.elapsed();
        let update_hashes = tree.hashes_computed() - hashes;
        assert_ne!(root, new_root);

        let t = Instant::now();
        let reference = root_of(&pairs);
        let t_ref = t.elapsed();
        assert_eq!(reference, root);
        println!(
            "smt throughput: insert {n} random keys {:.0} ms + root {:.0} ms = {:.0} ms ({hashes} hashes); \
             update {m} keys + root {:.1} ms ({update_hashes} hashes); root_of({n}) from scratch {:.0} ms",
            t_insert.as_secs_f64() * 1e3,
            (t_build - t_insert).as_secs_f64() * 1e3,
            t_build.as_secs_f64() * 1e3,
            t_update.as_secs_f64() * 1e3,
            t_ref.as_secs_f64() * 1e3,
        );
    }
}
