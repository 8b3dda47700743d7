//! The 80-byte Bitcoin-compatible block header.

use sha2::{Digest, Sha256};

use super::encoding::{deserialize, serialize, Decodable, DecodeError, Encodable, Reader};
use super::hash::{BlockHash, TxMerkleNode};
use super::target::CompactTarget;

/// Bytes in an encoded header.
pub const HEADER_SIZE: usize = 80;

/// A block header, laid out on the wire as Bitcoin's: version, previous block hash, merkle root,
/// time, bits and nonce, integers little-endian, 80 bytes in all.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockHeader {
    /// Block version (signed, as in Bitcoin).
    pub version: i32,
    /// Hash of the previous block's header.
    pub prev_blockhash: BlockHash,
    /// Root of the merkle tree of the block's transaction ids.
    pub merkle_root: TxMerkleNode,
    /// Block time, seconds since the Unix epoch.
    pub time: u32,
    /// The proof-of-work target in compact form.
    pub bits: CompactTarget,
    /// The nonce miners vary.
    pub nonce: u32,
}

impl BlockHeader {
    /// Byte offset of the nonce in the encoding.
    pub const NONCE_OFFSET: usize = 76;
    /// Byte offset of the time in the encoding.
    pub const TIME_OFFSET: usize = 68;

    /// The 80-byte consensus encoding.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        serialize(self).try_into().expect("a header encodes to 80 bytes")
    }

    /// Decodes exactly 80 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<BlockHeader, DecodeError> {
        deserialize(b)
    }

    /// Decodes an 80-byte array (every 80 bytes are a header; the same fields as [`Self::from_bytes`],
    /// without the reader, for bulk paths).
    pub fn from_array(b: &[u8; HEADER_SIZE]) -> BlockHeader {
        let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        BlockHeader {
            version: word(0) as i32,
            prev_blockhash: BlockHash(b[4..36].try_into().expect("32 bytes")),
            merkle_root: TxMerkleNode(b[36..68].try_into().expect("32 bytes")),
            time: word(68),
            bits: CompactTarget(word(72)),
            nonce: word(76),
        }
    }

    /// The block hash: double SHA-256 of the encoding.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.to_bytes()))
    }
}

/// Double SHA-256 of `data` (the `sha2` crate; powkit's own engines are tested against it).
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

impl Encodable for BlockHeader {
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        self.prev_blockhash.consensus_encode(out);
        self.merkle_root.consensus_encode(out);
        out.extend_from_slice(&self.time.to_le_bytes());
        self.bits.consensus_encode(out);
        out.extend_from_slice(&self.nonce.to_le_bytes());
    }
}

impl Decodable for BlockHeader {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(BlockHeader {
            version: r.i32_le("header version")?,
            prev_blockhash: BlockHash::consensus_decode(r)?,
            merkle_root: TxMerkleNode::consensus_decode(r)?,
            time: r.u32_le("header time")?,
            bits: CompactTarget::consensus_decode(r)?,
            nonce: r.u32_le("header nonce")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    #[test]
    fn genesis_header_decodes_and_hashes() {
        let bytes = hex::decode(GENESIS).unwrap();
        let h = BlockHeader::from_bytes(&bytes).unwrap();
        assert_eq!(h.version, 1);
        assert_eq!(h.prev_blockhash, BlockHash::ZERO);
        assert_eq!(h.merkle_root.to_string(), "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b");
        assert_eq!(h.time, 1231006505);
        assert_eq!(h.bits, CompactTarget(0x1d00ffff));
        assert_eq!(h.nonce, 2083236893);
        assert_eq!(h.to_bytes().to_vec(), bytes);
        assert_eq!(h.block_hash().to_string(), "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f");
        assert!(h.bits.to_target().unwrap().is_met_by(&h.block_hash()));
    }

    #[test]
    fn array_decoding_equals_the_reader() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut b = [0u8; 80];
            for x in b.iter_mut() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *x = (state >> 56) as u8;
            }
            let h = BlockHeader::from_array(&b);
            assert_eq!(Ok(h), BlockHeader::from_bytes(&b));
            assert_eq!(h.to_bytes(), b);
        }
    }

    #[test]
    fn decoding_rejects_short_and_trailing_input() {
        let bytes = hex::decode(GENESIS).unwrap();
        assert!(matches!(
            BlockHeader::from_bytes(&bytes[..79]),
            Err(DecodeError::UnexpectedEnd { offset: 76, needed: 1, .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(BlockHeader::from_bytes(&long), Err(DecodeError::TrailingBytes { offset: 80, extra: 1 }));
    }
}
