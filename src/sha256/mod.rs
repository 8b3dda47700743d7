//! The SHA-256d engine: a scalar reference, the per-job midstate, and CPU backends behind one trait.
//!
//! # How a nonce is hashed
//! A header is 80 bytes, so its first SHA-256 covers two 64-byte blocks. The first block (version,
//! previous hash, 28 bytes of the merkle root) never changes while the nonce does: [`Job`] compresses
//! it once (the **midstate**). The second block holds the merkle root's last 4 bytes, the time, the
//! bits and the nonce, then padding; its first three rounds use only the first three words, so they
//! are also run once per job. Each nonce then costs 61 rounds of the second block, plus the second
//! SHA-256 (one block: the 32-byte digest and padding).
//!
//! # The early exit
//! Bitcoin reads the hash as a little-endian 256-bit integer, so its most significant 32 bits are the
//! byte-swapped last state word `H7`. `H7 = IV7 + e` after round 60 of the second hash, so a backend
//! runs 61 of its 64 rounds (skipping the `a` half of rounds 57 to 60), compares that word with the
//! target's top word, and reports a **candidate** only when it is at most the target's. Candidates are
//! rare (for a difficulty-1 target, one in 2^32) and [`Job::check`] re-hashes them with the reference
//! and compares all 256 bits. Nothing is lost: a hash that meets the target has a top word at most the
//! target's, so it is always a candidate.
//!
//! # Backends
//! [`NonceScanner`] is the one small trait; `scalar` runs anywhere, `avx2` does eight nonces per
//! 256-bit register, `shani` interleaves several independent nonces per thread on the x86 SHA
//! extensions. [`CpuImpl::detect`] picks the fastest the CPU has. Every backend is tested against the
//! reference by the same generic suite (`tests` below).

pub mod batch;
pub mod merkle;
pub mod reference;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod lanes;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod shani;

use std::fmt;
use std::str::FromStr;

use crate::primitives::{BlockHash, BlockHeader, Target, HEADER_SIZE};

/// A nonce-search job: one header (its nonce ignored), a target, and everything that can be
/// computed once for all nonces.
#[derive(Clone, Debug)]
pub struct Job {
    header: [u8; HEADER_SIZE],
    target: Target,
    /// State after compressing the header's first 64 bytes.
    pub(crate) midstate: [u32; 8],
    /// Words 0..2 of the second block: the merkle root's last 4 bytes, time, bits (big-endian reads).
    pub(crate) tail: [u32; 3],
    /// State after rounds 0, 1 and 2 of the second block (they do not depend on the nonce).
    pub(crate) state3: [u32; 8],
    /// State after rounds 0 and 1 only (SHA-NI runs rounds in pairs).
    pub(crate) state2: [u32; 8],
}

impl Job {
    /// Prepares a job for `header` (its nonce field is ignored) and `target`.
    pub fn new(header: &BlockHeader, target: Target) -> Job {
        Job::from_bytes(header.to_bytes(), target)
    }

    /// Prepares a job from an encoded header.
    pub fn from_bytes(header: [u8; HEADER_SIZE], target: Target) -> Job {
        let mut midstate = reference::IV;
        reference::compress(&mut midstate, header[..64].try_into().expect("64 bytes"));
        let word = |o: usize| u32::from_be_bytes(header[o..o + 4].try_into().expect("4 bytes"));
        let tail = [word(64), word(68), word(72)];
        let mut s = midstate;
        reference::round(&mut s, reference::K[0].wrapping_add(tail[0]));
        reference::round(&mut s, reference::K[1].wrapping_add(tail[1]));
        let state2 = s;
        reference::round(&mut s, reference::K[2].wrapping_add(tail[2]));
        Job { header, target, midstate, tail, state3: s, state2 }
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The target's top 32 bits: the early-exit threshold.
    pub fn target_top(&self) -> u32 {
        self.target.top_word()
    }

    /// The header bytes with `nonce` in place.
    pub fn header_with_nonce(&self, nonce: u32) -> [u8; HEADER_SIZE] {
        let mut h = self.header;
        h[BlockHeader::NONCE_OFFSET..].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// The block hash for `nonce`, by the scalar reference (no shortcuts).
    pub fn hash(&self, nonce: u32) -> BlockHash {
        BlockHash(reference::sha256d(&self.header_with_nonce(nonce)))
    }

    /// The early-exit word for `nonce` by the reference: the hash's top 32 bits as an integer.
    pub fn top_word(&self, nonce: u32) -> u32 {
        let h = self.hash(nonce).0;
        u32::from_le_bytes(h[28..32].try_into().expect("4 bytes"))
    }

    /// The full 256-bit check of a candidate: `Some(hash)` when it meets the target.
    pub fn check(&self, nonce: u32) -> Option<BlockHash> {
        let h = self.hash(nonce);
        self.target.is_met_by(&h).then_some(h)
    }
}

/// One CPU implementation of the nonce scan.
pub trait NonceScanner: Send + Sync {
    /// Which implementation this is.
    fn kind(&self) -> CpuImpl;

    /// Appends to `out`, in increasing order of `i`, every nonce `start.wrapping_add(i)` for `i` in
    /// `0..count` whose hash's top 32 bits are at most [`Job::target_top`] (the early exit). The
    /// caller confirms candidates with [`Job::check`]. Nonces wrap from `u32::MAX` to 0.
    fn scan(&self, job: &Job, start: u32, count: u32, out: &mut Vec<u32>);
}

/// The CPU implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuImpl {
    /// Portable Rust, one nonce at a time; any CPU.
    Scalar,
    /// x86 SHA extensions, several nonces interleaved per thread.
    Shani,
    /// AVX2, eight nonces per 256-bit register.
    Avx2,
    /// AVX-512F, sixteen nonces per 512-bit register.
    Avx512,
}

impl CpuImpl {
    /// Every implementation.
    pub const ALL: [CpuImpl; 4] = [CpuImpl::Avx512, CpuImpl::Shani, CpuImpl::Avx2, CpuImpl::Scalar];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            CpuImpl::Scalar => "scalar",
            CpuImpl::Shani => "shani",
            CpuImpl::Avx2 => "avx2",
            CpuImpl::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run it (detected at run time).
    pub fn is_available(self) -> bool {
        match self {
            CpuImpl::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            CpuImpl::Shani => shani::is_supported(),
            #[cfg(target_arch = "x86_64")]
            CpuImpl::Avx2 => avx2::is_supported(),
            #[cfg(target_arch = "x86_64")]
            CpuImpl::Avx512 => avx512::is_supported(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The implementations this CPU can run, fastest first.
    pub fn available() -> Vec<CpuImpl> {
        CpuImpl::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The fastest implementation this CPU can run, measured once per process.
    ///
    /// Feature flags alone do not decide it: on Intel Ice Lake `sha256rnds2` issues once per three
    /// cycles and AVX-512 is twice as fast, while on AMD Zen the SHA extensions win. So each
    /// available SIMD implementation scans a few thousand nonces (best of three short runs, about
    /// 10 ms in all) and the fastest is kept. `scalar` is chosen only when nothing else is available.
    pub fn detect() -> CpuImpl {
        static BEST: std::sync::OnceLock<CpuImpl> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let candidates: Vec<CpuImpl> = CpuImpl::available().into_iter().filter(|&i| i != CpuImpl::Scalar).collect();
            if candidates.len() <= 1 {
                return candidates.first().copied().unwrap_or(CpuImpl::Scalar);
            }
            let job = Job::from_bytes([0x5a; HEADER_SIZE], Target(crate::primitives::U256::ZERO));
            let mut out = Vec::new();
            let time = |imp: CpuImpl, out: &mut Vec<u32>| {
                let sc = imp.scanner().expect("available");
                (0..3)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        sc.scan(&job, 0, 1 << 13, out);
                        t.elapsed()
                    })
                    .min()
                    .expect("three runs")
            };
            candidates.into_iter().min_by_key(|&i| time(i, &mut out)).expect("non-empty")
        })
    }

    /// A scanner of this implementation, or an error if the CPU lacks its features.
    pub fn scanner(self) -> Result<Box<dyn NonceScanner>, UnsupportedImpl> {
        if !self.is_available() {
            return Err(UnsupportedImpl(self));
        }
        Ok(match self {
            CpuImpl::Scalar => Box::new(scalar::Scalar),
            #[cfg(target_arch = "x86_64")]
            CpuImpl::Shani => Box::new(shani::Shani::new().expect("checked above")),
            #[cfg(target_arch = "x86_64")]
            CpuImpl::Avx2 => Box::new(avx2::Avx2::new().expect("checked above")),
            #[cfg(target_arch = "x86_64")]
            CpuImpl::Avx512 => Box::new(avx512::Avx512::new().expect("checked above")),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("is_available is false off x86_64"),
        })
    }
}

impl fmt::Display for CpuImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CpuImpl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scalar" => Ok(CpuImpl::Scalar),
            "shani" => Ok(CpuImpl::Shani),
            "avx2" => Ok(CpuImpl::Avx2),
            "avx512" => Ok(CpuImpl::Avx512),
            _ => Err(format!("unknown CPU implementation '{s}' (expected scalar, shani, avx2 or avx512)")),
        }
    }
}

/// The CPU lacks the features an implementation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CPU implementation '{0}' is not supported on this CPU (available: {avail})", avail = available_names())]
pub struct UnsupportedImpl(pub CpuImpl);

fn available_names() -> String {
    CpuImpl::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
}

/// Helpers shared by the CPU and GPU scanner tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::Job;
    use crate::primitives::{Target, U256};
    use rand::Rng;

    /// The early-exit candidates of a range, by the reference: what every scanner must return.
    pub(crate) fn reference_candidates(job: &Job, start: u32, count: u32) -> Vec<u32> {
        (0..count).map(|i| start.wrapping_add(i)).filter(|&n| job.top_word(n) <= job.target_top()).collect()
    }

    /// A target whose top word is `top` and the rest random.
    pub(crate) fn target_with_top(rng: &mut impl Rng, top: u32) -> Target {
        let mut b: [u8; 32] = rng.gen();
        b[..4].copy_from_slice(&top.to_be_bytes());
        Target(U256::from_be_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    //! One generic suite, run against every implementation this CPU has.
    use super::testutil::{reference_candidates, target_with_top};
    use super::*;
    use crate::primitives::{CompactTarget, U256};
    use rand::{Rng, SeedableRng};

    fn random_header(rng: &mut impl Rng) -> [u8; 80] {
        let mut h = [0u8; 80];
        rng.fill(&mut h[..]);
        h
    }

    fn each_impl(mut f: impl FnMut(&dyn NonceScanner)) {
        let avail = CpuImpl::available();
        eprintln!("testing implementations: {avail:?}");
        for i in avail {
            f(&*i.scanner().unwrap());
        }
    }

    #[test]
    fn midstate_job_hash_equals_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..50 {
            let h = random_header(&mut rng);
            let job = Job::from_bytes(h, Target::MAX);
            let n: u32 = rng.gen();
            let mut bytes = h;
            bytes[76..].copy_from_slice(&n.to_le_bytes());
            assert_eq!(job.hash(n).0, crate::primitives::sha256d(&bytes));
        }
    }

    #[test]
    fn random_headers_and_targets_match_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        each_impl(|s| {
            for round in 0..40 {
                let job = Job::from_bytes(random_header(&mut rng), {
                    // Tops that admit about 1/16 .. 15/16 of nonces, and 0 and MAX.
                    let top = match round % 4 {
                        0 => rng.gen::<u32>(),
                        1 => 0x1000_0000,
                        2 => 0,
                        _ => u32::MAX,
                    };
                    target_with_top(&mut rng, top)
                });
                let start: u32 = rng.gen();
                let count = rng.gen_range(0..200);
                let mut got = Vec::new();
                s.scan(&job, start, count, &mut got);
                assert_eq!(got, reference_candidates(&job, start, count), "{} start {start} count {count}", s.kind());
            }
        });
    }

    #[test]
    fn nonce_wraps_around_u32_max() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        each_impl(|s| {
            let job = Job::from_bytes(random_header(&mut rng), target_with_top(&mut rng, 0x8000_0000));
            for start in [u32::MAX - 20, u32::MAX - 7, u32::MAX, u32::MAX - 2] {
                let mut got = Vec::new();
                s.scan(&job, start, 41, &mut got);
                let want = reference_candidates(&job, start, 41);
                assert!(want.iter().any(|&n| n < 20), "the window must cross zero");
                assert_eq!(got, want, "{} from {start}", s.kind());
            }
        });
    }

    #[test]
    fn target_exactly_at_the_boundary() {
        // For chosen nonces, set the target's top word to exactly the hash's top word (candidate),
        // and one below it (not a candidate); and the full target to exactly the hash (solution)
        // and the hash minus one (not a solution).
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        each_impl(|s| {
            for _ in 0..30 {
                let h = random_header(&mut rng);
                let nonce: u32 = rng.gen();
                let probe = Job::from_bytes(h, Target::MAX);
                let hash = U256::from_le_bytes(probe.hash(nonce).0);
                let top = probe.top_word(nonce);
                for (target, is_candidate, is_solution) in [
                    (Target(hash), true, true),
                    (Target(hash.overflowing_sub(U256::ONE).0), true, false),
                    (target_with_top(&mut rng, top.wrapping_sub(1)), top == 0, false),
                ] {
                    let job = Job::from_bytes(h, target);
                    let mut got = Vec::new();
                    // Put the nonce at each lane position of a batch.
                    let lane = rng.gen_range(0..16u32);
                    s.scan(&job, nonce.wrapping_sub(lane), 16, &mut got);
                    assert_eq!(got.contains(&nonce), is_candidate, "{}", s.kind());
                    assert_eq!(job.check(nonce).is_some(), is_solution);
                }
            }
        });
    }

    #[test]
    fn genesis_nonce_is_found_by_every_impl() {
        let genesis = hex::decode("0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c").unwrap();
        let header = BlockHeader::from_bytes(&genesis).unwrap();
        let job = Job::new(&header, CompactTarget(0x1d00ffff).to_target().unwrap());
        each_impl(|s| {
            let mut got = Vec::new();
            s.scan(&job, 2083236893 - 5000, 10_000, &mut got);
            let sols: Vec<u32> = got.iter().copied().filter(|&n| job.check(n).is_some()).collect();
            assert_eq!(sols, vec![2083236893], "{}", s.kind());
            assert_eq!(
                job.check(2083236893).unwrap().to_string(),
                "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
            );
        });
    }

    #[test]
    fn unsupported_impl_is_an_error_not_a_panic() {
        for i in CpuImpl::ALL {
            assert_eq!(i.scanner().is_ok(), i.is_available());
        }
        assert!("sse9".parse::<CpuImpl>().is_err());
    }
}
