#!/usr/bin/env bash
# Side-by-side nonce-search speed: powkit's CPU implementations against the peer miners and the
# physical limit, measured in the same run on this machine, repeated RUNS times; prints the medians
# and the ratios the issues' bars are stated in.
#
#   tools/bench-peers.sh [SECONDS_PER_ROW=10] [RUNS=3]
#
# Peers (see ../shared/peers/README.md), built once into ${POWKIT_PEERS:-~/.cache/powkit-peers}:
#   cpuminer-opt 26.1 as built by build.sh (-march=native: on a CPU with AVX-512 it runs its 16-way
#   AVX-512 sha256d; with SHA-NI and no AVX-512 it runs its SHA-NI 2-way path), and a second build of
#   it with -mno-avx512f so that its SHA-NI path can be measured on AVX-512 machines too;
#   pooler's minerd (AVX2 8-way assembly); the naive `sha2` double digest (../shared/peers/baseline).
# The single-stream limit is openssl's SHA-256 rate / 64 bytes / 2 compressions per nonce.
# Not part of CI: it needs minutes and builds the peers.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
runs=${2:-3}
peers_src="$here/../shared/peers"
cache=${POWKIT_PEERS:-$HOME/.cache/powkit-peers}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$peers_src/build.sh" "$cache"
has_avx512=$(grep -qw avx512f /proc/cpuinfo && echo 1 || echo 0)
has_sha=$(grep -qw sha_ni /proc/cpuinfo && echo 1 || echo 0)
sha_build="$cache/cpuminer-opt-26.1-noavx512"
if [ "$has_avx512" = 1 ] && [ "$has_sha" = 1 ] && [ ! -x "$sha_build/cpuminer" ]; then
  echo "building cpuminer-opt without AVX-512 (its SHA-NI path) into $sha_build ..." >&2
  rm -rf "$sha_build" && mkdir -p "$sha_build"
  tar xzf "$peers_src/cpuminer-opt-26.1.tar.gz" -C "$sha_build" --strip-components=1
  (cd "$sha_build" && ./autogen.sh && CFLAGS="-O3 -march=native -mno-avx512f" ./configure --with-curl &&
    make -j"$(nproc)") >"$sha_build.log" 2>&1 || { echo "build failed: $sha_build.log" >&2; exit 1; }
fi
(cd "$here" && cargo build --release --quiet)
pk="$here/target/release/powkit"
baseline_target="$cache/baseline-target"
CARGO_TARGET_DIR="$baseline_target" cargo build --release --quiet --manifest-path "$peers_src/baseline/Cargo.toml"

cpuminer_rate() { # binary threads seconds
  timeout $(($3 + 15)) "$1" -a sha256d --benchmark -t "$2" --time-limit="$3" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' |
    awk '/Benchmark:/ {v=$(NF-1); u=$NF; m=(u ~ /^G/)?1e9:(u ~ /^M/)?1e6:(u ~ /^k/)?1e3:1; printf "%.0f\n", v*m}'
}
powkit_rate() { # impl threads
  "$pk" bench --cpu-impl "$1" --threads "$2" --seconds "$secs" --json |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["results"][0]["hashes_per_second"]))'
}
impls=$("$pk" bench --json --seconds 0.05 --threads 1 | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["cpu_impls_available"]))')
best=$("$pk" bench --json --seconds 0.05 --threads 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["impl"])')

for r in $(seq 1 "$runs"); do
  echo "run $r of $runs ..." >&2
  o=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^sha256/ {print $NF}' | tr -d k)
  python3 -c "print(int(float('$o') * 1000 / 64 / 2))" >>"$out/limit"
  for i in $impls; do powkit_rate "$i" 1 >>"$out/powkit-$i-1"; done
  powkit_rate "$best" 2 >>"$out/powkit-$best-2"
  # A peer that fails to report leaves its row empty rather than ending the run.
  cpuminer_rate "$cache/cpuminer-opt-26.1/cpuminer" 1 "$secs" >>"$out/cpuminer-opt-1" || true
  cpuminer_rate "$cache/cpuminer-opt-26.1/cpuminer" 2 "$secs" >>"$out/cpuminer-opt-2" || true
  if [ -x "$sha_build/cpuminer" ]; then
    cpuminer_rate "$sha_build/cpuminer" 1 "$secs" >>"$out/cpuminer-opt-sha-1" || true
  fi
  # minerd reports every few seconds; bench.sh drops its first report.
  "$peers_src/bench.sh" minerd 1 "$((secs < 10 ? 10 : secs))" >>"$out/minerd-1" || true
  "$peers_src/bench.sh" minerd 2 "$((secs < 10 ? 10 : secs))" >>"$out/minerd-2" || true
  "$baseline_target/release/baseline" 2 | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["naive_sha256d_per_s"]))' >>"$out/naive-1" || true
done

python3 - "$out" "$best" "$secs" "$runs" <<'PY'
import os, statistics, sys
d, best, secs, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def med(name):
    p = os.path.join(d, name)
    if not os.path.exists(p): return None
    v = [float(x) for x in open(p).read().split()]
    return statistics.median(v) if v else None
rows = [("single-stream limit (openssl sha256 / 64 / 2)", "limit")]
for f in sorted(os.listdir(d)):
    if f.startswith("powkit-"): rows.append((f"powkit {f[7:].rsplit('-',1)[0]}, {f.rsplit('-',1)[1]} thread(s)", f))
rows += [("cpuminer-opt 26.1 (-march=native), 1 thread", "cpuminer-opt-1"),
         ("cpuminer-opt 26.1 (-march=native), 2 threads", "cpuminer-opt-2"),
         ("cpuminer-opt 26.1 (SHA-NI build, no AVX-512), 1 thread", "cpuminer-opt-sha-1"),
         ("pooler minerd (AVX2 8-way), 1 thread", "minerd-1"),
         ("pooler minerd (AVX2 8-way), 2 threads", "minerd-2"),
         ("naive sha2 double digest, 1 thread", "naive-1")]
lim = med("limit")
print(f"median of {runs} runs, {secs} s per row; M nonces/s; x limit = / single-stream limit")
print(f"| {'what':<58} | {'M/s':>8} | {'x limit':>7} |")
print(f"|{'-'*60}|{'-'*10}|{'-'*9}|")
for label, f in rows:
    v = med(f)
    if v is None: continue
    print(f"| {label:<58} | {v/1e6:>8.2f} | {v/lim:>7.2f} |")
print()
def ratio(label, a, b):
    va, vb = med(a), med(b)
    if va and vb: print(f"{label:<62} {va/vb:5.2f}x")
ratio(f"powkit {best} 1T / cpuminer-opt 1T (its best path here)", f"powkit-{best}-1", "cpuminer-opt-1")
ratio("powkit shani 1T / cpuminer-opt 1T", "powkit-shani-1", "cpuminer-opt-1")
ratio("powkit shani 1T / cpuminer-opt SHA-NI build 1T", "powkit-shani-1", "cpuminer-opt-sha-1")
ratio("powkit avx2 1T / minerd 1T", "powkit-avx2-1", "minerd-1")
ratio(f"powkit {best} 2T / 1T", f"powkit-{best}-2", f"powkit-{best}-1")
ratio(f"powkit {best} 2T / cpuminer-opt 2T", f"powkit-{best}-2", "cpuminer-opt-2")
ratio(f"powkit {best} 1T / naive sha2 1T", f"powkit-{best}-1", "naive-1")
PY
