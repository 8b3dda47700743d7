//! Signature-operation counting, exactly as Bitcoin Core counts (src/consensus/tx_verify.cpp
//! `GetLegacySigOpCount`, `GetP2SHSigOpCount`, `GetTransactionSigOpCost`; src/script/script.cpp
//! `CScript::GetSigOpCount`; src/script/interpreter.cpp `CountWitnessSigOps`), and the block limits
//! on them ("bad-blk-sigops").
//!
//! Counting walks a script's opcodes with [`get_op`] (Core's `GetScriptOp`); nothing here
//! interprets a script: that is Bitcoin Core's interpreter's job (`consensus::script`).

use std::borrow::Borrow;

use super::tx::{TxRuleError, MAX_BLOCK_SIGOPS_COST};
use super::WITNESS_SCALE_FACTOR;
use crate::consensus::script::{SCRIPT_VERIFY_P2SH, SCRIPT_VERIFY_WITNESS};
use crate::primitives::{Block, Coin, Transaction, TxIn};

/// `OP_0`.
pub const OP_0: u8 = 0x00;
/// `OP_PUSHDATA1`: the next byte is the push's length.
pub const OP_PUSHDATA1: u8 = 0x4c;
/// `OP_PUSHDATA2`: the next two bytes (little-endian) are the push's length.
pub const OP_PUSHDATA2: u8 = 0x4d;
/// `OP_PUSHDATA4`: the next four bytes (little-endian) are the push's length.
pub const OP_PUSHDATA4: u8 = 0x4e;
/// `OP_1`.
pub const OP_1: u8 = 0x51;
/// `OP_16`.
pub const OP_16: u8 = 0x60;
/// `OP_EQUAL`.
pub const OP_EQUAL: u8 = 0x87;
/// `OP_HASH160`.
pub const OP_HASH160: u8 = 0xa9;
/// `OP_CHECKSIG`.
pub const OP_CHECKSIG: u8 = 0xac;
/// `OP_CHECKSIGVERIFY`.
pub const OP_CHECKSIGVERIFY: u8 = 0xad;
/// `OP_CHECKMULTISIG`.
pub const OP_CHECKMULTISIG: u8 = 0xae;
/// `OP_CHECKMULTISIGVERIFY`.
pub const OP_CHECKMULTISIGVERIFY: u8 = 0xaf;
/// `MAX_PUBKEYS_PER_MULTISIG` (src/script/script.h): what an inaccurately counted
/// `CHECKMULTISIG` costs.
pub const MAX_PUBKEYS_PER_MULTISIG: u32 = 20;

/// One opcode of `script` at `*pc` and the data it pushes (empty for non-push opcodes), advancing
/// `*pc`: Bitcoin Core `GetScriptOp` (src/script/script.cpp). `None` at the end of the script or
/// when a push runs past it (Core's `false`; `*pc` is then unspecified).
pub fn get_op<'s>(script: &'s [u8], pc: &mut usize) -> Option<(u8, &'s [u8])> {
    let opcode = *script.get(*pc)?;
    *pc += 1;
    if opcode > OP_PUSHDATA4 {
        return Some((opcode, &[]));
    }
    let rest = &script[*pc..];
    let (size, header): (usize, usize) = match opcode {
        OP_PUSHDATA1 => (*rest.first()? as usize, 1),
        OP_PUSHDATA2 => (u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize, 2),
        OP_PUSHDATA4 => (u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize, 4),
        n => (n as usize, 0),
    };
    let data = rest.get(header..header.checked_add(size)?)?;
    *pc += header + size;
    Some((opcode, data))
}

/// `CScript::DecodeOP_N` for `OP_1..=OP_16`.
fn decode_op_n(opcode: u8) -> u32 {
    (opcode - OP_1 + 1) as u32
}

/// Bitcoin Core `CScript::GetSigOpCount(bool fAccurate)` (src/script/script.cpp): each
/// `CHECKSIG(VERIFY)` counts 1; each `CHECKMULTISIG(VERIFY)` counts 20, or, when `accurate` and the
/// opcode before it is `OP_1..OP_16`, that number. Stops at the first undecodable push.
pub fn script_sigop_count(script: &[u8], accurate: bool) -> u32 {
    let mut n = 0;
    let mut pc = 0;
    let mut last = 0xff; // OP_INVALIDOPCODE
    while let Some((opcode, _)) = get_op(script, &mut pc) {
        match opcode {
            OP_CHECKSIG | OP_CHECKSIGVERIFY => n += 1,
            OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
                n += if accurate && (OP_1..=OP_16).contains(&last) {
                    decode_op_n(last)
                } else {
                    MAX_PUBKEYS_PER_MULTISIG
                }
            }
            _ => {}
        }
        last = opcode;
    }
    n
}

/// `CScript::IsPayToScriptHash`: `OP_HASH160 <20 bytes> OP_EQUAL`, exactly 23 bytes.
pub fn is_pay_to_script_hash(script: &[u8]) -> bool {
    script.len() == 23 && script[0] == OP_HASH160 && script[1] == 0x14 && script[22] == OP_EQUAL
}

/// `CScript::IsWitnessProgram`: a version opcode (`OP_0`, `OP_1..OP_16`) then one direct push of 2
/// to 40 bytes, the whole script 4 to 42 bytes. Returns the version and the program.
pub fn witness_program(script: &[u8]) -> Option<(u8, &[u8])> {
    if script.len() < 4 || script.len() > 42 {
        return None;
    }
    let version = match script[0] {
        OP_0 => 0,
        op @ OP_1..=OP_16 => decode_op_n(op) as u8,
        _ => return None,
    };
    (script[1] as usize + 2 == script.len()).then(|| (version, &script[2..]))
}

/// `CScript::IsPushOnly`: every opcode decodes and is at most `OP_16`.
pub fn is_push_only(script: &[u8]) -> bool {
    let mut pc = 0;
    while pc < script.len() {
        match get_op(script, &mut pc) {
            Some((op, _)) if op <= OP_16 => {}
            _ => return false,
        }
    }
    true
}

/// The data of the last push of a push-only scriptSig (empty when the last opcode is `OP_0..OP_16`
/// or the script is empty), `None` when the script is not push-only: the redeem script P2SH
/// evaluates (Core's loop in `CScript::GetSigOpCount(const CScript&)`).
fn last_push(script_sig: &[u8]) -> Option<&[u8]> {
    let mut pc = 0;
    let mut data: &[u8] = &[];
    while pc < script_sig.len() {
        let (op, d) = get_op(script_sig, &mut pc)?;
        if op > OP_16 {
            return None;
        }
        data = d;
    }
    Some(data)
}

/// Bitcoin Core `GetLegacySigOpCount` (src/consensus/tx_verify.cpp): the inaccurate count
/// ([`script_sigop_count`] with `accurate = false`) over every scriptSig and scriptPubKey of the
/// transaction.
pub fn legacy_sigop_count(tx: &Transaction) -> u32 {
    tx.inputs.iter().map(|i| script_sigop_count(&i.script_sig, false)).sum::<u32>()
        + tx.outputs.iter().map(|o| script_sigop_count(&o.script_pubkey, false)).sum::<u32>()
}

/// P2SH (BIP16) sigops of one input spending a P2SH output: the accurate count of the redeem
/// script, the last push of a push-only scriptSig; 0 when the scriptSig is not push-only or does not
/// decode (Core's `CScript::GetSigOpCount(const CScript& scriptSig)`, src/script/script.cpp).
fn p2sh_input_sigops(txin: &TxIn) -> u32 {
    last_push(&txin.script_sig).map_or(0, |redeem| script_sigop_count(redeem, true))
}

/// Bitcoin Core `GetP2SHSigOpCount` (src/consensus/tx_verify.cpp): over the inputs whose spent
/// output is P2SH, the accurate count of the redeem script (the last push of the scriptSig, counted
/// only when the scriptSig is push-only). 0 for a coinbase. `coins` are the spent coins in input
/// order.
///
/// # Panics
/// If `coins.len() != tx.inputs.len()` (for a transaction that is not a coinbase).
pub fn p2sh_sigop_count<C: Borrow<Coin>>(tx: &Transaction, coins: &[C]) -> u32 {
    if tx.is_coinbase() {
        return 0;
    }
    assert_eq!(coins.len(), tx.inputs.len(), "one coin per input");
    tx.inputs
        .iter()
        .zip(coins)
        .filter(|(_, c)| is_pay_to_script_hash(&Borrow::<Coin>::borrow(*c).out.script_pubkey))
        .map(|(i, _)| p2sh_input_sigops(i))
        .sum()
}

/// Bitcoin Core `WitnessSigOps` (src/script/interpreter.cpp): version 0 with a 20-byte program
/// (P2WPKH) costs 1; with a 32-byte program (P2WSH) the accurate count of the witness script (the
/// last witness item), 0 with an empty witness; other versions (taproot included) 0.
fn witness_program_sigops(version: u8, program: &[u8], witness: &[Vec<u8>]) -> u64 {
    if version == 0 {
        if program.len() == 20 {
            return 1;
        }
        if program.len() == 32 {
            if let Some(script) = witness.last() {
                return script_sigop_count(script, true) as u64;
            }
        }
    }
    0
}

/// Bitcoin Core `CountWitnessSigOps` for one input (src/script/interpreter.cpp): 0 unless `flags`
/// has `SCRIPT_VERIFY_WITNESS`; a witness program spent directly, or wrapped in P2SH (the scriptSig
/// push-only, its last push a witness program), costs [`witness_program_sigops`].
pub fn input_witness_sigops(txin: &TxIn, spent_script: &[u8], flags: u32) -> u64 {
    if flags & SCRIPT_VERIFY_WITNESS == 0 {
        return 0;
    }
    if let Some((version, program)) = witness_program(spent_script) {
        return witness_program_sigops(version, program, &txin.witness);
    }
    if is_pay_to_script_hash(spent_script) && is_push_only(&txin.script_sig) {
        let redeem = last_push(&txin.script_sig).unwrap_or(&[]);
        if let Some((version, program)) = witness_program(redeem) {
            return witness_program_sigops(version, program, &txin.witness);
        }
    }
    0
}

/// The witness sigops of a transaction: [`input_witness_sigops`] summed over its inputs (the
/// witness part of Core's `GetTransactionSigOpCost`). 0 for a coinbase.
///
/// # Panics
/// If `coins.len() != tx.inputs.len()` (for a transaction that is not a coinbase).
pub fn witness_sigop_count<C: Borrow<Coin>>(tx: &Transaction, coins: &[C], flags: u32) -> u64 {
    if tx.is_coinbase() {
        return 0;
    }
    assert_eq!(coins.len(), tx.inputs.len(), "one coin per input");
    tx.inputs.iter().zip(coins).map(|(i, c)| input_witness_sigops(i, &c.borrow().out.script_pubkey, flags)).sum()
}

/// Bitcoin Core `GetTransactionSigOpCost` (src/consensus/tx_verify.cpp): legacy sigops x 4, plus
/// (not for a coinbase) P2SH sigops x 4 when `flags` has `SCRIPT_VERIFY_P2SH`, plus witness sigops
/// (x 1) when it has `SCRIPT_VERIFY_WITNESS`. `flags` are the block's script flags
/// (`consensus::script::block_script_flags`); `coins` the spent coins in input order (empty for a
/// coinbase).
///
/// # Panics
/// If `coins.len() != tx.inputs.len()` (for a transaction that is not a coinbase).
pub fn transaction_sigop_cost<C: Borrow<Coin>>(tx: &Transaction, coins: &[C], flags: u32) -> i64 {
    let scale = WITNESS_SCALE_FACTOR as i64;
    let mut cost = legacy_sigop_count(tx) as i64 * scale;
    if tx.is_coinbase() {
        return cost;
    }
    if flags & SCRIPT_VERIFY_P2SH != 0 {
        cost += p2sh_sigop_count(tx, coins) as i64 * scale;
    }
    cost + witness_sigop_count(tx, coins, flags) as i64
}

/// The block's signature-operation cost, summed transaction by transaction, stays at most
/// `MAX_BLOCK_SIGOPS_COST` (80,000): Bitcoin Core `Chainstate::ConnectBlock` (src/validation.cpp),
/// "bad-blk-sigops" ("too many sigops"), checked after each transaction's
/// [`transaction_sigop_cost`] is added.
pub fn block_sigop_cost_is_within_limit(cost: i64) -> Result<(), TxRuleError> {
    if cost > MAX_BLOCK_SIGOPS_COST {
        return Err(TxRuleError::SigopCost { cost });
    }
    Ok(())
}

/// The context-free limit: the block's legacy sigop count ([`legacy_sigop_count`] over all its
/// transactions) x 4 is at most `MAX_BLOCK_SIGOPS_COST`: Bitcoin Core `CheckBlock`
/// (src/validation.cpp), "bad-blk-sigops" ("out-of-bounds SigOpCount").
pub fn block_legacy_sigops_are_within_limit(block: &Block) -> Result<(), TxRuleError> {
    let count: u64 = block.txdata.iter().map(|t| legacy_sigop_count(t) as u64).sum();
    if count * WITNESS_SCALE_FACTOR as u64 > MAX_BLOCK_SIGOPS_COST as u64 {
        return Err(TxRuleError::LegacySigopCount { count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::script::SCRIPT_VERIFY_TAPROOT;
    use crate::primitives::{BlockHash, BlockHeader, CompactTarget, OutPoint, TxMerkleNode, TxOut, Txid};

    const ALL: u32 = SCRIPT_VERIFY_P2SH | SCRIPT_VERIFY_WITNESS;

    fn push(data: &[u8]) -> Vec<u8> {
        let mut v = vec![data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    /// `OP_m <33-byte key> x n OP_n CHECKMULTISIG`.
    fn multisig(m: u8, n: u8) -> Vec<u8> {
        let mut s = vec![OP_1 + m - 1];
        for i in 0..n {
            s.extend(push(&[2 + (i & 1); 33]));
        }
        s.extend([OP_1 + n - 1, OP_CHECKMULTISIG]);
        s
    }

    fn p2sh() -> Vec<u8> {
        let mut s = vec![OP_HASH160, 0x14];
        s.extend([7; 20]);
        s.push(OP_EQUAL);
        s
    }

    fn spend(script_sig: Vec<u8>, witness: Vec<Vec<u8>>, out: Vec<u8>) -> Transaction {
        Transaction {
            version: 2,
            inputs: vec![TxIn { prevout: OutPoint { txid: Txid([1; 32]), vout: 0 }, script_sig, sequence: 0, witness }],
            outputs: vec![TxOut { value: 1, script_pubkey: out }],
            lock_time: 0,
        }
    }

    fn coin(script_pubkey: Vec<u8>) -> [Coin; 1] {
        [Coin { out: TxOut { value: 1, script_pubkey }, height: 1, is_coinbase: false }]
    }

    #[test]
    fn get_op_decodes_every_push_form_and_stops_at_a_truncated_one() {
        let s = [
            0x02,
            0xaa,
            0xbb,
            OP_PUSHDATA1,
            1,
            0xcc,
            OP_PUSHDATA2,
            1,
            0,
            0xdd,
            OP_PUSHDATA4,
            1,
            0,
            0,
            0,
            0xee,
            OP_CHECKSIG,
        ];
        let mut pc = 0;
        let mut ops = Vec::new();
        while let Some((op, d)) = get_op(&s, &mut pc) {
            ops.push((op, d.to_vec()));
        }
        assert_eq!(
            ops,
            [
                (0x02, vec![0xaa, 0xbb]),
                (OP_PUSHDATA1, vec![0xcc]),
                (OP_PUSHDATA2, vec![0xdd]),
                (OP_PUSHDATA4, vec![0xee]),
                (OP_CHECKSIG, vec![])
            ]
        );
        for bad in [&[0x02, 0xaa][..], &[OP_PUSHDATA1], &[OP_PUSHDATA2, 1], &[OP_PUSHDATA4, 0xff, 0xff, 0xff, 0xff, 0]]
        {
            assert_eq!(get_op(bad, &mut 0), None, "{bad:?}");
        }
    }

    #[test]
    fn script_sigop_count_accurate_and_not() {
        let p2pkh =
            [0x76, OP_HASH160, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, OP_CHECKSIG];
        assert_eq!(script_sigop_count(&p2pkh, false), 1);
        assert_eq!(script_sigop_count(&multisig(2, 3), true), 3);
        assert_eq!(script_sigop_count(&multisig(2, 3), false), 20);
        // CHECKMULTISIG after a non-OP_N opcode counts 20 even when accurate.
        assert_eq!(script_sigop_count(&[OP_0, OP_CHECKMULTISIGVERIFY, OP_CHECKSIGVERIFY], true), 21);
        // Counting stops at a push that runs past the end (Core's GetOp failure).
        assert_eq!(script_sigop_count(&[OP_CHECKSIG, 0x05, OP_CHECKSIG], false), 1);
    }

    #[test]
    fn legacy_sigop_count_covers_script_sigs_and_outputs() {
        let t = spend(vec![OP_CHECKSIG, OP_CHECKSIG], vec![], multisig(1, 2));
        assert_eq!(legacy_sigop_count(&t), 2 + 20);
    }

    #[test]
    fn p2sh_sigop_count_counts_the_redeem_script_accurately() {
        let redeem = multisig(2, 3);
        let mut sig = vec![OP_0, 0x01, 0xaa];
        sig.extend([OP_PUSHDATA1, redeem.len() as u8]);
        sig.extend(&redeem);
        let t = spend(sig.clone(), vec![], vec![0x51]);
        assert_eq!(p2sh_sigop_count(&t, &coin(p2sh())), 3);
        // Not P2SH: nothing, whatever the spent script holds.
        assert_eq!(p2sh_sigop_count(&t, &coin(vec![OP_CHECKSIG])), 0);
        // A scriptSig that is not push-only counts nothing.
        let mut not_push = sig.clone();
        not_push.insert(0, OP_CHECKSIG); // above OP_16: not a push
        assert_eq!(p2sh_sigop_count(&spend(not_push, vec![], vec![]), &coin(p2sh())), 0);
        // Last opcode OP_1: empty redeem script.
        let mut ends_small = sig;
        ends_small.push(OP_1);
        assert_eq!(p2sh_sigop_count(&spend(ends_small, vec![], vec![]), &coin(p2sh())), 0);
    }

    #[test]
    fn witness_sigop_count_by_program() {
        let p2wpkh = [&[OP_0, 0x14][..], &[9; 20]].concat();
        let p2wsh = [&[OP_0, 0x20][..], &[9; 32]].concat();
        let p2tr = [&[OP_1, 0x20][..], &[9; 32]].concat();
        let wsh_witness = vec![vec![], vec![1; 71], multisig(2, 3)];
        assert_eq!(
            witness_sigop_count(&spend(vec![], vec![vec![1; 71], vec![2; 33]], vec![]), &coin(p2wpkh.clone()), ALL),
            1
        );
        assert_eq!(witness_sigop_count(&spend(vec![], wsh_witness.clone(), vec![]), &coin(p2wsh.clone()), ALL), 3);
        assert_eq!(witness_sigop_count(&spend(vec![], vec![], vec![]), &coin(p2wsh), ALL), 0);
        assert_eq!(
            witness_sigop_count(&spend(vec![], vec![vec![1; 64]], vec![]), &coin(p2tr), ALL | SCRIPT_VERIFY_TAPROOT),
            0
        );
        // P2SH-wrapped P2WPKH: the scriptSig pushes the program.
        let wrapped = spend(push(&p2wpkh), vec![vec![1; 71], vec![2; 33]], vec![]);
        assert_eq!(witness_sigop_count(&wrapped, &coin(p2sh()), ALL), 1);
        // Without WITNESS nothing counts.
        assert_eq!(witness_sigop_count(&wrapped, &coin(p2sh()), SCRIPT_VERIFY_P2SH), 0);
    }

    #[test]
    fn transaction_sigop_cost_weighs_legacy_and_p2sh_by_four() {
        let redeem = multisig(1, 2);
        let t = spend(push(&redeem), vec![], vec![OP_CHECKSIG]);
        // Legacy: the output's CHECKSIG (1) and the scriptSig's push (0) -> 4; P2SH: 2 -> 8.
        assert_eq!(transaction_sigop_cost(&t, &coin(p2sh()), ALL), 4 + 8);
        assert_eq!(transaction_sigop_cost(&t, &coin(p2sh()), 0), 4);
        let p2wpkh = [&[OP_0, 0x14][..], &[9; 20]].concat();
        let w = spend(vec![], vec![vec![1; 71], vec![2; 33]], vec![OP_CHECKSIG]);
        assert_eq!(transaction_sigop_cost(&w, &coin(p2wpkh), ALL), 4 + 1);
        // A coinbase: legacy only, no coins.
        let mut cb = spend(vec![OP_CHECKSIG, 0], vec![], vec![OP_CHECKSIG]);
        cb.inputs[0].prevout = OutPoint::NULL;
        assert_eq!(transaction_sigop_cost(&cb, &[] as &[Coin], ALL), 8);
    }

    #[test]
    fn block_sigop_cost_is_within_limit_at_80000() {
        block_sigop_cost_is_within_limit(80_000).unwrap();
        let e = block_sigop_cost_is_within_limit(80_001).unwrap_err();
        assert_eq!(e.reason(), "bad-blk-sigops");
        assert_eq!(e.rule(), "block_sigop_cost_is_within_limit");
    }

    #[test]
    fn block_legacy_sigops_are_within_limit_at_20000() {
        let header = BlockHeader {
            version: 1,
            prev_blockhash: BlockHash::ZERO,
            merkle_root: TxMerkleNode([0; 32]),
            time: 0,
            bits: CompactTarget(0),
            nonce: 0,
        };
        let mut block = Block { header, txdata: vec![spend(vec![], vec![], vec![OP_CHECKSIG; 19_999])] };
        block.txdata.push(spend(vec![OP_CHECKSIG], vec![], vec![]));
        block_legacy_sigops_are_within_limit(&block).unwrap();
        block.txdata.push(spend(vec![OP_CHECKSIG], vec![], vec![]));
        let e = block_legacy_sigops_are_within_limit(&block).unwrap_err();
        assert_eq!(e.reason(), "bad-blk-sigops");
        assert_eq!(e.rule(), "block_legacy_sigops_are_within_limit");
        assert_eq!(e, TxRuleError::LegacySigopCount { count: 20_001 });
    }
}
