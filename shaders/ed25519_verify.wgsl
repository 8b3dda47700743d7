// Ed25519 verification under ZIP-215 in four stages (below). The CPU twin is
// src/gpu/ed25519.rs: every function here has its namesake there, with the same limb algorithm.
// The constants (FE_D, FE_D2, FE_SQRT_M1, BASE_X/Y/T) are prepended by the host from the twin's.
//
// Field elements mod p = 2^255 - 19: 20 limbs of 13 bits (see the twin's module doc for the
// bounds that keep every product sum within u32).

alias Fe = array<u32, 20>;

struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

// The verification runs as four kinds of small dispatches over one batch (small kernels: Mesa's
// lavapipe miscompiled the single-kernel form, and short dispatches keep a desktop GPU responsive):
//   decode_points    one invocation per point: A or R decoded, negated, stored; its flag set;
//   prepare_table    one per signature: B + (-A) stored, the accumulator set to the identity;
//   ladder_steps     one per signature: steps first_step .. first_step + steps of the 516;
//   finish_verdicts  one per signature: both points decoded and the accumulator the identity.
struct Params {
    // Signatures in the batch.
    count: u32,
    // ladder_steps only: the first step of this slice and how many it runs.
    first_step: u32,
    steps: u32,
    _pad: u32,
}

// One signature in `sigs`: the encodings of A and R as given, S (< l, checked on the CPU) and
// k = SHA-512(R || A || M) mod l, each 8 little-endian u32 words (32 words in all).
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> sigs: array<u32>;
// Per signature, STATE_WORDS words: the accumulator, -A, B - A and -R, 80 words each (x, y, z, t).
@group(0) @binding(2) var<storage, read_write> state: array<u32>;
// Per point (2 per signature: A then R): 1 when it decoded.
@group(0) @binding(3) var<storage, read_write> decoded: array<u32>;
// Per signature: 1 valid, 0 invalid.
@group(0) @binding(4) var<storage, read_write> verdicts: array<u32>;

const STATE_WORDS: u32 = 320u;
const ACC: u32 = 0u;
const NEG_A: u32 = 80u;
const B_MINUS_A: u32 = 160u;
const NEG_R: u32 = 240u;

const MASK: u32 = 8191u;
// 2^260 mod p.
const FOLD: u32 = 608u;

fn fe_carry(a: Fe) -> Fe {
    var x = a;
    for (var round = 0u; round < 2u; round++) {
        for (var i = 0u; i < 19u; i++) {
            x[i + 1u] += x[i] >> 13u;
            x[i] &= MASK;
        }
        let c = x[19] >> 13u;
        x[19] &= MASK;
        x[0] += c * FOLD;
    }
    return x;
}

fn fe_add(a: Fe, b: Fe) -> Fe {
    var x = a;
    var y = b;
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = x[i] + y[i];
    }
    return fe_carry(r);
}

// a + 64p - b: limb 0 of 64p is 15168, the others 16382.
fn fe_sub(a: Fe, b: Fe) -> Fe {
    var x = a;
    var y = b;
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = x[i] + select(16382u, 15168u, i == 0u) - y[i];
    }
    return fe_carry(r);
}

fn fe_neg(a: Fe) -> Fe {
    return fe_sub(fe_zero(), a);
}

fn fe_mul(a: Fe, b: Fe) -> Fe {
    var x = a;
    var y = b;
    var t: array<u32, 40>;
    for (var i = 0u; i < 40u; i++) {
        t[i] = 0u;
    }
    for (var i = 0u; i < 20u; i++) {
        for (var j = 0u; j < 20u; j++) {
            t[i + j] += x[i] * y[j];
        }
    }
    for (var i = 0u; i < 39u; i++) {
        t[i + 1u] += t[i] >> 13u;
        t[i] &= MASK;
    }
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = t[i] + t[i + 20u] * FOLD;
    }
    return fe_carry(r);
}

// Arrays are built in 'var's and zeroed by explicit stores: on lavapipe (Mesa 22.3.6) a 'let'
// array indexed dynamically read wrong (the module doc of src/gpu/ed25519.rs).
fn fe_zero() -> Fe {
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        r[i] = 0u;
    }
    return r;
}

fn fe_one() -> Fe {
    var r = fe_zero();
    r[0] = 1u;
    return r;
}

// The representative below p.
fn fe_reduce(a: Fe) -> Fe {
    var x = a;
    for (var round = 0u; round < 3u; round++) {
        for (var i = 0u; i < 19u; i++) {
            x[i + 1u] += x[i] >> 13u;
            x[i] &= MASK;
        }
        let c = x[19] >> 8u;
        x[19] &= 0xffu;
        x[0] += 19u * c;
    }
    var y = x;
    y[0] += 19u;
    for (var i = 0u; i < 19u; i++) {
        y[i + 1u] += y[i] >> 13u;
        y[i] &= MASK;
    }
    if (y[19] >> 8u) != 0u {
        y[19] &= 0xffu;
        return y;
    }
    return x;
}

fn fe_is_zero(a: Fe) -> bool {
    var x = fe_reduce(a);
    var acc = 0u;
    for (var i = 0u; i < 20u; i++) {
        acc |= x[i];
    }
    return acc == 0u;
}

fn fe_eq(a: Fe, b: Fe) -> bool {
    return fe_is_zero(fe_sub(a, b));
}

fn fe_is_negative(a: Fe) -> bool {
    let x = fe_reduce(a);
    return (x[0] & 1u) == 1u;
}

// The low 255 bits of a 32-byte encoding, not reduced mod p (ZIP-215 accepts y >= p).
fn fe_from_words(w: array<u32, 8>) -> Fe {
    var v = w;
    var r: Fe;
    for (var i = 0u; i < 20u; i++) {
        let bit = 13u * i;
        let word = bit / 32u;
        let off = bit % 32u;
        var limb = v[word] >> off;
        if off > 19u && word + 1u < 8u {
            limb |= v[word + 1u] << (32u - off);
        }
        r[i] = limb & MASK;
    }
    r[19] &= 0xffu;
    return r;
}

// z^((p-5)/8) = z^(2^252 - 3) by square-and-multiply over the exponent's bits (252 ones but bit
// 1), two multiplication sites in all: Mesa inlines every call, so fewer call sites compile faster.
fn fe_pow_p58(z: Fe) -> Fe {
    var r = z;
    for (var n = 0u; n < 251u; n++) {
        let i = 250u - n;
        r = fe_mul(r, r);
        if i != 1u {
            r = fe_mul(r, z);
        }
    }
    return r;
}

struct SqrtRatio {
    was_square: bool,
    r: Fe,
}

// sqrt(u/v), non-negative, as curve25519-dalek's FieldElement::sqrt_ratio_i.
fn fe_sqrt_ratio_i(u: Fe, v: Fe) -> SqrtRatio {
    let v3 = fe_mul(fe_mul(v, v), v);
    let v7 = fe_mul(fe_mul(v3, v3), v);
    var r = fe_mul(fe_mul(u, v3), fe_pow_p58(fe_mul(u, v7)));
    let check = fe_mul(v, fe_mul(r, r));
    let neg_u = fe_neg(u);
    let correct = fe_eq(check, u);
    let flipped = fe_eq(check, neg_u);
    let flipped_i = fe_eq(check, fe_mul(neg_u, FE_SQRT_M1));
    if flipped || flipped_i {
        r = fe_mul(r, FE_SQRT_M1);
    }
    if fe_is_negative(r) {
        r = fe_neg(r);
    }
    return SqrtRatio(correct || flipped, r);
}

fn point_identity() -> Point {
    return Point(fe_zero(), fe_one(), fe_one(), fe_zero());
}

fn point_base() -> Point {
    return Point(BASE_X, BASE_Y, fe_one(), BASE_T);
}

fn point_neg(p: Point) -> Point {
    return Point(fe_neg(p.x), p.y, p.z, fe_neg(p.t));
}

// Complete addition for a = -1 (Hisil-Wong-Carter-Dawson 2008, as curve25519-dalek writes it).
fn point_add(p: Point, q: Point) -> Point {
    let pp = fe_mul(fe_add(p.y, p.x), fe_add(q.y, q.x));
    let mm = fe_mul(fe_sub(p.y, p.x), fe_sub(q.y, q.x));
    let tt2d = fe_mul(fe_mul(p.t, FE_D2), q.t);
    let zz = fe_mul(p.z, q.z);
    let zz2 = fe_add(zz, zz);
    let cx = fe_sub(pp, mm);
    let cy = fe_add(pp, mm);
    let cz = fe_add(zz2, tt2d);
    let ct = fe_sub(zz2, tt2d);
    return Point(fe_mul(cx, ct), fe_mul(cy, cz), fe_mul(cz, ct), fe_mul(cx, cy));
}

struct Decoded {
    ok: bool,
    p: Point,
}

// ZIP-215 decoding: y as given (255 bits), x the non-negative root, negated when bit 255 is set.
fn point_decompress(w: array<u32, 8>) -> Decoded {
    let y = fe_from_words(w);
    let yy = fe_mul(y, y);
    let u = fe_sub(yy, fe_one());
    let v = fe_add(fe_mul(FE_D, yy), fe_one());
    let root = fe_sqrt_ratio_i(u, v);
    var x = root.r;
    if (w[7] >> 31u) == 1u {
        x = fe_neg(x);
    }
    return Decoded(root.was_square, Point(x, y, fe_one(), fe_mul(x, y)));
}

fn point_is_identity(p: Point) -> bool {
    return fe_is_zero(p.x) && fe_eq(p.y, p.z);
}

// Bit `bit` of the 256-bit little-endian scalar at sigs[word0 ..].
fn scalar_bit(word0: u32, bit: u32) -> u32 {
    return (sigs[word0 + bit / 32u] >> (bit % 32u)) & 1u;
}

fn load_point(base: u32) -> Point {
    var p: Point;
    for (var i = 0u; i < 20u; i++) {
        p.x[i] = state[base + i];
        p.y[i] = state[base + 20u + i];
        p.z[i] = state[base + 40u + i];
        p.t[i] = state[base + 60u + i];
    }
    return p;
}

fn store_point(base: u32, p: Point) {
    var q = p;
    for (var i = 0u; i < 20u; i++) {
        state[base + i] = q.x[i];
        state[base + 20u + i] = q.y[i];
        state[base + 40u + i] = q.z[i];
        state[base + 60u + i] = q.t[i];
    }
}

fn read_words(base: u32) -> array<u32, 8> {
    var w: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = sigs[base + i];
    }
    return w;
}

// The invocation's index across a dispatch that may span two dimensions.
fn invocation(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 64u;
}

// Point j of the batch (signature j / 2; A when j is even, R when odd), decoded under ZIP-215 and
// negated: -A goes to NEG_A, -R to NEG_R.
@compute @workgroup_size(64)
fn decode_points(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let j = invocation(gid, groups);
    if j >= 2u * params.count {
        return;
    }
    let sig = j / 2u;
    let which = j % 2u;
    let d = point_decompress(read_words(sig * 32u + which * 8u));
    decoded[j] = select(0u, 1u, d.ok);
    store_point(sig * STATE_WORDS + select(NEG_A, NEG_R, which == 1u), point_neg(d.p));
}

// B + (-A), the fourth entry of the Straus-Shamir table {0, B, -A, B - A}; the accumulator starts
// at the identity.
@compute @workgroup_size(64)
fn prepare_table(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let sig = invocation(gid, groups);
    if sig >= params.count {
        return;
    }
    let base = sig * STATE_WORDS;
    store_point(base + B_MINUS_A, point_add(point_base(), load_point(base + NEG_A)));
    store_point(base + ACC, point_identity());
}

// Steps first_step .. first_step + steps of [8]([S]B + [k](-A) + (-R)) as 516 complete additions,
// one addition site: steps 2j and 2j + 1 handle scalar bit 255 - j (acc + acc, then acc plus the
// table entry for bit j of S + 2 bit j of k); step 512 adds -R; steps 513-515 double.
@compute @workgroup_size(64)
fn ladder_steps(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let sig = invocation(gid, groups);
    if sig >= params.count {
        return;
    }
    let base = sig * STATE_WORDS;
    var acc = load_point(base + ACC);
    let end = min(params.first_step + params.steps, 516u);
    for (var n = params.first_step; n < end; n++) {
        var operand = acc;
        if n < 512u && (n & 1u) == 1u {
            let i = 255u - n / 2u;
            let entry = scalar_bit(sig * 32u + 16u, i) + 2u * scalar_bit(sig * 32u + 24u, i);
            if entry == 0u {
                operand = point_identity();
            } else if entry == 1u {
                operand = point_base();
            } else if entry == 2u {
                operand = load_point(base + NEG_A);
            } else {
                operand = load_point(base + B_MINUS_A);
            }
        } else if n == 512u {
            operand = load_point(base + NEG_R);
        }
        acc = point_add(acc, operand);
    }
    store_point(base + ACC, acc);
}

// Valid when A and R decoded and [8]([S]B - [k]A - R) is the identity.
@compute @workgroup_size(64)
fn finish_verdicts(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let sig = invocation(gid, groups);
    if sig >= params.count {
        return;
    }
    let ok = decoded[2u * sig] == 1u && decoded[2u * sig + 1u] == 1u
        && point_is_identity(load_point(sig * STATE_WORDS + ACC));
    verdicts[sig] = select(0u, 1u, ok);
}
