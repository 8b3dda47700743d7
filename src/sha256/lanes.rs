//! The midstate SHA-256d with early exit, written once over a lane type.
//!
//! `u32` gives the portable scalar backend; `__m256i` (eight `u32` lanes) gives the AVX2 backend.
//! Everything here is `#[inline(always)]` so that it is compiled inside each backend's
//! `#[target_feature]` entry point and the round constants and constant message words fold away.

use super::reference::{IV, K};
use super::Job;

/// A vector of `LANES` 32-bit words with the operations SHA-256 needs.
pub(crate) trait Lanes: Copy {
    /// Words per vector.
    const LANES: usize;
    /// Every lane set to `v`.
    fn splat(v: u32) -> Self;
    /// Lane-wise wrapping addition.
    fn add(self, o: Self) -> Self;
    /// Σ0 (FIPS 180-4, 4.4).
    fn bsig0(self) -> Self;
    /// Σ1.
    fn bsig1(self) -> Self;
    /// σ0.
    fn ssig0(self) -> Self;
    /// σ1.
    fn ssig1(self) -> Self;
    /// Ch(e, f, g).
    fn ch(e: Self, f: Self, g: Self) -> Self;
    /// Maj(a, b, c).
    fn maj(a: Self, b: Self, c: Self) -> Self;
    /// `[0, 1, .., LANES - 1]`.
    fn lane_index() -> Self;
    /// Lane `i` from `v[i]` (`v` has at least `LANES` words).
    fn from_words(v: &[u32]) -> Self;
    /// Lane `i` into `out[i]`.
    fn to_words(self, out: &mut [u32]);
    /// Byte order of every lane reversed.
    fn swap_bytes(self) -> Self;
    /// Bit `i` set when lane `i` is at most `top` (unsigned).
    fn le_mask(self, top: u32) -> u32;
    /// Lane `i` = big-endian word `j` of `items[i]` (`items` has at least `LANES` entries).
    #[inline(always)]
    fn load_word<const N: usize>(items: &[[u8; N]], j: usize) -> Self {
        let mut words = [0u32; 16];
        for (w, h) in words.iter_mut().zip(&items[..Self::LANES]) {
            *w = u32::from_be_bytes(h[4 * j..4 * j + 4].try_into().expect("4 bytes"));
        }
        Self::from_words(&words)
    }
    /// Lane `i`, big-endian, into word `k` of `out[i]` (`out` has at least `LANES` entries).
    #[inline(always)]
    fn store_digest_word(self, out: &mut [[u8; 32]], k: usize) {
        let mut words = [0u32; 16];
        self.to_words(&mut words);
        for (w, o) in words.iter().zip(&mut out[..Self::LANES]) {
            o[4 * k..4 * k + 4].copy_from_slice(&w.to_be_bytes());
        }
    }
}

impl Lanes for u32 {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        v
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn bsig0(self) -> Self {
        super::reference::bsig0(self)
    }
    #[inline(always)]
    fn bsig1(self) -> Self {
        super::reference::bsig1(self)
    }
    #[inline(always)]
    fn ssig0(self) -> Self {
        super::reference::ssig0(self)
    }
    #[inline(always)]
    fn ssig1(self) -> Self {
        super::reference::ssig1(self)
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        g ^ (e & (f ^ g))
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        (a & b) | (c & (a | b))
    }
    #[inline(always)]
    fn lane_index() -> Self {
        0
    }
    #[inline(always)]
    fn from_words(v: &[u32]) -> Self {
        v[0]
    }
    #[inline(always)]
    fn to_words(self, out: &mut [u32]) {
        out[0] = self;
    }
    #[inline(always)]
    fn swap_bytes(self) -> Self {
        u32::swap_bytes(self)
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        (self <= top) as u32
    }
}

/// One full round: updates `d` and `h` in place (the caller rotates the names).
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {{
        let t1 = $h.add($e.bsig1()).add(L::ch($e, $f, $g)).add($kw);
        let t2 = $a.bsig0().add(L::maj($a, $b, $c));
        $d = $d.add(t1);
        $h = t1.add(t2);
    }};
}

/// A round that only needs the new `e` (its `a` is never read again).
macro_rules! round_e_only {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {{
        let t1 = $h.add($e.bsig1()).add(L::ch($e, $f, $g)).add($kw);
        $d = $d.add(t1);
    }};
}

/// Round constant plus message word `i`, computing the schedule word first when `i >= 16`.
/// Called with constant `i` only, so after inlining the branch and the bounds checks vanish.
#[inline(always)]
fn wk<L: Lanes>(w: &mut [L; 64], i: usize) -> L {
    if i >= 16 {
        w[i] = w[i - 16].add(w[i - 15].ssig0()).add(w[i - 7]).add(w[i - 2].ssig1());
    }
    L::splat(K[i]).add(w[i])
}

/// Round `i`.
macro_rules! r {
    ($w:ident, $i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
        round!($a, $b, $c, $d, $e, $f, $g, $h, wk(&mut $w, $i))
    }};
}

/// Eight rounds from `base`, names rotating back to where they started.
macro_rules! r8 {
    ($w:ident, $base:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
        r!($w, $base, $a, $b, $c, $d, $e, $f, $g, $h);
        r!($w, $base + 1, $h, $a, $b, $c, $d, $e, $f, $g);
        r!($w, $base + 2, $g, $h, $a, $b, $c, $d, $e, $f);
        r!($w, $base + 3, $f, $g, $h, $a, $b, $c, $d, $e);
        r!($w, $base + 4, $e, $f, $g, $h, $a, $b, $c, $d);
        r!($w, $base + 5, $d, $e, $f, $g, $h, $a, $b, $c);
        r!($w, $base + 6, $c, $d, $e, $f, $g, $h, $a, $b);
        r!($w, $base + 7, $b, $c, $d, $e, $f, $g, $h, $a);
    }};
}

/// The top word `H7` of the second SHA-256 (not yet byte-swapped) for the nonces whose
/// big-endian message words (`bswap(nonce)`) are in `nonce_be`.
#[inline(always)]
pub(crate) fn sha256d_h7<L: Lanes>(job: &Job, nonce_be: L) -> L {
    // ---- First SHA-256, second block: rounds 0..2 were run by the job. ----
    let z = L::splat(0);
    let mut w: [L; 64] = [z; 64];
    w[0] = L::splat(job.tail[0]);
    w[1] = L::splat(job.tail[1]);
    w[2] = L::splat(job.tail[2]);
    w[3] = nonce_be;
    w[4] = L::splat(0x8000_0000);
    w[15] = L::splat(640);
    let s = &job.state3;
    // State after round 2, named so that round 3 sees (a..h) in the rotation of round 3.
    let (mut f, mut g, mut h, mut a, mut b, mut c, mut d, mut e) = (
        L::splat(s[0]),
        L::splat(s[1]),
        L::splat(s[2]),
        L::splat(s[3]),
        L::splat(s[4]),
        L::splat(s[5]),
        L::splat(s[6]),
        L::splat(s[7]),
    );
    r!(w, 3, f, g, h, a, b, c, d, e);
    r!(w, 4, e, f, g, h, a, b, c, d);
    r!(w, 5, d, e, f, g, h, a, b, c);
    r!(w, 6, c, d, e, f, g, h, a, b);
    r!(w, 7, b, c, d, e, f, g, h, a);
    r8!(w, 8, a, b, c, d, e, f, g, h);
    r8!(w, 16, a, b, c, d, e, f, g, h);
    r8!(w, 24, a, b, c, d, e, f, g, h);
    r8!(w, 32, a, b, c, d, e, f, g, h);
    r8!(w, 40, a, b, c, d, e, f, g, h);
    r8!(w, 48, a, b, c, d, e, f, g, h);
    r8!(w, 56, a, b, c, d, e, f, g, h);
    let m = &job.midstate;
    // ---- Second SHA-256 over the 32-byte digest: W0..7 = digest, then padding. ----
    let mut v: [L; 64] = [z; 64];
    v[0] = a.add(L::splat(m[0]));
    v[1] = b.add(L::splat(m[1]));
    v[2] = c.add(L::splat(m[2]));
    v[3] = d.add(L::splat(m[3]));
    v[4] = e.add(L::splat(m[4]));
    v[5] = f.add(L::splat(m[5]));
    v[6] = g.add(L::splat(m[6]));
    v[7] = h.add(L::splat(m[7]));
    v[8] = L::splat(0x8000_0000);
    v[15] = L::splat(256);
    let (mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h) = (
        L::splat(IV[0]),
        L::splat(IV[1]),
        L::splat(IV[2]),
        L::splat(IV[3]),
        L::splat(IV[4]),
        L::splat(IV[5]),
        L::splat(IV[6]),
        L::splat(IV[7]),
    );
    r8!(v, 0, a, b, c, d, e, f, g, h);
    r8!(v, 8, a, b, c, d, e, f, g, h);
    r8!(v, 16, a, b, c, d, e, f, g, h);
    r8!(v, 24, a, b, c, d, e, f, g, h);
    r8!(v, 32, a, b, c, d, e, f, g, h);
    r8!(v, 40, a, b, c, d, e, f, g, h);
    r8!(v, 48, a, b, c, d, e, f, g, h);
    // Rounds 56..60: H7 = IV7 + h after 64 rounds = IV7 + e after round 60. Round 56's `a` is
    // needed (it is round 60's `d`); the `a` of rounds 57..60 never is.
    r!(v, 56, a, b, c, d, e, f, g, h);
    round_e_only!(h, a, b, c, d, e, f, g, wk(&mut v, 57));
    round_e_only!(g, h, a, b, c, d, e, f, wk(&mut v, 58));
    round_e_only!(f, g, h, a, b, c, d, e, wk(&mut v, 59));
    round_e_only!(e, f, g, h, a, b, c, d, wk(&mut v, 60));
    // Round 60 wrote its new `e` into the name in `d` position: `h`.
    let _ = (a, b, c, d, e, f, g);
    h.add(L::splat(IV[7]))
}

/// Scans with lanes of type `L`: the shared loop of the scalar and SIMD backends.
#[inline(always)]
pub(crate) fn scan_lanes<L: Lanes>(job: &Job, start: u32, count: u32, out: &mut Vec<u32>) {
    let top = job.target_top();
    let step = L::splat(L::LANES as u32);
    let mut nonces = L::splat(start).add(L::lane_index());
    let mut done: u32 = 0;
    while done < count {
        let h7 = sha256d_h7(job, nonces.swap_bytes());
        let lanes = (count - done).min(L::LANES as u32);
        let mut mask = h7.swap_bytes().le_mask(top) & (u32::MAX >> (32 - lanes));
        while mask != 0 {
            out.push(start.wrapping_add(done).wrapping_add(mask.trailing_zeros()));
            mask &= mask - 1;
        }
        nonces = nonces.add(step);
        done += lanes;
    }
}

/// One full compression of `block` into `state`, on every lane.
#[inline(always)]
pub(crate) fn compress<L: Lanes>(state: &mut [L; 8], block: &[L; 16]) {
    let mut w: [L; 64] = [L::splat(0); 64];
    w[..16].copy_from_slice(block);
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    r8!(w, 0, a, b, c, d, e, f, g, h);
    r8!(w, 8, a, b, c, d, e, f, g, h);
    r8!(w, 16, a, b, c, d, e, f, g, h);
    r8!(w, 24, a, b, c, d, e, f, g, h);
    r8!(w, 32, a, b, c, d, e, f, g, h);
    r8!(w, 40, a, b, c, d, e, f, g, h);
    r8!(w, 48, a, b, c, d, e, f, g, h);
    r8!(w, 56, a, b, c, d, e, f, g, h);
    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.add(v);
    }
}

/// Double SHA-256 of `L::LANES` independent `N`-byte messages, one per lane: 80-byte headers
/// and 64-byte merkle nodes (two children side by side). `N` is a multiple of 4 in `64..=116`, so
/// the first hash is one full block plus one block holding the rest and the padding (constant
/// words fold away at compile time).
#[inline(always)]
pub(crate) fn sha256d_fixed<L: Lanes, const N: usize>(msgs: &[[u8; N]], out: &mut [[u8; 32]]) {
    const { assert!(N >= 64 && N <= 116 && N.is_multiple_of(4)) };
    let mut block = [L::splat(0); 16];
    for (j, slot) in block.iter_mut().enumerate() {
        *slot = L::load_word(msgs, j);
    }
    let mut state = IV.map(L::splat);
    compress(&mut state, &block);
    let tail = (N - 64) / 4;
    let mut last = [L::splat(0); 16];
    for (j, slot) in last.iter_mut().enumerate().take(tail) {
        *slot = L::load_word(msgs, 16 + j);
    }
    last[tail] = L::splat(0x8000_0000);
    last[15] = L::splat(N as u32 * 8);
    compress(&mut state, &last);
    let mut second = [L::splat(0); 16];
    second[..8].copy_from_slice(&state);
    second[8] = L::splat(0x8000_0000);
    second[15] = L::splat(256);
    let mut state2 = IV.map(L::splat);
    compress(&mut state2, &second);
    for (k, v) in state2.iter().enumerate() {
        v.store_digest_word(out, k);
    }
}
