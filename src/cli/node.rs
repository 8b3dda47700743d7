//! `powkit node` and `powkit rpc`: run a node; call a running node's JSON-RPC.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use super::{Backend, CliError};
use crate::consensus::Network;
use crate::node::config::{parse_backend, Settings};
use crate::node::rpc::{RpcAuth, RpcAuthEntry};

/// Flags of `powkit node` (each overrides `DATADIR/powkit.conf`).
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// powkit or powkit-regtest (default: the config file's, else powkit-regtest).
    #[arg(long)]
    pub chain: Option<Network>,
    /// The data directory (store, powkit.conf, node.json with the bound addresses).
    #[arg(long)]
    pub datadir: PathBuf,
    /// P2P address to listen on, IP:PORT (port 0: any free port), or `none`. Default 127.0.0.1:18633
    /// (regtest) / 127.0.0.1:8633.
    #[arg(long)]
    pub listen: Option<String>,
    /// A peer to keep connected to, IP:PORT (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
    /// JSON-RPC address, IP:PORT or `none`. Default 127.0.0.1:18632 (regtest) / 127.0.0.1:8632.
    /// Callers authenticate with the cookie the node writes at each start (DATADIR/.cookie, mode
    /// 0600) or an --rpcauth user. Beyond loopback only with --rpc-allow-remote and --rpcauth.
    #[arg(long)]
    pub rpc: Option<String>,
    /// A JSON-RPC user, USER:SALT$HASH as Bitcoin Core's rpcauth (make one with `powkit rpc-auth
    /// USER`); repeatable.
    #[arg(long = "rpcauth")]
    pub rpcauth: Vec<String>,
    /// Allow --rpc on an address beyond loopback (needs an --rpcauth user; plain HTTP, so only on
    /// a network you trust or behind a TLS proxy).
    #[arg(long)]
    pub rpc_allow_remote: bool,
    /// Mine on the tip (needs --miner-key).
    #[arg(long)]
    pub mine: bool,
    /// The key file whose account mined coinbases pay (`powkit key new --out FILE`).
    #[arg(long)]
    pub miner_key: Option<PathBuf>,
    // Not `EngineArgs`'s `--backend`: no default here (a flag overrides `powkit.conf`, which
    // overrides cpu), and no auto; `--threads` has no default for the same reason.
    /// Where the miner hashes: cpu, gpu or all.
    #[arg(long, value_parser = parse_backend)]
    pub backend: Option<Backend>,
    /// Miner CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seconds a misbehaving peer stays banned (default 600).
    #[arg(long)]
    pub ban_seconds: Option<u64>,
    /// Mempool limit in bytes (default 32 MiB).
    #[arg(long)]
    pub mempool_bytes: Option<usize>,
    /// New headers with no more chain work than our tip that one peer may send before it is banned
    /// as a spammer (default 4000).
    #[arg(long)]
    pub low_work_headers: Option<u64>,
    /// Log level: error, warn, info, debug, trace (default info; or RUST_LOG).
    #[arg(long)]
    pub log: Option<String>,
    /// Run a Stratum v1 job server on IP:PORT (or PORT: 127.0.0.1:PORT) for any Stratum miner
    /// (cpuminer, cgminer, `powkit mine --pool`); the blocks found pay --miner-key's account.
    #[arg(long)]
    pub stratum: Option<String>,
    /// With --stratum: the difficulty a new connection starts at (default: the network's, at most 1).
    #[arg(long, value_name = "D", requires = "stratum")]
    pub stratum_difficulty: Option<f64>,
    /// With --stratum: the share interval variable difficulty aims at, per connection (seconds,
    /// default 5).
    #[arg(long, value_name = "SECONDS", requires = "stratum")]
    pub stratum_share_interval: Option<f64>,
    /// Where block signatures are verified: cpu, gpu, all (both, split by measured speed) or auto
    /// (all with a hardware GPU, else the CPU; the default).
    #[arg(long, value_enum)]
    pub sig_backend: Option<Backend>,
    /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, or PORT for 127.0.0.1:PORT; off by
    /// default). The names: docs/METRICS.md.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Serve the live dashboard at http://ADDR/ (IP:PORT, or PORT for 127.0.0.1:PORT; off by
    /// default): read-only, every asset embedded, no network access needed.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
}

/// Flags of `powkit rpc`.
#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    /// The node's data directory: its cookie (DATADIR/.cookie) authenticates the call and, without
    /// --rpc, its DATADIR/node.json gives the address (as `bitcoin-cli -datadir`).
    #[arg(long)]
    pub datadir: Option<PathBuf>,
    /// The node's JSON-RPC address (default: DATADIR/node.json's, else 127.0.0.1:18632,
    /// powkit-regtest's).
    #[arg(long)]
    pub rpc: Option<String>,
    /// A cookie file to authenticate with (default DATADIR/.cookie).
    #[arg(long)]
    pub rpc_cookie_file: Option<PathBuf>,
    /// A user to authenticate as (a node's --rpcauth user), with --rpc-password.
    #[arg(long, requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// The --rpc-user's password.
    #[arg(long, requires = "rpc_user", allow_hyphen_values = true)]
    pub rpc_password: Option<String>,
    /// The method.
    pub method: String,
    /// Parameters: each parsed as JSON when it parses (numbers, true, objects), else a string.
    pub params: Vec<String>,
}

pub(super) fn init_logging(level: Option<&str>) -> Result<(), CliError> {
    let env = std::env::var("RUST_LOG").ok();
    let name = level.or(env.as_deref()).unwrap_or("info");
    let level: tracing::Level = name
        .parse()
        .map_err(|_| CliError::usage(format!("--log {name:?}: expected error, warn, info, debug or trace")))?;
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
    Ok(())
}

/// Runs the node until it is stopped.
pub fn main(a: &NodeArgs) -> Result<i32, CliError> {
    init_logging(a.log.as_deref())?;
    let file = Settings::from_file(&a.datadir).map_err(CliError::usage)?;
    let flags = Settings {
        chain: a.chain,
        listen: a.listen.clone(),
        peers: a.peers.clone(),
        rpc: a.rpc.clone(),
        rpcauth: a
            .rpcauth
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<RpcAuthEntry>, String>>()
            .map_err(CliError::usage)?,
        rpc_allow_remote: a.rpc_allow_remote.then_some(true),
        mine: a.mine.then_some(true),
        miner_key: a.miner_key.clone(),
        backend: a.backend,
        threads: a.threads,
        ban_seconds: a.ban_seconds,
        mempool_bytes: a.mempool_bytes,
        max_peers: None,
        low_work_headers: a.low_work_headers,
        stratum: a.stratum.clone(),
        stratum_difficulty: a.stratum_difficulty,
        stratum_share_interval: a.stratum_share_interval,
        sig_backend: a.sig_backend,
        dashboard: a.dashboard.clone(),
    };
    let cfg = flags.resolve(file, a.datadir.clone()).map_err(CliError::usage)?;
    let _metrics = super::start_metrics(a.metrics.as_deref())?;
    crate::node::run(cfg).map_err(CliError::usage)?;
    Ok(0)
}

/// Flags of `powkit rpc-auth`.
#[derive(Args, Debug, Clone)]
pub struct RpcAuthArgs {
    /// The user name.
    pub user: String,
    /// Print JSON: {"user", "password", "rpcauth"}.
    #[arg(long)]
    pub json: bool,
}

/// Prints a new `--rpcauth` entry for a user and its password (shown once; the node keeps only a
/// salted HMAC of it).
pub fn rpc_auth_main(a: &RpcAuthArgs) -> Result<i32, CliError> {
    if a.user.is_empty() || a.user.contains([':', '$']) || a.user.chars().any(char::is_whitespace) {
        return Err(CliError::usage(format!("user {:?}: must be non-empty, without ':', '$' or spaces", a.user)));
    }
    let (entry, password) = RpcAuthEntry::generate(&a.user);
    if a.json {
        println!("{}", serde_json::json!({"user": a.user, "password": password, "rpcauth": entry.to_string()}));
    } else {
        println!("rpcauth={entry}");
        println!("password={password}");
        eprintln!("Start the node with --rpcauth '{entry}' (or `rpcauth = {entry}` in powkit.conf);");
        eprintln!("call it with --rpc-user {} --rpc-password PASSWORD.", a.user);
    }
    Ok(0)
}

/// The address and credentials `powkit rpc` uses.
fn rpc_target(a: &RpcArgs) -> Result<(String, RpcAuth), CliError> {
    let addr = match (&a.rpc, &a.datadir) {
        (Some(r), _) => r.clone(),
        (None, Some(d)) => {
            let path = d.join("node.json");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CliError::usage(format!("{}: {e} (is a node running with this data directory?)", path.display()))
            })?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display())))?;
            v["rpc"]
                .as_str()
                .ok_or_else(|| CliError::usage(format!("{}: the node serves no JSON-RPC", path.display())))?
                .to_string()
        }
        (None, None) => "127.0.0.1:18632".to_string(),
    };
    let auth = match (&a.rpc_user, &a.rpc_password, &a.rpc_cookie_file, &a.datadir) {
        (Some(u), Some(p), _, _) => RpcAuth::new(u.clone(), p.clone()),
        (_, _, Some(f), _) => RpcAuth::from_cookie_file(f).map_err(CliError::usage)?,
        (_, _, None, Some(d)) => RpcAuth::from_datadir(d).map_err(CliError::usage)?,
        _ => {
            return Err(CliError::usage(
                "no credentials: give --datadir DIR (the node's cookie), --rpc-cookie-file FILE or --rpc-user and --rpc-password",
            ))
        }
    };
    Ok((addr, auth))
}

/// One JSON-RPC call; prints the result as JSON.
pub fn rpc_main(a: &RpcArgs) -> Result<i32, CliError> {
    let params: Vec<serde_json::Value> = a
        .params
        .iter()
        .map(|p| serde_json::from_str(p).unwrap_or_else(|_| serde_json::Value::String(p.clone())))
        .collect();
    let (addr, auth) = rpc_target(a)?;
    match crate::node::rpc::call_remote(&addr, &auth, &a.method, serde_json::Value::Array(params)) {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            Ok(0)
        }
        Err(e) => Err(CliError { code: 1, message: format!("{}: {e}", a.method) }),
    }
}
