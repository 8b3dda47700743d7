#!/usr/bin/env bash
# GPU nonce-search benchmark on a machine with a real GPU (run it on the lent H100/H200 through the
# device tool): builds powkit, lists the adapters, then measures the gpu backend alone and cpu+gpu
# together, RUNS times each, and prints one table with the medians.
#
#   tools/gpu-bench.sh [SECONDS_PER_RUN=10] [RUNS=3] [ADAPTER_INDEX]
#
# Reference (../shared/ANCHORS.md): the H100's integer-throughput limit for sha256d with midstate is
# about 6 to 10 GH/s; powkit's bar is 3.5 GH/s, its goal 6 GH/s.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
runs=${2:-3}
adapter=${3:-}
cd "$here"
cargo build --release --quiet
pk=target/release/powkit
aflag=()
[ -n "$adapter" ] && aflag=(--adapter "$adapter")
echo "## adapters"
"$pk" gpu list
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv || true
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$runs"); do
  echo "run $r of $runs ..." >&2
  "$pk" bench --backend all --gpu-allow-software "${aflag[@]}" --seconds "$secs" --json >"$out/run$r.json"
done
python3 - "$out" "$runs" "$secs" <<'PY'
import json, os, statistics, sys
d, runs, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
adapter = None
for r in range(1, runs + 1):
    for row in json.load(open(os.path.join(d, f"run{r}.json")))["results"]:
        key = (row["backend"], row["impl"], row["threads"])
        rows.setdefault(key, []).append(row["hashes_per_second"])
        adapter = row.get("adapter", adapter)
print(f"\n## sha256d nonce search, median of {runs} runs x {secs} s; adapter: {adapter}")
print("| backend | impl | cpu threads | rate | G/s |")
print("|---|---|---|---|---|")
for (b, i, t), v in rows.items():
    m = statistics.median(v)
    print(f"| {b} | {i} | {t} | {m/1e6:,.1f} MH/s | {m/1e9:.3f} |")
gpu = [statistics.median(v) for (b, _, _), v in rows.items() if b == "gpu"]
if gpu:
    g = gpu[0] / 1e9
    print(f"\ngpu alone: {g:.3f} GH/s = {g/3.5:.2f}x the 3.5 GH/s bar, {g/6:.2f}x the 6 GH/s goal "
          f"(H100 limit about 6 to 10 GH/s)")
PY
