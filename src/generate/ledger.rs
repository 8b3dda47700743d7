//! `powkit chain generate --chain powkit-regtest --blocks N --txs-per-block M`: a valid chain with
//! signed transfers, for tests and benchmarks. Deterministic: the same arguments give the same file.

use std::collections::HashMap;
use std::io::Write;

use ed25519_zebra::SigningKey;
use rayon::prelude::*;

use crate::chain::Follower;
use crate::consensus::ledger::CLOCK_PAST_EVERY_HEADER;
use crate::consensus::LedgerParams;
use crate::ledger::block::LedgerBlock;
use crate::ledger::tx::Transfer;
use crate::mine::template;
use crate::state::accounts::Account;

/// Accounts the generated transfers move between.
pub const KEYS: usize = 256;

/// The generator's keys: seed i = SHA-256d("powkit generate key" || i).
pub fn keys() -> Vec<SigningKey> {
    (0..KEYS as u32)
        .map(|i| {
            let mut m = b"powkit generate key".to_vec();
            m.extend_from_slice(&i.to_le_bytes());
            SigningKey::from(crate::primitives::sha256d(&m))
        })
        .collect()
}

/// Writes a blk-format record (magic, length, block).
pub fn write_record(out: &mut dyn Write, magic: [u8; 4], b: &LedgerBlock) -> std::io::Result<()> {
    let bytes = b.to_bytes();
    out.write_all(&magic)?;
    out.write_all(&(bytes.len() as u32).to_le_bytes())?;
    out.write_all(&bytes)
}

/// Mines `n` blocks (genesis included) with `txs` transfers each after the first, writes them in
/// blk format, and returns the follower at the tip (its state root is the chain's).
pub fn generate(params: &'static LedgerParams, n: u64, txs: usize, out: &mut dyn Write) -> std::io::Result<Follower> {
    let keys = keys();
    let pks: Vec<crate::ledger::AccountKey> = keys.iter().map(crate::ledger::keys::public).collect();
    let scanner = crate::sha256::CpuImpl::detect().scanner().expect("the detected implementation runs");
    let mut f = Follower::new(params);
    write_record(out, params.magic, &params.genesis)?;
    let mut time = params.genesis.header.time;
    let mut next_sender = 0usize;
    for height in 1..n.max(1) as u32 {
        // Transfers from funded accounts (in-block balances and nonces tracked), round robin.
        let mut local: HashMap<usize, Account> = HashMap::new();
        let mut planned: Vec<(usize, Transfer)> = Vec::with_capacity(txs);
        let mut tries = 0;
        while planned.len() < txs && tries < KEYS {
            let s = next_sender % KEYS;
            next_sender += 1;
            let a = *local.entry(s).or_insert_with(|| f.state.account(&pks[s]));
            let (amount, fee) = (1000 + (planned.len() % 7) as u64, 1 + (planned.len() % 3) as u64);
            if a.balance < amount + fee {
                tries += 1;
                continue;
            }
            tries = 0;
            let to = (s * 31 + planned.len() + height as usize) % KEYS;
            let t = Transfer {
                chain_id: params.chain_id,
                from: pks[s],
                to: pks[to],
                amount,
                fee,
                nonce: a.nonce,
                signature: [0; 64],
            };
            local.insert(s, Account { balance: a.balance - amount - fee, nonce: a.nonce + 1 });
            if let Some(r) = local.get_mut(&to) {
                r.balance += amount;
            }
            planned.push((s, t));
        }
        let signed: Vec<Transfer> = planned.par_iter().map(|(s, t)| t.sign(&keys[*s])).collect();
        time += params.target_spacing as u32;
        let miner = pks[height as usize % KEYS];
        let (tip, bits) = (f.tip, f.next_bits());
        let mut b = template(&mut f.state, params, tip, height, time, bits, miner, signed)
            .map_err(|e| std::io::Error::other(format!("generator bug at height {height}: {e}")))?;
        b.header = crate::mine::mine_header(b.header, scanner.as_ref())
            .ok_or_else(|| std::io::Error::other("no nonce meets the target"))?;
        let hash = b.header.block_hash();
        f.connect(&b, &hash, CLOCK_PAST_EVERY_HEADER)
            .map_err(|e| std::io::Error::other(format!("generator bug at height {height}: {e}")))?;
        write_record(out, params.magic, &b)?;
    }
    Ok(f)
}
