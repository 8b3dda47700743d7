"""Shared pieces of the fault harnesses (tools/kill9.py, tools/netns-faults.py).

Standard library only. The one JSON-RPC call is `rpc()`: it speaks HTTP/1.1 JSON-RPC 2.0 to the
node's RPC address and, when the node's data directory holds a `.cookie` (bitcoind's cookie
authentication: one line `__cookie__:HEX`), sends it as HTTP Basic credentials.
"""

import base64
import ctypes
import json
import os
import socket
import subprocess
import time

CLONE_NEWNET = 0x40000000


class RpcError(Exception):
    """The node answered with a JSON-RPC error (code, message) or could not be reached."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _libc():
    return ctypes.CDLL("libc.so.6", use_errno=True)


def socket_in_netns(netns):
    """A TCP socket created inside network namespace `netns` (a name under /run/netns), or in the
    caller's namespace when `netns` is None. The namespace is switched for this thread only, for
    the moment the socket is created: a socket stays in the namespace it was made in."""
    if netns is None:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    libc = _libc()
    here = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns}")
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            if libc.setns(here, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the harness's namespace")
    finally:
        os.close(here)
        os.close(there)


def rpc(addr, method, *params, datadir=None, netns=None, timeout=10.0):
    """Call `method` on the node whose JSON-RPC listens at `addr` ("IP:PORT"); returns `result`.

    The one place the harnesses talk to a node: if DATADIR/.cookie exists it is sent as HTTP Basic
    credentials (as `bitcoin-cli -datadir` does). Raises RpcError on a JSON-RPC error, a refused
    or reset connection, or a timeout."""
    host, port = addr.rsplit(":", 1)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    headers = [
        "POST / HTTP/1.1",
        f"Host: {addr}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if datadir is not None:
        cookie = os.path.join(datadir, ".cookie")
        if os.path.exists(cookie):
            with open(cookie, "rb") as f:
                cred = base64.b64encode(f.read().strip()).decode()
            headers.append(f"Authorization: Basic {cred}")
    req = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    try:
        s = socket_in_netns(netns)
        try:
            s.settimeout(timeout)
            s.connect((host, int(port)))
            s.sendall(req)
            chunks = []
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
        finally:
            s.close()
    except OSError as e:
        raise RpcError(f"{method} at {addr}: {e}") from None
    resp = b"".join(chunks)
    head, _, payload = resp.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
    if status.split(" ")[1:2] == ["401"]:
        # Not authenticated (yet): a node writes its cookie at start, maybe after node.json.
        # Reported like an unanswered call, so callers retry and then give up on their timeout.
        raise RpcError(f"{method} at {addr}: {status} (DATADIR/.cookie missing or stale)")
    try:
        v = json.loads(payload)
    except ValueError:
        raise RpcError(f"{method} at {addr}: {status or 'no answer'} {payload[:200]!r}") from None
    err = v.get("error")
    if err:
        raise RpcError(f"{method}: {err.get('message')} ({err.get('code')})", err.get("code"))
    return v.get("result")


def new_key(powkit, path):
    """`powkit key new --out PATH`; returns the public key (64 hex digits)."""
    out = subprocess.run([powkit, "key", "new", "--out", path], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def transfer(powkit, key, to, amount, fee, nonce, chain="powkit-regtest"):
    """A signed transfer: (hex, txid), from `powkit tx transfer --json`."""
    out = subprocess.run(
        [powkit, "tx", "transfer", "--chain", chain, "--key", key, "--to", to, "--amount", str(amount),
         "--fee", str(fee), "--nonce", str(nonce), "--json"],
        capture_output=True, text=True, check=True,
    )
    v = json.loads(out.stdout)
    return v["hex"], v["txid"]


def wait_node_json(datadir, proc, timeout=30.0):
    """Wait until the node has written DATADIR/node.json; returns it as a dict ({"p2p", "rpc", ...}).
    Raises RuntimeError if the process exits first or the timeout passes."""
    info = os.path.join(datadir, "node.json")
    t = time.monotonic()
    while True:
        try:
            with open(info) as f:
                return json.load(f)
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"node in {datadir} exited with status {proc.returncode} before starting")
        if time.monotonic() - t > timeout:
            raise RuntimeError(f"node in {datadir} wrote no node.json within {timeout:.0f} s")
        time.sleep(0.02)


def log_tail(datadir, lines=30, grep=None):
    """The last `lines` lines of DATADIR/node.log (only those containing `grep`, if given)."""
    try:
        with open(os.path.join(datadir, "node.log"), errors="replace") as f:
            ls = f.read().splitlines()
    except OSError:
        return ""
    if grep:
        ls = [line for line in ls if grep.lower() in line.lower()]
    return "\n".join(ls[-lines:])


def median(xs):
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
