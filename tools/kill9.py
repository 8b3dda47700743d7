#!/usr/bin/env python3
"""kill -9 harness (issue 12, acceptance bullet 2).

One regtest node mines (`--mine`, one CPU thread); a client thread signs transfers with
`powkit tx transfer` and sends them with `sendrawtransaction`, recording every acknowledged txid.
Each round the node is killed with SIGKILL at a random moment, restarted on the same data
directory, and every transfer ever acknowledged must be in a block of the main chain
(`getblockhash` + `getblock` of every height) or in the mempool (`getrawmempool`). Prints per
round: acked (all rounds so far), in blocks, in mempool, LOST (and how many of them were not lost
at an earlier check). A transfer the node refuses (a nonce gap after a loss) is re-signed with
another amount, so a lost txid is never sent again. Exit status: 0 if nothing was lost, 1 if any
acknowledged transfer was lost, 2 if the harness could not run (the node did not start again...).

    tools/kill9.py [ROUNDS] [--powkit BIN] [--json] [--seed N] [--min-wait S] [--max-wait S]

`--json` prints one JSON summary on stdout (progress goes to stderr).
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in tools/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness_common import RpcError, log_tail, median, new_key, rpc, transfer, wait_node_json  # noqa: E402


class Node:
    """One `powkit node` process on a data directory; restartable."""

    def __init__(self, powkit, datadir, miner_key):
        self.powkit, self.datadir, self.miner_key = powkit, datadir, miner_key
        self.proc = None
        self.rpc_addr = None

    def start(self):
        os.makedirs(self.datadir, exist_ok=True)
        try:
            os.remove(os.path.join(self.datadir, "node.json"))
        except FileNotFoundError:
            pass
        log = open(os.path.join(self.datadir, "node.log"), "ab")
        t = time.monotonic()
        self.proc = subprocess.Popen(
            [self.powkit, "node", "--chain", "powkit-regtest", "--datadir", self.datadir, "--listen", "none",
             "--rpc", "127.0.0.1:0", "--mine", "--miner-key", self.miner_key, "--threads", "1", "--log", "info"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        log.close()
        self.rpc_addr = wait_node_json(self.datadir, self.proc)["rpc"]
        # Answering RPC is what "started" means to a client.
        while True:
            try:
                self.call("getblockcount")
                break
            except RpcError:
                if self.proc.poll() is not None or time.monotonic() - t > 30:
                    raise RuntimeError(f"node did not answer RPC; log:\n{log_tail(self.datadir)}")
                time.sleep(0.02)
        return time.monotonic() - t

    def call(self, method, *params, timeout=10.0):
        return rpc(self.rpc_addr, method, *params, datadir=self.datadir, timeout=timeout)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client(threading.Thread):
    """Sends transfers from the miner's account as fast as it can sign them; keeps every txid the
    node acknowledged. While the node is down (`addr` None or refusing) it retries the same
    transfer, so a transfer answered after a restart as a duplicate counts as acknowledged then."""

    def __init__(self, powkit, key, from_pk, payee, datadir):
        super().__init__(daemon=True)
        self.powkit, self.key, self.from_pk, self.payee, self.datadir = powkit, key, from_pk, payee, datadir
        self.addr = None
        self.nonce = 0
        self.signed = 0
        self.acked = []  # (txid, nonce, round)
        self.rejected = []  # (nonce, message, round)
        self.round = 0
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.error = None

    def run(self):
        cur = None
        try:
            while not self.halt.is_set():
                addr = self.addr
                if addr is None:
                    time.sleep(0.02)
                    continue
                if cur is None:
                    # Each signed transfer differs (the amount counts them), so one re-signed after a
                    # rejection never has the txid of an acknowledged one that the node lost.
                    self.signed += 1
                    cur = (self.nonce, *transfer(self.powkit, self.key, self.payee, self.signed, 3, self.nonce))
                nonce, hexed, txid = cur
                try:
                    got = rpc(addr, "sendrawtransaction", hexed, datadir=self.datadir, timeout=5)
                except RpcError as e:
                    if e.code is None:  # not answered: the node is down or was killed mid-call
                        time.sleep(0.02)
                        continue
                    # Refused: most likely a nonce gap after a lost transfer. Resynchronise.
                    with self.lock:
                        self.rejected.append((nonce, str(e), self.round))
                    try:
                        acct = rpc(addr, "getaccount", self.from_pk, datadir=self.datadir)
                        self.nonce = acct["next_nonce"]
                    except RpcError:
                        pass
                    cur = None
                    continue
                if got != txid:
                    raise RuntimeError(f"sendrawtransaction answered {got}, the transfer's txid is {txid}")
                with self.lock:
                    self.acked.append((txid, nonce, self.round))
                self.nonce = nonce + 1
                cur = None
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.acked), list(self.rejected)


def check(node, acked, block_txs):
    """Where each acknowledged txid is now: (in_blocks, in_mempool, lost). The mempool is read
    first and the chain after it, so a transfer mined in between is still found (in a block)."""
    mempool = set(node.call("getrawmempool"))
    height = node.call("getblockcount")
    on_chain = set()
    for h in range(1, height + 1):
        hsh = node.call("getblockhash", h)
        if hsh not in block_txs:
            blk = node.call("getblock", hsh)
            block_txs[hsh] = [t["txid"] for t in blk["tx"] if t.get("type") != "coinbase"]
        on_chain.update(block_txs[hsh])
    in_blocks = [a for a in acked if a[0] in on_chain]
    in_mempool = [a for a in acked if a[0] not in on_chain and a[0] in mempool]
    lost = [a for a in acked if a[0] not in on_chain and a[0] not in mempool]
    return in_blocks, in_mempool, lost, height


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", nargs="?", type=int, default=20, help="kill -9 rounds (default 20)")
    ap.add_argument("--powkit", default=None, help="the powkit binary (default: target/release/powkit)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    ap.add_argument("--seed", type=int, default=None, help="random seed for the kill moments")
    ap.add_argument("--min-wait", type=float, default=0.3, help="shortest run before a kill, seconds (0.3)")
    ap.add_argument("--max-wait", type=float, default=4.0, help="longest run before a kill, seconds (4.0)")
    ap.add_argument("--warmup-blocks", type=int, default=2, help="blocks mined before the client starts (2)")
    ap.add_argument("--dir", default=None, help="work directory (default: a new temporary one, removed on success)")
    args = ap.parse_args()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    powkit = args.powkit or os.path.join(root, "target", "release", "powkit")
    if not os.access(powkit, os.X_OK):
        print(f"kill9: no powkit binary at {powkit} (cargo build --release, or pass --powkit)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    work = args.dir or tempfile.mkdtemp(prefix="powkit-kill9-")
    os.makedirs(work, exist_ok=True)
    out = sys.stderr if args.json else sys.stdout

    def say(msg):
        print(msg, file=out, flush=True)

    miner_key = os.path.join(work, "miner.key")
    payee_key = os.path.join(work, "payee.key")
    for k in (miner_key, payee_key):
        if os.path.exists(k):
            os.remove(k)
    miner_pk = new_key(powkit, miner_key)
    payee = new_key(powkit, payee_key)
    datadir = os.path.join(work, "node")
    node = Node(powkit, datadir, miner_key)
    client = Client(powkit, miner_key, miner_pk, payee, datadir)
    rounds = []
    reported = 0  # rejections printed so far
    block_txs = {}
    status = 0
    say(f"kill9: {args.rounds} rounds, seed {seed}, work dir {work}, binary {powkit}")
    try:
        node.start()
        t = time.monotonic()
        while node.call("getblockcount") < args.warmup_blocks:
            if time.monotonic() - t > 120:
                raise RuntimeError(f"the node mined fewer than {args.warmup_blocks} blocks in 120 s")
            time.sleep(0.1)
        client.addr = node.rpc_addr
        client.start()
        for r in range(1, args.rounds + 1):
            client.round = r
            wait = rng.uniform(args.min_wait, args.max_wait)
            time.sleep(wait)
            acked_before_kill = len(client.snapshot()[0])
            node.kill9()
            client.addr = None
            restart_s = node.start()
            acked, rejected = client.snapshot()
            in_blocks, in_mempool, lost, height = check(node, acked, block_txs)
            client.addr = node.rpc_addr
            if client.error:
                raise client.error
            rec = {
                "round": r,
                "killed_after_s": round(wait, 3),
                "restart_s": round(restart_s, 3),
                "height": height,
                "acked": len(acked),
                "acked_before_kill": acked_before_kill,
                "in_blocks": len(in_blocks),
                "in_mempool": len(in_mempool),
                "lost": len(lost),
                "lost_txids": [{"txid": a[0], "nonce": a[1], "acked_in_round": a[2]} for a in lost],
                "rejected": len(rejected),
                "rejected_since_last_check": [{"nonce": n, "error": m} for n, m, _ in rejected[reported:]],
            }
            seen_lost = {x["txid"] for prev in rounds for x in prev["lost_txids"]}
            new_lost = [a for a in lost if a[0] not in seen_lost]
            rec["lost_new"] = len(new_lost)
            rounds.append(rec)
            say(f"round {r:2}: killed after {wait:5.2f} s, restarted in {restart_s:5.2f} s, height {height:4}: "
                f"acked {len(acked):4}, in blocks {len(in_blocks):4}, in mempool {len(in_mempool):3}, "
                f"LOST {len(lost)} ({rec['lost_new']} new)" + (f", rejected sends {len(rejected)}" if rejected else ""))
            for n, m, _ in rejected[reported:]:
                say(f"          a send was refused (nonce {n}): {m}")
            reported = len(rejected)
            for a in new_lost[:5]:
                say(f"          lost {a[0]} (nonce {a[1]}, acknowledged in round {a[2]})")
            if lost:
                status = 1
    except (RuntimeError, RpcError, OSError, subprocess.CalledProcessError) as e:
        say(f"kill9: harness error: {e}")
        say(f"--- node log tail ({datadir}/node.log) ---\n{log_tail(datadir)}")
        status = 2
    finally:
        client.halt.set()
        client.addr = None
        node.stop()
    acked, rejected = client.snapshot()
    lost_any = sorted({x["txid"] for rec in rounds for x in rec["lost_txids"]})
    summary = {
        "rounds": len(rounds),
        "rounds_requested": args.rounds,
        "seed": seed,
        "acked": len(acked),
        "lost": len(lost_any),
        "lost_txids": lost_any,
        "rounds_with_loss": sum(1 for rec in rounds if rec["lost_new"]),
        "rejected_sends": len(rejected),
        "rejections": [{"nonce": n, "error": m, "round": rr} for n, m, rr in rejected],
        "final_height": rounds[-1]["height"] if rounds else None,
        "restart_s_median": median([rec["restart_s"] for rec in rounds]),
        "restart_s_max": max([rec["restart_s"] for rec in rounds], default=None),
        "ok": status == 0,
        "status": status,
        "work_dir": work,
        "per_round": rounds,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        say(f"kill9: {len(rounds)} rounds, {len(acked)} transfers acknowledged, {len(lost_any)} LOST "
            f"(new losses in {summary['rounds_with_loss']} rounds), median restart {summary['restart_s_median']} s")
    if status == 0 and args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    elif status != 0:
        say(f"kill9: kept {work} (node log: {datadir}/node.log)")
    return status


if __name__ == "__main__":
    sys.exit(main())
