//! Bulk validation of powkit chains: every header rule, every block rule, every signature
//! (batched over all cores) and every state transition, ending with the state root.
//!
//! Two stages overlap: this thread reads a batch of blocks (about 2 MB), decodes them, runs the
//! context-free rules and verifies all their signatures in one bisecting batch, on the rayon pool;
//! a linker thread connects the previous batch to the tip and applies it to the state. Blocks must
//! come in chain order (as `powkit chain generate` and `chain export` write them); a block that
//! does not extend the tip is reported with `UnknownParent`.

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::read::{expand_paths, Format, Reader, Record};
use super::{
    Invalid, Malformed, Progress, Stats, Stop, ValidateError, ValidateOptions, ValidateReport, LEDGER_NOT_CHECKED,
};
use crate::chain::Follower;
use crate::consensus::ledger::{check_block_alone, check_signatures_with, ConsensusError};
use crate::consensus::rules::RuleError;
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::primitives::BlockHash;
use crate::sigs::SigVerifier;

/// Totals of a run.
#[derive(Debug, Clone, Default)]
pub struct LedgerTotals {
    /// Blocks checked (genesis included when present).
    pub blocks: u64,
    /// Transactions checked, coinbases included.
    pub transactions: u64,
    /// Bytes read.
    pub bytes: u64,
    /// blk bytes skipped because they could not be framed.
    pub skipped: super::read::Skipped,
}

/// A block prepared by the parallel stage.
struct Prepared {
    rec: Record,
    block: LedgerBlock,
    hash: BlockHash,
}

/// Why a record does not decode, and, when it starts with a genesis header that is not this
/// chain's (parent all zeros), the `genesis_matches_chain` verdict first: a blk file written by an
/// earlier consensus version (version 2's coinbases are 12 bytes shorter) is named as such, not
/// only reported as malformed.
pub(crate) fn undecodable(bytes: &[u8], params: &LedgerParams, e: &crate::primitives::DecodeError) -> String {
    if let Some(h) = bytes.get(..80).and_then(|h| <&[u8; 80]>::try_from(h).ok()) {
        let header = crate::primitives::BlockHeader::from_array(h);
        if header.prev_blockhash == BlockHash::ZERO {
            if let Err(g) = crate::consensus::ledger::genesis_matches_chain(&header.block_hash(), params) {
                return format!("rule genesis_matches_chain: {g} (the block does not decode: {e})");
            }
        }
    }
    e.to_string()
}

fn stop_invalid(
    files: &[PathBuf],
    rec: &Record,
    b: &LedgerBlock,
    hash: &BlockHash,
    height: Option<u32>,
    e: ConsensusError,
) -> Stop {
    Stop::Invalid(Box::new(Invalid {
        height,
        hash: hash.to_string(),
        file: files
            .get(rec.file_index as usize)
            .map_or_else(|| rec.file.display().to_string(), |f| f.display().to_string()),
        offset: rec.offset,
        rule: e.rule().to_string(),
        reason: e.to_string().split(": ").next().unwrap_or_default().to_string(),
        message: e.to_string(),
        prev: Some(b.header.prev_blockhash),
    }))
}

/// How [`follow`] ended.
pub struct Followed {
    /// The follower at the last block connected.
    pub follower: Follower,
    /// The totals.
    pub totals: LedgerTotals,
    /// Why it stopped early, if it did.
    pub stop: Option<Stop>,
    /// The read error that ended the input (`unreadable input: ...`), if one did.
    pub read_error: Option<String>,
}

/// Validates `files` (blk format with the chain's magic, read through `xor_key` when given: see
/// [`Reader::with_xor_key`]). Returns the follower at the last block
/// connected, the totals, and why it stopped early, if it did ([`Followed`]). Signatures are
/// verified by `verifier`, every signature of about 2 MiB of blocks in one call. `progress` sees
/// the follower after each batch.
pub fn follow(
    params: &'static LedgerParams,
    files: Vec<PathBuf>,
    xor_key: Option<super::xor::XorKey>,
    now: i64,
    verifier: &dyn SigVerifier,
    progress: &mut (dyn FnMut(&Follower) + Send),
) -> Followed {
    let genesis = params.genesis.header.block_hash();
    let (tx, rx) = sync_channel::<Vec<Result<Prepared, Stop>>>(2);
    let mut totals = LedgerTotals::default();
    let mut read_error = None;
    let files2 = files.clone();
    std::thread::scope(|s| {
        let linker = s.spawn(move || {
            let mut f = Follower::new(params);
            let (mut blocks, mut txs) = (0u64, 0u64);
            for batch in rx {
                for item in batch {
                    let p = match item {
                        Ok(p) => p,
                        Err(Stop::Invalid(mut i)) => {
                            if i.prev == Some(f.tip) {
                                i.height = Some(f.height + 1);
                            }
                            return (f, blocks, txs, Some(Stop::Invalid(i)));
                        }
                        Err(e) => return (f, blocks, txs, Some(e)),
                    };
                    if p.hash == genesis && f.height == 0 {
                        blocks += 1;
                        txs += p.block.txs.len() as u64;
                        continue;
                    }
                    if !f.extends(&p.block) {
                        let prev = p.block.header.prev_blockhash;
                        let e = match crate::consensus::ledger::genesis_matches_chain(&p.hash, params) {
                            Err(g) if prev == BlockHash::ZERO => ConsensusError::Ledger(g),
                            _ => ConsensusError::Header(RuleError::UnknownParent { prev }),
                        };
                        return (f, blocks, txs, Some(stop_invalid(&files2, &p.rec, &p.block, &p.hash, None, e)));
                    }
                    if let Err(e) = f.connect(&p.block, &p.hash, now) {
                        let h = Some(f.height + 1);
                        return (f, blocks, txs, Some(stop_invalid(&files2, &p.rec, &p.block, &p.hash, h, e)));
                    }
                    blocks += 1;
                    txs += p.block.txs.len() as u64;
                }
                progress(&f);
            }
            (f, blocks, txs, None)
        });
        let mut reader = Reader::new(files.clone(), Format::Blk, params.magic).with_xor_key(xor_key);
        loop {
            let mut recs = Vec::new();
            let mut size = 0;
            let mut failure = None;
            while size < 2 << 20 {
                match reader.next_record() {
                    Ok(Some(r)) => {
                        size += r.bytes.len();
                        recs.push(r);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
            let end = recs.is_empty() || size < 2 << 20;
            let mut prepared: Vec<Result<Prepared, Stop>> = recs
                .into_par_iter()
                .map(|rec| {
                    let block = LedgerBlock::from_bytes(&rec.bytes).map_err(|e| {
                        Stop::Malformed(Box::new(Malformed {
                            file: rec.file.display().to_string(),
                            offset: rec.offset,
                            message: undecodable(&rec.bytes, params, &e),
                        }))
                    })?;
                    let hash = block.header.block_hash();
                    if hash != genesis {
                        check_block_alone(&block, &hash, rec.bytes.len(), params)
                            .map_err(|e| stop_invalid(&files, &rec, &block, &hash, None, e))?;
                    }
                    Ok(Prepared { rec, block, hash })
                })
                .collect();
            // Every signature of the batch in one bisecting batch verification; a block with a bad
            // one becomes its failure (reported in order by the linker).
            let ok: Vec<(usize, &LedgerBlock)> =
                prepared.iter().enumerate().filter_map(|(i, p)| p.as_ref().ok().map(|p| (i, &p.block))).collect();
            let refs: Vec<&LedgerBlock> = ok.iter().map(|(_, b)| *b).collect();
            if let Err((k, e)) = check_signatures_with(&refs, verifier) {
                let i = ok[k].0;
                let p = match &prepared[i] {
                    Ok(p) => stop_invalid(&files, &p.rec, &p.block, &p.hash, None, ConsensusError::Ledger(e)),
                    Err(_) => unreachable!("only prepared blocks are checked"),
                };
                prepared[i] = Err(p);
            }
            if !prepared.is_empty() && tx.send(prepared).is_err() {
                break;
            }
            if let Some(e) = failure {
                read_error = Some(format!("unreadable input: {e}"));
                break;
            }
            if end {
                break;
            }
        }
        totals.bytes = reader.bytes_read;
        totals.skipped = reader.skipped().clone();
        drop(tx);
        let (follower, blocks, txs, stop) = linker.join().expect("the linker does not panic");
        totals.blocks = blocks;
        totals.transactions = txs;
        Followed { follower, totals: totals.clone(), stop, read_error: read_error.clone() }
    })
}

/// Validates a powkit chain (`opts.files`, blk format): headers, block rules, signatures and
/// state, with `now` (Unix seconds) as the clock for the future-time limit. `progress` gets
/// [`Progress::Powkit`] counts at most every 2 s, then [`Progress::Done`].
///
/// # Errors
/// A format other than blk ([`ValidateError::Format`]), paths that cannot be listed
/// ([`ValidateError::Paths`]), or input unreadable before any invalid block
/// ([`ValidateError::Input`]).
pub fn run(
    opts: &ValidateOptions,
    params: &'static LedgerParams,
    now: i64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<ValidateReport, ValidateError> {
    if opts.format != Format::Blk {
        return Err(ValidateError::Format(params.name));
    }
    let files = expand_paths(&opts.files, params.magic)?;
    let t0 = Instant::now();
    let mut last = Instant::now();
    let mut counts = |f: &Follower| {
        if last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            progress(Progress::Powkit { height: f.height, transactions: f.transactions, elapsed: t0.elapsed() });
        }
    };
    // Signatures on the backend asked for (open_sig_verifier takes a software GPU when `gpu` or
    // `all` names it; `auto` leaves it out).
    let mut notes = Vec::new();
    let verifier =
        crate::backend::open_sig_verifier(opts.backend, opts.adapter, false, crate::sigs::BATCH, &mut notes)?;
    for n in &notes {
        tracing::info!("{n}");
    }
    let Followed { follower: mut f, totals, stop, read_error } =
        follow(params, files, opts.xor_key, now, &*verifier, &mut counts);
    // An invalid block read before a read error is the answer (the error came later in the input).
    let read_error = if stop.is_some() { None } else { read_error };
    progress(Progress::Done { elapsed: t0.elapsed() });
    if let Some(e) = read_error {
        return Err(ValidateError::Input(e));
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let (invalid, malformed) = ValidateReport::split_stop(stop);
    let stats = Stats {
        blocks: totals.blocks,
        headers: totals.blocks,
        transactions: totals.transactions,
        best_height: Some(f.height),
        tip: Some(f.tip.to_string()),
        chainwork: hex::encode(f.chainwork.to_be_bytes()),
        ..Stats::default()
    };
    Ok(ValidateReport {
        valid: invalid.is_none() && malformed.is_none(),
        chain: params.name.to_string(),
        headers_per_second: totals.blocks as f64 / secs,
        blocks_per_second: totals.blocks as f64 / secs,
        transactions_per_second: totals.transactions as f64 / secs,
        stats,
        bytes: totals.bytes,
        seconds: secs,
        backend: verifier.describe(),
        no_context: false,
        not_checked: LEDGER_NOT_CHECKED,
        state_root: Some(f.state.root()),
        accounts: Some(f.state.len()),
        invalid,
        malformed,
        skipped: totals.skipped,
        utxo: None,
        scripts: None,
        peak_rss_bytes: super::peak_rss_bytes(),
    })
}
