//! What each fuzz target checks, one function per target (named as the target), shared by the
//! cargo-fuzz targets (fuzz/fuzz_targets/*.rs, nightly) and the regression test that replays
//! every saved crash on stable (tests/fuzz_regressions.rs includes this file).
//!
//! Every function takes untrusted bytes and must return without panicking, whatever they are:
//! a decoder answers bad input with an error, never a panic, and never allocates more than its
//! limits allow. Where a decoder succeeds, its canonical encoding is checked too: decoding then
//! encoding gives back exactly the bytes consumed (so no two encodings decode to one value, the
//! malleability that makes txids and block hashes ambiguous).

use std::io::{BufReader, Cursor};
use std::path::PathBuf;

use powkit::ledger::{LedgerBlock, LedgerTx};
use powkit::net::frame::{encode_frame, read_frame, read_frame_limited};
use powkit::net::message::{self, Message};
use powkit::node::rpc::{parse_http_request, parse_json_request, HttpError, JsonRequest, MAX_BATCH, MAX_BODY};
use powkit::primitives::encoding::{serialize, Decodable, Encodable, Reader};
use powkit::primitives::{Block, Transaction};
use powkit::validate::read::{self, Format, Kind};

/// Bitcoin mainnet's magic (blk-file records).
const BITCOIN_MAGIC: [u8; 4] = [0xf9, 0xbe, 0xb4, 0xd9];
/// powkit-regtest's magic (P2P frames).
const POWKIT_MAGIC: [u8; 4] = [0x70, 0x6b, 0x77, 0xff];

/// The commands `Message::decode` knows (`net::message::COMMANDS`), and one it does not.
const COMMANDS: [&str; 13] = {
    let mut c = ["getaddr"; 13];
    let mut i = 0;
    while i < message::COMMANDS.len() {
        c[i] = message::COMMANDS[i];
        i += 1;
    }
    c
};

/// Decodes one `T` from the front of `data`; when that succeeds, its encoding must be exactly the
/// bytes consumed. Returns the value and how many bytes it used.
fn decode_prefix<T: Decodable + Encodable>(data: &[u8], what: &str) -> Option<(T, usize)> {
    let mut r = Reader::new(data);
    let v = T::consensus_decode(&mut r).ok()?;
    let used = r.offset();
    assert!(used <= data.len(), "{what}: consumed {used} of {} bytes", data.len());
    assert!(serialize(&v) == data[..used], "{what}: decoding then encoding does not give back the {used} bytes read");
    Some((v, used))
}

/// A Bitcoin block (header, transactions with and without witnesses): round trip, hashes, sizes.
pub fn bitcoin_block(data: &[u8]) {
    if let Some((b, used)) = decode_prefix::<Block>(data, "bitcoin block") {
        let _ = b.header.block_hash();
        assert_eq!(b.total_size(), used);
        for tx in &b.txdata {
            let _ = (tx.txid(), tx.wtxid(), tx.weight(), tx.is_coinbase());
            assert!(tx.base_size() <= tx.total_size());
        }
        assert!(Block::from_bytes(&data[..used]).is_ok());
    }
    if data.len() >= 80 {
        let _ = powkit::primitives::BlockHeader::from_bytes(&data[..80]).map(|h| h.block_hash());
    }
}

/// A Bitcoin transaction: round trip (the legacy and the segwit encodings), txid, wtxid, weight.
pub fn bitcoin_tx(data: &[u8]) {
    if let Some((tx, used)) = decode_prefix::<Transaction>(data, "bitcoin transaction") {
        assert_eq!(tx.total_size(), used);
        let _ = (tx.txid(), tx.wtxid(), tx.weight());
        // The legacy encoding (no witnesses) decodes to the transaction without them.
        let legacy = tx.legacy_bytes();
        assert_eq!(tx.base_size(), legacy.len());
        if let Ok(stripped) = powkit::primitives::deserialize::<Transaction>(&legacy) {
            assert_eq!(stripped.txid(), tx.txid());
        }
    }
}

/// A powkit block: round trip, size accounting, txids and the merkle root.
pub fn ledger_block(data: &[u8]) {
    if let Some((b, used)) = decode_prefix::<LedgerBlock>(data, "powkit block") {
        assert_eq!(b.encoded_len(), used);
        assert_eq!(b.to_bytes(), &data[..used]);
        let _ = (b.txids(), b.merkle_root(), b.header.block_hash());
        assert_eq!(LedgerBlock::from_bytes(&data[..used]).as_ref(), Ok(&b));
    }
}

/// A powkit transaction: round trip, txid, signing hash.
pub fn ledger_tx(data: &[u8]) {
    if let Some((tx, used)) = decode_prefix::<LedgerTx>(data, "powkit transaction") {
        assert_eq!(tx.to_bytes(), &data[..used]);
        let _ = tx.txid();
        if let LedgerTx::Transfer(t) = tx {
            let _ = t.signing_hash();
        }
    }
}

/// A stream of P2P frames (`net::frame::read_frame`, at most 64): each frame read re-encodes to
/// the bytes it came from, and its payload goes to `Message::decode`.
pub fn p2p_frame(data: &[u8]) {
    let mut r = data;
    for _ in 0..64 {
        let before = r.len();
        let Ok(f) = read_frame(&mut r, POWKIT_MAGIC) else { return };
        let used = before - r.len();
        let start = data.len() - before;
        assert!(encode_frame(POWKIT_MAGIC, &f.command, &f.payload) == data[start..start + used], "frame round trip");
        p2p_payload(&f.command, &f.payload);
    }
    // The small-frame reader a node uses before the handshake (4 KiB) agrees with `read_frame`
    // on frames within its limit and refuses the rest without reading their payload.
    let mut a = data;
    let mut b = data;
    match (read_frame(&mut a, POWKIT_MAGIC), read_frame_limited(&mut b, POWKIT_MAGIC, 4096)) {
        (Ok(x), Ok(y)) => {
            assert!(x.command == y.command && x.payload == y.payload && a.len() == b.len(), "limited reader disagrees")
        }
        (Ok(x), Err(_)) => assert!(x.payload.len() > 4096, "limited reader refused a {}-byte payload", x.payload.len()),
        (Err(_), Ok(y)) => panic!("limited reader accepted a {}-byte frame read_frame refused", y.payload.len()),
        (Err(_), Err(_)) => {}
    }
}

/// One P2P message: the first byte picks the command (`COMMANDS`), the rest is the payload.
pub fn p2p_message(data: &[u8]) {
    let Some((&pick, payload)) = data.split_first() else { return };
    p2p_payload(COMMANDS[pick as usize % COMMANDS.len()], payload);
}

/// `Message::decode`; a message decoded has the command it was decoded as, and its payload is
/// exactly the one it was decoded from (one encoding per message).
///
/// `version` is the one extensible message (docs/PROTOCOL.md, "Handshake"): fields a later protocol
/// appends are skipped, and a protocol 1 payload ends before `services`. For it the property is
/// that the encoding decodes to the same value and, from protocol 2 on, is a prefix of the payload.
fn p2p_payload(command: &str, payload: &[u8]) {
    if let Ok(m) = Message::decode(command, payload) {
        assert_eq!(m.command(), command);
        let again = m.payload();
        if let Message::Version(v) = &m {
            let back = Message::decode(command, &again).expect("a decoded version encodes to a decodable one");
            assert!(back == m, "version: the encoding decodes to another value");
            if v.protocol >= 2 {
                assert!(payload.starts_with(&again), "version: the encoding is not a prefix of the payload");
            }
        } else {
            assert!(again == payload, "{command}: decoding then encoding does not give back the payload");
        }
    }
}

/// Records of blk-file input (the `validate` reader over bytes in memory, Bitcoin mainnet
/// magic), at most 64; each record decoded as a Bitcoin block and as a powkit block.
pub fn blk_records(data: &[u8]) {
    let input = Box::new(BufReader::with_capacity(64, Cursor::new(data.to_vec())));
    let mut r = read::Reader::from_reader(PathBuf::from("fuzz.blk"), input, Format::Blk, BITCOIN_MAGIC);
    for _ in 0..64 {
        let Ok(Some(rec)) = r.next_record() else { return };
        assert_eq!(rec.kind, Kind::Block);
        assert!((80..=read::MAX_BLOCK_BYTES).contains(&rec.bytes.len()));
        let _ = Block::from_bytes(&rec.bytes);
        let _ = LedgerBlock::from_bytes(&rec.bytes);
        assert_eq!(rec.headers().count(), 1);
    }
}

/// Records of hex input (the `validate` reader, one block or header per line), at most 64; each
/// decoded as a Bitcoin block or header.
pub fn hex_lines(data: &[u8]) {
    let input = Box::new(BufReader::with_capacity(64, Cursor::new(data.to_vec())));
    let mut r = read::Reader::from_reader(PathBuf::from("fuzz.hex"), input, Format::Hex, BITCOIN_MAGIC);
    for _ in 0..64 {
        let Ok(Some(rec)) = r.next_record() else { return };
        assert!(rec.bytes.len() >= 80);
        assert_eq!(rec.kind == Kind::Header, rec.bytes.len() == 80);
        if rec.kind == Kind::Block {
            let _ = Block::from_bytes(&rec.bytes);
        }
    }
}

/// JSON-lines signature records (`sigs::file::verify_reader`, as `powkit verify-sigs` reads a
/// file; the first byte picks the batch size 1..=8): a file that verifies has one verdict per line.
pub fn json_lines(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else { return };
    let batch = 1 + pick as usize % 8;
    let mut input = BufReader::with_capacity(64, text);
    if let Ok(rep) =
        powkit::sigs::file::verify_reader("fuzz.jsonl", &mut input, &powkit::sigs::CpuSigVerifier { batch })
    {
        let lines = text.split(|&b| b == b'\n').count() - usize::from(text.is_empty() || text.ends_with(b"\n"));
        assert_eq!(rep.total, lines);
        assert_eq!(rep.valid + rep.invalid, rep.total);
        assert!(rep.invalid_indexes.windows(2).all(|w| w[0] < w[1]));
        assert!(rep.invalid_indexes.iter().all(|&i| i < rep.total));
    }
}

/// A target's check: untrusted bytes in, a panic only for a bug.
pub type Check = fn(&[u8]);

/// Every target by name (tools/fuzz.sh's list; `rpc_request` joins once it is enabled).
pub const TARGETS: [(&str, Check); 10] = [
    ("bitcoin_block", bitcoin_block),
    ("bitcoin_tx", bitcoin_tx),
    ("ledger_block", ledger_block),
    ("ledger_tx", ledger_tx),
    ("p2p_frame", p2p_frame),
    ("p2p_message", p2p_message),
    ("blk_records", blk_records),
    ("hex_lines", hex_lines),
    ("json_lines", json_lines),
    ("rpc_request", rpc_request),
];

/// A JSON-RPC request as the node's RPC server reads it: the first byte picks HTTP framing
/// (`parse_http_request`: request line, headers, `Content-Length`, body; at most `MAX_BODY`
/// bytes of body) or the JSON-RPC body (`parse_json_request`: one call or a batch of at most
/// `MAX_BATCH`). Any input gives a request or an error, never a panic; a parsed request keeps
/// within the limits.
pub fn rpc_request(data: &[u8]) {
    let Some((&pick, input)) = data.split_first() else { return };
    if pick % 2 == 0 {
        match parse_http_request(input) {
            Ok(r) => {
                assert!(r.body.len() <= MAX_BODY, "body of {} bytes accepted", r.body.len());
                assert!(r.body.len() <= input.len(), "body longer than the input");
            }
            Err(HttpError::Invalid { status, .. }) => assert!((400..600).contains(&status), "status {status}"),
            Err(HttpError::Incomplete { .. }) => {}
        }
    } else if let Ok(JsonRequest::Batch(calls)) = parse_json_request(input) {
        assert!(!calls.is_empty() && calls.len() <= MAX_BATCH, "batch of {} calls accepted", calls.len());
    }
}
