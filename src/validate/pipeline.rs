//! The Bitcoin bulk-validation pipeline: every worker reads a batch of records, hashes its headers
//! on the chosen [`HeaderHasher`], runs the context-free rules ([`prepare_record`]), then hands it
//! to the linker, which connects batches in input order ([`Validator::accept`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::bitcoin::{prepare_record, Options, Prepared, Validator};
use super::read::{Kind, ReadError, Reader, Record};
use super::{Progress, Stop};
use crate::backend::HeaderHasher;
use crate::sha256::batch::{sha256d_headers, sha256d_headers_into};

/// Records per batch a worker reads, prepares and hands to the linker (batches also end at 1 MB of
/// input: small batches stay in cache and reuse freed memory instead of faulting in fresh pages).
const BATCH: usize = 8192;

fn header_bytes(records: &[Record]) -> Vec<[u8; 80]> {
    records
        .iter()
        .flat_map(|r| r.headers().map(|(_, h)| <[u8; 80]>::try_from(h).expect("records hold at least 80 bytes")))
        .collect()
}

/// Hashes (unless the GPU already has: `gpu` holds this chunk's hashes in header order) and
/// prepares one thread's share of a batch. Runs of raw headers are hashed in place, sixteen at a
/// time; the headers of single records are gathered into one batch first.
fn prepare_chunk(
    chunk: Vec<Record>,
    gpu: Option<&[[u8; 32]]>,
    opts: &Options,
    spare: &mut Vec<Vec<[u8; 32]>>,
) -> Vec<Prepared> {
    let mut singles = match gpu {
        Some(_) => Vec::new(),
        None => {
            let heads: Vec<[u8; 80]> = chunk
                .iter()
                .filter(|r| r.kind != Kind::Headers)
                .map(|r| r.bytes[..80].try_into().expect("records hold at least 80 bytes"))
                .collect();
            sha256d_headers(&heads)
        }
    }
    .into_iter();
    let mut out = Vec::with_capacity(chunk.len() + 1);
    let mut at = 0;
    for r in chunk {
        let n = r.header_count();
        let hashes = match gpu {
            Some(g) => g[at..at + n].to_vec(),
            None if r.kind == Kind::Headers => {
                let mut out = spare.pop().unwrap_or_default();
                sha256d_headers_into(r.bytes.as_chunks::<80>().0, &mut out);
                out
            }
            None => vec![singles.next().expect("one hash per single record")],
        };
        at += n;
        prepare_record(r, hashes, opts, &mut out);
    }
    out
}

/// Hashes a batch's headers and runs the context-free rules on this thread (the hashing on the GPU
/// when there is one).
/// `spare`: hash buffers of runs already linked, to reuse.
fn prepare(
    hasher: &HeaderHasher,
    records: Vec<Record>,
    opts: &Options,
    spare: &mut Vec<Vec<[u8; 32]>>,
) -> Result<Vec<Prepared>, String> {
    match hasher {
        HeaderHasher::Cpu(_) => Ok(prepare_chunk(records, None, opts, spare)),
        HeaderHasher::Gpu(dev, h) => {
            let hashes = h.hash_headers(dev, &header_bytes(&records)).map_err(|e| e.to_string())?;
            Ok(prepare_chunk(records, Some(&hashes), opts, spare))
        }
    }
}

/// A batch's place in the ordered stream, once prepared.
enum Item {
    Batch(Vec<Prepared>),
    Failed(String),
}

/// The reader, shared by the workers (each takes the next batch under the lock).
struct Input {
    reader: Reader,
    /// Hash buffers of linked header runs, for the workers to reuse.
    spare_hashes: Vec<Vec<[u8; 32]>>,
    next_seq: u64,
    finished: bool,
}

/// The in-order part: the validator and the progress callback.
struct Linker<'a> {
    validator: Validator,
    stop: Option<Stop>,
    failure: Option<String>,
    last_progress: Instant,
    progress: &'a mut (dyn FnMut(Progress) + Send),
}

/// The pipeline: every worker reads a batch, hashes it and checks the context-free rules, then
/// hands it to the linker, which connects batches in input order. Whichever worker finds the
/// linker free does the linking, so each core is always either preparing or linking: no stage
/// waits on another's thread and no batch waits on a barrier.
struct Flow<'a> {
    input: Mutex<Input>,
    /// Signalled when batches are linked (workers wait here when too many are in flight).
    room: Condvar,
    ready: Mutex<BTreeMap<u64, Item>>,
    linker: Mutex<Linker<'a>>,
    /// Batches linked so far (the next sequence number to link).
    linked: AtomicU64,
    done: AtomicBool,
    hasher: &'a HeaderHasher,
    opts: &'a Options,
    t0: Instant,
    max_in_flight: u64,
}

impl Flow<'_> {
    fn worker(&self) {
        while !self.done.load(Ordering::Relaxed) {
            let (seq, batch, failure, mut spare) = {
                let mut input = self.input.lock().expect("no worker panics");
                while input.next_seq - self.linked.load(Ordering::Acquire) >= self.max_in_flight
                    && !self.done.load(Ordering::Relaxed)
                {
                    input = self.room.wait_timeout(input, Duration::from_millis(5)).expect("no worker panics").0;
                }
                if input.finished || self.done.load(Ordering::Relaxed) {
                    return;
                }
                let (batch, failure) = read_batch(&mut input.reader);
                if failure.is_some() || batch.is_empty() {
                    input.finished = true;
                }
                let seq = input.next_seq;
                input.next_seq += u64::from(!batch.is_empty()) + u64::from(failure.is_some());
                let keep = input.spare_hashes.len().saturating_sub(batch.len());
                let spare = input.spare_hashes.split_off(keep);
                (seq, batch, failure, spare)
            };
            let mut seq = seq;
            if !batch.is_empty() {
                // A panic here is a bug, but it must not leave the other workers waiting for
                // this batch forever: it becomes the batch's failure.
                let prepared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    prepare(self.hasher, batch, self.opts, &mut spare)
                }));
                let item = match prepared {
                    Ok(Ok(b)) => Item::Batch(b),
                    Ok(Err(e)) => Item::Failed(e),
                    Err(_) => {
                        Item::Failed("internal error: a validation worker panicked (a bug; please report it)".into())
                    }
                };
                self.ready.lock().expect("no worker panics").insert(seq, item);
                seq += 1;
            }
            if let Some(e) = failure {
                self.ready
                    .lock()
                    .expect("no worker panics")
                    .insert(seq, Item::Failed(format!("unreadable input: {e}")));
            }
            self.link_ready();
        }
    }

    /// Links every ready batch that is next in order, if no other worker is linking; one that is
    /// looks again after letting go, so no batch is left waiting.
    fn link_ready(&self) {
        loop {
            let mut l = match self.linker.try_lock() {
                Ok(l) => l,
                Err(std::sync::TryLockError::WouldBlock) => return,
                Err(std::sync::TryLockError::Poisoned(_)) => {
                    // The linker panicked: stop everyone (the panic is reported when joined).
                    self.done.store(true, Ordering::Relaxed);
                    self.room.notify_all();
                    return;
                }
            };
            loop {
                let next = self.linked.load(Ordering::Acquire);
                let Some(item) = self.ready.lock().expect("no worker panics").remove(&next) else { break };
                if l.stop.is_none() && l.failure.is_none() {
                    match item {
                        Item::Batch(b) => {
                            if let Err(e) = l.validator.accept(b) {
                                l.stop = Some(e);
                            }
                        }
                        Item::Failed(e) => l.failure = Some(e),
                    }
                    if l.stop.is_some() || l.failure.is_some() {
                        self.done.store(true, Ordering::Relaxed);
                    }
                }
                let (spent, hashes) = l.validator.take_spent();
                {
                    let mut input = self.input.lock().expect("no worker panics");
                    for buf in spent {
                        input.reader.recycle(buf);
                    }
                    let room = 64usize.saturating_sub(input.spare_hashes.len());
                    input.spare_hashes.extend(hashes.into_iter().take(room));
                    self.linked.store(next + 1, Ordering::Release);
                }
                self.room.notify_all();
                self.progress(&mut l);
            }
            drop(l);
            let next = self.linked.load(Ordering::Acquire);
            if !self.ready.lock().expect("no worker panics").contains_key(&next) {
                return;
            }
        }
    }

    fn progress(&self, l: &mut Linker) {
        if l.last_progress.elapsed() < Duration::from_secs(2) {
            return;
        }
        l.last_progress = Instant::now();
        let st = &l.validator.stats;
        let counts = Progress::Bitcoin { headers: st.headers, blocks: st.blocks, elapsed: self.t0.elapsed() };
        (l.progress)(counts);
    }
}

/// The next batch: up to [`BATCH`] records or 1 MB of input, and the read error that ended it, if any.
fn read_batch(r: &mut Reader) -> (Vec<Record>, Option<ReadError>) {
    let mut batch = Vec::with_capacity(64);
    let mut size = 0;
    while batch.len() < BATCH && size < 1 << 20 {
        match r.next_record() {
            Ok(Some(rec)) => {
                size += rec.bytes.len();
                batch.push(rec);
            }
            Ok(None) => break,
            Err(e) => return (batch, Some(e)),
        }
    }
    (batch, None)
}

/// What the pipeline leaves when the input ends or a batch stops it.
pub(super) struct Linked {
    /// The validator, with every batch before the stop linked (not yet finished).
    pub validator: Validator,
    /// The first record that stopped the linking, if any.
    pub stop: Option<Stop>,
    /// A batch that could not be read or hashed (the user's message), if any.
    pub failure: Option<String>,
    /// Bytes read.
    pub bytes: u64,
    /// blk bytes the reader skipped.
    pub skipped: super::read::Skipped,
}

/// Runs `workers` workers (this thread one of them) over `reader` until the input ends or a batch
/// stops it. At most `2 * workers + 2` batches are in flight; `progress` gets the counts at most
/// every 2 s, `elapsed` measured from `t0`.
pub(super) fn link_all(
    reader: Reader,
    hasher: &HeaderHasher,
    opts: &Options,
    validator: Validator,
    workers: usize,
    t0: Instant,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Linked {
    let flow = Flow {
        input: Mutex::new(Input { reader, spare_hashes: Vec::new(), next_seq: 0, finished: false }),
        room: Condvar::new(),
        ready: Mutex::new(BTreeMap::new()),
        linker: Mutex::new(Linker { validator, stop: None, failure: None, last_progress: Instant::now(), progress }),
        linked: AtomicU64::new(0),
        done: AtomicBool::new(false),
        hasher,
        opts,
        t0,
        max_in_flight: 2 * workers as u64 + 2,
    };
    std::thread::scope(|s| {
        for _ in 1..workers {
            s.spawn(|| flow.worker());
        }
        flow.worker();
    });
    let reader = flow.input.into_inner().expect("no worker panics").reader;
    let (bytes, skipped) = (reader.bytes_read, reader.skipped().clone());
    let Linker { validator, stop, failure, .. } = flow.linker.into_inner().expect("no worker panics");
    Linked { validator, stop, failure, bytes, skipped }
}
