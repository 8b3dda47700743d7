//! The CPU twin against a big-integer reference and curve25519-dalek, and the twin and the shader
//! against ed25519-zebra (the reference verdict, [`crate::sigs::verify_one`]) on the ZIP-215 edge
//! cases and on random and faulted signatures. The GPU tests run on whatever adapter is present
//! (lavapipe in CI) and skip with a printed reason without one, unless POWKIT_REQUIRE_GPU=1.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::traits::IsIdentity;
use ed25519_zebra::{SigningKey, VerificationKeyBytes};
use rand::{Rng, SeedableRng};

use super::*;
use crate::gpu::device_for_tests;
use crate::sigs::verify_one;

/// Integers mod p in four 64-bit limbs, the plainest way: the reference the limbs are pinned to.
mod reference {
    pub type N = [u64; 4];
    const P: N = [0xffff_ffff_ffff_ffed, u64::MAX, u64::MAX, 0x7fff_ffff_ffff_ffff];

    fn geq(a: &N, b: &N) -> bool {
        for i in (0..4).rev() {
            if a[i] != b[i] {
                return a[i] > b[i];
            }
        }
        true
    }

    fn sub_raw(a: &N, b: &N) -> N {
        let mut r = [0; 4];
        let mut borrow = 0u128;
        for i in 0..4 {
            let d = (a[i] as u128).wrapping_sub(b[i] as u128).wrapping_sub(borrow);
            r[i] = d as u64;
            borrow = (d >> 127) & 1;
        }
        r
    }

    /// `lo + 2^256 hi` mod p (2^256 = 38).
    fn reduce_wide(mut t: [u64; 8]) -> N {
        loop {
            let hi = [t[4], t[5], t[6], t[7]];
            if hi == [0; 4] {
                break;
            }
            let mut carry = 0u128;
            for i in 0..4 {
                let v = t[i] as u128 + hi[i] as u128 * 38 + carry;
                t[i] = v as u64;
                carry = v >> 64;
            }
            t[4] = carry as u64;
            t[5] = 0;
            t[6] = 0;
            t[7] = 0;
        }
        let mut r = [t[0], t[1], t[2], t[3]];
        while geq(&r, &P) {
            r = sub_raw(&r, &P);
        }
        r
    }

    pub fn from_bytes(b: &[u8; 32]) -> N {
        let mut t = [0u64; 8];
        for i in 0..4 {
            t[i] = u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
        }
        reduce_wide(t)
    }

    pub fn to_bytes(a: &N) -> [u8; 32] {
        let mut out = [0u8; 32];
        for i in 0..4 {
            out[8 * i..8 * i + 8].copy_from_slice(&a[i].to_le_bytes());
        }
        out
    }

    pub fn add(a: &N, b: &N) -> N {
        let mut t = [0u64; 8];
        let mut carry = 0u128;
        for i in 0..4 {
            let v = a[i] as u128 + b[i] as u128 + carry;
            t[i] = v as u64;
            carry = v >> 64;
        }
        t[4] = carry as u64;
        reduce_wide(t)
    }

    pub fn sub(a: &N, b: &N) -> N {
        add(a, &sub_raw(&P, b))
    }

    pub fn mul(a: &N, b: &N) -> N {
        let mut t = [0u64; 8];
        for i in 0..4 {
            let mut carry = 0u128;
            for j in 0..4 {
                let v = t[i + j] as u128 + a[i] as u128 * b[j] as u128 + carry;
                t[i + j] = v as u64;
                carry = v >> 64;
            }
            t[i + 4] = carry as u64;
        }
        reduce_wide(t)
    }
}

fn fe_from_bytes(b: &[u8; 32]) -> Fe {
    fe_from_words(&words(b))
}

/// A limb vector at the bounds the arithmetic allows as input: limb 0 up to 2^13 + 607, the
/// others up to 2^13 - 1 (what fe_carry can leave).
fn loose_fe(rng: &mut impl Rng) -> Fe {
    let mut r = [0u32; LIMBS];
    for (i, l) in r.iter_mut().enumerate() {
        *l = match rng.gen_range(0..4) {
            0 => 0,
            1 if i == 0 => MASK + 608,
            1 => MASK,
            _ if i == 0 => rng.gen_range(0..=MASK + 608),
            _ => rng.gen_range(0..=MASK),
        };
    }
    r
}

/// The value of a limb vector as a reference integer mod p.
fn value(a: &Fe) -> reference::N {
    let mut acc = [0u64; 4];
    for i in (0..LIMBS).rev() {
        // acc = acc * 2^13 + limb, mod p.
        acc = reference::mul(&acc, &[1 << 13, 0, 0, 0]);
        acc = reference::add(&acc, &[a[i] as u64, 0, 0, 0]);
    }
    acc
}

#[test]
fn field_operations_equal_the_reference_at_the_limb_bounds() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1501);
    for round in 0..3000 {
        let (a, b) = (loose_fe(&mut rng), loose_fe(&mut rng));
        let (va, vb) = (value(&a), value(&b));
        for (name, got, want) in [
            ("add", fe_add(&a, &b), reference::add(&va, &vb)),
            ("sub", fe_sub(&a, &b), reference::sub(&va, &vb)),
            ("mul", fe_mul(&a, &b), reference::mul(&va, &vb)),
            ("sq", fe_sq(&a), reference::mul(&va, &va)),
            ("neg", fe_neg(&a), reference::sub(&[0; 4], &va)),
        ] {
            // Every result is back within the input bounds, and its value is right.
            assert!(got[0] <= MASK + 608 && got[1..].iter().all(|&l| l <= MASK), "round {round} {name}: {got:?}");
            assert_eq!(fe_to_bytes(&got), reference::to_bytes(&want), "round {round} {name}");
        }
        // Squaring doubles cross products but sums the same columns: the same limbs as a product.
        assert_eq!(fe_sq(&a), fe_mul(&a, &a), "round {round}");
        let r = fe_reduce(&a);
        assert!(r.iter().all(|&l| l <= MASK));
        assert_eq!(fe_to_bytes(&r), reference::to_bytes(&va));
        assert_eq!(fe_is_zero(&a), va == [0; 4]);
    }
}

#[test]
fn encodings_decode_and_reduce_like_the_reference() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1502);
    let mut cases: Vec<[u8; 32]> = (0..500).map(|_| rng.gen()).collect();
    // Around p and 2^255: y = p - 1, p, p + 1, ..., 2^255 - 1 (the top bit is ignored).
    for low in 0xe0..=0xffu8 {
        let mut b = [0xff; 32];
        b[0] = low;
        b[31] = 0x7f;
        cases.push(b);
        b[31] = 0xff;
        cases.push(b);
    }
    cases.push([0; 32]);
    for b in cases {
        let mut y = b;
        y[31] &= 0x7f;
        let fe = fe_from_bytes(&b);
        assert!(fe.iter().all(|&l| l <= MASK));
        assert_eq!(fe_to_bytes(&fe), reference::to_bytes(&reference::from_bytes(&y)), "{}", hex::encode(b));
        assert_eq!(fe_is_negative(&fe), reference::from_bytes(&y)[0] & 1 == 1);
    }
}

#[test]
fn constants_are_what_they_claim() {
    let int = |n: u64| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        fe_from_bytes(&b)
    };
    // d * 121666 = -121665; sqrt(-1)^2 = -1; 2d = d + d.
    assert!(fe_eq(&fe_mul(&FE_D, &int(121666)), &fe_neg(&int(121665))));
    assert!(fe_eq(&fe_mul(&FE_SQRT_M1, &FE_SQRT_M1), &fe_neg(&int(1))));
    assert!(fe_eq(&FE_D2, &fe_add(&FE_D, &FE_D)));
    // The base point is dalek's, and T = X Y.
    let b = point_base();
    assert_eq!(compress(&b), ED25519_BASEPOINT_POINT.compress().to_bytes());
    assert!(fe_eq(&fe_mul(&BASE_X, &BASE_Y), &BASE_T));
    // The precomputed base-point table is [j]B.
    for (j, p) in base_table().iter().enumerate() {
        assert_eq!(compress(p), (ED25519_BASEPOINT_POINT * Scalar::from(j as u64)).compress().to_bytes(), "[{j}]B");
    }
    // fe_pow_p58 is z^(2^252 - 3): checked through the inverse z^(p - 2) = (z^(2^252 - 3))^8 z^3.
    let mut rng = rand::rngs::StdRng::seed_from_u64(1503);
    for _ in 0..50 {
        let z = loose_fe(&mut rng);
        if fe_is_zero(&z) {
            continue;
        }
        assert!(fe_eq(&fe_mul(&invert(&z), &z), &int(1)));
    }
}

fn invert(z: &Fe) -> Fe {
    let z3 = fe_mul(&fe_mul(z, z), z);
    fe_mul(&fe_sq_n(&fe_pow_p58(z), 3), &z3)
}

/// RFC 8032's encoding of a point.
fn compress(p: &Point) -> [u8; 32] {
    let zi = invert(&p.z);
    let (x, y) = (fe_mul(&p.x, &zi), fe_mul(&p.y, &zi));
    let mut out = fe_to_bytes(&y);
    out[31] |= (fe_is_negative(&x) as u8) << 7;
    out
}

/// The 8 canonical encodings of the small-order points and the 6 non-canonical ones (`y >= p`, or
/// `x = 0` with the sign bit set), as ZIP-215 lists them.
fn small_order_encodings() -> Vec<[u8; 32]> {
    [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ]
    .iter()
    .map(|s| hex::decode(s).unwrap().try_into().unwrap())
    .collect()
}

#[test]
fn small_order_encodings_are_the_14() {
    let encs = small_order_encodings();
    let points: Vec<EdwardsPoint> = encs.iter().map(|e| CompressedEdwardsY(*e).decompress().unwrap()).collect();
    assert!(points.iter().all(|p| p.is_small_order()));
    let canonical: std::collections::BTreeSet<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
    assert_eq!(canonical.len(), 8, "the 8 points of the torsion subgroup");
    for (i, e) in encs.iter().enumerate() {
        assert_eq!(points[i].compress().to_bytes() == *e, i < 8, "encoding {i} canonical");
    }
}

/// Encodings that exercise decompression: random, every y below 19 and its y + p twin with both
/// signs, the small-order ones, and valid points.
fn decoding_cases(rng: &mut impl Rng) -> Vec<[u8; 32]> {
    let mut cases: Vec<[u8; 32]> = (0..200).map(|_| rng.gen()).collect();
    for y in 0u8..19 {
        let mut b = [0u8; 32];
        b[0] = y;
        cases.push(b);
        b[31] = 0x80;
        cases.push(b);
        let mut b = [0xff; 32];
        b[0] = 0xed + y;
        b[31] = 0x7f;
        cases.push(b);
        b[31] = 0xff;
        cases.push(b);
    }
    cases.extend(small_order_encodings());
    for _ in 0..50 {
        let p = ED25519_BASEPOINT_POINT * Scalar::from(rng.gen::<u64>());
        cases.push(p.compress().to_bytes());
    }
    cases
}

#[test]
fn decompression_equals_dalek_including_non_canonical_encodings() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1504);
    let (mut valid, mut invalid) = (0, 0);
    for e in decoding_cases(&mut rng) {
        let ours = point_decompress(&words(&e));
        let theirs = CompressedEdwardsY(e).decompress();
        assert_eq!(ours.is_some(), theirs.is_some(), "{}", hex::encode(e));
        if let (Some(p), Some(q)) = (ours, theirs) {
            assert_eq!(compress(&p), q.compress().to_bytes(), "{}", hex::encode(e));
            assert!(fe_eq(&fe_mul(&p.x, &p.y), &fe_mul(&p.t, &p.z)));
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(valid > 100 && invalid > 50, "both outcomes exercised: {valid} valid, {invalid} invalid");
}

#[test]
fn group_law_and_double_scalar_mul_equal_dalek() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1505);
    let encs = small_order_encodings();
    for round in 0..12 {
        let s = Scalar::from_bytes_mod_order(rng.gen());
        let k = Scalar::from_bytes_mod_order(rng.gen());
        // Q: a random point, or a small-order one (the formulas are complete: no exceptions).
        let q_enc = if round % 3 == 0 {
            encs[rng.gen_range(0..encs.len())]
        } else {
            (ED25519_BASEPOINT_POINT * Scalar::from(rng.gen::<u64>())).compress().to_bytes()
        };
        let q_dalek = CompressedEdwardsY(q_enc).decompress().unwrap();
        let q = point_decompress(&words(&q_enc)).unwrap();
        let got = double_scalar_mul(&words(s.as_bytes()), &words(k.as_bytes()), &q);
        let want = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &q_dalek, &s);
        assert_eq!(compress(&got), want.compress().to_bytes(), "round {round}");
        assert_eq!(compress(&point_add(&q, &q)), (q_dalek + q_dalek).compress().to_bytes());
        assert_eq!(compress(&point_double(&q)), (q_dalek + q_dalek).compress().to_bytes(), "round {round}");
        let sum = point_add(&q, &point_base());
        assert_eq!(compress(&point_double(&sum)), compress(&point_add(&sum, &sum)), "round {round}");
        // The whole sequence: [8]([s]B + [k]Q - R).
        let r_dalek = ED25519_BASEPOINT_POINT * Scalar::from(rng.gen::<u64>());
        let r = point_decompress(&words(&r_dalek.compress().to_bytes())).unwrap();
        let got = cofactored_difference(&words(s.as_bytes()), &words(k.as_bytes()), &q, &point_neg(&r));
        assert_eq!(compress(&got), (want - r_dalek).mul_by_cofactor().compress().to_bytes(), "round {round}");
        assert_eq!(compress(&point_add(&q, &point_neg(&q))), EdwardsPoint::default().compress().to_bytes());
        assert!(point_is_identity(&point_add(&q, &point_neg(&q))));
        assert_eq!(point_is_identity(&q), q_dalek.is_identity());
    }
}

/// One signature to check: key, signature, message, and what it exercises.
struct Case {
    pubkey: [u8; 32],
    signature: [u8; 64],
    message: Vec<u8>,
    label: String,
}

impl Case {
    fn sig_ref(&self) -> SigRef<'_> {
        SigRef { pubkey: &self.pubkey, signature: &self.signature, message: &self.message }
    }
}

fn sig(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

/// `l` as little-endian bytes, and `l + delta` for small `delta` (may be negative).
fn l_plus(delta: i64) -> [u8; 32] {
    let mut l: [u8; 32] =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap().try_into().unwrap();
    let mut carry = delta;
    for b in l.iter_mut() {
        let v = *b as i64 + carry;
        *b = v.rem_euclid(256) as u8;
        carry = v.div_euclid(256);
    }
    l
}

fn k_of(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Every case the issue lists: RFC 8032, speccheck, the 196 small-order pairs with S = 0 and
/// S = l, non-canonical A and R in valid signatures, S at l - 1, l, l + 1, random valid signatures
/// and random single-bit faults in signature, key and message.
fn differential_cases(random: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, (_, pk, msg, s)) in crate::sigs::tests::rfc8032().into_iter().enumerate() {
        cases.push(Case { pubkey: pk, signature: s, message: msg, label: format!("rfc8032 {i}") });
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/ed25519/speccheck-cases.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let spec: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(spec.len(), 12);
    for (i, c) in spec.iter().enumerate() {
        let f = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
        cases.push(Case {
            pubkey: f("pub_key").try_into().unwrap(),
            signature: f("signature").try_into().unwrap(),
            message: f("message"),
            label: format!("speccheck {i}"),
        });
    }
    let encs = small_order_encodings();
    for (i, a) in encs.iter().enumerate() {
        for (j, r) in encs.iter().enumerate() {
            for (sname, s) in [("0", [0u8; 32]), ("l", l_plus(0))] {
                cases.push(Case {
                    pubkey: *a,
                    signature: sig(r, &s),
                    message: b"Zcash".to_vec(),
                    label: format!("small-order A {i} R {j} S {sname}"),
                });
            }
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1506);
    // Valid signatures with a non-canonical A: A of small order, R = [r]B, S = r.
    // S at l - 1 (valid), l and l + 1 (refused: not canonical, though the equation holds mod l).
    for (i, a) in encs.iter().enumerate().skip(8) {
        let r = Scalar::from_bytes_mod_order(rng.gen());
        let r_enc = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        cases.push(Case {
            pubkey: *a,
            signature: sig(&r_enc, r.as_bytes()),
            message: vec![i as u8],
            label: format!("non-canonical A {i}"),
        });
        for delta in [-1i64, 0, 1] {
            let s = l_plus(delta);
            let r_enc = (ED25519_BASEPOINT_POINT * Scalar::from_bytes_mod_order(s)).compress().to_bytes();
            cases.push(Case {
                pubkey: *a,
                signature: sig(&r_enc, &s),
                message: vec![i as u8],
                label: format!("A {i} S = l{delta:+}"),
            });
        }
    }
    // Valid signatures with a non-canonical R (small order): A = [a]B, S = k a.
    for (j, r_enc) in encs.iter().enumerate() {
        let a = Scalar::from_bytes_mod_order(rng.gen());
        let a_enc = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let msg = vec![j as u8, 7];
        let s = k_of(r_enc, &a_enc, &msg) * a;
        cases.push(Case {
            pubkey: a_enc,
            signature: sig(r_enc, s.as_bytes()),
            message: msg,
            label: format!("small-order R {j}, S = k a"),
        });
    }
    // y + p encodings (y < 19) as A and as R with random S: mostly refused, some decode.
    for y in 0u8..19 {
        for top in [0x7f, 0xff] {
            let mut e = [0xff; 32];
            e[0] = 0xed + y;
            e[31] = top;
            let good = SigningKey::from(rng.gen::<[u8; 32]>());
            let good_a: [u8; 32] = VerificationKeyBytes::from(&good).into();
            let s = Scalar::from_bytes_mod_order(rng.gen());
            cases.push(Case {
                pubkey: e,
                signature: sig(&good_a, s.as_bytes()),
                message: vec![y],
                label: format!("A = {y} + p"),
            });
            cases.push(Case {
                pubkey: good_a,
                signature: sig(&e, s.as_bytes()),
                message: vec![y],
                label: format!("R = {y} + p"),
            });
        }
    }
    // Random valid signatures, and single-bit faults in each part.
    for i in 0..random {
        let key = SigningKey::from(rng.gen::<[u8; 32]>());
        let pk: [u8; 32] = VerificationKeyBytes::from(&key).into();
        let msg: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect();
        let s: [u8; 64] = key.sign(&msg).to_bytes();
        cases.push(Case { pubkey: pk, signature: s, message: msg.clone(), label: format!("random {i}") });
        let mut c = Case { pubkey: pk, signature: s, message: msg, label: String::new() };
        match i % 3 {
            0 => {
                let b = rng.gen_range(0..512);
                c.signature[b / 8] ^= 1 << (b % 8);
                c.label = format!("random {i}: signature bit {b} flipped");
            }
            1 => {
                let b = rng.gen_range(0..256);
                c.pubkey[b / 8] ^= 1 << (b % 8);
                c.label = format!("random {i}: key bit {b} flipped");
            }
            _ => {
                if c.message.is_empty() {
                    c.message.push(0);
                }
                let b = rng.gen_range(0..8 * c.message.len());
                c.message[b / 8] ^= 1 << (b % 8);
                c.label = format!("random {i}: message bit {b} flipped");
            }
        }
        cases.push(c);
    }
    cases
}

/// Checks `got` against zebra's verdict on every case; both outcomes must occur in each group.
fn assert_zebra_verdicts(cases: &[Case], got: &[bool], path: &str) {
    assert_eq!(got.len(), cases.len());
    let mut valid = 0;
    for (c, &v) in cases.iter().zip(got) {
        let want = verify_one(&c.sig_ref());
        assert_eq!(v, want, "{path}: {} (zebra says {want})", c.label);
        valid += want as usize;
    }
    assert!(valid > 0 && valid < cases.len(), "{path}: {valid} of {} valid", cases.len());
    eprintln!("{path}: {} cases, {valid} valid, every verdict equal to ed25519-zebra's", cases.len());
}

#[test]
fn twin_verdicts_equal_zebra_on_every_edge_case() {
    let cases = differential_cases(60);
    let got: Vec<bool> = cases.par_iter().map(|c| verify_twin(&c.sig_ref())).collect();
    assert_zebra_verdicts(&cases, &got, "CPU twin");
    // The edge cases have the verdicts ZIP-215 gives them.
    let by_label = |l: &str| cases.iter().zip(&got).find(|(c, _)| c.label == l).map(|(_, &v)| v).unwrap();
    assert!(by_label("small-order A 9 R 13 S 0"), "non-canonical small-order A and R, S = 0: valid");
    assert!(!by_label("small-order A 9 R 13 S l"), "S = l: refused");
    assert!(by_label("A 8 S = l-1") && !by_label("A 8 S = l+0") && !by_label("A 8 S = l+1"));
}

#[test]
fn gpu_verdicts_equal_zebra_on_every_edge_case() {
    let Some(gpu) = verifier_for_tests() else { return };
    let cases = differential_cases(120);
    let refs: Vec<SigRef> = cases.iter().map(Case::sig_ref).collect();
    let got = gpu.verify(&refs).unwrap();
    assert_zebra_verdicts(&cases, &got, "GPU");
}

#[test]
fn shader_equals_twin_on_arbitrary_prepared_inputs() {
    let Some(gpu) = verifier_for_tests() else { return };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1507);
    // Random words everywhere (S and k not reduced, A and R mostly not on the curve), and valid
    // points with random scalars: the shader and the twin agree on each.
    let mut input: Vec<Prepared> =
        (0..40).map(|_| Prepared { a: rng.gen(), r: rng.gen(), s: rng.gen(), k: rng.gen() }).collect();
    for i in 0..40 {
        let a = (ED25519_BASEPOINT_POINT * Scalar::from(rng.gen::<u64>())).compress().to_bytes();
        let s = Scalar::from(rng.gen::<u64>());
        // R = [s]B - [k]A with k = 0 when i is even: valid; otherwise random k.
        let k = if i % 2 == 0 { [0u32; 8] } else { rng.gen() };
        let r = (ED25519_BASEPOINT_POINT * s).compress().to_bytes();
        input.push(Prepared { a: words(&a), r: words(&r), s: words(s.as_bytes()), k });
    }
    let got = gpu.verify_prepared_batch(&input).unwrap();
    let want: Vec<bool> = input.par_iter().map(verify_prepared).collect();
    assert_eq!(got, want);
    assert!(want.iter().any(|&v| v) && want.iter().any(|&v| !v));
}

#[test]
fn gpu_batch_names_exactly_the_planted_faults() {
    let Some(gpu) = verifier_for_tests() else { return };
    let mut rng = rand::rngs::StdRng::seed_from_u64(1508);
    let n = 300;
    let keys: Vec<SigningKey> = (0..8).map(|_| SigningKey::from(rng.gen::<[u8; 32]>())).collect();
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("transfer {i}").into_bytes()).collect();
    let mut sigs: Vec<([u8; 32], [u8; 64])> = (0..n)
        .map(|i| {
            let k = &keys[i % keys.len()];
            (VerificationKeyBytes::from(k).into(), k.sign(&msgs[i]).to_bytes())
        })
        .collect();
    let planted = [0usize, 17, 64, 65, 199, n - 1];
    for &i in &planted {
        let b = rng.gen_range(0..512);
        sigs[i].1[b / 8] ^= 1 << (b % 8);
    }
    let refs: Vec<SigRef> =
        sigs.iter().zip(&msgs).map(|((pk, s), m)| SigRef { pubkey: pk, signature: s, message: m }).collect();
    let got = gpu.verify(&refs).unwrap();
    let bad: Vec<usize> = (0..n).filter(|&i| !got[i]).collect();
    assert_eq!(bad, planted);
    assert_eq!(bad, crate::sigs::verify_all(&refs));
}

/// One verifier for every GPU test of this binary (compiling the shader takes a minute or more
/// on lavapipe).
fn verifier_for_tests() -> Option<&'static GpuSigVerifier> {
    static VERIFIER: std::sync::OnceLock<Option<GpuSigVerifier>> = std::sync::OnceLock::new();
    VERIFIER
        .get_or_init(|| {
            let dev = device_for_tests()?;
            let t0 = std::time::Instant::now();
            let v = GpuSigVerifier::new(dev);
            eprintln!("ed25519 shader compiled in {:.1} s", t0.elapsed().as_secs_f64());
            Some(v)
        })
        .as_ref()
}

/// Inputs for the stage comparisons: valid points with random scalars, an undecodable A, an
/// undecodable R, small-order and non-canonical encodings, and random words.
fn stage_inputs() -> Vec<Prepared> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1509);
    let mut point = || words(&(ED25519_BASEPOINT_POINT * Scalar::from(rng.gen::<u64>())).compress().to_bytes());
    let (a, r) = (point(), point());
    let small = small_order_encodings();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1510);
    let mut input = vec![
        Prepared { a, r, s: rng.gen(), k: rng.gen() },
        Prepared { a: r, r: a, s: rng.gen(), k: rng.gen() },
        Prepared { a: words(&small[9]), r: words(&small[13]), s: [0; 8], k: rng.gen() },
        Prepared { a: words(&small[2]), r, s: rng.gen(), k: [u32::MAX; 8] },
    ];
    // Random words: most are not on the curve (a flag of 0), about half are.
    for _ in 0..60 {
        input.push(Prepared { a: rng.gen(), r: rng.gen(), s: rng.gen(), k: rng.gen() });
    }
    input
}

#[test]
fn twin_stages_end_in_the_twins_verdict() {
    for p in stage_inputs() {
        let (flags, state) = stages_twin(&p, LADDER_STEPS);
        let mut acc = point_identity();
        for (i, fe) in [&mut acc.x, &mut acc.y, &mut acc.z, &mut acc.t].into_iter().enumerate() {
            fe.copy_from_slice(&state[20 * i..20 * i + 20]);
        }
        assert_eq!(flags == [1, 1] && point_is_identity(&acc), verify_prepared(&p));
    }
}

/// Every stage of the shader against its twin, limb for limb: the decoded flags and the state
/// after decoding and the table (0 steps), within and after the first window (1, 2, 4, 5, 6 steps:
/// doublings, the base-table addition, the window-table addition), after one slice and a bit more
/// (crossing a dispatch), after 383 (all the windows), 385 (with -R) and all 388.
#[test]
fn each_shader_stage_equals_its_twin() {
    let Some(gpu) = verifier_for_tests() else { return };
    let input = stage_inputs();
    let mut decodable = [0usize; 2];
    for steps in [0, 1, 2, 4, 5, 6, LADDER_SLICE + 3, 383, 385, LADDER_STEPS] {
        let (flags, state) = gpu.run_stages(&input, steps).unwrap();
        for (i, p) in input.iter().enumerate() {
            let (want_flags, want_state) = stages_twin(p, steps);
            assert_eq!(flags[2 * i..2 * i + 2], want_flags, "decode flags of input {i}");
            if steps == 0 {
                decodable[0] += want_flags[0] as usize;
                decodable[1] += (want_flags[0] == 0) as usize;
            }
            let got = &state[STATE_POINT_WORDS * i..STATE_POINT_WORDS * (i + 1)];
            for part in 0..STATE_POINT_WORDS / 80 {
                let name = match part {
                    0 => "accumulator".to_string(),
                    1 => "-R".to_string(),
                    j => format!("[{}](-A)", j - 2),
                };
                let r = 80 * part..80 * part + 80;
                assert_eq!(got[r.clone()], want_state[r], "{name} of input {i} after {steps} ladder steps");
            }
        }
    }
    assert!(decodable[0] > 4 && decodable[1] > 4, "both decodable and undecodable A occur: {decodable:?}");
}
