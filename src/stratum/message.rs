//! Stratum v1 messages: newline-delimited JSON-RPC 1.0-style objects over TCP, as pools and miners
//! (cpuminer, cgminer, every ASIC) exchange them. A request is `{"id", "method", "params"}`; a
//! notification is a request with `"id": null`; a response is `{"id", "result", "error"}` with the
//! error as `[code, message, data]` (or `null`).
//!
//! The error codes are the field's (from the original Stratum server and used by every pool):
//! 20 other, 21 job not found (stale), 22 duplicate share, 23 low difficulty share, 24
//! unauthorized worker, 25 not subscribed.

use std::io::BufRead;

use serde_json::{json, Value};

/// Most bytes in one line (a `mining.notify` with a 32-entry branch and a large coinbase is a few
/// kilobytes; anything past this is refused, not buffered).
pub const MAX_LINE: usize = 64 * 1024;

/// Error 20: any other error (malformed share, ntime out of range, version bits outside the mask…).
pub const ERR_OTHER: i64 = 20;
/// Error 21: job not found (a stale share: the job was dropped by a new tip).
pub const ERR_JOB_NOT_FOUND: i64 = 21;
/// Error 22: duplicate share.
pub const ERR_DUPLICATE: i64 = 22;
/// Error 23: low difficulty share.
pub const ERR_LOW_DIFFICULTY: i64 = 23;
/// Error 24: unauthorized worker.
pub const ERR_UNAUTHORIZED: i64 = 24;
/// Error 25: not subscribed.
pub const ERR_NOT_SUBSCRIBED: i64 = 25;

/// The standard name of a Stratum error code (`"job not found"` for 21), `"error"` for others.
pub fn error_name(code: i64) -> &'static str {
    match code {
        ERR_OTHER => "other",
        ERR_JOB_NOT_FOUND => "job not found",
        ERR_DUPLICATE => "duplicate share",
        ERR_LOW_DIFFICULTY => "low difficulty share",
        ERR_UNAUTHORIZED => "unauthorized worker",
        ERR_NOT_SUBSCRIBED => "not subscribed",
        _ => "error",
    }
}

/// The code's name as a metrics label (`snake_case`, a fixed set): `other`, `job_not_found`,
/// `duplicate`, `low_difficulty`, `unauthorized`, `not_subscribed`, or `unknown` for codes outside
/// 20..=25.
pub fn error_label(code: i64) -> &'static str {
    match code {
        ERR_OTHER => "other",
        ERR_JOB_NOT_FOUND => "job_not_found",
        ERR_DUPLICATE => "duplicate",
        ERR_LOW_DIFFICULTY => "low_difficulty",
        ERR_UNAUTHORIZED => "unauthorized",
        ERR_NOT_SUBSCRIBED => "not_subscribed",
        _ => "unknown",
    }
}

/// A Stratum error: `[code, message, data]` on the wire.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} ({message})")]
pub struct StratumError {
    /// The code (20..25 standard; pools use others, e.g. -1 or JSON-RPC's -32601).
    pub code: i64,
    /// The message.
    pub message: String,
    /// Extra data (usually null).
    pub data: Value,
}

impl StratumError {
    /// An error with a code and message, no data.
    pub fn new(code: i64, message: impl Into<String>) -> StratumError {
        StratumError { code, message: message.into(), data: Value::Null }
    }

    /// `[code, message, data]`.
    pub fn to_value(&self) -> Value {
        json!([self.code, self.message, self.data])
    }

    /// Parses an error as pools send it: `[code, message, data]`, or (some pools) an object
    /// `{"code", "message"}`, or a bare string (code 20).
    pub fn from_value(v: &Value) -> StratumError {
        match v {
            Value::Array(a) => StratumError {
                code: a.first().and_then(Value::as_i64).unwrap_or(ERR_OTHER),
                message: a.get(1).and_then(Value::as_str).unwrap_or("").to_string(),
                data: a.get(2).cloned().unwrap_or(Value::Null),
            },
            Value::Object(o) => StratumError {
                code: o.get("code").and_then(Value::as_i64).unwrap_or(ERR_OTHER),
                message: o.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                data: o.get("data").cloned().unwrap_or(Value::Null),
            },
            Value::String(s) => StratumError::new(ERR_OTHER, s.clone()),
            other => StratumError::new(ERR_OTHER, other.to_string()),
        }
    }
}

/// One Stratum message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request (`id` not null) or notification (`id` null): method and params.
    Request {
        /// The id (any JSON value; null for a notification).
        id: Value,
        /// The method (`mining.subscribe`, `mining.notify`, …).
        method: String,
        /// The params (an array for every standard method).
        params: Value,
    },
    /// A response to a request.
    Response {
        /// The request's id.
        id: Value,
        /// The result (null on error).
        result: Value,
        /// The error, when there is one.
        error: Option<StratumError>,
    },
}

impl Message {
    /// A request.
    pub fn request(id: impl Into<Value>, method: &str, params: Value) -> Message {
        Message::Request { id: id.into(), method: method.to_string(), params }
    }

    /// A notification (a request with a null id).
    pub fn notification(method: &str, params: Value) -> Message {
        Message::Request { id: Value::Null, method: method.to_string(), params }
    }

    /// A successful response.
    pub fn ok(id: Value, result: Value) -> Message {
        Message::Response { id, result, error: None }
    }

    /// An error response.
    pub fn err(id: Value, error: StratumError) -> Message {
        Message::Response { id, result: Value::Null, error: Some(error) }
    }

    /// Parses one line (without or with its trailing newline).
    ///
    /// # Errors
    /// Not JSON, not an object, or neither a request (a string `method`) nor a response (an `id`
    /// with a `result` or `error`); the message says which.
    pub fn parse(line: &str) -> Result<Message, String> {
        let v: Value = serde_json::from_str(line.trim()).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(mut o) = v else { return Err("not a JSON object".into()) };
        let id = o.remove("id").unwrap_or(Value::Null);
        if let Some(m) = o.remove("method") {
            let Value::String(method) = m else { return Err(format!("method is not a string: {m}")) };
            let params = o.remove("params").unwrap_or(Value::Array(Vec::new()));
            return Ok(Message::Request { id, method, params });
        }
        if !o.contains_key("result") && !o.contains_key("error") {
            return Err("neither a request (method) nor a response (result or error)".into());
        }
        let result = o.remove("result").unwrap_or(Value::Null);
        let error = match o.remove("error") {
            None | Some(Value::Null) => None,
            Some(e) => Some(StratumError::from_value(&e)),
        };
        Ok(Message::Response { id, result, error })
    }

    /// The message as one line, newline included.
    pub fn to_line(&self) -> String {
        let v = match self {
            Message::Request { id, method, params } => json!({"id": id, "method": method, "params": params}),
            Message::Response { id, result, error } => {
                json!({"id": id, "result": result, "error": error.as_ref().map(StratumError::to_value)})
            }
        };
        let mut s = v.to_string();
        s.push('\n');
        s
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The connection failed or closed mid-line.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// A line longer than the limit (the peer is broken or hostile: drop it).
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    /// A line that is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
}

/// Reads one line of at most `max` bytes into `buf` (cleared first), without its newline;
/// `Ok(false)` at the end of the stream. A line over the limit is an error before it is all
/// buffered (at most `max` plus one read's worth is held).
///
/// # Errors
/// See [`LineError`].
pub fn read_line(r: &mut impl BufRead, buf: &mut String, max: usize) -> Result<bool, LineError> {
    buf.clear();
    let mut bytes = Vec::new();
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if avail.is_empty() {
            if bytes.is_empty() {
                return Ok(false);
            }
            break;
        }
        let (take, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        if bytes.len() + take > max + 1 {
            return Err(LineError::TooLong(max));
        }
        bytes.extend_from_slice(&avail[..take]);
        r.consume(take);
        if done {
            break;
        }
    }
    while bytes.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        bytes.pop();
    }
    *buf = String::from_utf8(bytes).map_err(|_| LineError::NotUtf8)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_lines() {
        let msgs = [
            Message::request(1, "mining.subscribe", json!(["powkit/0.1"])),
            Message::notification("mining.set_difficulty", json!([0.5])),
            Message::ok(json!(2), json!(true)),
            Message::err(json!(4), StratumError::new(ERR_DUPLICATE, "Duplicate share")),
        ];
        for m in msgs {
            let line = m.to_line();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(Message::parse(&line).unwrap(), m);
        }
    }

    #[test]
    fn pool_error_shapes_are_understood() {
        let m = Message::parse(r#"{"id":3,"result":null,"error":[23,"Low difficulty share",null]}"#).unwrap();
        let Message::Response { error: Some(e), .. } = m else { panic!("{m:?}") };
        assert_eq!(
            (e.code, e.message.as_str(), error_name(e.code)),
            (23, "Low difficulty share", "low difficulty share")
        );
        let m = Message::parse(r#"{"id":3,"result":false,"error":{"code":21,"message":"Job not found"}}"#).unwrap();
        let Message::Response { error: Some(e), .. } = m else { panic!("{m:?}") };
        assert_eq!(e.code, ERR_JOB_NOT_FOUND);
        let m = Message::parse(r#"{"id":3,"result":false,"error":"stale"}"#).unwrap();
        let Message::Response { error: Some(e), .. } = m else { panic!("{m:?}") };
        assert_eq!((e.code, e.message.as_str()), (ERR_OTHER, "stale"));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in ["", "[]", "nope", r#"{"id":1}"#, r#"{"id":1,"method":7}"#, "{\"id\":"] {
            assert!(Message::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_are_bounded_before_they_are_buffered() {
        let mut r = std::io::BufReader::with_capacity(
            16,
            &b"{\"a\":1}\r\nsecond\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"[..],
        );
        let mut buf = String::new();
        assert!(read_line(&mut r, &mut buf, 32).unwrap());
        assert_eq!(buf, "{\"a\":1}");
        assert!(read_line(&mut r, &mut buf, 32).unwrap());
        assert_eq!(buf, "second");
        assert!(matches!(read_line(&mut r, &mut buf, 32), Err(LineError::TooLong(32))));
        let mut r = std::io::BufReader::new(&b"last"[..]);
        assert!(read_line(&mut r, &mut buf, 32).unwrap());
        assert_eq!(buf, "last");
        assert!(!read_line(&mut r, &mut buf, 32).unwrap());
        let mut r = std::io::BufReader::new(&b"\xff\xfe\n"[..]);
        assert!(matches!(read_line(&mut r, &mut buf, 32), Err(LineError::NotUtf8)));
    }
}
