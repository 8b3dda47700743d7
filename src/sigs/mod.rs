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
//!
//! Where signatures are verified is a [`SigVerifier`]: [`CpuSigVerifier`] (this module), the GPU's
//! `crate::gpu::GpuSigVerifier`, or [`SplitSigVerifier`] (both at once, split by measured speed);
//! `crate::backend::open_sig_verifier` chooses from `--backend`. Every one gives the same verdict
//! for every signature.

pub mod file;

use std::sync::Mutex;
use std::time::Instant;

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

/// A batch signature verifier: one backend (CPU threads, a GPU, or both).
pub trait SigVerifier: Send + Sync {
    /// The indexes of the signatures in `sigs` that fail ZIP-215, ascending: the same answer as
    /// [`verify_all`] on every backend. A backend that fails (a GPU lost) answers from the CPU
    /// reference instead and logs a warning; it never returns a different verdict.
    fn invalid(&self, sigs: &[SigRef<'_>]) -> Vec<usize>;

    /// What verifies, for reports: `cpu (2 threads)`, `gpu (ADAPTER)`, `all (...)`.
    fn describe(&self) -> String;

    /// `cpu`, `gpu` or `all` (the metrics label).
    fn kind(&self) -> &'static str;

    /// Signatures per call that keep this backend busy (callers gather at least this many when
    /// they can).
    fn preferred_batch(&self) -> usize;
}

/// CPU threads: [`verify_all_in`] with `batch` signatures per ed25519-zebra batch.
#[derive(Debug, Clone, Copy)]
pub struct CpuSigVerifier {
    /// Signatures per batch (at least 1).
    pub batch: usize,
}

impl Default for CpuSigVerifier {
    fn default() -> Self {
        CpuSigVerifier { batch: BATCH }
    }
}

impl SigVerifier for CpuSigVerifier {
    fn invalid(&self, sigs: &[SigRef<'_>]) -> Vec<usize> {
        verify_all_in(sigs, self.batch)
    }

    fn describe(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn kind(&self) -> &'static str {
        "cpu"
    }

    fn preferred_batch(&self) -> usize {
        self.batch.max(1) * 4 * rayon::current_num_threads()
    }
}

/// Signatures the GPU gets on a [`SplitSigVerifier`]'s first call, before any rate is measured.
pub const PROBE: usize = 256;

/// Fewest signatures worth splitting between the two backends (below it the CPU takes them all).
pub const SPLIT_MIN: usize = 64;

/// Two verifiers at once (`--backend all`): each call gives the second (the GPU) a share of the
/// signatures in proportion to its measured rate and verifies the rest on the first (the CPU
/// threads) meanwhile. The rates are measured on every call (signatures per second of each part,
/// smoothed), so the split follows the machine; the first call gives the GPU at most [`PROBE`].
pub struct SplitSigVerifier {
    cpu: Box<dyn SigVerifier>,
    gpu: Box<dyn SigVerifier>,
    /// Measured signatures per second of (cpu, gpu); 0 until measured.
    rates: Mutex<(f64, f64)>,
}

impl SplitSigVerifier {
    /// Splits between `cpu` (run on the calling thread's rayon pool) and `gpu` (run on a thread of
    /// its own).
    pub fn new(cpu: Box<dyn SigVerifier>, gpu: Box<dyn SigVerifier>) -> SplitSigVerifier {
        SplitSigVerifier { cpu, gpu, rates: Mutex::new((0.0, 0.0)) }
    }

    /// The GPU's share of the next call (0.001 to 0.999), from the rates measured so far (0.5
    /// before any).
    pub fn gpu_share(&self) -> f64 {
        let (c, g) = *self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if c <= 0.0 || g <= 0.0 {
            0.5
        } else {
            (g / (c + g)).clamp(0.001, 0.999)
        }
    }

    fn measured(&self) -> bool {
        let (c, g) = *self.rates.lock().unwrap_or_else(|e| e.into_inner());
        c > 0.0 && g > 0.0
    }
}

impl SigVerifier for SplitSigVerifier {
    fn invalid(&self, sigs: &[SigRef<'_>]) -> Vec<usize> {
        if sigs.len() < SPLIT_MIN {
            return self.cpu.invalid(sigs);
        }
        let on_gpu = if self.measured() {
            ((sigs.len() as f64 * self.gpu_share()).round() as usize).clamp(1, sigs.len() - 1)
        } else {
            // The first call probes: a slow device (a software one) must not hold up the first
            // half of the input; a fast one earns a larger share from the next call on.
            (sigs.len() / 2).min(PROBE)
        };
        let (g_part, c_part) = sigs.split_at(on_gpu);
        let timed = |v: &dyn SigVerifier, part: &[SigRef<'_>]| {
            let t0 = Instant::now();
            let bad = v.invalid(part);
            (bad, part.len() as f64 / t0.elapsed().as_secs_f64().max(1e-6))
        };
        let ((g_bad, g_rate), (c_bad, c_rate)) = std::thread::scope(|s| {
            let g = s.spawn(|| timed(&*self.gpu, g_part));
            let c = timed(&*self.cpu, c_part);
            (g.join().expect("the GPU verifier does not panic"), c)
        });
        {
            let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            let smooth = |old: f64, new: f64| if old <= 0.0 { new } else { 0.5 * old + 0.5 * new };
            *r = (smooth(r.0, c_rate), smooth(r.1, g_rate));
        }
        g_bad.into_iter().chain(c_bad.into_iter().map(|i| i + on_gpu)).collect()
    }

    fn describe(&self) -> String {
        format!("all ({} + {})", self.cpu.describe(), self.gpu.describe())
    }

    fn kind(&self) -> &'static str {
        "all"
    }

    fn preferred_batch(&self) -> usize {
        self.cpu.preferred_batch() + self.gpu.preferred_batch()
    }
}

#[cfg(test)]
pub(crate) mod tests;
