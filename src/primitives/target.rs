//! Targets, their compact `bits` form, and chain work.
//!
//! A block's hash, read as a 256-bit little-endian integer, must be at most the target. Headers carry
//! the target in Bitcoin's compact floating-point form (`nBits`): a one-byte size (in bytes) and a
//! three-byte mantissa whose top bit is a sign. The conversions here follow Bitcoin Core's
//! `arith_uint256::SetCompact` / `GetCompact` exactly, including the sign and overflow flags, so that
//! every header decodes to the same target as in Bitcoin.

use std::fmt;

use super::encoding::{Decodable, DecodeError, Encodable, Reader};
use super::hash::BlockHash;
use super::uint::U256;

/// The compact (`nBits`) form of a target, as stored in a header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct CompactTarget(pub u32);

/// Why a compact target does not describe a usable proof-of-work target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BitsError {
    /// The sign bit is set on a non-zero mantissa (Bitcoin Core's `fNegative`).
    #[error("bits {0}: negative target (sign bit 0x00800000 set on a non-zero mantissa)")]
    Negative(CompactTarget),
    /// The value does not fit in 256 bits (Bitcoin Core's `fOverflow`).
    #[error("bits {0}: target overflows 256 bits")]
    Overflow(CompactTarget),
    /// The target is zero: no hash could meet it.
    #[error("bits {0}: target is zero")]
    Zero(CompactTarget),
}

/// The result of decoding compact bits exactly as Bitcoin Core does, flags included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedCompact {
    /// The value (what `SetCompact` stores).
    pub value: U256,
    /// `fNegative`: the sign bit was set on a non-zero mantissa.
    pub negative: bool,
    /// `fOverflow`: the value did not fit in 256 bits.
    pub overflow: bool,
}

impl CompactTarget {
    /// Decodes exactly as Bitcoin Core's `arith_uint256::SetCompact` (src/arith_uint256.cpp).
    pub fn decode(self) -> DecodedCompact {
        let n = self.0;
        let size = n >> 24;
        let mut word = n & 0x007f_ffff;
        // As in Bitcoin Core, the sign and overflow flags look at the word after this shift.
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(word as u64)
        } else {
            U256::from_u64(word as u64).shl_bits(8 * (size - 3))
        };
        let negative = word != 0 && (n & 0x0080_0000) != 0;
        let overflow = word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        DecodedCompact { value, negative, overflow }
    }

    /// The target, or why these bits cannot be a proof-of-work target (negative, overflow, zero),
    /// as in the first half of Bitcoin Core's `CheckProofOfWork` (src/pow.cpp).
    pub fn to_target(self) -> Result<Target, BitsError> {
        let d = self.decode();
        if d.negative {
            Err(BitsError::Negative(self))
        } else if d.overflow {
            Err(BitsError::Overflow(self))
        } else if d.value.is_zero() {
            Err(BitsError::Zero(self))
        } else {
            Ok(Target(d.value))
        }
    }

    /// The chain work of a block with these bits ([`Work`]); zero when they are not a target
    /// (such a block never passes the proof-of-work rule).
    pub fn block_work(self) -> U256 {
        self.to_target().map(|t| t.work().0).unwrap_or(U256::ZERO)
    }

    /// Encodes a value exactly as Bitcoin Core's `arith_uint256::GetCompact(negative)`.
    pub fn encode(value: U256, negative: bool) -> CompactTarget {
        let mut size = value.bits().div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            (value.low_u64() << (8 * (3 - size))) as u32
        } else {
            value.shr_bits(8 * (size - 3)).low_u64() as u32
        };
        // The mantissa's top bit is the sign: if it is set, move one byte up.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        compact |= size << 24;
        if negative && (compact & 0x007f_ffff) != 0 {
            compact |= 0x0080_0000;
        }
        CompactTarget(compact)
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:08x})", self.0)
    }
}

impl Encodable for CompactTarget {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
}

impl Decodable for CompactTarget {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CompactTarget(r.u32_le("bits")?))
    }
}

/// A proof-of-work target: a block hash meets it when, read as a little-endian 256-bit integer,
/// it is at most the target.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Target(pub U256);

impl Target {
    /// The easiest possible target (every hash meets it).
    pub const MAX: Target = Target(U256::MAX);

    /// Bitcoin mainnet's proof-of-work limit, `0x00000000ffff0000...` (bits `1d00ffff`).
    pub fn bitcoin_pow_limit() -> Target {
        Target(U256::from_u64(0xffff).shl_bits(208))
    }

    /// The compact form (never negative).
    pub fn to_compact(self) -> CompactTarget {
        CompactTarget::encode(self.0, false)
    }

    /// Parses 64 hex digits, most significant first (the way targets are usually written).
    pub fn from_be_hex(s: &str) -> Result<Target, String> {
        let s = s.trim().trim_start_matches("0x");
        if s.len() != 64 {
            return Err(format!("target must be 64 hex digits, got {}", s.len()));
        }
        let b: [u8; 32] = hex::decode(s).map_err(|e| format!("target is not hex: {e}"))?.try_into().expect("32");
        Ok(Target(U256::from_be_bytes(b)))
    }

    /// 64 hex digits, most significant first.
    pub fn to_be_hex(self) -> String {
        hex::encode(self.0.to_be_bytes())
    }

    /// The top 32 bits (bits 224..255), compared first by the miners' early exit.
    pub fn top_word(self) -> u32 {
        (self.0 .0[3] >> 32) as u32
    }

    /// True when `hash` (as a little-endian integer) is at most this target.
    pub fn is_met_by(self, hash: &BlockHash) -> bool {
        U256::from_le_bytes(hash.0) <= self.0
    }

    /// The expected number of hashes to find a block at this target: see [`Work`].
    pub fn work(self) -> Work {
        Work::from_target(self)
    }

    /// Difficulty relative to Bitcoin's limit (`1d00ffff` = 1.0), as a float for display only.
    pub fn difficulty(self) -> f64 {
        Target::bitcoin_pow_limit().0.to_f64() / self.0.to_f64().max(f64::MIN_POSITIVE)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.to_be_hex())
    }
}

/// Chain work: the expected number of hashes a block at a target took, `2^256 / (target + 1)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Work(pub U256);

impl Work {
    /// `2^256 / (target + 1)`, computed as Bitcoin Core's `GetBlockProof` does (src/chain.cpp):
    /// `~target / (target + 1) + 1`, which avoids representing 2^256.
    pub fn from_target(t: Target) -> Work {
        match t.0.checked_add(U256::ONE) {
            // target = 2^256 - 1: 2^256 / 2^256 = 1.
            None => Work(U256::ONE),
            Some(d) => {
                let (q, _) = (!t.0).div_rem(d).expect("target + 1 is non-zero");
                Work(q.wrapping_add(U256::ONE))
            }
        }
    }

    /// Sum of two works (saturating: 2^256 hashes is beyond any chain).
    pub fn saturating_add(self, o: Work) -> Work {
        Work(self.0.checked_add(o.0).unwrap_or(U256::MAX))
    }

    /// 64 hex digits, most significant first (Bitcoin Core's `chainwork` field).
    pub fn to_be_hex(self) -> String {
        hex::encode(self.0.to_be_bytes())
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({})", self.to_be_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hexu(s: &str) -> U256 {
        let mut padded = "0".repeat(64 - s.len());
        padded.push_str(s);
        U256::from_be_bytes(hex::decode(padded).unwrap().try_into().unwrap())
    }

    /// Bitcoin Core src/test/arith_uint256_tests.cpp, `bignum_SetCompact`: (bits, value, negative,
    /// GetCompact of the result with that sign).
    #[test]
    fn bitcoin_core_set_compact_cases() {
        let cases: &[(u32, &str, bool, u32)] = &[
            (0x00000000, "0", false, 0),
            (0x00123456, "0", false, 0),
            (0x01003456, "0", false, 0),
            (0x02000056, "0", false, 0),
            (0x03000000, "0", false, 0),
            (0x04000000, "0", false, 0),
            (0x00923456, "0", false, 0),
            (0x01803456, "0", false, 0),
            (0x02800056, "0", false, 0),
            (0x03800000, "0", false, 0),
            (0x04800000, "0", false, 0),
            (0x01123456, "12", false, 0x01120000),
            (0x01fedcba, "7e", true, 0x01fe0000),
            (0x02123456, "1234", false, 0x02123400),
            (0x03123456, "123456", false, 0x03123456),
            (0x04123456, "12345600", false, 0x04123456),
            (0x04923456, "12345600", true, 0x04923456),
            (0x05009234, "92340000", false, 0x05009234),
            (0x20123456, "1234560000000000000000000000000000000000000000000000000000000000", false, 0x20123456),
        ];
        for &(bits, value, negative, back) in cases {
            let d = CompactTarget(bits).decode();
            assert_eq!(d.value, hexu(value), "value of {bits:08x}");
            assert_eq!(d.negative, negative, "sign of {bits:08x}");
            assert!(!d.overflow, "overflow of {bits:08x}");
            assert_eq!(CompactTarget::encode(d.value, d.negative).0, back, "GetCompact of {bits:08x}");
        }
        // Overflow: a mantissa shifted past 256 bits.
        assert!(CompactTarget(0xff123456).decode().overflow);
        assert!(CompactTarget(0x22000100).decode().overflow); // word > 0xff and size 34
        assert!(!CompactTarget(0x22000001).decode().overflow); // word <= 0xff, size 34 fits
        assert!(CompactTarget(0x21010000).decode().overflow); // word > 0xffff and size 33
    }

    #[test]
    fn to_target_rejects_negative_overflow_zero() {
        assert_eq!(CompactTarget(0x04923456).to_target(), Err(BitsError::Negative(CompactTarget(0x04923456))));
        assert_eq!(CompactTarget(0xff123456).to_target(), Err(BitsError::Overflow(CompactTarget(0xff123456))));
        assert_eq!(CompactTarget(0x01003456).to_target(), Err(BitsError::Zero(CompactTarget(0x01003456))));
        assert_eq!(CompactTarget(0).to_target(), Err(BitsError::Zero(CompactTarget(0))));
        assert_eq!(CompactTarget(0x1d00ffff).to_target().unwrap(), Target::bitcoin_pow_limit());
    }

    #[test]
    fn known_bitcoin_targets_and_work() {
        let t = CompactTarget(0x1d00ffff).to_target().unwrap();
        assert_eq!(t.to_be_hex(), "00000000ffff0000000000000000000000000000000000000000000000000000");
        assert_eq!(t.to_compact(), CompactTarget(0x1d00ffff));
        assert_eq!(t.top_word(), 0);
        // Genesis chainwork is 0x100010001 (Bitcoin Core's getblockheader 0 "chainwork").
        assert_eq!(t.work().0, U256::from_u64(0x1_0001_0001));
        // Block 277,647's bits.
        let t2 = CompactTarget(0x1903a30c).to_target().unwrap();
        assert_eq!(t2.to_be_hex(), "0000000000000003a30c00000000000000000000000000000000000000000000");
        assert_eq!(t2.to_compact(), CompactTarget(0x1903a30c));
        assert!((t2.difficulty() - 1180923195.258).abs() < 1.0);
        // Regtest's limit 207fffff: work 2.
        let r = CompactTarget(0x207fffff).to_target().unwrap();
        assert_eq!(r.work().0, U256::from_u64(2));
        assert_eq!(Target::MAX.work().0, U256::ONE);
        // Work of target 0 would be 2^256: from_target(0) = ~0 / 1 + 1 wraps; targets are never 0.
        assert_eq!(Target(U256::ONE).work().0, U256::ONE.shl_bits(255));
    }

    #[test]
    fn is_met_by_is_inclusive() {
        let t = CompactTarget(0x1d00ffff).to_target().unwrap();
        let at = BlockHash(t.0.to_le_bytes());
        assert!(t.is_met_by(&at));
        let above = BlockHash(t.0.wrapping_add(U256::ONE).to_le_bytes());
        assert!(!t.is_met_by(&above));
    }
}
