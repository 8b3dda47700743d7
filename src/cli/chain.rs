//! `powkit chain`: `generate` (valid chains for tests and benchmarks), `import` (validated into a
//! data directory) and `export`.

use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::CliError;
use crate::consensus::{BitcoinNetwork, LedgerNetwork, LedgerParams, Network};

/// `powkit chain` subcommands.
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Mine a valid chain from the genesis block: headers (raw 80-byte records) or blocks (blk format).
    Generate(GenerateArgs),
    /// Validate blocks (blk format) and store them in a data directory (powkit chains); resumes
    /// after the stored tip, so it can be stopped at any moment and run again.
    Import(ImportArgs),
    /// Write a data directory's main chain as a blk file.
    Export(ExportArgs),
}

/// Flags of `powkit chain import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The chain: powkit or powkit-regtest.
    #[arg(long, default_value = "powkit")]
    pub chain: Network,
    /// The data directory (created if missing).
    #[arg(long)]
    pub datadir: PathBuf,
    /// blk files, in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The clock for the 2-hour future-time limit (Unix seconds; default: now).
    #[arg(long)]
    pub now: Option<i64>,
}

/// Flags of `powkit chain export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The chain: powkit or powkit-regtest.
    #[arg(long, default_value = "powkit")]
    pub chain: Network,
    /// The data directory.
    #[arg(long)]
    pub datadir: PathBuf,
    /// The blk file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Flags of `powkit chain generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The chain: bitcoin-regtest (headers or blocks), powkit-regtest or powkit (blocks with transfers).
    #[arg(long, default_value = "bitcoin-regtest")]
    pub chain: Network,
    /// Headers to write, genesis included (raw 80-byte records; validate with --format headers).
    #[arg(long, conflicts_with = "blocks", required_unless_present = "blocks")]
    pub headers: Option<u64>,
    /// Blocks to write, genesis included (blk format).
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Transfers per block besides the coinbase (with --blocks).
    #[arg(long, default_value_t = 0)]
    pub txs_per_block: usize,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

/// The parameters of a powkit `--chain`; a Bitcoin one is refused (data directories hold powkit
/// chains only).
fn ledger_chain(network: Network) -> Result<&'static LedgerParams, CliError> {
    network.ledger().map(|c| c.params()).ok_or_else(|| {
        CliError::usage(format!("--chain {network}: data directories hold powkit or powkit-regtest chains"))
    })
}

/// `powkit chain import`: each block is checked (every rule, its signatures batched) and committed
/// with its state changes in one store transaction ([`crate::validate::import::import`]); exit 0
/// when every block was stored, 1 at an invalid block (the blocks before it stay stored).
fn import(a: &ImportArgs) -> Result<i32, CliError> {
    let params = ledger_chain(a.chain)?;
    let now = crate::validate::now_or_clock(a.now);
    let r = crate::validate::import::import(params, &a.datadir, a.files.clone(), now)
        .map_err(|e| CliError::usage(e.to_string()))?;
    if let Some(i) = &r.invalid {
        let h = i.height.map_or("?".to_string(), |h| h.to_string());
        println!(
            "INVALID at height {h}, block {}, {} offset {}: rule {}: {}",
            i.hash, i.file, i.offset, i.rule, i.message
        );
        return Ok(1);
    }
    println!(
        "imported {} blocks ({} already stored) into {} in {:.2} s: height {} -> {}, tip {}, state root {}",
        r.added,
        r.skipped,
        a.datadir.display(),
        r.seconds,
        r.start,
        r.height,
        r.tip,
        r.state_root
    );
    Ok(0)
}

/// `powkit chain export`: the main chain, genesis first, in blk format.
fn export(a: &ExportArgs) -> Result<i32, CliError> {
    let params = ledger_chain(a.chain)?;
    let n = crate::validate::import::export(params, &a.datadir, &a.out).map_err(|e| CliError::usage(e.to_string()))?;
    println!("exported {n} blocks of {} to {}", params.name, a.out.display());
    Ok(0)
}

/// `chain generate` for powkit chains: blocks with signed transfers.
fn generate_ledger(a: &GenerateArgs, chain: LedgerNetwork) -> Result<i32, CliError> {
    let params = chain.params();
    let Some(n) = a.blocks else {
        return Err(CliError::usage(format!(
            "--chain {}: give --blocks N (powkit chains are written as blocks)",
            params.name
        )));
    };
    let f = std::fs::File::create(&a.out).map_err(|e| CliError::usage(format!("{}: {e}", a.out.display())))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let io = |e: std::io::Error| CliError { code: 2, message: format!("{}: {e}", a.out.display()) };
    let t0 = Instant::now();
    let mut follower = crate::generate::ledger::generate(params, n.max(1), a.txs_per_block, &mut w).map_err(io)?;
    std::io::Write::flush(&mut w).map_err(io)?;
    println!(
        "wrote {} blocks ({} transactions) of {} to {} in {:.2} s; tip {}, state root {}",
        n.max(1),
        follower.transactions,
        params.name,
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        follower.tip,
        follower.state.root()
    );
    Ok(0)
}

/// Runs a `chain` subcommand.
pub fn main(c: &ChainCommand) -> Result<i32, CliError> {
    let a = match c {
        ChainCommand::Generate(a) => a,
        ChainCommand::Import(a) => return import(a),
        ChainCommand::Export(a) => return export(a),
    };
    let chain = match a.chain {
        Network::Ledger(lc) => return generate_ledger(a, lc),
        Network::Bitcoin(chain) => chain,
    };
    if chain != BitcoinNetwork::BitcoinRegtest {
        return Err(CliError::usage(format!(
            "--chain {chain}: generating needs a target a CPU meets at once; use bitcoin-regtest"
        )));
    }
    let params = chain.params();
    let f = std::fs::File::create(&a.out).map_err(|e| CliError::usage(format!("{}: {e}", a.out.display())))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let t0 = Instant::now();
    let io = |e: std::io::Error| CliError { code: 2, message: format!("{}: {e}", a.out.display()) };
    let (what, n) = match (a.headers, a.blocks) {
        (Some(n), _) => {
            crate::generate::bitcoin::generate_headers(&params, n.max(1), &mut w).map_err(io)?;
            ("headers", n.max(1))
        }
        (None, Some(n)) => {
            crate::generate::bitcoin::generate_blocks(&params, n.max(1), a.txs_per_block, &mut w).map_err(io)?;
            ("blocks", n.max(1))
        }
        (None, None) => return Err(CliError::usage("give --headers N or --blocks N")),
    };
    std::io::Write::flush(&mut w).map_err(io)?;
    println!("wrote {n} {what} of {chain} to {} in {:.2} s", a.out.display(), t0.elapsed().as_secs_f64());
    Ok(0)
}
