//! Bitcoin's merkle tree on the CPU (the twin of the GPU `merkle_level` shader).
//!
//! Each level pairs adjacent nodes and hashes `sha256d(left || right)`; a level with an odd number
//! of nodes pairs its last node with itself (Bitcoin Core `ComputeMerkleRoot`, src/consensus/merkle.cpp).
//! The root of a single node is the node itself.

use super::reference::sha256d;

/// The parent of two nodes.
pub fn parent(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left);
    buf[32..].copy_from_slice(right);
    sha256d(&buf)
}

/// One level up: `ceil(n / 2)` parents, the last node paired with itself when `n` is odd. Pairs
/// are hashed in SIMD batches ([`super::batch::sha256d_64s`]: adjacent nodes already lie side by
/// side as one 64-byte message).
pub fn level(nodes: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let (pairs, _) = nodes.as_flattened().as_chunks::<64>();
    let mut out = super::batch::sha256d_64s(pairs);
    if nodes.len() % 2 == 1 {
        let last = &nodes[nodes.len() - 1];
        out.push(parent(last, last));
    }
    out
}

/// Bitcoin Core's `ComputeMerkleRoot` with its `mutated` flag: the root of `txids` (all zeros for
/// none), and whether some level ended in two equal nodes (the duplicate-transaction mutation,
/// CVE-2012-2459).
pub fn root_and_mutation(txids: &[[u8; 32]]) -> ([u8; 32], bool) {
    let mut nodes = txids.to_vec();
    let mut mutated = false;
    while nodes.len() > 1 {
        for pair in nodes.chunks_exact(2) {
            if pair[0] == pair[1] {
                mutated = true;
            }
        }
        nodes = level(&nodes);
    }
    (nodes.first().copied().unwrap_or([0; 32]), mutated)
}

/// The root of `leaves`, or `None` for an empty list.
pub fn root(leaves: &[[u8; 32]]) -> Option<[u8; 32]> {
    let mut level_nodes = leaves.to_vec();
    if level_nodes.is_empty() {
        return None;
    }
    while level_nodes.len() > 1 {
        level_nodes = level(&level_nodes);
    }
    Some(level_nodes[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcoin_block_170_merkle_root() {
        // Block 170 (the first bitcoin transfer): two transactions.
        let mut a: [u8; 32] = hex::decode("b1fea52486ce0c62bb442b530a3f0132b826c74e473d1f2c220bfa78111c5082")
            .unwrap()
            .try_into()
            .unwrap();
        let mut b: [u8; 32] = hex::decode("f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16")
            .unwrap()
            .try_into()
            .unwrap();
        a.reverse();
        b.reverse();
        let mut r = root(&[a, b]).unwrap();
        r.reverse();
        assert_eq!(hex::encode(r), "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff");
    }

    #[test]
    fn simd_levels_equal_pairwise_parents() {
        for n in [1usize, 2, 3, 16, 31, 32, 33, 100] {
            let nodes: Vec<[u8; 32]> = (0..n).map(|i| sha256d(&(i as u64).to_le_bytes())).collect();
            let want: Vec<[u8; 32]> = nodes.chunks(2).map(|p| parent(&p[0], p.get(1).unwrap_or(&p[0]))).collect();
            assert_eq!(level(&nodes), want, "{n}");
        }
    }

    #[test]
    fn odd_levels_duplicate_the_last_node() {
        let n = [[1u8; 32], [2u8; 32], [3u8; 32]];
        let l = level(&n);
        assert_eq!(l, vec![parent(&n[0], &n[1]), parent(&n[2], &n[2])]);
        assert_eq!(root(&n[..1]), Some(n[0]));
        assert_eq!(root(&[]), None);
    }
}
