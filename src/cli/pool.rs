//! `powkit pool`: a solo pool for Bitcoin. A Stratum v1 job server ([`crate::stratum::server`])
//! whose templates come from a bitcoind's `getblocktemplate` ([`crate::bitcoind::GbtSource`]): any
//! Stratum miner (cpuminer, cgminer, an ASIC, `powkit mine --pool`) connects, and a share that
//! meets the network target is submitted to bitcoind with `submitblock`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{fmt_rate, CliError};
use crate::bitcoind::{script_from_hex, Auth, GbtConfig, GbtSource, Payout};
use crate::stratum::server::{Server, ServerConfig, ServerStats};

/// Flags of `powkit pool`.
#[derive(Args, Debug, Clone)]
pub struct PoolArgs {
    /// The bitcoind whose getblocktemplate feeds the jobs (http://HOST:PORT; plain HTTP).
    #[arg(long, value_name = "URL")]
    pub bitcoind: String,
    /// bitcoind's cookie file (DATADIR/[NETWORK/].cookie).
    #[arg(long, value_name = "FILE", conflicts_with = "rpc_user")]
    pub rpc_cookie: Option<PathBuf>,
    /// RPC user (bitcoind's -rpcuser or an -rpcauth user).
    #[arg(long, requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// RPC password.
    #[arg(long, requires = "rpc_user", allow_hyphen_values = true)]
    pub rpc_password: Option<String>,
    /// The coinbase pays this scriptPubKey (hex).
    #[arg(long, value_name = "HEX", conflicts_with = "coinbase_address", required_unless_present = "coinbase_address")]
    pub coinbase_script: Option<String>,
    /// The coinbase pays this address (base58check P2PKH/P2SH or bech32/bech32m, of the node's network).
    #[arg(long, value_name = "ADDR")]
    pub coinbase_address: Option<String>,
    /// Where miners connect: IP:PORT, or PORT for 127.0.0.1:PORT (loopback unless an address is given).
    #[arg(long, default_value = "127.0.0.1:3333", value_name = "ADDR")]
    pub stratum: String,
    /// The difficulty a new connection starts at (default: the network's, at most 1).
    #[arg(long, value_name = "D")]
    pub difficulty: Option<f64>,
    /// The share interval variable difficulty aims at, per connection (seconds).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub share_interval: f64,
    /// Connections held at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_clients: usize,
    /// How often to check the node's tip when it offers no long poll (seconds).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub poll_seconds: f64,
    /// A statistics line this often (seconds; 0: only at the end).
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub stats_interval: f64,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Statistics as JSON: one object per line while running, the last one at the end.
    #[arg(long)]
    pub json: bool,
    /// Log level: error, warn, info, debug, trace (default info; or RUST_LOG).
    #[arg(long)]
    pub log: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, or PORT for 127.0.0.1:PORT; off by
    /// default). The names: docs/METRICS.md.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Serve the live dashboard's pool view at http://ADDR/ (IP:PORT, or PORT for 127.0.0.1:PORT;
    /// off by default): workers, hash and share rates, rejections; read-only, nothing fetched.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
}

/// The RPC credentials and payout from the flags of `powkit pool` and `powkit mine --node`.
pub(super) fn auth_and_payout(
    cookie: &Option<PathBuf>,
    user: &Option<String>,
    password: &Option<String>,
    script: &Option<String>,
    address: &Option<String>,
    flag: &str,
) -> Result<(Auth, Payout), CliError> {
    let auth = match (cookie, user, password) {
        (Some(c), _, _) => Auth::Cookie(c.clone()),
        (None, Some(u), Some(p)) => Auth::UserPass { user: u.clone(), password: p.clone() },
        _ => return Err(CliError::usage(format!("{flag} needs --rpc-cookie FILE or --rpc-user U --rpc-password P"))),
    };
    let payout = match (script, address) {
        (Some(h), _) => Payout::Script(script_from_hex(h).map_err(|e| CliError::usage(e.to_string()))?),
        (None, Some(addr)) => Payout::Address(addr.clone()),
        (None, None) => {
            return Err(CliError::usage(format!("{flag} needs --coinbase-script HEX or --coinbase-address ADDR")))
        }
    };
    Ok((auth, payout))
}

fn seconds(v: f64, flag: &str, range: std::ops::RangeInclusive<f64>) -> Result<Duration, CliError> {
    if !(v.is_finite() && range.contains(&v)) {
        return Err(CliError::usage(format!("{flag} must be between {} and {}", range.start(), range.end())));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The listening address from `--stratum`.
fn listen_addr(s: &str) -> Result<std::net::SocketAddr, CliError> {
    match s.parse::<u16>() {
        Ok(port) => Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => {
            s.parse().map_err(|_| CliError::usage(format!("--stratum {s:?}: expected IP:PORT or PORT (loopback)")))
        }
    }
}

fn totals(s: &ServerStats) -> (u64, u64, u64, f64) {
    let accepted = s.workers.values().map(|w| w.accepted).sum();
    let rejected = s.workers.values().map(|w| w.rejected.values().sum::<u64>()).sum();
    let stale = s.workers.values().map(|w| w.stale).sum();
    let rate = s.workers.values().map(|w| w.hashrate).sum();
    (accepted, rejected, stale, rate)
}

fn print_stats(s: &ServerStats, json: bool) {
    if json {
        println!("{}", serde_json::to_string(s).expect("serializable"));
        return;
    }
    let (accepted, rejected, stale, rate) = totals(s);
    println!(
        "pool: height {}, {} client(s) ({} subscribed), shares {accepted} accepted / {rejected} rejected ({stale} stale), \
         {} block(s), implied {}",
        s.height.map_or_else(|| "-".into(), |h| h.to_string()),
        s.clients,
        s.subscribed,
        s.blocks,
        fmt_rate(rate)
    );
}

/// `powkit pool`: runs until interrupted (or `--duration`); exit 0, 2 on bad flags, 3 when bitcoind
/// cannot be used or the address cannot be bound.
pub fn main(a: &PoolArgs) -> Result<i32, CliError> {
    super::node::init_logging(a.log.as_deref())?;
    let (auth, payout) = auth_and_payout(
        &a.rpc_cookie,
        &a.rpc_user,
        &a.rpc_password,
        &a.coinbase_script,
        &a.coinbase_address,
        "powkit pool",
    )?;
    let poll = seconds(a.poll_seconds, "--poll-seconds", 0.05..=600.0)?;
    let share_interval = seconds(a.share_interval, "--share-interval", 0.1..=3600.0)?;
    let stats_every = seconds(a.stats_interval, "--stats-interval", 0.0..=86_400.0)?;
    let duration = a.duration.map(|d| seconds(d, "--duration", 0.0..=1e9)).transpose()?;
    if let Some(d) = a.difficulty {
        crate::stratum::share_target(d).map_err(|e| CliError::usage(format!("--difficulty: {e}")))?;
    }
    if a.max_clients == 0 {
        return Err(CliError::usage("--max-clients must be at least 1"));
    }
    let addr = listen_addr(&a.stratum)?;
    let cfg = GbtConfig { url: a.bitcoind.clone(), auth, payout, poll, warmup_wait: Duration::from_secs(60) };
    let source = GbtSource::connect(&cfg).map_err(|e| match e {
        crate::bitcoind::SourceError::Address(e) => CliError::usage(e.to_string()),
        e => CliError { code: 3, message: e.to_string() },
    })?;
    let server_cfg = ServerConfig {
        initial_difficulty: a.difficulty,
        share_interval,
        max_clients: a.max_clients,
        poll,
        ..ServerConfig::default()
    };
    let dashboard_addr = a
        .dashboard
        .as_deref()
        .map(|d| crate::httpd::parse_listen(d).map_err(|e| CliError::usage(format!("--dashboard {e}"))))
        .transpose()?;
    let _metrics = super::start_metrics(a.metrics.as_deref())?;
    let server =
        Arc::new(Server::start(addr, Arc::new(source), server_cfg).map_err(|e| CliError { code: 3, message: e })?);
    eprintln!("pool: Stratum on stratum+tcp://{} for {}", server.address(), a.bitcoind);
    let dashboard = crate::stratum::dashboard::PoolDashboard::new(server.clone());
    let _dashboard_server = match dashboard_addr {
        Some(addr) => {
            let l = dashboard.serve(addr).map_err(|e| CliError { code: 3, message: e })?;
            eprintln!("dashboard: http://{}/", l.address());
            Some(l)
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let t0 = Instant::now();
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| t0.elapsed() < d) {
        std::thread::sleep(Duration::from_millis(100));
        if dashboard_addr.is_some() {
            dashboard.sample();
        }
        if !stats_every.is_zero() && last.elapsed() >= stats_every {
            last = Instant::now();
            print_stats(&server.stats(), a.json);
        }
    }
    print_stats(&server.stats(), a.json);
    Ok(0)
}
