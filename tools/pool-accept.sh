#!/usr/bin/env bash
# Share acceptance of `powkit mine --pool` against powkit's own Stratum servers (issue 14's bar: at
# least 99% of shares accepted over 2 minutes or more, rejections only stale at job switches, and the
# hash rate implied by the accepted shares within 15% of the local rate at one share a second or more).
#
#   tools/pool-accept.sh SERVER BACKEND [SECONDS=120] [DIFFICULTY] [THREADS=1]
#
#   SERVER   node: `powkit node --stratum` on powkit-regtest (blocks extend the node's chain)
#            pool: `powkit pool --bitcoind` on a regtest bitcoind (blocks go to bitcoind's submitblock)
#   BACKEND  cpu or gpu (`--backend gpu --gpu-allow-software`: lavapipe where there is no GPU)
#   DIFFICULTY  the server's starting share difficulty (variable difficulty takes it from there, aiming
#               at one share per SHARE_INTERVAL seconds, default 0.25: four a second, so that the
#               implied rate of 2 minutes rests on about 480 shares, a spread of about 5%)
#
# Needs target/release/powkit; pool mode needs bitcoind (BITCOIND, or the cache that
# ../shared/tools/build-bitcoind.sh fills). Prints one JSON line with the client's figures (and, for
# pool, powkit pool's last statistics line). KEEP=1 keeps the work folder with both logs;
# SERVER_LOG / CLIENT_LOG set their log levels (warn / info). Not part of CI: it takes minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
server=${1:?"usage: tools/pool-accept.sh node|pool cpu|gpu [SECONDS] [DIFFICULTY] [THREADS]"}
backend=${2:?"usage: tools/pool-accept.sh node|pool cpu|gpu [SECONDS] [DIFFICULTY] [THREADS]"}
secs=${3:-120}
threads=${5:-1}
interval=${SHARE_INTERVAL:-0.25}
pk="$here/target/release/powkit"
[ -x "$pk" ] || { echo "build first: cargo build --release" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "$server" in
node)
  diff=${4:-0.002}
  "$pk" key new --out "$work/miner.key" >/dev/null
  "$pk" node --chain powkit-regtest --datadir "$work/node" --listen none --rpc 127.0.0.1:0 \
    --stratum 127.0.0.1:0 --miner-key "$work/miner.key" --stratum-difficulty "$diff" \
    --stratum-share-interval "$interval" --log "${SERVER_LOG:-warn}" 2>"$work/server.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/node/node.json" ] && break; sleep 0.1; done
  addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stratum"])' "$work/node/node.json")
  ;;
pool)
  diff=${4:-0.0015}
  bitcoind=${BITCOIND:-$HOME/.cache/powkit-bitcoind/build/bin/bitcoind}
  cli="$(dirname "$bitcoind")/bitcoin-cli"
  rpc=$(free_port)
  mkdir -p "$work/btc"
  "$bitcoind" -regtest -datadir="$work/btc" -rpcport="$rpc" -rpcbind=127.0.0.1 -rpcallowip=127.0.0.1 \
    -listen=0 -server=1 -printtoconsole=0 -persistmempool=0 &
  pids+=($!)
  bcli() { "$cli" -regtest -datadir="$work/btc" -rpcport="$rpc" "$@"; }
  for _ in $(seq 300); do bcli getblockcount >/dev/null 2>&1 && break; sleep 0.2; done
  payout=bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080
  bcli generatetoaddress 1 "$payout" >/dev/null
  start_height=$(bcli getblockcount)
  port=$(free_port)
  addr=127.0.0.1:$port
  "$pk" pool --bitcoind "http://127.0.0.1:$rpc" --rpc-cookie "$work/btc/regtest/.cookie" \
    --coinbase-address "$payout" --stratum "$addr" --difficulty "$diff" --share-interval "$interval" \
    --stats-interval 0 --log "${SERVER_LOG:-warn}" 2>"$work/server.log" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "Stratum on" "$work/server.log" && break; sleep 0.1; done
  ;;
*) echo "SERVER is node or pool" >&2; exit 2 ;;
esac

gpu=()
[ "$backend" = gpu ] && gpu=(--gpu-allow-software)
"$pk" mine --pool "stratum+tcp://$addr" --user acc --backend "$backend" "${gpu[@]}" --threads "$threads" \
  --duration "$secs" --log "${CLIENT_LOG:-info}" --json >"$work/client.json" 2>"$work/client.log" || true
extra=""
if [ "$server" = pool ]; then extra=",\"bitcoind_blocks\":$(( $(bcli getblockcount) - start_height ))"; fi
python3 - "$work/client.json" "$server" "$backend" "$extra" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
answered = r["accepted"] + r["rejected"]
out = {
    "server": sys.argv[2], "backend": sys.argv[3], "seconds": round(r["seconds"], 1),
    "submitted": r["submitted"], "accepted": r["accepted"], "rejected": r["rejected"],
    "rejected_by_reason": r["rejected_by_reason"], "stale_unsent": r["stale_unsent"],
    "accepted_ratio": round(r["accepted"] / answered, 4) if answered else None,
    "shares_per_second": round(r["submitted"] / r["seconds"], 2),
    "local_hps": round(r["hashes_per_second"]), "implied_hps": round(r["implied_hashes_per_second"]),
    "implied_over_local": round(r["implied_hashes_per_second"] / r["hashes_per_second"], 3) if r["hashes_per_second"] else None,
    "job_switch_ms": r["job_switch_ms"], "difficulty": r["difficulty"],
}
print(json.dumps(out)[:-1] + sys.argv[4] + "}")
EOF
