#!/usr/bin/env bash
# Bulk-validation speed against this machine's ceiling, measured in the same run.
#
#   tools/bench-validate.sh [RUNS] [SIZES...]      (default: 5 runs of 1000000 and 4000000 headers)
#
# Generates regtest header files once (into $POWKIT_BENCH_DIR, default /tmp/powkit-bench), then
# alternates `openssl speed -evp sha256` with `powkit validate --format headers` and prints the
# median rate, the median ceiling (openssl's single-stream compressions/s x cores / 3 compressions
# per header), their ratio and the peak RSS.
#
# With POWKIT_OLD_BIN=PATH (an older powkit binary, e.g. built from an earlier commit in a git
# worktree), that binary is run too, alternating with this one, and the new/old ratio is printed:
# how a restructuring is shown to leave the speed unchanged.
set -euo pipefail
runs=${1:-5}
shift || true
sizes=("${@:-1000000 4000000}")
read -r -a sizes <<<"${sizes[*]}"
dir=${POWKIT_BENCH_DIR:-/tmp/powkit-bench}
cores=$(nproc)
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/powkit
mkdir -p "$dir"
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for n in "${sizes[@]}"; do
  f="$dir/regtest-$n.headers"
  [ -s "$f" ] || $bin chain generate --chain bitcoin-regtest --headers "$n" --out "$f" >/dev/null
  rates=() ceilings=() rss=() old=()
  for _ in $(seq "$runs"); do
    if [ -n "${POWKIT_OLD_BIN:-}" ]; then
      o=$("$POWKIT_OLD_BIN" validate --chain bitcoin-regtest --format headers --backend cpu --json "$f")
      old+=("$(grep -o '"headers_per_second": [0-9.e+]*' <<<"$o" | awk '{print $2}')")
    fi
    kbs=$(openssl speed -evp sha256 -bytes 16384 -seconds 1 2>/dev/null | awk '/^sha256/ {print $NF}' | tr -d k)
    ceilings+=("$(awk -v k="$kbs" -v c="$cores" 'BEGIN {print k * 1000 / 64 * c / 3}')")
    out=$( { /usr/bin/time -f 'rss_kb %M' $bin validate --chain bitcoin-regtest --format headers --backend cpu --json "$f"; } 2>&1)
    rates+=("$(grep -o '"headers_per_second": [0-9.e+]*' <<<"$out" | awk '{print $2}')")
    rss+=("$(awk '/rss_kb/ {print $2}' <<<"$out")")
  done
  r=$(printf '%s\n' "${rates[@]}" | median)
  c=$(printf '%s\n' "${ceilings[@]}" | median)
  m=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  awk -v n="$n" -v r="$r" -v c="$c" -v m="$m" -v runs="$runs" 'BEGIN {
    printf "%d headers: median %.2f M headers/s, ceiling %.2f M/s, ratio %.2fx, peak RSS %.1f MB (%d runs)\n",
      n, r / 1e6, c / 1e6, r / c, m / 1024, runs }'
  if [ -n "${POWKIT_OLD_BIN:-}" ]; then
    o=$(printf '%s\n' "${old[@]}" | median)
    awk -v n="$n" -v r="$r" -v o="$o" 'BEGIN {
      printf "%d headers: new median %.2f M/s, old (POWKIT_OLD_BIN) median %.2f M/s, new/old %.3f\n", n, r / 1e6, o / 1e6, r / o }'
  fi
done
