#!/usr/bin/env bash
# What --metrics costs, measured in one run (issue 16: the ratio must be at least 0.98):
#
#   tools/metrics-cost.sh [PAIRS] [HEADERS]      (default: 7 pairs, 1000000 headers)
#
# Alternates each command with and without `--metrics 127.0.0.1:0` (the Prometheus recorder
# installed and its listener serving) and prints the medians and their ratio, with/without:
#   - `powkit bench --json --seconds 3 --threads 1` (the fastest CPU row's hashes/s);
#   - `powkit validate --chain bitcoin-regtest --format headers --backend cpu --json` on a generated
#     header file (headers/s), as tools/bench-validate.sh runs it.
# Each pair runs in a random order, so drift in the machine's speed favours neither side.
set -euo pipefail
pairs=${1:-7}
n=${2:-1000000}
dir=${POWKIT_BENCH_DIR:-/tmp/powkit-bench}
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/powkit
mkdir -p "$dir"
f="$dir/regtest-$n.headers"
[ -s "$f" ] || $bin chain generate --chain bitcoin-regtest --headers "$n" --out "$f" >/dev/null
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
bench() { $bin bench --json --seconds 3 --threads 1 "$@" 2>/dev/null | grep -o '"hashes_per_second": [0-9.e+]*' | awk '{print $2}' | sort -g | tail -1; }
validate() { $bin validate --chain bitcoin-regtest --format headers --backend cpu --json "$@" "$f" 2>/dev/null | grep -o '"headers_per_second": [0-9.e+]*' | awk '{print $2}'; }
b_on=() b_off=() v_on=() v_off=()
for i in $(seq "$pairs"); do
  if (( RANDOM % 2 )); then
    b_on+=("$(bench --metrics 127.0.0.1:0)"); b_off+=("$(bench)")
    v_on+=("$(validate --metrics 127.0.0.1:0)"); v_off+=("$(validate)")
  else
    b_off+=("$(bench)"); b_on+=("$(bench --metrics 127.0.0.1:0)")
    v_off+=("$(validate)"); v_on+=("$(validate --metrics 127.0.0.1:0)")
  fi
  echo "pair $i: bench ${b_on[-1]} / ${b_off[-1]} H/s, validate ${v_on[-1]} / ${v_off[-1]} headers/s (with / without)" >&2
done
for what in bench validate; do
  if [ $what = bench ]; then on=("${b_on[@]}"); off=("${b_off[@]}"); unit="H/s"; else on=("${v_on[@]}"); off=("${v_off[@]}"); unit="headers/s"; fi
  a=$(printf '%s\n' "${on[@]}" | median)
  b=$(printf '%s\n' "${off[@]}" | median)
  awk -v w="$what" -v a="$a" -v b="$b" -v u="$unit" -v p="$pairs" 'BEGIN {
    printf "%-8s with --metrics: median %.2f M %s, without: %.2f M %s, ratio %.3f (%d pairs)\n", w, a / 1e6, u, b / 1e6, u, a / b, p }'
done
