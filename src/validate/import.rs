//! `powkit chain import`: powkit blocks from blk files, each checked against every rule (its
//! signatures batched) and committed with its state changes in one store transaction. It lives
//! here, beside the bulk validator, because it is the same read-then-validate loop over
//! [`super::read`]'s records with the store as its sink; the store itself stays a plain database
//! that knows nothing about files.

use std::path::PathBuf;
use std::time::Instant;

use super::read::{Format, Reader};
use super::{Invalid, ValidateError};
use crate::chain::Follower;
use crate::consensus::ledger::{check_block_alone, check_signatures, ConsensusError};
use crate::consensus::LedgerParams;
use crate::ledger::LedgerBlock;
use crate::primitives::BlockHash;
use crate::store::Store;

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Blocks validated and stored.
    pub added: u64,
    /// Blocks skipped because the store already held them.
    pub skipped: u64,
    /// The stored tip's height before the import.
    pub start: u32,
    /// The tip's height after it.
    pub height: u32,
    /// The tip after it.
    pub tip: BlockHash,
    /// The state root after it.
    pub state_root: crate::ledger::StateRoot,
    /// Wall time, seconds (from after the store was opened).
    pub seconds: f64,
    /// The block that broke a rule and ended the import, if one did (`height` is always known:
    /// the tip's height plus one). Every block before it is stored.
    pub invalid: Option<Invalid>,
}

/// Imports `files` (blk format with the chain's magic, in order) into the store in `datadir`
/// (created if missing), resuming after the stored tip: blocks the store holds are skipped. `now`
/// (Unix seconds) is the clock for the future-time limit. An invalid block ends the import and is
/// reported in [`ImportReport::invalid`].
///
/// # Errors
/// The store cannot be opened, read or written ([`ValidateError::Store`]), the input cannot be
/// read ([`ValidateError::Input`]), or a block cannot be decoded ([`ValidateError::Malformed`]).
pub fn import(
    params: &'static LedgerParams,
    datadir: &std::path::Path,
    files: Vec<PathBuf>,
    now: i64,
) -> Result<ImportReport, ValidateError> {
    let store = Store::open(datadir, params)?;
    let mut f = Follower::from_stored(params, store.tip_state()?);
    let start = f.height;
    let t0 = Instant::now();
    let mut reader = Reader::new(files, Format::Blk, params.magic);
    let (mut added, mut skipped) = (0u64, 0u64);
    let mut invalid = None;
    loop {
        let rec = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(ValidateError::Input(format!("unreadable input: {e}"))),
        };
        let at = format!("{} offset {}", rec.file.display(), rec.offset);
        let b = LedgerBlock::from_bytes(&rec.bytes).map_err(|e| {
            let why = super::powkit::undecodable(&rec.bytes, params, &e);
            ValidateError::Malformed(format!("MALFORMED block at {at}: {why}"))
        })?;
        let hash = b.header.block_hash();
        if store.contains(&hash)? {
            skipped += 1;
            continue;
        }
        let height = f.height + 1;
        let broken = |rule: &str, message: String| Invalid {
            height: Some(height),
            hash: hash.to_string(),
            file: rec.file.display().to_string(),
            offset: rec.offset,
            rule: rule.to_string(),
            reason: message.split(": ").next().unwrap_or_default().to_string(),
            message,
            prev: Some(b.header.prev_blockhash),
        };
        if !f.extends(&b) {
            let prev = b.header.prev_blockhash;
            let e = match crate::consensus::ledger::genesis_matches_chain(&hash, params) {
                Err(g) if prev == BlockHash::ZERO => ConsensusError::Ledger(g),
                _ => ConsensusError::Header(crate::consensus::rules::RuleError::UnknownParent { prev }),
            };
            invalid = Some(broken(e.rule(), e.to_string()));
            break;
        }
        if let Err(e) = check_block_alone(&b, &hash, rec.bytes.len(), params) {
            invalid = Some(broken(e.rule(), e.to_string()));
            break;
        }
        if let Err((_, e)) = check_signatures(&[&b]) {
            invalid = Some(broken(e.rule(), e.to_string()));
            break;
        }
        let undo = match f.connect(&b, &hash, now) {
            Ok(u) => u,
            Err(e) => {
                invalid = Some(broken(e.rule(), e.to_string()));
                break;
            }
        };
        store.connect(&b, &undo, &f.stored_tip(), &f.state)?;
        added += 1;
    }
    Ok(ImportReport {
        added,
        skipped,
        start,
        height: f.height,
        tip: f.tip,
        state_root: f.state.root(),
        seconds: t0.elapsed().as_secs_f64(),
        invalid,
    })
}

/// `powkit chain export`: writes the main chain of the store in `datadir`, genesis first, to `out`
/// as blk records with the chain's magic (what [`import`] and `powkit validate` read). Returns the
/// number of blocks written.
///
/// # Errors
/// No store in `datadir`, or it cannot be opened or read ([`ValidateError::Store`]); `out` cannot be
/// created or written ([`ValidateError::Input`], naming the file).
pub fn export(
    params: &'static LedgerParams,
    datadir: &std::path::Path,
    out: &std::path::Path,
) -> Result<u32, ValidateError> {
    use std::io::Write;
    if !datadir.join("chain.redb").exists() {
        return Err(ValidateError::Input(format!("{}: no chain.redb in this data directory", datadir.display())));
    }
    let store = Store::open(datadir, params)?;
    let io = |e: std::io::Error| ValidateError::Input(format!("{}: {e}", out.display()));
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out).map_err(io)?);
    let mut h = 0u32;
    while let Some(b) = store.block_at(h)? {
        crate::generate::ledger::write_record(&mut w, params.magic, &b).map_err(io)?;
        h += 1;
    }
    w.flush().map_err(io)?;
    Ok(h)
}
