#!/usr/bin/env python3
"""Network-namespace fault harness (issue 12, acceptance bullet 3). Run it through
tools/netns-faults.sh, which checks for root, `ip` and `nft` and removes the namespaces on exit
whatever happens.

Four regtest nodes, each in its own network namespace with a veth into a bridge in a hub
namespace (10.99.0.10-13, P2P on :18633; JSON-RPC on 127.0.0.1:18632 inside each namespace,
reached by creating the harness's sockets inside it). Peers form a ring:

    n0 <-- delayed + lossy --> n1 --- n2 --- n3 --- n0

The n0-n1 link: 200 ms one-way delay (a delaying TCP proxy, tools/delay-proxy.py, in n1's
namespace: this kernel has no `netem`) and 10% packet loss each way (nftables
`numgen random mod 100 < 10 drop` in n1's namespace on packets to and from n0).

Phases:
  1. shared history (each node mines a block with `generate` so every key holds funds);
  2. lossy/delayed link: blocks mined at n2 and at n0, seconds until all four agree;
  3. for each partition length (default 30 s and 100 s): nftables drops all traffic between the
     halves {n0,n1} and {n2,n3} (the minority is {n2,n3} in the 1st, 3rd.. partition, {n0,n1} in
     the others); the minority half accepts a transfer and mines a shorter fork with it (a block
     every 4 s), the majority half accepts a transfer and mines a longer one (every 2 s); heal;
     measure the seconds from heal until every node reports the same `bestblockhash` and
     `state_root` (`getblockchaininfo`); mine one more block on the majority and require the minority's
     transfer in the main chain; require `listbanned` empty on every node.

Mining is by `generate` (one block at a time, at chosen moments) rather than `--mine`, so the
tips are still when convergence is measured and two shared CPU cores are not saturated.

Exit status: 0 all requirements met, 1 a requirement failed, 3 namespaces could not be made.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in tools/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness_common import RpcError, log_tail, median, new_key, rpc, transfer, wait_node_json  # noqa: E402

SUBNET = "10.99.0"
P2P_PORT = 18633
RPC_ADDR = "127.0.0.1:18632"
PROXY_ADDR = "127.0.0.1:18700"
HALVES = ([0, 1], [2, 3])


def ip_of(i):
    return f"{SUBNET}.{10 + i}"


class Setup(Exception):
    """The namespaces, links or firewall rules could not be made (exit status 3)."""


def sh(*cmd, stdin=None, check=True):
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise Setup(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    return r


class Net:
    """The hub and four node namespaces, named PREFIX-hub and PREFIX-n0..n3."""

    def __init__(self, prefix, rto_max_ms=None):
        self.prefix = prefix
        self.rto_max_ms = rto_max_ms
        self.hub = f"{prefix}-hub"
        self.ns = [f"{prefix}-n{i}" for i in range(4)]
        self.made = []

    def create(self):
        sh("ip", "netns", "add", self.hub)
        self.made.append(self.hub)
        sh("ip", "-n", self.hub, "link", "set", "lo", "up")
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", self.hub, "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.hub, "link", "set", f"h{i}", "master", "br0")
            sh("ip", "-n", self.hub, "link", "set", f"h{i}", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip_of(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        if self.rto_max_ms is not None:
            for ns in self.ns:
                sh("ip", "netns", "exec", ns, "sh", "-c",
                   f"echo {int(self.rto_max_ms)} > /proc/sys/net/ipv4/tcp_rto_max_ms")
        # nftables must work here (the partition and the loss depend on it).
        self.nft(0, "add table inet pkprobe\ndelete table inet pkprobe\n")

    def nft(self, i, script):
        sh("ip", "netns", "exec", self.ns[i], "nft", "-f", "-", stdin=script)

    def add_loss(self, i, peer_ip, pct):
        """Drop `pct`% of packets to and from `peer_ip` in node i's namespace."""
        self.nft(i, f"""table inet pkloss {{
  chain in {{ type filter hook input priority 0; ip saddr {peer_ip} numgen random mod 100 < {pct} drop; }}
  chain out {{ type filter hook output priority 0; ip daddr {peer_ip} numgen random mod 100 < {pct} drop; }}
}}
""")

    def partition(self):
        """Drop every packet between the two halves (silently: no RST, no ICMP)."""
        for half, other in (HALVES, HALVES[::-1]):
            others = ", ".join(ip_of(j) for j in other)
            for i in half:
                self.nft(i, f"""table inet pkpart {{
  chain in {{ type filter hook input priority 0; ip saddr {{ {others} }} drop; }}
  chain out {{ type filter hook output priority 0; ip daddr {{ {others} }} drop; }}
}}
""")

    def heal(self):
        for i in range(4):
            self.nft(i, "delete table inet pkpart\n")

    def destroy(self):
        for ns in reversed(self.made):
            pids = sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for p in pids:
                try:
                    os.kill(int(p), 9)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
        self.made = []


class Node:
    def __init__(self, powkit, i, net, work, log_level):
        self.i, self.net, self.powkit = i, net, powkit
        self.ns = net.ns[i]
        self.datadir = os.path.join(work, f"n{i}")
        self.key = os.path.join(work, f"n{i}.key")
        self.pk = new_key(powkit, self.key)
        self.proc = None
        self.log_level = log_level

    def start(self, peers):
        os.makedirs(self.datadir, exist_ok=True)
        log = open(os.path.join(self.datadir, "node.log"), "ab")
        args = ["ip", "netns", "exec", self.ns, self.powkit, "node", "--chain", "powkit-regtest", "--datadir",
                self.datadir, "--listen", f"{ip_of(self.i)}:{P2P_PORT}", "--rpc", RPC_ADDR, "--miner-key", self.key,
                "--log", self.log_level]
        for p in peers:
            args += ["--peer", p]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_node_json(self.datadir, self.proc)
        t = time.monotonic()
        while True:  # started = answering RPC (with its cookie, once the node writes one)
            try:
                self.call("getblockcount")
                return
            except RpcError as e:
                if self.proc.poll() is not None or time.monotonic() - t > 30:
                    raise RuntimeError(f"n{self.i} did not answer RPC: {e}") from None
                time.sleep(0.05)

    def call(self, method, *params, timeout=5.0):
        return rpc(RPC_ADDR, method, *params, datadir=self.datadir, netns=self.ns, timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tips(nodes):
    """(bestblockhash, state_root, height) per node; None for a node that did not answer."""
    out = []
    for n in nodes:
        try:
            i = n.call("getblockchaininfo", timeout=2.0)
            out.append((i["bestblockhash"], i["state_root"], i["height"]))
        except RpcError:
            out.append(None)
    return out


def agree(ts):
    return all(t is not None for t in ts) and len({(t[0], t[1]) for t in ts}) == 1


def wait_agree(nodes, timeout, want_tip=None, poll=0.1, per_node=None):
    """Seconds until every node reports one tip and state root (and that tip is `want_tip` if
    given); None if that did not happen within `timeout`. If `per_node` is a dict, it gets
    "nI": the seconds until node I first reported `want_tip` (None if it never did)."""
    t = time.monotonic()
    if per_node is not None:
        per_node.update({f"n{n.i}": None for n in nodes})
    while True:
        ts = tips(nodes)
        now = time.monotonic() - t
        if per_node is not None:
            for n, tip in zip(nodes, ts):
                if tip is not None and tip[0] == want_tip and per_node[f"n{n.i}"] is None:
                    per_node[f"n{n.i}"] = round(now, 2)
        if agree(ts) and (want_tip is None or ts[0][0] == want_tip):
            return now
        if now > timeout:
            return None
        time.sleep(poll)


def send_transfer(n, payer, payee_pk, amount):
    """A transfer from `payer`'s key to `payee_pk`, sent to node n; returns its txid."""
    nonce = n.call("getaccount", payer.pk)["next_nonce"]
    hexed, txid = transfer(n.powkit, payer.key, payee_pk, amount, 3, nonce)
    got = n.call("sendrawtransaction", hexed)
    if got != txid:
        raise RuntimeError(f"sendrawtransaction at n{n.i} answered {got}, expected {txid}")
    return txid


def main_chain_txids(n, depth):
    """The txids in the top `depth` blocks of node n's main chain."""
    h = n.call("getblockcount")
    ids = set()
    for height in range(max(1, h - depth + 1), h + 1):
        blk = n.call("getblock", n.call("getblockhash", height))
        ids.update(t["txid"] for t in blk["tx"])
    return ids


def main():
    # SIGTERM unwinds like an exception, so the nodes are stopped and the namespaces removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description="four nodes in network namespaces: loss, delay, partitions, heal")
    ap.add_argument("--prefix", default=f"pkf{os.getpid()}", help="namespace name prefix (netns-faults.sh sets it)")
    ap.add_argument("--powkit", default=None, help="the powkit binary (default: target/release/powkit)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary on stdout (progress on stderr)")
    ap.add_argument("--partitions", default="30,100", help="partition lengths in seconds, comma-separated (30,100)")
    ap.add_argument("--delay-ms", type=float, default=200.0, help="one-way delay on the n0-n1 link (200)")
    ap.add_argument("--loss-pct", type=int, default=10, help="packet loss each way on the n0-n1 link, %% (10)")
    ap.add_argument("--require-s", type=float, default=5.0, help="convergence after heal must take at most this (5)")
    ap.add_argument("--timeout-s", type=float, default=150.0, help="give up waiting for convergence after (150)")
    ap.add_argument("--block-interval", type=float, default=2.0,
                    help="seconds between the majority's blocks during a partition; the minority's: twice that (2)")
    ap.add_argument("--probes", type=int, default=3, help="blocks mined per node in the lossy-link phase (3)")
    ap.add_argument("--tcp-rto-max-ms", type=int, default=None,
                    help="diagnosis only: cap TCP's retransmission backoff in the nodes' namespaces "
                         "(sysctl net.ipv4.tcp_rto_max_ms, Linux >= 6.15; default: the kernel's, 120000)")
    ap.add_argument("--log", default="debug", help="the nodes' log level (debug)")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed on success)")
    a = ap.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    powkit = os.path.abspath(a.powkit or os.path.join(root, "target", "release", "powkit"))
    out = sys.stderr if a.json else sys.stdout

    def say(msg):
        print(msg, file=out, flush=True)

    if not os.access(powkit, os.X_OK):
        say(f"netns-faults: no powkit binary at {powkit}")
        return 1
    partitions = [float(x) for x in a.partitions.split(",") if x.strip()]
    work = a.dir or tempfile.mkdtemp(prefix="powkit-netns-")
    os.makedirs(work, exist_ok=True)
    net = Net(a.prefix, a.tcp_rto_max_ms)
    nodes, proxy = [], None
    summary = {"delay_ms": a.delay_ms, "loss_pct": a.loss_pct, "tcp_rto_max_ms": a.tcp_rto_max_ms,
               "require_s": a.require_s, "work_dir": work,
               "partitions": [], "failures": []}
    fail = summary["failures"]
    status = 0
    try:
        try:
            net.create()
            net.add_loss(1, ip_of(0), a.loss_pct)
        except Setup as e:
            say(f"netns-faults: cannot make the namespaces: {e}")
            summary["setup_error"] = str(e)
            status = 3
            raise
        say(f"netns-faults: namespaces {net.hub}, {', '.join(net.ns)}; work dir {work}")
        proxy_log = open(os.path.join(work, "delay-proxy.log"), "ab")
        proxy = subprocess.Popen(
            ["ip", "netns", "exec", net.ns[1], sys.executable, os.path.join(root, "tools", "delay-proxy.py"),
             PROXY_ADDR, f"{ip_of(0)}:{P2P_PORT}", "--delay-ms", str(a.delay_ms)],
            stdout=subprocess.DEVNULL, stderr=proxy_log)
        proxy_log.close()
        nodes = [Node(powkit, i, net, work, a.log) for i in range(4)]
        peers = {0: [], 1: [PROXY_ADDR], 2: [f"{ip_of(0)}:{P2P_PORT}"],
                 3: [f"{ip_of(2)}:{P2P_PORT}", f"{ip_of(0)}:{P2P_PORT}"]}
        for n in nodes:
            n.start(peers[n.i])

        # 1. Shared history: every key holds coinbase funds.
        for n in nodes:
            n.call("generate", 1, timeout=60)
            if wait_agree(nodes, 60) is None:
                raise RuntimeError(f"the nodes did not agree after n{n.i}'s first block: {tips(nodes)}")
        say(f"shared history: height {tips(nodes)[0][2]}, one tip on all four nodes")

        # 2. The lossy, delayed link in the ring.
        props = {}
        for miner in (2, 0):
            props[f"n{miner}"] = []
            for _ in range(a.probes):
                n = nodes[miner]
                want = n.call("generate", 1, timeout=60)[0]
                s = wait_agree(nodes, a.timeout_s, want_tip=want, poll=0.05)
                props[f"n{miner}"].append(None if s is None else round(s, 3))
        summary["propagation_s"] = props
        for m, xs in props.items():
            say(f"lossy link ({a.delay_ms:.0f} ms, {a.loss_pct}% loss on n0-n1): a block mined at {m} on all four in "
                f"{xs} s (median {median([x for x in xs if x is not None])})")
            if None in xs:
                fail.append(f"a block mined at {m} did not reach every node within {a.timeout_s:.0f} s")

        # 3. Partitions.
        for k, length in enumerate(partitions):
            minority, majority = (HALVES[1], HALVES[0]) if k % 2 == 0 else (HALVES[0], HALVES[1])
            mi, ma = nodes[minority[-1]], nodes[majority[0]]
            rec = {"length_s": length, "minority": [f"n{i}" for i in minority],
                   "majority": [f"n{i}" for i in majority]}
            start = time.monotonic()
            net.partition()
            say(f"partition {k + 1}: {length:.0f} s, minority {rec['minority']} (mines at n{mi.i}), "
                f"majority {rec['majority']} (mines at n{ma.i})")
            time.sleep(min(1.0, length / 4))
            payee = nodes[majority[-1]].pk
            t_min = send_transfer(mi, mi, payee, 1000 + k)
            t_maj = send_transfer(ma, ma, mi.pk, 2000 + k)
            # Both sides mine all through the partition, the majority twice as often: blocks
            # announced over connections that are dead, and a reorganization of many blocks.
            end = start + length
            mined = {"minority": 0, "majority": 0}
            next_ma = next_mi = time.monotonic()
            while True:
                now = time.monotonic()
                if now >= end - 0.2:
                    break
                if now >= next_ma:
                    ma.call("generate", 1, timeout=60)
                    mined["majority"] += 1
                    next_ma += a.block_interval
                if now >= next_mi:
                    mi.call("generate", 1, timeout=60)
                    mined["minority"] += 1
                    next_mi += 2 * a.block_interval
                time.sleep(max(0.0, min(next_ma, next_mi, end - 0.2) - time.monotonic()))
            while mined["majority"] <= mined["minority"]:
                ma.call("generate", 1, timeout=60)
                mined["majority"] += 1
            rec["blocks_mined"] = mined
            side_tips = {"minority": [tips([nodes[i]])[0] for i in minority],
                         "majority": [tips([nodes[i]])[0] for i in majority]}
            rec["minority_fork_height"] = side_tips["minority"][0][2] if side_tips["minority"][0] else None
            rec["majority_height"] = side_tips["majority"][0][2] if side_tips["majority"][0] else None
            time.sleep(max(0.0, end - time.monotonic()))
            want = ma.call("getbestblockhash")
            net.heal()
            healed = time.monotonic()
            say(f"  healed after {healed - start:.1f} s (minority fork height {rec['minority_fork_height']}, "
                f"majority height {rec['majority_height']}); waiting for one tip and state root...")
            per_node = {}
            s = wait_agree(nodes, a.timeout_s, want_tip=want, per_node=per_node)
            rec["converge_s"] = None if s is None else round(s, 2)
            rec["node_on_tip_s"] = per_node
            if s is None:
                fail.append(f"partition {k + 1} ({length:.0f} s): no single tip and state root within {a.timeout_s:.0f} s"
                            f" of healing: {tips(nodes)}")
                say(f"  NOT converged within {a.timeout_s:.0f} s: {tips(nodes)}")
            else:
                say(f"  one tip and state root on all four {s:.2f} s after healing (required <= {a.require_s:.0f} s);"
                    f" each node on the tip after {per_node} s")
                if s > a.require_s:
                    fail.append(f"partition {k + 1} ({length:.0f} s): converged {s:.2f} s after healing "
                                f"(required <= {a.require_s:.0f} s)")
            # The minority's transfer is mined on the winning chain.
            ma.call("generate", 1, timeout=60)
            # (A shorter wait when they did not converge: it is already a failure.)
            settled = wait_agree(nodes, a.timeout_s if s is not None else min(a.timeout_s, 20.0),
                                 want_tip=ma.call("getbestblockhash"))
            on_chain = main_chain_txids(ma, depth=200)
            rec["minority_transfer_mined"] = t_min in on_chain
            rec["majority_transfer_mined"] = t_maj in on_chain
            rec["settled_after_one_more_block"] = settled is not None
            if not rec["minority_transfer_mined"]:
                in_pools = [t_min in n.call("getrawmempool") for n in nodes]
                fail.append(f"partition {k + 1}: the minority's transfer {t_min} is not in the main chain "
                            f"(in the mempools of n0..n3: {in_pools})")
            if not rec["majority_transfer_mined"]:
                fail.append(f"partition {k + 1}: the majority's transfer {t_maj} is not in the main chain")
            bans = {}
            for n in nodes:
                b = n.call("listbanned")
                if b:
                    bans[f"n{n.i}"] = b
            rec["banned"] = bans
            rec["peers"] = {f"n{n.i}": len(n.call("getpeerinfo")) for n in nodes}
            rec["ban_log"] = {}
            if bans:
                fail.append(f"partition {k + 1}: honest peers banned: {json.dumps(bans)}")
                for n in nodes:
                    lines = log_tail(n.datadir, lines=5, grep="banned")
                    if lines:
                        rec["ban_log"][f"n{n.i}"] = lines.splitlines()
                        say(f"  n{n.i} log (ban lines):\n" + "\n".join("    " + x for x in lines.splitlines()))
            say(f"  minority transfer mined: {rec['minority_transfer_mined']}, majority transfer mined: "
                f"{rec['majority_transfer_mined']}, banned: {bans or 'none'}, peers: {rec['peers']}")
            summary["partitions"].append(rec)
    except Setup:
        pass
    except (KeyboardInterrupt, SystemExit):
        fail.append("interrupted by a signal")
        say("netns-faults: interrupted; stopping the nodes and removing the namespaces")
    except (RuntimeError, RpcError, OSError, subprocess.CalledProcessError) as e:
        fail.append(f"harness error: {e}")
        say(f"netns-faults: harness error: {e}")
        for n in nodes:
            say(f"--- n{n.i} log tail ---\n{log_tail(n.datadir, 15)}")
    finally:
        for n in nodes:
            n.stop()
        if proxy and proxy.poll() is None:
            proxy.kill()
            proxy.wait()
        net.destroy()
    if status == 0 and fail:
        status = 1
    summary["ok"] = status == 0
    summary["status"] = status
    if a.json:
        print(json.dumps(summary, indent=2))
    else:
        for f in fail:
            say(f"FAIL: {f}")
        say("netns-faults: " + ("all requirements met" if status == 0 else f"exit {status}"))
    if status == 0 and a.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    elif status != 0:
        say(f"netns-faults: kept {work} (node logs: {work}/n*/node.log)")
    return status


if __name__ == "__main__":
    sys.exit(main())
