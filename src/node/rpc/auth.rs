//! JSON-RPC authentication, as Bitcoin Core's `httprpc.cpp` does it: HTTP Basic credentials
//! checked against the cookie the node writes at each start (`DATADIR/.cookie`,
//! `GenerateAuthCookie`) and against any `rpcauth` entries (`USER:SALT$HASH`, the HMAC-SHA256 of
//! the password keyed by the salt, `share/rpcauth/rpcauth.py`). Every comparison runs in constant
//! time ([`subtle`]), so timing tells a guesser nothing about how much of a secret it got right.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie file's name in the data directory (Bitcoin Core's).
pub const COOKIE_FILE: &str = ".cookie";
/// The user name the cookie carries (Bitcoin Core's `__cookie__`).
pub const COOKIE_USER: &str = "__cookie__";

/// Credentials a client sends (HTTP Basic): a user and password, from a cookie file or given.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcAuth {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcAuth").field("user", &self.user).field("password", &"…").finish()
    }
}

impl RpcAuth {
    /// A user and password (`--rpc-user`/`--rpc-password`, matching a node's `--rpcauth`).
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> RpcAuth {
        RpcAuth { user: user.into(), password: password.into() }
    }

    /// Reads a cookie file (`USER:PASSWORD` on one line, as the node writes it).
    ///
    /// # Errors
    /// The file cannot be read (`PATH: reason`, with a hint that the node may not be running), or
    /// holds no `USER:PASSWORD`.
    pub fn from_cookie_file(path: &Path) -> Result<RpcAuth, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e} (is the node running with this data directory?)", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim();
        let (user, password) =
            line.split_once(':').ok_or_else(|| format!("{}: expected USER:PASSWORD", path.display()))?;
        Ok(RpcAuth::new(user, password))
    }

    /// Reads `DATADIR/.cookie` (as `bitcoin-cli -datadir` does).
    ///
    /// # Errors
    /// As [`RpcAuth::from_cookie_file`].
    pub fn from_datadir(datadir: &Path) -> Result<RpcAuth, String> {
        RpcAuth::from_cookie_file(&datadir.join(COOKIE_FILE))
    }

    /// The `Authorization` header's value: `Basic base64(user:password)` (RFC 7617).
    pub fn header(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password));
        format!("Basic {b64}")
    }
}

/// One `rpcauth` entry: a user, a salt and `hex(HMAC-SHA256(key = salt, message = password))`
/// (Bitcoin Core's format, `share/rpcauth/rpcauth.py`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcAuthEntry {
    /// User name.
    pub user: String,
    /// Salt (the HMAC key, as its text bytes).
    pub salt: String,
    /// The HMAC, 32 bytes.
    pub hash: [u8; 32],
}

impl std::str::FromStr for RpcAuthEntry {
    type Err = String;

    /// Parses `USER:SALT$HASH` (HASH: 64 hex digits).
    ///
    /// # Errors
    /// `rpcauth "…": expected USER:SALT$HASH (HASH 64 hex digits)` and what is wrong.
    fn from_str(s: &str) -> Result<RpcAuthEntry, String> {
        let bad = |why: &str| format!("rpcauth {s:?}: expected USER:SALT$HASH (HASH 64 hex digits): {why}");
        let (user, rest) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let (salt, hash) = rest.split_once('$').ok_or_else(|| bad("no '$'"))?;
        if user.is_empty() || salt.is_empty() {
            return Err(bad("empty user or salt"));
        }
        let mut h = [0u8; 32];
        hex::decode_to_slice(hash, &mut h).map_err(|e| bad(&format!("HASH: {e}")))?;
        Ok(RpcAuthEntry { user: user.into(), salt: salt.into(), hash: h })
    }
}

impl std::fmt::Display for RpcAuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}${}", self.user, self.salt, hex::encode(self.hash))
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(message);
    m.finalize().into_bytes().into()
}

impl RpcAuthEntry {
    /// A new entry for `user` with a random salt and a random password; returns the entry and the
    /// password (what `powkit rpc-auth USER` prints).
    pub fn generate(user: &str) -> (RpcAuthEntry, String) {
        use rand::RngCore;
        let mut salt = [0u8; 16];
        let mut pw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        rand::rngs::OsRng.fill_bytes(&mut pw);
        let salt = hex::encode(salt);
        let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pw);
        let hash = hmac_sha256(salt.as_bytes(), password.as_bytes());
        (RpcAuthEntry { user: user.into(), salt, hash }, password)
    }

    /// Whether `user`/`password` match, in constant time in the password.
    fn matches(&self, user: &[u8], password: &[u8]) -> bool {
        let user_ok = self.user.as_bytes().ct_eq(user);
        let hash_ok = hmac_sha256(self.salt.as_bytes(), password).ct_eq(&self.hash);
        bool::from(user_ok & hash_ok)
    }
}

/// What the server accepts: the cookie's `USER:PASSWORD` and the `rpcauth` entries.
#[derive(Clone, Default)]
pub struct Credentials {
    cookie: Option<Vec<u8>>,
    entries: Vec<RpcAuthEntry>,
}

impl Credentials {
    /// The cookie (`__cookie__:HEX`) and the `rpcauth` entries.
    pub fn new(cookie: Option<String>, entries: Vec<RpcAuthEntry>) -> Credentials {
        Credentials { cookie: cookie.map(String::into_bytes), entries }
    }

    /// Whether an `Authorization` header value (`Basic base64(USER:PASSWORD)`, RFC 7617; the scheme
    /// case-insensitive) carries valid credentials.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(v) = authorization else { return false };
        let v = v.trim();
        let Some((scheme, b64)) = v.split_once(' ') else { return false };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else { return false };
        let Some(colon) = pair.iter().position(|&b| b == b':') else { return false };
        let (user, password) = (&pair[..colon], &pair[colon + 1..]);
        let mut ok = subtle::Choice::from(0);
        if let Some(c) = &self.cookie {
            ok |= c.as_slice().ct_eq(&pair);
        }
        for e in &self.entries {
            ok |= subtle::Choice::from(e.matches(user, password) as u8);
        }
        bool::from(ok)
    }
}

/// The cookie file a running node wrote; removed when dropped (the node's clean shutdown).
pub struct Cookie {
    path: PathBuf,
    /// `__cookie__:HEX`.
    pub(super) secret: String,
}

impl Cookie {
    /// Writes `DATADIR/.cookie` with a new random secret (`__cookie__:` and 64 hex digits, 32
    /// bytes from the OS): to a temporary file created with mode 0600 (never readable by others,
    /// not even for an instant), then renamed over the old cookie, as Bitcoin Core does.
    ///
    /// # Errors
    /// The file cannot be written (`PATH: reason`).
    pub fn write(datadir: &Path) -> Result<Cookie, String> {
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let secret = format!("{COOKIE_USER}:{}", hex::encode(secret));
        let path = datadir.join(COOKIE_FILE);
        let tmp = datadir.join(format!("{COOKIE_FILE}.tmp"));
        let at = |e: std::io::Error, p: &Path| format!("writing the RPC cookie {}: {e}", p.display());
        // A leftover from a crash may have any mode: remove it so the file is created anew.
        let _ = std::fs::remove_file(&tmp);
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(|e| at(e, &tmp))?;
        f.write_all(secret.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| at(e, &tmp))?;
        std::fs::rename(&tmp, &path).map_err(|e| at(e, &path))?;
        Ok(Cookie { path, secret })
    }
}

impl Drop for Cookie {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcauth_entries_match_bitcoin_cores_format() {
        // Made as Bitcoin Core's share/rpcauth/rpcauth.py makes it (Python's hmac, an independent
        // implementation): hmac.new(salt.encode(), password.encode(), "SHA256").hexdigest().
        let e: RpcAuthEntry =
            "rt:f8607b1a88861fac29dfccf9b52ff9f$52b7f3d7d5d42e8ec5de781a8f2b957652b86f616405aa73fe8c69a9fe27ba76"
                .parse()
                .unwrap();
        let creds = Credentials::new(None, vec![e.clone()]);
        let good = RpcAuth::new("rt", "cA773lm788buwYe4g4WT+05pKyNruVKjQ25x3n0DQcM=");
        assert!(creds.check(Some(&good.header())));
        assert!(!creds.check(Some(&RpcAuth::new("rt", "cA773lm788buwYe4g4WT+05pKyNruVKjQ25x3n0DQcm=").header())));
        assert!(!creds.check(Some(&RpcAuth::new("rt2", "cA773lm788buwYe4g4WT+05pKyNruVKjQ25x3n0DQcM=").header())));
        assert!(!creds.check(None));
        assert!(!creds.check(Some("Bearer x")));
        assert!(!creds.check(Some("Basic !!!")));
        assert_eq!(e.to_string().parse::<RpcAuthEntry>().unwrap(), e);
        for bad in ["rt", "rt:salt", ":s$00", "rt:$00", "rt:s$zz"] {
            assert!(bad.parse::<RpcAuthEntry>().is_err(), "{bad}");
        }
        let (g, pw) = RpcAuthEntry::generate("alice");
        assert!(Credentials::new(None, vec![g]).check(Some(&RpcAuth::new("alice", pw).header())));
    }

    #[test]
    fn the_cookie_is_created_private_and_removed_on_drop() {
        let dir = std::env::temp_dir().join(format!("powkit-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = Cookie::write(&dir).unwrap();
        let auth = RpcAuth::from_datadir(&dir).unwrap();
        assert_eq!(auth.user, COOKIE_USER);
        assert_eq!(auth.password.len(), 64);
        assert!(Credentials::new(Some(c.secret.clone()), vec![]).check(Some(&auth.header())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(COOKIE_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Cookie::write(&dir).unwrap();
        assert_ne!(again.secret, c.secret, "a new secret at each start");
        drop(c);
        drop(again);
        assert!(!dir.join(COOKIE_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
