//! The SHA-NI backend: x86 SHA extensions, several nonces interleaved per thread.
//!
//! `sha256rnds2` runs two rounds with a latency of several cycles but can start every one or two
//! cycles, so a single hash leaves the unit idle most of the time, waiting on its own dependency
//! chain. Hashing `N` independent nonces in lock step (every step below loops over the lanes)
//! gives the out-of-order core `N` chains to overlap: this is how one thread goes past the
//! single-stream SHA-256 rate.
//!
//! State is kept as the instructions want it: `ABEF` (lanes 3..0 = a, b, e, f) and `CDGH`.
//! Per nonce, on top of the job's midstate: rounds 0 and 1 of the second block are precomputed by the
//! job, rounds 4..15 use constant message words (precomputed `W + K`), and the second hash stops after
//! round 61, whose `f` lane is the `e` of round 60: the final hash's top word (see `mod.rs`).

// Lane loops index several parallel arrays at once; iterators would hide the lock step.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::reference::{IV, K};
use super::{CpuImpl, Job, NonceScanner};

/// Whether the CPU has the SHA extensions (and the SSE levels the code uses with them).
pub(crate) fn is_supported() -> bool {
    is_x86_feature_detected!("sha") && is_x86_feature_detected!("sse4.1") && is_x86_feature_detected!("ssse3")
}

/// Nonces hashed in lock step per thread, chosen by measurement (docs/PERFORMANCE.md).
pub(crate) const DEFAULT_WAYS: usize = 2;

/// SHA-NI scanner; constructing one proves the CPU has the extensions.
pub(crate) struct Shani {
    ways: usize,
}

impl Shani {
    pub(crate) fn new() -> Option<Shani> {
        let ways = std::env::var("POWKIT_SHANI_WAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_WAYS);
        is_supported().then_some(Shani { ways })
    }
}

impl NonceScanner for Shani {
    fn kind(&self) -> CpuImpl {
        CpuImpl::Shani
    }

    fn scan(&self, job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
        // SAFETY: a `Shani` exists only when the CPU reports SHA, SSSE3 and SSE4.1 (see `Shani::new`).
        unsafe {
            match self.ways {
                1 => scan_shani::<1>(job, start, count, out),
                3 => scan_shani::<3>(job, start, count, out),
                4 => scan_shani::<4>(job, start, count, out),
                _ => scan_shani::<2>(job, start, count, out),
            }
        }
    }
}

/// Four words as a vector, lane 0 first.
#[inline(always)]
fn v4(w: [u32; 4]) -> __m128i {
    // SAFETY: SSE2 is part of the x86_64 baseline; this touches no memory.
    unsafe { _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32) }
}

/// `W + K` for rounds `4g..4g+4` when the words are constants.
#[inline(always)]
fn wk_const(g: usize, w: [u32; 4]) -> __m128i {
    v4([
        w[0].wrapping_add(K[4 * g]),
        w[1].wrapping_add(K[4 * g + 1]),
        w[2].wrapping_add(K[4 * g + 2]),
        w[3].wrapping_add(K[4 * g + 3]),
    ])
}

/// `(ABEF, CDGH)` of a state `[a, b, c, d, e, f, g, h]`.
#[inline(always)]
fn abef_cdgh(s: &[u32; 8]) -> (__m128i, __m128i) {
    (v4([s[5], s[4], s[1], s[0]]), v4([s[7], s[6], s[3], s[2]]))
}

/// Two rounds on every lane: `wk` holds `W + K` for them in its low two words.
macro_rules! rnds2 {
    ($abef:ident, $cdgh:ident, $wk:expr) => {
        for l in 0..N {
            let next = _mm_sha256rnds2_epu32($cdgh[l], $abef[l], $wk[l]);
            $cdgh[l] = $abef[l];
            $abef[l] = next;
        }
    };
}

/// Four rounds on every lane with per-lane `W + K`.
macro_rules! rnds4 {
    ($abef:ident, $cdgh:ident, $wk:ident) => {
        rnds2!($abef, $cdgh, $wk);
        let hi: [__m128i; N] = std::array::from_fn(|l| _mm_shuffle_epi32::<0x0E>($wk[l]));
        rnds2!($abef, $cdgh, hi);
    };
}

/// Four rounds on every lane with the same constant `W + K`.
macro_rules! rnds4_const {
    ($abef:ident, $cdgh:ident, $wk:expr) => {
        let lo = [$wk; N];
        let hi = [_mm_shuffle_epi32::<0x0E>($wk); N];
        rnds2!($abef, $cdgh, lo);
        rnds2!($abef, $cdgh, hi);
    };
}

/// The next four schedule words from the previous sixteen (`m0` oldest).
macro_rules! schedule {
    ($m0:expr, $m1:expr, $m2:expr, $m3:expr) => {
        _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32($m0, $m1), _mm_alignr_epi8::<4>($m3, $m2)), $m3)
    };
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn scan_shani<const N: usize>(job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
    let top = job.target_top();
    let (abef2, cdgh2) = abef_cdgh(&job.state2);
    let (mid_abef, mid_cdgh) = abef_cdgh(&job.midstate);
    let (iv_abef, iv_cdgh) = abef_cdgh(&IV);
    let [t0, t1, t2] = job.tail;
    let w2k2 = t2.wrapping_add(K[2]);
    // First hash, second block: words 4..15 are padding and the length (640 bits).
    let fw1 = [0x8000_0000u32, 0, 0, 0];
    let fw3 = [0u32, 0, 0, 640];
    let f_wk1 = wk_const(1, fw1);
    let f_wk2 = wk_const(2, [0; 4]);
    let f_wk3 = wk_const(3, fw3);
    // Second hash: words 8..15 are padding and the length (256 bits).
    let sw2 = [0x8000_0000u32, 0, 0, 0];
    let sw3 = [0u32, 0, 0, 256];
    let s_wk2 = wk_const(2, sw2);
    let s_wk3 = wk_const(3, sw3);
    let kv: [__m128i; 16] = std::array::from_fn(|g| v4([K[4 * g], K[4 * g + 1], K[4 * g + 2], K[4 * g + 3]]));

    let mut done: u32 = 0;
    while done < count {
        let base = start.wrapping_add(done);
        let nonce_be: [u32; N] = std::array::from_fn(|l| base.wrapping_add(l as u32).swap_bytes());

        // ---- First SHA-256, second block. Rounds 0, 1: precomputed. Rounds 2, 3: ----
        let mut abef = [abef2; N];
        let mut cdgh = [cdgh2; N];
        let wk: [__m128i; N] = std::array::from_fn(|l| v4([w2k2, nonce_be[l].wrapping_add(K[3]), 0, 0]));
        rnds2!(abef, cdgh, wk);
        // Rounds 4..15: constant words.
        rnds4_const!(abef, cdgh, f_wk1);
        rnds4_const!(abef, cdgh, f_wk2);
        rnds4_const!(abef, cdgh, f_wk3);
        // Rounds 16..63 with the schedule.
        let mut m0: [__m128i; N] = std::array::from_fn(|l| v4([t0, t1, t2, nonce_be[l]]));
        let mut m1 = [v4(fw1); N];
        let mut m2 = [_mm_setzero_si128(); N];
        let mut m3 = [v4(fw3); N];
        for g in 4..16 {
            let mut wk = [_mm_setzero_si128(); N];
            for l in 0..N {
                let next = schedule!(m0[l], m1[l], m2[l], m3[l]);
                m0[l] = m1[l];
                m1[l] = m2[l];
                m2[l] = m3[l];
                m3[l] = next;
                wk[l] = _mm_add_epi32(next, kv[g]);
            }
            rnds4!(abef, cdgh, wk);
        }
        // H1 = midstate + state, then as message words: A B C D and E F G H.
        for l in 0..N {
            let a = _mm_add_epi32(abef[l], mid_abef);
            let c = _mm_add_epi32(cdgh[l], mid_cdgh);
            let fe_ba = _mm_shuffle_epi32::<0x1B>(a); // lanes: a b e f
            let dc_hg = _mm_shuffle_epi32::<0xB1>(c); // lanes: g h c d
            m0[l] = _mm_blend_epi16::<0xF0>(fe_ba, dc_hg); // a b c d
            m1[l] = _mm_alignr_epi8::<8>(dc_hg, fe_ba); // e f g h
            m2[l] = v4(sw2);
            m3[l] = v4(sw3);
        }

        // ---- Second SHA-256: one block, the digest and padding. ----
        let mut abef = [iv_abef; N];
        let mut cdgh = [iv_cdgh; N];
        let wk: [__m128i; N] = std::array::from_fn(|l| _mm_add_epi32(m0[l], kv[0]));
        rnds4!(abef, cdgh, wk);
        let wk: [__m128i; N] = std::array::from_fn(|l| _mm_add_epi32(m1[l], kv[1]));
        rnds4!(abef, cdgh, wk);
        rnds4_const!(abef, cdgh, s_wk2);
        rnds4_const!(abef, cdgh, s_wk3);
        for g in 4..15 {
            let mut wk = [_mm_setzero_si128(); N];
            for l in 0..N {
                let next = schedule!(m0[l], m1[l], m2[l], m3[l]);
                m0[l] = m1[l];
                m1[l] = m2[l];
                m2[l] = m3[l];
                m3[l] = next;
                wk[l] = _mm_add_epi32(next, kv[g]);
            }
            rnds4!(abef, cdgh, wk);
        }
        // Rounds 60, 61 only: afterwards the `f` lane (lane 0) of ABEF is `e` after round 60.
        let wk: [__m128i; N] = std::array::from_fn(|l| _mm_add_epi32(schedule!(m0[l], m1[l], m2[l], m3[l]), kv[15]));
        rnds2!(abef, cdgh, wk);

        let lanes = (count - done).min(N as u32) as usize;
        for l in 0..lanes {
            let h7 = (_mm_cvtsi128_si32(abef[l]) as u32).wrapping_add(IV[7]);
            if h7.swap_bytes() <= top {
                out.push(base.wrapping_add(l as u32));
            }
        }
        done += lanes as u32;
    }
}
