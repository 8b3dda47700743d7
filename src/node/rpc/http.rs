//! HTTP/1.1 request framing for JSON-RPC (RFC 9112), as a pure function over the bytes received so
//! far: the server calls [`parse_http_request`] after each read, and a fuzzer can call it on
//! anything. It never panics and never allocates more than the input plus one body.
//!
//! What it enforces (section numbers of RFC 9112 unless noted):
//! - request line `METHOD SP TARGET SP HTTP/1.x` (3); another major version is 505, junk is 400;
//!   empty lines before it are skipped (2.2);
//! - lines end in CRLF or a bare LF (2.2); a bare CR elsewhere is 400;
//! - header names are tokens with no whitespace before the colon (5.1), no obsolete line folding
//!   (5.2): 400;
//! - an HTTP/1.1 request carries exactly one `Host`, an HTTP/1.0 one at most one (3.2): 400;
//! - `Content-Length` is digits (a list of equal values allowed, RFC 9110 8.6); differing values are
//!   400 (6.3); a `Transfer-Encoding` is 501 (none is supported; with a `Content-Length` too it is
//!   400, 6.3); a POST without a length is 411;
//! - `Expect: 100-continue` is noted (the server sends `100 Continue`), any other expectation 417
//!   (RFC 9110 10.1.1);
//! - only POST (405 otherwise); head at most [`MAX_HEAD`] bytes (431), body at most [`MAX_BODY`]
//!   (413); one `Authorization` at most (400).

/// Most bytes in a request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most bytes in a request body (a largest block in hex fits).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The request target (`/` for JSON-RPC; others are accepted, as by Bitcoin Core).
    pub target: String,
    /// The `Authorization` header's value, when sent.
    pub authorization: Option<String>,
    /// The body, exactly `Content-Length` bytes (bytes after it are not part of this request).
    pub body: Vec<u8>,
}

/// Why no complete request could be read from the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The bytes are a valid beginning: more are needed. `head`: whether the head is complete (the
    /// body is missing); `expect_continue`: whether the client waits for `100 Continue`;
    /// `authorization`: the head's `Authorization` value once the head is complete, so a server
    /// can refuse a request without credentials before reading (and holding) its body.
    Incomplete {
        /// The head is complete.
        head: bool,
        /// `Expect: 100-continue` was sent.
        expect_continue: bool,
        /// The `Authorization` header's value (only when `head` is true).
        authorization: Option<String>,
    },
    /// The request is refused: the HTTP status to answer with and why.
    Invalid {
        /// 400, 405, 411, 413, 417, 431, 501 or 505.
        status: u16,
        /// What is wrong, for the error body.
        message: String,
    },
}

fn invalid(status: u16, message: impl Into<String>) -> HttpError {
    HttpError::Invalid { status, message: message.into() }
}

/// RFC 9110 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one request from `bytes` (what has arrived so far). See the module doc for the rules.
///
/// # Errors
/// [`HttpError::Incomplete`] while the request is a valid prefix; [`HttpError::Invalid`] with the
/// status to answer otherwise.
pub fn parse_http_request(bytes: &[u8]) -> Result<HttpRequest, HttpError> {
    // Empty lines before the request line are skipped (RFC 9112 2.2).
    let mut start = 0;
    while start < bytes.len() && (bytes[start] == b'\r' || bytes[start] == b'\n') {
        start += 1;
        if start > MAX_HEAD {
            return Err(invalid(431, format!("request head above {MAX_HEAD} bytes")));
        }
    }
    // The head ends at the first empty line.
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut at = start;
    let head_end = loop {
        let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') else {
            if bytes.len() - start > MAX_HEAD {
                return Err(invalid(431, format!("request head above {MAX_HEAD} bytes")));
            }
            return Err(HttpError::Incomplete { head: false, expect_continue: false, authorization: None });
        };
        let mut line = &bytes[at..at + nl];
        at += nl + 1;
        if at - start > MAX_HEAD {
            return Err(invalid(431, format!("request head above {MAX_HEAD} bytes")));
        }
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.contains(&b'\r') {
            return Err(invalid(400, "a bare CR in the request head"));
        }
        if line.is_empty() {
            break at;
        }
        lines.push(line);
    };
    let (first, fields) = lines.split_first().ok_or_else(|| invalid(400, "no request line"))?;
    // Request line.
    let first = std::str::from_utf8(first).map_err(|_| invalid(400, "the request line is not text"))?;
    let parts: Vec<&str> = first.split(' ').collect();
    let [method, target, version] = parts[..] else {
        return Err(invalid(400, format!("request line {first:?}: expected METHOD TARGET HTTP/1.1")));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(invalid(400, format!("method {method:?} is not a token")));
    }
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(invalid(400, format!("request target {target:?}")));
    }
    let minor = match version.strip_prefix("HTTP/") {
        Some("1.1") => 1,
        Some("1.0") => 0,
        Some(v) if v.len() == 3 && v.as_bytes()[0].is_ascii_digit() && v.as_bytes()[1] == b'.' => {
            return Err(invalid(505, format!("HTTP version {v}: this server speaks HTTP/1.1")));
        }
        _ => return Err(invalid(400, format!("version {version:?}: expected HTTP/1.1"))),
    };
    // Header fields.
    let mut hosts = 0;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut authorization: Option<String> = None;
    let mut expect_continue = false;
    for f in fields {
        if f[0] == b' ' || f[0] == b'\t' {
            return Err(invalid(400, "obsolete line folding in a header (RFC 9112 5.2)"));
        }
        let colon = f.iter().position(|&b| b == b':').ok_or_else(|| invalid(400, "a header line without ':'"))?;
        let (name, value) = (&f[..colon], &f[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(invalid(
                400,
                format!("header name {:?} is not a token (no space before ':')", String::from_utf8_lossy(name)),
            ));
        }
        if value.iter().any(|&b| b == 0 || (b.is_ascii_control() && b != b'\t')) {
            return Err(invalid(400, "a control character in a header value"));
        }
        let name = std::str::from_utf8(name).expect("tchars are ASCII");
        let value = String::from_utf8_lossy(value);
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            // A list of equal values is one value (RFC 9110 8.6); differing ones are unframeable.
            for v in value.split(',') {
                let v = v.trim_matches([' ', '\t']);
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(400, format!("Content-Length {value:?}: expected digits")));
                }
                let n = if v.len() > 18 { usize::MAX } else { v.parse::<usize>().unwrap_or(usize::MAX) };
                if length.is_some_and(|m| m != n) {
                    return Err(invalid(400, "conflicting Content-Length values (RFC 9112 6.3)"));
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("authorization") {
            if authorization.is_some() {
                return Err(invalid(400, "more than one Authorization header"));
            }
            authorization = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                expect_continue = true;
            } else {
                return Err(invalid(417, format!("Expect {value:?}: only 100-continue is supported")));
            }
        }
    }
    if minor == 1 && hosts != 1 || minor == 0 && hosts > 1 {
        return Err(invalid(400, format!("{hosts} Host headers: HTTP/1.1 requires exactly one (RFC 9112 3.2)")));
    }
    if method != "POST" {
        return Err(invalid(405, format!("method {method:?}: JSON-RPC takes POST")));
    }
    if chunked && length.is_some() {
        return Err(invalid(400, "both Transfer-Encoding and Content-Length (RFC 9112 6.3)"));
    }
    if chunked {
        return Err(invalid(501, "Transfer-Encoding is not supported: send a Content-Length"));
    }
    let n = length.ok_or_else(|| invalid(411, "POST without Content-Length"))?;
    if n > MAX_BODY {
        return Err(invalid(413, format!("body of {n} bytes, above {MAX_BODY}")));
    }
    let body = &bytes[head_end..];
    if body.len() < n {
        return Err(HttpError::Incomplete { head: true, expect_continue, authorization });
    }
    Ok(HttpRequest { target: target.to_string(), authorization, body: body[..n].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(b: &[u8]) -> u16 {
        match parse_http_request(b) {
            Err(HttpError::Invalid { status, .. }) => status,
            Err(HttpError::Incomplete { .. }) => 0,
            Ok(_) => 200,
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let ok = b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\nContent-Length: 2\r\n\r\n[]";
        let r = parse_http_request(ok).unwrap();
        assert_eq!((r.target.as_str(), r.authorization.as_deref(), &r.body[..]), ("/", Some("Basic YTpi"), &b"[]"[..]));
        // Every prefix is incomplete, never an error.
        for i in 0..ok.len() {
            assert_eq!(status(&ok[..i]), 0, "{:?}", String::from_utf8_lossy(&ok[..i]));
        }
        assert_eq!(
            parse_http_request(&ok[..ok.len() - 1]),
            Err(HttpError::Incomplete { head: true, expect_continue: false, authorization: Some("Basic YTpi".into()) })
        );
        // Bare LF line ends, leading empty lines, a list of equal lengths: accepted.
        assert_eq!(status(b"\r\nPOST / HTTP/1.1\nHost: x\nContent-Length: 1, 1\n\n1"), 200);
        assert_eq!(status(b"POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n"), 200);
        for (req, want) in [
            (&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], 405),
            (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[] ", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 3\r\n\r\n[] ", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n[]", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n", 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n[]", 400),
            (b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 2\r\n\r\n[]", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n[]", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n X: y\r\n\r\n[]", 400),
            (b"POST / HTTP/1.1\r\nHost: x\rContent-Length: 2\r\n\r\n[]", 400),
            (b"POST / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"POST / FTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"POST  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\nContent-Length: 2\r\n\r\n[]", 417),
            (b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\nContent-Length: 2\r\n\r\n[]", 400),
        ] {
            assert_eq!(status(req), want, "{}", String::from_utf8_lossy(req));
        }
        let mut big = b"POST / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(status(&big), 431);
        assert_eq!(status(&vec![b'\n'; MAX_HEAD + 10]), 431);
        assert_eq!(
            parse_http_request(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"),
            Err(HttpError::Incomplete { head: true, expect_continue: true, authorization: None })
        );
    }
}
