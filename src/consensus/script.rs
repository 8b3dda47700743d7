//! The script stage: every input's script run by Bitcoin Core's own interpreter
//! (libbitcoinconsensus of Core 26, through the `bitcoinconsensus` crate). powkit never interprets
//! a script itself: independent reimplementations of Bitcoin's script rules have split from the
//! network before.
//!
//! [`block_script_flags`] gives a block's flags exactly as Bitcoin Core 31's `GetBlockScriptFlags`
//! (src/validation.cpp); [`TxScriptCheck`] holds one transaction ready for checking its inputs, one
//! call per input, from any thread (it is `Send + Sync`), as Core's `CScriptCheck` does on its
//! script-check queue.
//!
//! libbitcoinconsensus reports only whether a script passed, not Core's `ScriptError`: a failure is
//! reported as [`ScriptFailureKind::Evaluation`] with Core's reject-reason prefix
//! `block-script-verify-flag-failed` (see `rules::tx::TxRuleError::reason`).

use std::fmt;

use crate::consensus::params::BitcoinParams;
use crate::consensus::rules::tx::TxRuleError;
use crate::primitives::{BlockHash, Encodable, Transaction, TxOut, Txid};

/// `SCRIPT_VERIFY_NONE`.
pub const SCRIPT_VERIFY_NONE: u32 = bitcoinconsensus::VERIFY_NONE;
/// `SCRIPT_VERIFY_P2SH` (BIP16), bit 0.
pub const SCRIPT_VERIFY_P2SH: u32 = bitcoinconsensus::VERIFY_P2SH;
/// `SCRIPT_VERIFY_DERSIG` (BIP66), bit 2.
pub const SCRIPT_VERIFY_DERSIG: u32 = bitcoinconsensus::VERIFY_DERSIG;
/// `SCRIPT_VERIFY_NULLDUMMY` (BIP147), bit 4.
pub const SCRIPT_VERIFY_NULLDUMMY: u32 = bitcoinconsensus::VERIFY_NULLDUMMY;
/// `SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY` (BIP65), bit 9.
pub const SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY: u32 = bitcoinconsensus::VERIFY_CHECKLOCKTIMEVERIFY;
/// `SCRIPT_VERIFY_CHECKSEQUENCEVERIFY` (BIP112), bit 10.
pub const SCRIPT_VERIFY_CHECKSEQUENCEVERIFY: u32 = bitcoinconsensus::VERIFY_CHECKSEQUENCEVERIFY;
/// `SCRIPT_VERIFY_WITNESS` (BIP141/143), bit 11.
pub const SCRIPT_VERIFY_WITNESS: u32 = bitcoinconsensus::VERIFY_WITNESS;
/// `SCRIPT_VERIFY_TAPROOT` (BIP341/342), bit 17.
pub const SCRIPT_VERIFY_TAPROOT: u32 = bitcoinconsensus::VERIFY_TAPROOT;
/// Every flag the libbitcoinconsensus interface accepts (`bitcoinconsensus_SCRIPT_FLAGS_VERIFY_ALL`):
/// the consensus flags. Policy flags (STRICTENC, LOW_S, MINIMALDATA, CLEANSTACK, DISCOURAGE_*, ...)
/// are not part of it.
pub const SCRIPT_VERIFY_ALL_CONSENSUS: u32 = SCRIPT_VERIFY_P2SH
    | SCRIPT_VERIFY_DERSIG
    | SCRIPT_VERIFY_NULLDUMMY
    | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY
    | SCRIPT_VERIFY_CHECKSEQUENCEVERIFY
    | SCRIPT_VERIFY_WITNESS
    | SCRIPT_VERIFY_TAPROOT;

/// The script flags of the block at `height` with hash `hash`, as Bitcoin Core 31's
/// `GetBlockScriptFlags` (src/validation.cpp): P2SH, WITNESS and TAPROOT always, except for the
/// blocks in `params.script_flag_exceptions` (kernel/chainparams.cpp: mainnet's BIP16 exception gets
/// no flags, its taproot exception P2SH and WITNESS only); DERSIG from `bip66_height`,
/// CHECKLOCKTIMEVERIFY from `bip65_height`, CHECKSEQUENCEVERIFY from `csv_height`, NULLDUMMY from
/// `segwit_height` (`DeploymentActiveAt`: the block's own height).
pub fn block_script_flags(params: &BitcoinParams, height: u32, hash: &BlockHash) -> u32 {
    let mut flags = SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS | SCRIPT_VERIFY_TAPROOT;
    if let Some((_, taproot_only)) = params.script_flag_exceptions.iter().find(|(h, _)| h == hash) {
        flags = if *taproot_only { SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS } else { SCRIPT_VERIFY_NONE };
    }
    if height >= params.bip66_height {
        flags |= SCRIPT_VERIFY_DERSIG;
    }
    if height >= params.bip65_height {
        flags |= SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY;
    }
    if height >= params.csv_height {
        flags |= SCRIPT_VERIFY_CHECKSEQUENCEVERIFY;
    }
    if height >= params.segwit_height {
        flags |= SCRIPT_VERIFY_NULLDUMMY;
    }
    flags
}

/// Why an input's script check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptFailureKind {
    /// The interpreter ran and the script failed (Core's `block-script-verify-flag-failed (...)`;
    /// libbitcoinconsensus does not say which `ScriptError`).
    Evaluation,
    /// libbitcoinconsensus refused the call (a bad transaction encoding, index, flags or spent
    /// outputs): the libconsensus error, in its words.
    Interface(&'static str),
}

/// A failed input: which one and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptFailure {
    /// The input's index.
    pub input: usize,
    /// What failed.
    pub kind: ScriptFailureKind,
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ScriptFailureKind::Evaluation => {
                write!(f, "input {}: script evaluation failed (Bitcoin Core's interpreter returned false)", self.input)
            }
            ScriptFailureKind::Interface(why) => {
                write!(f, "input {}: libbitcoinconsensus refused the check: {why}", self.input)
            }
        }
    }
}

impl std::error::Error for ScriptFailure {}

/// A [`TxScriptCheck`] that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptSetupError {
    /// Not one spent output per input.
    #[error("script check: {spent} spent outputs for a transaction with {inputs} inputs (one per input needed)")]
    SpentCount {
        /// Spent outputs given.
        spent: usize,
        /// Inputs of the transaction.
        inputs: usize,
    },
    /// Flags outside the consensus set, or a combination Core's interpreter asserts against.
    #[error("script check: flags 0x{flags:x} are not valid for Bitcoin Core's interpreter ({why})")]
    Flags {
        /// The flags.
        flags: u32,
        /// Which part is wrong.
        why: &'static str,
    },
}

/// Checks `flags` before they reach C++: libbitcoinconsensus refuses flags outside
/// [`SCRIPT_VERIFY_ALL_CONSENSUS`] with an error, but Core's `VerifyScript` *asserts* (aborting the
/// process) when WITNESS is set without P2SH (src/script/interpreter.cpp), so that combination is
/// refused here.
pub fn check_flags(flags: u32) -> Result<(), ScriptSetupError> {
    if flags & !SCRIPT_VERIFY_ALL_CONSENSUS != 0 {
        return Err(ScriptSetupError::Flags { flags, why: "only the consensus flags are supported" });
    }
    if flags & SCRIPT_VERIFY_WITNESS != 0 && flags & SCRIPT_VERIFY_P2SH == 0 {
        return Err(ScriptSetupError::Flags { flags, why: "WITNESS requires P2SH" });
    }
    Ok(())
}

/// One transaction ready for checking its inputs' scripts, each input independently (so from many
/// threads at once: the type is `Send + Sync` and [`verify_input`](Self::verify_input) takes
/// `&self`). Holds the transaction's serialization with witness data, the outputs its inputs
/// spend (in input order: Core always supplies them, and taproot's signature hash needs them
/// all) and the block's flags ([`block_script_flags`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxScriptCheck {
    tx_bytes: Vec<u8>,
    spent: Vec<TxOut>,
    flags: u32,
}

impl TxScriptCheck {
    /// Prepares `tx` (serialized once, with its witness) for checking against `spent`, the outputs
    /// its inputs spend in input order, under `flags`.
    ///
    /// # Errors
    /// Not one spent output per input; flags outside the consensus set or WITNESS without P2SH.
    pub fn new(tx: &Transaction, spent: Vec<TxOut>, flags: u32) -> Result<TxScriptCheck, ScriptSetupError> {
        if spent.len() != tx.inputs.len() {
            return Err(ScriptSetupError::SpentCount { spent: spent.len(), inputs: tx.inputs.len() });
        }
        let mut tx_bytes = Vec::with_capacity(tx.total_size());
        tx.consensus_encode(&mut tx_bytes);
        Self::from_bytes(tx_bytes, spent, flags)
    }

    /// As [`new`](Self::new) from a transaction already serialized (with its witness, as Bitcoin
    /// Core serializes it). The input count is checked by libbitcoinconsensus when an input is
    /// verified (`ERR_SPENT_OUTPUTS_MISMATCH`), as it decodes the bytes then.
    ///
    /// # Errors
    /// Flags outside the consensus set or WITNESS without P2SH.
    pub fn from_bytes(tx_bytes: Vec<u8>, spent: Vec<TxOut>, flags: u32) -> Result<TxScriptCheck, ScriptSetupError> {
        check_flags(flags)?;
        Ok(TxScriptCheck { tx_bytes, spent, flags })
    }

    /// Number of spent outputs (the transaction's inputs).
    pub fn inputs(&self) -> usize {
        self.spent.len()
    }

    /// The flags the inputs are checked under.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Runs Bitcoin Core's interpreter on input `index`: its scriptSig and witness against the
    /// output it spends, with the amount and all spent outputs (`VerifyScript` with a
    /// `TransactionSignatureChecker`, as `CScriptCheck` does).
    ///
    /// # Errors
    /// [`ScriptFailureKind::Evaluation`] when the script fails; [`ScriptFailureKind::Interface`]
    /// when libbitcoinconsensus cannot run it (index out of range, bytes that do not decode as one
    /// transaction, spent outputs not matching the inputs).
    pub fn verify_input(&self, index: usize) -> Result<(), ScriptFailure> {
        let fail = |kind| ScriptFailure { input: index, kind };
        let Some(out) = self.spent.get(index) else {
            return Err(fail(ScriptFailureKind::Interface("input index out of range")));
        };
        // The FFI array borrows `self.spent`'s scripts; it lives only for this call, so the
        // raw pointers in `Utxo` never outlive what they point to, and `TxScriptCheck` itself
        // holds no pointer (it is `Send + Sync` without any `unsafe impl`).
        let utxos: Vec<bitcoinconsensus::Utxo> = self
            .spent
            .iter()
            .map(|o| bitcoinconsensus::Utxo {
                script_pubkey: o.script_pubkey.as_ptr(),
                script_pubkey_len: o.script_pubkey.len() as _,
                value: o.value,
            })
            .collect();
        bitcoinconsensus::verify_with_flags(
            &out.script_pubkey,
            out.value as u64,
            &self.tx_bytes,
            Some(&utxos),
            index,
            self.flags,
        )
        .map_err(|e| fail(failure_kind(e)))
    }

    /// Checks every input in order; the first failure.
    pub fn verify_all(&self) -> Result<(), ScriptFailure> {
        (0..self.spent.len()).try_for_each(|i| self.verify_input(i))
    }
}

/// Every input's script passes Bitcoin Core's interpreter (Core's `CheckInputScripts`,
/// src/validation.cpp, run serially; the engine runs [`TxScriptCheck::verify_input`] per input on
/// its pool for speed and wraps a failure the same way). The first failing input, as a
/// [`TxRuleError::Script`] for transaction `txid` (reason `block-script-verify-flag-failed`).
pub fn input_scripts_are_valid(txid: Txid, check: &TxScriptCheck) -> Result<(), TxRuleError> {
    check.verify_all().map_err(|failure| TxRuleError::Script { txid, failure })
}

/// libbitcoinconsensus's error code as a failure kind (its `ERR_OK`, named `ERR_SCRIPT` by the
/// crate, means the call was valid and the script failed).
fn failure_kind(e: bitcoinconsensus::Error) -> ScriptFailureKind {
    use bitcoinconsensus::Error as E;
    match e {
        E::ERR_SCRIPT => ScriptFailureKind::Evaluation,
        E::ERR_TX_INDEX => ScriptFailureKind::Interface("input index out of range"),
        E::ERR_TX_SIZE_MISMATCH => ScriptFailureKind::Interface("transaction bytes longer than one transaction"),
        E::ERR_TX_DESERIALIZE => ScriptFailureKind::Interface("transaction bytes do not decode"),
        E::ERR_AMOUNT_REQUIRED => ScriptFailureKind::Interface("amount required with WITNESS"),
        E::ERR_INVALID_FLAGS => ScriptFailureKind::Interface("invalid flags"),
        E::ERR_SPENT_OUTPUTS_REQUIRED => ScriptFailureKind::Interface("spent outputs required with TAPROOT"),
        E::ERR_SPENT_OUTPUTS_MISMATCH => ScriptFailureKind::Interface("not one spent output per input"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::params::BitcoinNetwork;
    use crate::primitives::deserialize;

    // Real mainnet transactions with the outputs they spend (the `bitcoinconsensus` crate's own
    // test vectors): a P2PKH spend, a P2SH-P2WPKH spend of 1,900,000 sat, a P2WSH 2-of-3 multisig
    // spend of 18,393,430 sat.
    const P2PKH_SPK: &str = "76a9144bfbaf6afb76cc5771bc6404810d1cc041a6933988ac";
    const P2PKH_TX: &str = "02000000013f7cebd65c27431a90bba7f796914fe8cc2ddfc3f2cbd6f7e5f2fc854534da95000000006b483045022100de1ac3bcdfb0332207c4a91f3832bd2c2915840165f876ab47c5f8996b971c3602201c6c053d750fadde599e6f5c4e1963df0f01fc0d97815e8157e3d59fe09ca30d012103699b464d1d8bc9e47d4fb1cdaa89a1c5783d68363c4dbc4b524ed3d857148617feffffff02836d3c01000000001976a914fc25d6d5c94003bf5b0c7b640a248e2c637fcfb088ac7ada8202000000001976a914fbed3d9b11183209a57999d54d59f67c019e756c88ac6acb0700";
    const P2SH_P2WPKH_SPK: &str = "a91434c06f8c87e355e123bdc6dda4ffabc64b6989ef87";
    const P2SH_P2WPKH_TX: &str = "01000000000101d9fd94d0ff0026d307c994d0003180a5f248146efb6371d040c5973f5f66d9df0400000017160014b31b31a6cb654cfab3c50567bcf124f48a0beaecffffffff012cbd1c000000000017a914233b74bf0823fa58bbbd26dfc3bb4ae715547167870247304402206f60569cac136c114a58aedd80f6fa1c51b49093e7af883e605c212bdafcd8d202200e91a55f408a021ad2631bc29a67bd6915b2d7e9ef0265627eabd7f7234455f6012103e7e802f50344303c76d12c089c8724c1b230e3b745693bbe16aad536293d15e300000000";
    const P2WSH_SPK: &str = "0020701a8d401c84fb13e6baf169d59684e17abd9fa216c8cc5b9fc63d622ff8c58d";
    const P2WSH_TX: &str = "010000000001011f97548fbbe7a0db7588a66e18d803d0089315aa7d4cc28360b6ec50ef36718a0100000000ffffffff02df1776000000000017a9146c002a686959067f4866b8fb493ad7970290ab728757d29f0000000000220020701a8d401c84fb13e6baf169d59684e17abd9fa216c8cc5b9fc63d622ff8c58d04004730440220565d170eed95ff95027a69b313758450ba84a01224e1f7f130dda46e94d13f8602207bdd20e307f062594022f12ed5017bbf4a055a06aea91c10110a0e3bb23117fc014730440220647d2dc5b15f60bc37dc42618a370b2a1490293f9e5c8464f53ec4fe1dfe067302203598773895b4b16d37485cbe21b337f4e4b650739880098c592553add7dd4355016952210375e00eb72e29da82b89367947f29ef34afb75e8654f6ea368e0acdfd92976b7c2103a1b26313f430c4b15bb1fdce663207659d8cac749a0e53d70eff01874496feff2103c96d495bfdd5ba4145e3e046fee45e84a8a48ad05bd8dbb395c011a32cf9f88053ae00000000";

    const BLOCK: u32 = SCRIPT_VERIFY_ALL_CONSENSUS;

    fn check(tx_hex: &str, spk: &str, value: i64, flags: u32) -> TxScriptCheck {
        let tx: Transaction = deserialize(&hex::decode(tx_hex).unwrap()).unwrap();
        let spent = vec![TxOut { value, script_pubkey: hex::decode(spk).unwrap() }];
        TxScriptCheck::new(&tx, spent, flags).unwrap()
    }

    #[test]
    fn real_spends_pass_and_altered_ones_fail() {
        check(P2PKH_TX, P2PKH_SPK, 0, BLOCK).verify_input(0).unwrap();
        check(P2SH_P2WPKH_TX, P2SH_P2WPKH_SPK, 1_900_000, BLOCK).verify_input(0).unwrap();
        check(P2WSH_TX, P2WSH_SPK, 18_393_430, BLOCK).verify_all().unwrap();
        // Another spent script, or another amount under a segwit signature: the script fails.
        let bad_spk = P2PKH_SPK.replace("88ac", "88ff");
        let e = check(P2PKH_TX, &bad_spk, 0, BLOCK).verify_input(0).unwrap_err();
        assert_eq!(e, ScriptFailure { input: 0, kind: ScriptFailureKind::Evaluation });
        assert!(e.to_string().starts_with("input 0: script evaluation failed"), "{e}");
        let c = check(P2SH_P2WPKH_TX, P2SH_P2WPKH_SPK, 900_000, BLOCK);
        let e = c.verify_input(0).unwrap_err();
        assert_eq!(e.kind, ScriptFailureKind::Evaluation);
        let e = input_scripts_are_valid(Txid([3; 32]), &c).unwrap_err();
        assert_eq!(e.reason(), "block-script-verify-flag-failed");
        assert_eq!(e.rule(), "input_scripts_are_valid");
        assert!(e.to_string().starts_with("block-script-verify-flag-failed: transaction 0303"), "{e}");
        assert!(e.to_string().contains("input 0: script evaluation failed"), "{e}");
        // Without WITNESS the P2SH-P2WPKH redeem script is just "push 20 bytes": it passes, as it
        // did before segwit (and the witness is then unexpected only under WITNESS).
        check(P2SH_P2WPKH_TX, P2SH_P2WPKH_SPK, 900_000, SCRIPT_VERIFY_P2SH).verify_input(0).unwrap();
    }

    #[test]
    fn bad_calls_are_errors_not_aborts() {
        let c = check(P2PKH_TX, P2PKH_SPK, 0, BLOCK);
        let e = c.verify_input(1).unwrap_err();
        assert!(matches!(e.kind, ScriptFailureKind::Interface(_)), "{e}");
        // WITNESS without P2SH would trip an assert in Core's interpreter (abort): refused here.
        let tx: Transaction = deserialize(&hex::decode(P2PKH_TX).unwrap()).unwrap();
        let spent = vec![TxOut { value: 0, script_pubkey: hex::decode(P2PKH_SPK).unwrap() }];
        let e = TxScriptCheck::new(&tx, spent.clone(), SCRIPT_VERIFY_WITNESS).unwrap_err();
        assert!(matches!(e, ScriptSetupError::Flags { why: "WITNESS requires P2SH", .. }), "{e}");
        // A policy flag (STRICTENC, bit 1) is not part of the consensus interface.
        assert!(TxScriptCheck::new(&tx, spent.clone(), 1 << 1).is_err());
        assert!(matches!(
            TxScriptCheck::new(&tx, Vec::new(), BLOCK).unwrap_err(),
            ScriptSetupError::SpentCount { spent: 0, inputs: 1 }
        ));
        // Bytes that are not one transaction.
        let mut bytes = hex::decode(P2PKH_TX).unwrap();
        bytes.push(0);
        let e = TxScriptCheck::from_bytes(bytes, spent.clone(), BLOCK).unwrap().verify_input(0).unwrap_err();
        assert!(matches!(e.kind, ScriptFailureKind::Interface(_)), "{e}");
        let e = TxScriptCheck::from_bytes(vec![1, 2, 3], spent, BLOCK).unwrap().verify_input(0).unwrap_err();
        assert!(matches!(e.kind, ScriptFailureKind::Interface(_)), "{e}");
    }

    #[test]
    fn a_check_is_send_and_sync_and_runs_on_many_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<TxScriptCheck>();
        let c = check(P2WSH_TX, P2WSH_SPK, 18_393_430, BLOCK);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| c.verify_input(0).unwrap());
            }
        });
    }

    fn hash(hex: &str) -> BlockHash {
        BlockHash::from_display_hex(hex).unwrap()
    }

    #[test]
    fn block_script_flags_as_core_31() {
        let m = BitcoinNetwork::Bitcoin.params();
        let any = hash("00000000000000000000000000000000000000000000000000000000000000aa");
        let base = SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS | SCRIPT_VERIFY_TAPROOT;
        assert_eq!(block_script_flags(&m, 0, &any), base);
        assert_eq!(block_script_flags(&m, 363_724, &any), base);
        assert_eq!(block_script_flags(&m, 363_725, &any), base | SCRIPT_VERIFY_DERSIG);
        assert_eq!(
            block_script_flags(&m, 388_381, &any),
            base | SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY
        );
        assert_eq!(
            block_script_flags(&m, 419_328, &any),
            base | SCRIPT_VERIFY_DERSIG | SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY | SCRIPT_VERIFY_CHECKSEQUENCEVERIFY
        );
        assert_eq!(block_script_flags(&m, 481_824, &any), SCRIPT_VERIFY_ALL_CONSENSUS);
        // Core's exceptions: BIP16's block (height 170,060) gets no flags; taproot's (692,261)
        // P2SH and WITNESS with the deployments of its height.
        let bip16 = hash("00000000000002dc756eebf4f49723ed8d30cc28a5f108eb94b1ba88ac4f9c22");
        assert_eq!(block_script_flags(&m, 170_060, &bip16), SCRIPT_VERIFY_NONE);
        let taproot = hash("0000000000000000000f14c35b2d841e986ab5441de8c585d5ffe55ea1e395ad");
        assert_eq!(block_script_flags(&m, 692_261, &taproot), SCRIPT_VERIFY_ALL_CONSENSUS & !SCRIPT_VERIFY_TAPROOT);
        // Regtest: everything from height 1 (segwit from 0).
        let r = BitcoinNetwork::BitcoinRegtest.params();
        assert_eq!(block_script_flags(&r, 1, &any), SCRIPT_VERIFY_ALL_CONSENSUS);
        assert_eq!(block_script_flags(&r, 0, &any), base | SCRIPT_VERIFY_NULLDUMMY);
        // The bit values are Core's SCRIPT_VERIFY_* positions.
        assert_eq!(
            [SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_DERSIG, SCRIPT_VERIFY_NULLDUMMY, SCRIPT_VERIFY_CHECKLOCKTIMEVERIFY],
            [1 << 0, 1 << 2, 1 << 4, 1 << 9]
        );
        assert_eq!(
            [SCRIPT_VERIFY_CHECKSEQUENCEVERIFY, SCRIPT_VERIFY_WITNESS, SCRIPT_VERIFY_TAPROOT],
            [1 << 10, 1 << 11, 1 << 17]
        );
    }

    /// The shared mainnet blocks 0..=255 as framed records (magic, length, block), or `None` (with a
    /// printed reason) where the shared data is absent.
    fn mainnet_blocks() -> Option<Vec<crate::primitives::Block>> {
        let p = format!("{}/../shared/data/bitcoin/mainnet-000000-000255.blk", env!("CARGO_MANIFEST_DIR"));
        let Ok(bytes) = std::fs::read(&p) else {
            eprintln!("skipping: {p} not present");
            return None;
        };
        let mut blocks = Vec::new();
        let mut at = 0;
        while at + 8 <= bytes.len() {
            assert_eq!(bytes[at..at + 4], [0xf9, 0xbe, 0xb4, 0xd9], "magic at {at}");
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            blocks.push(crate::primitives::Block::from_bytes(&bytes[at + 8..at + 8 + len]).unwrap());
            at += 8 + len;
        }
        Some(blocks)
    }

    /// A minimal connection loop over the rules of `rules::tx`, `rules::sigops` and this module,
    /// with an in-memory UTXO map: the first error, or the number of script-checked inputs.
    fn connect_all(blocks: &[crate::primitives::Block]) -> Result<usize, (u32, TxRuleError)> {
        use crate::consensus::rules::{sigops, tx as rules};
        use crate::primitives::{Coin, OutPoint};
        use std::collections::HashMap;
        let p = BitcoinNetwork::Bitcoin.params();
        let mut utxo: HashMap<OutPoint, Coin> = HashMap::new();
        let mut times: Vec<i64> = Vec::new();
        let mtp = |times: &[i64], h: u32| {
            let mut t: Vec<i64> = times[..=h as usize].iter().rev().take(11).copied().collect();
            t.sort_unstable();
            t[t.len() / 2]
        };
        let mut checked = 0;
        for (h, block) in blocks.iter().enumerate() {
            let h = h as u32;
            let hash = block.header.block_hash();
            let prev_mtp = if h == 0 { 0 } else { mtp(&times, h - 1) };
            times.push(block.header.time as i64);
            let flags = block_script_flags(&p, h, &hash);
            let err = |e| (h, e);
            sigops::block_legacy_sigops_are_within_limit(block).map_err(err)?;
            let txids: Vec<[u8; 32]> = block.txdata.iter().map(|t| t.txid().0).collect();
            assert!(rules::bip30_applies(h, &hash, None, &p));
            rules::outputs_do_not_overwrite_unspent(block, &txids, |op| utxo.contains_key(op)).map_err(err)?;
            let cutoff = rules::lock_time_cutoff(h, block.header.time, prev_mtp, &p);
            let (mut fees, mut cost) = (0i64, 0i64);
            for (i, t) in block.txdata.iter().enumerate() {
                rules::transaction_is_final(t, h, cutoff).map_err(err)?;
                let coins: Vec<Coin> = if t.is_coinbase() {
                    Vec::new()
                } else {
                    let found: Vec<Option<&Coin>> = t.inputs.iter().map(|i| utxo.get(&i.prevout)).collect();
                    rules::inputs_are_available(t, &found).map_err(err)?;
                    found.into_iter().map(|c| c.unwrap().clone()).collect()
                };
                if !t.is_coinbase() {
                    fees += rules::check_tx_inputs(t, &coins, h).map_err(err)?;
                    rules::accumulated_fees_are_in_range(fees).map_err(err)?;
                    rules::sequence_locks_are_satisfied(t, &coins, h, prev_mtp, &p, |x| mtp(&times, x)).map_err(err)?;
                }
                cost += sigops::transaction_sigop_cost(t, &coins, flags);
                sigops::block_sigop_cost_is_within_limit(cost).map_err(err)?;
                if !t.is_coinbase() {
                    let check = TxScriptCheck::new(t, coins.iter().map(|c| c.out.clone()).collect(), flags).unwrap();
                    input_scripts_are_valid(t.txid(), &check).map_err(err)?;
                    checked += check.inputs();
                    for i in &t.inputs {
                        utxo.remove(&i.prevout);
                    }
                }
                for (vout, out) in t.outputs.iter().enumerate() {
                    let op = OutPoint { txid: Txid(txids[i]), vout: vout as u32 };
                    utxo.insert(op, Coin { out: out.clone(), height: h, is_coinbase: i == 0 });
                }
            }
            rules::coinbase_value_is_within_reward(&block.txdata[0], fees, h, &p).map_err(err)?;
        }
        Ok(checked)
    }

    #[test]
    fn mainnet_blocks_0_to_255_pass_every_utxo_rule_and_script_and_altered_ones_fail() {
        let Some(blocks) = mainnet_blocks() else { return };
        assert_eq!(blocks.len(), 256);
        // Block 170 holds the first spend (block 9's coinbase, P2PK, signed by Satoshi); blocks
        // 181, 182, 183, 187, 221 and 248 hold the others.
        let checked = connect_all(&blocks).unwrap();
        assert!(checked >= 7, "only {checked} inputs were script-checked");
        assert_eq!(blocks[170].txdata.len(), 2);
        // A flipped signature byte: Core's interpreter refuses it at block 170.
        let mut bad = blocks[..=170].to_vec();
        bad[170].txdata[1].inputs[0].script_sig[10] ^= 1;
        let (h, e) = connect_all(&bad).unwrap_err();
        assert_eq!((h, e.reason(), e.rule()), (170, "block-script-verify-flag-failed", "input_scripts_are_valid"));
        // Spending more than the coin (50 BTC): outputs above inputs.
        let mut bad = blocks[..=170].to_vec();
        bad[170].txdata[1].outputs[0].value += 50 * 100_000_000;
        assert_eq!(connect_all(&bad).unwrap_err().1.reason(), "bad-txns-in-belowout");
        // The coinbase of block 100 paying one satoshi more than 50 BTC.
        let mut bad = blocks[..=100].to_vec();
        bad[100].txdata[0].outputs[0].value += 1;
        let (h, e) = connect_all(&bad).unwrap_err();
        assert_eq!((h, e.reason()), (100, "bad-cb-amount"));
        // Block 170's spend naming an output block 9 does not have: missing.
        let mut bad = blocks[..=170].to_vec();
        bad[170].txdata[1].inputs[0].prevout.vout = 1;
        let (h, e) = connect_all(&bad).unwrap_err();
        assert_eq!((h, e.reason()), (170, "bad-txns-inputs-missingorspent"));
        // The same spend already in block 169: block 170's copy would overwrite its unspent
        // outputs, and Core's BIP30 check comes before the inputs (ConnectBlock).
        let mut bad = blocks[..=170].to_vec();
        let spend = bad[170].txdata[1].clone();
        bad[169].txdata.push(spend);
        let (h, e) = connect_all(&bad).unwrap_err();
        assert_eq!((h, e.reason()), (170, "bad-txns-BIP30"));
        // A coinbase output spent at depth 99: block 9's coinbase spent in block 108.
        let mut bad = blocks[..=108].to_vec();
        let spend = blocks[170].txdata[1].clone();
        bad[108].txdata.push(spend);
        let (h, e) = connect_all(&bad).unwrap_err();
        assert_eq!((h, e.reason()), (108, "bad-txns-premature-spend-of-coinbase"));
    }
}
