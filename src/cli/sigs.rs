//! `powkit verify-sigs`: bulk Ed25519 verification (ZIP-215) of a JSON-lines file.

use std::path::PathBuf;

use clap::Args;

use super::engine::EngineArgs;
use super::CliError;
use crate::sigs;
pub use crate::sigs::file::{verify_file, VerifySigsReport};

/// Flags of `powkit verify-sigs`.
#[derive(Args, Debug, Clone)]
#[command(mut_arg("backend", |a| a.help(
    "Where to verify: cpu (threads, ed25519-zebra batches), gpu (the WGSL verifier), all (both, split by \
     measured speed), auto (all with a hardware GPU, else the CPU; a software adapter only with \
     --gpu-allow-software)"
)))]
pub struct VerifySigsArgs {
    /// JSON lines: `{"pubkey": hex, "signature": hex, "message": hex}` per line.
    pub file: PathBuf,
    /// `--backend` and `--adapter`.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// With --backend auto, use a software GPU adapter (lavapipe) too, though it shares the CPU.
    #[arg(long)]
    pub gpu_allow_software: bool,
    /// Signatures per CPU batch (a failed batch is bisected to name the bad signatures).
    #[arg(long, default_value_t = sigs::BATCH)]
    pub batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Opens the verifier the flags ask for and runs the verification
/// ([`crate::sigs::file::verify_file`]); notes on the backend's choice go to stderr.
pub fn run(a: &VerifySigsArgs) -> Result<VerifySigsReport, CliError> {
    let mut notes = Vec::new();
    let verifier = crate::backend::open_sig_verifier(
        a.engine.backend,
        a.engine.adapter,
        a.gpu_allow_software,
        a.batch,
        &mut notes,
    )?;
    for n in notes {
        eprintln!("note: {n}");
    }
    verify_file(&a.file, &*verifier).map_err(|e| CliError::usage(e.0))
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
        println!("{:.0} signatures/s in {:.3} s on {}", r.signatures_per_second, r.seconds, r.backend);
    }
    Ok(if r.invalid > 0 { 1 } else { 0 })
}
