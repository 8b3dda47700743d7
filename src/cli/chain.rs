//! `powkit chain`: `new` (a chain spec for a network of one's own), `generate` (valid chains for
//! tests and benchmarks), `import` (validated into a data directory) and `export`.

use std::io::BufWriter;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::CliError;
use crate::consensus::params::ledger::CONSENSUS_VERSION;
use crate::consensus::params::spec::{Allocation, ChainSpec};
use crate::consensus::{BitcoinNetwork, LedgerNetwork, LedgerParams, Network};
use crate::primitives::BlockHeader;

/// `powkit chain` subcommands.
#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Write a chain spec for a new powkit network (name, magic, chain id, spacing, half-life,
    /// limit, launch time, mined genesis); every command takes it as `--chain FILE`.
    New(NewArgs),
    /// Mine a valid chain from the genesis block: headers (raw 80-byte records) or blocks (blk format).
    Generate(GenerateArgs),
    /// Validate blocks (blk format) and store them in a data directory (powkit chains); resumes
    /// after the stored tip, so it can be stopped at any moment and run again.
    Import(ImportArgs),
    /// Write a data directory's main chain as a blk file.
    Export(ExportArgs),
}

/// Flags of `powkit chain new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The chain's name (1 to 32 characters a-z, 0-9, '-'; not a built-in chain's).
    #[arg(long)]
    pub name: String,
    /// The spec file to write (refused if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Network magic, 8 hex digits (default: the first 4 bytes of SHA-256("powkit/magic/" || name)).
    #[arg(long)]
    pub magic: Option<String>,
    /// Chain id signed into transfers (default: the first 4 bytes, little-endian, of
    /// SHA-256("powkit/chain-id/" || name)).
    #[arg(long)]
    pub chain_id: Option<u32>,
    /// Target seconds per block (1..=3600).
    #[arg(long, default_value_t = 30)]
    pub spacing: i64,
    /// ASERT half-life in seconds (2 to 10,000 spacings; default: 8 spacings, which a network of
    /// one CPU thread needs to reach its spacing within its first 100 blocks, docs/CONSENSUS.md).
    #[arg(long)]
    pub half_life: Option<i64>,
    /// Proof-of-work limit as compact bits, 8 hex digits (1d00ffff .. below 2^239; default
    /// powkit-regtest's 1e7fffff, about 2^17 hashes a block).
    #[arg(long, default_value = "1e7fffff")]
    pub pow_limit: String,
    /// Launch time, the genesis block's time (Unix seconds; default: now).
    #[arg(long)]
    pub launch_time: Option<u32>,
    /// An initial allocation, KEY:AMOUNT (a public key in hex, base units), held by the state
    /// after genesis; repeatable.
    #[arg(long = "allocate", value_name = "KEY:AMOUNT")]
    pub allocations: Vec<String>,
    /// Print the spec as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `powkit chain import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The chain: powkit, powkit-regtest, or a chain spec file (`powkit chain new`).
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
    /// The chain: powkit, powkit-regtest, or a chain spec file (`powkit chain new`).
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
    /// The chain: bitcoin-regtest (headers or blocks), powkit-regtest, powkit or a chain spec file
    /// (blocks with transfers).
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
        CliError::usage(format!(
            "--chain {network}: data directories hold powkit chains (powkit, powkit-regtest, spec files)"
        ))
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

/// The first 4 bytes of SHA-256(`domain` || `name`): default magic and chain id, distinct per name.
fn derived(domain: &str, name: &str) -> [u8; 4] {
    let d = crate::sha256::reference::sha256([domain.as_bytes(), name.as_bytes()].concat().as_slice());
    [d[0], d[1], d[2], d[3]]
}

/// `powkit chain new`: fills the spec, mines its genesis (the lowest nonce that meets the limit),
/// checks it as every `--chain FILE` will ([`ChainSpec::to_params`]) and writes it.
fn new_spec(a: &NewArgs) -> Result<i32, CliError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut spec = ChainSpec {
        consensus_version: CONSENSUS_VERSION,
        name: a.name.clone(),
        magic: a.magic.clone().unwrap_or_else(|| hex::encode(derived("powkit/magic/", &a.name))),
        chain_id: a.chain_id.unwrap_or_else(|| u32::from_le_bytes(derived("powkit/chain-id/", &a.name))),
        target_spacing: a.spacing,
        half_life: a.half_life.unwrap_or(8 * a.spacing),
        pow_limit: a.pow_limit.clone(),
        launch_time: a.launch_time.unwrap_or(now.min(u32::MAX as u64) as u32),
        genesis_nonce: 0,
        genesis_hash: String::new(),
        allocations: Vec::with_capacity(a.allocations.len()),
    };
    for x in &a.allocations {
        let (key, amount) = x
            .split_once(':')
            .and_then(|(k, v)| Some((k, v.parse::<u64>().ok()?)))
            .ok_or_else(|| CliError::usage(format!("--allocate {x:?}: expected KEY:AMOUNT (hex key, base units)")))?;
        spec.allocations.push(Allocation { key: key.to_string(), amount });
    }
    let bad = |e: crate::consensus::SpecError| CliError::usage(format!("powkit chain new: {}: {}", e.field, e.why));
    // Every field but the genesis first, so that a bad one is named before any mining.
    let genesis = spec.genesis().map_err(bad)?;
    let scanner = crate::sha256::CpuImpl::detect().scanner().map_err(|e| CliError::usage(e.to_string()))?;
    let g = crate::mine::mine_header(BlockHeader { nonce: 0, ..genesis.header }, scanner.as_ref())
        .ok_or_else(|| CliError::usage("no genesis nonce meets the limit; choose another launch time"))?;
    spec.genesis_nonce = g.nonce;
    spec.genesis_hash = g.block_hash().to_string();
    spec.to_params().map_err(bad)?;
    let json = serde_json::to_string_pretty(&spec).expect("a spec serializes");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a.out)
        .map_err(|e| CliError::usage(format!("{}: {e}", a.out.display())))?;
    std::io::Write::write_all(&mut f, format!("{json}\n").as_bytes())
        .map_err(|e| CliError { code: 2, message: format!("{}: {e}", a.out.display()) })?;
    if a.json {
        println!("{json}");
    } else {
        println!(
            "wrote chain spec {} to {}: magic {}, chain id {:#x}, spacing {} s, half-life {} s, limit {}, launch {}, {} allocations, genesis {}",
            spec.name,
            a.out.display(),
            spec.magic,
            spec.chain_id,
            spec.target_spacing,
            spec.half_life,
            spec.pow_limit,
            spec.launch_time,
            spec.allocations.len(),
            spec.genesis_hash
        );
    }
    Ok(0)
}

/// Runs a `chain` subcommand.
pub fn main(c: &ChainCommand) -> Result<i32, CliError> {
    let a = match c {
        ChainCommand::New(a) => return new_spec(a),
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
