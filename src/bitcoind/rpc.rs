//! A JSON-RPC client for Bitcoin Core over HTTP (`ureq`, plain HTTP): the calls a miner needs,
//! `getblocktemplate` (BIP22/BIP23, with the segwit rule, long polling), `submitblock`,
//! `getblockcount`, `getbestblockhash`, `getblockchaininfo`.
//!
//! Authentication is HTTP Basic, from the cookie file bitcoind writes (`.cookie`, one line
//! `__cookie__:PASSWORD`, re-read on each call so a restarted node's new cookie is picked up) or
//! from `-rpcuser`/`-rpcpassword`. Every failure is an [`RpcError`] saying what, where and why.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

/// How the client proves itself to bitcoind.
#[derive(Clone, Debug)]
pub enum Auth {
    /// bitcoind's cookie file (`DATADIR/[NETWORK/].cookie`).
    Cookie(PathBuf),
    /// `-rpcuser` / `-rpcpassword` (or an `-rpcauth` entry's user and password).
    UserPass {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
}

/// Bitcoin Core's `RPC_IN_WARMUP` (src/rpc/protocol.h): the node is still loading.
pub const RPC_IN_WARMUP: i64 = -28;

/// Why an RPC call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    /// No HTTP answer: connection refused, unknown host, reset.
    #[error("cannot reach bitcoind at {url}: {why}")]
    Connect {
        /// The node's URL.
        url: String,
        /// The transport's reason.
        why: String,
    },
    /// No answer within the time allowed.
    #[error("bitcoind at {url} did not answer {method} within {seconds} s")]
    Timeout {
        /// The node's URL.
        url: String,
        /// The call.
        method: String,
        /// The limit.
        seconds: u64,
    },
    /// HTTP 401: the credentials were refused.
    #[error("bitcoind at {url} refused the credentials (HTTP 401): check {hint}")]
    Unauthorized {
        /// The node's URL.
        url: String,
        /// What to check (`--rpc-cookie FILE` or `--rpc-user/--rpc-password`).
        hint: String,
    },
    /// The cookie file could not be read or has no `user:password`.
    #[error("--rpc-cookie {path}: {why}")]
    Cookie {
        /// The file.
        path: String,
        /// Why it is unusable.
        why: String,
    },
    /// bitcoind answered the call with an error.
    #[error("bitcoind {method}: {message} (RPC error {code})")]
    Rpc {
        /// The call.
        method: String,
        /// Bitcoin Core's code (src/rpc/protocol.h).
        code: i64,
        /// Its message.
        message: String,
    },
    /// bitcoind is still starting (RPC error -28); try again shortly.
    #[error("bitcoind is still warming up: {message} (RPC error -28; try again in a few seconds)")]
    WarmingUp {
        /// Core's message (`Loading block index…`, `Verifying blocks…`).
        message: String,
    },
    /// An answer that is not what the call returns.
    #[error("bitcoind {method}: unexpected answer: {why}")]
    Malformed {
        /// The call.
        method: String,
        /// What was wrong.
        why: String,
    },
}

impl RpcError {
    /// A malformed answer to `method`.
    pub fn malformed(method: &str, why: impl Into<String>) -> RpcError {
        RpcError::Malformed { method: method.into(), why: why.into() }
    }
}

/// The largest answer read (a full mainnet template is about 8 MB of hex).
pub const MAX_ANSWER: u64 = 64 << 20;

/// A JSON-RPC client for one bitcoind.
pub struct RpcClient {
    url: String,
    auth: Auth,
    agent: ureq::Agent,
    timeout: Duration,
    id: AtomicU64,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Reads `user:password` from a cookie file (bitcoind's `GenerateAuthCookie` writes
/// `__cookie__:HEX` on one line).
fn read_cookie(path: &Path) -> Result<String, RpcError> {
    let err = |why: String| RpcError::Cookie { path: path.display().to_string(), why };
    let text = crate::primitives::lines::read_small_file(path, 4096).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8(text).map_err(|_| err("not UTF-8".into()))?;
    let line = text.trim();
    if !line.contains(':') || line.lines().count() != 1 {
        return Err(err("expected one line `user:password` (bitcoind writes `__cookie__:...`)".into()));
    }
    Ok(line.to_string())
}

impl RpcClient {
    /// A client for the node at `url` (`http://HOST:PORT`; plain HTTP only). Calls time out after
    /// `timeout` (long polls take their own limit).
    ///
    /// # Errors
    /// [`RpcError::Connect`] for a URL that is not `http://...`.
    pub fn new(url: &str, auth: Auth, timeout: Duration) -> Result<RpcClient, RpcError> {
        let url = url.trim_end_matches('/').to_string();
        if !url.starts_with("http://") {
            return Err(RpcError::Connect {
                url,
                why: "the URL must start with http:// (bitcoind's RPC is plain HTTP; no TLS here)".into(),
            });
        }
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build();
        Ok(RpcClient { url, auth, agent: ureq::Agent::new_with_config(config), timeout, id: AtomicU64::new(1) })
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn auth_header(&self) -> Result<String, RpcError> {
        let creds = match &self.auth {
            Auth::Cookie(p) => read_cookie(p)?,
            Auth::UserPass { user, password } => format!("{user}:{password}"),
        };
        Ok(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds)))
    }

    /// One call; `timeout` overrides the client's limit (long polls).
    ///
    /// # Errors
    /// Every [`RpcError`] but `Cookie` for user/password auth.
    pub fn call_with_timeout(&self, method: &str, params: Value, timeout: Option<Duration>) -> Result<Value, RpcError> {
        let id = self.id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "1.0", "id": id, "method": method, "params": params}).to_string();
        let limit = timeout.unwrap_or(self.timeout);
        tracing::debug!(method, url = %self.url, "bitcoind RPC");
        let req = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.auth_header()?)
            .header("Content-Type", "application/json")
            .config()
            .timeout_global(Some(limit))
            .build();
        let resp = req.send(body.as_bytes()).map_err(|e| match e {
            ureq::Error::Timeout(_) => {
                RpcError::Timeout { url: self.url.clone(), method: method.into(), seconds: limit.as_secs() }
            }
            e => RpcError::Connect { url: self.url.clone(), why: e.to_string() },
        })?;
        let status = resp.status().as_u16();
        if status == 401 {
            let hint = match &self.auth {
                Auth::Cookie(p) => format!("--rpc-cookie {} (is it this node's, and current?)", p.display()),
                Auth::UserPass { .. } => "--rpc-user and --rpc-password".into(),
            };
            return Err(RpcError::Unauthorized { url: self.url.clone(), hint });
        }
        let text = resp.into_body().with_config().limit(MAX_ANSWER).read_to_string().map_err(|e| match e {
            ureq::Error::Timeout(_) => {
                RpcError::Timeout { url: self.url.clone(), method: method.into(), seconds: limit.as_secs() }
            }
            e => RpcError::Connect { url: self.url.clone(), why: format!("reading the answer: {e}") },
        })?;
        parse_answer(method, status, &text)
    }

    /// One call with the client's time limit.
    ///
    /// # Errors
    /// See [`Self::call_with_timeout`].
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.call_with_timeout(method, params, None)
    }

    /// `getblocktemplate {"rules": ["segwit"]}` (BIP22/BIP23/BIP9/BIP145), or with `longpollid`
    /// the long poll that answers when the template changes (`timeout` caps the wait). The raw JSON;
    /// [`super::template::BlockTemplate::from_json`] checks it.
    ///
    /// # Errors
    /// See [`Self::call_with_timeout`].
    pub fn getblocktemplate(&self, longpollid: Option<&str>, timeout: Option<Duration>) -> Result<Value, RpcError> {
        let mut req = json!({"rules": ["segwit"]});
        if let Some(id) = longpollid {
            req["longpollid"] = json!(id);
        }
        self.call_with_timeout("getblocktemplate", json!([req]), timeout)
    }

    /// `submitblock HEX`: `Ok(None)` when the node accepted the block (it answers null), `Ok(Some
    /// (reason))` when it refused it (BIP22 reasons: `duplicate`, `inconclusive`, `high-hash`,
    /// `bad-txnmrklroot`, ...).
    ///
    /// # Errors
    /// See [`Self::call_with_timeout`]; a non-string, non-null answer is `Malformed`.
    pub fn submitblock(&self, block: &[u8]) -> Result<Option<String>, RpcError> {
        match self.call("submitblock", json!([hex::encode(block)]))? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            v => Err(RpcError::malformed("submitblock", format!("expected null or a string, got {v}"))),
        }
    }

    /// `getblockcount`: the height of the node's best chain.
    ///
    /// # Errors
    /// See [`Self::call_with_timeout`]; a non-integer answer is `Malformed`.
    pub fn getblockcount(&self) -> Result<u64, RpcError> {
        let v = self.call("getblockcount", json!([]))?;
        v.as_u64().ok_or_else(|| RpcError::malformed("getblockcount", format!("expected an integer, got {v}")))
    }

    /// `getbestblockhash`: the tip, display hex.
    ///
    /// # Errors
    /// See [`Self::call_with_timeout`]; anything but 64 hex digits is `Malformed`.
    pub fn getbestblockhash(&self) -> Result<crate::primitives::BlockHash, RpcError> {
        let v = self.call("getbestblockhash", json!([]))?;
        v.as_str()
            .and_then(|s| crate::primitives::BlockHash::from_display_hex(s).ok())
            .ok_or_else(|| RpcError::malformed("getbestblockhash", format!("expected 64 hex digits, got {v}")))
    }

    /// `getblockchaininfo`'s `chain`: `main`, `test`, `testnet4`, `signet` or `regtest`.
    ///
    /// # Errors
    /// See [`Self::call_with_timeout`]; an answer without a string `chain` is `Malformed`.
    pub fn chain(&self) -> Result<String, RpcError> {
        let v = self.call("getblockchaininfo", json!([]))?;
        v.get("chain")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RpcError::malformed("getblockchaininfo", "no string field `chain`"))
    }
}

/// Reads a JSON-RPC answer (`{"result": ..., "error": null|{"code", "message"}, "id"}`). Core
/// answers errors with HTTP 500 (404 for an unknown method) and the same body for JSON-RPC 1.0
/// requests.
fn parse_answer(method: &str, status: u16, text: &str) -> Result<Value, RpcError> {
    let short = || text.chars().take(200).collect::<String>();
    let v: Value = serde_json::from_str(text)
        .map_err(|e| RpcError::malformed(method, format!("HTTP {status}, body is not JSON ({e}): {:?}", short())))?;
    let Some(obj) = v.as_object() else {
        return Err(RpcError::malformed(method, format!("HTTP {status}, not a JSON object: {}", short())));
    };
    match obj.get("error") {
        None | Some(Value::Null) => {}
        Some(e) => {
            let code = e.get("code").and_then(Value::as_i64);
            let message = e.get("message").and_then(Value::as_str);
            let (Some(code), Some(message)) = (code, message) else {
                return Err(RpcError::malformed(method, format!("error without code and message: {e}")));
            };
            if code == RPC_IN_WARMUP {
                return Err(RpcError::WarmingUp { message: message.into() });
            }
            return Err(RpcError::Rpc { method: method.into(), code, message: message.into() });
        }
    }
    if status != 200 {
        return Err(RpcError::malformed(method, format!("HTTP {status} without an error: {}", short())));
    }
    obj.get("result").cloned().ok_or_else(|| RpcError::malformed(method, "no `result` field"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_or_refused_clearly() {
        assert_eq!(parse_answer("m", 200, r#"{"result":5,"error":null,"id":1}"#).unwrap(), json!(5));
        let e = parse_answer("getblocktemplate", 500, r#"{"result":null,"error":{"code":-10,"message":"Bitcoin Core is in initial sync and waiting for blocks..."},"id":1}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bitcoind getblocktemplate: Bitcoin Core is in initial sync and waiting for blocks... (RPC error -10)"
        );
        let e = parse_answer("m", 500, r#"{"result":null,"error":{"code":-28,"message":"Loading block index…"}}"#)
            .unwrap_err();
        assert!(matches!(e, RpcError::WarmingUp { .. }), "{e}");
        for (status, body) in [
            (200, "<html>"),
            (200, "[1,2]"),
            (200, r#"{"error":null}"#),
            (500, r#"{"error":{"code":"x"}}"#),
            (502, r#"{"result":1}"#),
        ] {
            let e = parse_answer("m", status, body).unwrap_err();
            assert!(matches!(e, RpcError::Malformed { .. }), "{body}: {e}");
        }
    }

    #[test]
    fn cookie_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("powkit-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "__cookie__:abc\n").unwrap();
        assert_eq!(read_cookie(&good).unwrap(), "__cookie__:abc");
        let bad = dir.join("bad");
        std::fs::write(&bad, "no colon").unwrap();
        assert!(read_cookie(&bad).unwrap_err().to_string().contains("user:password"));
        let e = read_cookie(&dir.join("missing")).unwrap_err();
        assert!(e.to_string().starts_with("--rpc-cookie "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refused_connection_is_a_clear_error() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let c = RpcClient::new(&url, Auth::UserPass { user: "u".into(), password: "p".into() }, Duration::from_secs(5))
            .unwrap();
        let e = c.getblockcount().unwrap_err();
        assert!(matches!(e, RpcError::Connect { .. }), "{e}");
        assert!(e.to_string().starts_with(&format!("cannot reach bitcoind at {url}")), "{e}");
        let e = RpcClient::new("https://x", Auth::Cookie("c".into()), Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
    }
}
