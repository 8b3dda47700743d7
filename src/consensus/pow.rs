//! The difficulty retarget (Bitcoin Core src/pow.cpp, `GetNextWorkRequired` and
//! `CalculateNextWorkRequired`).

use super::params::BitcoinParams;
use crate::primitives::{CompactTarget, U256};

/// What the retarget needs of a block: its height, time and bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Height.
    pub height: u32,
    /// Time.
    pub time: u32,
    /// Bits.
    pub bits: CompactTarget,
}

/// The bits the block after `last` must carry, as Bitcoin Core's `GetNextWorkRequired`.
///
/// `new_time` is the new block's time (testnet's minimum-difficulty rule looks at it); `ancestor(h)`
/// returns the block at height `h` on `last`'s chain (`h <= last.height`).
///
/// - Between retargets the bits do not change; on testnet (`allow_min_difficulty_blocks`) a block
///   more than twice the spacing after its parent may use the proof-of-work limit, and otherwise
///   carries the bits of the last block that did not use that exception.
/// - Every `interval` (2016) blocks: `CalculateNextWorkRequired` over the span from block
///   `last.height - 2015` to `last` (Bitcoin's off-by-one: 2015 intervals, not 2016).
///
/// `last_regular_bits`, when given, is what testnet's walk back would find (the bits of the latest
/// block at or before `last` that is at a retarget height, is genesis, or does not carry the limit
/// bits); a caller that tracks it as blocks connect saves the walk, which is up to 2016 steps.
pub fn next_work_required(
    params: &BitcoinParams,
    last: &HeaderInfo,
    new_time: u32,
    ancestor: impl Fn(u32) -> HeaderInfo,
    last_regular_bits: Option<CompactTarget>,
) -> CompactTarget {
    let interval = params.difficulty_adjustment_interval();
    if !(last.height + 1).is_multiple_of(interval) {
        if params.allow_min_difficulty_blocks {
            let limit_bits = params.pow_limit_bits;
            if new_time as i64 > last.time as i64 + params.pow_target_spacing * 2 {
                return limit_bits;
            }
            if let Some(bits) = last_regular_bits {
                return bits;
            }
            let mut b = *last;
            while b.height > 0 && !b.height.is_multiple_of(interval) && b.bits == limit_bits {
                b = ancestor(b.height - 1);
            }
            return b.bits;
        }
        return last.bits;
    }
    let first = ancestor(last.height - (interval - 1));
    calculate_next_work_required(params, last, first.time)
}

/// Bitcoin Core's `CalculateNextWorkRequired`: the old target scaled by the actual timespan over the
/// wanted one, the actual timespan clamped to a factor of 4 either way, capped at the limit.
pub fn calculate_next_work_required(params: &BitcoinParams, last: &HeaderInfo, first_time: u32) -> CompactTarget {
    if params.no_retargeting {
        return last.bits;
    }
    let span = params.pow_target_timespan;
    let actual = (last.time as i64 - first_time as i64).clamp(span / 4, span * 4);
    let old = last.bits.decode().value;
    // arith_uint256 wraps on overflow; with Bitcoin's limits the product always fits.
    let (scaled, _) = old.overflowing_mul_u64(actual as u64);
    let (new, _) = scaled.div_rem(U256::from_u64(span as u64)).expect("timespan is non-zero");
    let new = if new > params.pow_limit.0 { params.pow_limit.0 } else { new };
    CompactTarget::encode(new, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::params::BitcoinNetwork;

    /// Bitcoin Core src/test/pow_tests.cpp (the four cases listed in ../shared/data/README.md).
    #[test]
    fn bitcoin_core_pow_tests() {
        let p = BitcoinNetwork::Bitcoin.params();
        let cases = [
            (32255, 1261130161, 1262152739, 0x1d00ffff, 0x1d00d86a), // get_next_work
            (2015, 1231006505, 1233061996, 0x1d00ffff, 0x1d00ffff),  // get_next_work_pow_limit
            (68543, 1279008237, 1279297671, 0x1c05a3f4, 0x1c0168fd), // lower limit actual (4x clamp)
            (46367, 1263163443, 1269211443, 0x1c387f6f, 0x1d00e1fd), // upper limit actual (4x clamp)
        ];
        for (height, first_time, last_time, bits, want) in cases {
            let last = HeaderInfo { height, time: last_time, bits: CompactTarget(bits) };
            assert_eq!(calculate_next_work_required(&p, &last, first_time), CompactTarget(want), "height {height}");
            // Through GetNextWorkRequired, with the period's first block at height - 2015.
            let got = next_work_required(
                &p,
                &last,
                last_time + 600,
                |h| {
                    assert_eq!(h, height - 2015, "the retarget window starts 2015 blocks back");
                    HeaderInfo { height: h, time: first_time, bits: CompactTarget(bits) }
                },
                None,
            );
            assert_eq!(got, CompactTarget(want));
        }
    }

    #[test]
    fn bits_carry_over_between_retargets_and_testnet_exception() {
        let main = BitcoinNetwork::Bitcoin.params();
        let last = HeaderInfo { height: 100, time: 1_000_000, bits: CompactTarget(0x1c05a3f4) };
        let no_ancestor = |_| -> HeaderInfo { panic!("no ancestor needed") };
        assert_eq!(next_work_required(&main, &last, 1_000_000 + 5000, no_ancestor, None), CompactTarget(0x1c05a3f4));
        let test = BitcoinNetwork::BitcoinTestnet.params();
        // 20 minutes and one second after its parent: the limit is allowed.
        assert_eq!(next_work_required(&test, &last, 1_000_000 + 1201, no_ancestor, None), CompactTarget(0x1d00ffff));
        // Within 20 minutes after a run of min-difficulty blocks: the last real bits.
        let min = CompactTarget(0x1d00ffff);
        let last = HeaderInfo { height: 100, time: 1_000_000, bits: min };
        let anc = |h| HeaderInfo { height: h, time: 0, bits: if h <= 97 { CompactTarget(0x1c05a3f4) } else { min } };
        let got = next_work_required(&test, &last, 1_000_000 + 1200, anc, None);
        assert_eq!(got, CompactTarget(0x1c05a3f4));
        // A caller-tracked answer is used as given (the validator tracks it as blocks connect).
        assert_eq!(next_work_required(&test, &last, 1_000_000 + 1200, anc, Some(CompactTarget(0x1c05a3f4))), got);
        // Regtest never retargets.
        let reg = BitcoinNetwork::BitcoinRegtest.params();
        let last = HeaderInfo { height: 2015, time: 5, bits: CompactTarget(0x207fffff) };
        assert_eq!(
            next_work_required(&reg, &last, 6, |h| HeaderInfo { height: h, time: 0, bits: last.bits }, None),
            last.bits
        );
    }
}
