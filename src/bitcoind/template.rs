//! A `getblocktemplate` answer (BIP22 "Template Request", BIP23 "Pooled Mining", BIP9 version
//! bits, BIP145 segwit fields), read and checked: every field a miner uses is present, of its type,
//! and consistent (each transaction's `txid` is the hash of its `data`), so a hostile or broken node
//! gives a clear error rather than an invalid block.

use serde::Deserialize;
use serde_json::Value;

use super::rpc::RpcError;
use crate::primitives::{deserialize, BlockHash, CompactTarget, Transaction, Txid};

/// The rules powkit can mine under (BIP9 deployments whose templates need nothing more of a miner
/// than the fields read here). A template whose `rules` name another with a `!` prefix ("a miner
/// that does not understand it must not mine", BIP9's getblocktemplate changes) is refused.
pub const KNOWN_RULES: &[&str] = &["csv", "segwit", "taproot"];

#[derive(Deserialize)]
struct RawTemplate {
    version: i64,
    #[serde(default)]
    rules: Vec<String>,
    previousblockhash: String,
    transactions: Vec<RawTx>,
    coinbasevalue: i64,
    #[serde(default)]
    longpollid: Option<String>,
    mintime: u32,
    curtime: u32,
    bits: String,
    height: u32,
    #[serde(default)]
    default_witness_commitment: Option<String>,
}

#[derive(Deserialize)]
struct RawTx {
    data: String,
    txid: String,
}

/// A checked block template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTemplate {
    /// The block's height.
    pub height: u32,
    /// The parent (internal byte order).
    pub prev_hash: BlockHash,
    /// The header version (with BIP9 bits set as the node asks).
    pub version: i32,
    /// The compact target.
    pub bits: CompactTarget,
    /// The node's time and the earliest valid header time (Unix seconds).
    pub curtime: u32,
    /// Median time past + 1.
    pub mintime: u32,
    /// Subsidy plus fees, satoshis: what the coinbase may pay.
    pub coinbase_value: i64,
    /// The BIP141 commitment output's script (`6a24aa21a9ed...`), when segwit is active.
    pub witness_commitment: Option<Vec<u8>>,
    /// The transactions besides the coinbase, serialized as the block carries them (`data`).
    pub transactions: Vec<Vec<u8>>,
    /// Their txids (internal byte order), in the same order.
    pub txids: Vec<[u8; 32]>,
    /// BIP22 long polling: the id to wait on, when the node offers it.
    pub longpollid: Option<String>,
}

const M: &str = "getblocktemplate";

fn hex_field(name: &str, s: &str) -> Result<Vec<u8>, RpcError> {
    hex::decode(s).map_err(|e| RpcError::malformed(M, format!("`{name}` is not hex ({e})")))
}

impl BlockTemplate {
    /// Reads and checks a `getblocktemplate` result.
    ///
    /// # Errors
    /// [`RpcError::Malformed`] naming the field: missing, of the wrong type, bad hex, a transaction
    /// that does not parse or whose `txid` is not its hash, a version outside 32 bits, a rule that
    /// must be understood and is not, or `curtime` below `mintime`.
    pub fn from_json(v: &Value) -> Result<BlockTemplate, RpcError> {
        let raw: RawTemplate = serde_json::from_value(v.clone()).map_err(|e| RpcError::malformed(M, e.to_string()))?;
        if let Some(rule) = raw.rules.iter().find(|r| r.starts_with('!') && !KNOWN_RULES.contains(&&r[1..])) {
            return Err(RpcError::malformed(
                M,
                format!("the template requires rule {rule}, which powkit does not know"),
            ));
        }
        let version = i32::try_from(raw.version)
            .or_else(|_| u32::try_from(raw.version).map(|v| v as i32))
            .map_err(|_| RpcError::malformed(M, format!("`version` {} does not fit 32 bits", raw.version)))?;
        let prev_hash = BlockHash::from_display_hex(&raw.previousblockhash)
            .map_err(|e| RpcError::malformed(M, format!("`previousblockhash`: {e}")))?;
        let bits_bytes = hex_field("bits", &raw.bits)?;
        let bits: [u8; 4] = bits_bytes
            .try_into()
            .map_err(|_| RpcError::malformed(M, format!("`bits` {:?} is not 8 hex digits", raw.bits)))?;
        let bits = CompactTarget(u32::from_be_bytes(bits));
        bits.to_target().map_err(|e| RpcError::malformed(M, format!("`bits` {}: {e}", raw.bits)))?;
        let witness_commitment = match &raw.default_witness_commitment {
            Some(s) => Some(hex_field("default_witness_commitment", s)?),
            None => None,
        };
        if raw.curtime < raw.mintime {
            return Err(RpcError::malformed(
                M,
                format!("`curtime` {} is below `mintime` {}", raw.curtime, raw.mintime),
            ));
        }
        let mut transactions = Vec::with_capacity(raw.transactions.len());
        let mut txids = Vec::with_capacity(raw.transactions.len());
        for (i, t) in raw.transactions.iter().enumerate() {
            let data = hex_field(&format!("transactions[{i}].data"), &t.data)?;
            let tx: Transaction = deserialize(&data)
                .map_err(|e| RpcError::malformed(M, format!("`transactions[{i}].data` is not a transaction: {e}")))?;
            let want = Txid::from_display_hex(&t.txid)
                .map_err(|e| RpcError::malformed(M, format!("`transactions[{i}].txid`: {e}")))?;
            let got = tx.txid();
            if got != want {
                return Err(RpcError::malformed(
                    M,
                    format!("`transactions[{i}].txid` is {want} but its data hashes to {got}"),
                ));
            }
            transactions.push(data);
            txids.push(got.0);
        }
        Ok(BlockTemplate {
            height: raw.height,
            prev_hash,
            version,
            bits,
            curtime: raw.curtime,
            mintime: raw.mintime,
            coinbase_value: raw.coinbasevalue,
            witness_commitment,
            transactions,
            txids,
            longpollid: raw.longpollid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A template as regtest bitcoind answers it after 101 blocks (one transaction: a real regtest
    /// spend), trimmed to the fields read plus a few ignored ones.
    fn sample() -> Value {
        let tx = crate::primitives::Transaction {
            version: 2,
            inputs: vec![crate::primitives::TxIn {
                prevout: crate::primitives::OutPoint { txid: Txid([3; 32]), vout: 0 },
                script_sig: vec![0x51],
                sequence: 0xffff_fffd,
                witness: vec![],
            }],
            outputs: vec![crate::primitives::TxOut { value: 1000, script_pubkey: vec![0x51] }],
            lock_time: 0,
        };
        json!({
            "capabilities": ["proposal"],
            "version": 0x2000_0000,
            "rules": ["csv", "!segwit", "taproot"],
            "vbavailable": {},
            "vbrequired": 0,
            "previousblockhash": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
            "transactions": [{"data": hex::encode(crate::primitives::serialize(&tx)), "txid": tx.txid().to_string(),
                              "hash": tx.txid().to_string(), "depends": [], "fee": 1000, "sigops": 0, "weight": 400}],
            "coinbaseaux": {},
            "coinbasevalue": 5_000_001_000i64,
            "longpollid": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e22061",
            "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
            "mintime": 1_700_000_001,
            "mutable": ["time", "transactions", "prevblock"],
            "noncerange": "00000000ffffffff",
            "sigoplimit": 80000,
            "sizelimit": 4_000_000,
            "weightlimit": 4_000_000,
            "curtime": 1_700_000_100,
            "bits": "207fffff",
            "height": 1,
            "default_witness_commitment": "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"
        })
    }

    #[test]
    fn a_template_is_read() {
        let t = BlockTemplate::from_json(&sample()).unwrap();
        assert_eq!(t.height, 1);
        assert_eq!(t.version, 0x2000_0000);
        assert_eq!(t.bits, CompactTarget(0x207f_ffff));
        assert_eq!(t.coinbase_value, 5_000_001_000);
        assert_eq!(t.transactions.len(), 1);
        assert_eq!(t.prev_hash.to_string(), "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206");
        assert_eq!(t.witness_commitment.as_ref().unwrap()[..6], [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
        assert!(t.longpollid.is_some());
    }

    #[test]
    fn malformed_and_hostile_templates_are_clear_errors() {
        type Edit = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("missing field `height`", Box::new(|v| drop(v.as_object_mut().unwrap().remove("height")))),
            ("invalid type: string \"1\", expected u32", Box::new(|v| v["height"] = json!("1"))),
            (
                "missing field `previousblockhash`",
                Box::new(|v| drop(v.as_object_mut().unwrap().remove("previousblockhash"))),
            ),
            ("`previousblockhash`", Box::new(|v| v["previousblockhash"] = json!("00"))),
            ("`bits` \"7fffff\" is not 8 hex digits", Box::new(|v| v["bits"] = json!("7fffff"))),
            ("`bits` is not hex", Box::new(|v| v["bits"] = json!("zz7fffff"))),
            ("invalid type: map, expected a sequence", Box::new(|v| v["transactions"] = json!({}))),
            ("`transactions[0].data` is not a transaction", Box::new(|v| v["transactions"][0]["data"] = json!("0200"))),
            ("but its data hashes to", Box::new(|v| v["transactions"][0]["txid"] = json!("11".repeat(32)))),
            ("missing field `txid`", Box::new(|v| drop(v["transactions"][0].as_object_mut().unwrap().remove("txid")))),
            ("requires rule !newfork", Box::new(|v| v["rules"] = json!(["!segwit", "!newfork"]))),
            ("`version` 4294967296 does not fit 32 bits", Box::new(|v| v["version"] = json!(1u64 << 32))),
            ("is below `mintime`", Box::new(|v| v["curtime"] = json!(1_700_000_000))),
            ("`default_witness_commitment` is not hex", Box::new(|v| v["default_witness_commitment"] = json!("6a2"))),
            ("invalid type: null, expected i64", Box::new(|v| v["coinbasevalue"] = Value::Null)),
        ];
        for (want, edit) in cases {
            let mut v = sample();
            edit(&mut v);
            let e = BlockTemplate::from_json(&v).unwrap_err();
            assert!(matches!(e, RpcError::Malformed { .. }), "{want}: {e}");
            let msg = e.to_string();
            assert!(msg.starts_with("bitcoind getblocktemplate: unexpected answer: "), "{msg}");
            assert!(msg.contains(want), "wanted {want:?} in {msg:?}");
        }
        assert!(BlockTemplate::from_json(&json!(null)).is_err());
        assert!(BlockTemplate::from_json(&json!([1])).is_err());
    }
}
