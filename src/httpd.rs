//! A small read-only HTTP/1.1 listener for the operator's endpoints: Prometheus's `/metrics`
//! ([`crate::metrics`]) and the live dashboard ([`crate::dashboard`]). Both answer `GET` (and
//! `HEAD`) only, one request per connection, so this is all the HTTP they need; the JSON-RPC server,
//! which takes bodies and keeps connections alive, has its own framing (`node::rpc::http`).
//!
//! Bounds (a scraper or browser is trusted no more than a peer): a request head of at most
//! [`MAX_REQUEST_HEAD`] bytes (`431`), a client silent for [`REQUEST_TIMEOUT`] is dropped, at most
//! [`MAX_CONNECTIONS`] are served at once (`503` beyond), other methods get `405`, a malformed
//! request line `400`; the whole head must arrive within the timeout, however slowly its bytes
//! come. Every answer closes its connection (`Connection: close`).

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read as _, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Longest request head read (bytes); longer ones get `431`.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A connection that sends nothing for this long is closed (slow clients cannot hold it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more get `503`.
pub const MAX_CONNECTIONS: usize = 16;

/// An answer to a `GET`.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status (200, 404, 503, ...).
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body (sent for `GET`, left out for `HEAD`).
    pub body: Cow<'static, [u8]>,
    /// More header lines, `(name, value)`.
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// `200` with `body`.
    pub fn ok(content_type: &'static str, body: impl Into<Cow<'static, [u8]>>) -> Reply {
        Reply { status: 200, content_type, body: body.into(), headers: Vec::new() }
    }

    /// A plain-text answer (an error's explanation, usually).
    pub fn text(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Cow::Owned(message.into().into_bytes()),
            headers: Vec::new(),
        }
    }

    /// The same answer with another status.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    /// Adds a header line.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// What answers a `GET`: called with the request target's path (the query string cut off) on the
/// connection's own thread.
pub type Handler = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// A running listener: serves until dropped.
pub struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Parses a listen flag's value: `IP:PORT`, or `PORT` alone for `127.0.0.1:PORT` (loopback).
///
/// # Errors
/// Neither form: the message names the expected shape.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    match s.parse::<u16>() {
        Ok(port) => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        Err(_) => s.parse().map_err(|_| format!("{s:?}: expected IP:PORT or PORT (loopback)")),
    }
}

/// `scheme://user:password@host/...` (anywhere in `text`) without the `user:password@`: a URL as it
/// may be shown to a client (a page, cgminer's API), its credentials left out.
pub fn without_userinfo(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &text[..s + 3], &text[at + 1..]),
        _ => text.to_string(),
    }
}

/// Binds `addr` and answers `GET`/`HEAD` requests with `handler` on a thread named `name` (and one
/// thread per connection, at most [`MAX_CONNECTIONS`]).
///
/// # Errors
/// `addr` cannot be bound (`"ADDR: why"`), or the thread cannot start.
pub fn serve(addr: SocketAddr, name: &str, handler: Handler) -> Result<Listener, String> {
    serve_hosts(addr, name, Hosts::Any, handler)
}

/// [`serve`], answering only the `Host` values `hosts` admits (`421` otherwise).
///
/// # Errors
/// As [`serve`].
pub fn serve_hosts(addr: SocketAddr, name: &str, hosts: Hosts, handler: Handler) -> Result<Listener, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
    let full = |conn: &TcpStream| {
        let _ = answer(conn, &Reply::text(503, "too many connections at once\n"), false);
    };
    accept_loop(
        listener,
        name,
        MAX_CONNECTIONS,
        full,
        Arc::new(move |conn: TcpStream| serve_one(&conn, hosts, &*handler)),
    )
}

/// Accepts connections on `listener` on a thread named `name` and hands each to `serve` on a
/// thread of its own, at most `max` at once (a connection beyond them gets `full`, then is
/// closed), until the returned [`Listener`] is dropped. The shell of every small listener here:
/// the HTTP one above and cgminer's API (`mine::api`).
///
/// # Errors
/// The listener's address cannot be read, or the thread cannot start.
pub fn accept_loop(
    listener: TcpListener,
    name: &str,
    max: usize,
    full: fn(&TcpStream),
    serve: Arc<dyn Fn(TcpStream) + Send + Sync>,
) -> Result<Listener, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(AtomicUsize::new(0));
    let stop2 = stop.clone();
    let conn_name = format!("{name}-conn");
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if busy.fetch_add(1, Ordering::AcqRel) >= max {
                    busy.fetch_sub(1, Ordering::AcqRel);
                    full(&conn);
                    continue;
                }
                let (serve, busy) = (serve.clone(), busy.clone());
                let spawned = std::thread::Builder::new().name(conn_name.clone()).spawn(move || {
                    serve(conn);
                    busy.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    // The closure (and its count) was dropped with the failed spawn.
                    continue;
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Listener { addr, stop })
}

/// Which `Host` values a listener answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hosts {
    /// Any (or none).
    Any,
    /// An IP address or `localhost` (with or without a port), or no `Host` at all (HTTP/1.0): a
    /// listener on a loopback address is then out of reach of DNS rebinding (a name re-pointed at
    /// 127.0.0.1 arrives with that name in `Host`).
    Local,
}

impl Hosts {
    /// Whether a request with `Host: host` (`None`: absent) is answered.
    pub fn admits(self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        if self == Hosts::Any {
            return true;
        }
        let name = match host.strip_prefix('[') {
            // [v6]:port
            Some(rest) => return rest.split(']').next().is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
            None => host.rsplit_once(':').map(|(n, _)| n).unwrap_or(host),
        };
        name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
    }
}

/// A reader that fails once `until` has passed: the socket's timeout is set to the time left before
/// each read, so a client trickling bytes cannot hold a connection past the deadline.
struct Deadline<'a> {
    conn: &'a TcpStream,
    until: std::time::Instant,
}

impl std::io::Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.conn.set_read_timeout(Some(left))?;
        (&mut &*self.conn).read(buf)
    }
}

/// The request line and `Host` of a head, read within [`REQUEST_TIMEOUT`] in all and
/// [`MAX_REQUEST_HEAD`] bytes: `Err(status)` when it cannot be served.
fn read_head(conn: &TcpStream) -> Result<(String, Option<String>), u16> {
    let until = std::time::Instant::now() + REQUEST_TIMEOUT;
    let mut r = BufReader::new(Deadline { conn, until }.take(MAX_REQUEST_HEAD as u64 + 1));
    let mut first = String::new();
    let mut host = None;
    let mut total = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(|_| 408u16)?;
        total += n;
        if total > MAX_REQUEST_HEAD {
            return Err(431);
        }
        if n == 0 || !line.ends_with(b"\n") {
            // The peer closed (or the bound cut the line) before the head ended.
            return Err(400);
        }
        let text = std::str::from_utf8(&line).map_err(|_| 400u16)?.trim_end();
        if first.is_empty() {
            if text.is_empty() {
                continue;
            }
            first = text.to_string();
        } else if text.is_empty() {
            return Ok((first, host));
        } else if let Some((name, value)) = text.split_once(':') {
            if name.eq_ignore_ascii_case("host") {
                if host.is_some() {
                    return Err(400); // two Hosts (RFC 9112 3.2)
                }
                host = Some(value.trim().to_string());
            }
        }
    }
}

fn serve_one(conn: &TcpStream, hosts: Hosts, handler: &dyn Fn(&str) -> Reply) {
    let _ = conn.set_write_timeout(Some(REQUEST_TIMEOUT));
    let (line, host) = match read_head(conn) {
        Ok(l) => l,
        Err(408) => return,
        Err(status) => {
            let _ = answer(conn, &Reply::text(status, "bad request\n"), false);
            drain(conn);
            return;
        }
    };
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) || parts.next().is_some() {
        let _ = answer(conn, &Reply::text(400, "expected: GET PATH HTTP/1.1\n"), false);
        return;
    }
    let path = target.unwrap_or("").split('?').next().unwrap_or("");
    if !hosts.admits(host.as_deref()) {
        let why = "this listener is bound to loopback and answers only Host: localhost or an IP address\n";
        let _ = answer(conn, &Reply::text(421, why), false);
        return;
    }
    let reply = match method {
        Some("GET" | "HEAD") => handler(path),
        _ => Reply::text(405, "only GET and HEAD\n").with_header("Allow", "GET, HEAD"),
    };
    let _ = answer(conn, &reply, method == Some("HEAD"));
}

/// After an error answer: reads (and drops) what the client still sends, briefly and boundedly,
/// so closing with unread bytes does not reset the connection before the answer is read.
fn drain(mut conn: &TcpStream) {
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    let mut left = 256 * 1024usize;
    while left > 0 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

fn answer(mut conn: &TcpStream, reply: &Reply, head_only: bool) -> std::io::Result<()> {
    let reason = match reply.status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if !head_only {
        conn.write_all(&reply.body)?;
    }
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("9100").unwrap(), "127.0.0.1:9100".parse().unwrap());
        assert_eq!(parse_listen("0.0.0.0:9100").unwrap(), "0.0.0.0:9100".parse().unwrap());
        assert!(parse_listen("localhost:x").is_err());
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(without_userinfo("bitcoind http://u:p@127.0.0.1:8332/"), "bitcoind http://127.0.0.1:8332/");
        assert_eq!(without_userinfo("bitcoind http://127.0.0.1:8332"), "bitcoind http://127.0.0.1:8332");
        assert_eq!(without_userinfo("no url @ all"), "no url @ all");
    }

    #[test]
    fn local_hosts_are_ip_addresses_and_localhost() {
        let l = Hosts::Local;
        for ok in
            [None, Some("127.0.0.1:8080"), Some("localhost"), Some("LOCALHOST:1"), Some("[::1]:80"), Some("10.0.0.2")]
        {
            assert!(l.admits(ok), "{ok:?}");
        }
        for bad in [Some("evil.example"), Some("evil.example:8080"), Some("127.0.0.1.nip.io"), Some("[evil]:80")] {
            assert!(!l.admits(bad), "{bad:?}");
            assert!(Hosts::Any.admits(bad));
        }
    }

    #[test]
    fn a_trickling_client_is_cut_off_at_the_deadline() {
        let handler: Handler = Arc::new(|_: &str| Reply::ok("text/plain", b"x".as_slice()));
        let l = serve_hosts("127.0.0.1:0".parse().unwrap(), "httpd-slow", Hosts::Local, handler).unwrap();
        let mut s = TcpStream::connect(l.address()).unwrap();
        let t = std::time::Instant::now();
        // One byte a second: each read is quick, the head never ends.
        for b in b"GET / HTTP/1.1\r\nX: aaaaaaaaaaaa".iter() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(400));
            if t.elapsed() > REQUEST_TIMEOUT + Duration::from_secs(3) {
                break;
            }
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(t.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(3), "held for {:?}", t.elapsed());
        assert!(!out.contains("200 OK"), "{out}");
        // A rebinding page's request is refused; a local one answered.
        let r = get(l.address(), "GET / HTTP/1.1\r\nHost: evil.example:80\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 421 "), "{r}");
        assert!(get(l.address(), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").starts_with("HTTP/1.1 200 "));
    }

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_get_and_head_and_refuses_the_rest() {
        let handler: Handler = Arc::new(|path: &str| match path {
            "/" => Reply::ok("text/plain", b"hello".as_slice()).with_header("X-Test", "1"),
            _ => Reply::text(404, "no\n"),
        });
        let l = serve("127.0.0.1:0".parse().unwrap(), "httpd-test", handler).unwrap();
        let a = l.address();
        let r = get(a, "GET /?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 5\r\n") && r.contains("X-Test: 1\r\n") && r.ends_with("\r\n\r\nhello"));
        let r = get(a, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.contains("Content-Length: 5\r\n") && r.ends_with("\r\n\r\n"), "{r}");
        assert!(get(a, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let r = get(a, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405 ") && r.contains("Allow: GET, HEAD\r\n"), "{r}");
        assert!(get(a, "GET /\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_REQUEST_HEAD));
        assert!(get(a, &big).starts_with("HTTP/1.1 431 "));
    }
}
