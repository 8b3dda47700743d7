//! Ed25519 verification under ZIP-215 on the GPU (`shaders/ed25519_verify.wgsl`), and its CPU twin.
//!
//! The rules are ZIP-215's (<https://zips.z.cash/zip-0215>), the same as [`crate::sigs`] through
//! `ed25519-zebra`: `S` must be canonical (`S < l`); `A` and `R` are decoded from any 255-bit `y`
//! (not reduced first, so non-canonical encodings are accepted) with RFC 8032 section 5.1.3's square
//! root and the sign bit applied afterwards (`x = 0` with sign bit 1 is accepted, as
//! curve25519-dalek's decompression does); small-order points are accepted; the equation is the
//! cofactored `[8]([S]B - [k]A - R) = identity` with `k = SHA-512(R || A || M) mod l` over the
//! encodings as given.
//!
//! The split: the CPU computes `k` (SHA-512, reduced mod `l` by curve25519-dalek's `Scalar`, the
//! code zebra uses) and checks `S < l`; the GPU decodes `A` and `R`, runs the double-scalar
//! multiplication and the cofactored comparison.
//!
//! # Stages
//! One batch is a sequence of small dispatches of `shaders/ed25519_verify.wgsl`, with the state of
//! each signature in a storage buffer between them ([`STATE_WORDS`] words: the accumulator, `-R`,
//! and the window table `[j](-A)` for `j = 0..16`): `decode_points` (one invocation per point),
//! `prepare_table` (the window table), `ladder_steps` ([`LADDER_SLICE`] of the [`LADDER_STEPS`]
//! steps per dispatch: Straus-Shamir over 4-bit windows of both scalars, `S`'s from the
//! precomputed base-point table [`base_table`] in a storage buffer) and `finish_verdicts`. Each
//! has its twin here ([`point_decompress_flagged`], [`window_table`], [`ladder_step`],
//! [`point_is_identity`]; [`stages_twin`] strings them together) and the tests compare the
//! shader's buffers with the twin's limb for limb after each stage.
//!
//! The first shader ran the whole verification in one invocation. On lavapipe (Mesa 22.3.6, LLVM
//! 15) it gave wrong verdicts: an array declared with `let` and indexed dynamically read as limb 0
//! and zeros, and of the two inlined decodings in one invocation the second produced a wrong `x`
//! whichever point it decoded, although each function alone matched its twin. Small kernels with
//! one decoding per invocation and the state in memory are correct there, and short dispatches
//! also suit desktop GPUs (display watchdogs).
//!
//! # Field arithmetic for a 32-bit shading language
//! WGSL has no 64-bit integers and no high multiply, so a field element mod `p = 2^255 - 19` is 20
//! limbs of 13 bits ([`Fe`], radix 2^13, 260 bits; the layout the 2023 WebGPU MSM work found
//! fastest). After every operation each limb is below 2^13, except limb 0 which may reach
//! `2^13 + 608` (the last carry is folded back without propagating again): a product of two limbs
//! is below 2^26.2, and a column of 20 such products below 2^30.6, so a schoolbook product fits in
//! u32 with no intermediate carries. The 39 columns are carried to 13 bits, the upper 20 limbs are
//! folded onto the lower with `2^260 = 608 (mod p)`, and the result is carried again.
//! Subtraction adds `64p` (written with every limb at least 2^13 + 608) before subtracting, so no
//! limb goes negative. Elements are reduced to the unique representative below `p` only to compare
//! or to read the sign.
//!
//! The shader's field operations are generated from these algorithms fully unrolled (`field_wgsl`:
//! every limb a scalar, every index a constant), so compilers keep limbs in registers rather than
//! indexing arrays in private memory: on lavapipe that made verification 9x faster (174 to 1,604
//! signatures a second) and the compile 15x shorter (about 60 s to 4 s). Squarings ([`fe_sq`])
//! compute each cross product once, doubled; the ladder doubles with [`point_double`] (4
//! squarings and 4 multiplications) and adds with [`point_add`] (9 multiplications).
//!
//! The CPU twin below uses exactly the shader's limb algorithms (same functions, same order); unit
//! tests pin it against a big-integer reference and curve25519-dalek, and its verdicts against
//! ed25519-zebra's on every ZIP-215 edge case, and the shader against it.

use bytemuck::{Pod, Zeroable};
use curve25519_dalek::scalar::Scalar;
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use super::{GpuDevice, GpuError};
use crate::sigs::SigRef;

/// Limbs per field element.
pub const LIMBS: usize = 20;
/// Bits per limb.
const BITS: u32 = 13;
const MASK: u32 = (1 << BITS) - 1;
/// `2^260 mod p` (`19 * 2^5`): what a carry out of limb 19 is worth at limb 0.
const FOLD: u32 = 608;

/// A field element mod `2^255 - 19`: 20 limbs of 13 bits, little-endian (limb `i` weighs
/// `2^(13 i)`), not necessarily reduced below `p`.
pub type Fe = [u32; LIMBS];

/// The curve constant `d = -121665/121666`.
pub const FE_D: Fe =
    [6307, 6859, 4740, 5787, 5982, 3157, 1287, 2472, 4106, 3, 6694, 3827, 1943, 928, 3635, 8142, 2927, 1905, 219, 164];
/// `2d`.
pub const FE_D2: Fe =
    [4441, 5527, 1289, 3383, 3773, 6315, 2574, 4944, 20, 7, 5196, 7655, 3886, 1856, 7270, 8092, 5855, 3810, 438, 72];
/// `sqrt(-1) = 2^((p-1)/4)`.
pub const FE_SQRT_M1: Fe =
    [176, 4213, 2514, 7222, 3150, 4668, 5311, 213, 792, 6522, 5609, 7159, 2451, 1664, 3245, 7137, 4033, 1026, 201, 87];
/// The base point `B` (RFC 8032 section 5.1): `x`, `y = 4/5`, and `t = x y`.
pub const BASE_X: Fe = [
    5402, 6446, 6179, 3162, 3221, 5081, 5270, 3090, 3271, 841, 5911, 7085, 799, 4721, 6914, 2687, 3438, 5790, 6733, 66,
];
/// `y` of the base point.
pub const BASE_Y: Fe = [
    1624, 4915, 6553, 3276, 1638, 4915, 6553, 3276, 1638, 4915, 6553, 3276, 1638, 4915, 6553, 3276, 1638, 4915, 6553,
    204,
];
/// `x y` of the base point.
pub const BASE_T: Fe = [
    7587, 3518, 3305, 7445, 5853, 2426, 7493, 4110, 4255, 2311, 6367, 2391, 2278, 5415, 5531, 3788, 6027, 6270, 471,
    207,
];

/// Limb `i` of `64p`, as [`fe_sub`] adds it: every limb at least 2^13 + 608, the sum `64p`.
fn sixty_four_p(i: usize) -> u32 {
    if i == 0 {
        15168
    } else {
        16382
    }
}

/// Carries every limb to 13 bits, folding the carry out of limb 19 onto limb 0 (times 608), twice;
/// the second fold is not propagated, so limb 0 may end up to `2^13 + 608`.
pub fn fe_carry(mut x: Fe) -> Fe {
    for _ in 0..2 {
        for i in 0..LIMBS - 1 {
            x[i + 1] += x[i] >> BITS;
            x[i] &= MASK;
        }
        let c = x[LIMBS - 1] >> BITS;
        x[LIMBS - 1] &= MASK;
        x[0] += c * FOLD;
    }
    x
}

/// `a + b`.
pub fn fe_add(a: &Fe, b: &Fe) -> Fe {
    let mut r = [0; LIMBS];
    for i in 0..LIMBS {
        r[i] = a[i] + b[i];
    }
    fe_carry(r)
}

/// `a - b` (as `a + 64p - b`).
pub fn fe_sub(a: &Fe, b: &Fe) -> Fe {
    let mut r = [0; LIMBS];
    for i in 0..LIMBS {
        r[i] = a[i] + sixty_four_p(i) - b[i];
    }
    fe_carry(r)
}

/// `-a`.
pub fn fe_neg(a: &Fe) -> Fe {
    fe_sub(&[0; LIMBS], a)
}

/// `a b`: schoolbook columns, carried, the top half folded with `2^260 = 608`.
pub fn fe_mul(a: &Fe, b: &Fe) -> Fe {
    let mut t = [0u32; 2 * LIMBS];
    for i in 0..LIMBS {
        for j in 0..LIMBS {
            t[i + j] += a[i] * b[j];
        }
    }
    carry_and_fold(t)
}

/// `a^2`: [`fe_mul`]`(a, a)`'s columns with each cross product computed once and doubled (the same
/// column sums, so the same limbs; 210 products instead of 400).
pub fn fe_sq(a: &Fe) -> Fe {
    let mut t = [0u32; 2 * LIMBS];
    for i in 0..LIMBS {
        t[2 * i] += a[i] * a[i];
        for j in i + 1..LIMBS {
            t[i + j] += a[i] * (2 * a[j]);
        }
    }
    carry_and_fold(t)
}

/// Carries the 40 columns of a product to 13 bits and folds the upper 20 onto the lower.
fn carry_and_fold(mut t: [u32; 2 * LIMBS]) -> Fe {
    for i in 0..2 * LIMBS - 1 {
        t[i + 1] += t[i] >> BITS;
        t[i] &= MASK;
    }
    let mut r = [0; LIMBS];
    for i in 0..LIMBS {
        r[i] = t[i] + t[i + LIMBS] * FOLD;
    }
    fe_carry(r)
}

/// `a^(2^n)` (tests; the shader squares in [`fe_pow_p58`]'s loop).
pub fn fe_sq_n(a: &Fe, n: u32) -> Fe {
    let mut r = *a;
    for _ in 0..n {
        r = fe_sq(&r);
    }
    r
}

/// The unique representative below `p`, every limb below 2^13.
pub fn fe_reduce(a: &Fe) -> Fe {
    let mut x = *a;
    // Fold bits 255 and up (limb 19's bits 8..) onto limb 0 as 19 each, three times: the value is
    // then below 2^255.
    for _ in 0..3 {
        for i in 0..LIMBS - 1 {
            x[i + 1] += x[i] >> BITS;
            x[i] &= MASK;
        }
        let c = x[LIMBS - 1] >> 8;
        x[LIMBS - 1] &= 0xff;
        x[0] += 19 * c;
    }
    // x < 2^255: x >= p exactly when x + 19 reaches 2^255.
    let mut y = x;
    y[0] += 19;
    for i in 0..LIMBS - 1 {
        y[i + 1] += y[i] >> BITS;
        y[i] &= MASK;
    }
    if y[LIMBS - 1] >> 8 != 0 {
        y[LIMBS - 1] &= 0xff;
        y
    } else {
        x
    }
}

/// Whether `a = 0 (mod p)`.
pub fn fe_is_zero(a: &Fe) -> bool {
    fe_reduce(a).iter().all(|&l| l == 0)
}

/// Whether `a = b (mod p)`.
pub fn fe_eq(a: &Fe, b: &Fe) -> bool {
    fe_is_zero(&fe_sub(a, b))
}

/// RFC 8032's sign of `x`: the low bit of its representative below `p`.
pub fn fe_is_negative(a: &Fe) -> bool {
    fe_reduce(a)[0] & 1 == 1
}

/// The low 255 bits of a 32-byte little-endian encoding (given as 8 little-endian u32 words), not
/// reduced mod `p` (ZIP-215 accepts `y >= p`).
pub fn fe_from_words(w: &[u32; 8]) -> Fe {
    let mut r = [0; LIMBS];
    for (i, limb) in r.iter_mut().enumerate() {
        let bit = BITS as usize * i;
        let (word, off) = (bit / 32, bit % 32);
        let mut v = w[word] >> off;
        if off > 32 - BITS as usize && word + 1 < 8 {
            v |= w[word + 1] << (32 - off);
        }
        *limb = v & MASK;
    }
    // Bit 255 (the sign) is limb 19's bit 8.
    r[LIMBS - 1] &= 0xff;
    r
}

/// The 32-byte canonical little-endian encoding of `a` (tests and debugging).
pub fn fe_to_bytes(a: &Fe) -> [u8; 32] {
    let x = fe_reduce(a);
    let mut out = [0u8; 32];
    for (i, &limb) in x.iter().enumerate() {
        for b in 0..BITS as usize {
            let bit = BITS as usize * i + b;
            if bit < 256 && (limb >> b) & 1 == 1 {
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    out
}

/// `z^((p-5)/8) = z^(2^252 - 3)`, square-and-multiply over the exponent's bits (all 252 set but
/// bit 1). Slower than ref10's addition chain (about 250 more multiplications), but the shader has
/// two multiplication sites instead of thirty: Mesa and most drivers inline every call, and the
/// chain's size made lavapipe's compile take minutes.
pub fn fe_pow_p58(z: &Fe) -> Fe {
    let mut r = *z;
    for i in (0..251).rev() {
        r = fe_sq(&r);
        if i != 1 {
            r = fe_mul(&r, z);
        }
    }
    r
}

/// `(was_square, r)` as curve25519-dalek's `FieldElement::sqrt_ratio_i` (RFC 8032 section 5.1.3,
/// steps 2 and 3): `r` the non-negative square root of `u/v` when there is one (`r = 0` for
/// `u = 0`), and `was_square` false when `u/v` is not a square (or `v = 0` with `u != 0`).
pub fn fe_sqrt_ratio_i(u: &Fe, v: &Fe) -> (bool, Fe) {
    let v3 = fe_mul(&fe_mul(v, v), v);
    let v7 = fe_mul(&fe_mul(&v3, &v3), v);
    let mut r = fe_mul(&fe_mul(u, &v3), &fe_pow_p58(&fe_mul(u, &v7)));
    let check = fe_mul(v, &fe_mul(&r, &r));
    let neg_u = fe_neg(u);
    let correct = fe_eq(&check, u);
    let flipped = fe_eq(&check, &neg_u);
    let flipped_i = fe_eq(&check, &fe_mul(&neg_u, &FE_SQRT_M1));
    if flipped || flipped_i {
        r = fe_mul(&r, &FE_SQRT_M1);
    }
    if fe_is_negative(&r) {
        r = fe_neg(&r);
    }
    (correct || flipped, r)
}

/// A point in extended twisted Edwards coordinates `(X : Y : Z : T)`, `x = X/Z`, `y = Y/Z`,
/// `x y = T/Z`.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    /// `X`.
    pub x: Fe,
    /// `Y`.
    pub y: Fe,
    /// `Z`.
    pub z: Fe,
    /// `T`.
    pub t: Fe,
}

fn fe_one() -> Fe {
    let mut r = [0; LIMBS];
    r[0] = 1;
    r
}

/// The neutral element `(0 : 1 : 1 : 0)`.
pub fn point_identity() -> Point {
    Point { x: [0; LIMBS], y: fe_one(), z: fe_one(), t: [0; LIMBS] }
}

/// The base point `B`.
pub fn point_base() -> Point {
    Point { x: BASE_X, y: BASE_Y, z: fe_one(), t: BASE_T }
}

/// `-P`.
pub fn point_neg(p: &Point) -> Point {
    Point { x: fe_neg(&p.x), y: p.y, z: p.z, t: fe_neg(&p.t) }
}

/// `P + Q`: the complete addition for `a = -1` (Hisil-Wong-Carter-Dawson 2008, section 3.1, as
/// curve25519-dalek writes it), valid for every pair of curve points, small-order ones included.
pub fn point_add(p: &Point, q: &Point) -> Point {
    let pp = fe_mul(&fe_add(&p.y, &p.x), &fe_add(&q.y, &q.x));
    let mm = fe_mul(&fe_sub(&p.y, &p.x), &fe_sub(&q.y, &q.x));
    let tt2d = fe_mul(&fe_mul(&p.t, &FE_D2), &q.t);
    let zz = fe_mul(&p.z, &q.z);
    let zz2 = fe_add(&zz, &zz);
    let (cx, cy, cz, ct) = (fe_sub(&pp, &mm), fe_add(&pp, &mm), fe_add(&zz2, &tt2d), fe_sub(&zz2, &tt2d));
    Point { x: fe_mul(&cx, &ct), y: fe_mul(&cy, &cz), z: fe_mul(&cz, &ct), t: fe_mul(&cx, &cy) }
}

/// `2P`: the doubling for `a = -1` (dbl-2008-hwcd, as curve25519-dalek's `ProjectivePoint::double`
/// and `CompletedPoint::as_extended` write it): 4 squarings and 4 multiplications where
/// [`point_add`] takes 9 multiplications; valid for every curve point.
pub fn point_double(p: &Point) -> Point {
    let xx = fe_sq(&p.x);
    let yy = fe_sq(&p.y);
    let zz = fe_sq(&p.z);
    let zz2 = fe_add(&zz, &zz);
    let xy2 = fe_sq(&fe_add(&p.x, &p.y));
    let yy_plus_xx = fe_add(&yy, &xx);
    let yy_minus_xx = fe_sub(&yy, &xx);
    let (cx, cy, cz, ct) = (fe_sub(&xy2, &yy_plus_xx), yy_plus_xx, yy_minus_xx, fe_sub(&zz2, &yy_minus_xx));
    Point { x: fe_mul(&cx, &ct), y: fe_mul(&cy, &cz), z: fe_mul(&cz, &ct), t: fe_mul(&cx, &cy) }
}

/// Decodes a point under ZIP-215: `y` is the low 255 bits as they are (not required below `p`),
/// `x` the non-negative root of `(y^2 - 1)/(d y^2 + 1)`, negated when bit 255 is set (also when
/// `x = 0`). `None` when that ratio is not a square.
pub fn point_decompress(w: &[u32; 8]) -> Option<Point> {
    let (ok, p) = point_decompress_flagged(w);
    ok.then_some(p)
}

/// [`point_decompress`] as the shader's `decode_points` computes it: the flag, and the point built
/// from whatever root came out (meaningless when the flag is false).
pub fn point_decompress_flagged(w: &[u32; 8]) -> (bool, Point) {
    let y = fe_from_words(w);
    let yy = fe_mul(&y, &y);
    let u = fe_sub(&yy, &fe_one());
    let v = fe_add(&fe_mul(&FE_D, &yy), &fe_one());
    let (ok, mut x) = fe_sqrt_ratio_i(&u, &v);
    if w[7] >> 31 == 1 {
        x = fe_neg(&x);
    }
    (ok, Point { x, y, z: fe_one(), t: fe_mul(&x, &y) })
}

/// Whether `P` is the identity: `X = 0` and `Y = Z`.
pub fn point_is_identity(p: &Point) -> bool {
    fe_is_zero(&p.x) && fe_eq(&p.y, &p.z)
}

fn bit(w: &[u32; 8], i: usize) -> usize {
    ((w[i / 32] >> (i % 32)) & 1) as usize
}

/// Entries of each window table: `[j]P` for `j = 0..16` (4-bit windows).
pub const TABLE_ENTRIES: usize = 16;

/// `[8]([s]B + [k]Q - R)` for 256-bit little-endian scalars, as one sequence of
/// [`LADDER_STEPS`] steps ([`ladder_step`], the shader's `ladder_steps` body): Straus-Shamir over
/// 4-bit windows, 259 doublings and 129 complete additions, with [`base_table`] (precomputed once)
/// and [`window_table`]`(Q)` (per signature).
pub fn cofactored_difference(s: &[u32; 8], k: &[u32; 8], q: &Point, neg_r: &Point) -> Point {
    let (base, table) = (base_table(), window_table(q));
    let mut acc = point_identity();
    for n in 0..LADDER_STEPS {
        acc = ladder_step(&acc, n, s, k, &base, &table, neg_r);
    }
    acc
}

/// `[j]P` for `j = 0..16`: `[2i]P` by doubling `[i]P`, `[2i + 1]P` by adding `P` to `[2i]P`
/// (the shader's `prepare_table` builds `Q`'s the same way, in the same order).
pub fn window_table(p: &Point) -> [Point; TABLE_ENTRIES] {
    let mut t = [point_identity(); TABLE_ENTRIES];
    t[1] = *p;
    for j in 2..TABLE_ENTRIES {
        t[j] = if j % 2 == 0 { point_double(&t[j / 2]) } else { point_add(&t[j - 1], &t[1]) };
    }
    t
}

/// The precomputed base-point table `[j]B`, `j = 0..16` ([`window_table`] of `B`): computed once
/// on the host and read by every signature's ladder from a storage buffer.
pub fn base_table() -> [Point; TABLE_ENTRIES] {
    window_table(&point_base())
}

/// The 4-bit window `i` (0 to 63, bits `4i .. 4i + 3`) of a 256-bit little-endian scalar.
fn window(w: &[u32; 8], i: u32) -> usize {
    ((w[i as usize / 8] >> ((i % 8) * 4)) & 15) as usize
}

/// Steps per window: four doublings, then `+ [window of s]B`, then `+ [window of k]Q`.
const WINDOW_STEPS: u32 = 6;

/// Step `n` (0 to [`LADDER_STEPS`] - 1) of [`cofactored_difference`], the shader's `ladder_steps`
/// body: steps `6j` to `6j + 5` handle window `63 - j` (four doublings, then `acc + base[window of
/// s]`, then `acc + table[window of k]`); step 384 adds `-R` (`neg_r`); steps 385 to 387 double.
pub fn ladder_step(
    acc: &Point,
    n: u32,
    s: &[u32; 8],
    k: &[u32; 8],
    base: &[Point; TABLE_ENTRIES],
    table: &[Point; TABLE_ENTRIES],
    neg_r: &Point,
) -> Point {
    let windows_end = 64 * WINDOW_STEPS;
    if n > windows_end || (n < windows_end && n % WINDOW_STEPS < 4) {
        return point_double(acc);
    }
    let operand = if n == windows_end {
        *neg_r
    } else {
        let w = 63 - n / WINDOW_STEPS;
        if n % WINDOW_STEPS == 4 {
            base[window(s, w)]
        } else {
            table[window(k, w)]
        }
    };
    point_add(acc, &operand)
}

/// The twin of the shader's first stages for one signature: the decoded flags of `A` and `R`
/// (`decode_points`), and the signature's [`STATE_POINT_WORDS`] words of points (the accumulator, `-R`,
/// then `[j](-A)` for `j = 0..16`; limbs as computed, not reduced) after `prepare_table` and the
/// first `ladder_steps` steps of `ladder_steps`.
pub fn stages_twin(p: &Prepared, ladder_steps: u32) -> ([u32; 2], Vec<u32>) {
    let (a_ok, a) = point_decompress_flagged(&p.a);
    let (r_ok, r) = point_decompress_flagged(&p.r);
    let (neg_a, neg_r) = (point_neg(&a), point_neg(&r));
    let (base, table) = (base_table(), window_table(&neg_a));
    let mut acc = point_identity();
    for n in 0..ladder_steps.min(LADDER_STEPS) {
        acc = ladder_step(&acc, n, &p.s, &p.k, &base, &table, &neg_r);
    }
    let state = [acc, neg_r].iter().chain(table.iter()).flat_map(|q| [q.x, q.y, q.z, q.t]).flatten().collect();
    ([a_ok as u32, r_ok as u32], state)
}

/// `[s]B + [k]Q` (tests: [`cofactored_difference`] with `R` the identity, before the doublings).
pub fn double_scalar_mul(s: &[u32; 8], k: &[u32; 8], q: &Point) -> Point {
    let b = point_base();
    let table = [point_identity(), b, *q, point_add(&b, q)];
    let mut acc = point_identity();
    for i in (0..256).rev() {
        acc = point_add(&acc, &acc);
        acc = point_add(&acc, &table[bit(s, i) + 2 * bit(k, i)]);
    }
    acc
}

/// One prepared signature, as the shader reads it: 32 little-endian u32 words, the encodings of
/// `A` and `R` as given, `S` (checked below `l`), and `k = SHA-512(R || A || M) mod l`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct Prepared {
    /// The public key's encoding.
    pub a: [u32; 8],
    /// `R`'s encoding (the signature's first 32 bytes).
    pub r: [u32; 8],
    /// `S` (the signature's last 32 bytes), below `l`.
    pub s: [u32; 8],
    /// The challenge `k`, below `l`.
    pub k: [u32; 8],
}

fn words(b: &[u8]) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (i, c) in b.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes(c.try_into().expect("4 bytes"));
    }
    w
}

/// The CPU's share of one verification: `None` when `S >= l` (the signature is invalid whatever
/// the points), else the shader's input with `k` computed (curve25519-dalek's reduction of the
/// SHA-512 digest mod `l`, as zebra does).
pub fn prepare(sig: &SigRef<'_>) -> Option<Prepared> {
    let s_bytes: [u8; 32] = sig.signature[32..].try_into().expect("32 bytes");
    if bool::from(Scalar::from_canonical_bytes(s_bytes).is_none()) {
        return None;
    }
    let mut h = Sha512::new();
    h.update(&sig.signature[..32]);
    h.update(sig.pubkey);
    h.update(sig.message);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Some(Prepared { a: words(sig.pubkey), r: words(&sig.signature[..32]), s: words(&s_bytes), k: words(k.as_bytes()) })
}

/// The GPU's share, on the CPU (the shader's twin): decode `A` and `R`, then
/// `[8]([S]B - [k]A - R) = identity`.
pub fn verify_prepared(p: &Prepared) -> bool {
    let mut points = [point_identity(); 2];
    for (i, enc) in [p.a, p.r].iter().enumerate() {
        match point_decompress(enc) {
            Some(pt) => points[i] = pt,
            None => return false,
        }
    }
    point_is_identity(&cofactored_difference(&p.s, &p.k, &point_neg(&points[0]), &point_neg(&points[1])))
}

/// The whole verification on the CPU twin (tests; [`crate::sigs::verify_one`] is the reference).
pub fn verify_twin(sig: &SigRef<'_>) -> bool {
    prepare(sig).is_some_and(|p| verify_prepared(&p))
}

/// The shader's constants, written from the twin's so the two cannot differ.
fn shader_constants() -> String {
    let fe = |name: &str, v: &Fe| {
        let limbs: Vec<String> = v.iter().map(|l| format!("{l}u")).collect();
        format!("const {name}: Fe = Fe({});\n", limbs.join(", "))
    };
    [
        fe("FE_D", &FE_D),
        fe("FE_D2", &FE_D2),
        fe("FE_SQRT_M1", &FE_SQRT_M1),
        fe("BASE_X", &BASE_X),
        fe("BASE_Y", &BASE_Y),
        fe("BASE_T", &BASE_T),
    ]
    .concat()
}

/// The shader's field operations, generated from the twin's algorithms fully unrolled (every limb
/// a scalar local, every index a constant): `fe_carry`, `fe_add`, `fe_sub` (with `64p`), `fe_mul`
/// (400 products in 39 columns) and `fe_sq` (210, cross products doubled), each carried and folded
/// as [`fe_carry`], [`fe_mul`] and [`fe_sq`] do.
fn field_wgsl() -> String {
    use std::fmt::Write;
    let n = LIMBS;
    let mut s = String::new();
    let fe = |prefix: &str| (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(", ");
    // fe_carry: two rounds, the carry out of limb 19 folded onto limb 0.
    s += "fn fe_carry(a: Fe) -> Fe {\n";
    for i in 0..n {
        writeln!(s, "    var x{i} = a[{i}];").unwrap();
    }
    for _ in 0..2 {
        for i in 0..n - 1 {
            writeln!(s, "    x{} += x{i} >> 13u;\n    x{i} &= MASK;", i + 1).unwrap();
        }
        writeln!(s, "    x0 += (x{} >> 13u) * FOLD;\n    x{} &= MASK;", n - 1, n - 1).unwrap();
    }
    writeln!(s, "    return Fe({});\n}}\n", fe("x")).unwrap();
    let elementwise = |name: &str, op: &dyn Fn(usize) -> String| {
        let terms: Vec<String> = (0..n).map(op).collect();
        format!("fn {name}(a: Fe, b: Fe) -> Fe {{\n    return fe_carry(Fe({}));\n}}\n\n", terms.join(", "))
    };
    s += &elementwise("fe_add", &|i| format!("a[{i}] + b[{i}]"));
    s += &elementwise("fe_sub", &|i| format!("a[{i}] + {}u - b[{i}]", sixty_four_p(i)));
    // Products: columns, carried through all 40, the top 20 folded with 608.
    let product = |name: &str, args: &str, square: bool| {
        let mut s = format!("fn {name}({args}) -> Fe {{\n");
        for i in 0..n {
            writeln!(s, "    let a{i} = a[{i}];").unwrap();
            if square {
                writeln!(s, "    let d{i} = 2u * a{i};").unwrap();
            } else {
                writeln!(s, "    let b{i} = b[{i}];").unwrap();
            }
        }
        for k in 0..2 * n - 1 {
            let mut terms = Vec::new();
            for i in 0..n {
                let j = k as isize - i as isize;
                if j < 0 || j >= n as isize {
                    continue;
                }
                let j = j as usize;
                if !square {
                    terms.push(format!("a{i} * b{j}"));
                } else if i == j {
                    terms.push(format!("a{i} * a{i}"));
                } else if i < j {
                    terms.push(format!("a{i} * d{j}"));
                }
            }
            writeln!(s, "    var t{k} = {};", terms.join(" + ")).unwrap();
        }
        writeln!(s, "    var t{} = 0u;", 2 * n - 1).unwrap();
        for k in 0..2 * n - 1 {
            writeln!(s, "    t{} += t{k} >> 13u;\n    t{k} &= MASK;", k + 1).unwrap();
        }
        let folded: Vec<String> = (0..n).map(|i| format!("t{i} + t{} * FOLD", i + n)).collect();
        writeln!(s, "    return fe_carry(Fe({}));\n}}\n", folded.join(", ")).unwrap();
        s
    };
    s += &product("fe_mul", "a: Fe, b: Fe", false);
    s += &product("fe_sq", "a: Fe", true);
    s
}

/// The full shader source: the generated constants and field operations, then
/// `shaders/ed25519_verify.wgsl`.
pub fn shader_source() -> String {
    #[cfg(test)]
    if let Ok(path) = std::env::var("POWKIT_ED25519_WGSL") {
        // Tests only: iterate on the shader without rebuilding.
        return format!(
            "{}\n{}\n{}",
            shader_constants(),
            field_wgsl(),
            std::fs::read_to_string(path).expect("shader file")
        );
    }
    format!("{}\n{}\n{}", shader_constants(), field_wgsl(), include_str!("../../shaders/ed25519_verify.wgsl"))
}

const WORKGROUP_SIZE: u32 = 64;

/// Signatures per batch on the device (128 bytes each in, 5,760 bytes of state, 12 bytes of
/// flags and verdicts: 92 MiB of buffers).
pub const DISPATCH: usize = 16_384;

/// Words of per-signature points in the shader's state: the accumulator, `-R`, and `[j](-A)` for
/// `j = 0..16`, 80 words each.
pub const STATE_POINT_WORDS: usize = 80 * (2 + TABLE_ENTRIES);

/// Words of per-signature state in the shader: the points, `A`'s and `R`'s decoded flags, and two
/// words of padding.
pub const STATE_WORDS: usize = STATE_POINT_WORDS + 4;

/// The steps of the ladder (`cofactored_difference`): six per 4-bit window (64 windows), one for
/// `-R`, three doublings.
pub const LADDER_STEPS: u32 = 64 * WINDOW_STEPS + 4;

/// Ladder steps per dispatch: short dispatches keep a desktop GPU's display responsive and its
/// driver's watchdog quiet.
pub const LADDER_SLICE: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    count: u32,
    first_step: u32,
    steps: u32,
    _pad: u32,
}

/// The shader's entry points, in the order one batch runs them.
const ENTRY_POINTS: [&str; 4] = ["decode_points", "prepare_table", "ladder_steps", "finish_verdicts"];

/// Batched Ed25519 (ZIP-215) verification on a GPU device: the four stages of
/// `shaders/ed25519_verify.wgsl` (decode, table, ladder in slices, verdict), each checked against
/// its CPU twin in this module's tests.
pub struct GpuSigVerifier {
    dev: GpuDevice,
    layout: wgpu::BindGroupLayout,
    /// One pipeline per entry of [`ENTRY_POINTS`].
    pipelines: Vec<wgpu::ComputePipeline>,
    /// [`base_table`] on the device.
    base_table: wgpu::Buffer,
}

impl std::fmt::Debug for GpuSigVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSigVerifier").field("adapter", &self.dev.adapter).finish()
    }
}

/// The device buffers of one batch.
struct Batch {
    count: u32,
    sigs: wgpu::Buffer,
    state: wgpu::Buffer,
    verdicts: wgpu::Buffer,
}

impl GpuSigVerifier {
    /// Compiles the verifier's four stages on `dev` (on lavapipe this takes a minute or more:
    /// build one verifier and keep it).
    pub fn new(dev: GpuDevice) -> GpuSigVerifier {
        let module = dev.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ed25519_verify"),
            source: wgpu::ShaderSource::Wgsl(shader_source().into()),
        });
        let entry = |binding: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        };
        let rw = wgpu::BufferBindingType::Storage { read_only: false };
        let layout = dev.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("ed25519 bindings"),
            entries: &[
                entry(0, wgpu::BufferBindingType::Uniform),
                entry(1, wgpu::BufferBindingType::Storage { read_only: true }),
                entry(2, rw),
                entry(3, rw),
                entry(4, wgpu::BufferBindingType::Storage { read_only: true }),
            ],
        });
        let pipeline_layout = dev.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("ed25519"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipelines = ENTRY_POINTS
            .iter()
            .map(|name| {
                dev.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(name),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(name),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        // The precomputed base-point table, uploaded once.
        let words: Vec<u32> = base_table().iter().flat_map(|p| [p.x, p.y, p.z, p.t]).flatten().collect();
        let base_table = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ed25519 base table"),
            size: 4 * words.len() as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        dev.queue.write_buffer(&base_table, 0, bytemuck::cast_slice(&words));
        GpuSigVerifier { dev, layout, pipelines, base_table }
    }

    /// The device it runs on.
    pub fn device(&self) -> &GpuDevice {
        &self.dev
    }

    /// The verdict of each signature under ZIP-215 (`true`: valid), in order, the same as
    /// [`crate::sigs::verify_one`]'s. `k` is hashed on the CPU cores; the rest runs on the GPU in
    /// batches of up to [`DISPATCH`] signatures.
    ///
    /// # Errors
    /// [`GpuError::Readback`] when the device fails (lost, out of memory).
    pub fn verify(&self, sigs: &[SigRef<'_>]) -> Result<Vec<bool>, GpuError> {
        let prepared: Vec<Option<Prepared>> = sigs.par_iter().map(prepare).collect();
        let mut out = Vec::with_capacity(sigs.len());
        for chunk in prepared.chunks(DISPATCH) {
            // S >= l: refused here; the slot is sent as zeros and its verdict ignored.
            let input: Vec<Prepared> = chunk.iter().map(|p| p.unwrap_or_else(Prepared::zeroed)).collect();
            let verdicts = self.verify_prepared_batch(&input)?;
            out.extend(chunk.iter().zip(verdicts).map(|(p, v)| p.is_some() && v));
        }
        Ok(out)
    }

    /// The shader's verdict on each prepared signature (one batch; at most [`DISPATCH`]).
    ///
    /// # Errors
    /// As [`GpuSigVerifier::verify`], and [`GpuError::TooLarge`] past the device's buffer limits.
    pub fn verify_prepared_batch(&self, input: &[Prepared]) -> Result<Vec<bool>, GpuError> {
        if input.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.upload(input)?;
        let mut enc =
            self.dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ed25519") });
        self.encode_stages(&mut enc, &batch, LADDER_STEPS, true);
        self.dev.queue.submit([enc.finish()]);
        let got = self.dev.read_buffer(&batch.verdicts, 4 * batch.count as u64)?;
        Ok(got.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) == 1).collect())
    }

    /// Tests: the decoded flags (two per signature) and the state's points ([`STATE_POINT_WORDS`]
    /// per signature) after decoding, the table, and the first `ladder_steps` steps of the ladder.
    #[cfg(test)]
    pub(crate) fn run_stages(&self, input: &[Prepared], ladder_steps: u32) -> Result<(Vec<u32>, Vec<u32>), GpuError> {
        let batch = self.upload(input)?;
        let mut enc =
            self.dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ed25519") });
        self.encode_stages(&mut enc, &batch, ladder_steps, false);
        self.dev.queue.submit([enc.finish()]);
        let n = batch.count as u64;
        let words = |b: Vec<u8>| -> Vec<u32> {
            b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
        };
        let all = words(self.dev.read_buffer(&batch.state, 4 * STATE_WORDS as u64 * n)?);
        let decoded = all.chunks_exact(STATE_WORDS).flat_map(|c| [c[STATE_POINT_WORDS], c[STATE_POINT_WORDS + 1]]);
        let points = all.chunks_exact(STATE_WORDS).flat_map(|c| c[..STATE_POINT_WORDS].to_vec());
        Ok((decoded.collect(), points.collect()))
    }

    fn upload(&self, input: &[Prepared]) -> Result<Batch, GpuError> {
        let dev = &self.dev;
        let count = u32::try_from(input.len()).map_err(|_| GpuError::TooLarge("more than 2^32 signatures".into()))?;
        let bytes: &[u8] = bytemuck::cast_slice(input);
        let state_size = (4 * STATE_WORDS * input.len()) as u64;
        let max = dev.limits.max_storage_buffer_binding_size.min(dev.limits.max_buffer_size);
        if state_size > max {
            return Err(GpuError::TooLarge(format!(
                "{} signatures need {state_size} bytes of state, past the device's storage binding limit of {max} bytes",
                input.len()
            )));
        }
        let storage = |size: u64, label: &str| {
            dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let sigs = storage(bytes.len() as u64, "ed25519 input");
        dev.queue.write_buffer(&sigs, 0, bytes);
        Ok(Batch {
            count,
            sigs,
            state: storage(state_size, "ed25519 state"),
            verdicts: storage(4 * count as u64, "ed25519 verdicts"),
        })
    }

    /// Records decode, table, the ladder's first `ladder_steps` steps in slices of
    /// [`LADDER_SLICE`], and (when `verdicts`) the verdicts, each a dispatch with its own
    /// parameters.
    fn encode_stages(&self, enc: &mut wgpu::CommandEncoder, batch: &Batch, ladder_steps: u32, verdicts: bool) {
        let dev = &self.dev;
        let n = batch.count;
        let mut stages: Vec<(usize, Params, u32)> = vec![
            (0, Params { count: n, first_step: 0, steps: 0, _pad: 0 }, 2 * n),
            (1, Params { count: n, first_step: 0, steps: 0, _pad: 0 }, n),
        ];
        let mut first = 0;
        while first < ladder_steps.min(LADDER_STEPS) {
            let steps = LADDER_SLICE.min(ladder_steps - first);
            stages.push((2, Params { count: n, first_step: first, steps, _pad: 0 }, n));
            first += steps;
        }
        if verdicts {
            stages.push((3, Params { count: n, first_step: 0, steps: 0, _pad: 0 }, n));
        }
        for (pipeline, params, invocations) in stages {
            let uniform = dev.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ed25519 params"),
                size: std::mem::size_of::<Params>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            // Each dispatch has its own small buffer, so the writes (done before the submit) do
            // not race.
            dev.queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&params));
            let bind = dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("ed25519 bindings"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: batch.sigs.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: batch.state.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: batch.verdicts.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: self.base_table.as_entire_binding() },
                ],
            });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(ENTRY_POINTS[pipeline]),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipelines[pipeline]);
            pass.set_bind_group(0, &bind, &[]);
            let groups = invocations.div_ceil(WORKGROUP_SIZE);
            let max = dev.limits.max_compute_workgroups_per_dimension.min(65_535);
            let (x, y) = if groups <= max { (groups, 1) } else { (max, groups.div_ceil(max)) };
            pass.dispatch_workgroups(x, y, 1);
        }
    }
}

impl crate::sigs::SigVerifier for GpuSigVerifier {
    /// The signatures the shader refuses; should the device fail (lost, out of memory), the CPU
    /// reference answers instead, with a warning: a device fault never becomes a verdict.
    fn invalid(&self, sigs: &[SigRef<'_>]) -> Vec<usize> {
        match self.verify(sigs) {
            Ok(v) => v.iter().enumerate().filter(|(_, ok)| !**ok).map(|(i, _)| i).collect(),
            Err(e) => {
                tracing::warn!(adapter = %self.dev.adapter.name, error = %e, "GPU signature verification failed; verifying on the CPU");
                crate::sigs::verify_all(sigs)
            }
        }
    }

    fn describe(&self) -> String {
        format!("gpu ({})", self.dev.adapter.name)
    }

    fn kind(&self) -> &'static str {
        "gpu"
    }

    fn preferred_batch(&self) -> usize {
        DISPATCH
    }
}

#[cfg(test)]
mod tests;
