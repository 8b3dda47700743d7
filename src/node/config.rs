//! The node's settings: `DATADIR/powkit.conf` (one `key = value` per line, `#` comments), with
//! command-line flags taking precedence over the file, and the file over the defaults.
//!
//! Keys: `chain`, `listen`, `peer` (repeatable), `rpc`, `rpcauth` (repeatable), `rpc_allow_remote`,
//! `mine`, `miner_key`, `backend`, `threads`, `ban_seconds`, `mempool_bytes`, `max_peers`,
//! `low_work_headers`, `stratum`, `stratum_difficulty`, `stratum_share_interval`, `sig_backend`. `listen = none`
//! turns listening off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::rpc::RpcAuthEntry;
use crate::backend::Backend;
use crate::consensus::{LedgerNetwork, Network};

/// Everything the node runs with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The chain.
    pub chain: LedgerNetwork,
    /// The data directory.
    pub datadir: PathBuf,
    /// P2P listening address (`None`: no inbound connections).
    pub listen: Option<SocketAddr>,
    /// Peers to keep connected to.
    pub peers: Vec<String>,
    /// JSON-RPC address (`None`: no RPC).
    pub rpc: Option<SocketAddr>,
    /// JSON-RPC users besides the cookie's (`USER:SALT$HASH`, Bitcoin Core's `rpcauth`).
    pub rpcauth: Vec<RpcAuthEntry>,
    /// Whether `rpc` may be beyond loopback (with an `rpcauth` user).
    pub rpc_allow_remote: bool,
    /// Mine.
    pub mine: bool,
    /// The key whose account the mined coinbases pay.
    pub miner_key: Option<PathBuf>,
    /// Where the miner hashes.
    pub backend: Backend,
    /// Miner CPU threads.
    pub threads: usize,
    /// How long a misbehaving peer stays banned.
    pub ban_seconds: u64,
    /// Mempool size limit.
    pub mempool_bytes: usize,
    /// Most inbound connections (the peers the node dials itself are always allowed).
    pub max_peers: usize,
    /// New headers with no more work than the tip one peer may send before it is banned.
    pub low_work_headers: u64,
    /// Stratum job server address (`None`: no server; needs `miner_key`).
    pub stratum: Option<SocketAddr>,
    /// The difficulty a new Stratum connection starts at (`None`: the network's, at most 1).
    pub stratum_difficulty: Option<f64>,
    /// The share interval the Stratum server's variable difficulty aims at, per connection.
    pub stratum_share_interval: std::time::Duration,
    /// Where block signatures are verified (`auto`: with a hardware GPU when there is one).
    pub sig_backend: Backend,
    /// Where the live dashboard listens (`None`: off, the default).
    pub dashboard: Option<SocketAddr>,
}

/// Settings as given on the command line or in the file (absent: not given).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `chain` (any [`Network`] parses; [`Settings::resolve`] refuses Bitcoin's).
    pub chain: Option<Network>,
    /// `listen` (`none` for no listening).
    pub listen: Option<String>,
    /// `peer`.
    pub peers: Vec<String>,
    /// `rpc` (`none` for no RPC).
    pub rpc: Option<String>,
    /// `rpcauth` (repeatable).
    pub rpcauth: Vec<RpcAuthEntry>,
    /// `rpc_allow_remote`.
    pub rpc_allow_remote: Option<bool>,
    /// `mine`.
    pub mine: Option<bool>,
    /// `miner_key`.
    pub miner_key: Option<PathBuf>,
    /// `backend` (cpu, gpu or all: [`parse_backend`]).
    pub backend: Option<Backend>,
    /// `threads`.
    pub threads: Option<usize>,
    /// `ban_seconds`.
    pub ban_seconds: Option<u64>,
    /// `mempool_bytes`.
    pub mempool_bytes: Option<usize>,
    /// `max_peers`.
    pub max_peers: Option<usize>,
    /// `low_work_headers`.
    pub low_work_headers: Option<u64>,
    /// `stratum` (IP:PORT, or a port for 127.0.0.1:PORT).
    pub stratum: Option<String>,
    /// `stratum_difficulty` (a positive number).
    pub stratum_difficulty: Option<f64>,
    /// `sig_backend` (cpu, gpu, all or auto).
    pub sig_backend: Option<Backend>,
    /// `stratum_share_interval` (seconds, 0.1 to 3600).
    pub stratum_share_interval: Option<f64>,
    /// `dashboard` (IP:PORT, or a port for 127.0.0.1:PORT; `none`: off).
    pub dashboard: Option<String>,
}

/// The config file's name in the data directory.
pub const CONFIG_FILE: &str = "powkit.conf";

/// The node's `backend` (the `--backend` flag and the file's key): `cpu`, `gpu` or `all`, read by
/// [`Backend`]'s parser. `auto` is refused: the miner hashes where it is told, on the CPU by default.
///
/// # Errors
/// Any other value: `backend "NAME": expected cpu, gpu or all`.
pub fn parse_backend(s: &str) -> Result<Backend, String> {
    match s.parse::<Backend>() {
        Ok(Backend::Auto) | Err(_) => Err(format!("backend {s:?}: expected cpu, gpu or all")),
        Ok(b) => Ok(b),
    }
}

/// Default P2P and RPC ports of a chain.
pub fn default_ports(chain: LedgerNetwork) -> (u16, u16) {
    match chain {
        LedgerNetwork::Powkit => (8633, 8632),
        LedgerNetwork::PowkitRegtest => (18633, 18632),
        // Chains from spec files (`--chain FILE`): their own pair, so one never meets a built-in.
        LedgerNetwork::Custom(_) => (28633, 28632),
    }
}

impl Settings {
    /// Reads `DATADIR/powkit.conf` (absent: all defaults).
    pub fn from_file(datadir: &Path) -> Result<Settings, String> {
        let path = datadir.join(CONFIG_FILE);
        // At most 1 MiB read: a huge file is refused, not read whole (issue 12, fault 9).
        let text = match crate::primitives::lines::read_small_file(&path, 1 << 20) {
            Ok(t) => String::from_utf8(t).map_err(|_| format!("{}: not UTF-8", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut s = Settings::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = || format!("{}:{}", path.display(), n + 1);
            let (k, v) = line.split_once('=').ok_or_else(|| format!("{}: expected `key = value`", at()))?;
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            let num = |what: &str| -> Result<u64, String> {
                v.parse::<u64>().map_err(|_| format!("{}: {what} must be a whole number, got {v:?}", at()))
            };
            let real = |what: &str| -> Result<f64, String> {
                v.parse::<f64>().map_err(|_| format!("{}: {what} must be a number, got {v:?}", at()))
            };
            let boolean = |what: &str| -> Result<bool, String> {
                match v {
                    "true" | "1" | "yes" => Ok(true),
                    "false" | "0" | "no" => Ok(false),
                    _ => Err(format!("{}: {what} must be true or false, got {v:?}", at())),
                }
            };
            match k {
                "chain" => s.chain = Some(v.parse().map_err(|e| format!("{}: {e}", at()))?),
                "listen" => s.listen = Some(v.into()),
                "peer" => s.peers.push(v.into()),
                "rpc" => s.rpc = Some(v.into()),
                "rpcauth" => s.rpcauth.push(v.parse().map_err(|e| format!("{}: {e}", at()))?),
                "rpc_allow_remote" => s.rpc_allow_remote = Some(boolean("rpc_allow_remote")?),
                "mine" => s.mine = Some(boolean("mine")?),
                "miner_key" => s.miner_key = Some(v.into()),
                "backend" => s.backend = Some(parse_backend(v).map_err(|e| format!("{}: {e}", at()))?),
                "threads" => s.threads = Some(num("threads")? as usize),
                "ban_seconds" => s.ban_seconds = Some(num("ban_seconds")?),
                "mempool_bytes" => s.mempool_bytes = Some(num("mempool_bytes")? as usize),
                "max_peers" => s.max_peers = Some(num("max_peers")? as usize),
                "low_work_headers" => s.low_work_headers = Some(num("low_work_headers")?),
                "stratum" => s.stratum = Some(v.into()),
                "stratum_difficulty" => s.stratum_difficulty = Some(real("stratum_difficulty")?),
                "stratum_share_interval" => s.stratum_share_interval = Some(real("stratum_share_interval")?),
                "dashboard" => s.dashboard = Some(v.into()),
                "sig_backend" => s.sig_backend = Some(v.parse().map_err(|e| format!("{}: sig_backend: {e}", at()))?),
                other => return Err(format!("{}: unknown setting {other:?}", at())),
            }
        }
        Ok(s)
    }

    /// `self` (the flags) over `file` over the defaults.
    pub fn resolve(self, file: Settings, datadir: PathBuf) -> Result<NodeConfig, String> {
        let network = self.chain.or(file.chain).unwrap_or(Network::Ledger(LedgerNetwork::PowkitRegtest));
        let chain = network.ledger().ok_or_else(|| {
            format!("chain {:?}: expected powkit, powkit-regtest or a powkit chain spec file", network.name())
        })?;
        let (p2p_port, rpc_port) = default_ports(chain);
        let addr = |what: &str, v: Option<String>, default: u16| -> Result<Option<SocketAddr>, String> {
            match v.as_deref() {
                None => Ok(Some(SocketAddr::from(([127, 0, 0, 1], default)))),
                Some("none") => Ok(None),
                Some(s) => s.parse().map(Some).map_err(|_| format!("{what} {s:?}: expected IP:PORT (or none)")),
            }
        };
        let listen = addr("listen", self.listen.or(file.listen), p2p_port)?;
        let rpc = addr("rpc", self.rpc.or(file.rpc), rpc_port)?;
        let backend = self.backend.or(file.backend).unwrap_or(Backend::Cpu);
        let peers = if self.peers.is_empty() { file.peers } else { self.peers };
        let rpcauth = if self.rpcauth.is_empty() { file.rpcauth } else { self.rpcauth };
        let rpc_allow_remote = self.rpc_allow_remote.or(file.rpc_allow_remote).unwrap_or(false);
        if let Some(a) = rpc {
            super::rpc::check_bind(a, rpc_allow_remote, rpcauth.len())?;
        }
        let mine = self.mine.or(file.mine).unwrap_or(false);
        let miner_key = self.miner_key.or(file.miner_key);
        if mine && miner_key.is_none() {
            return Err("--mine needs --miner-key FILE (make one with `powkit key new --out FILE`)".into());
        }
        let stratum = match self.stratum.or(file.stratum).as_deref() {
            None | Some("none") => None,
            Some(s) => Some(match s.parse::<u16>() {
                Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
                Err(_) => s.parse().map_err(|_| format!("stratum {s:?}: expected IP:PORT or PORT (loopback)"))?,
            }),
        };
        if stratum.is_some() && miner_key.is_none() {
            return Err("--stratum needs --miner-key FILE: the blocks its miners find pay that account".into());
        }
        let stratum_difficulty = self.stratum_difficulty.or(file.stratum_difficulty);
        if let Some(d) = stratum_difficulty {
            crate::stratum::share_target(d).map_err(|e| format!("stratum_difficulty {d}: {e}"))?;
        }
        let interval = self.stratum_share_interval.or(file.stratum_share_interval).unwrap_or(5.0);
        if !(0.1..=3600.0).contains(&interval) {
            return Err(format!("stratum_share_interval {interval}: expected 0.1 to 3600 seconds"));
        }
        let dashboard = match self.dashboard.or(file.dashboard).as_deref() {
            None | Some("none") => None,
            Some(s) => Some(crate::httpd::parse_listen(s).map_err(|e| format!("dashboard {e}"))?),
        };
        let threads = self.threads.or(file.threads).unwrap_or_else(crate::mine::default_threads);
        if threads == 0 {
            return Err("threads must be at least 1".into());
        }
        Ok(NodeConfig {
            chain,
            datadir,
            listen,
            peers,
            rpc,
            rpcauth,
            rpc_allow_remote,
            mine,
            miner_key,
            backend,
            threads,
            ban_seconds: self.ban_seconds.or(file.ban_seconds).unwrap_or(600),
            mempool_bytes: self.mempool_bytes.or(file.mempool_bytes).unwrap_or(32 << 20),
            max_peers: self.max_peers.or(file.max_peers).unwrap_or(64),
            low_work_headers: self.low_work_headers.or(file.low_work_headers).unwrap_or(super::MAX_LOW_WORK_HEADERS),
            stratum,
            stratum_difficulty,
            stratum_share_interval: std::time::Duration::from_secs_f64(interval),
            sig_backend: self.sig_backend.or(file.sig_backend).unwrap_or(Backend::Auto),
            dashboard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("powkit-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(CONFIG_FILE),
            "# test\nchain = powkit\nlisten = 127.0.0.1:9000\npeer = 127.0.0.1:1\npeer = 127.0.0.1:2\nthreads = 3\n",
        )
        .unwrap();
        let file = Settings::from_file(&dir).unwrap();
        let flags = Settings { listen: Some("none".into()), threads: Some(1), ..Settings::default() };
        let c = flags.resolve(file, dir.clone()).unwrap();
        assert_eq!(c.chain, LedgerNetwork::Powkit);
        assert_eq!(c.listen, None);
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.threads, 1);
        assert_eq!(c.rpc, Some("127.0.0.1:8632".parse().unwrap()));
        std::fs::write(dir.join(CONFIG_FILE), "chain = powkit\nthreads = many\n").unwrap();
        let e = Settings::from_file(&dir).unwrap_err();
        assert!(e.contains(":2: threads must be a whole number"), "{e}");
        std::fs::write(dir.join(CONFIG_FILE), "colour = blue\n").unwrap();
        assert!(Settings::from_file(&dir).unwrap_err().contains("unknown setting \"colour\""));
        std::fs::File::create(dir.join(CONFIG_FILE)).unwrap().set_len(1 << 30).unwrap();
        assert!(Settings::from_file(&dir).unwrap_err().ends_with("longer than 1048576 bytes"));
        let e =
            Settings { mine: Some(true), ..Settings::default() }.resolve(Settings::default(), dir.clone()).unwrap_err();
        assert!(e.contains("--miner-key"), "{e}");
        // --stratum: a port alone is loopback; it needs the key the blocks pay.
        let stratum = |v: &str, key: bool| {
            let miner_key = key.then(|| dir.join("k"));
            Settings { stratum: Some(v.into()), miner_key, ..Settings::default() }
                .resolve(Settings::default(), dir.clone())
        };
        assert!(stratum("3333", false).unwrap_err().contains("--stratum needs --miner-key"));
        assert_eq!(stratum("3333", true).unwrap().stratum, Some("127.0.0.1:3333".parse().unwrap()));
        assert_eq!(stratum("0.0.0.0:3333", true).unwrap().stratum, Some("0.0.0.0:3333".parse().unwrap()));
        assert!(stratum("here", true).unwrap_err().contains("stratum \"here\": expected IP:PORT or PORT"));
        assert_eq!(stratum("none", false).unwrap().stratum, None);
        // Its difficulty and share interval: from the file, checked, flags first.
        std::fs::write(dir.join(CONFIG_FILE), "stratum_difficulty = 0.5\nstratum_share_interval = 1.5\n").unwrap();
        let file = Settings::from_file(&dir).unwrap();
        let c = Settings::default().resolve(file.clone(), dir.clone()).unwrap();
        assert_eq!((c.stratum_difficulty, c.stratum_share_interval.as_secs_f64()), (Some(0.5), 1.5));
        let c = Settings { stratum_difficulty: Some(2.0), ..Settings::default() }.resolve(file, dir.clone()).unwrap();
        assert_eq!(c.stratum_difficulty, Some(2.0));
        let d = Settings::default().resolve(Settings::default(), dir.clone()).unwrap();
        assert_eq!((d.stratum_difficulty, d.stratum_share_interval.as_secs()), (None, 5));
        let bad = |s: Settings| s.resolve(Settings::default(), dir.clone()).unwrap_err();
        assert!(
            bad(Settings { stratum_difficulty: Some(-1.0), ..Settings::default() }).contains("stratum_difficulty -1")
        );
        assert!(bad(Settings { stratum_share_interval: Some(0.0), ..Settings::default() }).contains("0.1 to 3600"));
        std::fs::write(dir.join(CONFIG_FILE), "stratum_difficulty = hard\n").unwrap();
        assert!(Settings::from_file(&dir).unwrap_err().contains(":1: stratum_difficulty must be a number"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
