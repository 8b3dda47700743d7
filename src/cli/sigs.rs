//! `powkit verify-sigs`: bulk Ed25519 verification (ZIP-215) of a JSON-lines file.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::sigs;
pub use crate::sigs::file::{verify_file, SigBackend, VerifySigsReport};

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

/// Runs the verification ([`crate::sigs::file::verify_file`]).
pub fn run(a: &VerifySigsArgs) -> Result<VerifySigsReport, CliError> {
    verify_file(&a.file, a.batch, a.backend).map_err(|e| CliError::usage(e.0))
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
