//! powkit blocks: the 80-byte header (the same mining kernels serve every chain) followed by a
//! CompactSize transaction count and the transactions (docs/CONSENSUS.md, "Blocks").

use super::tx::{LedgerTx, TRANSFER_SIZE};
use crate::primitives::encoding::{deserialize, write_compact_size, Decodable, DecodeError, Encodable, Reader};
use crate::primitives::{BlockHeader, Txid};

/// Largest encoded block (bytes).
pub const MAX_LEDGER_BLOCK_BYTES: usize = 4_000_000;

/// A powkit block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerBlock {
    /// The header (its merkle root commits to the transactions' txids).
    pub header: BlockHeader,
    /// The coinbase first, then transfers.
    pub txs: Vec<LedgerTx>,
}

impl Encodable for LedgerBlock {
    /// The header, a CompactSize transaction count, the transactions.
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header.to_bytes());
        write_compact_size(out, self.txs.len() as u64);
        for tx in &self.txs {
            tx.consensus_encode(out);
        }
    }
}

impl Decodable for LedgerBlock {
    /// Canonical CompactSize count, no more transactions than fit in the size limit.
    fn consensus_decode(r: &mut Reader<'_>) -> Result<LedgerBlock, DecodeError> {
        let header = BlockHeader::from_array(&r.array::<80>("block header")?);
        let at = r.offset();
        let n = r.compact_size("transaction count")?;
        let max = (MAX_LEDGER_BLOCK_BYTES / super::tx::COINBASE_SIZE) as u64;
        if n > max {
            return Err(DecodeError::TooLong { offset: at, what: "transaction count", len: n, max });
        }
        let mut txs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            txs.push(LedgerTx::consensus_decode(r)?);
        }
        Ok(LedgerBlock { header, txs })
    }
}

impl LedgerBlock {
    /// The canonical encoding ([`Encodable`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + 9 + self.txs.len() * TRANSFER_SIZE);
        self.consensus_encode(&mut out);
        out
    }

    /// Bytes of [`LedgerBlock::to_bytes`], computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let txs: usize = self
            .txs
            .iter()
            .map(|t| match t {
                LedgerTx::Coinbase(_) => super::tx::COINBASE_SIZE,
                LedgerTx::Transfer(_) => TRANSFER_SIZE,
            })
            .sum();
        80 + crate::primitives::encoding::compact_size_len(self.txs.len() as u64) + txs
    }

    /// Decodes exactly one block ([`Decodable`]; trailing bytes are an error).
    pub fn from_bytes(b: &[u8]) -> Result<LedgerBlock, DecodeError> {
        deserialize(b)
    }

    /// The transactions' txids, in order.
    pub fn txids(&self) -> Vec<Txid> {
        self.txs.iter().map(LedgerTx::txid).collect()
    }

    /// The merkle root of the txids (Bitcoin's tree) and whether a level pairs two equal nodes.
    pub fn merkle_root(&self) -> ([u8; 32], bool) {
        let ids: Vec<[u8; 32]> = self.txs.iter().map(|t| t.txid().0).collect();
        crate::sha256::merkle::root_and_mutation(&ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::ids::{AccountKey, StateRoot};
    use crate::ledger::tx::{Coinbase, Transfer};

    #[test]
    fn blocks_round_trip_and_reject_bad_counts_and_trailing_bytes() {
        let cb = LedgerTx::Coinbase(Coinbase {
            height: 1,
            extranonce: [0; crate::ledger::tx::COINBASE_EXTRANONCE_SIZE],
            recipient: AccountKey([1; 32]),
            amount: 5,
            state_root: StateRoot([2; 32]),
        });
        let t = LedgerTx::Transfer(Transfer {
            chain_id: 1,
            from: AccountKey([3; 32]),
            to: AccountKey([4; 32]),
            amount: 1,
            fee: 0,
            nonce: 0,
            signature: [0; 64],
        });
        let header = crate::consensus::BitcoinNetwork::BitcoinRegtest.params().genesis;
        let b = LedgerBlock { header, txs: vec![cb, t] };
        let bytes = b.to_bytes();
        assert_eq!(b.encoded_len(), bytes.len());
        let many = LedgerBlock { header, txs: vec![b.txs[1]; 300] };
        assert_eq!(many.encoded_len(), many.to_bytes().len());
        assert_eq!(LedgerBlock::from_bytes(&bytes), Ok(b.clone()));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(LedgerBlock::from_bytes(&long), Err(DecodeError::TrailingBytes { .. })));
        // A count of three with two transactions present.
        let mut short = bytes.clone();
        short[80] = 3;
        assert!(matches!(LedgerBlock::from_bytes(&short), Err(DecodeError::UnexpectedEnd { .. })));
        // A non-canonical count (0xfd 0x02 0x00 for 2).
        let mut nc = bytes[..80].to_vec();
        nc.extend_from_slice(&[0xfd, 2, 0]);
        nc.extend_from_slice(&bytes[81..]);
        assert!(matches!(LedgerBlock::from_bytes(&nc), Err(DecodeError::NonCanonicalCompactSize { .. })));
        assert!(LedgerBlock::from_bytes(&bytes[..50]).is_err());
    }
}
