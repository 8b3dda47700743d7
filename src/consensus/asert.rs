//! Bitcoin Cash's ASERT difficulty adjustment, `aserti3-2d` (November 2020 upgrade).
//!
//! Sources:
//! - the specification, "ASERT Difficulty Adjustment Algorithm (aserti3-2d)", version 0.5.1:
//!   <https://github.com/bitcoincashorg/bitcoincash.org/blob/master/spec/2020-11-15-asert.md>
//! - its reference implementation, Bitcoin Cash Node `src/pow.cpp`, `CalculateASERT` and
//!   `GetNextASERTWorkRequired` (<https://gitlab.com/bitcoin-cash-node/bitcoin-cash-node>).
//!
//! The target of the block after `parent` is
//! `anchor_target * 2^((time_diff - target_spacing * (height_diff + 1)) / half_life)`, computed with
//! integers only: a 16.16 fixed-point exponent, a cubic approximation of `2^x` on `[0, 1)` and shifts.
//! The integer steps below are those of `CalculateASERT`, in the same order, so that every input gives
//! the same bits as Bitcoin Cash Node.

use crate::primitives::{CompactTarget, Target, U256};

/// aserti3-2d (Bitcoin Cash, Nov 2020 upgrade spec "ASERT DAA"): the target for the block after `parent`.
/// anchor_bits: the anchor block's bits; time_diff = parent.time - anchor_parent.time (seconds, i64; the spec uses the anchor block's *parent* timestamp);
/// height_diff = parent.height - anchor.height (i64);
/// target_spacing and half_life in seconds; pow_limit: the easiest target.
///
/// This is Bitcoin Cash Node's `GetNextASERTWorkRequired` once the anchor is known (without
/// testnet's 20-minute minimum-difficulty exception, which is the caller's): the anchor bits are
/// decoded as `arith_uint256::SetCompact` does (value only), `CalculateASERT` gives the next
/// target, and the result is its `GetCompact`. Bitcoin Cash mainnet uses
/// `target_spacing = 600`, `half_life = 172800` (2 days) and a `pow_limit` of `2^224 - 1`.
///
/// # Panics
///
/// On the preconditions that Bitcoin Cash Node asserts (a broken caller, never a chain's data):
/// the anchor target must be non-zero and at most `pow_limit`, `pow_limit` must be below `2^239`,
/// `height_diff` must not be negative, `|time_diff - target_spacing * height_diff|` must be below
/// `2^47`, and `half_life` must be positive.
pub fn asert_next_bits(
    anchor_bits: CompactTarget,
    time_diff: i64,
    height_diff: i64,
    target_spacing: i64,
    half_life: i64,
    pow_limit: Target,
) -> CompactTarget {
    let anchor_target = anchor_bits.decode().value;
    Target(calculate_asert(anchor_target, target_spacing, time_diff, height_diff, pow_limit.0, half_life)).to_compact()
}

/// Bitcoin Cash Node's `CalculateASERT` (src/pow.cpp) on full 256-bit targets: the next target, not
/// yet in compact form, for an evaluation block `height_diff` blocks above the anchor and `time_diff`
/// seconds after the anchor's parent. The arguments are in the C++ order. Panics as
/// [`asert_next_bits`] documents.
fn calculate_asert(
    ref_target: U256,
    target_spacing: i64,
    time_diff: i64,
    height_diff: i64,
    pow_limit: U256,
    half_life: i64,
) -> U256 {
    // The asserts of CalculateASERT, plus a positive half-life (the C++ would divide by zero).
    assert!(!ref_target.is_zero() && ref_target <= pow_limit, "ASERT: anchor target must be in (0, pow_limit]");
    // Leading zero bits leave room for the multiplication by `factor` (< 2^17) below. Bitcoin Cash
    // Node asserts 2^224 (32 bits of room); powkit relaxes it to the 17 bits the product needs, so
    // that powkit-regtest can use an easy limit. Below 2^224 every step, and so every result, is
    // the same as Bitcoin Cash Node's.
    assert!(pow_limit.shr_bits(239).is_zero(), "ASERT: pow_limit must be below 2^239");
    assert!(height_diff >= 0, "ASERT: height_diff must not be negative");
    assert!(half_life > 0, "ASERT: half_life must be positive");
    // In i128 so that the check itself cannot overflow.
    let behind = time_diff as i128 - target_spacing as i128 * height_diff as i128;
    assert!(behind.abs() < 1i128 << (63 - 16), "ASERT: |time_diff - target_spacing * height_diff| must be below 2^47");

    let exponent = asert_exponent(time_diff, height_diff, target_spacing, half_life);

    // 2^x = 2^shifts * 2^(frac / 65536): `shifts` is the floor (an arithmetic shift, not a
    // division), so `frac` is in [0, 65536) also for negative exponents.
    let mut shifts = exponent >> 16;
    let frac = (exponent & 0xffff) as u64;
    debug_assert_eq!(exponent, shifts * 65536 + frac as i128);

    // ref_target * 65536 * 2^(frac / 65536); ref_target < 2^239 and factor < 2^17, so no overflow.
    let (mut next_target, overflow) = ref_target.overflowing_mul_u64(factor(frac));
    debug_assert!(!overflow);

    // Multiply by 2^shifts / 65536.
    shifts -= 16;
    if shifts <= 0 {
        next_target = next_target.shr_bits(shift_amount(-shifts));
    } else {
        // Bits shifted out at the top mean the unbounded result is at least 2^256: the limit (as
        // the specification's note 6 and CalculateASERT's overflow check have it).
        let s = shift_amount(shifts);
        let shifted = next_target.shl_bits(s);
        next_target = if shifted.shr_bits(s) != next_target { pow_limit } else { shifted };
    }

    if next_target.is_zero() {
        // 0 is not a valid target, 1 is (the hardest).
        U256::ONE
    } else if next_target > pow_limit {
        pow_limit
    } else {
        next_target
    }
}

/// The 16.16 fixed-point exponent `((time_diff - target_spacing * (height_diff + 1)) * 65536) /
/// half_life`, with truncating division (rounding towards zero) as the specification's note 3
/// requires: C++'s `/` and Rust's `/` on signed integers both truncate.
///
/// Computed in i128: within CalculateASERT's asserted range this is exactly its i64 value, and it
/// stays exact at the ends of that range, where the C++ i64 product `(...) * 65536` can overflow
/// (`|time_diff - target_spacing * height_diff|` just under 2^47, one spacing further out).
fn asert_exponent(time_diff: i64, height_diff: i64, target_spacing: i64, half_life: i64) -> i128 {
    let behind = time_diff as i128 - target_spacing as i128 * (height_diff as i128 + 1);
    behind * 65536 / half_life as i128
}

/// `65536 * 2^(frac / 65536)` for `frac` in `[0, 65536)`, by the specification's cubic
/// `1 + 0.695502049x + 0.2262698x^2 + 0.0782318x^3` in 16.48 fixed point, rounded (error below 0.013%).
/// The sum stays below 2^64 for every 16-bit `frac` (the largest, at 65535, is about 0.99999 * 2^64),
/// so u64 arithmetic is exact, as in the C++.
fn factor(frac: u64) -> u64 {
    debug_assert!(frac < 65536);
    65536 + ((195_766_423_245_049 * frac + 971_821_376 * frac * frac + 5127 * frac * frac * frac + (1 << 47)) >> 48)
}

/// A shift count for `U256::shl_bits` / `shr_bits`, which give zero from 256 on; larger counts
/// (`shifts` can reach about 2^47) saturate there rather than wrap.
fn shift_amount(s: i128) -> u32 {
    s.min(256) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Bitcoin Cash mainnet: nPowTargetSpacing, nASERTHalfLife (BCHN src/chainparams.cpp).
    const SPACING: i64 = 600;
    const HALF_LIFE: i64 = 2 * 24 * 3600;

    /// Bitcoin Cash mainnet's powLimit, `00000000ffff...ff` = 2^224 - 1 (compact 0x1d00ffff).
    fn bch_pow_limit() -> U256 {
        U256::MAX.shr_bits(32)
    }

    fn hexu(s: &str) -> U256 {
        Target::from_be_hex(s).unwrap().0
    }

    fn bits_value(bits: u32) -> U256 {
        CompactTarget(bits).decode().value
    }

    fn next_bits(anchor_bits: u32, time_diff: i64, height_diff: i64) -> u32 {
        asert_next_bits(CompactTarget(anchor_bits), time_diff, height_diff, SPACING, HALF_LIFE, Target(bch_pow_limit()))
            .0
    }

    fn calc(ref_target: U256, time_diff: i64, height_diff: i64) -> U256 {
        calculate_asert(ref_target, SPACING, time_diff, height_diff, bch_pow_limit(), HALF_LIFE)
    }

    /// One official run: the anchor (height, its parent's time, bits) and lines of
    /// `(height, time, expected bits)`, where `time` is the evaluation block's (the parent of the
    /// block whose bits are computed).
    struct Run {
        name: &'static str,
        anchor_height: u64,
        anchor_parent_time: u64,
        anchor_bits: u32,
        lines: &'static [(u64, u64, u32)],
    }

    /// The official aserti3-2d test vectors (BCH spec 2020-11-15-asert.md, "Test vectors"), generated
    /// by BCHN contrib/testgen/gen_asert_test_vectors.cpp from the C++ CalculateASERT:
    /// <https://gitlab.com/bitcoin-cash-node/bchn-sw/qa-assets/-/tree/master/test_vectors/aserti3-2d>
    /// (also <https://download.bitcoincashnode.org/misc/data/asert/test_vectors>). The lines below were
    /// taken from the copy of those files in github.com/AIBlockOfficial/Network,
    /// `src/test_data/asert/run01`..`run12` (commit fbf9ab2), whose all 14,000 vectors also pass
    /// BCHN's Python reference contrib/testgen/validate_nbits_aserti3_2d.py. A selection from every
    /// run: steady, the minimum target, clamps at both ends, random and negative solve times, heights
    /// past 2^31 and 2^63.
    const RUNS: &[Run] = &[
        Run {
            name: "run1 - steady 600s blocks at POW limit target",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1d00ffff,
            lines: &[
                (2, 1200, 0x1d00ffff),
                (3, 1800, 0x1d00ffff),
                (7, 4200, 0x1d00ffff),
                (11, 6600, 0x1d00ffff),
            ],
        },
        Run {
            name: "run2 - steady 600s blocks at arbitrary non-limit target 0x1a2b3c4d",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1a2b3c4d,
            lines: &[
                (2, 1200, 0x1a2b3c4d),
                (6, 3600, 0x1a2b3c4d),
                (11, 6600, 0x1a2b3c4d),
            ],
        },
        Run {
            name: "run3 - steady 600s blocks at minimum limit target 0x01010000",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x01010000,
            lines: &[
                (2, 1200, 0x01010000),
                (11, 6600, 0x01010000),
            ],
        },
        Run {
            name: "run4 - from minimum target, a series of halflife schedule jumps, doubling target at each block",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x01010000,
            lines: &[
                (2, 174000, 0x01020000),
                (3, 347400, 0x01040000),
                (7, 1041000, 0x01400000),
                (8, 1214400, 0x02008000),
                (9, 1387800, 0x02010000),
                (100, 17167200, 0x0d080000),
                (223, 38495400, 0x1c400000),
                (224, 38668800, 0x1d008000),
                // pow_limit clamp
                (225, 38842200, 0x1d00ffff),
                (226, 39015600, 0x1d00ffff),
            ],
        },
        Run {
            name: "run5 - from POW limit, a series of halflife block height jumps w/o time increment, halving target at each block",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1d00ffff,
            lines: &[
                (2, 0, 0x1d00fec5),
                (290, 0, 0x1c7f62c0),
                (578, 0, 0x1c3fb160),
                (2306, 0, 0x1c00fec5),
                (30242, 0, 0x0f7f62c0),
                (59906, 0, 0x0300fec5),
                (62210, 0, 0x0200fe00),
                (63650, 0, 0x01070000),
                (63938, 0, 0x01030000),
                // the target-of-1 clamp
                (64226, 0, 0x01010000),
                (64514, 0, 0x01010000),
            ],
        },
        Run {
            name: "run6 - deterministically random solvetimes for stable hashrate around a recent real life nBits",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1802aee8,
            lines: &[
                (2, 1200, 0x1802aee8),
                (3, 1310, 0x1802ad91),
                (4, 1327, 0x1802abf8),
                (5, 1739, 0x1802ab73),
                (6, 2219, 0x1802ab20),
                (501, 300620, 0x1802aef5),
                (1001, 589738, 0x180291ad),
            ],
        },
        Run {
            name: "run7 - deterministically random solvetimes for up-ramping hashrate around a recent real life nBits",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1802aee8,
            lines: &[
                (2, 1200, 0x1802aee8),
                (11, 7657, 0x1802b1d4),
                (501, 29563, 0x1800e793),
                (1001, 33365, 0x17469789),
            ],
        },
        Run {
            name: "run8 - deterministically random solvetimes for down-ramping hashrate around a recent real life nBits",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1802aee8,
            lines: &[
                (2, 1200, 0x1802aee8),
                (11, 7657, 0x1802b1d4),
                (251, 2114311, 0x191ba03b),
                (484, 6930238, 0x1d00e688),
                // pow_limit clamp
                (485, 6993399, 0x1d00ffff),
                (501, 7462933, 0x1d00ffff),
            ],
        },
        Run {
            name: "run9 - a sequence of 300s blocks across signed 32-bit max integer height",
            anchor_height: 2147483642,
            anchor_parent_time: 1234567290,
            anchor_bits: 0x1802aee8,
            lines: &[
                (2147483643, 1234568190, 0x1802ae16),
                (2147483647, 1234569390, 0x1802aacd),
                (2147483648, 1234569690, 0x1802a9fa),
                (2147483652, 1234570890, 0x1802a6b7),
            ],
        },
        Run {
            name: "run10 - a sequence of 900s blocks across signed 64-bit max integer height and signed 32-bit max integer time",
            anchor_height: 9223372036854775802,
            anchor_parent_time: 2147483047,
            anchor_bits: 0x1802aee8,
            lines: &[
                (9223372036854775803, 2147484547, 0x1802afbb),
                (9223372036854775807, 2147488147, 0x1802b30e),
                (9223372036854775808, 2147489047, 0x1802b3e5),
                (9223372036854775812, 2147492647, 0x1802b73d),
            ],
        },
        Run {
            name: "run11 - deterministically uniform random solvetimes with negative time",
            anchor_height: 1,
            anchor_parent_time: 0,
            anchor_bits: 0x1802aee8,
            lines: &[
                (2, 1200, 0x1802aee8),
                (3, 1496, 0x1802ae12),
                // a block older than its parent
                (4, 1398, 0x1802ac28),
                (6, 1731, 0x1802a9cb),
                (501, 151798, 0x18017a32),
                (1001, 293713, 0x1800c896),
            ],
        },
        Run {
            name: "run12 - each block 1 second before the previous one",
            anchor_height: 1,
            anchor_parent_time: 10000,
            anchor_bits: 0x1802aee8,
            lines: &[
                (2, 11200, 0x1802aee8),
                // negative exponents from here on
                (3, 11199, 0x1802ad44),
                (1001, 10201, 0x173dcaa1),
                (5001, 6201, 0x160106b7),
                (10001, 1201, 0x13643f64),
            ],
        },
    ];

    #[test]
    fn official_test_vectors() {
        let mut checked = 0;
        for run in RUNS {
            for &(height, time, expected) in run.lines {
                let time_diff = time as i64 - run.anchor_parent_time as i64;
                let height_diff = (height - run.anchor_height) as i64;
                let got = next_bits(run.anchor_bits, time_diff, height_diff);
                assert_eq!(
                    got, expected,
                    "{}: height {height} time {time}: got {got:08x}, want {expected:08x}",
                    run.name
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 66);
    }

    /// Bitcoin Cash Node src/test/pow_tests.cpp, `calculate_asert_test` (master, as mirrored at
    /// github.com/bitcoin-cash-node/bitcoin-cash-node commit 631badbf6), ported one check at a time:
    /// CalculateASERT on full targets.
    #[test]
    fn bchn_calculate_asert_test() {
        let pow_limit = bch_pow_limit();
        let initial_target = pow_limit.shr_bits(4);
        // CalculateASERT adds 1 to the height difference and measures time from the anchor's parent:
        // the test assumes that parent came 600 s before the anchor.
        let parent_time_diff = 600;
        let mut height = 0;

        // Steady
        height += 1;
        let mut next_target = calc(initial_target, parent_time_diff + 600, height);
        assert_eq!(next_target, initial_target);

        // A block that arrives in half the expected time
        height += 1;
        next_target = calc(initial_target, parent_time_diff + 600 + 300, height);
        assert!(next_target < initial_target);

        // A block that makes up for the shortfall of the previous one restores the target
        let mut prev_target = next_target;
        height += 1;
        next_target = calc(initial_target, parent_time_diff + 600 + 300 + 900, height);
        assert!(next_target > prev_target);
        assert_eq!(next_target, initial_target);

        // Two days ahead of schedule doubles the target
        prev_target = next_target;
        next_target = calc(prev_target, parent_time_diff + 288 * 1200, 288);
        assert_eq!(next_target, prev_target.shl_bits(1));

        // Two days behind schedule halves the target
        prev_target = next_target;
        next_target = calc(prev_target, parent_time_diff, 288);
        assert_eq!(next_target, prev_target.shr_bits(1));
        assert_eq!(next_target, initial_target);

        // Ramp up from initial_target to the limit: only 4 doublings
        let pow_limit_bits = Target(pow_limit).to_compact().0;
        assert_eq!(pow_limit_bits, 0x1d00ffff);
        for _ in 0..3 {
            prev_target = next_target;
            next_target = calc(prev_target, parent_time_diff + 288 * 1200, 288);
            assert_eq!(next_target, prev_target.shl_bits(1));
            assert!(next_target < pow_limit);
            assert_ne!(Target(next_target).to_compact().0, pow_limit_bits);
        }
        prev_target = next_target;
        next_target = calc(prev_target, parent_time_diff + 288 * 1200, 288);
        assert_eq!(next_target, prev_target.shl_bits(1));
        assert_eq!(Target(next_target).to_compact().0, pow_limit_bits);

        // Fast periods cannot take the target past the limit, even when the shift would overflow
        // 256 bits (512 days).
        next_target = calc(prev_target, parent_time_diff + 512 * 144 * 600, 0);
        assert_eq!(Target(next_target).to_compact().0, pow_limit_bits);

        // Underflow: ~446 days of blocks bring the limit down to the minimum target of 1.
        next_target = calc(pow_limit, 0, 2 * (256 - 33) * 144);
        assert_eq!(Target(next_target).to_compact().0, Target(U256::ONE).to_compact().0);

        let single_300_target = hexu("00000000ffb1ffffffffffffffffffffffffffffffffffffffffffffffffffff");
        let funny_ref_target = hexu("000000008000000000000000000fffffffffffffffffffffffffffffffffffff");
        let one = U256::ONE;
        // refTarget, targetSpacing, timeDiff (before adding parent_time_diff), heightDiff,
        // expectedTarget, expectednBits.
        let cases: &[(U256, i64, i64, i64, U256, u32)] = &[
            (pow_limit, 600, 0, 2 * 144, pow_limit.shr_bits(1), 0x1c7fffff),
            (pow_limit, 600, 0, 4 * 144, pow_limit.shr_bits(2), 0x1c3fffff),
            (pow_limit.shr_bits(1), 600, 0, 2 * 144, pow_limit.shr_bits(2), 0x1c3fffff),
            (pow_limit.shr_bits(2), 600, 0, 2 * 144, pow_limit.shr_bits(3), 0x1c1fffff),
            (pow_limit.shr_bits(3), 600, 0, 2 * 144, pow_limit.shr_bits(4), 0x1c0fffff),
            (pow_limit, 600, 0, 2 * (256 - 34) * 144, U256::from_u64(3), 0x01030000),
            (pow_limit, 600, 0, 2 * (256 - 34) * 144 + 119, U256::from_u64(3), 0x01030000),
            (pow_limit, 600, 0, 2 * (256 - 34) * 144 + 120, U256::from_u64(2), 0x01020000),
            (pow_limit, 600, 0, 2 * (256 - 33) * 144 - 1, U256::from_u64(2), 0x01020000),
            // 1 bit less since we do not need to shift to 0
            (pow_limit, 600, 0, 2 * (256 - 33) * 144, one, 0x01010000),
            // more will not decrease below 1
            (pow_limit, 600, 0, 2 * (256 - 32) * 144, one, 0x01010000),
            (one, 600, 0, 2 * (256 - 32) * 144, one, 0x01010000),
            (pow_limit, 600, 2 * (512 - 32) * 144, 0, pow_limit, pow_limit_bits),
            (one, 600, (512 - 64) * 144 * 600, 0, pow_limit, pow_limit_bits),
            // clamps to powLimit
            (pow_limit, 600, 300, 1, single_300_target, 0x1d00ffb1),
            // confuses any attempt to detect overflow by inspecting the result
            (funny_ref_target, 600, 600 * 2 * 33 * 144, 0, pow_limit, pow_limit_bits),
            // overflow to exactly 2^256
            (one, 600, 600 * 2 * 256 * 144, 0, pow_limit, pow_limit_bits),
            // just under powLimit (not clamped) yet over powLimit's bits
            (one, 600, 600 * 2 * 224 * 144 - 1, 0, U256::from_u64(0xffff8).shl_bits(204), pow_limit_bits),
        ];
        for &(ref_target, spacing, time_diff, height_diff, expected, expected_bits) in cases {
            let got =
                calculate_asert(ref_target, spacing, parent_time_diff + time_diff, height_diff, pow_limit, HALF_LIFE);
            let what = format!("ref {ref_target:?} time_diff {time_diff} height_diff {height_diff}");
            assert_eq!(got, expected, "{what}");
            assert_eq!(Target(got).to_compact().0, expected_bits, "{what}");
        }
    }

    /// A block for [`bchn_asert_difficulty_test`]: height, time (u32 as in CBlockIndex), bits.
    #[derive(Clone, Copy)]
    struct Block {
        height: i64,
        time: u32,
        bits: u32,
    }

    /// BCHN pow_tests.cpp's `GetBlockIndex`: a child of `prev` `interval` seconds later.
    fn child(prev: Block, interval: i64, bits: u32) -> Block {
        Block { height: prev.height + 1, time: (prev.time as i64 + interval) as u32, bits }
    }

    /// pow_tests.cpp's `TargetFromBits` (as a double).
    fn target_from_bits(bits: u32) -> f64 {
        (bits & 0xffffff) as f64 * 256f64.powi((bits >> 24) as i32 - 3)
    }

    /// pow_tests.cpp's `GetASERTApproximationError`: the relative error of `final_bits` against
    /// the floating-point formula, for the block after `prev` with `anchor` (child of `anchor_parent`).
    fn approximation_error(prev: Block, final_bits: u32, anchor: Block, anchor_parent: Block) -> f64 {
        let height_diff = prev.height - anchor.height;
        let time_diff = prev.time as i64 - anchor_parent.time as i64;
        assert!(height_diff >= 0);
        let initial = target_from_bits(anchor.bits);
        let fin = target_from_bits(final_bits);
        let exponent = (time_diff - (height_diff + 1) * 600) as f64 / (2 * 24 * 3600) as f64;
        let target = initial * 2f64.powf(exponent);
        (fin - target) / target
    }

    /// Bitcoin Cash Node src/test/pow_tests.cpp (same version), `asert_difficulty_test`, through
    /// [`asert_next_bits`] as `GetNextASERTWorkRequired` calls CalculateASERT: a chain anchored at
    /// block 1 (parent: block 0), including the sweep over +-2 days of one block's timestamp with its
    /// monotonicity, step-size and exact error-extremes checks.
    #[test]
    fn bchn_asert_difficulty_test() {
        let pow_limit = bch_pow_limit();
        let initial_bits = Target(pow_limit.shr_bits(3)).to_compact().0;
        let max_err = 0.0001166792656486;
        let mut blocks: Vec<Block> = Vec::new();
        // Block 0: the anchor's parent (its bits are never read).
        blocks.push(Block { height: 0, time: 1269211443, bits: 0x0dedbeef });
        // The anchor, 150 s after its parent, so that the parent's time is seen to be used.
        let anchor = child(blocks[0], 150, initial_bits);
        blocks.push(anchor);
        let next = |blocks: &[Block], prev: usize| -> u32 {
            next_bits(
                anchor.bits,
                blocks[prev].time as i64 - blocks[0].time as i64,
                blocks[prev].height - anchor.height,
            )
        };
        let abs_err =
            |blocks: &[Block], prev: usize, bits: u32| approximation_error(blocks[prev], bits, anchor, blocks[0]);
        let rel_err = |blocks: &[Block], prev: usize, bits: u32| {
            approximation_error(blocks[prev], bits, blocks[prev - 1], blocks[prev - 2])
        };
        // `push` then compute the next bits on top of the new block, checking the error bounds.
        let step = |blocks: &mut Vec<Block>, interval: i64, bits: u32, relative: bool| -> u32 {
            blocks.push(child(*blocks.last().unwrap(), interval, bits));
            let i = blocks.len() - 1;
            let n = next(blocks, i);
            assert!(abs_err(blocks, i, n).abs() < max_err);
            if relative {
                assert!(rel_err(blocks, i, n).abs() < max_err);
            }
            n
        };

        let mut n_bits = next(&blocks, 1);
        assert!(abs_err(&blocks, 1, n_bits).abs() < max_err);
        assert_ne!(n_bits, initial_bits);

        // Another block at 1050 s returns to the anchor's bits.
        n_bits = step(&mut blocks, 1050, n_bits, false);
        assert_eq!(n_bits, initial_bits);

        // Timestamps before the anchor: 2 days into the past halves the target (nBits truncates, so
        // not exactly).
        n_bits = step(&mut blocks, 600 - 172800, n_bits, false);
        let t = bits_value(n_bits);
        assert!(t <= bits_value(initial_bits).shr_bits(1));
        assert!(t >= bits_value(initial_bits - 1).shr_bits(1));

        // Forward 2 days returns to the initial value.
        n_bits = step(&mut blocks, 600 + 172800, n_bits, false);
        assert_eq!(n_bits, initial_bits);

        // Some history at 600 s.
        while blocks.len() < 150 {
            blocks.push(child(*blocks.last().unwrap(), 600, n_bits));
        }
        n_bits = next(&blocks, blocks.len() - 1);
        assert_eq!(n_bits, initial_bits);

        // The difficulty stays the same with a block every 10 minutes.
        for _ in 0..10 {
            blocks.push(child(*blocks.last().unwrap(), 600, n_bits));
            assert_eq!(next(&blocks, blocks.len() - 1), n_bits);
        }

        // Two blocks whose solve times add up to 1200 s restore the target, in either order.
        for (a, b) in [(300, 900), (900, 300)] {
            n_bits = step(&mut blocks, a, n_bits, true);
            n_bits = step(&mut blocks, b, n_bits, true);
            assert_eq!(n_bits, initial_bits);
            assert_ne!(n_bits, blocks.last().unwrap().bits);
        }

        // Forward 2 days doubles the target.
        n_bits = step(&mut blocks, 600 + 2 * 24 * 3600, n_bits, true);
        assert_eq!(Target(bits_value(n_bits).shr_bits(1)).to_compact().0, initial_bits);
        // Back 2 days returns to the start.
        n_bits = step(&mut blocks, 600 - 2 * 24 * 3600, n_bits, true);
        assert_eq!(n_bits, initial_bits);
        // Back 2 more days halves the target.
        n_bits = step(&mut blocks, 600 - 2 * 24 * 3600, n_bits, true);
        let t = bits_value(n_bits);
        assert!(t <= bits_value(initial_bits).shr_bits(1));
        assert!(t >= bits_value(initial_bits - 1).shr_bits(1));
        // And forward again, twice.
        n_bits = step(&mut blocks, 600 + 2 * 24 * 3600, n_bits, true);
        assert_eq!(n_bits, initial_bits);
        n_bits = step(&mut blocks, 600 + 2 * 24 * 3600, n_bits, true);
        assert_eq!(Target(bits_value(n_bits).shr_bits(1)).to_compact().0, initial_bits);

        // Sweep one block's timestamp over -2..+2 days, one second at a time: the integer
        // approximation is monotonic, changes at least once every 8 seconds (15-bit worst-case
        // mantissa), never steps by more than 1d008000 -> 1d008001 does, and its error against the
        // floating-point formula has exactly the extremes BCHN records.
        let (mut d_min, mut d_max, mut d_rel_min, mut d_rel_max) = (0f64, 0f64, 0f64, 0f64);
        let mut ring = [0u32; 8];
        blocks.push(child(*blocks.last().unwrap(), -2 * 24 * 3600 - 30, n_bits));
        let i = blocks.len() - 1;
        for j in 0..(4 * 24 * 3600 + 660) {
            blocks[i].time += 1;
            n_bits = next(&blocks, i);
            if j > 8 {
                assert!(bits_value(n_bits) >= bits_value(ring[(j - 1) % 8]), "monotonic at sweep step {j}");
                assert!(bits_value(n_bits) > bits_value(ring[j % 8]), "changes within 8 s at sweep step {j}");
                let d_step =
                    (target_from_bits(n_bits) - target_from_bits(ring[(j - 1) % 8])) / target_from_bits(n_bits);
                assert!(d_step < 0.0000314812106363, "step size at sweep step {j}");
            }
            ring[j % 8] = n_bits;
            let d_err = abs_err(&blocks, i, n_bits);
            let d_rel_err = rel_err(&blocks, i, n_bits);
            d_min = d_min.min(d_err);
            d_max = d_max.max(d_err);
            d_rel_min = d_rel_min.min(d_rel_err);
            d_rel_max = d_rel_max.max(d_rel_err);
            assert!(d_err.abs() < max_err && d_rel_err.abs() < max_err, "error at sweep step {j}");
        }
        for (lo, hi) in [(d_min, d_max), (d_rel_min, d_rel_max)] {
            assert!(lo < -0.0001013168981059 && lo > -0.0001013168981060, "min error {lo}");
            assert!(hi > 0.0001166792656485 && hi < 0.0001166792656486, "max error {hi}");
        }

        // Fast blocks keep lowering the target.
        for _ in 0..100 {
            let current = bits_value(n_bits);
            blocks.push(child(*blocks.last().unwrap(), 500, n_bits));
            let next_b = next(&blocks, blocks.len() - 1);
            assert!(bits_value(next_b) <= current);
            n_bits = next_b;
        }
    }

    #[test]
    fn exponent_truncates_and_shift_floors() {
        // On schedule: exponent 0 (the anchor's parent is one spacing before the anchor).
        assert_eq!(asert_exponent(600, 0, 600, HALF_LIFE), 0);
        assert_eq!(asert_exponent(600 * 11, 10, 600, HALF_LIFE), 0);
        // -65536 / 172800 truncates to 0 (floor division would give -1).
        assert_eq!(asert_exponent(599, 0, 600, HALF_LIFE), 0);
        assert_eq!(asert_exponent(601, 0, 600, HALF_LIFE), 0);
        // -600 * 65536 / 172800 = -227.55...: -227, not -228.
        assert_eq!(asert_exponent(0, 0, 600, HALF_LIFE), -227);
        assert_eq!(asert_exponent(1200, 0, 600, HALF_LIFE), 227);
        assert_eq!(asert_exponent(600 + HALF_LIFE, 0, 600, HALF_LIFE), 65536);
        assert_eq!(asert_exponent(600 - HALF_LIFE, 0, 600, HALF_LIFE), -65536);
        // The split of -227: floor(-227 / 65536) = -1 and 65536 - 227.
        let e = asert_exponent(0, 0, 600, HALF_LIFE);
        assert_eq!((e >> 16, e & 0xffff), (-1, 65309));
        // So one second behind schedule keeps the anchor's target exactly...
        let t = hexu("00000000000000000000abcdef0123456789abcdef0123456789abcdef012345");
        assert_eq!(calc(t, 599, 0), t);
        // ...and a full spacing behind gives t * factor(65309) / 2^17.
        let (p, _) = t.overflowing_mul_u64(factor(65309));
        assert_eq!(calc(t, 0, 0), p.shr_bits(17));
    }

    #[test]
    fn factor_polynomial() {
        assert_eq!(factor(0), 65536);
        // The polynomial's sum fits 64 bits for every 16-bit frac (the C++ relies on it).
        let f = 65535u64;
        let sum = [195_766_423_245_049 * f as u128, 971_821_376 * (f * f) as u128, 5127 * (f * f * f) as u128, 1 << 47]
            .iter()
            .sum::<u128>();
        assert!(sum < 1 << 64);
        let mut prev = factor(0);
        for frac in 1..65536u64 {
            let fct = factor(frac);
            assert!(fct >= prev, "monotonic at {frac}");
            let exact = 65536.0 * 2f64.powf(frac as f64 / 65536.0);
            assert!(((fct as f64 - exact) / exact).abs() < 0.00013, "error at {frac}");
            prev = fct;
        }
        // The cubic gives f(1) = 2 exactly, so the last step ends just under the next doubling.
        assert_eq!(factor(65535), 131071);
    }

    /// A random canonical compact target at most the limit (`GetCompact(SetCompact(b)) == b`).
    fn random_anchor(rng: &mut impl Rng) -> (U256, u32) {
        loop {
            let v = U256([rng.gen(), rng.gen(), rng.gen(), rng.gen()]).shr_bits(rng.gen_range(32..256));
            if v.is_zero() {
                continue;
            }
            let bits = Target(v).to_compact();
            let t = bits.decode().value;
            if !t.is_zero() && t <= bch_pow_limit() {
                return (t, bits.0);
            }
        }
    }

    #[test]
    fn on_schedule_gives_the_anchor_back() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xa5e7);
        for _ in 0..2000 {
            let (t, bits) = random_anchor(&mut rng);
            let height_diff = rng.gen_range(0..1_000_000i64);
            let time_diff = SPACING * (height_diff + 1);
            assert_eq!(next_bits(bits, time_diff, height_diff), bits, "bits {bits:08x} height_diff {height_diff}");
            assert_eq!(calc(t, time_diff, height_diff), t);
        }
        assert_eq!(next_bits(0x1d00ffff, 600, 0), 0x1d00ffff);
        assert_eq!(next_bits(0x01010000, 600 * 5, 4), 0x01010000);
    }

    #[test]
    fn each_half_life_doubles_or_halves() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xd0b1e);
        for _ in 0..2000 {
            let (t, _) = random_anchor(&mut rng);
            let height_diff = rng.gen_range(0..100_000i64);
            let on_schedule = SPACING * (height_diff + 1);
            // Ahead of schedule by less than a half-life, then k more half-lives: the same fraction
            // and one more shift each time, so the target doubles (until the limit). Exactly, once
            // the shift is to the left; while it is still to the right, floor(x / 2^(m - 1)) is
            // 2 * floor(x / 2^m) plus the bit that the smaller target had dropped.
            let ahead = rng.gen_range(0..HALF_LIFE);
            let (product, _) = t.overflowing_mul_u64(factor(
                (asert_exponent(on_schedule + ahead, height_diff, SPACING, HALF_LIFE) & 0xffff) as u64,
            ));
            let mut prev = calc(t, on_schedule + ahead, height_diff);
            for k in 1..=40 {
                let next = calc(t, on_schedule + ahead + k * HALF_LIFE, height_diff);
                let doubled = prev.shl_bits(1);
                if prev == bch_pow_limit() || doubled > bch_pow_limit() {
                    assert_eq!(next, bch_pow_limit());
                } else if next != doubled {
                    assert_eq!(next, doubled.wrapping_add(U256::ONE), "k {k}");
                    // Only while the smaller target was the product shifted right (a bit dropped).
                    assert!(prev.bits() < product.bits(), "k {k}");
                }
                prev = next;
            }
            // Behind schedule (a negative exponent), each half-life more halves it, floored, down to 1.
            let behind = rng.gen_range(1..HALF_LIFE);
            let base = calc(t, on_schedule - behind, height_diff);
            for k in 1..=40 {
                let next = calc(t, on_schedule - behind - k * HALF_LIFE, height_diff);
                let halved = base.shr_bits(k as u32);
                assert_eq!(next, if halved.is_zero() { U256::ONE } else { halved }, "k {k}");
            }
        }
    }

    #[test]
    fn monotonic_in_time_diff() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x3070);
        for _ in 0..200 {
            let (t, bits) = random_anchor(&mut rng);
            let height_diff = rng.gen_range(0..10_000i64);
            let mut time_diff = SPACING * (height_diff + 1) - rng.gen_range(0..20 * HALF_LIFE);
            let mut prev_target = U256::ZERO;
            let mut prev_bits = U256::ZERO;
            for _ in 0..400 {
                let target = calc(t, time_diff, height_diff);
                let b = bits_value(next_bits(bits, time_diff, height_diff));
                assert!(target >= prev_target && b >= prev_bits, "time_diff {time_diff}");
                assert!(b <= target && !b.is_zero() && b <= bch_pow_limit());
                prev_target = target;
                prev_bits = b;
                time_diff += rng.gen_range(0..HALF_LIFE / 4);
            }
        }
    }

    #[test]
    fn clamps_at_both_ends() {
        // Far ahead of schedule: the limit, even with a shift far past 256 bits.
        assert_eq!(next_bits(0x01010000, 1 << 40, 0), 0x1d00ffff);
        assert_eq!(next_bits(0x1d00ffff, 1 << 46, 0), 0x1d00ffff);
        // Far behind: a target of 1.
        assert_eq!(next_bits(0x1d00ffff, -(1 << 46), 0), 0x01010000);
        assert_eq!(next_bits(0x1d00ffff, 0, 1 << 30), 0x01010000);
        // Just inside the asserted range (|time_diff - spacing * height_diff| < 2^47), where the C++
        // i64 product (x - spacing) * 65536 would be the closest to overflowing.
        assert_eq!(next_bits(0x1d00ffff, -(1 << 47) + 1, 0), 0x01010000);
        assert_eq!(next_bits(0x01010000, (1 << 47) - 1, 0), 0x1d00ffff);
    }

    #[test]
    #[should_panic(expected = "anchor target")]
    fn anchor_above_limit_panics() {
        next_bits(0x1d01ffff, 600, 0);
    }

    #[test]
    #[should_panic(expected = "anchor target")]
    fn zero_anchor_panics() {
        next_bits(0x01003456, 600, 0);
    }

    #[test]
    #[should_panic(expected = "height_diff")]
    fn negative_height_diff_panics() {
        next_bits(0x1d00ffff, 600, -1);
    }

    #[test]
    #[should_panic(expected = "2^47")]
    fn time_diff_out_of_range_panics() {
        next_bits(0x1d00ffff, 1 << 47, 0);
    }
}
