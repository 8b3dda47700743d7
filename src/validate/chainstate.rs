//! Full validation of Bitcoin blocks: the UTXO set, the transaction rules that need it, and every
//! input's script run by Bitcoin Core's interpreter, in the order of Core's `Chainstate::ConnectBlock`
//! (src/validation.cpp). Disconnecting a block (a reorg) restores the coins it spent from undo data.
//!
//! Script checks run on their own threads beside block connection (Core's `CCheckQueue`): the
//! linker connects a block (inputs, amounts, lock times, sigops, the UTXO updates), queues the
//! block's script checks and goes on to the next block, at most [`MAX_QUEUED_INPUTS`] inputs ahead
//! of the script threads. A failing script is reported at its block, the earliest in connection
//! order; a failure of another rule in a later block does not hide it ([`Chainstate::first_failure`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::consensus::rules::{sigops, tx as txrules, tx::TxRuleError};
use crate::consensus::script::{block_script_flags, TxScriptCheck};
use crate::consensus::BitcoinParams;
use crate::primitives::{Block, BlockHash, Coin, OutPoint, Transaction, TxOut, Txid};
use crate::state::utxo::{BlockUndo, UtxoError, UtxoSet, UtxoStats};

/// Most script-check inputs queued ahead of the script threads (memory: the transactions and the
/// outputs they spend stay alive until checked).
pub const MAX_QUEUED_INPUTS: u64 = 200_000;

/// Inputs per script job (a large transaction is split so every thread gets a share).
const INPUTS_PER_JOB: usize = 32;

/// A block being connected: where it sits and what its rules need of its ancestors.
pub struct BlockContext<'a> {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: BlockHash,
    /// Median time past of the parent (BIP113's cutoff, BIP68's time locks).
    pub prev_mtp: i64,
    /// Median time past of the active-chain block at a height below this one.
    pub mtp_of: &'a dyn Fn(u32) -> i64,
    /// Hash of the active-chain block at the network's BIP34 height, if the chain reaches it.
    pub bip34_ancestor: Option<BlockHash>,
    /// Which block in connection order (for reporting the earliest script failure).
    pub seq: u64,
}

/// Why a block failed to connect.
#[derive(Debug)]
pub enum ConnectError {
    /// A consensus rule (its error names the transaction where there is one).
    Rule(TxRuleError),
    /// The UTXO store failed (not a verdict on the block).
    Store(UtxoError),
    /// Something that is not the block's fault (a bug or a broken store): the message.
    Internal(String),
}

impl From<UtxoError> for ConnectError {
    fn from(e: UtxoError) -> Self {
        ConnectError::Store(e)
    }
}

/// A script failure found by the script threads.
#[derive(Debug, Clone)]
pub struct ScriptFailureAt {
    /// The block's position in connection order.
    pub seq: u64,
    /// Its height and hash.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// The transaction's index in the block.
    pub tx_index: usize,
    /// The failure (Core's `block-script-verify-flag-failed`).
    pub error: TxRuleError,
}

struct Job {
    seq: u64,
    height: u32,
    hash: BlockHash,
    tx_index: usize,
    txid: Txid,
    check: Arc<TxScriptCheck>,
    inputs: std::ops::Range<usize>,
}

struct Shared {
    outstanding: Mutex<u64>,
    done: Condvar,
    failure: Mutex<Option<ScriptFailureAt>>,
    checked: AtomicU64,
}

/// The script threads.
struct ScriptQueue {
    tx: Option<crossbeam_channel::Sender<Job>>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ScriptQueue {
    fn new(threads: usize) -> ScriptQueue {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let shared = Arc::new(Shared {
            outstanding: Mutex::new(0),
            done: Condvar::new(),
            failure: Mutex::new(None),
            checked: AtomicU64::new(0),
        });
        let workers = (0..threads.max(1))
            .map(|i| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("script-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let n = job.inputs.len() as u64;
                            let skip = shared
                                .failure
                                .lock()
                                .expect("no script thread panics")
                                .as_ref()
                                .is_some_and(|f| f.seq < job.seq);
                            if !skip {
                                for i in job.inputs.clone() {
                                    if let Err(failure) = job.check.verify_input(i) {
                                        let mut f = shared.failure.lock().expect("no script thread panics");
                                        let earlier =
                                            f.as_ref().is_none_or(|g| (job.seq, job.tx_index) < (g.seq, g.tx_index));
                                        if earlier {
                                            *f = Some(ScriptFailureAt {
                                                seq: job.seq,
                                                height: job.height,
                                                hash: job.hash,
                                                tx_index: job.tx_index,
                                                error: TxRuleError::Script { txid: job.txid, failure },
                                            });
                                        }
                                        break;
                                    }
                                }
                                shared.checked.fetch_add(n, Ordering::Relaxed);
                            }
                            let mut o = shared.outstanding.lock().expect("no script thread panics");
                            *o -= n;
                            if *o == 0 || *o < MAX_QUEUED_INPUTS / 2 {
                                shared.done.notify_all();
                            }
                        }
                    })
                    .expect("spawn a script thread")
            })
            .collect();
        ScriptQueue { tx: Some(tx), shared, workers }
    }

    /// Queues one transaction's inputs, waiting first while too many are queued.
    fn submit(&self, check: Arc<TxScriptCheck>, seq: u64, height: u32, hash: BlockHash, tx_index: usize, txid: Txid) {
        let n = check.inputs();
        {
            let mut o = self.shared.outstanding.lock().expect("no script thread panics");
            while *o >= MAX_QUEUED_INPUTS {
                o = self.shared.done.wait(o).expect("no script thread panics");
            }
            *o += n as u64;
        }
        let sender = self.tx.as_ref().expect("open until drop");
        let mut start = 0;
        while start < n {
            let end = (start + INPUTS_PER_JOB).min(n);
            let job = Job { seq, height, hash, tx_index, txid, check: check.clone(), inputs: start..end };
            sender.send(job).expect("script threads run until the queue is dropped");
            start = end;
        }
    }

    /// Waits until every queued check has run.
    fn wait(&self) {
        let mut o = self.shared.outstanding.lock().expect("no script thread panics");
        while *o > 0 {
            o = self.shared.done.wait(o).expect("no script thread panics");
        }
    }
}

impl Drop for ScriptQueue {
    fn drop(&mut self) {
        self.tx = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// The UTXO set and the script threads of one validation run.
pub struct Chainstate {
    params: BitcoinParams,
    utxo: UtxoSet,
    scripts: ScriptQueue,
    assume_valid: Option<HashSet<BlockHash>>,
    /// Inputs whose scripts were skipped under `--assume-valid`.
    pub inputs_assumed_valid: u64,
    /// Blocks connected (genesis included) and disconnected.
    pub connected: u64,
    /// Blocks disconnected by reorgs.
    pub disconnected: u64,
    /// Kept for the script ceiling measurement: every queued check.
    keep: Option<Vec<Arc<TxScriptCheck>>>,
}

impl Chainstate {
    /// A chain state with an empty UTXO set in `dir` (a private temporary directory when `None`),
    /// a cache of `cache_bytes`, and `threads` script threads. `assume_valid`: the blocks whose
    /// scripts are not run (the ancestors of the `--assume-valid` block, itself included).
    ///
    /// # Errors
    /// The UTXO store cannot be created.
    pub fn new(
        params: BitcoinParams,
        dir: Option<&std::path::Path>,
        cache_bytes: usize,
        threads: usize,
        assume_valid: Option<HashSet<BlockHash>>,
        keep_checks: bool,
    ) -> Result<Chainstate, UtxoError> {
        Ok(Chainstate {
            params,
            utxo: UtxoSet::open(dir, cache_bytes)?,
            scripts: ScriptQueue::new(threads),
            assume_valid,
            inputs_assumed_valid: 0,
            connected: 0,
            disconnected: 0,
            keep: keep_checks.then(Vec::new),
        })
    }

    /// Connects `block` (whose header and context-free and contextual block rules passed) on top
    /// of the UTXO set, as Core's `ConnectBlock`: BIP30, then per transaction the inputs
    /// (available, mature, in range, not below the outputs), BIP68 sequence locks, the block's
    /// signature-operation cost, the scripts (queued), the coins spent and created; then the
    /// coinbase's amount. Undo data goes to the undo store. On a rule failure the UTXO set is left
    /// part-way (validation stops there).
    ///
    /// # Errors
    /// [`ConnectError::Rule`] for the first rule the block breaks, [`ConnectError::Store`] when the
    /// UTXO store fails.
    pub fn connect(&mut self, block: &Arc<Block>, txids: &[Txid], ctx: &BlockContext) -> Result<(), ConnectError> {
        self.connected += 1;
        let params = &self.params.clone();
        // Core skips the genesis block's transactions: its coinbase is not in the UTXO set.
        if ctx.height == 0 {
            return Ok(());
        }
        let raw: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
        if txrules::bip30_applies(ctx.height, &ctx.hash, ctx.bip34_ancestor.as_ref(), params) {
            let mut store_error = None;
            let utxo = &mut self.utxo;
            let r = txrules::outputs_do_not_overwrite_unspent(block, &raw, |op| match utxo.contains(op) {
                Ok(b) => b,
                Err(e) => {
                    store_error.get_or_insert(e);
                    false
                }
            });
            if let Some(e) = store_error {
                return Err(e.into());
            }
            r.map_err(ConnectError::Rule)?;
        }
        let flags = block_script_flags(params, ctx.height, &ctx.hash);
        let check_scripts = !self.assume_valid.as_ref().is_some_and(|s| s.contains(&ctx.hash));
        let prevouts: Vec<OutPoint> =
            block.txdata.iter().skip(1).flat_map(|t| t.inputs.iter().map(|i| i.prevout)).collect();
        self.utxo.prefetch(&prevouts)?;
        let mut fees: i64 = 0;
        let mut sigop_cost: i64 = 0;
        let mut undo = BlockUndo { spent: Vec::with_capacity(block.txdata.len().saturating_sub(1)) };
        for (i, tx) in block.txdata.iter().enumerate() {
            let rule = ConnectError::Rule;
            let is_coinbase = i == 0;
            let coins = if is_coinbase { Vec::new() } else { self.spend_inputs(tx)? };
            if !is_coinbase {
                let fee = txrules::check_tx_inputs(tx, &coins, ctx.height).map_err(rule)?;
                fees = fees.saturating_add(fee);
                txrules::accumulated_fees_are_in_range(fees).map_err(rule)?;
                txrules::sequence_locks_are_satisfied(tx, &coins, ctx.height, ctx.prev_mtp, params, |h| {
                    (ctx.mtp_of)(h)
                })
                .map_err(rule)?;
            }
            sigop_cost += sigops::transaction_sigop_cost(tx, &coins, flags);
            sigops::block_sigop_cost_is_within_limit(sigop_cost).map_err(rule)?;
            if !is_coinbase {
                if check_scripts {
                    let spent: Vec<TxOut> = coins.iter().map(|c| c.out.clone()).collect();
                    let check = TxScriptCheck::new(tx, spent, flags)
                        .map_err(|e| ConnectError::Internal(format!("script check setup for {}: {e}", txids[i])))?;
                    let check = Arc::new(check);
                    if let Some(k) = &mut self.keep {
                        k.push(check.clone());
                    }
                    self.scripts.submit(check, ctx.seq, ctx.height, ctx.hash, i, txids[i]);
                } else {
                    self.inputs_assumed_valid += tx.inputs.len() as u64;
                }
                undo.spent.push(coins);
            }
            self.utxo.add_transaction_outputs(tx, txids[i], ctx.height, is_coinbase)?;
        }
        let coinbase = &block.txdata[0];
        txrules::coinbase_value_is_within_reward(coinbase, fees, ctx.height, &self.params)
            .map_err(ConnectError::Rule)?;
        self.utxo.undo_store().put(&ctx.hash, &undo)?;
        self.utxo.flush_if_over()?;
        Ok(())
    }

    /// Spends the inputs of `tx` (each coin removed from the set) and returns their coins; an
    /// input that is missing or already spent is Core's `bad-txns-inputs-missingorspent`.
    fn spend_inputs(&mut self, tx: &Transaction) -> Result<Vec<Coin>, ConnectError> {
        let mut coins = Vec::with_capacity(tx.inputs.len());
        for input in &tx.inputs {
            match self.utxo.spend(&input.prevout)? {
                Some(c) => coins.push(c),
                None => {
                    let found: Vec<Option<&Coin>> =
                        coins.iter().map(Some).chain(std::iter::repeat(None)).take(tx.inputs.len()).collect();
                    let e = txrules::inputs_are_available(tx, &found).expect_err("an input is missing");
                    return Err(ConnectError::Rule(e));
                }
            }
        }
        Ok(coins)
    }

    /// Disconnects `block` (the tip of the UTXO set) with its undo data, as Core's
    /// `DisconnectBlock`.
    ///
    /// # Errors
    /// The undo data is missing or does not fit, or the store fails (the message).
    pub fn disconnect(&mut self, block: &Block, txids: &[Txid], height: u32, hash: &BlockHash) -> Result<(), String> {
        self.disconnected += 1;
        if height == 0 {
            return Ok(());
        }
        let undo = self
            .utxo
            .undo_store()
            .get(hash)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no undo data for block {hash}"))?;
        self.utxo.disconnect_block(block, txids, &undo, height, hash).map_err(|e| e.to_string())?;
        self.utxo.undo_store().forget(hash);
        Ok(())
    }

    /// Waits for every queued script check; the earliest failure (connection order), if any.
    pub fn first_failure(&self) -> Option<ScriptFailureAt> {
        self.scripts.wait();
        self.scripts.shared.failure.lock().expect("no script thread panics").clone()
    }

    /// Inputs whose scripts have run.
    pub fn inputs_checked(&self) -> u64 {
        self.scripts.shared.checked.load(Ordering::Relaxed)
    }

    /// The UTXO set's figures (flushes the cache first).
    ///
    /// # Errors
    /// The store fails.
    pub fn stats(&mut self) -> Result<UtxoStats, UtxoError> {
        self.utxo.stats()
    }

    /// The script-check ceiling: the kept checks (every input of the run) run again on `threads`
    /// threads with nothing else to do: (inputs, inputs per second). Failures count like passes
    /// (the verdict came from the run itself).
    pub fn script_ceiling(&mut self, threads: usize) -> Option<(u64, f64)> {
        use rayon::prelude::*;
        let checks = self.keep.take()?;
        let jobs: Vec<(usize, usize)> =
            checks.iter().enumerate().flat_map(|(k, c)| (0..c.inputs()).map(move |i| (k, i))).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build().ok()?;
        let t0 = std::time::Instant::now();
        pool.install(|| {
            jobs.par_iter().for_each(|(k, i)| {
                let _ = checks[*k].verify_input(*i);
            })
        });
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        Some((jobs.len() as u64, jobs.len() as f64 / secs))
    }
}
