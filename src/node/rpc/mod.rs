//! JSON-RPC 2.0 over HTTP/1.1 (`POST /`, one request or a batch per connection). Each call is
//! handed to the chain thread as an [`Event::Rpc`] and answered from its reply; this module only
//! parses and frames, so a malformed call gets a JSON-RPC error and never reaches the chain.
//!
//! Limits: request head 16 KiB, body 8 MiB (a largest block in hex fits), 100 calls per batch, 64
//! connections at once, 10 s to send a whole request.
//!
//! The method table the chain thread runs for each call is the `methods` child module.

mod methods;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::{json, Value};

use super::Event;

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
}

const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 8 * 1024 * 1024;
const MAX_BATCH: usize = 100;
const MAX_CONNECTIONS: usize = 64;

/// Serves `listener` until `stop` is set; `active` counts the connections being answered (the
/// node waits for them before it exits, so the `stop` call gets its answer).
pub fn serve(listener: TcpListener, events: Sender<Event>, stop: Arc<AtomicBool>, active: Arc<AtomicUsize>) {
    let _ = listener.set_nonblocking(true);
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    let _ = respond(
                        &stream,
                        503,
                        &json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": "too many connections"}}),
                    );
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (events, done) = (events.clone(), active.clone());
                let spawned = std::thread::Builder::new().name("rpc".into()).spawn(move || {
                    handle(stream, &events);
                    done.fetch_sub(1, Ordering::Relaxed);
                });
                if spawned.is_err() {
                    active.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!("rpc: could not start a connection thread");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                tracing::warn!("rpc: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn respond(mut stream: &TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let text = if status == 204 { String::new() } else { body.to_string() };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

fn error_body(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn handle(stream: TcpStream, events: &Sender<Event>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let (status, body) = match read_request(&stream) {
        Ok(body) => match serde_json::from_slice::<Value>(&body) {
            Err(e) => (200, Some(error_body(Value::Null, -32700, &format!("parse error: {e}")))),
            Ok(Value::Array(calls)) if calls.is_empty() => (200, Some(error_body(Value::Null, -32600, "empty batch"))),
            Ok(Value::Array(calls)) if calls.len() > MAX_BATCH => (
                200,
                Some(error_body(Value::Null, -32600, &format!("batch of {} calls, above {MAX_BATCH}", calls.len()))),
            ),
            Ok(Value::Array(calls)) => {
                let out: Vec<Value> = calls.iter().filter_map(|c| call(c, events)).collect();
                if out.is_empty() {
                    (204, None)
                } else {
                    (200, Some(Value::Array(out)))
                }
            }
            Ok(c) => match call(&c, events) {
                Some(v) => (200, Some(v)),
                None => (204, None),
            },
        },
        Err((status, msg)) => (status, Some(error_body(Value::Null, -32600, &msg))),
    };
    let _ = respond(&stream, status, body.as_ref().unwrap_or(&Value::Null));
}

/// A socket whose every read gets only the time left before one deadline, so a client trickling
/// bytes cannot hold a connection past it.
struct DeadlineReader<'a> {
    stream: &'a TcpStream,
    deadline: std::time::Instant,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the request took more than 10 s to arrive"));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut s = self.stream;
        s.read(buf)
    }
}

/// Reads one HTTP request and returns its body, or the status and reason to refuse it with.
fn read_request(stream: &TcpStream) -> Result<Vec<u8>, (u16, String)> {
    // One deadline for the whole request, so a client trickling bytes cannot hold a slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut r = BufReader::new(DeadlineReader { stream, deadline }.take(MAX_HEAD as u64));
    let mut line = String::new();
    let mut head_len = 0usize;
    let mut first = None;
    let mut length: Option<usize> = None;
    loop {
        line.clear();
        let n = r.read_line(&mut line).map_err(|e| (400, format!("reading the request: {e}")))?;
        head_len += n;
        if n == 0 && head_len >= MAX_HEAD {
            return Err((413, format!("request head above {MAX_HEAD} bytes")));
        }
        if n == 0 {
            return Err((400, "the request ended before its headers did".into()));
        }
        if head_len > MAX_HEAD {
            return Err((413, format!("request head above {MAX_HEAD} bytes")));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if first.is_none() {
            first = Some(l.to_string());
            continue;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                let n: usize = v.trim().parse().map_err(|_| (400, format!("bad Content-Length {:?}", v.trim())))?;
                if n > MAX_BODY {
                    return Err((413, format!("body of {n} bytes, above {MAX_BODY}")));
                }
                // RFC 9112 section 6.3: differing Content-Length values make the message length
                // unknowable, an unrecoverable framing error.
                if length.is_some_and(|m| m != n) {
                    return Err((400, "conflicting Content-Length headers".to_string()));
                }
                length = Some(n);
            }
        }
    }
    let first = first.unwrap_or_default();
    let method = first.split(' ').next().unwrap_or("");
    if method != "POST" {
        return Err((405, format!("method {method:?}: JSON-RPC takes POST")));
    }
    let n = length.ok_or((400, "POST without Content-Length".to_string()))?;
    // What the buffered reader already holds of the body, then the rest under the same deadline.
    let mut body = Vec::with_capacity(n);
    body.extend_from_slice(&r.buffer()[..r.buffer().len().min(n)]);
    let rest = n - body.len();
    let mut inner = r.into_inner().into_inner();
    let mut tail = vec![0u8; rest];
    inner.read_exact(&mut tail).map_err(|e| (400, format!("reading the body ({n} bytes): {e}")))?;
    body.extend_from_slice(&tail);
    Ok(body)
}

/// One call: `None` for a notification (no `id`).
fn call(c: &Value, events: &Sender<Event>) -> Option<Value> {
    let Some(obj) = c.as_object() else {
        return Some(error_body(Value::Null, -32600, "a call must be an object"));
    };
    let id = obj.get("id").cloned();
    let rid = id.clone().unwrap_or(Value::Null);
    if let Some(v) = obj.get("jsonrpc") {
        if v != "2.0" && v != "1.0" {
            return Some(error_body(rid, -32600, "jsonrpc must be \"2.0\""));
        }
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return Some(error_body(rid, -32600, "method must be a string"));
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => Value::Array(vec![]),
        Some(p @ Value::Array(_)) => p.clone(),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Some(error_body(rid, -32600, "params must be an array or an object")),
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    let result = if events.send(Event::Rpc { method: method.to_string(), params, reply: tx }).is_err() {
        Err(RpcError::internal("the node is shutting down"))
    } else {
        rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| Err(RpcError::internal("the node did not answer")))
    };
    id.as_ref()?;
    Some(match result {
        Ok(v) => json!({"jsonrpc": "2.0", "id": rid, "result": v}),
        Err(e) => error_body(rid, e.code, &e.message),
    })
}

/// A minimal client: one call to `addr`, the `result` or the error. Used by tests and tools.
pub fn call_remote(addr: &str, method: &str, params: Value) -> Result<Value, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).ok_or("no HTTP body")?;
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON from the node: {e}"))?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        return Err(format!("{} ({})", e["message"].as_str().unwrap_or("?"), e["code"]));
    }
    Ok(v["result"].clone())
}
