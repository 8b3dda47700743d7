#!/usr/bin/env python3
"""Runs N local powkit-regtest nodes on loopback and measures, from the nodes' own logs:

  propagation  time from the block's connection on the node that mined it (`generate 1`) to its
               connection on the last of the N nodes;
  convergence  time from healing a partition (two halves that each mined apart: the first half 3
               blocks, the second 2) to the last node connecting the heavier half's tip.

Topology: node i dials node i-1 and one random earlier node of its half (seeded), so each half is
connected and the network's diameter grows like log N; the partition is the missing link between
the halves, added with `addnode` to heal and removed again for the next round.

Usage: tools/net-bench.py N [--rounds R] [--binary target/release/powkit] [--json]
Prints medians (and every sample); standard library only.
"""
import argparse
import base64
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def rpc(addr, method, params=None, datadir=None):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    headers = {"Content-Type": "application/json"}
    if datadir:  # the node's cookie (HTTP Basic), rewritten at each start
        cookie = open(os.path.join(datadir, ".cookie")).read().strip()
        headers["Authorization"] = "Basic " + base64.b64encode(cookie.encode()).decode()
    req = urllib.request.Request(f"http://{addr}/", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        v = json.loads(r.read())
    if v.get("error"):
        raise RuntimeError(f"{method}: {v['error']}")
    return v["result"]


TIP = re.compile(r"^(\S+)\s+INFO new tip .*?\btip=([0-9a-f]{64})")


def tip_times(log_path):
    """hash -> first time (datetime) the node logged it as its new tip."""
    out = {}
    with open(log_path, errors="replace") as f:
        for line in f:
            m = TIP.match(line)
            if m and m.group(2) not in out:
                out[m.group(2)] = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    return out


class Node:
    def __init__(self, binary, root, i, peers, key):
        self.dir = os.path.join(root, f"n{i}")
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "node.log")
        args = [binary, "node", "--chain", "powkit-regtest", "--datadir", self.dir,
                "--listen", "127.0.0.1:0", "--rpc", "127.0.0.1:0", "--miner-key", key]
        for p in peers:
            args += ["--peer", p]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        info = os.path.join(self.dir, "node.json")
        t = time.time()
        while not os.path.exists(info) or not open(info).read().strip():
            if self.proc.poll() is not None or time.time() - t > 30:
                sys.exit(f"node {i} did not start:\n" + open(self.log).read())
            time.sleep(0.02)
        v = json.load(open(info))
        self.p2p, self.rpc = v["p2p"], v["rpc"]

    def call(self, method, params=None):
        return rpc(self.rpc, method, params, self.dir)


def wait(pred, what, timeout=120):
    t = time.time()
    while not pred():
        if time.time() - t > timeout:
            sys.exit(f"timed out: {what}")
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", type=int)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--binary", default="target/release/powkit")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    a = ap.parse_args()
    n = a.n
    if n < 2:
        sys.exit("N must be at least 2")
    root = tempfile.mkdtemp(prefix="powkit-net-")
    key = os.path.join(root, "miner.key")
    subprocess.run([a.binary, "key", "new", "--out", key], check=True, stdout=subprocess.DEVNULL)
    rng = random.Random(7)
    half = n // 2
    nodes = []
    try:
        for i in range(n):
            lo = 0 if i < half else half
            peers = []
            if i > lo:
                peers.append(nodes[i - 1].p2p)
                j = rng.randrange(lo, i)
                if nodes[j].p2p not in peers:
                    peers.append(nodes[j].p2p)
            nodes.append(Node(a.binary, root, i, peers, key))
        for nd in nodes:
            wait(lambda: nd.call("getconnectioncount") >= 1, "connections")
        A, B = nodes[0], nodes[half]
        bridge = A.p2p

        def heal():
            B.call("addnode", [bridge])

        def split():
            B.call("addnode", [bridge, "remove"])

        def all_at(h):
            return all(nd.call("getbestblockhash") == h for nd in nodes)

        # Shared history so both halves build on the same chain.
        heal()
        h = A.call("generate", [3])[-1]
        wait(lambda: all_at(h), "shared history")
        split()
        wait(lambda: not any(p["addr"] == bridge for p in B.call("getpeerinfo")), "bridge down")

        prop, conv = [], []
        for r in range(a.rounds):
            # Propagation inside the first half, then across after healing: measure with the
            # whole network connected.
            heal()
            wait(lambda: any(p["addr"] == bridge for p in B.call("getpeerinfo") if p["handshake"]), "bridge up")
            wait(lambda: all_at(A.call("getbestblockhash")), "in sync before propagation")
            h = A.call("generate", [1])[0]
            wait(lambda: all_at(h), "propagation")
            times = [tip_times(nd.log)[h] for nd in nodes]
            prop.append((max(times) - times[0]).total_seconds() * 1e3)
            # Partition, mine apart, heal.
            split()
            wait(lambda: not any(p["addr"] == bridge for p in B.call("getpeerinfo")), "bridge down")
            ha = A.call("generate", [3])[-1]
            hb = B.call("generate", [2])[-1]
            wait(lambda: all(nd.call("getbestblockhash") == ha for nd in nodes[:half]), "half A internal")
            wait(lambda: all(nd.call("getbestblockhash") == hb for nd in nodes[half:]), "half B internal")
            t0 = datetime.datetime.now(datetime.timezone.utc)
            heal()
            wait(lambda: all_at(ha), "convergence")
            roots = {nd.call("getblockchaininfo")["state_root"] for nd in nodes}
            if len(roots) != 1:
                sys.exit(f"state roots differ after convergence: {roots}")
            times = [tip_times(nd.log)[ha] for nd in nodes[half:]]
            conv.append((max(times) - t0).total_seconds() * 1e3)
            split()
            wait(lambda: not any(p["addr"] == bridge for p in B.call("getpeerinfo")), "bridge down")
        res = {
            "nodes": n,
            "rounds": a.rounds,
            "propagation_ms_median": statistics.median(prop),
            "convergence_ms_median": statistics.median(conv),
            "propagation_ms": [round(x, 2) for x in prop],
            "convergence_ms": [round(x, 2) for x in conv],
        }
        if a.json:
            print(json.dumps(res))
        else:
            print(f"{n} nodes, {a.rounds} rounds")
            print(f"  block propagation to all nodes: median {res['propagation_ms_median']:.1f} ms  {res['propagation_ms']}")
            print(f"  convergence after a partition heals: median {res['convergence_ms_median']:.1f} ms  {res['convergence_ms']}")
    finally:
        for nd in nodes:
            nd.proc.terminate()
        for nd in nodes:
            try:
                nd.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                nd.proc.kill()
        if a.keep:
            print(f"data directories kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
