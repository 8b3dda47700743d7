#!/usr/bin/env bash
# Difficulty acceptance (issue 12, fault 8): a new network mined by one CPU thread must leave the
# proof-of-work limit within its first 100 blocks and hold its spacing within 20% over 300 blocks.
#
# For each CHAIN (powkit-regtest, or a number S: a chain spec made now with `powkit chain new
# --spacing S`, its defaults otherwise), starts a fresh `powkit node --mine --threads 1`, lets it
# mine BLOCKS blocks (default 400), stops it, exports the chain and prints one line per run:
#   chain, spacing, the first block below the limit, mean spacing over blocks 101..BLOCKS, ratio
# and, with --runs R, the median ratio of R runs. Exit status 1 when a run misses a bar.
#
# Usage: tools/spacing.sh [--blocks N] [--runs R] [--bin PATH] [CHAIN...]   (default: powkit-regtest)
# Example: tools/spacing.sh powkit-regtest 2 5
set -euo pipefail

BLOCKS=400
RUNS=1
BIN="$(dirname "$0")/../target/release/powkit"
CHAINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --blocks) BLOCKS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) CHAINS+=("$1"); shift ;;
    esac
done
[ ${#CHAINS[@]} -gt 0 ] || CHAINS=(powkit-regtest)
[ -x "$BIN" ] || { echo "no powkit binary at $BIN (cargo build --release)" >&2; exit 2; }
[ "$BLOCKS" -ge 101 ] || { echo "--blocks must be at least 101" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/powkit-spacing.XXXXXX")"
NODE_PID=""
cleanup() {
    if [ -n "$NODE_PID" ]; then kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# rpc ADDR DATADIR METHOD...: with the data directory's cookie when this powkit's `rpc` takes one.
rpc() {
    local addr="$1" dir="$2"; shift 2
    "$BIN" rpc --rpc "$addr" --datadir "$dir" "$@" 2>/dev/null || "$BIN" rpc --rpc "$addr" "$@"
}

failed=0
for chain in "${CHAINS[@]}"; do
    ratios=()
    for run in $(seq 1 "$RUNS"); do
        d="$WORK/$chain-$run"
        mkdir -p "$d"
        arg="$chain"
        if [[ "$chain" =~ ^[0-9]+$ ]]; then
            arg="$d/spec.json"
            "$BIN" chain new --name "spacing-$chain" --spacing "$chain" --out "$arg" >/dev/null
        fi
        "$BIN" key new --out "$d/miner.key" >/dev/null
        "$BIN" node --chain "$arg" --datadir "$d/data" --listen none --rpc 127.0.0.1:0 --mine \
            --miner-key "$d/miner.key" --threads 1 --log warn 2>"$d/node.log" &
        NODE_PID=$!
        for _ in $(seq 1 600); do [ -s "$d/data/node.json" ] && break; sleep 0.1; done
        addr="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rpc"])' "$d/data/node.json")"
        while :; do
            h="$(rpc "$addr" "$d/data" getblockcount 2>/dev/null || echo 0)"
            [ "$h" -ge "$BLOCKS" ] 2>/dev/null && break
            kill -0 "$NODE_PID" 2>/dev/null || { echo "node died: $(tail -5 "$d/node.log")" >&2; exit 2; }
            sleep 1
        done
        kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=""
        "$BIN" chain export --chain "$arg" --datadir "$d/data" --out "$d/chain.blk" >/dev/null
        line="$(python3 - "$d/chain.blk" "$BLOCKS" "$chain" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
blocks, chain = int(sys.argv[2]), sys.argv[3]
times, bits, i = [], [], 0
while i < len(data):
    n = struct.unpack_from("<I", data, i + 4)[0]
    h = data[i + 8:i + 88]
    times.append(struct.unpack_from("<I", h, 68)[0])
    bits.append(struct.unpack_from("<I", h, 72)[0])
    i += 8 + n
def target(b):
    e, m = b >> 24, b & 0x7FFFFF
    return m >> (8 * (3 - e)) if e <= 3 else m << (8 * (e - 3))
limit = target(bits[0])
left = next((k for k in range(1, len(bits)) if target(bits[k]) < limit), None)
spacing = 1 if chain == "powkit-regtest" else int(chain)
mean = (times[blocks] - times[100]) / (blocks - 100)
ok = left is not None and left <= 100 and abs(mean / spacing - 1) <= 0.2
print(f"{chain:15} spacing {spacing:3d} s  left the limit at block {left}  mean spacing blocks 101..{blocks} "
      f"{mean:.3f} s  ratio {mean / spacing:.3f}  {'ok' if ok else 'MISSED'}")
EOF
)"
        echo "$line"
        [[ "$line" == *MISSED* ]] && failed=1
        ratios+=("$(sed -E 's/.*ratio ([0-9.]+).*/\1/' <<<"$line")")
    done
    if [ "$RUNS" -gt 1 ]; then
        printf '%s\n' "${ratios[@]}" | sort -n | awk -v c="$chain" '{a[NR]=$1} END {print c ": median ratio of " NR " runs " a[int((NR+1)/2)]}'
    fi
done
exit $failed
