#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/) from real data: Bitcoin mainnet
blocks from ../shared/data (btcd's test data, public), a powkit-regtest chain made by
`powkit chain generate`, the Ed25519 speccheck cases. Small inputs only (the seeds are committed).

usage: fuzz/make_seeds.py SHARED_DATA_DIR LEDGER_BLK   (LEDGER_BLK: powkit chain generate
       --chain powkit-regtest --blocks 4 --txs-per-block 2 --out LEDGER_BLK)
"""
import hashlib, json, os, struct, sys

data_dir, ledger_blk = sys.argv[1], sys.argv[2]
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def put(target, name, b):
    d = os.path.join(out_dir, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(b)


def records(path):
    b = open(path, "rb").read()
    i, out = 0, []
    while i + 8 <= len(b):
        if b[i] == 0:
            i += 1
            continue
        n = struct.unpack_from("<I", b, i + 4)[0]
        out.append(b[i + 8:i + 8 + n])
        i += 8 + n
    return out


def compact(b, i):
    v = b[i]
    if v < 0xfd:
        return v, i + 1
    w = {0xfd: 2, 0xfe: 4, 0xff: 8}[v]
    return int.from_bytes(b[i + 1:i + 1 + w], "little"), i + 1 + w


def tx_end(b, i):
    """The end offset of the Bitcoin transaction starting at i (segwit or legacy)."""
    i += 4
    segwit = b[i] == 0 and b[i + 1] == 1
    if segwit:
        i += 2
    n_in, i = compact(b, i)
    for _ in range(n_in):
        i += 36
        n, i = compact(b, i)
        i += n + 4
    n_out, i = compact(b, i)
    for _ in range(n_out):
        i += 8
        n, i = compact(b, i)
        i += n
    if segwit:
        for _ in range(n_in):
            items, i = compact(b, i)
            for _ in range(items):
                n, i = compact(b, i)
                i += n
    return i + 4


def txs(block):
    n, i = compact(block, 80)
    out = []
    for _ in range(n):
        j = tx_end(block, i)
        out.append(block[i:j])
        i = j
    return out


def sha256d(b):
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def frame(magic, cmd, payload):
    return magic + cmd.encode().ljust(12, b"\0") + struct.pack("<I", len(payload)) + sha256d(payload)[:4] + payload


main = records(os.path.join(data_dir, "bitcoin/mainnet-000000-000255.blk"))
seg = records(os.path.join(data_dir, "bitcoin/single-blocks/574200.blk"))[0]
ledger = records(ledger_blk)

# Bitcoin blocks: genesis, block 170 (the first transfer between people), a small block of
# segwit transactions made from block 574,200's header, coinbase and two segwit transactions.
seg_txs = txs(seg)
segwit = [t for t in seg_txs if t[4:6] == b"\0\1"][:2]
small_seg = seg[:80] + bytes([1 + len(segwit)]) + seg_txs[0] + b"".join(segwit)
for h in (0, 1, 170):
    put("bitcoin_block", f"mainnet-{h}", main[h])
put("bitcoin_block", "segwit-small", small_seg)
for n, t in enumerate(txs(main[170]) + seg_txs[:1] + segwit + [t for t in seg_txs if t[4:6] != b"\0\1"][1:3]):
    put("bitcoin_tx", f"tx-{n}", t)

# powkit blocks and transactions (coinbase and transfers).
for n, b in enumerate(ledger):
    put("ledger_block", f"regtest-{n}", b)
ltx = [b[81:] for b in ledger]  # one-byte count, then the transactions (fixed sizes)
put("ledger_tx", "coinbase", ledger[0][81:81 + 1 + 4 + 32 + 8 + 32])
last = ledger[-1]
put("ledger_tx", "transfer", last[81 + 77:81 + 77 + 1 + 4 + 32 + 32 + 24 + 64])

# P2P messages: each command with a typical payload; frames of them (powkit-regtest magic).
magic = bytes([0x70, 0x6B, 0x77, 0xFF])
genesis_hash = sha256d(ledger[0][:80])
version = struct.pack("<II", 1, 0x706F77FF) + genesis_hash + struct.pack("<IQH", 3, 42, 18633) + bytes([10]) + b"powkit/0.1"
messages = {
    "version": version,
    "verack": b"",
    "ping": struct.pack("<Q", 7),
    "pong": struct.pack("<Q", 7),
    "getheaders": bytes([2]) + genesis_hash + sha256d(ledger[1][:80]) + bytes(32),
    "headers": bytes([2]) + ledger[0][:80] + ledger[1][:80],
    "inv": bytes([2, 1]) + genesis_hash + bytes([2]) + sha256d(ledger[1][81:81 + 77]),
    "getdata": bytes([1, 1]) + genesis_hash,
    "notfound": bytes([0]),
    "block": ledger[-1],
    "tx": last[81 + 77:81 + 77 + 157],
}
commands = ["version", "verack", "ping", "pong", "getheaders", "headers", "inv", "getdata", "notfound", "block", "tx"]
stream = b""
for i, c in enumerate(commands):
    put("p2p_message", c, bytes([i]) + messages[c])
    put("p2p_frame", c, frame(magic, c, messages[c]))
    stream += frame(magic, c, messages[c])
put("p2p_frame", "all-in-one-stream", stream)

# blk records: the first blocks of mainnet with Bitcoin Core's zero padding, and the shared files
# with junk and another network's magic.
fr = lambda b: bytes.fromhex("f9beb4d9") + struct.pack("<I", len(b)) + b
put("blk_records", "mainnet-0-3-padded", fr(main[0]) + fr(main[1]) + bytes(16) + fr(main[2]) + fr(main[3]) + bytes(64))
for f in ("small-junk-between.blk", "regtest-later-sibling-wins.blk"):
    put("blk_records", f, open(os.path.join(data_dir, "realworld", f), "rb").read())

# Hex lines: a comment, a header, blocks, a blank line, CRLF endings.
put("hex_lines", "header-and-blocks",
    ("# genesis header, then blocks 1 and 170\n" + main[0][:80].hex() + "\n\n" + main[1].hex() + "\r\n" + main[170].hex() + "\n").encode())

# JSON lines: the speccheck cases (first byte: the batch size pick).
cases = json.load(open(os.path.join(data_dir, "ed25519/speccheck-cases.json")))
lines = "".join(json.dumps({"pubkey": c["pub_key"], "signature": c["signature"], "message": c["message"]}) + "\n" for c in cases)
put("json_lines", "speccheck-batch4", b"\x03" + lines.encode())
put("json_lines", "speccheck-batch1-crlf", b"\x00" + lines.replace("\n", "\r\n").encode())
