//! Bulk verification of a JSON-lines signature file (`powkit verify-sigs`): one record per line,
//! `{"pubkey": hex, "signature": hex, "message": hex}`; the lines are cut into batches, and each
//! batch is parsed (fields borrowed from the file) and verified on the rayon pool, so parsing
//! overlaps verification across the cores. Verdicts are ZIP-215's ([`super::verify_all_in`]).

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::SigRef;

/// Where signatures are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SigBackend {
    /// CPU threads (batched, all cores).
    Cpu,
    /// The GPU (not built yet).
    Gpu,
}

/// Why a file could not be verified: one line naming the file (and the line, 1-based, when a
/// record is malformed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SigFileError(pub String);

/// The result of [`verify_file`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifySigsReport {
    /// Signatures in the file.
    pub total: usize,
    /// Valid under ZIP-215.
    pub valid: usize,
    /// Invalid.
    pub invalid: usize,
    /// 0-based line indexes of the invalid ones, ascending.
    pub invalid_indexes: Vec<usize>,
    /// Signatures per second, end to end (reading, parsing and verifying).
    pub signatures_per_second: f64,
    /// Seconds, end to end.
    pub seconds: f64,
    /// Signatures per batch.
    pub batch: usize,
    /// Threads used.
    pub threads: usize,
    /// The rule set.
    pub rules: &'static str,
}

/// A line's fields, borrowed from the file (no copies unless a string has JSON escapes).
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    pubkey: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    signature: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// One parsed line.
struct Parsed {
    pubkey: [u8; 32],
    signature: [u8; 64],
    message: Vec<u8>,
}

fn parse_line(line: &str) -> Result<Parsed, String> {
    let l: Line = serde_json::from_str(line).map_err(|e| format!("not a signature record: {e}"))?;
    fn fixed<const N: usize>(name: &str, h: &str) -> Result<[u8; N], String> {
        if h.len() != 2 * N {
            return Err(format!("{name} has {} hex digits, not {}", h.len(), 2 * N));
        }
        let mut out = [0u8; N];
        hex::decode_to_slice(h, &mut out).map_err(|e| format!("{name} is not hex: {e}"))?;
        Ok(out)
    }
    Ok(Parsed {
        pubkey: fixed("pubkey", &l.pubkey)?,
        signature: fixed("signature", &l.signature)?,
        message: hex::decode(&*l.message).map_err(|e| format!("message is not hex: {e}"))?,
    })
}

/// Verifies every signature in the JSON-lines file at `path` on `backend`, `batch` signatures per
/// batch (at least 1; a failed batch is bisected to name exactly the bad signatures).
///
/// # Errors
/// The GPU backend (not built yet), an unreadable or non-UTF-8 file, or a malformed line.
pub fn verify_file(path: &Path, batch: usize, backend: SigBackend) -> Result<VerifySigsReport, SigFileError> {
    if backend == SigBackend::Gpu {
        return Err(SigFileError(
            "--backend gpu: GPU signature verification is not built yet; use --backend cpu".into(),
        ));
    }
    let t0 = Instant::now();
    let text = std::fs::read(path).map_err(|e| SigFileError(format!("{}: {e}", path.display())))?;
    let text = std::str::from_utf8(&text).map_err(|e| {
        let line = text[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        SigFileError(format!("{}: line {}: not UTF-8", path.display(), line + 1))
    })?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let batch = batch.max(1);
    // Per batch: the invalid indexes, or the first malformed line (index, reason).
    let results: Vec<Result<Vec<usize>, (usize, String)>> = lines
        .par_chunks(batch)
        .enumerate()
        .map(|(c, chunk)| {
            let base = c * batch;
            let parsed = chunk
                .iter()
                .enumerate()
                .map(|(i, l)| parse_line(l.trim_end_matches('\r')).map_err(|e| (base + i, e)))
                .collect::<Result<Vec<Parsed>, _>>()?;
            let refs: Vec<SigRef> = parsed
                .iter()
                .map(|p| SigRef { pubkey: &p.pubkey, signature: &p.signature, message: &p.message })
                .collect();
            Ok(super::verify_all_in(&refs, batch).into_iter().map(|i| base + i).collect())
        })
        .collect();
    let mut invalid_indexes = Vec::new();
    for r in results {
        match r {
            Ok(bad) => invalid_indexes.extend(bad),
            Err((i, why)) => {
                return Err(SigFileError(format!("{}: line {}: {why}", path.display(), i + 1)));
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let total = lines.len();
    Ok(VerifySigsReport {
        total,
        valid: total - invalid_indexes.len(),
        invalid: invalid_indexes.len(),
        invalid_indexes,
        signatures_per_second: total as f64 / secs,
        seconds: secs,
        batch,
        threads: rayon::current_num_threads(),
        rules: "ZIP-215 (canonical S, non-canonical point encodings accepted, cofactored equation)",
    })
}
