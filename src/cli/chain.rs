//! `powkit chain generate`: valid chains for tests and benchmarks.

use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::CliError;
use crate::consensus::Chain;

/// `powkit chain` subcommands.
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Mine a valid chain from the genesis block: headers (raw 80-byte records) or blocks (blk format).
    Generate(GenerateArgs),
}

/// Flags of `powkit chain generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The chain: bitcoin-regtest (headers or blocks), powkit-regtest or powkit (blocks with transfers).
    #[arg(long, default_value = "bitcoin-regtest")]
    pub chain: String,
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

/// `chain generate` for powkit chains: blocks with signed transfers.
fn generate_ledger(a: &GenerateArgs, chain: crate::ledger::LedgerChain) -> Result<i32, CliError> {
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
    let mut follower = crate::ledger::generate::generate(params, n.max(1), a.txs_per_block, &mut w).map_err(io)?;
    std::io::Write::flush(&mut w).map_err(io)?;
    println!(
        "wrote {} blocks ({} transactions) of {} to {} in {:.2} s; tip {}, state root {}",
        n.max(1),
        follower.transactions,
        params.name,
        a.out.display(),
        t0.elapsed().as_secs_f64(),
        follower.tip,
        hex::encode(follower.state.root())
    );
    Ok(0)
}

/// Runs a `chain` subcommand.
pub fn main(c: &ChainCommand) -> Result<i32, CliError> {
    let ChainCommand::Generate(a) = c;
    if let Some(lc) = crate::ledger::LedgerChain::from_name(&a.chain) {
        return generate_ledger(a, lc);
    }
    let chain: Chain = a.chain.parse().map_err(CliError::usage)?;
    if chain != Chain::BitcoinRegtest {
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
            crate::chaingen::generate_headers(&params, n.max(1), &mut w).map_err(io)?;
            ("headers", n.max(1))
        }
        (None, Some(n)) => {
            crate::chaingen::generate_blocks(&params, n.max(1), a.txs_per_block, &mut w).map_err(io)?;
            ("blocks", n.max(1))
        }
        (None, None) => return Err(CliError::usage("give --headers N or --blocks N")),
    };
    std::io::Write::flush(&mut w).map_err(io)?;
    println!("wrote {n} {what} of {chain} to {} in {:.2} s", a.out.display(), t0.elapsed().as_secs_f64());
    Ok(0)
}
