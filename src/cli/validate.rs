//! `powkit validate`: bulk-validate imported chains. Flags become [`ValidateOptions`], the library's
//! [`crate::validate::run`] validates, and this module prints the progress lines and the report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::plot::{validate_svg, ValidateTrace};
use super::{CliError, EngineArgs};
use crate::consensus::Network;
use crate::primitives::BlockHash;
use crate::validate::read::Format;
use crate::validate::xor::XorKey;
use crate::validate::{Progress, ValidateOptions, ValidateReport};

/// Flags of `powkit validate`. `--backend` says where headers are hashed here (the CPU threads
/// still prepare and link), so its help is validate's own.
#[derive(Args, Debug, Clone)]
#[command(mut_arg("backend", |a| a.help("Where headers are hashed (auto: a hardware GPU when present, else CPU threads)")))]
pub struct ValidateArgs {
    /// Files to validate, in order. A directory is read as a Bitcoin Core blocks directory (its
    /// blk?????.dat files in number order, through its xor.dat key when it has one); a Core data
    /// directory stands for its blocks directory of --chain (DIR/blocks, DIR/regtest/blocks,
    /// DIR/testnet3/blocks).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The chain: bitcoin, bitcoin-testnet, bitcoin-regtest, powkit, powkit-regtest, or a powkit chain
    /// spec file (`powkit chain new`).
    #[arg(long, default_value = "bitcoin")]
    pub chain: Network,
    /// Input format.
    #[arg(long, value_enum, default_value = "blk")]
    pub format: Format,
    /// `--backend`, `--adapter`.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// The clock for the 2-hour future-time limit (Unix seconds; default: now).
    #[arg(long)]
    pub now: Option<i64>,
    /// Check each block or header alone (every rule that needs no earlier block).
    #[arg(long)]
    pub no_context: bool,
    /// Skip the proof-of-work check.
    #[arg(long)]
    pub no_pow: bool,
    /// Hashing threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Most blocks held while waiting for a parent that has not arrived.
    #[arg(long, default_value_t = 100_000)]
    pub orphan_limit: usize,
    /// Most blocks kept on side branches (stale forks, or a branch that may still win); about 150
    /// bytes each, block bytes are read back from their files when needed.
    #[arg(long, default_value_t = 1_000_000)]
    pub side_limit: usize,
    /// Skip the scripts of this block and its ancestors (Bitcoin Core's -assumevalid; display hex).
    /// Every other rule still runs.
    #[arg(long, value_name = "HASH")]
    pub assume_valid: Option<BlockHash>,
    /// UTXO cache size in MiB (Bitcoin Core's -dbcache); past it the cache is written to disk.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub dbcache: usize,
    /// Directory for the on-disk UTXO set and undo data (default: a temporary one, removed after).
    #[arg(long, value_name = "DIR")]
    pub utxo_dir: Option<PathBuf>,
    /// Bitcoin blocks: check headers and block rules only, without the UTXO set and scripts.
    #[arg(long)]
    pub no_utxo: bool,
    /// After a full validation, run every checked script again on all threads with nothing else
    /// to do and report that rate (the ceiling in docs/PERFORMANCE.md).
    #[arg(long)]
    pub script_ceiling: bool,
    /// Read every file through this obfuscation key (16 hex digits, the bytes of a Bitcoin Core
    /// blocks/xor.dat), for loose blk files copied out of a Core 28+ blocks directory. Given, it
    /// wins over any xor.dat; without it, a blocks directory's xor.dat applies to its blk files.
    #[arg(long, value_name = "HEX")]
    pub xor_key: Option<XorKey>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also draw the rate over the run by stage (headers/s, blocks/s, transactions/s against
    /// elapsed seconds, from the progress reports) in this SVG file, written after the report.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while validating (IP:PORT, or PORT for
    /// 127.0.0.1:PORT; off by default): the powkit_validate_* counts, set every progress report.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
}

impl ValidateArgs {
    /// The library's options for these flags.
    pub fn options(&self) -> ValidateOptions {
        ValidateOptions {
            chain: self.chain,
            files: self.paths.clone(),
            format: self.format,
            backend: self.engine.backend,
            adapter: self.engine.adapter,
            threads: self.threads,
            now: self.now,
            no_context: self.no_context,
            no_pow: self.no_pow,
            orphan_limit: self.orphan_limit,
            side_limit: self.side_limit,
            assume_valid: self.assume_valid,
            dbcache_mib: self.dbcache,
            utxo_dir: self.utxo_dir.clone(),
            no_utxo: self.no_utxo,
            script_ceiling: self.script_ceiling,
            xor_key: self.xor_key,
        }
    }
}

/// Prints a progress line to stderr: rewritten in place (`\r`) on a terminal, one line each
/// otherwise; at the end, a newline on a terminal when the run lasted long enough to print lines.
fn print_progress(p: Progress, tty: bool) {
    let line = match p {
        Progress::Bitcoin { headers, blocks, elapsed } => {
            let rate = headers as f64 / elapsed.as_secs_f64();
            format!("validate: {headers} headers, {blocks} blocks, {rate:.0} headers/s")
        }
        Progress::Powkit { height, transactions, elapsed } => {
            let rate = transactions as f64 / elapsed.as_secs_f64();
            format!("validate: height {height}, {transactions} transactions, {rate:.0} transactions/s")
        }
        Progress::Done { elapsed } => {
            if tty && elapsed >= Duration::from_secs(2) {
                eprintln!();
            }
            return;
        }
    };
    if tty {
        eprint!("\r{line}   ");
    } else {
        eprintln!("{line}");
    }
}

/// Skips listed in the text report (`--json` lists up to `read::SKIPS_LISTED`).
const SKIPS_PRINTED: usize = 5;

/// The text report's lines on skipped blk bytes: a count, then one line per skip up to
/// [`SKIPS_PRINTED`], then how many more there were. Nothing when nothing was skipped.
fn print_skipped(s: &crate::validate::read::Skipped) {
    if s.count == 0 {
        return;
    }
    println!(
        "skipped {} run(s) of unframed blk bytes, {} bytes in all (as Bitcoin Core's reader skips them):",
        s.count, s.bytes
    );
    for k in s.first.iter().take(SKIPS_PRINTED) {
        println!("  {} offset {}: {} bytes: {}", k.file, k.offset, k.bytes, k.why);
    }
    if s.count > SKIPS_PRINTED as u64 {
        println!("  ... and {} more (--json lists the first {})", s.count - SKIPS_PRINTED as u64, s.first.len());
    }
}

/// Runs the validation, with progress lines on stderr.
pub fn run(a: &ValidateArgs) -> Result<ValidateReport, CliError> {
    run_traced(a).map(|(r, _)| r)
}

/// Runs the validation, with progress lines on stderr, and keeps the progress counts for `--plot`.
fn run_traced(a: &ValidateArgs) -> Result<(ValidateReport, ValidateTrace), CliError> {
    let _metrics = super::start_metrics(a.metrics.as_deref())?;
    let tty = std::io::stderr().is_terminal();
    let mut trace = ValidateTrace::new();
    let r = crate::validate::run(&a.options(), &mut |p| {
        trace.record(p);
        print_progress(p, tty)
    })
    .map_err(|e| CliError::usage(e.to_string()))?;
    Ok((r, trace))
}

/// `powkit validate`: exit 0 valid, 1 invalid, 2 unreadable or malformed input, or an SVG for
/// `--plot` that cannot be written (after the report is printed).
pub fn main(a: &ValidateArgs) -> Result<i32, CliError> {
    let (r, trace) = run_traced(a)?;
    let code = report_main(a, &r);
    if let Some(path) = &a.plot {
        let svg = validate_svg(&trace, &r).map_err(|e| CliError::usage(format!("--plot: cannot draw: {e}")))?;
        super::plot::write(path, &svg)?;
    }
    Ok(code)
}

/// Prints the report (text or JSON) and returns the exit code its outcome calls for.
fn report_main(a: &ValidateArgs, r: &ValidateReport) -> i32 {
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializable"));
    } else {
        let st = &r.stats;
        println!(
            "{}: {} blocks, {} headers, {} transactions, {} bytes in {:.3} s",
            r.chain, st.blocks, st.headers, st.transactions, r.bytes, r.seconds
        );
        println!(
            "rates: {:.0} headers/s, {:.0} blocks/s, {:.0} transactions/s (hashing on {})",
            r.headers_per_second, r.blocks_per_second, r.transactions_per_second, r.backend
        );
        if let (Some(h), Some(tip)) = (st.best_height, &st.tip) {
            println!("best height {h}, tip {tip}, chain work {}", st.chainwork);
        }
        if let (Some(root), Some(n)) = (&r.state_root, r.accounts) {
            println!("state root {root} ({n} accounts)");
        }
        if st.reorgs > 0 || st.stale_blocks > 0 {
            println!(
                "{} block(s) on side branches, {} reorg(s) (deepest {} block(s))",
                st.stale_blocks, st.reorgs, st.max_reorg_depth
            );
        }
        if st.duplicates > 0 {
            println!("{} duplicate record(s) ignored", st.duplicates);
        }
        if let Some(u) = &r.utxo {
            let amount = u
                .total_amount
                .map_or("overflow".to_string(), |a| format!("{}.{:08}", a / 100_000_000, a % 100_000_000));
            println!(
                "UTXO set: {} outputs of {} transactions, {amount} BTC, hash_serialized_3 {}",
                u.txouts, u.transactions, u.hash_serialized_3
            );
        }
        if let Some(sc) = &r.scripts {
            println!(
                "scripts: {} inputs checked by Bitcoin Core's interpreter ({:.0}/s), {} assumed valid; {} blocks connected, {} disconnected",
                sc.inputs_checked, sc.inputs_per_second, sc.inputs_assumed_valid, sc.blocks_connected, sc.blocks_disconnected
            );
            if let Some(av) = &sc.assume_valid {
                println!("assume-valid: {av}");
            }
            if let Some(c) = sc.ceiling_inputs_per_second {
                println!(
                    "script ceiling: {c:.0} inputs/s on all threads alone; full validation reached {:.3}x of it",
                    sc.inputs_per_second / c
                );
            }
        }
        println!("not checked: {}", r.not_checked);
        print_skipped(&r.skipped);
        if let Some(i) = &r.invalid {
            let h = i.height.map_or("?".to_string(), |h| h.to_string());
            println!(
                "INVALID at height {h}, block {}, {} offset {}: rule {}: {}",
                i.hash, i.file, i.offset, i.rule, i.message
            );
        }
        if let Some(m) = &r.malformed {
            println!("MALFORMED input: {} offset {}: {}", m.file, m.offset, m.message);
        }
        if r.valid {
            println!("valid");
        }
    }
    if r.malformed.is_some() {
        2
    } else if r.invalid.is_some() {
        1
    } else {
        0
    }
}
