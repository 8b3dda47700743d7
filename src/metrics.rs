//! Prometheus metrics (issue 16): every metric's name in one place, the recorder, and the
//! `/metrics` listener.
//!
//! Code records through the [`metrics`](::metrics) facade (`counter!`, `gauge!`, `histogram!`)
//! where the event happens. Without a recorder (the default: `--metrics` not given) each call is a
//! no-op on a global that is never set; with one ([`install`]) a counter increment is one atomic
//! add. Nothing is recorded per hash: the miners count per chunk or segment (milliseconds of work).
//!
//! Names follow Prometheus's conventions: the `powkit_` prefix, base units (seconds, bytes) in the
//! name, `_total` on counters. Labels hold small fixed sets (a reason, a backend, a message type,
//! an RPC method name from the node's own table); the only open-ended one is Stratum's `worker`,
//! bounded by [`MAX_WORKER_LABELS`].
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `powkit_chain_height` | gauge | | blocks on the active chain above genesis |
//! | `powkit_chain_headers` | gauge | | height of the best header known |
//! | `powkit_chain_tip_age_seconds` | gauge | | now minus the tip's timestamp |
//! | `powkit_chain_work` | gauge | | the tip's cumulative work (expected hashes, as a float) |
//! | `powkit_chain_reorgs_total` | counter | | tip changes that disconnected blocks |
//! | `powkit_chain_reorg_depth` | histogram | | blocks disconnected per reorg |
//! | `powkit_chain_blocks_connected_total` | counter | | blocks connected to the active chain |
//! | `powkit_chain_blocks_rejected_total` | counter | `reason` | blocks refused (the consensus rule, or `duplicate`, `orphan`, ...) |
//! | `powkit_chain_block_validation_seconds` | histogram | | time to accept one block (checks, state, store) |
//! | `powkit_chain_signatures_verified_total` | counter | `backend` | transfer signatures verified in accepted blocks |
//! | `powkit_net_peers` | gauge | `direction` (`inbound`, `outbound`) | connected peers |
//! | `powkit_net_bans_total` | counter | | peers banned for misbehaviour |
//! | `powkit_net_received_bytes_total` | counter | `type` | P2P bytes received, by message type |
//! | `powkit_net_sent_bytes_total` | counter | `type` | P2P bytes sent, by message type |
//! | `powkit_net_received_messages_total` | counter | `type` | P2P messages received |
//! | `powkit_net_sent_messages_total` | counter | `type` | P2P messages sent |
//! | `powkit_net_sync_progress_ratio` | gauge | | active height / best header height (1: in sync) |
//! | `powkit_mempool_transactions` | gauge | | transactions in the mempool |
//! | `powkit_mempool_bytes` | gauge | | their serialized size |
//! | `powkit_mempool_evictions_total` | counter | | transactions evicted to make room |
//! | `powkit_mempool_refused_total` | counter | `reason` | admissions refused |
//! | `powkit_rpc_calls_total` | counter | `method`, `outcome` (`ok`, `error`) | JSON-RPC calls answered |
//! | `powkit_rpc_call_seconds` | histogram | `method` | JSON-RPC latency, request read to answer |
//! | `powkit_mine_hashes_total` | counter | `backend` (`cpu`, `gpu`), `implementation` | nonces hashed |
//! | `powkit_mine_hash_rate` | gauge | | local hashes per second, last progress interval |
//! | `powkit_mine_blocks_found_total` | counter | | solutions meeting the network target |
//! | `powkit_mine_gpu_overflow_reruns_total` | counter | | GPU dispatches re-run for overflowing their result buffer |
//! | `powkit_mine_shares_accepted_total` | counter | | (miner side) shares the pool accepted |
//! | `powkit_mine_shares_rejected_total` | counter | `reason` | (miner side) shares the pool rejected |
//! | `powkit_mine_shares_stale_total` | counter | | (miner side) stale shares, sent or not |
//! | `powkit_stratum_clients` | gauge | | (server side) connected Stratum clients |
//! | `powkit_stratum_shares_accepted_total` | counter | `worker` | (server side) shares accepted |
//! | `powkit_stratum_shares_rejected_total` | counter | `reason` | (server side) shares rejected (stale included) |
//! | `powkit_stratum_shares_stale_total` | counter | | (server side) shares for a job no longer current |
//! | `powkit_stratum_blocks_total` | counter | `outcome` (`accepted`, `rejected`) | blocks submitted from shares |
//! | `powkit_validate_headers_total` | counter | | (`validate`) headers linked so far, set every progress report (2 s) |
//! | `powkit_validate_blocks_total` | counter | | (`validate`) blocks linked (Bitcoin) or connected (powkit) so far |
//! | `powkit_validate_transactions_total` | counter | | (`validate`) transactions connected so far (powkit chains) |
//! | `powkit_validate_elapsed_seconds` | gauge | | (`validate`) seconds since the start, at the last report |
//! | `powkit_validate_input_done` | gauge | | (`validate`) 1 once all input is read |
//!
//! Histograms use the buckets of [`SECONDS_BUCKETS`] (the `_seconds` ones) and
//! [`DEPTH_BUCKETS`] (reorg depth).

use std::net::SocketAddr;
use std::sync::Arc;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Blocks on the active chain above genesis (gauge).
pub const CHAIN_HEIGHT: &str = "powkit_chain_height";
/// Height of the best header known (gauge).
pub const CHAIN_HEADERS: &str = "powkit_chain_headers";
/// Seconds since the tip's timestamp (gauge).
pub const CHAIN_TIP_AGE: &str = "powkit_chain_tip_age_seconds";
/// The tip's cumulative work, expected hashes (gauge, as an `f64`).
pub const CHAIN_WORK: &str = "powkit_chain_work";
/// Tip changes that disconnected at least one block (counter).
pub const CHAIN_REORGS: &str = "powkit_chain_reorgs_total";
/// Blocks disconnected per reorg (histogram).
pub const CHAIN_REORG_DEPTH: &str = "powkit_chain_reorg_depth";
/// Blocks connected to the active chain (counter).
pub const CHAIN_BLOCKS_CONNECTED: &str = "powkit_chain_blocks_connected_total";
/// Blocks refused, label `reason` (counter).
pub const CHAIN_BLOCKS_REJECTED: &str = "powkit_chain_blocks_rejected_total";
/// Seconds to accept one block (histogram).
pub const CHAIN_BLOCK_VALIDATION: &str = "powkit_chain_block_validation_seconds";
/// Transfer signatures verified in accepted blocks, label `backend` (counter).
pub const CHAIN_SIGNATURES_VERIFIED: &str = "powkit_chain_signatures_verified_total";
/// Connected peers, label `direction` (gauge).
pub const NET_PEERS: &str = "powkit_net_peers";
/// Peers banned (counter).
pub const NET_BANS: &str = "powkit_net_bans_total";
/// P2P bytes received, label `type` (counter).
pub const NET_RECEIVED_BYTES: &str = "powkit_net_received_bytes_total";
/// P2P bytes sent, label `type` (counter).
pub const NET_SENT_BYTES: &str = "powkit_net_sent_bytes_total";
/// P2P messages received, label `type` (counter).
pub const NET_RECEIVED_MESSAGES: &str = "powkit_net_received_messages_total";
/// P2P messages sent, label `type` (counter).
pub const NET_SENT_MESSAGES: &str = "powkit_net_sent_messages_total";
/// Active height over best header height, 0..=1 (gauge).
pub const NET_SYNC_PROGRESS: &str = "powkit_net_sync_progress_ratio";
/// Transactions in the mempool (gauge).
pub const MEMPOOL_TRANSACTIONS: &str = "powkit_mempool_transactions";
/// Their serialized bytes (gauge).
pub const MEMPOOL_BYTES: &str = "powkit_mempool_bytes";
/// Transactions evicted to make room (counter).
pub const MEMPOOL_EVICTIONS: &str = "powkit_mempool_evictions_total";
/// Admissions refused, label `reason` (counter).
pub const MEMPOOL_REFUSED: &str = "powkit_mempool_refused_total";
/// JSON-RPC calls answered, labels `method`, `outcome` (counter).
pub const RPC_CALLS: &str = "powkit_rpc_calls_total";
/// JSON-RPC latency in seconds, label `method` (histogram).
pub const RPC_CALL_SECONDS: &str = "powkit_rpc_call_seconds";
/// Nonces hashed, labels `backend`, `implementation` (counter).
pub const MINE_HASHES: &str = "powkit_mine_hashes_total";
/// Local hashes per second over the last progress interval (gauge).
pub const MINE_HASH_RATE: &str = "powkit_mine_hash_rate";
/// Solutions that meet the network target (counter).
pub const MINE_BLOCKS_FOUND: &str = "powkit_mine_blocks_found_total";
/// GPU dispatches re-run because their candidates overflowed the result buffer (counter).
pub const MINE_GPU_OVERFLOW_RERUNS: &str = "powkit_mine_gpu_overflow_reruns_total";
/// Shares the pool accepted, miner side (counter).
pub const MINE_SHARES_ACCEPTED: &str = "powkit_mine_shares_accepted_total";
/// Shares the pool rejected, label `reason`, miner side (counter).
pub const MINE_SHARES_REJECTED: &str = "powkit_mine_shares_rejected_total";
/// Stale shares, sent (and rejected as such) or not sent, miner side (counter).
pub const MINE_SHARES_STALE: &str = "powkit_mine_shares_stale_total";
/// Connected Stratum clients, server side (gauge).
pub const STRATUM_CLIENTS: &str = "powkit_stratum_clients";
/// Shares accepted, label `worker`, server side (counter).
pub const STRATUM_SHARES_ACCEPTED: &str = "powkit_stratum_shares_accepted_total";
/// Shares rejected, label `reason`, server side (counter).
pub const STRATUM_SHARES_REJECTED: &str = "powkit_stratum_shares_rejected_total";
/// Shares for a job no longer current, server side (counter).
pub const STRATUM_SHARES_STALE: &str = "powkit_stratum_shares_stale_total";
/// Blocks submitted from shares, label `outcome` (counter).
pub const STRATUM_BLOCKS: &str = "powkit_stratum_blocks_total";

/// Headers linked by `powkit validate` so far (counter, set at each progress report).
pub const VALIDATE_HEADERS: &str = "powkit_validate_headers_total";
/// Blocks linked (Bitcoin) or connected (powkit) by `powkit validate` so far (counter).
pub const VALIDATE_BLOCKS: &str = "powkit_validate_blocks_total";
/// Transactions connected by `powkit validate` so far, powkit chains (counter).
pub const VALIDATE_TRANSACTIONS: &str = "powkit_validate_transactions_total";
/// Seconds since `powkit validate` started, at its last progress report (gauge).
pub const VALIDATE_ELAPSED: &str = "powkit_validate_elapsed_seconds";
/// 1 once `powkit validate` has read all its input (gauge).
pub const VALIDATE_DONE: &str = "powkit_validate_input_done";

/// Bucket bounds of the `_seconds` histograms: 100 µs to 30 s.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Bucket bounds of the reorg depth histogram, blocks.
pub const DEPTH_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 6.0, 10.0, 25.0, 100.0, 1000.0];
/// Workers given their own `worker` label value; the others share the value `other`, so a pool
/// with thousands of workers does not grow the scrape without bound.
pub const MAX_WORKER_LABELS: usize = 256;

/// Installs the Prometheus recorder as the process's global one and describes every metric (the
/// `# HELP` lines). Returns the handle that renders the text format.
///
/// # Errors
/// A recorder is already installed (at most one per process), or a bucket list is empty.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(CHAIN_REORG_DEPTH.into()), DEPTH_BUCKETS))
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("installing the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CHAIN_HEIGHT, "Blocks on the active chain above genesis.");
    describe_counter!(VALIDATE_HEADERS, "Headers linked by powkit validate so far.");
    describe_counter!(VALIDATE_BLOCKS, "Blocks linked or connected by powkit validate so far.");
    describe_counter!(VALIDATE_TRANSACTIONS, "Transactions connected by powkit validate so far (powkit chains).");
    describe_gauge!(VALIDATE_ELAPSED, Unit::Seconds, "Seconds since powkit validate started, at its last report.");
    describe_gauge!(VALIDATE_DONE, "1 once powkit validate has read all its input.");
    describe_gauge!(CHAIN_HEADERS, "Height of the best header known.");
    describe_gauge!(CHAIN_TIP_AGE, Unit::Seconds, "Seconds since the tip's timestamp.");
    describe_gauge!(CHAIN_WORK, "Cumulative work of the tip (expected hashes).");
    describe_counter!(CHAIN_REORGS, "Tip changes that disconnected blocks.");
    describe_histogram!(CHAIN_REORG_DEPTH, "Blocks disconnected per reorg.");
    describe_counter!(CHAIN_BLOCKS_CONNECTED, "Blocks connected to the active chain.");
    describe_counter!(CHAIN_BLOCKS_REJECTED, "Blocks refused, by reason.");
    describe_histogram!(CHAIN_BLOCK_VALIDATION, Unit::Seconds, "Time to accept one block.");
    describe_counter!(CHAIN_SIGNATURES_VERIFIED, "Transfer signatures verified in accepted blocks, by backend.");
    describe_gauge!(NET_PEERS, "Connected peers, by direction.");
    describe_counter!(NET_BANS, "Peers banned for misbehaviour.");
    describe_counter!(NET_RECEIVED_BYTES, Unit::Bytes, "P2P bytes received, by message type.");
    describe_counter!(NET_SENT_BYTES, Unit::Bytes, "P2P bytes sent, by message type.");
    describe_counter!(NET_RECEIVED_MESSAGES, "P2P messages received, by message type.");
    describe_counter!(NET_SENT_MESSAGES, "P2P messages sent, by message type.");
    describe_gauge!(NET_SYNC_PROGRESS, "Active chain height over best header height (1: in sync).");
    describe_gauge!(MEMPOOL_TRANSACTIONS, "Transactions in the mempool.");
    describe_gauge!(MEMPOOL_BYTES, Unit::Bytes, "Serialized bytes of the mempool's transactions.");
    describe_counter!(MEMPOOL_EVICTIONS, "Transactions evicted to make room.");
    describe_counter!(MEMPOOL_REFUSED, "Mempool admissions refused, by reason.");
    describe_counter!(RPC_CALLS, "JSON-RPC calls answered, by method and outcome.");
    describe_histogram!(RPC_CALL_SECONDS, Unit::Seconds, "JSON-RPC latency, by method.");
    describe_counter!(MINE_HASHES, "Nonces hashed, by backend and implementation.");
    describe_gauge!(MINE_HASH_RATE, "Local hashes per second over the last progress interval.");
    describe_counter!(MINE_BLOCKS_FOUND, "Solutions meeting the network target.");
    describe_counter!(MINE_GPU_OVERFLOW_RERUNS, "GPU dispatches re-run for overflowing their result buffer.");
    describe_counter!(MINE_SHARES_ACCEPTED, "Shares the pool accepted (miner side).");
    describe_counter!(MINE_SHARES_REJECTED, "Shares the pool rejected, by reason (miner side).");
    describe_counter!(MINE_SHARES_STALE, "Stale shares, sent or not (miner side).");
    describe_gauge!(STRATUM_CLIENTS, "Connected Stratum clients.");
    describe_counter!(STRATUM_SHARES_ACCEPTED, "Shares accepted, by worker.");
    describe_counter!(STRATUM_SHARES_REJECTED, "Shares rejected, by reason (stale included).");
    describe_counter!(STRATUM_SHARES_STALE, "Shares for a job no longer current.");
    describe_counter!(STRATUM_BLOCKS, "Blocks submitted from shares, by outcome.");
}

/// The `/metrics` listener: serves until dropped.
pub struct MetricsServer(crate::httpd::Listener);

impl MetricsServer {
    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.0.address()
    }
}

/// Parses `--metrics ADDR`: `IP:PORT`, or `PORT` alone for `127.0.0.1:PORT` (loopback); the same as
/// [`crate::httpd::parse_listen`].
///
/// # Errors
/// Neither form: the message names the flag's expected shape.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    crate::httpd::parse_listen(s)
}

/// Installs the recorder ([`install`]) and serves the text format at `GET /metrics` on `addr`
/// through [`crate::httpd`] (one request per connection, `Connection: close`; its bounds: a head
/// over [`crate::httpd::MAX_REQUEST_HEAD`] is 431, a client silent for
/// [`crate::httpd::REQUEST_TIMEOUT`] is dropped, at most [`crate::httpd::MAX_CONNECTIONS`] at
/// once). `refresh` runs before each render (to set gauges that are read rather than recorded, such
/// as a tip's age). Other paths get 404, other methods 405.
///
/// # Errors
/// The recorder cannot be installed, or `addr` cannot be bound.
pub fn serve(addr: SocketAddr, refresh: Option<Box<dyn Fn() + Send + Sync>>) -> Result<MetricsServer, String> {
    let handle = install()?;
    let refresh: Box<dyn Fn() + Send + Sync> = refresh.unwrap_or_else(|| Box::new(|| {}));
    let handler: crate::httpd::Handler = Arc::new(move |path: &str| {
        if path != "/metrics" {
            return crate::httpd::Reply::text(404, "not found: the metrics are at /metrics\n");
        }
        refresh();
        handle.run_upkeep();
        crate::httpd::Reply::ok("text/plain; version=0.0.4; charset=utf-8", handle.render().into_bytes())
    });
    crate::httpd::serve(addr, "metrics", handler).map(MetricsServer).map_err(|e| format!("--metrics {e}"))
}

/// The label value for Stratum worker `name`: itself for the first [`MAX_WORKER_LABELS`]
/// distinct names seen, `other` after that.
pub fn worker_label(name: &str) -> String {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(name) {
        return name.to_string();
    }
    if seen.len() < MAX_WORKER_LABELS {
        seen.insert(name.to_string());
        return name.to_string();
    }
    "other".to_string()
}
