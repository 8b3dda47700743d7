//! JSON-RPC 2.0 over HTTP/1.1 (`POST /`, one request or a batch per connection), authenticated
//! as Bitcoin Core's `httprpc.cpp` does (see [`auth`]). Each call is handed to the chain thread as
//! an [`Event::Rpc`] and answered from its reply; this module only parses, authenticates and
//! frames, so a malformed or unauthenticated call never reaches the chain. `generate` is the one
//! exception: its nonce search runs here, on the connection's thread, and the chain thread only
//! builds each template and connects each solved block ([`Generate`]), so mining never stalls
//! the node.
//!
//! Parsing is two pure functions the server itself uses and a fuzzer can call on any bytes:
//! [`parse_http_request`] (framing, RFC 9112) and [`parse_json_request`] (calls and batches).
//!
//! Limits: request head 16 KiB, body 8 MiB (a largest block in hex fits), 100 calls per batch.
//! Per-client limits (issue 12, fault 5): up to [`MAX_CONNECTIONS`] connections at once, each a
//! cheap thread blocked on its socket; a request's head must arrive within [`HEAD_TIMEOUT`] and
//! the whole request within [`REQUEST_TIMEOUT`] (408 otherwise); when every slot is taken, the
//! connection that has waited longest for its request is closed to make room for the new one
//! (a connection whose call is being answered is never evicted). So clients trickling bytes (all
//! from one address, as on loopback, where a per-address cap could not tell them from an honest
//! client) cannot lock an honest client out: each trickler is dropped after 2 s, and a flood of
//! them only evicts itself.
//!
//! The method table the chain thread runs for each call is the `methods` child module.

mod auth;
mod http;
mod methods;

pub use auth::{Credentials, RpcAuth, RpcAuthEntry, COOKIE_FILE, COOKIE_USER};
pub use http::{parse_http_request, HttpError, HttpRequest, MAX_BODY, MAX_HEAD};
pub use methods::METHODS;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{Event, NodeConfig};
use crate::ledger::block::LedgerBlock;
use crate::ledger::ids::AccountKey;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Code (JSON-RPC's -327xx, or Bitcoin Core's application codes).
    pub code: i64,
    /// Message.
    pub message: String,
}

impl RpcError {
    /// -32602: wrong parameters.
    pub fn params(m: impl Into<String>) -> RpcError {
        RpcError { code: -32602, message: m.into() }
    }
    /// -5: no such block, account, transaction.
    pub fn not_found(m: impl Into<String>) -> RpcError {
        RpcError { code: -5, message: m.into() }
    }
    /// -32603: internal error.
    pub fn internal(m: impl Into<String>) -> RpcError {
        RpcError { code: -32603, message: m.into() }
    }
    /// -32600: not a valid call.
    pub fn invalid_request(m: impl Into<String>) -> RpcError {
        RpcError { code: -32600, message: m.into() }
    }
}

/// Most calls in one batch.
pub const MAX_BATCH: usize = 100;
/// Most connections served at once (each a thread blocked on its socket).
pub const MAX_CONNECTIONS: usize = 256;
/// The request head (line and headers) must arrive within this time of the connection.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole request must arrive within this time of the connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed authentication is answered after this delay (as Bitcoin Core does), which slows down
/// guessing.
pub const AUTH_FAIL_DELAY: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// JSON-RPC requests.

/// One call of a request.
#[derive(Debug, Clone)]
pub struct RpcCall {
    /// The id exactly as sent (`None`: a notification, answered with nothing).
    pub id: Option<Box<RawValue>>,
    /// The method.
    pub method: String,
    /// `params`: an array (positional) or an object (named); absent or null is `[]`.
    pub params: Value,
}

/// A call that is not valid: the error to answer it with, and its id when one could be read.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The id, when the call had a valid one.
    pub id: Option<Box<RawValue>>,
    /// -32600 and why.
    pub error: RpcError,
}

/// A request body: one call or a batch (JSON-RPC 2.0, section 6).
#[derive(Debug, Clone)]
pub enum JsonRequest {
    /// One call.
    Single(Result<RpcCall, CallError>),
    /// A batch, 1 to [`MAX_BATCH`] calls, each answered on its own.
    Batch(Vec<Result<RpcCall, CallError>>),
}

/// Parses a request body: one call object or a batch array of them. Ids are kept byte for byte
/// (`RawValue`), so `1e400`, `18446744073709551616` or `"x"` come back exactly as sent.
///
/// # Errors
/// -32700 (not UTF-8 or not JSON) or -32600 (an empty batch, a batch above [`MAX_BATCH`]); a
/// single bad call is a [`CallError`] inside the result instead, so it keeps its id.
pub fn parse_json_request(body: &[u8]) -> Result<JsonRequest, RpcError> {
    let parse_error = |e: &dyn std::fmt::Display| RpcError { code: -32700, message: format!("parse error: {e}") };
    let text = std::str::from_utf8(body).map_err(|e| parse_error(&e))?;
    let top: &RawValue = serde_json::from_str(text).map_err(|e| parse_error(&e))?;
    if top.get().starts_with('[') {
        let calls: Vec<&RawValue> = serde_json::from_str(top.get()).map_err(|e| parse_error(&e))?;
        if calls.is_empty() {
            return Err(RpcError::invalid_request("empty batch"));
        }
        if calls.len() > MAX_BATCH {
            return Err(RpcError::invalid_request(format!("batch of {} calls, above {MAX_BATCH}", calls.len())));
        }
        return Ok(JsonRequest::Batch(calls.into_iter().map(parse_call).collect()));
    }
    Ok(JsonRequest::Single(parse_call(top)))
}

fn parse_call(raw: &RawValue) -> Result<RpcCall, CallError> {
    let fail = |id: Option<Box<RawValue>>, m: &str| CallError { id, error: RpcError::invalid_request(m) };
    if !raw.get().starts_with('{') {
        return Err(fail(None, "a call must be an object"));
    }
    let obj: BTreeMap<String, &RawValue> =
        serde_json::from_str(raw.get()).map_err(|e| fail(None, &format!("call: {e}")))?;
    // JSON-RPC 2.0 section 4: an id is a string, a number or null.
    let id = match obj.get("id") {
        None => None,
        Some(r) if r.get().starts_with(['{', '[']) => {
            return Err(fail(None, "id must be a string, a number or null"));
        }
        Some(r) => Some((*r).to_owned()),
    };
    if let Some(v) = obj.get("jsonrpc") {
        if v.get() != "\"2.0\"" && v.get() != "\"1.0\"" {
            return Err(fail(id, "jsonrpc must be \"2.0\""));
        }
    }
    let method = match obj.get("method").map(|m| serde_json::from_str::<Value>(m.get())) {
        Some(Ok(Value::String(s))) => s,
        _ => return Err(fail(id, "method must be a string")),
    };
    let params = match obj.get("params").map(|p| serde_json::from_str::<Value>(p.get())) {
        None | Some(Ok(Value::Null)) => Value::Array(vec![]),
        Some(Ok(p @ (Value::Array(_) | Value::Object(_)))) => p,
        Some(_) => return Err(fail(id, "params must be an array or an object")),
    };
    Ok(RpcCall { id, method, params })
}

/// The JSON text of one response: `id` byte for byte, then `result` or `error`.
fn response_text(id: Option<&RawValue>, result: Result<Value, RpcError>) -> String {
    let id = id.map(RawValue::get).unwrap_or("null");
    match result {
        Ok(v) => format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{v}}}"),
        Err(e) => {
            format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"error\":{}}}", json!({"code": e.code, "message": e.message}))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server.

/// A running JSON-RPC server: its address, and the cookie, removed when this is dropped (the
/// node's clean shutdown).
pub struct RpcServer {
    /// The bound address.
    pub addr: SocketAddr,
    _cookie: auth::Cookie,
}

/// Whether `addr` is reachable only from this machine.
fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Whether JSON-RPC may bind `addr`: loopback always; beyond it only with `allow_remote`
/// (`--rpc-allow-remote`) and at least one `rpcauth` user (`users`), since the cookie can only be
/// read on this machine.
///
/// # Errors
/// `--rpc ADDR: ...` saying which of the two is missing.
pub fn check_bind(addr: SocketAddr, allow_remote: bool, users: usize) -> Result<(), String> {
    if is_loopback(&addr) {
        return Ok(());
    }
    if !allow_remote {
        return Err(format!(
            "--rpc {addr}: not a loopback address; JSON-RPC controls the node (stop, addnode, \
             submitblock), so binding beyond this machine needs --rpc-allow-remote (and an \
             --rpcauth user: the cookie cannot be read from elsewhere)"
        ));
    }
    if users == 0 {
        return Err(format!(
            "--rpc {addr} with --rpc-allow-remote needs an --rpcauth USER:SALT$HASH user (make one \
             with `powkit rpc-auth USER`): the cookie cannot be read from elsewhere"
        ));
    }
    Ok(())
}

/// Starts the JSON-RPC server of `cfg` (none when `cfg.rpc` is `None`): checks the bind address
/// (beyond loopback only with `--rpc-allow-remote` and an `--rpcauth` user, since the cookie can
/// only be read on this machine), writes a new cookie, binds and serves on its own thread until
/// `stop` is set. `active` counts the connections being served (the node waits for them before
/// it exits, so the `stop` call gets its answer).
///
/// # Errors
/// A bind beyond loopback without both (`--rpc ADDR: ...`), the cookie or the bind failing.
pub fn start(
    cfg: &NodeConfig,
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
) -> Result<Option<RpcServer>, String> {
    let Some(addr) = cfg.rpc else { return Ok(None) };
    check_bind(addr, cfg.rpc_allow_remote, cfg.rpcauth.len())?;
    let cookie = auth::Cookie::write(&cfg.datadir)?;
    let l = TcpListener::bind(addr).map_err(|e| format!("JSON-RPC on {addr}: {e}"))?;
    let bound = l.local_addr().map_err(|e| e.to_string())?;
    if !is_loopback(&bound) {
        tracing::warn!(rpc = %bound, "JSON-RPC is reachable beyond this machine (--rpc-allow-remote); only --rpcauth users can call it, over plain HTTP");
    }
    let ctx = Arc::new(Ctx {
        events,
        stop: stop.clone(),
        creds: Credentials::new(Some(cookie.secret.clone()), cfg.rpcauth.clone()),
        generating: Mutex::new(()),
    });
    std::thread::Builder::new()
        .name("rpc-listen".into())
        .spawn(move || serve(l, ctx, stop, active))
        .map_err(|e| e.to_string())?;
    Ok(Some(RpcServer { addr: bound, _cookie: cookie }))
}

/// What every connection thread shares.
struct Ctx {
    events: Sender<Event>,
    stop: Arc<AtomicBool>,
    creds: Credentials,
    /// One `generate` at a time (two would mine competing blocks on the same tip).
    generating: Mutex<()>,
}

/// A connection being served.
struct Slot {
    opened: Instant,
    stream: TcpStream,
    /// Still waiting for its request (may be evicted).
    reading: bool,
}

type Slots = Arc<Mutex<HashMap<u64, Slot>>>;

fn serve(listener: TcpListener, ctx: Arc<Ctx>, stop: Arc<AtomicBool>, active: Arc<AtomicUsize>) {
    let _ = listener.set_nonblocking(true);
    let slots: Slots = Arc::default();
    let mut next = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                let Ok(handle) = stream.try_clone() else { continue };
                next += 1;
                let id = next;
                {
                    let mut s = slots.lock().expect("rpc slots");
                    if s.len() >= MAX_CONNECTIONS {
                        // Evict the connection that has waited longest for its request.
                        let oldest = s.iter().filter(|(_, v)| v.reading).min_by_key(|(_, v)| v.opened).map(|(k, _)| *k);
                        match oldest.and_then(|k| s.remove(&k)) {
                            Some(old) => {
                                tracing::debug!(%peer, "rpc: all {MAX_CONNECTIONS} slots taken; closing the oldest idle one");
                                let _ = old.stream.shutdown(std::net::Shutdown::Both);
                            }
                            None => {
                                drop(s);
                                let _ = respond(&stream, 503, &error_text(-32603, "too many connections"), &[]);
                                continue;
                            }
                        }
                    }
                    s.insert(id, Slot { opened: Instant::now(), stream: handle, reading: true });
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (ctx, slots2, done) = (ctx.clone(), slots.clone(), active.clone());
                let spawned = std::thread::Builder::new().name("rpc".into()).stack_size(1024 * 1024).spawn(move || {
                    handle_connection(stream, &ctx, &slots2, id);
                    slots2.lock().expect("rpc slots").remove(&id);
                    done.fetch_sub(1, Ordering::Relaxed);
                });
                if spawned.is_err() {
                    slots.lock().expect("rpc slots").remove(&id);
                    active.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("rpc: could not start a connection thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                tracing::warn!("rpc: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn respond(mut stream: &TcpStream, status: u16, body: &str, extra: &[&str]) -> std::io::Result<()> {
    let body = if status == 204 { "" } else { body };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

fn error_text(code: i64, message: &str) -> String {
    response_text(None, Err(RpcError { code, message: message.into() }))
}

/// Why [`read_request`] read no request to answer.
enum ReadFail {
    /// The client closed without sending anything.
    Closed,
    /// Refuse with this status and message.
    Refuse(u16, String),
    /// The head came without valid credentials (`true`: some were sent): answer 401 without
    /// reading the body.
    Unauthorized(bool),
}

/// Reads one request under the deadlines. Credentials are checked as soon as the head is
/// complete: a request without valid ones is refused before its body is read (so an
/// unauthenticated client never makes the server hold a body of up to [`MAX_BODY`] bytes), and
/// before `100 Continue` is sent.
fn read_request(stream: &TcpStream, creds: &Credentials) -> Result<HttpRequest, ReadFail> {
    let opened = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut continued = false;
    let mut authorized = false;
    loop {
        let (head_done, authorization, expect_continue) = match parse_http_request(&buf) {
            Ok(r) => (true, r.authorization.clone(), false),
            Err(HttpError::Invalid { status, message }) => return Err(ReadFail::Refuse(status, message)),
            Err(HttpError::Incomplete { head, expect_continue, authorization }) => {
                (head, authorization, expect_continue)
            }
        };
        if head_done && !authorized {
            if !creds.check(authorization.as_deref()) {
                return Err(ReadFail::Unauthorized(authorization.is_some()));
            }
            authorized = true;
        }
        if let Ok(r) = parse_http_request(&buf) {
            return Ok(r);
        }
        if expect_continue && !continued {
            continued = true;
            let mut s = stream;
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let deadline = opened + if head_done { REQUEST_TIMEOUT } else { HEAD_TIMEOUT };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let what = if head_done { "the request" } else { "the request head" };
            let limit = if head_done { REQUEST_TIMEOUT } else { HEAD_TIMEOUT };
            return Err(ReadFail::Refuse(408, format!("{what} took more than {} s to arrive", limit.as_secs())));
        }
        let _ = stream.set_read_timeout(Some(left));
        let mut s = stream;
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(ReadFail::Closed),
            Ok(0) => return Err(ReadFail::Refuse(400, "the connection closed before the request was complete".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadFail::Closed),
        }
    }
}

fn handle_connection(stream: TcpStream, ctx: &Ctx, slots: &Slots, id: u64) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let req = match read_request(&stream, &ctx.creds) {
        Ok(r) => r,
        Err(ReadFail::Closed) => return,
        Err(ReadFail::Refuse(status, msg)) => {
            let extra: &[&str] = if status == 405 { &["Allow: POST"] } else { &[] };
            let _ = respond(&stream, status, &error_text(-32600, &msg), extra);
            return;
        }
        Err(ReadFail::Unauthorized(sent)) => {
            // Bitcoin Core's delay against guessing; the slot stays evictable meanwhile, so
            // clients failing authentication cannot hold the slots honest clients need.
            std::thread::sleep(AUTH_FAIL_DELAY);
            let why = if sent { "wrong credentials" } else { "credentials required" };
            tracing::debug!("rpc: 401 ({why})");
            let msg = format!("{why}: HTTP Basic with the cookie (DATADIR/{COOKIE_FILE}) or an --rpcauth user");
            let _ = respond(&stream, 401, &error_text(-32600, &msg), &["WWW-Authenticate: Basic realm=\"jsonrpc\""]);
            return;
        }
    };
    // Authenticated and answering now: no longer evictable.
    match slots.lock().expect("rpc slots").get_mut(&id) {
        Some(s) => s.reading = false,
        None => return,
    }
    let (status, body) = match parse_json_request(&req.body) {
        Err(e) => (200, response_text(None, Err(e))),
        Ok(JsonRequest::Single(c)) => match answer(c, ctx) {
            Some(text) => (200, text),
            None => (204, String::new()),
        },
        Ok(JsonRequest::Batch(calls)) => {
            let out: Vec<String> = calls.into_iter().filter_map(|c| answer(c, ctx)).collect();
            if out.is_empty() {
                (204, String::new())
            } else {
                (200, format!("[{}]", out.join(",")))
            }
        }
    };
    let _ = respond(&stream, status, &body, &[]);
}

/// Answers one call (`None` for a notification).
fn answer(c: Result<RpcCall, CallError>, ctx: &Ctx) -> Option<String> {
    let c = match c {
        Ok(c) => c,
        Err(e) => return Some(response_text(e.id.as_deref(), Err(e.error))),
    };
    let t0 = std::time::Instant::now();
    let result = if c.method == "generate" { generate(&c.params, ctx) } else { ask_chain(ctx, &c.method, c.params) };
    // The method label comes from the node's own table (a client's made-up names share `other`).
    let method = methods::METHODS.iter().find(|(m, _)| *m == c.method).map_or("other", |(m, _)| *m);
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ::metrics::counter!(crate::metrics::RPC_CALLS, "method" => method, "outcome" => outcome).increment(1);
    ::metrics::histogram!(crate::metrics::RPC_CALL_SECONDS, "method" => method).record(t0.elapsed().as_secs_f64());
    c.id.as_ref()?;
    Some(response_text(c.id.as_deref(), result))
}

fn ask_chain(ctx: &Ctx, method: &str, params: Value) -> Result<Value, RpcError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if ctx.events.send(Event::Rpc { method: method.to_string(), params, reply: tx }).is_err() {
        return Err(RpcError::internal("the node is shutting down"));
    }
    rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| Err(RpcError::internal("the node did not answer")))
}

// ---------------------------------------------------------------------------------------------
// generate: the nonce search off the chain thread.

/// One step of `generate` the chain thread runs (`Node::generate_step`); the nonce search between
/// them runs on the RPC connection's thread.
pub enum Generate {
    /// Check the call (regtest only; parameters typed and in range): how many blocks, paying whom.
    Start {
        /// The call's `params`.
        params: Value,
        /// The count and the key, or the error to answer.
        reply: Sender<Result<(u64, AccountKey), RpcError>>,
    },
    /// A template on the current tip.
    Template {
        /// The coinbase's recipient.
        key: AccountKey,
        /// The block, nonce zero.
        reply: Sender<Result<LedgerBlock, RpcError>>,
    },
    /// Connect a solved block: `true` when it extended the tip, `false` when the tip moved
    /// meanwhile (the block is dropped and a new template asked for).
    Submit {
        /// The solved block.
        block: Box<LedgerBlock>,
        /// Whether it was connected.
        reply: Sender<Result<bool, RpcError>>,
    },
}

fn ask_generate<T>(ctx: &Ctx, step: impl FnOnce(Sender<Result<T, RpcError>>) -> Generate) -> Result<T, RpcError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if ctx.events.send(Event::Generate(step(tx))).is_err() {
        return Err(RpcError::internal("the node is shutting down"));
    }
    rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| Err(RpcError::internal("the node did not answer")))
}

/// Finds a nonce for `block` (rolling its time forward a second whenever the nonce space runs
/// out), checking `stop` between chunks. `None` when the node stops first.
fn solve(mut block: LedgerBlock, scanner: &dyn crate::sha256::NonceScanner, stop: &AtomicBool) -> Option<LedgerBlock> {
    let target = block.header.bits.to_target().ok()?;
    let mut found = Vec::new();
    loop {
        let job = crate::sha256::Job::new(&block.header, target);
        let mut start = 0u64;
        let mut step = 16u64;
        while start < crate::mine::NONCE_SPACE {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let count = step.min(crate::mine::NONCE_SPACE - start);
            found.clear();
            scanner.scan(&job, start as u32, count as u32, &mut found);
            if let Some(&nonce) = found.iter().filter(|&&n| job.check(n).is_some()).min() {
                block.header.nonce = nonce;
                return Some(block);
            }
            start += count;
            step = (step * 4).min(1 << 20);
        }
        block.header.time = block.header.time.checked_add(1)?;
    }
}

/// `generate [nblocks [pubkey]]`: mines `nblocks` blocks on the tip, one at a time, on this thread.
fn generate(params: &Value, ctx: &Ctx) -> Result<Value, RpcError> {
    let (n, key) = ask_generate(ctx, |reply| Generate::Start { params: params.clone(), reply })?;
    let _one = ctx.generating.lock().unwrap_or_else(|e| e.into_inner());
    let scanner = crate::sha256::CpuImpl::detect().scanner().map_err(|e| RpcError::internal(e.to_string()))?;
    let mut hashes = Vec::new();
    let mut stale = 0;
    while (hashes.len() as u64) < n {
        let block = ask_generate(ctx, |reply| Generate::Template { key, reply })?;
        let block =
            solve(block, scanner.as_ref(), &ctx.stop).ok_or_else(|| RpcError::internal("the node is stopping"))?;
        let hash = block.header.block_hash();
        if ask_generate(ctx, |reply| Generate::Submit { block: Box::new(block), reply })? {
            hashes.push(json!(hash.to_string()));
        } else {
            stale += 1;
            if stale > 100 {
                return Err(RpcError::internal("the tip kept moving: 100 generated blocks went stale"));
            }
        }
    }
    Ok(Value::Array(hashes))
}

// ---------------------------------------------------------------------------------------------
// The client.

/// A minimal client: one call to `addr` with `auth`'s credentials, the `result` or the error.
/// Used by `powkit rpc`, tests and tools.
///
/// # Errors
/// The connection failing, an HTTP error status (401: wrong or missing credentials), the node's
/// JSON-RPC error as `message (code)`.
pub fn call_remote(addr: &str, auth: &RpcAuth, method: &str, params: Value) -> Result<Value, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(300))).ok();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        auth.header(),
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // A response is bounded like a request body (hex of the largest block, in JSON) plus its head:
    // a remote `--rpc` server cannot make the client hold more.
    let limit = (2 * MAX_BODY + MAX_HEAD) as u64;
    let mut resp = String::new();
    (&s).take(limit + 1).read_to_string(&mut resp).map_err(|e| e.to_string())?;
    if resp.len() as u64 > limit {
        return Err(format!("the response from {addr} is longer than {limit} bytes"));
    }
    let status = resp.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).ok_or("no HTTP status line")?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("no HTTP body")?;
    if status == 401 {
        return Err(format!(
            "401 Unauthorized: the node refused the credentials of user {:?} (a stale cookie? the node writes a new one at each start)",
            auth.user
        ));
    }
    let v: Value = serde_json::from_str(body).map_err(|e| format!("HTTP {status}, bad JSON from the node: {e}"))?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Err(format!("{} ({})", e["message"].as_str().unwrap_or("?"), e["code"]));
    }
    Ok(v["result"].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_echoed_byte_for_byte_and_bad_calls_keep_them() {
        for id in
            ["18446744073709551616", "-0", "1e400", "1.50", "\"x\\u0041\"", "null", "123456789012345678901234567890"]
        {
            let body = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"m\",\"params\":[1]}}");
            let JsonRequest::Single(Ok(c)) = parse_json_request(body.as_bytes()).unwrap() else { panic!("{body}") };
            let text = response_text(c.id.as_deref(), Ok(json!(1)));
            assert_eq!(text, format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":1}}"));
        }
        let r = parse_json_request(br#"[{"id":7,"params":3,"method":"m"},5,{"method":"n"},{"id":[1],"method":"m"}]"#)
            .unwrap();
        let JsonRequest::Batch(calls) = r else { panic!() };
        assert_eq!(calls.len(), 4);
        let e = calls[0].as_ref().unwrap_err();
        assert_eq!((e.id.as_ref().unwrap().get(), e.error.code), ("7", -32600));
        assert!(calls[1].as_ref().unwrap_err().id.is_none());
        assert!(calls[2].as_ref().unwrap().id.is_none(), "a notification");
        assert_eq!(calls[3].as_ref().unwrap_err().error.code, -32600);
        assert_eq!(parse_json_request(b"[]").unwrap_err().code, -32600);
        assert_eq!(parse_json_request(b"{").unwrap_err().code, -32700);
        assert_eq!(parse_json_request(b"\xff").unwrap_err().code, -32700);
        let big = format!("[{}]", vec!["{\"method\":\"m\"}"; MAX_BATCH + 1].join(","));
        assert_eq!(parse_json_request(big.as_bytes()).unwrap_err().code, -32600);
    }
}
