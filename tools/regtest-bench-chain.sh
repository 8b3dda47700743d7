#!/usr/bin/env bash
# regtest-bench-chain.sh: the benchmark chain of issue 13 (a regtest chain with at least 100,000
# script-checked inputs, mostly P2WPKH and P2TR key-path, some P2PKH), made by a real bitcoind.
# Builds bitcoind when missing (../shared/tools/build-bitcoind.sh, cached), then runs
# examples/regtest_bench_chain.rs. Not run in CI (about 3 minutes on 2 cores).
#
# Usage: tools/regtest-bench-chain.sh [OUT_DIR] [INPUTS]
#   OUT_DIR default $TMPDIR/powkit-bench-chain (emptied first); INPUTS default 100000.
# Prints the blocks/ directory (obfuscated, Core's default) on stdout; Core's gettxoutsetinfo, best
# block, height and timings are in OUT_DIR/expected.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${POWKIT_BITCOIND:-}" ]; then
  POWKIT_BITCOIND=$(../shared/tools/build-bitcoind.sh)
  export POWKIT_BITCOIND
fi
cargo build --release --quiet --example regtest_bench_chain
exec target/release/examples/regtest_bench_chain "$@"
