//! [`GbtSource`]: a bitcoind's `getblocktemplate` as a [`JobSource`] (for `powkit mine --node`
//! and a job server's template source).
//!
//! One background thread keeps the current template: it holds a single BIP22 long poll open when
//! the node offers `longpollid` (bitcoind answers when the tip changes, or after a minute when
//! new transactions arrived), else it polls `getbestblockhash` every `poll` and fetches a new
//! template when the tip moves. Waiters ([`JobSource::wait_for_change`]) sleep on a condition
//! variable, so any number of them cost the node nothing, and no long poll is ever abandoned
//! (each would hold one of bitcoind's RPC threads until the tip moves). When a block it submitted
//! is accepted, the next template is fetched at once, before [`JobSource::submit_block`] returns.
//!
//! The templates of the last [`KEPT`] ids are kept with their transactions, so a block solved on
//! a slightly older template can still be assembled and submitted.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::address::{script_for_address, Network};
use super::coinbase::{self, CoinbaseSplit};
use super::rpc::{Auth, RpcClient, RpcError};
use super::template::BlockTemplate;
use crate::primitives::encoding::write_compact_size;
use crate::primitives::{BlockHeader, Encodable};
use crate::stratum::job::{JobSource, Template};
use crate::stratum::work;

/// Templates kept for submission, newest last.
pub const KEPT: usize = 16;

/// How the long poll is bounded on our side (bitcoind answers within about a minute anyway).
const LONG_POLL_LIMIT: Duration = Duration::from_secs(300);

/// Where the coinbase pays.
#[derive(Clone, Debug)]
pub enum Payout {
    /// A scriptPubKey as given (`--coinbase-script`).
    Script(Vec<u8>),
    /// An address, decoded for the node's network (`--coinbase-address`).
    Address(String),
}

/// What [`GbtSource::connect`] needs.
#[derive(Clone, Debug)]
pub struct GbtConfig {
    /// `http://HOST:PORT`.
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// Where the coinbase pays.
    pub payout: Payout,
    /// Tip polling interval when the node offers no long poll.
    pub poll: Duration,
    /// How long to wait for a node that is still warming up (RPC error -28).
    pub warmup_wait: Duration,
}

/// Why the source could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The node could not be asked, or answered badly.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The payout address or script is unusable on this node's network.
    #[error(transparent)]
    Address(#[from] super::address::AddressError),
    /// `getblockchaininfo` names a chain powkit does not know.
    #[error("bitcoind runs chain '{0}', which powkit does not know (main, test, testnet4, signet, regtest)")]
    UnknownChain(String),
}

struct Entry {
    id: u64,
    gbt: BlockTemplate,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Newest last; the last one is current.
    kept: VecDeque<Arc<Entry>>,
    /// The last failure of the refresher, cleared by a success.
    error: Option<String>,
}

struct Inner {
    rpc: RpcClient,
    payout: Vec<u8>,
    network: Network,
    poll: Duration,
    state: Mutex<State>,
    changed: Condvar,
    stop: std::sync::atomic::AtomicBool,
}

/// A bitcoind's `getblocktemplate` as a [`JobSource`].
pub struct GbtSource {
    inner: Arc<Inner>,
}

/// Whether two templates make different blocks (the time aside).
fn same_work(a: &BlockTemplate, b: &BlockTemplate) -> bool {
    a.prev_hash == b.prev_hash
        && a.height == b.height
        && a.version == b.version
        && a.bits == b.bits
        && a.coinbase_value == b.coinbase_value
        && a.txids == b.txids
        && a.witness_commitment == b.witness_commitment
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> Option<Arc<Entry>> {
        self.lock().kept.back().cloned()
    }

    /// Installs `gbt` as current: a new id when it makes different blocks, else the same id with
    /// the newer time. Returns whether the id changed.
    fn install(&self, gbt: BlockTemplate) -> bool {
        let mut st = self.lock();
        st.error = None;
        let new = match st.kept.back() {
            Some(cur) if same_work(&cur.gbt, &gbt) => {
                let id = cur.id;
                *st.kept.back_mut().expect("non-empty") = Arc::new(Entry { id, gbt });
                false
            }
            _ => {
                st.next_id += 1;
                let id = st.next_id;
                tracing::info!(height = gbt.height, txs = gbt.transactions.len(), id, "new block template");
                st.kept.push_back(Arc::new(Entry { id, gbt }));
                if st.kept.len() > KEPT {
                    st.kept.pop_front();
                }
                true
            }
        };
        drop(st);
        if new {
            self.changed.notify_all();
        }
        new
    }

    fn fetch(&self, longpollid: Option<&str>) -> Result<BlockTemplate, RpcError> {
        let v = self.rpc.getblocktemplate(longpollid, longpollid.map(|_| LONG_POLL_LIMIT))?;
        BlockTemplate::from_json(&v)
    }

    /// The refresher thread's loop (see the module's doc).
    fn refresh_loop(&self) {
        let stopped = || self.stop.load(std::sync::atomic::Ordering::Relaxed);
        while !stopped() {
            let Some(cur) = self.current() else { return };
            let step = match &cur.gbt.longpollid {
                Some(lp) => self.fetch(Some(lp)).map(|t| {
                    self.install(t);
                }),
                None => {
                    std::thread::sleep(self.poll);
                    match self.rpc.getbestblockhash() {
                        Ok(tip) if tip != cur.gbt.prev_hash => self.fetch(None).map(|t| {
                            self.install(t);
                        }),
                        Ok(_) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            };
            if let Err(e) = step {
                if matches!(e, RpcError::Timeout { .. }) {
                    continue;
                }
                tracing::warn!(error = %e, "template refresh failed; retrying in 1 s");
                self.lock().error = Some(e.to_string());
                // Wake waiters: the template may be stale, they should ask again.
                self.changed.notify_all();
                std::thread::sleep(Duration::from_secs(1));
                if let Ok(t) = self.fetch(None) {
                    self.install(t);
                }
            }
        }
    }
}

impl GbtSource {
    /// Connects: learns the node's chain, resolves the payout for it, fetches the first template
    /// (waiting up to `warmup_wait` while the node warms up) and starts the refresher thread.
    ///
    /// # Errors
    /// The node unreachable or refusing the credentials, an unknown chain, a payout address of
    /// another network, a malformed template.
    pub fn connect(cfg: &GbtConfig) -> Result<GbtSource, SourceError> {
        let rpc = RpcClient::new(&cfg.url, cfg.auth.clone(), Duration::from_secs(60))?;
        let t0 = Instant::now();
        let chain = loop {
            match rpc.chain() {
                Err(RpcError::WarmingUp { message }) if t0.elapsed() < cfg.warmup_wait => {
                    tracing::info!(%message, "bitcoind is warming up; waiting");
                    std::thread::sleep(Duration::from_secs(1));
                }
                r => break r?,
            }
        };
        let network = Network::from_chain(&chain).ok_or_else(|| SourceError::UnknownChain(chain.clone()))?;
        let payout = match &cfg.payout {
            Payout::Script(s) => s.clone(),
            Payout::Address(a) => script_for_address(a, network)?,
        };
        let inner = Arc::new(Inner {
            rpc,
            payout,
            network,
            poll: cfg.poll,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: Default::default(),
        });
        let first = inner.fetch(None)?;
        // The coinbase must be buildable for this template (payout script size and all).
        coinbase::build(first.height, first.coinbase_value, &inner.payout, first.witness_commitment.as_deref(), 8)
            .map_err(|e| RpcError::malformed("getblocktemplate", e.to_string()))?;
        inner.install(first);
        let bg = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("gbt-refresh".into())
            .spawn(move || bg.refresh_loop())
            .expect("spawn the template refresher");
        Ok(GbtSource { inner })
    }

    /// The node's network.
    pub fn network(&self) -> Network {
        self.inner.network
    }

    /// The RPC client (for reports: `getblockcount` and the like).
    pub fn rpc(&self) -> &RpcClient {
        &self.inner.rpc
    }

    /// The payout script.
    pub fn payout(&self) -> &[u8] {
        &self.inner.payout
    }

    fn entry(&self, id: u64) -> Option<Arc<Entry>> {
        self.inner.lock().kept.iter().rev().find(|e| e.id == id).cloned()
    }
}

impl Drop for GbtSource {
    fn drop(&mut self) {
        // The refresher ends after its current long poll or poll interval.
        self.inner.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The block for `header` on `gbt` with `coinbase` (non-witness bytes, split as `split`): header,
/// transaction count, the coinbase (with its reserved witness when the template commits to
/// witnesses), then the template's transactions as given (BIP22 `data`).
///
/// # Errors
/// The coinbase is not the split's, or the header's merkle root is not the root of the coinbase's
/// txid and the template's txids.
pub fn assemble_block(
    gbt: &BlockTemplate,
    split: &CoinbaseSplit,
    header: &BlockHeader,
    coinbase: &[u8],
) -> Result<Vec<u8>, String> {
    let cb = split.for_block(coinbase).map_err(|e| e.to_string())?;
    let mut leaves = Vec::with_capacity(1 + gbt.txids.len());
    leaves.push(cb.txid().0);
    leaves.extend_from_slice(&gbt.txids);
    let root = crate::sha256::merkle::root(&leaves).expect("non-empty");
    if root != header.merkle_root.0 {
        return Err("the header's merkle root is not the root of this coinbase and the template's transactions".into());
    }
    let mut out = Vec::with_capacity(80 + 9 + coinbase.len() + gbt.transactions.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&header.to_bytes());
    write_compact_size(&mut out, 1 + gbt.transactions.len() as u64);
    cb.consensus_encode(&mut out);
    for t in &gbt.transactions {
        out.extend_from_slice(t);
    }
    Ok(out)
}

impl JobSource for GbtSource {
    fn name(&self) -> String {
        format!("bitcoind {}", self.inner.rpc.url())
    }

    fn template(&self, extranonce_size: usize) -> Result<Template, String> {
        let entry = self.inner.current().ok_or("no template yet")?;
        if let Some(e) = self.inner.lock().error.clone() {
            return Err(e);
        }
        let g = &entry.gbt;
        let split = coinbase::build(
            g.height,
            g.coinbase_value,
            &self.inner.payout,
            g.witness_commitment.as_deref(),
            extranonce_size,
        )
        .map_err(|e| e.to_string())?;
        Ok(Template {
            id: entry.id,
            height: g.height,
            prev_hash: g.prev_hash,
            version: g.version,
            bits: g.bits,
            curtime: g.curtime.max(g.mintime),
            mintime: g.mintime,
            coinb1: split.coinb1,
            coinb2: split.coinb2,
            extranonce_size,
            merkle_branch: work::merkle_branch(&g.txids),
            tx_count: g.transactions.len(),
        })
    }

    fn wait_for_change(&self, since: &Template, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        loop {
            if st.error.is_some() || st.kept.back().is_some_and(|e| e.id != since.id) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.inner.changed.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn submit_block(&self, template: &Template, header: &BlockHeader, coinbase: &[u8]) -> Result<(), String> {
        let entry = self
            .entry(template.id)
            .ok_or_else(|| format!("template {} is no longer kept (more than {KEPT} newer ones)", template.id))?;
        let split = CoinbaseSplit {
            coinb1: template.coinb1.clone(),
            coinb2: template.coinb2.clone(),
            extranonce_size: template.extranonce_size,
            witness: entry.gbt.witness_commitment.is_some(),
        };
        let block = assemble_block(&entry.gbt, &split, header, coinbase)?;
        match self.inner.rpc.submitblock(&block) {
            Ok(None) => {
                tracing::info!(height = template.height, hash = %header.block_hash(), "block accepted");
                // The next template now, before the job server hears back: otherwise its refresh
                // finds the old one (the long poll answers a little later), and shares on the old
                // tip keep passing as current, each a block bitcoind calls "inconclusive".
                match self.inner.fetch(None) {
                    Ok(t) => {
                        self.inner.install(t);
                    }
                    Err(e) => tracing::warn!(error = %e, "no template after the block; the long poll will bring it"),
                }
                Ok(())
            }
            Ok(Some(reason)) => Err(reason),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::params::BitcoinNetwork;
    use crate::consensus::rules;
    use crate::primitives::{serialize, sha256d, Block, OutPoint, Transaction, TxIn, TxMerkleNode, TxOut, Txid};

    /// A template with one segwit spend and the commitment bitcoind would give for it
    /// (`GenerateCoinbaseCommitment`: sha256d(witness root with the coinbase's wtxid as zero ||
    /// the zero reserved value)).
    fn segwit_template() -> BlockTemplate {
        let tx = Transaction {
            version: 2,
            inputs: vec![TxIn {
                prevout: OutPoint { txid: Txid([9; 32]), vout: 1 },
                script_sig: vec![],
                sequence: 0xffff_fffd,
                witness: vec![vec![0x30; 71], vec![0x02; 33]],
            }],
            outputs: vec![TxOut {
                value: 12_345,
                script_pubkey: vec![0x00, 0x14].into_iter().chain([7; 20]).collect(),
            }],
            lock_time: 0,
        };
        let root = crate::sha256::merkle::root(&[[0; 32], tx.wtxid().0]).unwrap();
        let commitment = sha256d(&[&root[..], &[0u8; 32]].concat());
        BlockTemplate {
            height: 300,
            prev_hash: crate::primitives::BlockHash([5; 32]),
            version: 0x2000_0000,
            bits: crate::primitives::CompactTarget(0x207f_ffff),
            curtime: 1_700_000_000,
            mintime: 1_699_999_000,
            coinbase_value: 5_000_010_000,
            witness_commitment: Some([&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed][..], &commitment[..]].concat()),
            transactions: vec![serialize(&tx)],
            txids: vec![tx.txid().0],
            longpollid: None,
        }
    }

    #[test]
    fn an_assembled_block_passes_cores_rules() {
        let g = segwit_template();
        let split = coinbase::build(g.height, g.coinbase_value, &[0x51], g.witness_commitment.as_deref(), 8).unwrap();
        let cb = split.with_extranonce(&[0xee; 8]);
        let root = work::merkle_root(sha256d(&cb), &work::merkle_branch(&g.txids));
        let header = BlockHeader {
            version: g.version,
            prev_blockhash: g.prev_hash,
            merkle_root: TxMerkleNode(root),
            time: g.curtime,
            bits: g.bits,
            nonce: 0,
        };
        let bytes = assemble_block(&g, &split, &header, &cb).unwrap();
        let block = Block::from_bytes(&bytes).unwrap();
        assert_eq!(block.txdata.len(), 2);
        assert_eq!(serialize(&block.txdata[1]), g.transactions[0], "the template's transaction as given");
        let p = BitcoinNetwork::BitcoinRegtest.params();
        rules::merkle_root_is_valid(&block).unwrap();
        rules::coinbase_is_first_and_only(&block).unwrap();
        rules::coinbase_has_height(&block, g.height, &p).unwrap();
        rules::witness_commitment_is_valid(&block, g.height, &p).unwrap();
        rules::transaction_is_well_formed(&block.txdata[0], 0).unwrap();

        // Another extranonce's coinbase under this header, or a foreign coinbase, is refused.
        let other = split.with_extranonce(&[0xef; 8]);
        assert!(assemble_block(&g, &split, &header, &other).unwrap_err().contains("merkle root"));
        assert!(assemble_block(&g, &split, &header, &cb[1..]).is_err());
    }
}
