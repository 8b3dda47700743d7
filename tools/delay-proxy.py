#!/usr/bin/env python3
"""A delaying TCP proxy: every byte is forwarded, in order, DELAY ms after it arrived, in both
directions (one-way latency DELAY, round trip +2*DELAY). Used by tools/netns-faults.py for the
delayed link, because this kernel has no `netem` qdisc.

    tools/delay-proxy.py LISTEN_IP:PORT TARGET_IP:PORT [--delay-ms 200]

Runs until killed. Closing either side closes the other once the delayed bytes are out.
"""

import argparse
import asyncio
import sys


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    q = asyncio.Queue()

    async def receive():
        try:
            while True:
                data = await reader.read(65536)
                q.put_nowait((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            q.put_nowait((loop.time() + delay, b""))

    async def send():
        try:
            while True:
                due, data = await q.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    await asyncio.gather(receive(), send())


async def main():
    ap = argparse.ArgumentParser(description="delaying TCP proxy")
    ap.add_argument("listen")
    ap.add_argument("target")
    ap.add_argument("--delay-ms", type=float, default=200.0)
    a = ap.parse_args()
    delay = a.delay_ms / 1000.0
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.target.rsplit(":", 1)

    async def handle(creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection(thost, int(tport))
        except OSError as e:
            print(f"delay-proxy: connecting to {a.target}: {e}", file=sys.stderr, flush=True)
            cwriter.close()
            return
        await asyncio.gather(pump(creader, uwriter, delay), pump(ureader, cwriter, delay))

    server = await asyncio.start_server(handle, lhost, int(lport))
    print(f"delay-proxy: {a.listen} -> {a.target}, {a.delay_ms:.0f} ms each way", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
