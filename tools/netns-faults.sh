#!/usr/bin/env bash
# Network-namespace fault harness (issue 12): four regtest nodes in their own network namespaces,
# a delayed and lossy link, partitions of 30 s and 100 s with a minority fork, then heal; requires
# one tip and state root on every node within 5 s of healing, the minority's transfer mined and no
# honest peer banned. The work is done by tools/netns-faults.py (see its header for the phases);
# this wrapper checks the prerequisites and removes the namespaces on exit, even if the Python
# process is killed.
#
#   tools/netns-faults.sh [--partitions 30,100] [--json] [--powkit BIN] [--dir DIR] [...]
#
# Needs root, iproute2 (`ip netns`), nftables (`nft`) and python3.
# Exit status: 0 all requirements met, 1 a requirement failed, 3 namespaces cannot be made here.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "netns-faults: needs root (ip netns, nft)" >&2
  exit 3
fi
for c in ip nft python3; do
  command -v "$c" >/dev/null || { echo "netns-faults: '$c' is missing (apt-get install iproute2 nftables python3)" >&2; exit 3; }
done
prefix="pkf$$"
cleanup() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}-"); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
}
trap cleanup EXIT
# The Python process runs in the background so that a TERM or INT sent to this script alone is
# passed on at once (bash runs traps only between commands); it then stops its nodes and removes
# its namespaces itself, and `cleanup` removes whatever is left.
python3 "$here/netns-faults.py" --prefix "$prefix" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 130' INT
wait "$child"
