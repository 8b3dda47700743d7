//! The command-line front end: clap definitions, and one module per subcommand whose `run` returns
//! a result struct that is printed as text or JSON. `main.rs` only parses and dispatches here.

pub mod bench;
pub mod chain;
pub mod engine;
pub mod gpu;
pub mod ledger;
pub mod mine;
pub mod node;
pub mod plot;
pub mod pool;
pub mod sigs;
pub mod solo;
pub mod validate;

use std::fmt;

use clap::{Parser, Subcommand};

pub use crate::backend::Backend;
pub use engine::{EngineArgs, SearchEngineArgs};

/// powkit: fast, trustworthy proof-of-work on ordinary hardware.
#[derive(Parser, Debug)]
#[command(name = "powkit", version, about, long_about = None)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Measure double-SHA-256 nonce-search speed per backend and implementation.
    Bench(bench::BenchArgs),
    /// Search a nonce range of an 80-byte header for hashes that meet a target.
    Mine(Box<mine::MineArgs>),
    /// GPU adapters.
    #[command(subcommand)]
    Gpu(gpu::GpuCommand),
    /// Bulk-validate imported chains (blk files, raw headers, hex).
    Validate(validate::ValidateArgs),
    /// Chain tools: new chain specs, test chains, import and export.
    #[command(subcommand)]
    Chain(chain::ChainCommand),
    /// Bulk-verify Ed25519 signatures (ZIP-215 rules) from a JSON-lines file.
    VerifySigs(sigs::VerifySigsArgs),
    /// Keys for powkit chains.
    #[command(subcommand)]
    Key(ledger::KeyCommand),
    /// Transactions for powkit chains.
    #[command(subcommand)]
    Tx(ledger::TxCommand),
    /// Run a node: P2P sync, fork choice, replicated state, mempool, mining, JSON-RPC.
    Node(node::NodeArgs),
    /// A solo pool for Bitcoin: a Stratum job server on a bitcoind's getblocktemplate.
    Pool(pool::PoolArgs),
    /// Call a running node's JSON-RPC (e.g. `powkit rpc --datadir DIR getblockchaininfo`).
    Rpc(node::RpcArgs),
    /// Make a JSON-RPC user for `powkit node --rpcauth` (prints the entry and a new password).
    RpcAuth(node::RpcAuthArgs),
}

/// A command's failure: the exit code and one clear line for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    /// Process exit code (2: bad input or unsupported request).
    pub code: i32,
    /// The message, without the "error: " prefix.
    pub message: String,
}

impl CliError {
    /// Bad input (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError { code: 2, message: message.into() }
    }
}

impl From<crate::backend::BackendError> for CliError {
    fn from(e: crate::backend::BackendError) -> CliError {
        CliError::usage(e.0)
    }
}

/// `--metrics ADDR` (IP:PORT, or PORT for loopback): serves Prometheus text at `/metrics` until the
/// returned server is dropped, and says where on stderr (`metrics: http://ADDR/metrics`, the port
/// resolved when 0 was asked). `None` when the flag is absent: no recorder, every metric a no-op.
pub(crate) fn start_metrics(addr: Option<&str>) -> Result<Option<crate::metrics::MetricsServer>, CliError> {
    let Some(addr) = addr else { return Ok(None) };
    let addr = crate::metrics::parse_listen(addr).map_err(|e| CliError::usage(format!("--metrics {e}")))?;
    let server = crate::metrics::serve(addr, None).map_err(|e| CliError { code: 3, message: e })?;
    eprintln!("metrics: http://{}/metrics", server.address());
    Ok(Some(server))
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Bench(a) => bench::main(&a),
        Command::Mine(a) => mine::main(&a),
        Command::Gpu(c) => gpu::main(&c),
        Command::Validate(a) => validate::main(&a),
        Command::Chain(c) => chain::main(&c),
        Command::VerifySigs(a) => sigs::main(&a),
        Command::Key(c) => ledger::key_main(&c),
        Command::Tx(c) => ledger::tx_main(&c),
        Command::Node(a) => node::main(&a),
        Command::Pool(a) => pool::main(&a),
        Command::Rpc(a) => node::rpc_main(&a),
        Command::RpcAuth(a) => node::rpc_auth_main(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("powkit: error: {e}");
            e.code
        }
    }
}

/// Formats a rate with an SI prefix: `19.03 MH/s`.
pub fn fmt_rate(per_second: f64) -> String {
    let (v, p) = if per_second >= 1e9 {
        (per_second / 1e9, "G")
    } else if per_second >= 1e6 {
        (per_second / 1e6, "M")
    } else if per_second >= 1e3 {
        (per_second / 1e3, "k")
    } else {
        (per_second, "")
    };
    format!("{v:.2} {p}H/s")
}
