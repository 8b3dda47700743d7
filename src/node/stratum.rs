//! The powkit node as a Stratum template source ([`crate::stratum::JobSource`]) for `powkit node
//! --stratum ADDR`: the chain thread publishes each block template it builds (the tip, the
//! mempool's best transfers, the coinbase paying the node's miner account) into a [`NodeSource`];
//! the job server reads it split around the coinbase's extranonce (docs/CONSENSUS.md, "Encoding")
//! and hands solved blocks back to the chain thread, which accepts them as any block (stored,
//! connected, relayed to peers).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::Event;
use crate::ledger::block::LedgerBlock;
use crate::ledger::tx::LedgerTx;
use crate::primitives::BlockHeader;
use crate::stratum::job::{JobSource, Template};

/// Templates kept for late solutions.
const KEPT: usize = 8;

/// A template the chain thread built.
struct Published {
    id: u64,
    block: LedgerBlock,
    mintime: u32,
}

/// A solved block on its way to the chain thread, and where its verdict goes.
pub struct StratumBlock {
    /// The block.
    pub block: LedgerBlock,
    /// Ok when the chain accepted it (new or already known), else why not.
    pub reply: Sender<Result<(), String>>,
}

/// The chain thread's templates, shared with the job server.
pub struct NodeSource {
    templates: Mutex<VecDeque<Published>>,
    changed: Condvar,
    events: Sender<Event>,
}

impl NodeSource {
    /// A source that sends solved blocks to the chain thread over `events`.
    pub fn new(events: Sender<Event>) -> NodeSource {
        NodeSource { templates: Mutex::new(VecDeque::new()), changed: Condvar::new(), events }
    }

    /// Publishes a new template (the chain thread, on every new job); `mintime` is the median
    /// time past plus one.
    pub fn publish(&self, id: u64, block: LedgerBlock, mintime: u32) {
        let mut t = self.templates.lock().expect("stratum templates");
        t.push_back(Published { id, block, mintime });
        while t.len() > KEPT {
            t.pop_front();
        }
        self.changed.notify_all();
    }
}

/// `p`'s block as a Stratum template with `extranonce_size` bytes in the coinbase's extranonce.
fn split(p: &Published, extranonce_size: usize) -> Result<Template, String> {
    let Some(LedgerTx::Coinbase(cb)) = p.block.txs.first() else {
        return Err("the node's template has no coinbase".into());
    };
    let (coinb1, coinb2) = cb.stratum_split(extranonce_size)?;
    let others: Vec<[u8; 32]> = p.block.txs[1..].iter().map(|t| t.txid().0).collect();
    let h = &p.block.header;
    Ok(Template {
        id: p.id,
        height: cb.height,
        prev_hash: h.prev_blockhash,
        version: h.version,
        bits: h.bits,
        curtime: h.time,
        mintime: p.mintime,
        coinb1,
        coinb2,
        extranonce_size,
        merkle_branch: crate::stratum::work::merkle_branch(&others),
        tx_count: others.len(),
    })
}

impl JobSource for NodeSource {
    fn name(&self) -> String {
        "powkit node".into()
    }

    fn template(&self, extranonce_size: usize) -> Result<Template, String> {
        let t = self.templates.lock().expect("stratum templates");
        let p = t.back().ok_or("the node has no block template yet (it needs --miner-key)")?;
        split(p, extranonce_size)
    }

    fn wait_for_change(&self, since: &Template, timeout: Duration) -> bool {
        let t = self.templates.lock().expect("stratum templates");
        let (t, _) = self
            .changed
            .wait_timeout_while(t, timeout, |t| t.back().is_some_and(|p| p.id == since.id))
            .expect("stratum templates");
        t.back().is_some_and(|p| p.id != since.id)
    }

    fn submit_block(&self, template: &Template, header: &BlockHeader, coinbase: &[u8]) -> Result<(), String> {
        let mut block = {
            let t = self.templates.lock().expect("stratum templates");
            let p = t.iter().find(|p| p.id == template.id).ok_or("the template is no longer kept")?;
            p.block.clone()
        };
        let cb = LedgerTx::from_bytes(coinbase).map_err(|e| format!("the coinbase does not decode: {e}"))?;
        if !matches!(cb, LedgerTx::Coinbase(_)) {
            return Err("the coinbase is not a coinbase".into());
        }
        block.txs[0] = cb;
        block.header = *header;
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.events
            .send(Event::Stratum(Box::new(StratumBlock { block, reply: tx })))
            .map_err(|_| "the node is stopping".to_string())?;
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| "the node gave no verdict".to_string())?
    }
}
