//! The messages of the powkit P2P protocol (docs/PROTOCOL.md, "Messages") and their payloads.
//! Every count is a canonical CompactSize with its own limit, checked before allocating; a payload
//! must end exactly where its message does.

use crate::ledger::block::LedgerBlock;
use crate::ledger::tx::LedgerTx;
use crate::primitives::encoding::{write_compact_size, Decodable, DecodeError, Encodable, Reader};
use crate::primitives::{BlockHash, BlockHeader};

/// The protocol version this code speaks (docs/PROTOCOL.md, "Handshake"). 2: `version` carries
/// `services`, and feature messages (`sendheaders`) may come between `version` and `verack`.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest protocol version a node talks to: a peer announcing less is disconnected (not
/// banned). Version 1 decoders refuse the longer version 2 `version`, so the two cannot talk.
pub const MIN_PROTOCOL_VERSION: u32 = 2;
/// `services` bit: the sender stores and serves full blocks (Bitcoin Core's `NODE_NETWORK`).
pub const NODE_NETWORK: u64 = 1;
/// Most block locator hashes in `getheaders`.
pub const MAX_LOCATOR: u64 = 64;
/// Every message command this protocol version knows ([`Message::command`]'s values).
pub const COMMANDS: [&str; 12] = [
    "version",
    "verack",
    "ping",
    "pong",
    "getheaders",
    "headers",
    "inv",
    "getdata",
    "notfound",
    "block",
    "tx",
    "sendheaders",
];
/// Most headers in one `headers` message.
pub const MAX_HEADERS: u64 = 2000;
/// Most items in one `inv`, `getdata` or `notfound`.
pub const MAX_INV: u64 = 1000;
/// Longest user agent, bytes.
pub const MAX_USER_AGENT: u64 = 64;

/// What an inventory item names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvKind {
    /// A block, by its header hash.
    Block,
    /// A transaction, by its txid.
    Tx,
}

/// One inventory item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Inv {
    /// Block or transaction.
    pub kind: InvKind,
    /// Its hash.
    pub hash: [u8; 32],
}

/// The handshake's first message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// The sender's chain id (a mismatch ends the handshake).
    pub chain_id: u32,
    /// The sender's genesis hash (a mismatch ends the handshake).
    pub genesis: BlockHash,
    /// The sender's best height.
    pub height: u32,
    /// Random per node: a node that receives its own nonce has connected to itself.
    pub nonce: u64,
    /// The port the sender listens on (0: none).
    pub listen_port: u16,
    /// Free text, at most 64 bytes of UTF-8.
    pub user_agent: String,
    /// Feature bits ([`NODE_NETWORK`]; unknown bits are ignored). Protocol 2 on; 0 when absent.
    pub services: u64,
}

/// A protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `version`.
    Version(Version),
    /// `verack`: the handshake is accepted.
    Verack,
    /// `ping` with a nonce.
    Ping(u64),
    /// `pong`, echoing the ping's nonce.
    Pong(u64),
    /// `getheaders`: headers after the first locator hash the peer knows, up to `stop` (zero: as
    /// many as fit).
    GetHeaders {
        /// Hashes from the tip back, spaced exponentially.
        locator: Vec<BlockHash>,
        /// Last header wanted, or zero.
        stop: BlockHash,
    },
    /// `headers`: consecutive headers.
    Headers(Vec<BlockHeader>),
    /// `inv`: announcements.
    Inv(Vec<Inv>),
    /// `getdata`: requests.
    GetData(Vec<Inv>),
    /// `notfound`: requested items the sender does not have.
    NotFound(Vec<Inv>),
    /// `block`.
    Block(Box<LedgerBlock>),
    /// `tx`.
    Tx(LedgerTx),
    /// `sendheaders` (BIP 130): the sender prefers new blocks announced with `headers` (when it has
    /// their parent) over `inv`. A feature message: sent between `version` and `verack`.
    SendHeaders,
}

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A command this protocol does not have.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// The payload does not decode.
    #[error("{command}: {err}")]
    Decode {
        /// The command.
        command: &'static str,
        /// Where and why.
        err: DecodeError,
    },
}

fn put_invs(out: &mut Vec<u8>, items: &[Inv]) {
    write_compact_size(out, items.len() as u64);
    for i in items {
        i.consensus_encode(out);
    }
}

impl Encodable for Inv {
    /// Kind byte (1 block, 2 tx), then the 32-byte hash.
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.push(match self.kind {
            InvKind::Block => 1,
            InvKind::Tx => 2,
        });
        out.extend_from_slice(&self.hash);
    }
}

impl Decodable for Inv {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Inv, DecodeError> {
        let at = r.offset();
        let kind = match r.u8("inventory kind")? {
            1 => InvKind::Block,
            2 => InvKind::Tx,
            _ => {
                return Err(DecodeError::Invalid { offset: at, what: "inventory kind", why: "not 1 (block) or 2 (tx)" })
            }
        };
        Ok(Inv { kind, hash: r.array("inventory hash")? })
    }
}

impl Encodable for Version {
    /// Protocol, chain id, genesis hash, height, nonce, listen port (little-endian), then the user
    /// agent as CompactSize-prefixed bytes (cut to [`MAX_USER_AGENT`]), then services u64 from
    /// protocol 2 on (a protocol 1 `version` ends at the user agent, as its decoder expects).
    fn consensus_encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.protocol.to_le_bytes());
        out.extend_from_slice(&self.chain_id.to_le_bytes());
        self.genesis.consensus_encode(out);
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.listen_port.to_le_bytes());
        let ua = &self.user_agent.as_bytes()[..self.user_agent.len().min(MAX_USER_AGENT as usize)];
        write_compact_size(out, ua.len() as u64);
        out.extend_from_slice(ua);
        if self.protocol >= 2 {
            out.extend_from_slice(&self.services.to_le_bytes());
        }
    }
}

impl Decodable for Version {
    fn consensus_decode(r: &mut Reader<'_>) -> Result<Version, DecodeError> {
        let protocol = r.u32_le("protocol version")?;
        let chain_id = r.u32_le("chain id")?;
        let genesis = BlockHash(r.array("genesis hash")?);
        let height = r.u32_le("height")?;
        let nonce = r.u64_le("nonce")?;
        let listen_port = u16::from_le_bytes(r.array("listen port")?);
        let at = r.offset();
        let n = count(r, "user agent length", MAX_USER_AGENT)?;
        let ua = r.take(n, "user agent")?;
        let user_agent = String::from_utf8(ua.to_vec()).map_err(|_| DecodeError::Invalid {
            offset: at,
            what: "user agent",
            why: "not UTF-8",
        })?;
        // Protocol 2 appended `services`; a version 1 payload ends before it. Fields a later
        // version appends after it are skipped, so `version` can grow without breaking anyone.
        if protocol < 2 {
            return Ok(Version { protocol, chain_id, genesis, height, nonce, listen_port, user_agent, services: 0 });
        }
        let services = r.u64_le("services")?;
        let _future_fields = r.take(r.remaining(), "later version fields")?;
        Ok(Version { protocol, chain_id, genesis, height, nonce, listen_port, user_agent, services })
    }
}

fn count(r: &mut Reader<'_>, what: &'static str, max: u64) -> Result<usize, DecodeError> {
    let at = r.offset();
    let n = r.compact_size(what)?;
    if n > max {
        return Err(DecodeError::TooLong { offset: at, what, len: n, max });
    }
    Ok(n as usize)
}

fn get_invs(r: &mut Reader<'_>) -> Result<Vec<Inv>, DecodeError> {
    let n = count(r, "inventory count", MAX_INV)?;
    (0..n).map(|_| Inv::consensus_decode(r)).collect()
}

impl Message {
    /// The command name on the wire.
    pub fn command(&self) -> &'static str {
        match self {
            Message::Version(_) => "version",
            Message::Verack => "verack",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::GetHeaders { .. } => "getheaders",
            Message::Headers(_) => "headers",
            Message::Inv(_) => "inv",
            Message::GetData(_) => "getdata",
            Message::NotFound(_) => "notfound",
            Message::Block(_) => "block",
            Message::Tx(_) => "tx",
            Message::SendHeaders => "sendheaders",
        }
    }

    /// The payload.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Message::Version(v) => v.consensus_encode(&mut out),
            Message::Verack | Message::SendHeaders => {}
            Message::Ping(n) | Message::Pong(n) => out.extend_from_slice(&n.to_le_bytes()),
            Message::GetHeaders { locator, stop } => {
                write_compact_size(&mut out, locator.len() as u64);
                for h in locator {
                    h.consensus_encode(&mut out);
                }
                stop.consensus_encode(&mut out);
            }
            Message::Headers(hs) => {
                write_compact_size(&mut out, hs.len() as u64);
                for h in hs {
                    h.consensus_encode(&mut out);
                }
            }
            Message::Inv(i) | Message::GetData(i) | Message::NotFound(i) => put_invs(&mut out, i),
            Message::Block(b) => {
                out.reserve_exact(b.encoded_len());
                b.consensus_encode(&mut out);
            }
            Message::Tx(t) => t.consensus_encode(&mut out),
        }
        out
    }

    /// Decodes the payload of `command`.
    pub fn decode(command: &str, payload: &[u8]) -> Result<Message, MessageError> {
        let name: &'static str = match command {
            "version" => "version",
            "verack" => "verack",
            "ping" => "ping",
            "pong" => "pong",
            "getheaders" => "getheaders",
            "headers" => "headers",
            "inv" => "inv",
            "getdata" => "getdata",
            "notfound" => "notfound",
            "block" => "block",
            "tx" => "tx",
            "sendheaders" => "sendheaders",
            other => return Err(MessageError::UnknownCommand(other.to_string())),
        };
        let err = |err| MessageError::Decode { command: name, err };
        if name == "block" {
            return LedgerBlock::from_bytes(payload).map(|b| Message::Block(Box::new(b))).map_err(err);
        }
        if name == "tx" {
            return LedgerTx::from_bytes(payload).map(Message::Tx).map_err(err);
        }
        let mut r = Reader::new(payload);
        let m = Self::decode_fields(name, &mut r).map_err(err)?;
        if r.remaining() > 0 {
            return Err(err(DecodeError::TrailingBytes { offset: r.offset(), extra: r.remaining() }));
        }
        Ok(m)
    }

    fn decode_fields(name: &str, r: &mut Reader<'_>) -> Result<Message, DecodeError> {
        Ok(match name {
            "version" => Message::Version(Version::consensus_decode(r)?),
            "verack" => Message::Verack,
            "sendheaders" => Message::SendHeaders,
            "ping" => Message::Ping(r.u64_le("ping nonce")?),
            "pong" => Message::Pong(r.u64_le("pong nonce")?),
            "getheaders" => {
                let n = count(r, "locator count", MAX_LOCATOR)?;
                let locator = (0..n).map(|_| r.array("locator hash").map(BlockHash)).collect::<Result<_, _>>()?;
                Message::GetHeaders { locator, stop: BlockHash(r.array("stop hash")?) }
            }
            "headers" => {
                let n = count(r, "header count", MAX_HEADERS)?;
                Message::Headers(
                    (0..n)
                        .map(|_| r.array::<80>("header").map(|b| BlockHeader::from_array(&b)))
                        .collect::<Result<_, _>>()?,
                )
            }
            "inv" => Message::Inv(get_invs(r)?),
            "getdata" => Message::GetData(get_invs(r)?),
            _ => Message::NotFound(get_invs(r)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::LedgerNetwork;

    fn samples() -> Vec<Message> {
        let g = LedgerNetwork::PowkitRegtest.params().genesis.clone();
        vec![
            Message::Version(Version {
                protocol: PROTOCOL_VERSION,
                chain_id: 7,
                genesis: g.header.block_hash(),
                height: 12,
                nonce: 99,
                listen_port: 8433,
                user_agent: "powkit/0.1".into(),
                services: NODE_NETWORK,
            }),
            Message::Verack,
            Message::Ping(5),
            Message::Pong(5),
            Message::GetHeaders { locator: vec![g.header.block_hash(); 3], stop: BlockHash::ZERO },
            Message::Headers(vec![g.header; 5]),
            Message::Inv(vec![Inv { kind: InvKind::Block, hash: [1; 32] }, Inv { kind: InvKind::Tx, hash: [2; 32] }]),
            Message::GetData(vec![Inv { kind: InvKind::Block, hash: [3; 32] }]),
            Message::NotFound(vec![]),
            Message::SendHeaders,
            Message::Tx(g.txs[0]),
            Message::Block(Box::new(g)),
        ]
    }

    #[test]
    fn every_message_round_trips_through_a_frame() {
        let magic = LedgerNetwork::PowkitRegtest.params().magic;
        for m in samples() {
            let bytes = super::super::frame::encode_frame(magic, m.command(), &m.payload());
            let f = super::super::frame::read_frame(&mut &bytes[..], magic).unwrap();
            assert_eq!(Message::decode(&f.command, &f.payload), Ok(m));
        }
    }

    #[test]
    fn bad_payloads_are_named_and_limits_hold() {
        assert_eq!(Message::decode("getaddr", &[]), Err(MessageError::UnknownCommand("getaddr".into())));
        for m in samples() {
            let p = m.payload();
            let mut long = p.clone();
            long.push(0);
            // `version` alone may grow: later protocols append fields that older nodes skip.
            let grows = m.command() == "version";
            assert_eq!(Message::decode(m.command(), &long).is_err(), !grows, "{} with a trailing byte", m.command());
            if !p.is_empty() {
                assert!(Message::decode(m.command(), &p[..p.len() - 1]).is_err(), "{} truncated", m.command());
            }
        }
        // A count above its limit is refused before anything is read or allocated.
        let mut p = Vec::new();
        write_compact_size(&mut p, MAX_HEADERS + 1);
        assert!(matches!(
            Message::decode("headers", &p),
            Err(MessageError::Decode { err: DecodeError::TooLong { .. }, .. })
        ));
        let mut p = Vec::new();
        write_compact_size(&mut p, MAX_INV + 1);
        assert!(Message::decode("inv", &p).is_err());
        assert!(Message::decode("getdata", &[1, 9]).is_err());
    }

    #[test]
    fn version_accepts_protocol_1_payloads_and_skips_later_fields() {
        let v = match &samples()[0] {
            Message::Version(v) => v.clone(),
            _ => unreachable!(),
        };
        let p = Message::Version(v.clone()).payload();
        // Protocol 1: no services.
        let mut old = p[..p.len() - 8].to_vec();
        old[..4].copy_from_slice(&1u32.to_le_bytes());
        let want = Version { protocol: 1, services: 0, ..v.clone() };
        assert_eq!(Message::decode("version", &old).unwrap(), Message::Version(want));
        // Protocol 2 without its services is truncated.
        assert!(Message::decode("version", &p[..p.len() - 8]).is_err());
        // A later protocol's appended fields are skipped.
        let mut longer = p.clone();
        longer.extend_from_slice(&[9; 20]);
        assert_eq!(Message::decode("version", &longer).unwrap(), Message::Version(v));
    }

    #[test]
    fn random_payloads_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let cmds = COMMANDS;
        for _ in 0..20_000 {
            let n = rng.gen_range(0..200);
            let p: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            let _ = Message::decode(cmds[rng.gen_range(0..cmds.len())], &p);
        }
    }
}
