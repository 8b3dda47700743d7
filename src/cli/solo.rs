//! `powkit mine --node URL ...`: solo mining on a bitcoind's `getblocktemplate`
//! ([`crate::mine::solo`] over [`crate::bitcoind::GbtSource`]).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::mine::MineArgs;
use super::{fmt_rate, CliError};
use crate::bitcoind::{GbtConfig, GbtSource};
use crate::mine::solo::{self, SoloOptions, SoloProgress};
use crate::mine::CancelToken;

/// The solo-mining flags of `powkit mine`.
#[derive(Args, Debug, Clone, Default)]
pub struct SoloArgs {
    /// Mine solo on this bitcoind's getblocktemplate (http://HOST:PORT; plain HTTP).
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// bitcoind's cookie file (DATADIR/[NETWORK/].cookie).
    #[arg(long, value_name = "FILE", requires = "node", conflicts_with = "rpc_user")]
    pub rpc_cookie: Option<PathBuf>,
    /// RPC user (bitcoind's -rpcuser or an -rpcauth user).
    #[arg(long, requires_all = ["node", "rpc_password"])]
    pub rpc_user: Option<String>,
    /// RPC password.
    #[arg(long, requires = "rpc_user", allow_hyphen_values = true)]
    pub rpc_password: Option<String>,
    /// The coinbase pays this scriptPubKey (hex).
    #[arg(long, value_name = "HEX", requires = "node", conflicts_with = "coinbase_address")]
    pub coinbase_script: Option<String>,
    /// The coinbase pays this address (base58check P2PKH/P2SH or bech32/bech32m, of the node's network).
    #[arg(long, value_name = "ADDR", requires = "node")]
    pub coinbase_address: Option<String>,
    /// Stop after this many blocks found (default: mine until interrupted).
    #[arg(long, value_name = "N", requires = "node")]
    pub blocks: Option<u64>,
    /// Without a long poll from the node: how often to check its tip, seconds.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS", requires = "node")]
    pub poll_seconds: f64,
}

fn config(a: &SoloArgs, url: &str) -> Result<GbtConfig, CliError> {
    let (auth, payout) = super::pool::auth_and_payout(
        &a.rpc_cookie,
        &a.rpc_user,
        &a.rpc_password,
        &a.coinbase_script,
        &a.coinbase_address,
        "--node",
    )?;
    if !(a.poll_seconds.is_finite() && (0.05..=600.0).contains(&a.poll_seconds)) {
        return Err(CliError::usage("--poll-seconds must be between 0.05 and 600"));
    }
    if a.blocks == Some(0) {
        return Err(CliError::usage("--blocks 0: nothing to mine"));
    }
    Ok(GbtConfig {
        url: url.to_string(),
        auth,
        payout,
        poll: Duration::from_secs_f64(a.poll_seconds),
        warmup_wait: Duration::from_secs(60),
    })
}

/// `powkit mine --node`: exit 0 when every block found was accepted, 1 when some were refused, 2
/// on bad input, 3 when the node cannot be used.
pub fn main(m: &MineArgs, url: &str) -> Result<i32, CliError> {
    let a = &m.solo;
    for (given, flag) in [
        (m.header.is_some(), "--header"),
        (m.bits.is_some(), "--bits"),
        (m.target.is_some(), "--target"),
        (m.count.is_some(), "--count"),
        (m.all, "--all"),
    ] {
        if given {
            return Err(CliError::usage(format!("{flag} does not go with --node (the node's template sets the work)")));
        }
    }
    let cfg = config(a, url)?;
    let threads = m.threads.unwrap_or_else(crate::mine::default_threads);
    if threads == 0 || threads > 1024 {
        return Err(CliError::usage("--threads must be between 1 and 1024"));
    }
    let source = GbtSource::connect(&cfg).map_err(|e| match e {
        crate::bitcoind::SourceError::Address(e) => CliError::usage(e.to_string()),
        e => CliError { code: 3, message: e.to_string() },
    })?;
    let (_api, status) = super::mine::start_api(m)?.unzip();
    let opts = SoloOptions {
        backend: m.engine.backend,
        adapter: m.engine.adapter,
        cpu_impl: m.search.cpu_impl.clone(),
        allow_software: m.search.gpu_allow_software,
        threads,
        blocks: a.blocks,
        status,
    };
    // Ctrl-C / SIGTERM end the run with its report.
    let cancel = CancelToken::new();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    {
        let (cancel, stop) = (cancel.clone(), stop.clone());
        std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) {
                cancel.cancel();
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        });
    }
    let tty = std::io::stderr().is_terminal();
    let last_line = std::sync::Mutex::new(0u64);
    let show = move |p: &SoloProgress| {
        let line = format!(
            "solo: height {}, {} block(s) found, {} accepted, {} hashes, {}",
            p.height,
            p.found,
            p.accepted,
            p.hashes,
            fmt_rate(p.hashes as f64 / p.elapsed.as_secs_f64().max(1e-9))
        );
        if tty {
            eprint!("\r{line}  ");
            let _ = std::io::stderr().flush();
        } else {
            let mut last = last_line.lock().unwrap_or_else(|e| e.into_inner());
            let s = p.elapsed.as_secs();
            if s >= *last + 10 {
                *last = s;
                eprintln!("{line}");
            }
        }
    };
    let r = solo::run(&source, &opts, &cancel, Some(&show)).map_err(|e| match e {
        solo::SoloError::Search(crate::mine::SearchError::Engines(e)) => e.into(),
        e => CliError { code: 3, message: e.to_string() },
    })?;
    if tty {
        eprintln!();
    }
    if m.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializable"));
    } else {
        for b in &r.blocks {
            match &b.reason {
                None => println!("block {} at height {} accepted ({} transactions)", b.hash, b.height, b.transactions),
                Some(why) => println!("block {} at height {} REFUSED: {why}", b.hash, b.height),
            }
        }
        println!(
            "{} block(s) found, {} accepted, {} refused; {} hashes in {:.3} s ({}) on {} templates from {}",
            r.blocks_found,
            r.blocks_accepted,
            r.blocks_rejected,
            r.hashes,
            r.seconds,
            fmt_rate(r.hashes_per_second),
            r.templates,
            r.source
        );
        for n in &r.notes {
            eprintln!("note: {n}");
        }
    }
    Ok(if r.blocks_rejected > 0 { 1 } else { 0 })
}
