//! Bulk verification of a JSON-lines signature file (`powkit verify-sigs`): one record per line,
//! `{"pubkey": hex, "signature": hex, "message": hex}`; the file is streamed a chunk of lines at a
//! time (each line's length checked while it is read, [`MAX_SIG_LINE_BYTES`]), the chunk is cut into
//! batches, and each batch is parsed (fields borrowed from the chunk) and verified on the rayon
//! pool, so parsing overlaps verification across the cores. Verdicts are ZIP-215's ([`super::verify_all_in`]).

use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{SigRef, SigVerifier};
use crate::primitives::lines::{read_line_bounded, LineError};

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
    /// What verified (`cpu (N threads)`, `gpu (ADAPTER)`, `all (...)`).
    pub backend: String,
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

/// Longest record line accepted, in bytes before its newline: 1 MiB (a record whose message has
/// up to about 524,000 bytes). The limit is checked while the line is read: a longer line is refused
/// after `MAX_SIG_LINE_BYTES + 1` bytes, so memory stays bounded whatever the file holds.
pub const MAX_SIG_LINE_BYTES: usize = 1 << 20;

/// Bytes of lines read before they are parsed and verified (with up to `4 x threads` batches per
/// chunk): memory is bounded by one chunk, not the file.
const CHUNK_BYTES: usize = 64 << 20;

/// Verifies every signature in the JSON-lines file at `path` with `verifier` (a failed batch is
/// bisected to name exactly the bad signatures). The file is streamed ([`verify_reader`]).
///
/// # Errors
/// An unreadable file, or what [`verify_reader`] refuses.
pub fn verify_file(path: &Path, verifier: &dyn SigVerifier) -> Result<VerifySigsReport, SigFileError> {
    let f = std::fs::File::open(path).map_err(|e| SigFileError(format!("{}: {e}", path.display())))?;
    verify_reader(&path.display().to_string(), &mut std::io::BufReader::with_capacity(1 << 20, f), verifier)
}

/// Verifies every record of the JSON-lines input `r` (named `name` in errors) with `verifier`.
/// Lines are read with their length checked while reading ([`MAX_SIG_LINE_BYTES`]) and verified a
/// chunk at a time (at least the verifier's preferred batch, at most about 64 MiB of lines held):
/// each chunk is parsed on all cores, then verified in one call.
///
/// # Errors
/// `NAME: line N: ...` (N 1-based) for a line that cannot be read, is longer than
/// [`MAX_SIG_LINE_BYTES`], is not UTF-8, or is not a signature record.
pub fn verify_reader(
    name: &str,
    r: &mut dyn BufRead,
    verifier: &dyn SigVerifier,
) -> Result<VerifySigsReport, SigFileError> {
    let t0 = Instant::now();
    let chunk_lines = verifier.preferred_batch().clamp(1, 1 << 20);
    let (mut text, mut ends, mut line) = (Vec::new(), Vec::new(), Vec::new());
    let (mut total, mut invalid_indexes) = (0usize, Vec::new());
    loop {
        let at = total + ends.len() + 1;
        let eof = match read_line_bounded(r, &mut line, MAX_SIG_LINE_BYTES) {
            Ok(Some(_)) => {
                text.extend_from_slice(&line);
                ends.push(text.len());
                false
            }
            Ok(None) => true,
            Err(LineError::TooLong { limit }) => {
                return Err(SigFileError(format!(
                    "{name}: line {at}: longer than {limit} bytes, the limit of a signature record; \
                     refused after reading {} bytes of it",
                    limit + 1
                )))
            }
            Err(LineError::Io(e)) => return Err(SigFileError(format!("{name}: line {at}: {e}"))),
        };
        if ends.len() >= chunk_lines || text.len() >= CHUNK_BYTES || (eof && !ends.is_empty()) {
            verify_chunk(&text, &ends, total, verifier, &mut invalid_indexes)
                .map_err(|(i, why)| SigFileError(format!("{name}: line {}: {why}", i + 1)))?;
            total += ends.len();
            text.clear();
            ends.clear();
        }
        if eof {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    Ok(VerifySigsReport {
        total,
        valid: total - invalid_indexes.len(),
        invalid: invalid_indexes.len(),
        invalid_indexes,
        signatures_per_second: total as f64 / secs,
        seconds: secs,
        backend: verifier.describe(),
        threads: rayon::current_num_threads(),
        rules: "ZIP-215 (canonical S, non-canonical point encodings accepted, cofactored equation)",
    })
}

/// Parses the lines of one chunk on all cores (line `i` is `text[ends[i - 1]..ends[i]]`, the first
/// at index `first`), verifies them in one call, and appends the invalid indexes in order; or the
/// first malformed line (index, reason).
fn verify_chunk(
    text: &[u8],
    ends: &[usize],
    first: usize,
    verifier: &dyn SigVerifier,
    invalid: &mut Vec<usize>,
) -> Result<(), (usize, String)> {
    let lines: Vec<&[u8]> =
        ends.iter().scan(0, |start, &end| Some(&text[std::mem::replace(start, end)..end])).collect();
    let parsed = lines
        .par_iter()
        .enumerate()
        .map(|(i, l)| {
            let l = std::str::from_utf8(l).map_err(|_| (first + i, "not UTF-8".to_string()))?;
            parse_line(l.trim_end_matches('\r')).map_err(|e| (first + i, e))
        })
        .collect::<Result<Vec<Parsed>, _>>()?;
    let refs: Vec<SigRef> =
        parsed.iter().map(|p| SigRef { pubkey: &p.pubkey, signature: &p.signature, message: &p.message }).collect();
    invalid.extend(verifier.invalid(&refs).into_iter().map(|i| first + i));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// `n` records signed by one key; those in `bad` have a flipped bit in S.
    fn records(n: usize, bad: &[usize]) -> String {
        let key = ed25519_zebra::SigningKey::from([7u8; 32]);
        let pk: [u8; 32] = ed25519_zebra::VerificationKeyBytes::from(&key).into();
        (0..n)
            .map(|i| {
                let msg = vec![i as u8; i % 5];
                let mut sig = key.sign(&msg).to_bytes();
                if bad.contains(&i) {
                    sig[40] ^= 1;
                }
                format!(
                    "{{\"pubkey\":\"{}\",\"signature\":\"{}\",\"message\":\"{}\"}}\n",
                    hex::encode(pk),
                    hex::encode(sig),
                    hex::encode(msg)
                )
            })
            .collect()
    }

    /// Verdicts keep their file-wide line indexes across chunks (batch 1: a chunk is
    /// the verifier's preferred batch, 4 x threads lines, so 50 lines are many chunks).
    #[test]
    fn indexes_are_file_wide_across_chunks() {
        let bad = [0, 3, 17, 48, 49];
        let text = records(50, &bad);
        for batch in [1, 2, 7, 512] {
            let rep = verify_reader("t.jsonl", &mut text.as_bytes(), &super::super::CpuSigVerifier { batch }).unwrap();
            assert_eq!((rep.total, rep.invalid), (50, bad.len()), "batch {batch}");
            assert_eq!(rep.invalid_indexes, bad, "batch {batch}");
        }
        // A malformed line far into the file is named by its 1-based number.
        let text = format!("{}not json\n{}", records(30, &[]), records(2, &[]));
        let e = verify_reader("t.jsonl", &mut text.as_bytes(), &super::super::CpuSigVerifier { batch: 1 }).unwrap_err();
        assert!(e.0.starts_with("t.jsonl: line 31: not a signature record"), "{}", e.0);
        let e = verify_reader("t.jsonl", &mut &b"\xff\n"[..], &super::super::CpuSigVerifier { batch: 1 }).unwrap_err();
        assert_eq!(e.0, "t.jsonl: line 1: not UTF-8");
    }

    /// Issue 12, fault 9: a record line is refused once it passes the limit, after reading the
    /// limit plus one byte of it (an endless line here; the file used to be read whole first).
    #[test]
    fn an_endless_line_is_refused_at_the_limit() {
        let endless = std::io::Cursor::new(records(1, &[]).into_bytes()).chain(std::io::repeat(b'{').take(1 << 40));
        let mut r = BufReader::new(endless);
        let e = verify_reader("big.jsonl", &mut r, &super::super::CpuSigVerifier { batch: 512 }).unwrap_err();
        assert_eq!(
            e.0,
            "big.jsonl: line 2: longer than 1048576 bytes, the limit of a signature record; refused after reading \
             1048577 bytes of it"
        );
        // A line of exactly the limit is read (and then judged as a record).
        let line = format!("{}\n", " ".repeat(MAX_SIG_LINE_BYTES));
        let e = verify_reader("edge.jsonl", &mut line.as_bytes(), &super::super::CpuSigVerifier { batch: 512 })
            .unwrap_err();
        assert!(e.0.starts_with("edge.jsonl: line 1: not a signature record"), "{}", e.0);
    }
}
