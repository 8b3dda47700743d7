//! Generating valid Bitcoin chains for tests and benchmarks: headers or blocks mined with the CPU
//! engine ([`crate::mine::mine_header`]).

use std::io::Write;

use crate::consensus::rules::script_push_number;
use crate::consensus::BitcoinParams;
use crate::mine::mine_header;
use crate::primitives::{
    deserialize, serialize, Block, BlockHeader, OutPoint, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
};
use crate::sha256::{merkle, CpuImpl};

/// The coinbase of Bitcoin's genesis block (mainnet, testnet3 and regtest share it).
pub const GENESIS_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000";

/// The genesis block of a chain.
pub fn genesis_block(params: &BitcoinParams) -> Block {
    let cb: Transaction = deserialize(&hex::decode(GENESIS_COINBASE).expect("hex")).expect("the genesis coinbase");
    Block { header: params.genesis, txdata: vec![cb] }
}

/// Writes the genesis header and `n - 1` mined headers after it, as raw 80-byte records, one second
/// apart (always above the median of the last 11, never far in the future), at the chain's limit bits.
pub fn generate_headers(params: &BitcoinParams, n: u64, out: &mut dyn Write) -> std::io::Result<BlockHeader> {
    let scanner = CpuImpl::detect().scanner().expect("detected");
    let mut prev = params.genesis;
    out.write_all(&prev.to_bytes())?;
    for i in 1..n {
        let h = BlockHeader {
            version: 4,
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode(crate::primitives::sha256d(&i.to_le_bytes())),
            time: params.genesis.time + i as u32,
            bits: params.genesis.bits,
            nonce: 0,
        };
        prev = mine_header(h, &*scanner).ok_or_else(|| std::io::Error::other("no nonce meets the target"))?;
        out.write_all(&prev.to_bytes())?;
    }
    Ok(prev)
}

/// Writes the genesis block and `n - 1` mined blocks in blk format (magic, length, block), each with
/// a BIP34 coinbase and `txs_per_block` transfers (structurally valid; their inputs are made up, as
/// `validate` does not check Bitcoin UTXO spends).
pub fn generate_blocks(
    params: &BitcoinParams,
    n: u64,
    txs_per_block: usize,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let scanner = CpuImpl::detect().scanner().expect("detected");
    let write = |out: &mut dyn Write, b: &Block| -> std::io::Result<()> {
        let bytes = serialize(b);
        out.write_all(&params.magic)?;
        out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        out.write_all(&bytes)
    };
    let genesis = genesis_block(params);
    write(out, &genesis)?;
    let mut prev = genesis.header;
    for height in 1..n {
        let mut sig = script_push_number(height as i64);
        sig.push(0x00); // a coinbase scriptSig needs at least two bytes
        let coinbase = Transaction {
            version: 1,
            inputs: vec![TxIn { prevout: OutPoint::NULL, script_sig: sig, sequence: u32::MAX, witness: vec![] }],
            outputs: vec![TxOut { value: 50 * 100_000_000, script_pubkey: vec![0x51] }],
            lock_time: 0,
        };
        let mut txdata = vec![coinbase];
        for i in 0..txs_per_block {
            let seed = crate::primitives::sha256d(&[height.to_le_bytes(), (i as u64).to_le_bytes()].concat());
            txdata.push(Transaction {
                version: 2,
                inputs: vec![TxIn {
                    prevout: OutPoint { txid: Txid(seed), vout: 0 },
                    script_sig: vec![0x51],
                    sequence: u32::MAX,
                    witness: vec![],
                }],
                outputs: vec![TxOut { value: 1000, script_pubkey: vec![0x51] }],
                lock_time: 0,
            });
        }
        let txids: Vec<[u8; 32]> = txdata.iter().map(|t| t.txid().0).collect();
        let header = BlockHeader {
            version: 4,
            prev_blockhash: prev.block_hash(),
            merkle_root: TxMerkleNode(merkle::root(&txids).expect("non-empty")),
            time: params.genesis.time + height as u32,
            bits: params.genesis.bits,
            nonce: 0,
        };
        let header =
            mine_header(header, &*scanner).ok_or_else(|| std::io::Error::other("no nonce meets the target"))?;
        write(out, &Block { header, txdata })?;
        prev = header;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::BitcoinNetwork;

    #[test]
    fn genesis_blocks_hash_and_merkle_correctly() {
        for c in BitcoinNetwork::ALL {
            let b = genesis_block(&c.params());
            assert_eq!(b.txdata[0].txid().0, b.header.merkle_root.0, "{c}");
        }
    }
}
