#!/usr/bin/env python3
"""Reads a miner's cgminer API the way mining-farm tools do: one TCP connection per command, the
JSON request sent, the reply read to the end of the connection, the trailing NUL stripped, then
json.loads.

    tools/cgminer-api.py [--host 127.0.0.1] [--port 4028] [--raw] COMMAND [COMMAND ...]

COMMAND is summary, devs, pools, version, or joined ones (summary+devs). Prints one JSON object per
command, {"command": ..., "reply": ...}, one a line. Exit 1 when a reply is not JSON or its STATUS is
an error (E), 2 when the miner cannot be reached.
"""

import argparse
import json
import socket
import sys


def call(host, port, command, timeout=10.0):
    """One request on its own connection; returns the decoded reply."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(json.dumps({"command": command}).encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    data = b"".join(chunks)
    # cgminer ends its reply with a NUL byte.
    data = data.rstrip(b"\0")
    return json.loads(data.decode("utf-8"))


def status_ok(reply):
    if "STATUS" in reply:
        return all(s.get("STATUS") == "S" for s in reply["STATUS"])
    # Joined commands: {"summary": [{...}], "devs": [{...}], "id": 1}.
    return all(status_ok(v[0]) for k, v in reply.items() if k != "id")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4028)
    ap.add_argument("commands", nargs="+")
    a = ap.parse_args()
    code = 0
    for c in a.commands:
        try:
            r = call(a.host, a.port, c)
        except OSError as e:
            print(f"cgminer-api: {a.host}:{a.port}: {e}", file=sys.stderr)
            return 2
        except ValueError as e:
            print(f"cgminer-api: {c}: the reply is not JSON: {e}", file=sys.stderr)
            return 1
        print(json.dumps({"command": c, "reply": r}))
        if not status_ok(r):
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
