//! `powkit mine`: search a nonce range of a given header, or mine for Stratum v1 pools
//! (`--pool stratum+tcp://HOST:PORT --user W`, see [`crate::mine::pool`]).

use std::io::{IsTerminal, Write};

use clap::Args;

use super::{fmt_rate, CliError, EngineArgs, SearchEngineArgs};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::mine::pool::{parse_pool_url, PoolConfig, PoolOptions, PoolProgress};
use crate::mine::{MineOptions, MineReport, Progress, RollProgress, SearchError, NONCE_SPACE};
use crate::primitives::{BlockHeader, CompactTarget, Target, HEADER_SIZE};

/// Flags of `powkit mine`.
#[derive(Args, Debug, Clone)]
pub struct MineArgs {
    /// The 80-byte header in hex (160 digits); its nonce field is ignored. Not with --pool or --node.
    #[arg(long, required_unless_present_any = ["pool", "node"], conflicts_with_all = ["pool", "node"])]
    pub header: Option<String>,
    /// A Stratum v1 pool, stratum+tcp://HOST:PORT; repeat for failover (tried in order).
    #[arg(long, value_name = "URL", conflicts_with = "node")]
    pub pool: Vec<String>,
    /// The worker name for the pools: once for all, or once per --pool in the same order.
    #[arg(long, requires = "pool")]
    pub user: Vec<String>,
    /// The worker password (default x): once for all, or once per --pool.
    #[arg(long, requires = "pool", allow_hyphen_values = true)]
    pub pass: Vec<String>,
    /// With --pool: stop after this many seconds.
    #[arg(long, requires = "pool")]
    pub duration: Option<f64>,
    /// With --pool: stop once this many shares have been answered (accepted or rejected).
    #[arg(long, requires = "pool")]
    pub shares: Option<u64>,
    /// With --pool: the first wait before redialing a lost pool, milliseconds (doubles up to 30 s).
    #[arg(long, default_value_t = 1000, requires = "pool")]
    pub retry_ms: u64,
    /// With --pool: failed dials in a row before the next --pool is tried.
    #[arg(long, default_value_t = 3, requires = "pool")]
    pub attempts_per_pool: u32,
    /// With --pool: the log level on stderr (error, warn, info, debug, trace; default info or RUST_LOG).
    #[arg(long, requires = "pool")]
    pub log: Option<String>,
    /// Target in compact form (8 hex digits, e.g. 1d00ffff); default: the header's own bits.
    #[arg(long, conflicts_with = "target")]
    pub bits: Option<String>,
    /// Target as 64 hex digits, most significant first.
    #[arg(long)]
    pub target: Option<String>,
    /// First nonce to try (decimal, or hex with 0x).
    #[arg(long, default_value = "0", value_parser = parse_u32)]
    pub start_nonce: u32,
    /// Nonces to try; without it the search runs to the end of the nonce space and then rolls the
    /// time field (see --max-time-rolls).
    #[arg(long, value_parser = parse_u64)]
    pub count: Option<u64>,
    /// Report every solution in the range, not only the first.
    #[arg(long)]
    pub all: bool,
    /// `--backend`, `--adapter`.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// `--cpu-impl`, `--gpu-allow-software`.
    #[command(flatten)]
    pub search: SearchEngineArgs,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Without --count: how many times the time field may be rolled forward one second after the
    /// nonce space runs out (7200 = Bitcoin's two-hour future limit).
    #[arg(long, default_value_t = 7200)]
    pub max_time_rolls: u32,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// With --pool or --node: answer cgminer's API (summary, devs, pools, version; read-only) on TCP
    /// at ADDR (IP:PORT, or PORT for 127.0.0.1:PORT; the flag alone: 127.0.0.1:4028, cgminer's).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:4028")]
    pub api_listen: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, or PORT for 127.0.0.1:PORT; off by
    /// default). The names: docs/METRICS.md.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// `--node` and its flags: solo mining on a bitcoind's getblocktemplate.
    #[command(flatten)]
    pub solo: super::solo::SoloArgs,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let s = s.trim().replace('_', "");
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("'{s}' is not a non-negative integer: {e}"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let v = parse_u64(s)?;
    u32::try_from(v).map_err(|_| format!("{v} does not fit in a 32-bit nonce (max 4294967295)"))
}

/// Parses the header given on the command line.
pub fn parse_header_hex(s: &str) -> Result<BlockHeader, CliError> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let clean = clean.strip_prefix("0x").unwrap_or(&clean);
    let bytes = hex::decode(clean).map_err(|e| CliError::usage(format!("--header is not hex: {e}")))?;
    if bytes.len() != HEADER_SIZE {
        return Err(CliError::usage(format!(
            "--header must be {HEADER_SIZE} bytes ({} hex digits), got {} bytes",
            2 * HEADER_SIZE,
            bytes.len()
        )));
    }
    BlockHeader::from_bytes(&bytes).map_err(|e| CliError::usage(format!("--header: {e}")))
}

/// The target from `--target`, `--bits`, or the header's bits.
pub fn parse_target(a: &MineArgs, header: &BlockHeader) -> Result<Target, CliError> {
    if let Some(t) = &a.target {
        let t = Target::from_be_hex(t).map_err(|e| CliError::usage(format!("--target: {e}")))?;
        if t.0.is_zero() {
            return Err(CliError::usage("--target: target is zero, no hash can meet it"));
        }
        return Ok(t);
    }
    let (bits, whose) = match &a.bits {
        Some(b) => {
            let b = b.trim().trim_start_matches("0x");
            if b.len() != 8 {
                return Err(CliError::usage(format!("--bits must be 8 hex digits, got '{b}'")));
            }
            let v = u32::from_str_radix(b, 16).map_err(|e| CliError::usage(format!("--bits is not hex: {e}")))?;
            (CompactTarget(v), "--bits")
        }
        None => (header.bits, "the header's bits"),
    };
    bits.to_target().map_err(|e| CliError::usage(format!("{whose}: {e}")))
}

/// Checks the flags and turns them into [`MineOptions`].
pub fn options(a: &MineArgs) -> Result<MineOptions, CliError> {
    let header = parse_header_hex(a.header.as_deref().ok_or_else(|| CliError::usage("--header is required"))?)?;
    let target = parse_target(a, &header)?;
    let threads = a.threads.unwrap_or_else(crate::mine::default_threads);
    if threads == 0 || threads > 1024 {
        return Err(CliError::usage("--threads must be between 1 and 1024"));
    }
    let start = a.start_nonce;
    match a.count {
        Some(0) => return Err(CliError::usage("--count 0: the nonce range is empty")),
        Some(count) if start as u64 + count > NONCE_SPACE => {
            return Err(CliError::usage(format!(
                "--start-nonce {start} --count {count} passes the end of the 32-bit nonce space \
                 (the last nonce is 4294967295); use a count of at most {}",
                NONCE_SPACE - start as u64
            )))
        }
        _ => {}
    }
    Ok(MineOptions {
        header,
        target,
        start_nonce: start,
        count: a.count,
        all: a.all,
        backend: a.engine.backend,
        adapter: a.engine.adapter,
        cpu_impl: a.search.cpu_impl.clone(),
        allow_software: a.search.gpu_allow_software,
        threads,
        max_time_rolls: a.max_time_rolls,
    })
}

/// Runs the search; `progress` sees periodic updates.
pub fn run(a: &MineArgs, progress: Option<RollProgress<'_>>) -> Result<MineReport, CliError> {
    crate::mine::run(&options(a)?, progress).map_err(|e| match e {
        SearchError::Engines(e) => e.into(),
        SearchError::Gpu(e) => CliError { code: 3, message: format!("GPU failed during the search: {e}") },
    })
}

/// `powkit mine`: exit 0 when found, 1 when the range holds no solution, 2 on bad input.
pub fn main(a: &MineArgs) -> Result<i32, CliError> {
    let _metrics = super::start_metrics(a.metrics.as_deref())?;
    if let Some(url) = &a.solo.node {
        return super::solo::main(a, url);
    }
    if !a.pool.is_empty() {
        return pool_main(a);
    }
    if a.api_listen.is_some() {
        return Err(CliError::usage(
            "--api-listen needs --pool or --node (a --header search ends when its range does)",
        ));
    }
    let tty = std::io::stderr().is_terminal();
    let show = move |p: &Progress, rolls: u32| {
        let pct = 100.0 * p.hashes as f64 / p.total.max(1) as f64;
        let rate = fmt_rate(p.hashes as f64 / p.elapsed.as_secs_f64().max(1e-9));
        let line = format!("mining: {:>6.2}% of range, {} hashes, {rate}, time rolls {rolls}", pct, p.hashes);
        if tty {
            eprint!("\r{line}  ");
            let _ = std::io::stderr().flush();
        } else if p.elapsed.as_secs().is_multiple_of(10) {
            eprintln!("{line}");
        }
    };
    let r = run(a, Some(&show))?;
    if tty && r.seconds >= 1.0 {
        eprintln!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializable"));
    } else {
        match (&r.solutions, r.found) {
            (Some(all), _) => {
                for s in all {
                    println!("nonce {} hash {}", s.nonce, s.hash);
                }
                println!("{} solution(s)", all.len());
            }
            (None, true) => {
                println!("found nonce {} hash {}", r.nonce.expect("found"), r.hash.as_deref().expect("found"));
                println!("header {}", r.header.as_deref().expect("found"));
            }
            (None, false) => println!("no solution in the range"),
        }
        if r.time_rolls > 0 {
            println!("time field rolled {} time(s)", r.time_rolls);
        }
        let on = match (&r.imp, &r.adapter) {
            (Some(i), Some(ad)) => format!(
                "cpu/{i} with {} thread(s) ({} nonces) + gpu '{ad}' ({} nonces)",
                r.threads,
                r.hashes - r.gpu_hashes,
                r.gpu_hashes
            ),
            (Some(i), None) => format!("cpu/{i} with {} thread(s)", r.threads),
            (None, Some(ad)) => format!("gpu '{ad}'"),
            (None, None) => "nothing".into(),
        };
        println!("searched {} nonces in {:.3} s ({}) on {on}", r.hashes, r.seconds, fmt_rate(r.hashes_per_second));
        for n in &r.notes {
            eprintln!("note: {n}");
        }
    }
    Ok(if r.found { 0 } else { 1 })
}

/// The pool options from the flags.
pub fn pool_options(a: &MineArgs) -> Result<PoolOptions, CliError> {
    let n = a.pool.len();
    let pick = |v: &[String], flag: &str, default: Option<&str>| -> Result<Vec<String>, CliError> {
        match v.len() {
            0 => default
                .map(|d| vec![d.to_string(); n])
                .ok_or_else(|| CliError::usage(format!("--pool needs {flag} (the worker name the pool credits)"))),
            1 => Ok(vec![v[0].clone(); n]),
            k if k == n => Ok(v.to_vec()),
            k => Err(CliError::usage(format!("{k} {flag} for {n} --pool: give one for all, or one per --pool"))),
        }
    };
    let users = pick(&a.user, "--user", None)?;
    let passes = pick(&a.pass, "--pass", Some("x"))?;
    let mut pools = Vec::with_capacity(n);
    for ((url, user), pass) in a.pool.iter().zip(users).zip(passes) {
        let address = parse_pool_url(url).map_err(|e| CliError::usage(format!("--pool {e}")))?;
        pools.push(PoolConfig { address, user, pass });
    }
    let threads = a.threads.unwrap_or_else(crate::mine::default_threads);
    if threads == 0 || threads > 1024 {
        return Err(CliError::usage("--threads must be between 1 and 1024"));
    }
    let duration = match a.duration {
        Some(d) if !(d.is_finite() && d > 0.0) => {
            return Err(CliError::usage(format!("--duration {d}: expected seconds above zero")))
        }
        d => d.map(Duration::from_secs_f64),
    };
    if a.shares == Some(0) {
        return Err(CliError::usage("--shares 0: nothing to wait for"));
    }
    if a.attempts_per_pool == 0 {
        return Err(CliError::usage("--attempts-per-pool must be at least 1"));
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    Ok(PoolOptions {
        pools,
        backend: a.engine.backend,
        adapter: a.engine.adapter,
        cpu_impl: a.search.cpu_impl.clone(),
        allow_software: a.search.gpu_allow_software,
        threads,
        duration,
        max_shares: a.shares,
        backoff_initial: Duration::from_millis(a.retry_ms.max(1)),
        attempts_per_pool: a.attempts_per_pool,
        stop,
        status: None,
    })
}

/// `--api-listen ADDR`: serves cgminer's API from the snapshot the miner will publish into the
/// returned status, and says where on stderr (`api: cgminer API on ADDR`). `None` without the flag.
pub(super) fn start_api(
    a: &MineArgs,
) -> Result<Option<(crate::mine::api::ApiServer, Arc<crate::mine::api::LiveStatus>)>, CliError> {
    let Some(addr) = &a.api_listen else { return Ok(None) };
    let addr = crate::httpd::parse_listen(addr).map_err(|e| CliError::usage(format!("--api-listen {e}")))?;
    let live = Arc::new(crate::mine::api::LiveStatus::default());
    let server = crate::mine::api::serve(addr, live.clone(), std::time::Instant::now())
        .map_err(|e| CliError { code: 3, message: e })?;
    eprintln!("api: cgminer API on {}", server.address());
    Ok(Some((server, live)))
}

/// `powkit mine --pool`: exit 0 after a run that got at least one share accepted (or none was
/// found), 1 when no pool answered or shares were submitted and none was accepted, 2 on bad input,
/// 3 when the GPU failed.
fn pool_main(a: &MineArgs) -> Result<i32, CliError> {
    let mut opts = pool_options(a)?;
    super::node::init_logging(a.log.as_deref())?;
    let (_api, live) = start_api(a)?.unzip();
    opts.status = live;
    let tty = std::io::stderr().is_terminal();
    let show = move |p: &PoolProgress| {
        let line = format!(
            "pool: {:.0} s, local {}, accepted {} rejected {} stale {}, implied {}, difficulty {}",
            p.seconds,
            fmt_rate(p.hashes_per_second),
            p.accepted,
            p.rejected,
            p.stale,
            fmt_rate(p.implied_hashes_per_second),
            p.difficulty
        );
        if tty {
            eprint!("\r{line}  ");
            let _ = std::io::stderr().flush();
        } else if (p.seconds as u64).is_multiple_of(10) {
            eprintln!("{line}");
        }
    };
    let r = crate::mine::pool::run(&opts, Some(&show)).map_err(|e| match e {
        SearchError::Engines(e) => e.into(),
        SearchError::Gpu(e) => CliError { code: 3, message: format!("GPU failed while mining: {e}") },
    })?;
    if tty {
        eprintln!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializable"));
    } else {
        println!("pool {} ({} session(s), {} resumed)", r.pool.as_deref().unwrap_or("-"), r.sessions, r.resumed);
        println!(
            "shares: {} accepted, {} rejected ({} stale), {} found stale and not sent, {} submitted",
            r.accepted,
            r.rejected,
            r.stale - r.stale_unsent,
            r.stale_unsent,
            r.submitted
        );
        for x in &r.rejected_by_reason {
            println!("  rejected {}: {} ({})", x.count, x.message, x.code);
        }
        for d in &r.devices {
            println!(
                "{}: {} local, {} implied by {} accepted share(s)",
                d.device,
                fmt_rate(d.hashes_per_second),
                fmt_rate(d.implied_hashes_per_second),
                d.accepted
            );
        }
        println!(
            "total: {} local, {} implied, {:.1} s; job switch median {:.2} ms, max {:.2} ms ({} samples)",
            fmt_rate(r.hashes_per_second),
            fmt_rate(r.implied_hashes_per_second),
            r.seconds,
            r.job_switch_ms.median,
            r.job_switch_ms.max,
            r.job_switch_ms.samples
        );
        for n in &r.notes {
            eprintln!("note: {n}");
        }
    }
    if r.sessions == 0 {
        eprintln!("powkit: no pool answered ({} failed dial(s)); see the log above", r.failed_dials);
        return Ok(1);
    }
    Ok(if r.submitted > 0 && r.accepted == 0 { 1 } else { 0 })
}
