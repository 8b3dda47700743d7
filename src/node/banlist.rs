//! Bans (docs/PROTOCOL.md, "Misbehaviour and bans"): which addresses are banned, until when
//! (unix seconds) and why, kept in `DATADIR/banlist.json` so they survive a restart (Bitcoin Core's
//! `banlist.json`). The file is replaced atomically (temporary file, fsync, rename, fsync of the
//! directory) on every change; a file that cannot be read or parsed is moved aside with a warning
//! and the node starts with no bans: it is never fatal.
//!
//! Keys: the IP address, except on loopback, where every local node shares 127.0.0.1 and the key is
//! `IP:PORT` (the port the peer listens on). A ban on a bare IP covers every port of it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// File name in the data directory.
pub const BANLIST_FILE: &str = "banlist.json";

/// One ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    /// End of the ban, unix seconds.
    pub until: i64,
    /// Why (the misbehaviour causes, or `setban`).
    pub reason: String,
}

/// The ban key of a peer address: its IP, or `IP:PORT` on loopback.
pub fn key_of(addr: SocketAddr) -> String {
    if addr.ip().is_loopback() {
        addr.to_string()
    } else {
        addr.ip().to_string()
    }
}

/// The ban key of an address given by a user (`IP` or `IP:PORT`): `IP:PORT` off loopback becomes
/// the IP (bans cover the whole address there). Errors: neither form.
pub fn parse_key(s: &str) -> Result<String, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(key_of(sa));
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) => Err(format!("address {s:?}: expected IP or IP:PORT")),
    }
}

/// Most bans kept (automatic and `setban` together); past it the ban that ends soonest goes.
pub const MAX_BANS: usize = 10_000;

/// The ban list and its file.
#[derive(Debug)]
pub struct BanList {
    path: Option<PathBuf>,
    bans: BTreeMap<String, Ban>,
}

impl BanList {
    /// An empty list that is never saved (tests).
    #[cfg(test)]
    pub fn in_memory() -> BanList {
        BanList { path: None, bans: BTreeMap::new() }
    }

    /// Loads `DATADIR/banlist.json`, dropping bans that ended before `now`. A missing file is an
    /// empty list; an unreadable or malformed one is logged, renamed to `banlist.json.bad`, and
    /// gives an empty list.
    pub fn load(datadir: &Path, now: i64) -> BanList {
        let path = datadir.join(BANLIST_FILE);
        let mut list = BanList { path: Some(path.clone()), bans: BTreeMap::new() };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return list,
            Err(e) => {
                tracing::warn!(file = %path.display(), "ban list not read ({e}): starting with no bans");
                return list;
            }
        };
        match parse(&text) {
            Ok(bans) => {
                list.bans = bans.into_iter().filter(|(_, b)| b.until > now).collect();
                if !list.bans.is_empty() {
                    tracing::info!(bans = list.bans.len(), "ban list loaded");
                }
            }
            Err(why) => {
                let bad = path.with_extension("json.bad");
                let _ = std::fs::rename(&path, &bad);
                tracing::warn!(
                    file = %path.display(),
                    moved_to = %bad.display(),
                    "ban list malformed ({why}): starting with no bans"
                );
            }
        }
        list
    }

    /// The ban covering `addr` (by `IP:PORT` or by IP), if it lasts past `now`.
    pub fn get(&self, addr: SocketAddr, now: i64) -> Option<(&str, &Ban)> {
        [addr.to_string(), addr.ip().to_string()]
            .into_iter()
            .find_map(|k| self.bans.get_key_value(&k))
            .filter(|(_, b)| b.until > now)
            .map(|(k, b)| (k.as_str(), b))
    }

    /// Whether a key (from [`key_of`], or a dialed `IP:PORT`) is banned past `now`.
    pub fn is_banned(&self, key: &str, now: i64) -> bool {
        match key.parse::<SocketAddr>() {
            Ok(sa) => self.get(sa, now).is_some(),
            Err(_) => self.bans.get(key).is_some_and(|b| b.until > now),
        }
    }

    /// Bans `key` until `until` (a longer existing ban is kept) and saves.
    pub fn ban(&mut self, key: String, until: i64, reason: String) {
        let e = self.bans.entry(key.clone()).or_insert(Ban { until, reason: reason.clone() });
        if e.until <= until {
            *e = Ban { until, reason };
        }
        // Bounded: past MAX_BANS the ban that ends soonest (never the new one) is dropped.
        while self.bans.len() > MAX_BANS {
            let Some(first) =
                self.bans.iter().filter(|(k, _)| **k != key).min_by_key(|(_, b)| b.until).map(|(k, _)| k.clone())
            else {
                break;
            };
            self.bans.remove(&first);
        }
        self.save();
    }

    /// Lifts the ban on exactly `key`; false when there was none. Saves.
    pub fn unban(&mut self, key: &str) -> bool {
        let had = self.bans.remove(key).is_some();
        if had {
            self.save();
        }
        had
    }

    /// Lifts every ban that covers `addr` (`IP:PORT`: the ban on it and the one on its IP), as
    /// `addnode` wants; false when there was none. Saves.
    pub fn remove(&mut self, addr: &str) -> bool {
        let keys: Vec<String> = match addr.parse::<SocketAddr>() {
            Ok(sa) => vec![sa.to_string(), sa.ip().to_string()],
            Err(_) => vec![addr.to_string()],
        };
        let mut had = false;
        for k in keys {
            had |= self.bans.remove(&k).is_some();
        }
        if had {
            self.save();
        }
        had
    }

    /// Lifts every ban. Saves.
    pub fn clear(&mut self) {
        self.bans.clear();
        self.save();
    }

    /// Drops bans that ended before `now` (saved with the next change).
    pub fn expire(&mut self, now: i64) {
        self.bans.retain(|_, b| b.until > now);
    }

    /// Every ban, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Ban)> {
        self.bans.iter()
    }

    /// Writes the file atomically; a failure is logged (the bans stay in force in memory).
    fn save(&self) {
        let Some(path) = &self.path else { return };
        if let Err(e) = write_atomic(path, &self.to_json()) {
            tracing::warn!(file = %path.display(), "ban list not saved: {e}");
        }
    }

    fn to_json(&self) -> String {
        let bans: Vec<Value> =
            self.bans.iter().map(|(k, b)| json!({"address": k, "until": b.until, "reason": b.reason})).collect();
        format!("{}\n", json!({"version": 1, "bans": bans}))
    }
}

fn parse(text: &str) -> Result<BTreeMap<String, Ban>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let list = v.get("bans").and_then(Value::as_array).ok_or("no \"bans\" array")?;
    let mut out = BTreeMap::new();
    for (i, b) in list.iter().enumerate() {
        let addr = b.get("address").and_then(Value::as_str).ok_or(format!("ban {i}: no address"))?;
        let key = parse_key(addr).map_err(|e| format!("ban {i}: {e}"))?;
        let until = b.get("until").and_then(Value::as_i64).ok_or(format!("ban {i}: no until"))?;
        let reason = b.get("reason").and_then(Value::as_str).unwrap_or("").to_string();
        out.insert(key, Ban { until, reason });
    }
    Ok(out)
}

/// Replaces `path` with `text` so that a crash leaves either the old or the new file: write a
/// temporary file beside it, fsync it, rename it over, fsync the directory.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_by_ip_covers_the_dialed_address_and_addnode_lifts_both_keys() {
        // The ban key of a misbehaving peer off loopback is its IP, while `--peer` / `addnode`
        // want IP:PORT: the lookup must agree (a banned `--peer` used to be redialed every 2 s).
        let mut l = BanList::in_memory();
        let peer: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        l.ban(key_of(peer), 100, "test".into());
        assert!(l.is_banned("10.0.0.5:8433", 50));
        assert!(l.is_banned("10.0.0.5", 50));
        assert!(!l.is_banned("10.0.0.6:8433", 50));
        assert!(!l.is_banned("10.0.0.5:8433", 100), "ended");
        assert!(l.remove("10.0.0.5:8433"));
        assert!(!l.is_banned("10.0.0.5:8433", 50));
        // Loopback: by address and port, so local nodes are told apart.
        let local: SocketAddr = "127.0.0.1:41000".parse().unwrap();
        l.ban(key_of(local), 100, "test".into());
        assert!(l.is_banned("127.0.0.1:41000", 50));
        assert!(!l.is_banned("127.0.0.1:41001", 50));
        assert_eq!(parse_key("127.0.0.1:41000").unwrap(), "127.0.0.1:41000");
        assert_eq!(parse_key("10.1.2.3:99").unwrap(), "10.1.2.3");
        assert_eq!(parse_key("::1").unwrap(), "::1");
        assert!(parse_key("example.org").is_err());
    }

    #[test]
    fn bans_survive_a_reload_and_a_corrupt_file_is_moved_aside() {
        let d = std::env::temp_dir().join(format!("powkit-banlist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut l = BanList::load(&d, 0);
        l.ban("10.0.0.1".into(), 1000, "bad block".into());
        l.ban("127.0.0.1:9".into(), 10, "short".into());
        let again = BanList::load(&d, 20);
        let got: Vec<_> = again.iter().map(|(k, b)| (k.clone(), b.clone())).collect();
        assert_eq!(got, vec![("10.0.0.1".to_string(), Ban { until: 1000, reason: "bad block".into() })]);
        assert!(!d.join("banlist.json.tmp").exists());
        std::fs::write(d.join(BANLIST_FILE), "{not json").unwrap();
        let l = BanList::load(&d, 0);
        assert_eq!(l.iter().count(), 0);
        assert!(d.join("banlist.json.bad").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn the_list_is_bounded_and_drops_the_ban_that_ends_soonest() {
        let mut l = BanList::in_memory();
        for i in 0..MAX_BANS as i64 + 5 {
            l.ban(format!("10.0.{}.{}", i / 256, i % 256), 1_000 + i, "test".into());
        }
        assert_eq!(l.bans.len(), MAX_BANS);
        assert!(!l.is_banned("10.0.0.0", 0), "the soonest-ending ban stays");
        assert!(l.is_banned(&format!("10.0.{}.{}", (MAX_BANS + 4) / 256, (MAX_BANS + 4) % 256), 0));
        // A new ban is kept even when it ends soonest.
        l.ban("10.9.9.9".into(), 1, "short".into());
        assert!(l.is_banned("10.9.9.9", 0));
        assert_eq!(l.bans.len(), MAX_BANS);
    }
}
