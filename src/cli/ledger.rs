//! `powkit key new` and `powkit tx transfer`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use crate::consensus::Network;
use crate::ledger::keys;
use crate::ledger::tx::{LedgerTx, Transfer};
use crate::ledger::AccountKey;

/// Key commands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a new Ed25519 key file (readable by its owner only) and print its public key.
    New {
        /// The key file to create (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Print JSON: {"public_key", "file"}.
        #[arg(long)]
        json: bool,
    },
}

/// Transaction commands.
#[derive(Subcommand, Debug)]
pub enum TxCommand {
    /// Sign a transfer and print its hex encoding.
    Transfer(TransferArgs),
}

/// Flags of `powkit tx transfer`.
#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The payer's key file.
    #[arg(long)]
    pub key: PathBuf,
    /// The payee's public key (64 hex digits).
    #[arg(long)]
    pub to: String,
    /// Amount in base units.
    #[arg(long)]
    pub amount: u64,
    /// Fee in base units.
    #[arg(long)]
    pub fee: u64,
    /// The payer's account nonce.
    #[arg(long)]
    pub nonce: u64,
    /// The chain whose id is signed in: powkit, powkit-regtest, or a chain spec file.
    #[arg(long, default_value = "powkit")]
    pub chain: Network,
    /// Print JSON: {"hex", "txid", "from"}.
    #[arg(long)]
    pub json: bool,
}

/// `powkit key ...`.
pub fn key_main(c: &KeyCommand) -> Result<i32, CliError> {
    match c {
        KeyCommand::New { out, json } => {
            let k = keys::create(out).map_err(CliError::usage)?;
            let pk = keys::public(&k).to_string();
            if *json {
                println!("{}", serde_json::json!({ "public_key": pk, "file": out.display().to_string() }));
            } else {
                println!("{pk}");
            }
            Ok(0)
        }
    }
}

/// `powkit tx ...`.
pub fn tx_main(c: &TxCommand) -> Result<i32, CliError> {
    match c {
        TxCommand::Transfer(a) => {
            let chain = a.chain.ledger().ok_or_else(|| {
                CliError::usage(format!("--chain {}: transfers exist on powkit and powkit-regtest", a.chain))
            })?;
            let key = keys::load(&a.key).map_err(CliError::usage)?;
            let to = keys::parse_public(&a.to).map_err(|e| CliError::usage(format!("--to: {e}")))?;
            let t = Transfer {
                chain_id: chain.params().chain_id,
                from: AccountKey::ZERO,
                to,
                amount: a.amount,
                fee: a.fee,
                nonce: a.nonce,
                signature: [0; 64],
            }
            .sign(&key);
            let tx = LedgerTx::Transfer(t);
            let hex_tx = hex::encode(tx.to_bytes());
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({ "hex": hex_tx, "txid": tx.txid().to_string(), "from": t.from.to_string() })
                );
            } else {
                println!("{hex_tx}");
            }
            Ok(0)
        }
    }
}
