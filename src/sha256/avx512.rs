//! The AVX-512 backend: sixteen nonces per 512-bit register, lane-wise.
//!
//! The rounds are the generic ones in `lanes.rs`, instantiated with `__m512i`. AVX-512F has what
//! SHA-256 wants: `vprord` rotates in one instruction, and `vpternlogd` computes any three-input
//! bitwise function (the three-way XORs of Σ/σ, Ch and Maj) in one. On CPUs whose SHA extensions are
//! slow (Intel Ice Lake / Sapphire Rapids run `sha256rnds2` at one per three cycles), this is the
//! fastest path; cpuminer-opt picks its 16-way AVX-512 code there too.

use std::arch::x86_64::*;

use super::lanes::{scan_lanes, Lanes};
use super::{CpuImpl, Job, NonceScanner};

/// Whether the CPU has AVX-512F.
pub(crate) fn is_supported() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// AVX-512 scanner; constructing one proves the CPU has AVX-512F.
pub(crate) struct Avx512 {
    _private: (),
}

impl Avx512 {
    pub(crate) fn new() -> Option<Avx512> {
        is_supported().then_some(Avx512 { _private: () })
    }
}

impl NonceScanner for Avx512 {
    fn kind(&self) -> CpuImpl {
        CpuImpl::Avx512
    }

    fn scan(&self, job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
        // SAFETY: an `Avx512` exists only when the CPU reports AVX-512F (see `Avx512::new`).
        unsafe { scan_avx512(job, start, count, out) }
    }
}

#[target_feature(enable = "avx512f")]
fn scan_avx512(job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
    scan_lanes::<__m512i>(job, start, count, out)
}

/// `vpternlogd` truth tables.
const XOR3: i32 = 0x96;
const CH: i32 = 0xCA;
const MAJ: i32 = 0xE8;

// SAFETY (for every `unsafe` block below): these methods are only reached from `scan_avx512`, which
// runs only after AVX-512F was detected; they touch no memory.
impl Lanes for __m512i {
    const LANES: usize = 16;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        unsafe { _mm512_set1_epi32(v as i32) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { _mm512_add_epi32(self, o) }
    }
    #[inline(always)]
    fn bsig0(self) -> Self {
        unsafe {
            _mm512_ternarylogic_epi32::<XOR3>(
                _mm512_ror_epi32::<2>(self),
                _mm512_ror_epi32::<13>(self),
                _mm512_ror_epi32::<22>(self),
            )
        }
    }
    #[inline(always)]
    fn bsig1(self) -> Self {
        unsafe {
            _mm512_ternarylogic_epi32::<XOR3>(
                _mm512_ror_epi32::<6>(self),
                _mm512_ror_epi32::<11>(self),
                _mm512_ror_epi32::<25>(self),
            )
        }
    }
    #[inline(always)]
    fn ssig0(self) -> Self {
        unsafe {
            _mm512_ternarylogic_epi32::<XOR3>(
                _mm512_ror_epi32::<7>(self),
                _mm512_ror_epi32::<18>(self),
                _mm512_srli_epi32::<3>(self),
            )
        }
    }
    #[inline(always)]
    fn ssig1(self) -> Self {
        unsafe {
            _mm512_ternarylogic_epi32::<XOR3>(
                _mm512_ror_epi32::<17>(self),
                _mm512_ror_epi32::<19>(self),
                _mm512_srli_epi32::<10>(self),
            )
        }
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        unsafe { _mm512_ternarylogic_epi32::<CH>(e, f, g) }
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        unsafe { _mm512_ternarylogic_epi32::<MAJ>(a, b, c) }
    }
    #[inline(always)]
    fn from_words(v: &[u32]) -> Self {
        assert!(v.len() >= 16);
        // SAFETY: sixteen in-bounds words (checked above); an unaligned load.
        unsafe { _mm512_loadu_si512(v.as_ptr() as *const _) }
    }
    #[inline(always)]
    fn to_words(self, out: &mut [u32]) {
        assert!(out.len() >= 16);
        // SAFETY: sixteen in-bounds words (checked above); an unaligned store.
        unsafe { _mm512_storeu_si512(out.as_mut_ptr() as *mut _, self) }
    }
    #[inline(always)]
    fn lane_index() -> Self {
        unsafe { _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) }
    }
    #[inline(always)]
    fn swap_bytes(self) -> Self {
        // Without AVX-512BW's byte shuffle: swap the bytes within each 16-bit half, then the halves.
        unsafe {
            let m = _mm512_set1_epi32(0x00ff_00ff);
            let x = _mm512_ternarylogic_epi32::<CH>(m, _mm512_srli_epi32::<8>(self), _mm512_slli_epi32::<8>(self));
            _mm512_ror_epi32::<16>(x)
        }
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        unsafe { _mm512_cmple_epu32_mask(self, _mm512_set1_epi32(top as i32)) as u32 }
    }
    #[inline(always)]
    fn load_word<const N: usize>(items: &[[u8; N]], j: usize) -> Self {
        assert!(items.len() >= 16 && 4 * j + 4 <= N);
        // SAFETY: lane i reads bytes 4j..4j+4 of items[i], in bounds (checked above).
        unsafe {
            let offsets = _mm512_mullo_epi32(Self::lane_index(), _mm512_set1_epi32(N as i32));
            let base = items.as_ptr().cast::<u8>().add(4 * j);
            _mm512_i32gather_epi32::<1>(offsets, base as _).swap_bytes()
        }
    }
    #[inline(always)]
    fn store_digest_word(self, out: &mut [[u8; 32]], k: usize) {
        assert!(out.len() >= 16 && k < 8);
        // SAFETY: lane i writes bytes 4k..4k+4 of out[i], in bounds (checked above).
        unsafe {
            let offsets = _mm512_mullo_epi32(Self::lane_index(), _mm512_set1_epi32(32));
            let base = out.as_mut_ptr().cast::<u8>().add(4 * k);
            _mm512_i32scatter_epi32::<1>(base as _, offsets, self.swap_bytes())
        }
    }
}

/// Double SHA-256 of `N`-byte messages (headers, merkle nodes) in groups of 16; `msgs.len()` must
/// be a multiple of 16.
#[target_feature(enable = "avx512f")]
pub(crate) fn sha256d_fixed_avx512<const N: usize>(msgs: &[[u8; N]], out: &mut [[u8; 32]]) {
    for (m, o) in msgs.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
        super::lanes::sha256d_fixed::<__m512i, N>(m, o);
    }
}
