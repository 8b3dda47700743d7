//! Transaction rules that need the UTXO set or the chain: Bitcoin Core's `Consensus::CheckTxInputs`
//! (src/consensus/tx_verify.cpp), `IsFinalTx`, BIP68's `SequenceLocks`, and the block-level parts of
//! `Chainstate::ConnectBlock` and `ContextualCheckBlock` (src/validation.cpp): BIP30, the block
//! reward, the accumulated fees.
//!
//! Pure functions over data: the connection engine resolves each transaction's spent coins
//! (from the UTXO set, or from earlier transactions of the same block) and passes them in input
//! order; nothing here reads storage. Each function checks one rule and returns a [`TxRuleError`]
//! whose [`reason`](TxRuleError::reason) is Bitcoin Core's reject reason, exactly.
//!
//! `coins` arguments take any slice of `Coin` or `&Coin` (`C: Borrow<Coin>`), in input order,
//! one per input. A slice of another length is the caller's bug, not bad input: those functions
//! panic then (documented on each).

use std::borrow::Borrow;

use super::MAX_MONEY;
use crate::consensus::params::BitcoinParams;
use crate::consensus::script::ScriptFailure;
use crate::primitives::{Block, BlockHash, Coin, OutPoint, Transaction, Txid};

/// `COINBASE_MATURITY` (src/consensus/consensus.h): a coinbase output may be spent only by a
/// transaction in a block at least 100 blocks above the one that created it.
pub const COINBASE_MATURITY: u32 = 100;
/// `LOCKTIME_THRESHOLD` (src/script/script.h): lock times below it are heights, from it on UNIX times.
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// `CTxIn::SEQUENCE_FINAL`: an input with this sequence disables the transaction's lock time (when
/// every input has it) and BIP68.
pub const SEQUENCE_FINAL: u32 = 0xffff_ffff;
/// `CTxIn::SEQUENCE_LOCKTIME_DISABLE_FLAG` (BIP68): bit 31 set, the sequence is no relative lock.
pub const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
/// `CTxIn::SEQUENCE_LOCKTIME_TYPE_FLAG` (BIP68): bit 22 set, the lock counts 512-second units of
/// median time past, else blocks.
pub const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
/// `CTxIn::SEQUENCE_LOCKTIME_MASK` (BIP68): the lock's value, the low 16 bits.
pub const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
/// `CTxIn::SEQUENCE_LOCKTIME_GRANULARITY` (BIP68): time locks count units of 2^9 = 512 seconds.
pub const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;
/// `COIN`: satoshis per bitcoin.
pub const COIN: i64 = 100_000_000;
/// `BIP34_IMPLIES_BIP30_LIMIT` (src/validation.cpp, `ConnectBlock`): from this height on BIP30 is
/// checked again even on the chain through the BIP34 block (pre-BIP34 coinbases state heights this
/// high, so their duplicates become possible).
pub const BIP34_IMPLIES_BIP30_LIMIT: u32 = 1_983_702;
/// `MAX_BLOCK_SIGOPS_COST` (src/consensus/consensus.h): a block's signature-operation cost limit.
pub const MAX_BLOCK_SIGOPS_COST: i64 = 80_000;

/// Bitcoin Core's `MoneyRange` (src/consensus/amount.h): `0 <= value <= MAX_MONEY`.
pub fn money_range(value: i64) -> bool {
    (0..=MAX_MONEY).contains(&value)
}

/// A broken transaction rule (one of the UTXO- or chain-dependent rules of this module, the
/// signature-operation limits of `sigops`, or a failed script). Display: Bitcoin Core's reject
/// reason, `: `, then the specifics (txid, input index, values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRuleError {
    /// An input spends an output that does not exist or is already spent.
    #[error("bad-txns-inputs-missingorspent: transaction {txid} input {input} spends {}:{}, which is missing or already spent", prevout.txid, prevout.vout)]
    MissingOrSpent {
        /// The spending transaction.
        txid: Txid,
        /// Index of the input.
        input: usize,
        /// The output it names.
        prevout: OutPoint,
    },
    /// A coinbase output spent before 100 blocks have passed.
    #[error(
        "bad-txns-premature-spend-of-coinbase: transaction {txid} input {input} tried to spend coinbase at depth \
         {depth} (created at height {coin_height}, spent at {spend_height}; needs {COINBASE_MATURITY})"
    )]
    PrematureCoinbaseSpend {
        /// The spending transaction.
        txid: Txid,
        /// Index of the input.
        input: usize,
        /// Height of the coinbase's block.
        coin_height: u32,
        /// Height of the spending block.
        spend_height: u32,
        /// `spend_height - coin_height`.
        depth: i64,
    },
    /// A spent output's value, or the running sum of them, is outside `0..=MAX_MONEY`.
    #[error(
        "bad-txns-inputvalues-outofrange: transaction {txid} input {input}: value {value} sat or the sum so far \
         {total} sat is outside 0..=2,100,000,000,000,000 sat"
    )]
    InputValuesOutOfRange {
        /// The transaction.
        txid: Txid,
        /// Index of the input.
        input: usize,
        /// Its value, satoshis.
        value: i64,
        /// The sum up to and including it (saturating), satoshis.
        total: i64,
    },
    /// The outputs spend more than the inputs bring.
    #[error("bad-txns-in-belowout: transaction {txid}: value in ({value_in} sat) < value out ({value_out} sat)")]
    InBelowOut {
        /// The transaction.
        txid: Txid,
        /// Sum of the spent outputs, satoshis.
        value_in: i64,
        /// Sum of the outputs, satoshis.
        value_out: i64,
    },
    /// The fee is outside `0..=MAX_MONEY` (unreachable after the checks before it, as in Core).
    #[error("bad-txns-fee-outofrange: transaction {txid}: fee {fee} sat is outside 0..=2,100,000,000,000,000 sat")]
    FeeOutOfRange {
        /// The transaction.
        txid: Txid,
        /// The fee, satoshis.
        fee: i64,
    },
    /// The block's fees summed so far are outside `0..=MAX_MONEY`.
    #[error("bad-txns-accumulated-fee-outofrange: accumulated fee in the block out of range ({fees} sat)")]
    AccumulatedFeeOutOfRange {
        /// The sum, satoshis (saturating).
        fees: i64,
    },
    /// The lock time is not yet reached and some input's sequence is not final.
    #[error(
        "bad-txns-nonfinal: transaction {txid} is non-final: lock time {lock_time} not below the block's height \
         {height} / lock-time cutoff {cutoff}, and an input's sequence is not 0xffffffff"
    )]
    NonFinal {
        /// The transaction.
        txid: Txid,
        /// Its lock time.
        lock_time: u32,
        /// The block's height.
        height: u32,
        /// The lock-time cutoff (median time past of the previous block after BIP113, else the block's time).
        cutoff: i64,
    },
    /// A BIP68 relative lock time is not yet reached.
    #[error(
        "bad-txns-nonfinal: contains a non-BIP68-final transaction {txid}: its sequence locks need a height above \
         {min_height} and a previous median time past above {min_time}, the block is at height {height} after \
         median time past {prev_mtp}"
    )]
    SequenceLocks {
        /// The transaction.
        txid: Txid,
        /// Last invalid height (-1: none).
        min_height: i64,
        /// Last invalid median time past (-1: none).
        min_time: i64,
        /// The block's height.
        height: u32,
        /// The previous block's median time past.
        prev_mtp: i64,
    },
    /// BIP30: an output would overwrite an unspent output of the same txid.
    #[error("bad-txns-BIP30: tried to overwrite transaction: output {txid}:{vout} already exists unspent")]
    Bip30 {
        /// The txid of the block's transaction.
        txid: Txid,
        /// The output index that exists.
        vout: u32,
    },
    /// The block's signature-operation cost is over `MAX_BLOCK_SIGOPS_COST` (`ConnectBlock`).
    #[error("bad-blk-sigops: too many sigops: cost {cost} exceeds {MAX_BLOCK_SIGOPS_COST}")]
    SigopCost {
        /// The cost counted up to the transaction that crossed the limit.
        cost: i64,
    },
    /// The block's legacy signature-operation count x 4 is over the limit (`CheckBlock`).
    #[error("bad-blk-sigops: out-of-bounds SigOpCount: {count} legacy sigops x 4 exceeds {MAX_BLOCK_SIGOPS_COST}")]
    LegacySigopCount {
        /// The legacy count over all transactions.
        count: u64,
    },
    /// The coinbase pays more than the subsidy plus the fees.
    #[error("bad-cb-amount: coinbase pays too much (actual={actual} vs limit={limit})")]
    CoinbaseAmount {
        /// Sum of the coinbase's outputs, satoshis.
        actual: i64,
        /// Subsidy plus fees, satoshis.
        limit: i64,
    },
    /// An input's script failed (Bitcoin Core's interpreter, through libbitcoinconsensus).
    #[error("block-script-verify-flag-failed: transaction {txid} {failure}")]
    Script {
        /// The transaction.
        txid: Txid,
        /// Which input and how.
        failure: ScriptFailure,
    },
}

impl TxRuleError {
    /// The name of the rule function that failed (as listed in docs/CONSENSUS.md).
    pub fn rule(&self) -> &'static str {
        match self {
            TxRuleError::MissingOrSpent { .. } => "inputs_are_available",
            TxRuleError::PrematureCoinbaseSpend { .. } => "coinbase_spends_are_mature",
            TxRuleError::InputValuesOutOfRange { .. } => "input_values_are_in_range",
            TxRuleError::InBelowOut { .. } | TxRuleError::FeeOutOfRange { .. } => "outputs_do_not_exceed_inputs",
            TxRuleError::AccumulatedFeeOutOfRange { .. } => "accumulated_fees_are_in_range",
            TxRuleError::NonFinal { .. } => "transaction_is_final",
            TxRuleError::SequenceLocks { .. } => "sequence_locks_are_satisfied",
            TxRuleError::Bip30 { .. } => "outputs_do_not_overwrite_unspent",
            TxRuleError::SigopCost { .. } => "block_sigop_cost_is_within_limit",
            TxRuleError::LegacySigopCount { .. } => "block_legacy_sigops_are_within_limit",
            TxRuleError::CoinbaseAmount { .. } => "coinbase_value_is_within_reward",
            TxRuleError::Script { .. } => "input_scripts_are_valid",
        }
    }

    /// Bitcoin Core's reject reason, exactly as Core 31 writes it. For a script failure Core
    /// appends the interpreter's error in parentheses (`block-script-verify-flag-failed (Script
    /// evaluated without error but finished with a false/empty top stack element)`);
    /// libbitcoinconsensus reports only that the script failed, so the reason here is the prefix.
    pub fn reason(&self) -> &'static str {
        match self {
            TxRuleError::MissingOrSpent { .. } => "bad-txns-inputs-missingorspent",
            TxRuleError::PrematureCoinbaseSpend { .. } => "bad-txns-premature-spend-of-coinbase",
            TxRuleError::InputValuesOutOfRange { .. } => "bad-txns-inputvalues-outofrange",
            TxRuleError::InBelowOut { .. } => "bad-txns-in-belowout",
            TxRuleError::FeeOutOfRange { .. } => "bad-txns-fee-outofrange",
            TxRuleError::AccumulatedFeeOutOfRange { .. } => "bad-txns-accumulated-fee-outofrange",
            TxRuleError::NonFinal { .. } | TxRuleError::SequenceLocks { .. } => "bad-txns-nonfinal",
            TxRuleError::Bip30 { .. } => "bad-txns-BIP30",
            TxRuleError::SigopCost { .. } | TxRuleError::LegacySigopCount { .. } => "bad-blk-sigops",
            TxRuleError::CoinbaseAmount { .. } => "bad-cb-amount",
            TxRuleError::Script { .. } => "block-script-verify-flag-failed",
        }
    }
}

fn check_len<C>(tx: &Transaction, coins: &[C]) {
    assert_eq!(
        coins.len(),
        tx.inputs.len(),
        "the caller passed {} coins for a transaction with {} inputs",
        coins.len(),
        tx.inputs.len()
    );
}

/// Every input spends an output that exists and is unspent: Bitcoin Core `Consensus::CheckTxInputs`
/// (`inputs.HaveInputs(tx)`, src/consensus/tx_verify.cpp), "bad-txns-inputs-missingorspent".
/// `coins[i]` is the coin input `i` spends as the engine resolved it (the UTXO set before the block,
/// plus the outputs of the block's earlier transactions, minus what they spent), `None` when there
/// is none. Not for a coinbase (Core never calls it there).
///
/// # Panics
/// If `coins.len() != tx.inputs.len()` (the caller's bug).
pub fn inputs_are_available(tx: &Transaction, coins: &[Option<&Coin>]) -> Result<(), TxRuleError> {
    check_len(tx, coins);
    match coins.iter().position(Option::is_none) {
        Some(input) => Err(TxRuleError::MissingOrSpent { txid: tx.txid(), input, prevout: tx.inputs[input].prevout }),
        None => Ok(()),
    }
}

/// A coinbase's outputs are spent only from `COINBASE_MATURITY` (100) blocks above it: Bitcoin Core
/// `Consensus::CheckTxInputs` (src/consensus/tx_verify.cpp), `nSpendHeight - coin.nHeight <
/// COINBASE_MATURITY` fails with "bad-txns-premature-spend-of-coinbase". `spend_height` is the
/// height of the block being connected.
///
/// # Panics
/// If `coins.len() != tx.inputs.len()`.
pub fn coinbase_spends_are_mature<C: Borrow<Coin>>(
    tx: &Transaction,
    coins: &[C],
    spend_height: u32,
) -> Result<(), TxRuleError> {
    check_len(tx, coins);
    coins
        .iter()
        .enumerate()
        .try_for_each(|(input, coin)| coinbase_spend_is_mature(tx, input, coin.borrow(), spend_height))
}

/// [`coinbase_spends_are_mature`] for one input (shared with [`check_tx_inputs`]).
fn coinbase_spend_is_mature(tx: &Transaction, input: usize, coin: &Coin, spend_height: u32) -> Result<(), TxRuleError> {
    let depth = spend_height as i64 - coin.height as i64;
    if coin.is_coinbase && depth < COINBASE_MATURITY as i64 {
        return Err(TxRuleError::PrematureCoinbaseSpend {
            txid: tx.txid(),
            input,
            coin_height: coin.height,
            spend_height,
            depth,
        });
    }
    Ok(())
}

/// Each spent output's value and their running sum are in `MoneyRange` (0..=21 million BTC):
/// Bitcoin Core `Consensus::CheckTxInputs` (src/consensus/tx_verify.cpp),
/// "bad-txns-inputvalues-outofrange". Returns the sum (`nValueIn`, satoshis).
///
/// # Panics
/// If `coins.len() != tx.inputs.len()`.
pub fn input_values_are_in_range<C: Borrow<Coin>>(tx: &Transaction, coins: &[C]) -> Result<i64, TxRuleError> {
    check_len(tx, coins);
    let mut total: i64 = 0;
    for (input, coin) in coins.iter().enumerate() {
        let value = coin.borrow().out.value;
        // Core adds first and then tests both; each earlier sum is in range, so a checked add
        // only fails where Core's sum is already out of range.
        total = total.saturating_add(value);
        if !money_range(value) || !money_range(total) {
            return Err(TxRuleError::InputValuesOutOfRange { txid: tx.txid(), input, value, total });
        }
    }
    Ok(total)
}

/// The outputs spend at most what the inputs bring, and the fee is in `MoneyRange`: Bitcoin Core
/// `Consensus::CheckTxInputs` (src/consensus/tx_verify.cpp), "bad-txns-in-belowout" and
/// "bad-txns-fee-outofrange". `value_in` is [`input_values_are_in_range`]'s sum. Returns the fee,
/// satoshis. The outputs' own range was checked by `transaction_is_well_formed` (`CheckTransaction`);
/// their sum saturates here, so an unchecked transaction gets an error, never an overflow.
pub fn outputs_do_not_exceed_inputs(tx: &Transaction, value_in: i64) -> Result<i64, TxRuleError> {
    let value_out = tx.outputs.iter().fold(0i64, |s, o| s.saturating_add(o.value));
    if value_in < value_out {
        return Err(TxRuleError::InBelowOut { txid: tx.txid(), value_in, value_out });
    }
    let fee = value_in - value_out;
    if !money_range(fee) {
        return Err(TxRuleError::FeeOutOfRange { txid: tx.txid(), fee });
    }
    Ok(fee)
}

/// Bitcoin Core's `Consensus::CheckTxInputs` (src/consensus/tx_verify.cpp) once the coins are
/// resolved (after [`inputs_are_available`]), in Core's order: input by input, maturity
/// ([`coinbase_spends_are_mature`]) then the value's and the running sum's range
/// ([`input_values_are_in_range`]); then [`outputs_do_not_exceed_inputs`]. So the first failing input
/// gives Core's reason. Returns the fee, satoshis.
///
/// # Panics
/// If `coins.len() != tx.inputs.len()`.
pub fn check_tx_inputs<C: Borrow<Coin>>(tx: &Transaction, coins: &[C], spend_height: u32) -> Result<i64, TxRuleError> {
    check_len(tx, coins);
    let mut total: i64 = 0;
    for (input, coin) in coins.iter().enumerate() {
        let coin = coin.borrow();
        coinbase_spend_is_mature(tx, input, coin, spend_height)?;
        let value = coin.out.value;
        total = total.saturating_add(value);
        if !money_range(value) || !money_range(total) {
            return Err(TxRuleError::InputValuesOutOfRange { txid: tx.txid(), input, value, total });
        }
    }
    outputs_do_not_exceed_inputs(tx, total)
}

/// The block's fees summed so far stay in `MoneyRange`: Bitcoin Core `Chainstate::ConnectBlock`
/// (src/validation.cpp), "bad-txns-accumulated-fee-outofrange", checked after each transaction.
pub fn accumulated_fees_are_in_range(fees: i64) -> Result<(), TxRuleError> {
    if !money_range(fees) {
        return Err(TxRuleError::AccumulatedFeeOutOfRange { fees });
    }
    Ok(())
}

/// The block subsidy at `height`, satoshis: 50 BTC halved every `subsidy_halving_interval` blocks
/// (210,000; 150 on regtest), zero from 64 halvings on. Bitcoin Core `GetBlockSubsidy`
/// (src/validation.cpp).
pub fn block_subsidy(height: u32, params: &BitcoinParams) -> i64 {
    let halvings = height / params.subsidy_halving_interval;
    if halvings >= 64 {
        return 0;
    }
    (50 * COIN) >> halvings
}

/// The coinbase pays at most the subsidy plus the block's fees: Bitcoin Core
/// `Chainstate::ConnectBlock` (src/validation.cpp), "bad-cb-amount". `fees` is the sum of the
/// block's fees (satoshis, each in range, their sum checked by [`accumulated_fees_are_in_range`]).
pub fn coinbase_value_is_within_reward(
    coinbase: &Transaction,
    fees: i64,
    height: u32,
    params: &BitcoinParams,
) -> Result<(), TxRuleError> {
    let actual = coinbase.outputs.iter().fold(0i64, |s, o| s.saturating_add(o.value));
    let limit = fees.saturating_add(block_subsidy(height, params));
    if actual > limit {
        return Err(TxRuleError::CoinbaseAmount { actual, limit });
    }
    Ok(())
}

/// The time a transaction's lock time is compared with in a block at `height` (BIP113): from the
/// CSV deployment on (`height >= params.csv_height`), the median time past of the previous block
/// (`prev_mtp`); before it, the block's own time. Bitcoin Core `ContextualCheckBlock`
/// (src/validation.cpp, `nLockTimeCutoff`, `DeploymentActiveAfter(pindexPrev, DEPLOYMENT_CSV)`).
pub fn lock_time_cutoff(height: u32, block_time: u32, prev_mtp: i64, params: &BitcoinParams) -> i64 {
    if height > 0 && height >= params.csv_height {
        prev_mtp
    } else {
        block_time as i64
    }
}

/// The transaction is final in a block at `height` with lock-time cutoff `cutoff` (see
/// [`lock_time_cutoff`]): lock time 0, or below the height (lock times under 500,000,000) or the
/// cutoff (from 500,000,000 on), or every input's sequence is `0xffffffff`. Bitcoin Core
/// `IsFinalTx` (src/consensus/tx_verify.cpp), called on every transaction, the coinbase included,
/// by `ContextualCheckBlock` ("bad-txns-nonfinal").
pub fn transaction_is_final(tx: &Transaction, height: u32, cutoff: i64) -> Result<(), TxRuleError> {
    if tx.lock_time == 0 {
        return Ok(());
    }
    let limit = if tx.lock_time < LOCKTIME_THRESHOLD { height as i64 } else { cutoff };
    if (tx.lock_time as i64) < limit {
        return Ok(());
    }
    if tx.inputs.iter().all(|i| i.sequence == SEQUENCE_FINAL) {
        return Ok(());
    }
    Err(TxRuleError::NonFinal { txid: tx.txid(), lock_time: tx.lock_time, height, cutoff })
}

/// BIP68's lock pair of a transaction: the last invalid height and the last invalid median time
/// past its inputs' relative locks allow (-1: none), Bitcoin Core `CalculateSequenceLocks`
/// (src/consensus/tx_verify.cpp). Enforced only when `enforce` (the CSV deployment is active) and
/// the version is at least 2; inputs with bit 31 of the sequence set carry no lock. A height lock
/// counts from the coin's height; a time lock (bit 22) from `mtp_of(max(coin_height - 1, 0))`, the
/// median time past of the block before the coin's, on the chain being connected (Core's
/// `block.GetAncestor(...)->GetMedianTimePast()`), in units of 512 seconds.
///
/// # Panics
/// If `coins.len() != tx.inputs.len()`.
pub fn calculate_sequence_locks<C: Borrow<Coin>>(
    tx: &Transaction,
    coins: &[C],
    enforce: bool,
    mut mtp_of: impl FnMut(u32) -> i64,
) -> (i64, i64) {
    check_len(tx, coins);
    let mut min_height: i64 = -1;
    let mut min_time: i64 = -1;
    if !(tx.version >= 2 && enforce) {
        return (min_height, min_time);
    }
    for (txin, coin) in tx.inputs.iter().zip(coins) {
        if txin.sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            continue;
        }
        let coin_height = coin.borrow().height;
        let value = (txin.sequence & SEQUENCE_LOCKTIME_MASK) as i64;
        if txin.sequence & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            let coin_time = mtp_of(coin_height.saturating_sub(1));
            min_time = min_time.max(coin_time + (value << SEQUENCE_LOCKTIME_GRANULARITY) - 1);
        } else {
            min_height = min_height.max(coin_height as i64 + value - 1);
        }
    }
    (min_height, min_time)
}

/// BIP68 (with BIP112/113's median time past): the transaction's relative lock times are reached in
/// a block at `height` whose previous block has median time past `prev_mtp`. Bitcoin Core
/// `SequenceLocks` = `EvaluateSequenceLocks(CalculateSequenceLocks(...))` (src/consensus/tx_verify.cpp),
/// called by `ConnectBlock` for every non-coinbase transaction with `LOCKTIME_VERIFY_SEQUENCE` from
/// the CSV deployment on ("bad-txns-nonfinal"). See [`calculate_sequence_locks`] for `coins` and
/// `mtp_of`. A coinbase passes.
///
/// # Panics
/// If `coins.len() != tx.inputs.len()` (for a transaction that is not a coinbase).
pub fn sequence_locks_are_satisfied<C: Borrow<Coin>>(
    tx: &Transaction,
    coins: &[C],
    height: u32,
    prev_mtp: i64,
    params: &BitcoinParams,
    mtp_of: impl FnMut(u32) -> i64,
) -> Result<(), TxRuleError> {
    if tx.is_coinbase() {
        return Ok(());
    }
    let enforce = height >= params.csv_height;
    let (min_height, min_time) = calculate_sequence_locks(tx, coins, enforce, mtp_of);
    if min_height >= height as i64 || min_time >= prev_mtp {
        return Err(TxRuleError::SequenceLocks { txid: tx.txid(), min_height, min_time, height, prev_mtp });
    }
    Ok(())
}

/// Whether BIP30's duplicate-output check applies to the block at `height` with hash `hash`:
/// Bitcoin Core `Chainstate::ConnectBlock` (src/validation.cpp). Not for the two blocks that broke
/// it before it existed (`IsBIP30Repeat`: heights 91,842 and 91,880 on mainnet), and not on a
/// chain whose block at `params.bip34_height` is `params.bip34_hash` (BIP34 makes duplicates
/// impossible there) until [`BIP34_IMPLIES_BIP30_LIMIT`] (1,983,702), from where it applies again.
/// `bip34_ancestor` is the hash of this block's ancestor at `params.bip34_height`, `None` when the
/// block's parent is below that height. Regtest has no BIP34 hash, so it always applies there.
pub fn bip30_applies(
    height: u32,
    hash: &BlockHash,
    bip34_ancestor: Option<&BlockHash>,
    params: &BitcoinParams,
) -> bool {
    let enforce = !is_bip30_repeat(height, hash)
        && match bip34_ancestor {
            None => true,
            Some(a) => Some(a) != params.bip34_hash.as_ref(),
        };
    enforce || height >= BIP34_IMPLIES_BIP30_LIMIT
}

/// The two mainnet blocks whose coinbases duplicated earlier ones before BIP30 (Bitcoin Core
/// `IsBIP30Repeat`, src/validation.cpp).
pub fn is_bip30_repeat(height: u32, hash: &BlockHash) -> bool {
    const REPEATS: [(u32, &str); 2] = [
        (91_842, "00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec"),
        (91_880, "00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721"),
    ];
    REPEATS.iter().any(|(h, hex)| *h == height && hash.to_display_hex() == *hex)
}

/// BIP30: no transaction of the block creates an output that already exists unspent (same txid and
/// index): Bitcoin Core `Chainstate::ConnectBlock` (src/validation.cpp), "bad-txns-BIP30", checked
/// against the UTXO set *before* the block (`exists`), only where [`bip30_applies`]. `txids` are the
/// block's txids in order (the merkle check computed them: `rules::txids`).
///
/// # Panics
/// If `txids.len() != block.txdata.len()`.
pub fn outputs_do_not_overwrite_unspent(
    block: &Block,
    txids: &[[u8; 32]],
    mut exists: impl FnMut(&OutPoint) -> bool,
) -> Result<(), TxRuleError> {
    assert_eq!(txids.len(), block.txdata.len(), "one txid per transaction");
    for (tx, txid) in block.txdata.iter().zip(txids) {
        for vout in 0..tx.outputs.len() as u32 {
            let op = OutPoint { txid: Txid(*txid), vout };
            if exists(&op) {
                return Err(TxRuleError::Bip30 { txid: op.txid, vout });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::params::BitcoinNetwork;
    use crate::primitives::{TxIn, TxOut};

    fn main() -> BitcoinParams {
        BitcoinNetwork::Bitcoin.params()
    }

    fn input(n: u8, sequence: u32) -> TxIn {
        TxIn {
            prevout: OutPoint { txid: Txid([n; 32]), vout: n as u32 },
            script_sig: vec![0x51],
            sequence,
            witness: Vec::new(),
        }
    }

    fn tx(inputs: Vec<TxIn>, out_values: &[i64]) -> Transaction {
        Transaction {
            version: 2,
            inputs,
            outputs: out_values.iter().map(|&v| TxOut { value: v, script_pubkey: vec![0x51] }).collect(),
            lock_time: 0,
        }
    }

    fn coin(value: i64, height: u32, is_coinbase: bool) -> Coin {
        Coin { out: TxOut { value, script_pubkey: vec![0x51] }, height, is_coinbase }
    }

    #[test]
    fn inputs_are_available_needs_every_coin() {
        let t = tx(vec![input(1, 0), input(2, 0)], &[1]);
        let c = coin(5, 1, false);
        inputs_are_available(&t, &[Some(&c), Some(&c)]).unwrap();
        let e = inputs_are_available(&t, &[Some(&c), None]).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-inputs-missingorspent");
        assert_eq!(e.rule(), "inputs_are_available");
        assert!(matches!(e, TxRuleError::MissingOrSpent { input: 1, prevout, .. } if prevout == t.inputs[1].prevout));
        let msg = e.to_string();
        assert!(msg.starts_with("bad-txns-inputs-missingorspent: transaction "), "{msg}");
        assert!(msg.contains(&format!("{}:2", Txid([2; 32]))), "{msg}");
    }

    #[test]
    fn coinbase_spends_are_mature_at_100_blocks() {
        let t = tx(vec![input(1, 0)], &[1]);
        // Depth exactly 100 passes; 99 fails; a non-coinbase coin at depth 0 passes.
        coinbase_spends_are_mature(&t, &[coin(5, 100, true)], 200).unwrap();
        coinbase_spends_are_mature(&t, &[coin(5, 200, false)], 200).unwrap();
        let e = coinbase_spends_are_mature(&t, &[coin(5, 101, true)], 200).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-premature-spend-of-coinbase");
        assert_eq!(e.rule(), "coinbase_spends_are_mature");
        assert!(matches!(e, TxRuleError::PrematureCoinbaseSpend { depth: 99, coin_height: 101, input: 0, .. }));
        assert!(e.to_string().contains("at depth 99"), "{e}");
    }

    #[test]
    fn input_values_are_in_range_each_and_summed() {
        let t = tx(vec![input(1, 0), input(2, 0)], &[1]);
        assert_eq!(
            input_values_are_in_range(&t, &[coin(MAX_MONEY - 1, 1, false), coin(1, 1, false)]).unwrap(),
            MAX_MONEY
        );
        for coins in [
            [coin(-1, 1, false), coin(1, 1, false)],
            [coin(MAX_MONEY + 1, 1, false), coin(0, 1, false)],
            [coin(MAX_MONEY, 1, false), coin(1, 1, false)],
            [coin(i64::MAX, 1, false), coin(i64::MAX, 1, false)],
        ] {
            let e = input_values_are_in_range(&t, &coins).unwrap_err();
            assert_eq!(e.reason(), "bad-txns-inputvalues-outofrange");
            assert_eq!(e.rule(), "input_values_are_in_range");
        }
    }

    #[test]
    fn outputs_do_not_exceed_inputs_returns_the_fee() {
        let t = tx(vec![input(1, 0)], &[30, 20]);
        assert_eq!(outputs_do_not_exceed_inputs(&t, 50).unwrap(), 0);
        assert_eq!(outputs_do_not_exceed_inputs(&t, 60).unwrap(), 10);
        let e = outputs_do_not_exceed_inputs(&t, 49).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-in-belowout");
        assert_eq!(e.rule(), "outputs_do_not_exceed_inputs");
        assert_eq!(e, TxRuleError::InBelowOut { txid: t.txid(), value_in: 49, value_out: 50 });
        // Unreachable after CheckTransaction and the input range check, as in Core, but still an
        // error (not an overflow) for a caller that skipped them.
        let e = outputs_do_not_exceed_inputs(&tx(vec![input(1, 0)], &[-5]), MAX_MONEY).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-fee-outofrange");
    }

    #[test]
    fn check_tx_inputs_reports_the_first_failing_input_in_cores_order() {
        let t = tx(vec![input(1, 0), input(2, 0)], &[10]);
        assert_eq!(check_tx_inputs(&t, &[coin(6, 1, true), coin(6, 50, false)], 101).unwrap(), 2);
        // Input 0 out of range, input 1 immature: Core's loop meets input 0's range first.
        let e = check_tx_inputs(&t, &[coin(-1, 1, false), coin(6, 50, true)], 101).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-inputvalues-outofrange");
        let e = check_tx_inputs(&t, &[coin(6, 2, true), coin(-1, 1, false)], 101).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-premature-spend-of-coinbase");
        assert!(matches!(e, TxRuleError::PrematureCoinbaseSpend { input: 0, depth: 99, .. }));
        let e = check_tx_inputs(&t, &[coin(5, 1, false), coin(4, 1, false)], 101).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-in-belowout");
    }

    #[test]
    #[should_panic(expected = "coins for a transaction with 2 inputs")]
    fn a_wrong_coin_count_is_the_callers_bug() {
        let t = tx(vec![input(1, 0), input(2, 0)], &[10]);
        let _ = check_tx_inputs(&t, &[coin(6, 1, false)], 101);
    }

    #[test]
    fn accumulated_fees_are_in_range_up_to_max_money() {
        accumulated_fees_are_in_range(MAX_MONEY).unwrap();
        let e = accumulated_fees_are_in_range(MAX_MONEY + 1).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-accumulated-fee-outofrange");
        assert_eq!(e.rule(), "accumulated_fees_are_in_range");
    }

    #[test]
    fn block_subsidy_halves_as_cores() {
        let p = main();
        assert_eq!(block_subsidy(0, &p), 5_000_000_000);
        assert_eq!(block_subsidy(209_999, &p), 5_000_000_000);
        assert_eq!(block_subsidy(210_000, &p), 2_500_000_000);
        assert_eq!(block_subsidy(840_000, &p), 312_500_000);
        // Core's validation_tests: the subsidy reaches 0 after 33 halvings and stays there; the
        // shift is never undefined.
        assert_eq!(block_subsidy(210_000 * 33, &p), 0);
        assert_eq!(block_subsidy(210_000 * 32, &p), 1);
        assert_eq!(block_subsidy(210_000 * 64, &p), 0);
        assert_eq!(block_subsidy(u32::MAX, &p), 0);
        let r = BitcoinNetwork::BitcoinRegtest.params();
        assert_eq!(block_subsidy(149, &r), 5_000_000_000);
        assert_eq!(block_subsidy(150, &r), 2_500_000_000);
        // The sum of all subsidies (Core's subsidy_limit_test): below 21 million BTC.
        let total: i64 = (0..14_000_000u32).step_by(1000).map(|h| block_subsidy(h, &p) * 1000).sum();
        assert_eq!(total, 2_099_999_997_690_000);
    }

    #[test]
    fn coinbase_value_is_within_reward_is_subsidy_plus_fees() {
        let p = main();
        let mut cb = tx(vec![TxIn { prevout: OutPoint::NULL, ..input(0, SEQUENCE_FINAL) }], &[5_000_000_000, 7]);
        coinbase_value_is_within_reward(&cb, 7, 1, &p).unwrap();
        coinbase_value_is_within_reward(&cb, 8, 1, &p).unwrap();
        let e = coinbase_value_is_within_reward(&cb, 6, 1, &p).unwrap_err();
        assert_eq!(e.reason(), "bad-cb-amount");
        assert_eq!(e.rule(), "coinbase_value_is_within_reward");
        assert_eq!(e.to_string(), "bad-cb-amount: coinbase pays too much (actual=5000000007 vs limit=5000000006)");
        cb.outputs[0].value = 2_500_000_000;
        assert!(coinbase_value_is_within_reward(&cb, 6, 210_000, &p).is_err());
        coinbase_value_is_within_reward(&cb, 7, 210_000, &p).unwrap();
    }

    #[test]
    fn lock_time_cutoff_is_the_previous_median_time_past_from_csv_on() {
        let p = main();
        assert_eq!(lock_time_cutoff(p.csv_height - 1, 1000, 900, &p), 1000);
        assert_eq!(lock_time_cutoff(p.csv_height, 1000, 900, &p), 900);
        let r = BitcoinNetwork::BitcoinRegtest.params();
        assert_eq!(lock_time_cutoff(0, 1000, 900, &r), 1000);
        assert_eq!(lock_time_cutoff(1, 1000, 900, &r), 900);
    }

    #[test]
    fn transaction_is_final_as_is_final_tx() {
        let mut t = tx(vec![input(1, 0)], &[1]);
        transaction_is_final(&t, 10, 1000).unwrap();
        // Height lock: final strictly above the lock time.
        t.lock_time = 9;
        transaction_is_final(&t, 10, 0).unwrap();
        t.lock_time = 10;
        let e = transaction_is_final(&t, 10, i64::MAX).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-nonfinal");
        assert_eq!(e.rule(), "transaction_is_final");
        // Time lock: against the cutoff, not the height.
        t.lock_time = LOCKTIME_THRESHOLD + 5;
        transaction_is_final(&t, 0, (LOCKTIME_THRESHOLD + 6) as i64).unwrap();
        assert!(transaction_is_final(&t, u32::MAX, (LOCKTIME_THRESHOLD + 5) as i64).is_err());
        // Every input final: the lock time is ignored.
        t.inputs[0].sequence = SEQUENCE_FINAL;
        transaction_is_final(&t, 0, 0).unwrap();
        t.inputs.push(input(2, SEQUENCE_FINAL - 1));
        assert!(transaction_is_final(&t, 0, 0).is_err());
    }

    fn mtp(h: u32) -> i64 {
        1_000_000 + h as i64 * 600
    }

    #[test]
    fn sequence_locks_by_height() {
        let p = BitcoinNetwork::BitcoinRegtest.params();
        // Spends a coin from height 100 with a relative lock of 10 blocks: first valid at 110.
        let t = tx(vec![input(1, 10)], &[1]);
        let c = [coin(5, 100, false)];
        assert_eq!(calculate_sequence_locks(&t, &c, true, mtp), (109, -1));
        sequence_locks_are_satisfied(&t, &c, 110, mtp(109), &p, mtp).unwrap();
        let e = sequence_locks_are_satisfied(&t, &c, 109, mtp(108), &p, mtp).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-nonfinal");
        assert_eq!(e.rule(), "sequence_locks_are_satisfied");
        assert!(matches!(e, TxRuleError::SequenceLocks { min_height: 109, min_time: -1, height: 109, .. }));
        // Version 1, the disable flag, or before CSV: no lock.
        let mut v1 = t.clone();
        v1.version = 1;
        sequence_locks_are_satisfied(&v1, &c, 101, mtp(100), &p, mtp).unwrap();
        let off = tx(vec![input(1, 10 | SEQUENCE_LOCKTIME_DISABLE_FLAG)], &[1]);
        sequence_locks_are_satisfied(&off, &c, 101, mtp(100), &p, mtp).unwrap();
        // Mainnet: a coin 5 blocks below the CSV height locked for 10 blocks; enforced from the CSV
        // height on only.
        let m = main();
        let c = [coin(5, m.csv_height - 5, false)];
        sequence_locks_are_satisfied(&t, &c, m.csv_height - 1, mtp(100), &m, mtp).unwrap();
        assert!(sequence_locks_are_satisfied(&t, &c, m.csv_height, mtp(100), &m, mtp).is_err());
    }

    #[test]
    fn sequence_locks_by_time_count_from_the_block_before_the_coins() {
        let p = BitcoinNetwork::BitcoinRegtest.params();
        // Two units of 512 s from the median time past of block 99 (the coin is in block 100).
        let t = tx(vec![input(1, SEQUENCE_LOCKTIME_TYPE_FLAG | 2)], &[1]);
        let c = [coin(5, 100, false)];
        let want = mtp(99) + 1024 - 1;
        let mut asked = Vec::new();
        let lock = calculate_sequence_locks(&t, &c, true, |h| {
            asked.push(h);
            mtp(h)
        });
        assert_eq!(lock, (-1, want));
        assert_eq!(asked, [99]);
        sequence_locks_are_satisfied(&t, &c, 500, want + 1, &p, mtp).unwrap();
        assert!(sequence_locks_are_satisfied(&t, &c, 500, want, &p, mtp).is_err());
        // A coin of height 0 uses block 0 (Core's max(nCoinHeight - 1, 0)).
        let c0 = [coin(5, 0, false)];
        let mut asked = Vec::new();
        calculate_sequence_locks(&t, &c0, true, |h| {
            asked.push(h);
            mtp(h)
        });
        assert_eq!(asked, [0]);
        // The coinbase passes whatever its sequence.
        let cb = tx(vec![TxIn { prevout: OutPoint::NULL, ..input(0, 5) }], &[1]);
        sequence_locks_are_satisfied(&cb, &[] as &[Coin], 1, 0, &p, mtp).unwrap();
    }

    fn hash(hex: &str) -> BlockHash {
        BlockHash::from_display_hex(hex).unwrap()
    }

    #[test]
    fn bip30_applies_except_for_cores_exceptions() {
        let m = main();
        let other = hash("00000000000000000000000000000000000000000000000000000000000000aa");
        let repeat = hash("00000000000a4d0a398161ffc163c503763b1f4360639393e0e4c8e300e0caec");
        let bip34 = m.bip34_hash.unwrap();
        // Before BIP34: always, except the two repeats (at their heights only).
        assert!(bip30_applies(91_841, &other, None, &m));
        assert!(!bip30_applies(91_842, &repeat, None, &m));
        assert!(bip30_applies(91_843, &repeat, None, &m));
        assert!(!bip30_applies(
            91_880,
            &hash("00000000000743f190a18c5577a3c2d2a1f610ae9601ac046a38084ccb7cd721"),
            None,
            &m
        ));
        // On the chain through Core's BIP34 block: not until 1,983,702.
        assert!(!bip30_applies(300_000, &other, Some(&bip34), &m));
        assert!(!bip30_applies(BIP34_IMPLIES_BIP30_LIMIT - 1, &other, Some(&bip34), &m));
        assert!(bip30_applies(BIP34_IMPLIES_BIP30_LIMIT, &other, Some(&bip34), &m));
        // On another chain: always.
        assert!(bip30_applies(300_000, &other, Some(&other), &m));
        // Regtest has no BIP34 hash.
        let r = BitcoinNetwork::BitcoinRegtest.params();
        assert!(bip30_applies(5, &other, Some(&other), &r));
    }

    #[test]
    fn outputs_do_not_overwrite_unspent_checks_every_output() {
        let t0 = tx(vec![TxIn { prevout: OutPoint::NULL, ..input(0, 0) }], &[1]);
        let t1 = tx(vec![input(1, 0)], &[1, 2]);
        let block = Block {
            header: crate::primitives::BlockHeader {
                version: 1,
                prev_blockhash: BlockHash::ZERO,
                merkle_root: crate::primitives::TxMerkleNode([0; 32]),
                time: 0,
                bits: crate::primitives::CompactTarget(0),
                nonce: 0,
            },
            txdata: vec![t0.clone(), t1.clone()],
        };
        let txids = [t0.txid().0, t1.txid().0];
        let mut asked = 0;
        outputs_do_not_overwrite_unspent(&block, &txids, |_| {
            asked += 1;
            false
        })
        .unwrap();
        assert_eq!(asked, 3);
        let taken = OutPoint { txid: t1.txid(), vout: 1 };
        let e = outputs_do_not_overwrite_unspent(&block, &txids, |op| *op == taken).unwrap_err();
        assert_eq!(e.reason(), "bad-txns-BIP30");
        assert_eq!(e.rule(), "outputs_do_not_overwrite_unspent");
        assert_eq!(e, TxRuleError::Bip30 { txid: t1.txid(), vout: 1 });
    }
}
