//! `powkit mine --pool`: the Stratum v1 client against a scripted pool in this test (a TcpListener
//! thread speaking the protocol). The job is cut from a real mainnet block (277647: its coinbase
//! split around 8 bytes of its scriptSig, its merkle branch, prevhash, version, bits, time) and the
//! share difficulty is a low power of two so shares come fast.
//!
//! Every submitted share is checked here independently of powkit's work rules: the header is
//! rebuilt from the submit's params and the job as sent, and hashed with the `sha2` crate directly.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha256d(b: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(b)).into()
}

/// The job template: block 277647 split for a 4-byte extranonce1 and a 4-byte extranonce2.
#[derive(Clone)]
struct Template {
    prevhash_stratum: String,
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branch: Vec<String>,
    version: u32,
    nbits: u32,
    ntime: u32,
    /// Each job on a new tip: the job number in the prevhash's first word (a pool whose blocks
    /// are found).
    new_tip_per_job: bool,
}

fn template() -> Option<Template> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/bitcoin/single-blocks/277647.blk");
    let Ok(raw) = std::fs::read(&p) else {
        eprintln!("skipping: {} not found", p.display());
        return None;
    };
    let b = powkit::primitives::Block::from_bytes(&raw[8..]).expect("a real block");
    let cb = b.txdata[0].legacy_bytes();
    // version (4), input count (1), prevout (36), script length (1), then the height push.
    let script_at = 4 + 1 + 36 + 1;
    let split = script_at + 1 + cb[script_at] as usize;
    let others: Vec<[u8; 32]> = b.txdata[1..].iter().map(|t| t.txid().0).collect();
    let h = b.header;
    let mut prev = h.prev_blockhash.0;
    for w in prev.chunks_exact_mut(4) {
        w.reverse();
    }
    Some(Template {
        prevhash_stratum: hex::encode(prev),
        coinb1: cb[..split].to_vec(),
        coinb2: cb[split + 8..].to_vec(),
        branch: powkit::stratum::work::merkle_branch(&others).iter().map(hex::encode).collect(),
        version: h.version as u32,
        nbits: h.bits.0,
        ntime: h.time,
        new_tip_per_job: false,
    })
}

/// A job as the pool sent it, with the session state it was sent under.
#[derive(Clone, Debug)]
struct JobRec {
    params: Value,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    /// The version-rolling mask granted on its connection (None: no grant).
    mask: Option<u32>,
    /// Share difficulty 2^-k.
    k: u32,
    /// When a clean_jobs notify dropped it.
    dropped_at: Option<Instant>,
}

#[derive(Clone, Debug)]
struct SubmitRec {
    conn: usize,
    params: Vec<Value>,
    at: Instant,
}

#[derive(Default)]
struct Log {
    jobs: HashMap<String, JobRec>,
    submits: Vec<SubmitRec>,
    subscribes: Vec<Value>,
    configures: Vec<Value>,
    version_replies: Vec<Value>,
    connections: usize,
}

/// How the scripted pool behaves.
#[derive(Clone)]
struct Script {
    /// Mask granted in mining.configure; None: configure is answered with an error.
    grant: Option<u32>,
    /// Share difficulty 2^-k.
    k: u32,
    /// A new job every this many shares on a connection (alternately clean and not).
    new_job_every: u64,
    /// After this many shares on the first connection: set_extranonce (6-byte extranonce1,
    /// 2-byte extranonce2) then a clean job.
    set_extranonce_after: Option<u64>,
    /// How connection `i` ends after `n` shares.
    ends: Vec<(usize, u64, End)>,
    /// Every share is a block (the template's nbits must be easy): each is answered after this
    /// long, the odd-numbered ones as a pool that takes the block does (a clean job first, then
    /// `true`), the even-numbered ones as a refused block (an error, the job still live).
    blocks: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
enum End {
    Close,
    Oversized,
    /// `client.reconnect` to the same place (empty host and port), wait 0; the socket stays open.
    Reconnect,
}

fn be_target(k: u32) -> [u8; 32] {
    // difficulty-1 target (0xffff << 208) / 2^-k = 0xffff << (208 + k), big-endian bytes.
    let mut t = [0u8; 32];
    for i in 0..16 {
        let bit = 208 + k as usize + i;
        t[31 - bit / 8] |= 1 << (bit % 8);
    }
    t
}

/// Rebuilds a share's header from the job and the submit's params and hashes it with sha2.
/// Returns the header, or why the share is invalid.
fn check_share(t: &Template, job: &JobRec, p: &[Value]) -> Result<[u8; 80], String> {
    let s = |i: usize| p.get(i).and_then(Value::as_str).ok_or(format!("param {i} missing: {p:?}"));
    let en2 = hex::decode(s(2)?).map_err(|e| e.to_string())?;
    if en2.len() != job.extranonce2_size {
        return Err(format!("extranonce2 {} bytes, {} expected", en2.len(), job.extranonce2_size));
    }
    let ntime = u32::from_str_radix(s(3)?, 16).map_err(|e| e.to_string())?;
    if s(3)?.len() != 8 || ntime != u32::from_str_radix(job.params[7].as_str().unwrap(), 16).unwrap() {
        return Err(format!("ntime {} is not the job's", s(3)?));
    }
    let nonce = u32::from_str_radix(s(4)?, 16).map_err(|e| e.to_string())?;
    let job_version = u32::from_str_radix(job.params[5].as_str().unwrap(), 16).unwrap();
    let version = match (p.get(5), job.mask) {
        (None, _) => job_version,
        (Some(_), None) => return Err("version bits without a version-rolling grant".into()),
        (Some(v), Some(mask)) => {
            let bits =
                u32::from_str_radix(v.as_str().ok_or("version bits not a string")?, 16).map_err(|e| e.to_string())?;
            if bits & !mask != 0 {
                return Err(format!("version bits {bits:08x} outside the mask {mask:08x}"));
            }
            (job_version & !mask) | bits
        }
    };
    let mut cb = t.coinb1.clone();
    cb.extend_from_slice(&job.extranonce1);
    cb.extend_from_slice(&en2);
    cb.extend_from_slice(&t.coinb2);
    let mut root = sha256d(&cb);
    for b in job.params[4].as_array().unwrap() {
        let mut cat = root.to_vec();
        cat.extend_from_slice(&hex::decode(b.as_str().unwrap()).unwrap());
        root = sha256d(&cat);
    }
    let mut prev = hex::decode(job.params[1].as_str().unwrap()).unwrap();
    for w in prev.chunks_exact_mut(4) {
        w.reverse();
    }
    let mut h = Vec::with_capacity(80);
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&prev);
    h.extend_from_slice(&root);
    h.extend_from_slice(&ntime.to_le_bytes());
    h.extend_from_slice(&t.nbits.to_le_bytes());
    h.extend_from_slice(&nonce.to_le_bytes());
    let mut hash = sha256d(&h);
    hash.reverse();
    if hash > be_target(job.k) {
        return Err(format!("hash {} above the share target", hex::encode(hash)));
    }
    Ok(h.try_into().unwrap())
}

struct Pool {
    port: u16,
    log: Arc<Mutex<Log>>,
    template: Template,
}

fn send(w: &mut TcpStream, v: Value) -> std::io::Result<()> {
    let mut s = v.to_string();
    s.push('\n');
    w.write_all(s.as_bytes())
}

impl Pool {
    fn start(t: &Template, script: Script) -> Pool {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let (l2, t2) = (log.clone(), t.clone());
        let job_counter = Arc::new(Mutex::new(0u64));
        std::thread::spawn(move || {
            for (conn, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                l2.lock().unwrap().connections += 1;
                let (log, t, script, jc) = (l2.clone(), t2.clone(), script.clone(), job_counter.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, stream, &log, &t, &script, &jc);
                });
            }
        });
        Pool { port, log, template: t.clone() }
    }

    fn url(&self) -> String {
        format!("stratum+tcp://127.0.0.1:{}", self.port)
    }

    /// Checks every submit: valid, unique header, none long after its job was dropped. Returns the
    /// headers.
    fn verify(&self) -> Vec<[u8; 80]> {
        let log = self.log.lock().unwrap();
        let mut headers = HashSet::new();
        let mut out = Vec::new();
        for s in &log.submits {
            let id = s.params[1].as_str().unwrap();
            let job = log.jobs.get(id).unwrap_or_else(|| panic!("share for a job never sent: {:?}", s.params));
            let h = check_share(&self.template, job, &s.params).unwrap_or_else(|e| panic!("{e}: {:?}", s.params));
            assert!(headers.insert(h), "a header submitted twice: {:?}", s.params);
            if let Some(dropped) = job.dropped_at {
                // A share in flight when the notify was written is fair; one sent well after the
                // client read it is not.
                let late = s.at.saturating_duration_since(dropped);
                assert!(late < Duration::from_millis(250), "share for job {id} {late:?} after it was dropped");
            }
            out.push(h);
        }
        out
    }
}

#[allow(clippy::too_many_arguments)] // one job as a scripted pool sends it: the session state is the point
fn notify(
    t: &Template,
    log: &Mutex<Log>,
    jc: &Mutex<u64>,
    en1: &[u8],
    en2_size: usize,
    mask: Option<u32>,
    k: u32,
    clean: bool,
) -> Value {
    let n = {
        let mut c = jc.lock().unwrap();
        *c += 1;
        *c
    };
    let id = format!("j{n}");
    let prevhash = match t.new_tip_per_job {
        true => format!("{n:08x}{}", &t.prevhash_stratum[8..]),
        false => t.prevhash_stratum.clone(),
    };
    let params = json!([
        id,
        prevhash,
        hex::encode(&t.coinb1),
        hex::encode(&t.coinb2),
        t.branch,
        format!("{:08x}", t.version),
        format!("{:08x}", t.nbits),
        format!("{:08x}", t.ntime + n as u32),
        clean
    ]);
    let mut log = log.lock().unwrap();
    if clean {
        for j in log.jobs.values_mut() {
            j.dropped_at.get_or_insert(Instant::now());
        }
    }
    log.jobs.insert(
        id,
        JobRec {
            params: params.clone(),
            extranonce1: en1.to_vec(),
            extranonce2_size: en2_size,
            mask,
            k,
            dropped_at: None,
        },
    );
    json!({"id": null, "method": "mining.notify", "params": params})
}

fn serve(
    conn: usize,
    stream: TcpStream,
    log: &Mutex<Log>,
    t: &Template,
    sc: &Script,
    jc: &Mutex<u64>,
) -> std::io::Result<()> {
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut en1 = (conn as u32 + 0x1000).to_be_bytes().to_vec();
    let mut en2_size = 4;
    let mut mask = None;
    let mut shares = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let m: Value = serde_json::from_str(&line).expect("the client sends JSON");
        let id = m["id"].clone();
        match m["method"].as_str() {
            Some("mining.configure") => {
                log.lock().unwrap().configures.push(m["params"].clone());
                assert_eq!(m["params"][1]["version-rolling.mask"], "1fffe000");
                match sc.grant {
                    Some(g) => {
                        mask = Some(g);
                        send(
                            &mut w,
                            json!({"id": id, "result": {"version-rolling": true, "version-rolling.mask": format!("{g:08x}")}, "error": null}),
                        )?;
                    }
                    None => send(
                        &mut w,
                        json!({"id": id, "result": null, "error": [20, "Method 'mining.configure' not found", null]}),
                    )?,
                }
            }
            Some("mining.subscribe") => {
                log.lock().unwrap().subscribes.push(m["params"].clone());
                let sid = m["params"].get(1).and_then(Value::as_str).map_or(format!("sess-{conn}"), String::from);
                send(
                    &mut w,
                    json!({"id": id, "result": [[["mining.set_difficulty", "d"], ["mining.notify", sid]], hex::encode(&en1), en2_size], "error": null}),
                )?;
            }
            Some("mining.authorize") => {
                send(&mut w, json!({"id": id, "result": true, "error": null}))?;
                send(
                    &mut w,
                    json!({"id": null, "method": "mining.set_difficulty", "params": [2f64.powi(-(sc.k as i32))]}),
                )?;
                send(&mut w, notify(t, log, jc, &en1, en2_size, mask, sc.k, true))?;
                send(&mut w, json!({"id": "gv", "method": "client.get_version", "params": []}))?;
                send(
                    &mut w,
                    json!({"id": null, "method": "client.show_message", "params": ["hello from the scripted pool"]}),
                )?;
                send(&mut w, json!({"id": null, "method": "mining.unknown_thing", "params": [1]}))?;
            }
            Some("mining.extranonce.subscribe") => {
                send(&mut w, json!({"id": id, "result": null, "error": [20, "Not supported.", null]}))?;
            }
            Some("mining.submit") => {
                let params = m["params"].as_array().unwrap().clone();
                let verdict = {
                    let mut log = log.lock().unwrap();
                    log.submits.push(SubmitRec { conn, params: params.clone(), at: Instant::now() });
                    match log.jobs.get(params[1].as_str().unwrap_or("")) {
                        Some(j) if j.dropped_at.is_none() => check_share(t, j, &params).err(),
                        _ => Some("job not found".to_string()),
                    }
                };
                if let Some(delay) = sc.blocks {
                    std::thread::sleep(delay);
                    shares += 1;
                    match verdict {
                        None if shares % 2 == 1 => {
                            send(&mut w, notify(t, log, jc, &en1, en2_size, mask, sc.k, true))?;
                            send(&mut w, json!({"id": id, "result": true, "error": null}))?;
                        }
                        None => send(
                            &mut w,
                            json!({"id": id, "result": null, "error": [20, "inconclusive: another block came first", null]}),
                        )?,
                        Some(why) => send(&mut w, json!({"id": id, "result": null, "error": [21, why, null]}))?,
                    }
                    continue;
                }
                match verdict {
                    None => send(&mut w, json!({"id": id, "result": true, "error": null}))?,
                    Some(why) if why == "job not found" => {
                        send(&mut w, json!({"id": id, "result": null, "error": [21, "Job not found", null]}))?
                    }
                    Some(why) => send(&mut w, json!({"id": id, "result": null, "error": [20, why, null]}))?,
                }
                shares += 1;
                if let Some(&(_, _, end)) = sc.ends.iter().find(|(c, n, _)| *c == conn && *n == shares) {
                    match end {
                        End::Reconnect => {
                            send(&mut w, json!({"id": null, "method": "client.reconnect", "params": ["", null, 0]}))?;
                            continue;
                        }
                        End::Close => {}
                        End::Oversized => {
                            let _ = w.write_all(&vec![b'x'; 70_000]);
                            let _ = w.write_all(b"\n");
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                    let _ = w.shutdown(std::net::Shutdown::Both);
                    return Ok(());
                }
                if conn == 0 && sc.set_extranonce_after == Some(shares) {
                    en1 = vec![0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6];
                    en2_size = 2;
                    send(
                        &mut w,
                        json!({"id": null, "method": "mining.set_extranonce", "params": [hex::encode(&en1), en2_size]}),
                    )?;
                    send(&mut w, notify(t, log, jc, &en1, en2_size, mask, sc.k, true))?;
                } else if shares.is_multiple_of(sc.new_job_every) {
                    let clean = (shares / sc.new_job_every).is_multiple_of(2);
                    send(&mut w, notify(t, log, jc, &en1, en2_size, mask, sc.k, clean))?;
                }
            }
            None if id == "gv" => log.lock().unwrap().version_replies.push(m["result"].clone()),
            other => panic!("unexpected message {other:?}: {line}"),
        }
    }
}

/// Runs `powkit mine --pool ...` and returns its JSON report and stderr.
fn mine(pools: &[String], extra: &[&str]) -> (Value, String) {
    let mut args = vec!["mine".to_string()];
    for p in pools {
        args.push("--pool".into());
        args.push(p.clone());
    }
    args.extend(["--user", "w1", "--json", "--retry-ms", "100", "--log", "debug"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_powkit")).args(&args).output().expect("run powkit");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let tail: String =
        stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert_eq!(out.status.code(), Some(0), "{tail}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {tail}"));
    (v, stderr)
}

fn script(grant: Option<u32>) -> Script {
    Script { grant, k: 12, new_job_every: 4, set_extranonce_after: None, ends: Vec::new(), blocks: None }
}

#[test]
fn shares_are_valid_unique_and_rolled_inside_the_granted_mask() {
    let Some(t) = template() else { return };
    // A narrower grant than asked for, without the low bits of the request (a client rolling the
    // mask it asked for would set bit 13 on its second header): the client must keep to it.
    let pool = Pool::start(&t, script(Some(0x1ffe_0000)));
    let (r, _) = mine(&[pool.url()], &["--backend", "cpu", "--threads", "2", "--shares", "24", "--duration", "120"]);
    let headers = pool.verify();
    let log = pool.log.lock().unwrap();
    assert!(log.submits.len() >= 24, "{} submits; {r}", log.submits.len());
    assert!(log.submits.iter().all(|s| s.params.len() == 6 && s.params[0] == "w1"), "version bits with every share");
    let rolled = headers.iter().filter(|h| u32::from_le_bytes(h[..4].try_into().unwrap()) != t.version).count();
    assert!(rolled > 0, "no share rolled the version");
    assert_eq!(log.subscribes[0][0].as_str().unwrap(), format!("powkit/{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(log.version_replies, [json!(format!("powkit/{}", env!("CARGO_PKG_VERSION")))]);
    assert_eq!(r["version_mask"], "1ffe0000");
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    // The run waits for the answers to the shares it sent before it reports.
    assert_eq!(r["unanswered"], 0, "{r}");
    assert_eq!(r["accepted"].as_u64().unwrap() + r["rejected"].as_u64().unwrap(), r["submitted"].as_u64().unwrap());
    assert!(r["accepted"].as_u64().unwrap() >= 10, "{r}");
    // The only rejections are stale shares at job switches (a new job every 4 shares: the shares
    // of one segment in flight when the pool switched are stale).
    assert!(r["rejected_by_reason"].as_array().unwrap().iter().all(|x| x["code"] == 21), "{r}");
    assert_eq!(r["rejected"], r["stale"].as_u64().unwrap() - r["stale_unsent"].as_u64().unwrap(), "{r}");
    assert!(r["job_switch_ms"]["samples"].as_u64().unwrap() >= 2, "{r}");
    assert!(r["job_switch_ms"]["median"].as_f64().unwrap() < 1000.0, "{r}");
    assert_eq!(r["devices"][0]["device"], "cpu");
}

#[test]
fn no_version_rolling_without_a_grant() {
    let Some(t) = template() else { return };
    let pool = Pool::start(&t, script(None));
    let (r, _) = mine(&[pool.url()], &["--backend", "cpu", "--threads", "2", "--shares", "12", "--duration", "120"]);
    let headers = pool.verify();
    assert!(headers.len() >= 12);
    let log = pool.log.lock().unwrap();
    assert!(log.submits.iter().all(|s| s.params.len() == 5), "version bits sent without a grant");
    assert!(headers.iter().all(|h| u32::from_le_bytes(h[..4].try_into().unwrap()) == t.version));
    assert_eq!(r["version_mask"], "00000000");
}

#[test]
fn set_extranonce_is_honoured_from_the_next_job() {
    let Some(t) = template() else { return };
    let mut sc = script(Some(0x1fff_e000));
    sc.set_extranonce_after = Some(3);
    sc.new_job_every = 1000;
    let pool = Pool::start(&t, sc);
    let (_, _) = mine(&[pool.url()], &["--backend", "cpu", "--threads", "2", "--shares", "10", "--duration", "120"]);
    pool.verify();
    let log = pool.log.lock().unwrap();
    let after: Vec<_> =
        log.submits.iter().filter(|s| log.jobs[s.params[1].as_str().unwrap()].extranonce1.len() == 6).collect();
    assert!(after.len() >= 5, "{} shares under the new extranonce", after.len());
    assert!(after.iter().all(|s| s.params[2].as_str().unwrap().len() == 4), "extranonce2 is 2 bytes now");
}

#[test]
fn reconnects_resume_the_session_after_a_close_and_an_oversized_line() {
    let Some(t) = template() else { return };
    let mut sc = script(Some(0x1fff_e000));
    sc.ends = vec![(0, 3, End::Close), (1, 3, End::Oversized)];
    let pool = Pool::start(&t, sc);
    let (r, stderr) =
        mine(&[pool.url()], &["--backend", "cpu", "--threads", "2", "--shares", "9", "--duration", "120"]);
    pool.verify();
    let log = pool.log.lock().unwrap();
    assert!(log.connections >= 3, "{} connections", log.connections);
    assert_eq!(log.subscribes[0].as_array().unwrap().len(), 1, "no session id on the first subscribe");
    assert_eq!(log.subscribes[1][1], "sess-0", "the session id is sent back: {:?}", log.subscribes);
    assert_eq!(log.subscribes[2][1], "sess-0");
    assert!(log.submits.iter().any(|s| s.conn == 2));
    assert!(stderr.contains("line longer than"), "the oversized line is named in the log");
    assert_eq!(r["resumed"], 2, "{r}");
}

#[test]
fn client_reconnect_redials_and_resumes() {
    let Some(t) = template() else { return };
    let mut sc = script(None);
    sc.ends = vec![(0, 2, End::Reconnect)];
    let pool = Pool::start(&t, sc);
    let (r, stderr) =
        mine(&[pool.url()], &["--backend", "cpu", "--threads", "2", "--shares", "6", "--duration", "120"]);
    pool.verify();
    let log = pool.log.lock().unwrap();
    assert_eq!(log.connections, 2, "{stderr}");
    assert_eq!(log.subscribes[1][1], "sess-0");
    assert!(log.submits.iter().any(|s| s.conn == 1));
    assert!(stderr.contains("client.reconnect"));
    assert_eq!(r["resumed"], 1, "{r}");
}

#[test]
fn fails_over_to_the_second_pool_when_the_first_refuses() {
    let Some(t) = template() else { return };
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("stratum+tcp://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let pool = Pool::start(&t, script(Some(0x1fff_e000)));
    let (r, _) = mine(
        &[refused, pool.url()],
        &["--backend", "cpu", "--threads", "2", "--shares", "5", "--duration", "120", "--attempts-per-pool", "2"],
    );
    pool.verify();
    assert!(r["failed_dials"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["pool"], format!("127.0.0.1:{}", pool.port));
    assert!(r["accepted"].as_u64().unwrap() >= 5, "{r}");
}

#[test]
fn the_gpu_engine_submits_valid_shares() {
    let Some(t) = template() else { return };
    if !common::have_gpu() {
        return;
    }
    let pool = Pool::start(&t, script(Some(0x1fff_e000)));
    let (r, _) =
        mine(&[pool.url()], &["--backend", "gpu", "--gpu-allow-software", "--shares", "8", "--duration", "240"]);
    pool.verify();
    assert_eq!(r["devices"][0]["device"], "gpu", "{r}");
    assert!(r["devices"][0]["accepted"].as_u64().unwrap() >= 6, "{r}");
}

/// The job-switch figure in docs/PERFORMANCE.md: a new job after every share (every other one
/// clean) for 30 s at difficulty 2^-10; prints the report. `cargo test --release --test stratum_client -- --ignored --nocapture job_switch`.
/// A share that meets the network target is a block: shares found on the same tip before the
/// pool answers it are held, then dropped when the pool's clean job replaces the tip (never sent
/// to be rejected stale), or sent when the pool refuses the block (nothing lost).
#[test]
fn shares_on_a_tip_our_block_replaces_wait_for_the_block_answer() {
    let Some(mut t) = template() else { return };
    t.nbits = 0x207f_ffff; // regtest's: every share is a block
    t.new_tip_per_job = true;
    let mut sc = script(Some(0x1fff_e000));
    sc.new_job_every = u64::MAX;
    sc.blocks = Some(Duration::from_millis(150));
    let pool = Pool::start(&t, sc);
    let (r, err) = mine(&[pool.url()], &["--backend", "cpu", "--threads", "2", "--shares", "10", "--duration", "120"]);
    pool.verify();
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    let log = pool.log.lock().unwrap();
    // No share went to a job after its clean replacement was sent: every rejection is a refused block.
    for s in &log.submits {
        let job = &log.jobs[s.params[1].as_str().unwrap()];
        assert!(job.dropped_at.is_none_or(|d| s.at < d), "a share for a replaced tip was sent: {:?}", s.params);
    }
    assert!(r["rejected_by_reason"].as_array().unwrap().iter().all(|x| x["code"] == 20), "{r}");
    assert_eq!(r["stale"], r["stale_unsent"], "{r}");
    // 150 ms per answer is several shares' time: some were held and dropped ...
    assert!(r["stale_unsent"].as_u64().unwrap() >= 1, "{r}");
    assert!(err.contains("held until the block's answer"), "the hold was never used");
    // ... and after a refused block, the shares held behind it were sent on the same job.
    let mut released = 0;
    for (i, s) in log.submits.iter().enumerate() {
        if log.submits[..i].iter().any(|p| p.params[1] == s.params[1] && p.at + Duration::from_millis(100) < s.at) {
            released += 1;
        }
    }
    assert!(released >= 1, "no share followed a refused block on its job");
}

#[test]
#[ignore = "a 30 s measurement for docs/PERFORMANCE.md"]
fn job_switch_latency_figures() {
    let Some(t) = template() else { return };
    let backend = std::env::var("POWKIT_POOL_BACKEND").unwrap_or_else(|_| "cpu".into());
    let mut sc = script(Some(0x1fff_e000));
    // POWKIT_POOL_JOB_EVERY: shares per new job (default 1: a job switch after every share).
    sc.new_job_every = std::env::var("POWKIT_POOL_JOB_EVERY").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    sc.k = 10;
    let pool = Pool::start(&t, sc);
    // POWKIT_POOL_SECONDS: the run's length (default 30).
    let secs = std::env::var("POWKIT_POOL_SECONDS").unwrap_or_else(|_| "30".into());
    let (r, _) = mine(&[pool.url()], &["--backend", &backend, "--gpu-allow-software", "--duration", &secs]);
    pool.verify();
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());
    assert!(r["accepted"].as_u64().unwrap() >= 20, "{r}");
}

#[test]
fn no_pool_answering_is_exit_code_1_with_the_reason_logged() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("stratum+tcp://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let out = common::powkit(&[
        "mine",
        "--pool",
        &refused,
        "--user",
        "w",
        "--backend",
        "cpu",
        "--threads",
        "1",
        "--duration",
        "1.5",
        "--retry-ms",
        "100",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect") && stderr.contains("no pool answered"), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["failed_dials"].as_u64().unwrap() >= 3, "backoff 100, 200, 400 ms: {r}");
    assert_eq!(r["sessions"], 0);
}
