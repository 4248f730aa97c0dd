"""A loopback HTTP server that answers every request after a fixed latency (the URL benchmark's far end).

asyncio with raw protocols, keep-alive and no framework, so one process sustains thousands of
requests per second while each answer waits ``--latency`` seconds like a distant image host. It
listens on several loopback addresses (127.0.0.1, 127.0.0.2, ...) so the client sees many hosts
and its per-host limits apply as in a real crawl. It exits by itself after ``--seconds``.

    python benchmarks/latency_server.py --hosts 32 --latency 0.05 --seconds 120
prints "READY <port>" once listening, then the number of requests served when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

# A JPEG's start (SOI + JFIF header) and end (EOI) markers around padding: what a probe's magic-byte
# and end-marker checks look at, at a typical small ranged-GET answer size.
JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\x00" * 200
    + b"\xff\xd9"
)


def response(path: bytes) -> bytes:
    """The JPEG with the request's path in a comment segment: each URL has its own bytes, as on a
    real host (one image behind many URLs is a host's stand-in, audit/probes/placeholders.py)."""
    note = path[:1000]
    body = JPEG[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + JPEG[2:]
    head = f"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class _Latency(asyncio.Protocol):
    """Answers each complete request head after the latency; pipelining-safe by counting heads."""

    served = 0

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            path = self.buffer[:end].split(b" ", 2)[1:2]
            self.buffer = self.buffer[end + 4 :]
            loop.call_later(self.latency, self._answer, path[0] if path else b"/")

    def _answer(self, path: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response(path))
            _Latency.served += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(hosts: int, latency: float, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    first = await loop.create_server(lambda: _Latency(latency), "127.0.0.1", 0, backlog=4096)
    port = first.sockets[0].getsockname()[1]
    servers = [first]
    for i in range(2, hosts + 1):
        servers.append(
            await loop.create_server(lambda: _Latency(latency), f"127.0.0.{i}", port, backlog=4096)
        )
    print(f"READY {port}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.to_thread(sys.stdin.read), timeout=seconds)
    for server in servers:
        server.close()
    print(f"SERVED {_Latency.served}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    asyncio.run(serve(args.hosts, args.latency, args.seconds))


if __name__ == "__main__":
    main()
