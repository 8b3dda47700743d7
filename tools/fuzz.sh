#!/usr/bin/env bash
# Fuzzes every decoder fed from outside (README, "Fuzzing"): builds the cargo-fuzz targets of fuzz/
# and runs each for SECONDS_PER_TARGET seconds (default 60), starting from the committed seeds
# (fuzz/seeds/<target>) and the corpus of earlier runs (fuzz/corpus/<target>, not committed).
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (no TARGET: all of them)
#
# On a crash the input is minimized (cargo fuzz tmin) and copied to
# tests/fuzz_regressions/<target>/, which `cargo test --release --test fuzz_regressions` replays on
# stable Rust through the same checks (fuzz/checks.rs): fix the decoder, run that test, commit the
# file with the fix.
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`); says so and fails when either is missing.
# To replay one input: cargo +nightly fuzz run -s none TARGET FILE.
# Environment: FUZZ_SANITIZER (default none: safe Rust, and twice the executions of address;
# address, memory... as cargo fuzz takes them), FUZZ_JOBS (targets run at once, default 1),
# FUZZ_NICE (niceness, default 0), FUZZ_ARGS (more libFuzzer flags, e.g. -malloc_limit_mb=64, for
# the runs and the minimizing), FUZZ_TARGET_DIR (cargo's target directory for the fuzz build,
# default fuzz/target; CI keeps it outside the clone so the nightly build is reused).
# Prints a table: target, seconds, executions, crashes; exits 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL=(bitcoin_block bitcoin_tx ledger_block ledger_tx p2p_frame p2p_message blk_records hex_lines json_lines rpc_request)
secs=${1:-60}
[ $# -gt 0 ] && shift
case $secs in '' | *[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$secs'" >&2; exit 2 ;; esac
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${ALL[@]}")
for t in "${targets[@]}"; do
  [[ " ${ALL[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (targets: ${ALL[*]})" >&2; exit 2; }
done
san=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
nice=${FUZZ_NICE:-0}
tdir=()
[ -n "${FUZZ_TARGET_DIR:-}" ] && tdir=(--target-dir "$FUZZ_TARGET_DIR")

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: the nightly Rust toolchain is missing (cargo fuzz needs it): rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 1
fi

echo "fuzz.sh: building ${#ALL[@]} targets (sanitizer $san)" >&2
nice -n "$nice" cargo +nightly fuzz build -s "$san" "${tdir[@]}" >&2

mkdir -p fuzz/logs
# The targets are run straight from the build (not through `cargo fuzz run`, which would rebuild
# them if the sources changed meanwhile).
bin_dir="${FUZZ_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release"
# Runs one target; writes fuzz/logs/<target>.result: "target seconds executions crashes".
run_one() {
  local t=$1 start rc=0 execs crash min dest
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  start=$(date +%s)
  nice -n "$nice" "$bin_dir/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_ARGS:-} "fuzz/corpus/$t" "fuzz/seeds/$t" >"fuzz/logs/$t.log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "$t $(($(date +%s) - start)) ${execs:-?} 0" >"fuzz/logs/$t.result"
    return
  fi
  crash=$(ls -t fuzz/artifacts/"$t"/{crash,oom,timeout,leak}-* 2>/dev/null | head -1 || true)
  if [ -z "$crash" ]; then
    echo "fuzz.sh: $t failed (exit $rc) without a crash file; see fuzz/logs/$t.log" >&2
    echo "$t $(($(date +%s) - start)) ${execs:-?} error" >"fuzz/logs/$t.result"
    return
  fi
  # Minimize (at most a minute); keep the original when minimizing fails.
  min="fuzz/artifacts/$t/minimized-$(basename "$crash")"
  nice -n "$nice" "$bin_dir/$t" -minimize_crash=1 -max_total_time=60 -timeout=10 ${FUZZ_ARGS:-} \
    -exact_artifact_path="$min" "$crash" >"fuzz/logs/$t.tmin.log" 2>&1 || true
  [ -s "$min" ] || min=$crash
  dest="tests/fuzz_regressions/$t/$(basename "$crash")"
  mkdir -p "tests/fuzz_regressions/$t"
  cp "$min" "$dest"
  echo "fuzz.sh: $t CRASHED; input (minimized) saved as $dest; log: fuzz/logs/$t.log" >&2
  echo "fuzz.sh: fix the decoder, then run: cargo test --release --test fuzz_regressions (and commit $dest)" >&2
  echo "$t $(($(date +%s) - start)) ${execs:-?} 1" >"fuzz/logs/$t.result"
}

running=0
for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for ${secs}s" >&2
  rm -f "fuzz/logs/$t.result"
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
echo "| target | seconds | executions | crashes |"
echo "| --- | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
  read -r name s e c <"fuzz/logs/$t.result"
  echo "| $name | $s | $e | $c |"
  [ "$c" = 0 ] || failed=1
done
exit $failed
