//! A small unsigned 256-bit integer, just enough for targets and chain work.
//!
//! Bitcoin Core does this arithmetic with `arith_uint256`; the operations here follow its semantics
//! (shifts past 255 bits give zero, addition and subtraction wrap modulo 2^256).

use std::cmp::Ordering;
use std::fmt;

/// An unsigned 256-bit integer stored as four little-endian 64-bit limbs (`0[0]` is the lowest).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256(pub [u64; 4]);

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 4]);
    /// One.
    pub const ONE: U256 = U256([1, 0, 0, 0]);
    /// 2^256 - 1.
    pub const MAX: U256 = U256([u64::MAX; 4]);

    /// The value of a `u64`.
    pub const fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    /// Reads 32 big-endian bytes (most significant first).
    pub fn from_be_bytes(b: [u8; 32]) -> U256 {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            let off = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(b[off..off + 8].try_into().expect("8 bytes"));
        }
        U256(l)
    }

    /// Reads 32 little-endian bytes (least significant first), the order of a Bitcoin hash in memory.
    pub fn from_le_bytes(b: [u8; 32]) -> U256 {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        }
        U256(l)
    }

    /// The value as the nearest-below float (53 bits kept): for display and estimates only (a
    /// difficulty, chain work as a metric), never for consensus.
    pub fn to_f64(self) -> f64 {
        self.0.iter().rev().fold(0.0, |acc, &l| acc * 18446744073709551616.0 + l as f64)
    }

    /// The 32 big-endian bytes.
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for i in 0..4 {
            let off = 32 - 8 * (i + 1);
            b[off..off + 8].copy_from_slice(&self.0[i].to_be_bytes());
        }
        b
    }

    /// The 32 little-endian bytes.
    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for i in 0..4 {
            b[8 * i..8 * i + 8].copy_from_slice(&self.0[i].to_le_bytes());
        }
        b
    }

    /// True when the value is zero.
    pub fn is_zero(self) -> bool {
        self.0 == [0; 4]
    }

    /// The number of significant bits (0 for zero), like `arith_uint256::bits`.
    pub fn bits(self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// The lowest 64 bits.
    pub fn low_u64(self) -> u64 {
        self.0[0]
    }

    /// Wrapping addition modulo 2^256; the bool is true on carry out.
    pub fn overflowing_add(self, o: U256) -> (U256, bool) {
        let mut r = [0u64; 4];
        let mut carry = false;
        for (i, out) in r.iter_mut().enumerate() {
            let (s1, c1) = self.0[i].overflowing_add(o.0[i]);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *out = s2;
            carry = c1 || c2;
        }
        (U256(r), carry)
    }

    /// Wrapping subtraction modulo 2^256; the bool is true on borrow.
    pub fn overflowing_sub(self, o: U256) -> (U256, bool) {
        let mut r = [0u64; 4];
        let mut borrow = false;
        for (i, out) in r.iter_mut().enumerate() {
            let (d1, b1) = self.0[i].overflowing_sub(o.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *out = d2;
            borrow = b1 || b2;
        }
        (U256(r), borrow)
    }

    /// Addition that returns `None` on overflow.
    pub fn checked_add(self, o: U256) -> Option<U256> {
        match self.overflowing_add(o) {
            (v, false) => Some(v),
            _ => None,
        }
    }

    /// Wrapping addition modulo 2^256.
    pub fn wrapping_add(self, o: U256) -> U256 {
        self.overflowing_add(o).0
    }

    /// Left shift; shifting by 256 or more gives zero.
    pub fn shl_bits(self, s: u32) -> U256 {
        if s >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((s / 64) as usize, s % 64);
        let mut r = [0u64; 4];
        for i in (limbs..4).rev() {
            let src = i - limbs;
            r[i] = self.0[src] << bits;
            if bits > 0 && src > 0 {
                r[i] |= self.0[src - 1] >> (64 - bits);
            }
        }
        U256(r)
    }

    /// Right shift; shifting by 256 or more gives zero.
    pub fn shr_bits(self, s: u32) -> U256 {
        if s >= 256 {
            return U256::ZERO;
        }
        let (limbs, bits) = ((s / 64) as usize, s % 64);
        let mut r = [0u64; 4];
        for (i, out) in r.iter_mut().enumerate().take(4 - limbs) {
            let src = i + limbs;
            *out = self.0[src] >> bits;
            if bits > 0 && src + 1 < 4 {
                *out |= self.0[src + 1] << (64 - bits);
            }
        }
        U256(r)
    }

    /// Multiplication by a `u64`, wrapping modulo 2^256 like `arith_uint256::operator*=`; the bool
    /// is true when the product did not fit.
    pub fn overflowing_mul_u64(self, m: u64) -> (U256, bool) {
        let mut r = [0u64; 4];
        let mut carry: u128 = 0;
        for (i, out) in r.iter_mut().enumerate() {
            let p = self.0[i] as u128 * m as u128 + carry;
            *out = p as u64;
            carry = p >> 64;
        }
        (U256(r), carry != 0)
    }

    /// Quotient and remainder; `None` when dividing by zero. Binary long division: this is not a
    /// hot path (it runs once per header when summing chain work).
    pub fn div_rem(self, d: U256) -> Option<(U256, U256)> {
        if d.is_zero() {
            return None;
        }
        if self < d {
            return Some((U256::ZERO, self));
        }
        let shift = self.bits() - d.bits();
        let mut div = d.shl_bits(shift);
        let mut rem = self;
        let mut q = U256::ZERO;
        for i in (0..=shift).rev() {
            if rem >= div {
                rem = rem.overflowing_sub(div).0;
                q.0[(i / 64) as usize] |= 1u64 << (i % 64);
            }
            div = div.shr_bits(1);
        }
        Some((q, rem))
    }
}

impl std::ops::Not for U256 {
    type Output = U256;
    /// Bitwise complement.
    fn not(self) -> U256 {
        U256([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }
}

impl Ord for U256 {
    fn cmp(&self, o: &U256) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&o.0[i]) {
                Ordering::Equal => continue,
                other => return other,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, o: &U256) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.to_be_bytes()))
    }
}

impl fmt::LowerHex for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn from_u128(v: u128) -> U256 {
        U256([v as u64, (v >> 64) as u64, 0, 0])
    }

    #[test]
    fn byte_orders_round_trip() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let b: [u8; 32] = rng.gen();
            assert_eq!(U256::from_be_bytes(b).to_be_bytes(), b);
            assert_eq!(U256::from_le_bytes(b).to_le_bytes(), b);
            let mut r = b;
            r.reverse();
            assert_eq!(U256::from_be_bytes(b), U256::from_le_bytes(r));
        }
    }

    #[test]
    fn arithmetic_matches_u128() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        for _ in 0..2000 {
            let a: u128 = rng.gen::<u64>() as u128 * rng.gen::<u32>() as u128;
            let b: u128 = rng.gen::<u64>() as u128 >> rng.gen_range(0..64);
            let s: u32 = rng.gen_range(0..40);
            assert_eq!(from_u128(a).overflowing_add(from_u128(b)).0, from_u128(a + b));
            if a >= b {
                assert_eq!(from_u128(a).overflowing_sub(from_u128(b)).0, from_u128(a - b));
            }
            assert_eq!(from_u128(a).shr_bits(s), from_u128(a >> s));
            assert_eq!(from_u128(a >> 40).shl_bits(s), from_u128((a >> 40) << s));
            if b != 0 {
                let (q, r) = from_u128(a).div_rem(from_u128(b)).unwrap();
                assert_eq!((q, r), (from_u128(a / b), from_u128(a % b)));
            }
            assert_eq!(from_u128(a).cmp(&from_u128(b)), a.cmp(&b));
            let m = rng.gen::<u32>() as u64;
            assert_eq!(from_u128(b).overflowing_mul_u64(m), (from_u128(b * m as u128), false));
        }
    }

    #[test]
    fn edges() {
        assert_eq!(U256::MAX.overflowing_add(U256::ONE), (U256::ZERO, true));
        assert_eq!(U256::ZERO.overflowing_sub(U256::ONE), (U256::MAX, true));
        assert_eq!(U256::ONE.shl_bits(255).shl_bits(1), U256::ZERO);
        assert_eq!(U256::ONE.shl_bits(256), U256::ZERO);
        assert_eq!(U256::MAX.shr_bits(255), U256::ONE);
        assert_eq!(U256::MAX.bits(), 256);
        assert_eq!(U256::ZERO.bits(), 0);
        assert_eq!(U256::ONE.shl_bits(200).bits(), 201);
        assert!(U256::ONE.div_rem(U256::ZERO).is_none());
        let (q, r) = U256::MAX.div_rem(U256::ONE.shl_bits(128)).unwrap();
        assert_eq!(q, U256([u64::MAX, u64::MAX, 0, 0]));
        assert_eq!(r, U256([u64::MAX, u64::MAX, 0, 0]));
    }
}
