//! Ed25519 signature verification under one exact rule set, ZIP-215, on every path.
//!
//! ZIP-215 (<https://zips.z.cash/zip-0215>): `S` must be canonical (below the group order `l`); the
//! encodings of `A` and `R` need not be canonical (any `y` below 2^255 that decodes to a curve
//! point is accepted, small-order points included); the check is the cofactored equation
//! `[8][S]B = [8]R + [8][k]A`. Single and batch verification give the same verdict for every input,
//! so replicas that verify differently (one by one, in batches, on the GPU later) never split.
//! `ed25519-zebra` implements exactly these rules; this module is the only place that calls it.
//!
//! Bulk verification ([`verify_all`]) splits the signatures into batches spread over the cores
//! (rayon). A batch that fails is bisected: each half is verified as a batch again, down to single
//! signatures, so the result names exactly the signatures that fail.

pub mod file;

use ed25519_zebra::batch;
use ed25519_zebra::{Signature, VerificationKey, VerificationKeyBytes};
use rayon::prelude::*;

/// Signatures per batch in [`verify_all`] (larger batches amortize more of the multiscalar
/// multiplication; measured in docs/PERFORMANCE.md).
pub const BATCH: usize = 512;

/// Below this many signatures a failed batch is checked one by one instead of split further (a
/// single check costs about twice a batched one, so splitting below this rarely pays, and a file
/// dense with bad signatures would otherwise bisect nearly every batch down to pairs).
const SINGLES_BELOW: usize = 32;

/// One signature to check: a public key, a signature and the message it signs.
#[derive(Clone, Copy, Debug)]
pub struct SigRef<'a> {
    /// The 32-byte public key encoding `A`.
    pub pubkey: &'a [u8; 32],
    /// `R || S`.
    pub signature: &'a [u8; 64],
    /// The signed message.
    pub message: &'a [u8],
}

/// Verifies one signature under ZIP-215.
pub fn verify_one(s: &SigRef<'_>) -> bool {
    VerificationKey::try_from(VerificationKeyBytes::from(*s.pubkey))
        .and_then(|vk| vk.verify(&Signature::from_bytes(s.signature), s.message))
        .is_ok()
}

/// A signature prepared for batching (its challenge hash `k` computed once, reused by bisection).
fn item(s: &SigRef<'_>) -> batch::Item {
    batch::Item::from((VerificationKeyBytes::from(*s.pubkey), Signature::from_bytes(s.signature), s.message))
}

/// Whether every item verifies, as one batch.
fn batch_ok(items: &[batch::Item]) -> bool {
    let mut v = batch::Verifier::new();
    for i in items {
        v.queue(i.clone());
    }
    // The random coefficients come from the thread's CSPRNG (ChaCha, seeded from the OS), not
    // one system call per signature.
    v.verify(rand::thread_rng()).is_ok()
}

/// Appends to `bad` the indexes (plus `base`) of the items that fail, by bisection.
fn bisect(items: &[batch::Item], base: usize, bad: &mut Vec<usize>) {
    if items.len() < SINGLES_BELOW {
        for (i, it) in items.iter().enumerate() {
            if it.clone().verify_single().is_err() {
                bad.push(base + i);
            }
        }
        return;
    }
    if batch_ok(items) {
        return;
    }
    let mid = items.len() / 2;
    bisect(&items[..mid], base, bad);
    bisect(&items[mid..], base + mid, bad);
}

/// Verifies every signature, in batches of [`BATCH`] on all cores; returns the indexes of those
/// that fail, ascending.
pub fn verify_all(sigs: &[SigRef<'_>]) -> Vec<usize> {
    verify_all_in(sigs, BATCH)
}

/// [`verify_all`] with a chosen batch size.
pub fn verify_all_in(sigs: &[SigRef<'_>], batch: usize) -> Vec<usize> {
    let batch = batch.max(1);
    let mut bad: Vec<usize> = sigs
        .par_chunks(batch)
        .enumerate()
        .flat_map_iter(|(c, chunk)| {
            let items: Vec<batch::Item> = chunk.iter().map(item).collect();
            let mut bad = Vec::new();
            if !batch_ok(&items) {
                let mid = items.len() / 2;
                bisect(&items[..mid], c * batch, &mut bad);
                bisect(&items[mid..], c * batch + mid, &mut bad);
            }
            bad
        })
        .collect();
    bad.sort_unstable();
    bad
}

#[cfg(test)]
pub(crate) mod tests;
