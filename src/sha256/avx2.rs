//! The AVX2 backend: eight nonces per 256-bit register, lane-wise.
//!
//! The rounds are the generic ones in `lanes.rs`, instantiated with `__m256i`. AVX2 has no vector
//! rotate, so each rotation is two shifts and an OR.

use std::arch::x86_64::*;

use super::lanes::{scan_lanes, Lanes};
use super::{CpuImpl, Job, NonceScanner};

/// Whether the CPU has AVX2.
pub(crate) fn is_supported() -> bool {
    is_x86_feature_detected!("avx2")
}

/// AVX2 scanner; constructing one proves the CPU has AVX2.
pub(crate) struct Avx2 {
    _private: (),
}

impl Avx2 {
    pub(crate) fn new() -> Option<Avx2> {
        is_supported().then_some(Avx2 { _private: () })
    }
}

impl NonceScanner for Avx2 {
    fn kind(&self) -> CpuImpl {
        CpuImpl::Avx2
    }

    fn scan(&self, job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
        // SAFETY: an `Avx2` exists only when the CPU reports AVX2 (see `Avx2::new`).
        unsafe { scan_avx2(job, start, count, out) }
    }
}

#[target_feature(enable = "avx2")]
fn scan_avx2(job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
    scan_lanes::<__m256i>(job, start, count, out)
}

/// Rotate each lane right by a literal amount.
macro_rules! rotr {
    ($x:expr, $n:literal) => {
        _mm256_or_si256(_mm256_srli_epi32::<$n>($x), _mm256_slli_epi32::<{ 32 - $n }>($x))
    };
}

// SAFETY (for every `unsafe` block below): these methods are only reached from `scan_avx2`, which
// runs only after AVX2 was detected; they touch no memory.
impl Lanes for __m256i {
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        unsafe { _mm256_set1_epi32(v as i32) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { _mm256_add_epi32(self, o) }
    }
    #[inline(always)]
    fn bsig0(self) -> Self {
        unsafe { _mm256_xor_si256(_mm256_xor_si256(rotr!(self, 2), rotr!(self, 13)), rotr!(self, 22)) }
    }
    #[inline(always)]
    fn bsig1(self) -> Self {
        unsafe { _mm256_xor_si256(_mm256_xor_si256(rotr!(self, 6), rotr!(self, 11)), rotr!(self, 25)) }
    }
    #[inline(always)]
    fn ssig0(self) -> Self {
        unsafe { _mm256_xor_si256(_mm256_xor_si256(rotr!(self, 7), rotr!(self, 18)), _mm256_srli_epi32::<3>(self)) }
    }
    #[inline(always)]
    fn ssig1(self) -> Self {
        unsafe { _mm256_xor_si256(_mm256_xor_si256(rotr!(self, 17), rotr!(self, 19)), _mm256_srli_epi32::<10>(self)) }
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        unsafe { _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g))) }
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        unsafe { _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(c, _mm256_or_si256(a, b))) }
    }
    #[inline(always)]
    fn from_words(v: &[u32]) -> Self {
        assert!(v.len() >= 8);
        // SAFETY: eight in-bounds words (checked above); an unaligned load.
        unsafe { _mm256_loadu_si256(v.as_ptr() as *const __m256i) }
    }
    #[inline(always)]
    fn to_words(self, out: &mut [u32]) {
        assert!(out.len() >= 8);
        // SAFETY: eight in-bounds words (checked above); an unaligned store.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, self) }
    }
    #[inline(always)]
    fn lane_index() -> Self {
        unsafe { _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) }
    }
    #[inline(always)]
    fn swap_bytes(self) -> Self {
        unsafe {
            let rev = _mm256_setr_epi8(
                3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13,
                12,
            );
            _mm256_shuffle_epi8(self, rev)
        }
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        // x <= top (unsigned) exactly when max(x, top) == top.
        unsafe {
            let t = _mm256_set1_epi32(top as i32);
            let le = _mm256_cmpeq_epi32(_mm256_max_epu32(self, t), t);
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }
    #[inline(always)]
    fn load_word<const N: usize>(items: &[[u8; N]], j: usize) -> Self {
        assert!(items.len() >= 8 && 4 * j + 4 <= N);
        // SAFETY: lane i reads bytes 4j..4j+4 of items[i], in bounds (checked above).
        unsafe {
            let n = N as i32;
            let offsets = _mm256_setr_epi32(0, n, 2 * n, 3 * n, 4 * n, 5 * n, 6 * n, 7 * n);
            let base = items.as_ptr().cast::<u8>().add(4 * j);
            _mm256_i32gather_epi32::<1>(base as _, offsets).swap_bytes()
        }
    }
}

/// Double SHA-256 of `N`-byte messages (headers, merkle nodes) in groups of 8; `msgs.len()` must
/// be a multiple of 8.
#[target_feature(enable = "avx2")]
pub(crate) fn sha256d_fixed_avx2<const N: usize>(msgs: &[[u8; N]], out: &mut [[u8; 32]]) {
    for (m, o) in msgs.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
        super::lanes::sha256d_fixed::<__m256i, N>(m, o);
    }
}
