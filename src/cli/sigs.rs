//! `powkit verify-sigs`: bulk Ed25519 verification (ZIP-215) of a JSON-lines file.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::CliError;
use crate::sigs::{self, SigRef};

/// Where signatures are verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SigBackend {
    /// CPU threads (batched, all cores).
    Cpu,
    /// The GPU (not built yet).
    Gpu,
}

/// Flags of `powkit verify-sigs`.
#[derive(Args, Debug, Clone)]
pub struct VerifySigsArgs {
    /// JSON lines: `{"pubkey": hex, "signature": hex, "message": hex}` per line.
    pub file: PathBuf,
    /// Where to verify.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: SigBackend,
    /// Signatures per batch (a failed batch is bisected to name the bad signatures).
    #[arg(long, default_value_t = sigs::BATCH)]
    pub batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The result.
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

/// Runs the verification: the lines are cut into batches, and each batch is parsed and verified
/// on the rayon pool (parsing overlaps verification across the cores).
pub fn run(a: &VerifySigsArgs) -> Result<VerifySigsReport, CliError> {
    if a.backend == SigBackend::Gpu {
        return Err(CliError::usage("--backend gpu: GPU signature verification is not built yet; use --backend cpu"));
    }
    let t0 = Instant::now();
    let text = std::fs::read(&a.file).map_err(|e| CliError::usage(format!("{}: {e}", a.file.display())))?;
    let text = std::str::from_utf8(&text).map_err(|e| {
        let line = text[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        CliError::usage(format!("{}: line {}: not UTF-8", a.file.display(), line + 1))
    })?;
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let batch = a.batch.max(1);
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
            Ok(sigs::verify_all_in(&refs, batch).into_iter().map(|i| base + i).collect())
        })
        .collect();
    let mut invalid_indexes = Vec::new();
    for r in results {
        match r {
            Ok(bad) => invalid_indexes.extend(bad),
            Err((i, why)) => {
                return Err(CliError::usage(format!("{}: line {}: {why}", a.file.display(), i + 1)));
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

/// `powkit verify-sigs`: exit 0 all valid, 1 some invalid, 2 malformed input.
pub fn main(a: &VerifySigsArgs) -> Result<i32, CliError> {
    let r = run(a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("serializable"));
    } else {
        println!("{} signatures: {} valid, {} invalid ({})", r.total, r.valid, r.invalid, r.rules);
        if r.invalid > 0 {
            let shown: Vec<String> = r.invalid_indexes.iter().take(50).map(usize::to_string).collect();
            let more = if r.invalid > 50 { format!(" (and {} more)", r.invalid - 50) } else { String::new() };
            println!("invalid line indexes (0-based): {}{more}", shown.join(", "));
        }
        println!(
            "{:.0} signatures/s in {:.3} s ({} threads, batches of {})",
            r.signatures_per_second, r.seconds, r.threads, r.batch
        );
    }
    Ok(if r.invalid > 0 { 1 } else { 0 })
}
