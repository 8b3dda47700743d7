//! Bulk validation of imported chains, both families, behind one entry point: [`run`] takes the
//! [`ValidateOptions`] (what `powkit validate` is asked), dispatches on the chain family and returns
//! one [`ValidateReport`] for either.
//!
//! - [`read`]: the file readers (blk files, raw headers, hex) framing input into records; [`xor`]:
//!   Bitcoin Core 28+'s blk-file obfuscation.
//! - [`bitcoin`]: Bitcoin chains: the context-free preparation and the in-order [`bitcoin::Validator`],
//!   driven by the ordered worker pipeline (`pipeline`) on the chosen header hasher.
//! - [`powkit`]: powkit chains: every header and block rule, every signature and state transition.
//! - [`import`]: `powkit chain import`: validating powkit blocks into a data directory's store.
//!
//! The library prints nothing: progress goes to the caller's callback as [`Progress`] counts.

pub mod bitcoin;
pub mod chainstate;
pub mod import;
mod pipeline;
pub mod powkit;
pub mod read;
pub mod tree;
pub mod xor;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::backend::{Backend, BackendError};
use crate::consensus::Network;
use crate::primitives::BlockHash;
use crate::store::StoreError;
use read::{Format, ReadError};

/// What `powkit validate` says is not checked.
pub const NOT_CHECKED: &str = "scripts, signatures and UTXO spends of Bitcoin transactions are not checked";

/// What full validation of Bitcoin blocks leaves out: nothing of Bitcoin Core's `ConnectBlock`.
pub const FULL_NOT_CHECKED: &str = "nothing that Bitcoin Core checks when it reindexes blocks (scripts run in Core's own interpreter, libbitcoinconsensus)";

/// With `--assume-valid`, what is not checked.
pub const ASSUMED_NOT_CHECKED: &str =
    "the scripts of the --assume-valid block and its ancestors (Bitcoin Core's -assumevalid); every other rule is checked";

/// What `powkit validate` says is not checked on powkit chains.
pub const LEDGER_NOT_CHECKED: &str = "nothing: headers, blocks, every signature and every state transition are checked";

/// What to validate and how (the flags of `powkit validate`).
#[derive(Clone, Debug)]
pub struct ValidateOptions {
    /// The chain: bitcoin, bitcoin-testnet, bitcoin-regtest (Bitcoin chains), powkit,
    /// powkit-regtest (powkit chains).
    pub chain: Network,
    /// Files (or directories of blk*.dat files, read in numeric order) to validate, in order.
    pub files: Vec<PathBuf>,
    /// Input format (powkit chains: blk only).
    pub format: Format,
    /// Where Bitcoin headers are hashed (auto: a hardware GPU when present, else CPU threads).
    pub backend: Backend,
    /// GPU adapter index (`None`: the default adapter).
    pub adapter: Option<usize>,
    /// Hashing threads for Bitcoin chains (`None`: all cores; clamped to 1..=1024).
    pub threads: Option<usize>,
    /// The clock for the 2-hour future-time limit, Unix seconds (`None`: the system clock).
    pub now: Option<i64>,
    /// Check each Bitcoin block or header alone (every rule that needs no earlier block).
    pub no_context: bool,
    /// Skip the proof-of-work check (Bitcoin chains).
    pub no_pow: bool,
    /// Most Bitcoin blocks held while waiting for a parent that has not arrived.
    pub orphan_limit: usize,
    /// Most blocks kept on side branches (block-tree entries, about 150 bytes each; block bytes are
    /// read back from their files). Past it, validation stops with a malformed-input error.
    pub side_limit: usize,
    /// Bitcoin Core's `-assumevalid`: the scripts of this block and its ancestors are not run
    /// (every other rule still is). `None`: every script runs.
    pub assume_valid: Option<BlockHash>,
    /// The UTXO cache's size, MiB (Core's `-dbcache`); past it the cache is written to disk.
    pub dbcache_mib: usize,
    /// Where the on-disk UTXO set and undo data go (`None`: a temporary directory, removed after).
    pub utxo_dir: Option<PathBuf>,
    /// Bitcoin blocks: check headers and block rules only (no UTXO set, no scripts).
    pub no_utxo: bool,
    /// After validating, run every checked script again on all threads with nothing else to do,
    /// and report that rate (the ceiling full validation is measured against).
    pub script_ceiling: bool,
    /// Read every file through this obfuscation key (`None`: a Core blocks directory's `xor.dat`
    /// for its `blk?????.dat` files, other files plain).
    pub xor_key: Option<xor::XorKey>,
}

/// A record that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invalid {
    /// Its height, when known.
    pub height: Option<u32>,
    /// Its block hash (display order).
    pub hash: String,
    /// The file.
    pub file: String,
    /// Byte offset of the record in the file (for hex input: the line).
    pub offset: u64,
    /// The rule function that failed.
    pub rule: String,
    /// Bitcoin Core's reject reason (what `submitblock` answers), e.g. `bad-txns-inputs-missingorspent`.
    pub reason: String,
    /// What is wrong, in a sentence (with Bitcoin Core's reject reason first).
    pub message: String,
    /// The record's parent, to place a context-free failure at its height when it extends the tip.
    #[serde(skip)]
    pub prev: Option<BlockHash>,
}

/// Input that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Malformed {
    /// The file.
    pub file: String,
    /// Offset of the record.
    pub offset: u64,
    /// Why (the decode error names the byte within the record).
    pub message: String,
}

/// Why validation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A rule failed.
    Invalid(Box<Invalid>),
    /// The input is not a block or header.
    Malformed(Box<Malformed>),
}

/// Running totals.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Blocks checked.
    pub blocks: u64,
    /// Headers checked (every block has one; header-only records too).
    pub headers: u64,
    /// Transactions checked.
    pub transactions: u64,
    /// Blocks left on side branches at the end (stale forks: less work than the best chain).
    pub stale_blocks: u64,
    /// Times a heavier branch replaced the active chain (blocks disconnected, others connected).
    pub reorgs: u64,
    /// Most blocks disconnected by one reorg.
    pub max_reorg_depth: u32,
    /// Records whose block was already known (read again), ignored.
    pub duplicates: u64,
    /// Height of the tip (contextual mode).
    pub best_height: Option<u32>,
    /// The tip's hash.
    pub tip: Option<String>,
    /// Chain work up to the tip, 64 hex digits.
    pub chainwork: String,
}

/// The summary of a run, for either chain family (`powkit validate --json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct ValidateReport {
    /// True when everything checked is valid.
    pub valid: bool,
    /// The chain.
    pub chain: String,
    /// Totals and the tip.
    #[serde(flatten)]
    pub stats: Stats,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Headers per second.
    pub headers_per_second: f64,
    /// Blocks per second.
    pub blocks_per_second: f64,
    /// Transactions per second.
    pub transactions_per_second: f64,
    /// What hashed the headers.
    pub backend: String,
    /// Whether every record was checked alone.
    pub no_context: bool,
    /// What is not checked.
    pub not_checked: &'static str,
    /// The state root after the last block (powkit chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_root: Option<crate::ledger::StateRoot>,
    /// Accounts in the state (powkit chains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accounts: Option<usize>,
    /// The first invalid record, if any.
    pub invalid: Option<Invalid>,
    /// The first malformed record, if any.
    pub malformed: Option<Malformed>,
    /// blk bytes skipped because they could not be framed (junk, zero padding, a cut-off last
    /// record), as Bitcoin Core's reader skips them.
    pub skipped: read::Skipped,
    /// Full validation of Bitcoin blocks: the UTXO set at the tip, as Bitcoin Core's
    /// `gettxoutsetinfo` reports it (`None` when not fully validated or not valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utxo: Option<crate::state::utxo::UtxoStats>,
    /// Full validation of Bitcoin blocks: the script checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scripts: Option<ScriptReport>,
    /// Peak resident memory of the process, bytes (Linux `VmHWM`; `None` elsewhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

/// The script checks of a full validation.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptReport {
    /// Inputs whose scripts Bitcoin Core's interpreter ran.
    pub inputs_checked: u64,
    /// Inputs skipped under `--assume-valid`.
    pub inputs_assumed_valid: u64,
    /// Inputs checked per second over the whole run (wall time).
    pub inputs_per_second: f64,
    /// `--assume-valid`: the block, and whether it was found in the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assume_valid: Option<String>,
    /// `--script-ceiling`: the same checks on all threads with nothing else to do, inputs/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_inputs_per_second: Option<f64>,
    /// Blocks connected to and disconnected from the UTXO set.
    pub blocks_connected: u64,
    /// Blocks disconnected by reorgs.
    pub blocks_disconnected: u64,
}

/// Peak resident memory of this process, bytes, from `/proc/self/status` (`VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl ValidateReport {
    /// The `(invalid, malformed)` pair of a run's stop.
    fn split_stop(stop: Option<Stop>) -> (Option<Invalid>, Option<Malformed>) {
        match stop {
            Some(Stop::Invalid(i)) => (Some(*i), None),
            Some(Stop::Malformed(m)) => (None, Some(*m)),
            None => (None, None),
        }
    }
}

/// Counts of a run in progress, handed to [`run`]'s callback. `elapsed` is the time since the
/// run's clock started (after the files were listed and the hasher opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A Bitcoin chain, at most every 2 s: headers and blocks linked so far.
    Bitcoin {
        /// Headers linked.
        headers: u64,
        /// Blocks linked.
        blocks: u64,
        /// Time since the start.
        elapsed: Duration,
    },
    /// A powkit chain, at most every 2 s: the tip's height and the transactions connected.
    Powkit {
        /// The tip's height.
        height: u32,
        /// Transactions connected, coinbases included.
        transactions: u64,
        /// Time since the start.
        elapsed: Duration,
    },
    /// The input is done (sent once, after the last count, before the outcome is known).
    Done {
        /// Time since the start.
        elapsed: Duration,
    },
}

/// Why a run could not produce a report (for the CLI: exit code 2). Each message is one line for
/// the user.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// powkit chains are read from blk files only.
    #[error("--chain {0}: powkit chains are validated from blk files")]
    Format(&'static str),
    /// The requested hasher could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A path could not be listed (an unreadable directory, or one without blk files).
    #[error(transparent)]
    Paths(#[from] ReadError),
    /// The input failed part-way: unreadable bytes (`unreadable input: ...`, naming the file and
    /// where), a GPU hashing failure, or an internal error.
    #[error("{0}")]
    Input(String),
    /// A block could not be decoded (`chain import`: `MALFORMED block at FILE offset N: ...`).
    #[error("{0}")]
    Malformed(String),
    /// The data directory's store failed (`chain import`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The clock for the future-time limit: `now`, else the system clock (Unix seconds).
pub fn now_or_clock(now: Option<i64>) -> i64 {
    now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    })
}

/// Validates `opts.files` as `opts.chain` (a powkit chain by [`powkit::run`], a Bitcoin chain by
/// [`bitcoin::run`]) and returns the report; an invalid or malformed record is a report, not an
/// error. `progress` gets counts at most every 2 s, then [`Progress::Done`] once.
///
/// # Errors
/// A format the chain is not read in, a backend that cannot open, paths that
/// cannot be listed, or input that fails part-way ([`ValidateError`]).
pub fn run(
    opts: &ValidateOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ValidateReport, ValidateError> {
    // The progress reports (at most every 2 s) also set the `powkit_validate_*` metrics (no-ops
    // without `--metrics`), so a long import can be watched from Prometheus at no cost per block.
    let progress = &mut |p: Progress| {
        record_progress(&p);
        progress(p)
    };
    match opts.chain {
        Network::Ledger(lc) => powkit::run(opts, lc.params(), now_or_clock(opts.now), progress),
        Network::Bitcoin(chain) => bitcoin::run(opts, chain, progress),
    }
}

/// Sets the `powkit_validate_*` metrics from a progress report (crate::metrics).
fn record_progress(p: &Progress) {
    use crate::metrics as m;
    match *p {
        Progress::Bitcoin { headers, blocks, elapsed } => {
            ::metrics::counter!(m::VALIDATE_HEADERS).absolute(headers);
            ::metrics::counter!(m::VALIDATE_BLOCKS).absolute(blocks);
            ::metrics::gauge!(m::VALIDATE_ELAPSED).set(elapsed.as_secs_f64());
        }
        Progress::Powkit { height, transactions, elapsed } => {
            ::metrics::counter!(m::VALIDATE_BLOCKS).absolute(height as u64);
            ::metrics::counter!(m::VALIDATE_TRANSACTIONS).absolute(transactions);
            ::metrics::gauge!(m::VALIDATE_ELAPSED).set(elapsed.as_secs_f64());
        }
        Progress::Done { elapsed } => {
            ::metrics::gauge!(m::VALIDATE_DONE).set(1.0);
            ::metrics::gauge!(m::VALIDATE_ELAPSED).set(elapsed.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The progress reports set the `powkit_validate_*` metrics (checked with a recorder local to
    /// this thread, rendered as Prometheus text).
    #[test]
    fn progress_reports_set_the_validate_metrics() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            let s = Duration::from_secs(2);
            record_progress(&Progress::Bitcoin { headers: 1000, blocks: 10, elapsed: s });
            record_progress(&Progress::Bitcoin { headers: 5000, blocks: 50, elapsed: 2 * s });
            record_progress(&Progress::Powkit { height: 70, transactions: 900, elapsed: 3 * s });
            record_progress(&Progress::Done { elapsed: 4 * s });
        });
        let text = handle.render();
        for line in [
            "powkit_validate_headers_total 5000",
            "powkit_validate_blocks_total 70",
            "powkit_validate_transactions_total 900",
            "powkit_validate_elapsed_seconds 8",
            "powkit_validate_input_done 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
}
