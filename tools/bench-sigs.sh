#!/usr/bin/env bash
# Bulk Ed25519 verification against the plain peer, in the same run.
#
#   tools/bench-sigs.sh [RUNS] [COUNT]        (default: 5 runs, 60000 distinct signatures)
#
# Writes COUNT distinct signatures (one key each) with `cargo run --example gen_sigs`, then
# alternates ../shared/peers/baseline (ed25519-zebra batches of 64 over all cores with rayon; its
# `zebra_batch64_all_cores_per_s`) with `powkit verify-sigs --backend cpu --json` and prints both
# medians and their ratio. powkit's figure is end to end: reading and parsing the file included.
# With POWKIT_OLD_BIN=PATH (an older powkit binary), that binary runs too, alternating, and the
# new/old ratio is printed.
set -euo pipefail
runs=${1:-5}
count=${2:-60000}
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin powkit --example gen_sigs
file=${POWKIT_BENCH_DIR:-/tmp/powkit-bench}/sigs-$count.jsonl
mkdir -p "$(dirname "$file")"
[ -s "$file" ] || target/release/examples/gen_sigs "$count" "$file"
peer_dir=${POWKIT_PEERS_TARGET:-$HOME/.cache/powkit-peers/baseline-target}
peer=$peer_dir/release/baseline
[ -x "$peer" ] || CARGO_TARGET_DIR=$peer_dir cargo build --release --quiet --manifest-path ../shared/peers/baseline/Cargo.toml
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
p=() w=() o=()
for _ in $(seq "$runs"); do
  if [ -n "${POWKIT_OLD_BIN:-}" ]; then
    o+=("$("$POWKIT_OLD_BIN" verify-sigs --backend cpu --json "$file" | grep -o '"signatures_per_second": [0-9.e+]*' | awk '{print $2}')")
  fi
  p+=("$("$peer" 2 | grep -o '"zebra_batch64_all_cores_per_s": [0-9.]*' | awk '{print $2}')")
  w+=("$(target/release/powkit verify-sigs --backend cpu --json "$file" | grep -o '"signatures_per_second": [0-9.e+]*' | awk '{print $2}')")
done
pm=$(printf '%s\n' "${p[@]}" | median)
wm=$(printf '%s\n' "${w[@]}" | median)
awk -v p="$pm" -v w="$wm" -v n="$count" -v r="$runs" 'BEGIN {
  printf "%d signatures, %d runs: peer (zebra batch64, all cores) median %.0f/s; powkit verify-sigs median %.0f/s; ratio %.2fx\n", n, r, p, w, w / p }'
if [ -n "${POWKIT_OLD_BIN:-}" ]; then
  om=$(printf '%s\n' "${o[@]}" | median)
  awk -v w="$wm" -v o="$om" 'BEGIN { printf "new median %.0f/s, old (POWKIT_OLD_BIN) median %.0f/s, new/old %.3f\n", w, o, w / o }'
fi
