#!/usr/bin/env bash
# Initial sync over P2P on loopback: node A holds a generated powkit-regtest chain (imported), node B
# starts empty with --peer A; prints the seconds until B's tip and state root equal A's, and the
# rates. Usage: tools/sync-bench.sh [BLOCKS] [TXS_PER_BLOCK]   (default 300 x 1000)
set -euo pipefail
BLOCKS=${1:-300}
TXS=${2:-1000}
P=${POWKIT:-target/release/powkit}
D=$(mktemp -d /tmp/powkit-sync-XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$D"' EXIT
$P chain generate --chain powkit-regtest --blocks "$BLOCKS" --txs-per-block "$TXS" --out "$D/chain.blk" >/dev/null
$P chain import --chain powkit-regtest --datadir "$D/a" "$D/chain.blk" >/dev/null
$P node --chain powkit-regtest --datadir "$D/a" --listen 127.0.0.1:0 --rpc 127.0.0.1:0 2>"$D/a.log" &
until [ -s "$D/a/node.json" ]; do sleep 0.05; done
A_P2P=$(python3 -c "import json;print(json.load(open('$D/a/node.json'))['p2p'])")
A_RPC=$(python3 -c "import json;print(json.load(open('$D/a/node.json'))['rpc'])")
WANT=$($P rpc --datadir "$D/a" getblockchaininfo | python3 -c "import json,sys;v=json.load(sys.stdin);print(v['bestblockhash'],v['state_root'])")
NTX=$($P rpc --datadir "$D/a" getblockchaininfo | python3 -c "import json,sys;v=json.load(sys.stdin);print(v['transactions'])")
mkdir -p "$D/b"
T0=$(date +%s.%N)
$P node --chain powkit-regtest --datadir "$D/b" --listen 127.0.0.1:0 --rpc 127.0.0.1:0 --peer "$A_P2P" 2>"$D/b.log" &
until [ -s "$D/b/node.json" ]; do sleep 0.05; done
B_RPC=$(python3 -c "import json;print(json.load(open('$D/b/node.json'))['rpc'])")
while true; do
  GOT=$($P rpc --datadir "$D/b" getblockchaininfo | python3 -c "import json,sys;v=json.load(sys.stdin);print(v['bestblockhash'],v['state_root'])")
  [ "$GOT" = "$WANT" ] && break
  sleep 0.05
done
T1=$(date +%s.%N)
python3 -c "
t=$T1-$T0; b=$BLOCKS-1; n=$NTX
print(f'synced {b} blocks ({n} transactions, coinbases included) in {t:.2f} s: {b/t:.0f} blocks/s, {n/t:.0f} transactions/s (tip and state root equal)')"
if [ -n "${SHOW_LOG:-}" ]; then grep -v DEBUG "$D/b.log"; fi
