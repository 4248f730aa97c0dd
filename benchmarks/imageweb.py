"""The loopback image web of ``bench_urlweb`` (issue 14): one process serving every host of a plan.

Every answer comes after a fixed latency (50 ms; a queue in due order and the poll timeout, so
waiting costs no CPU); what each URL answers is ``webplan.WebPlan.kind``. Live URLs get a distinct
JPEG each (a comment segment naming the path makes every body unique, so no host looks like it
answers one stand-in image), honouring ``Range: bytes=a-b`` with a 206; ``robots.txt`` and
``/.well-known/*`` are 404 on every host (counted apart). A reset is an RST (SO_LINGER 0) after the
request; a stalled request is never answered. Keep-alive, ``Connection: close`` honoured.

The server is a bare epoll loop (no asyncio, no framework, no C), one process for every host:

    .venv/bin/python -m benchmarks.imageweb --port 8080
prints ``READY <port>``; then each ``stats`` line on stdin prints, as a JSON line, what happened
since the last one (requests per kind, connections, requests answered per second, how late
answers left); end of stdin stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import select
import socket
import struct
import sys
import time
import zlib
from collections import Counter, deque

from benchmarks.webplan import LIVE, NOT_FOUND, RESET, STALL, WebPlan


def jpeg_variants(seed: int, count: int = 16) -> list[bytes]:
    """Small JPEGs (about 3-8 KB): smooth seeded noise at 160x120 .. 320x240, quality 70."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    variants = []
    for i in range(count):
        w, h = 160 + 20 * (i % 8), 120 + 15 * (i % 8)
        noise = Image.frombytes("RGB", (w // 8, h // 8), rng.randbytes(3 * (w // 8) * (h // 8)))
        image = noise.resize((w, h), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(2))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=70)
        variants.append(buf.getvalue())
    return variants


def unique_jpeg(base: bytes, target: bytes) -> bytes:
    """``base`` with a COM segment naming ``target`` after its JFIF header: a distinct body per URL."""
    at = 4 + int.from_bytes(base[4:6], "big") if base[2:4] == b"\xff\xe0" else 2
    comment = target[:60000]
    return base[:at] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[at:]


_REASONS = {
    200: "OK",
    206: "Partial Content",
    404: "Not Found",
    410: "Gone",
    416: "Range Not Satisfiable",
}
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _range(lowered: bytes, size: int) -> tuple[int, int] | None:
    """The first ``bytes=a-b`` / ``bytes=a-`` of a Range header, clipped to the body; None if absent."""
    at = lowered.find(b"\r\nrange:")
    if at < 0:
        return None
    stop = lowered.find(b"\r\n", at + 2)
    value = lowered[at + 8 : stop if stop >= 0 else len(lowered)].strip()
    first, _, last = value.removeprefix(b"bytes=").partition(b"-")
    try:
        start = int(first)
        end = min(int(last), size - 1) if last.strip() else size - 1
    except ValueError:
        return None
    return start, end


class ImageWeb:
    """The answering side: counters and the answer to one request head."""

    def __init__(self, plan: WebPlan, latency: float) -> None:
        self.plan = plan
        self.latency = latency
        self.variants = jpeg_variants(plan.seed)
        self.counts: Counter[str] = Counter()

    def answer(self, head: bytes) -> tuple[str, bytes]:
        """(kind, response bytes) for a request head; stall and reset have no bytes."""
        line_end = head.find(b"\r\n")
        parts = head[: line_end if line_end >= 0 else len(head)].split(b" ")
        target = parts[1] if len(parts) > 1 else b"/"
        if target.startswith((b"/robots.txt", b"/.well-known/")):
            return "hostfile", self._head(404, b"text/plain", b"not found\n", b"")
        kind = self.plan.kind(target)
        if kind in (RESET, STALL):
            return kind, b""
        if kind != LIVE:
            status = 404 if kind == NOT_FOUND else 410
            return kind, self._head(
                status, b"text/html", b"<html><body>%d</body></html>" % status, b""
            )
        body = unique_jpeg(self.variants[zlib.crc32(target) % len(self.variants)], target)
        wanted = _range(head.lower(), len(body))
        if wanted is None:
            return kind, self._head(200, b"image/jpeg", body, b"")
        start, end = wanted
        if start >= len(body) or start > end:
            extra = b"Content-Range: bytes */%d\r\n" % len(body)
            return kind, self._head(416, b"text/plain", b"", extra)
        extra = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(body))
        return kind, self._head(206, b"image/jpeg", body[start : end + 1], extra)

    @staticmethod
    def _head(status: int, ctype: bytes, body: bytes, extra: bytes) -> bytes:
        reason = _REASONS[status].encode()
        return (
            b"HTTP/1.1 %d %s\r\nServer: imageweb\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Accept-Ranges: bytes\r\n%s\r\n" % (status, reason, ctype, len(body), extra)
        ) + body


class _Conn:
    """One client connection: bytes not yet parsed, bytes not yet sent, whether to close after."""

    __slots__ = ("close_after", "closed", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.close_after = False
        self.closed = False


class _Server:
    """A single-threaded epoll loop over every host's listening socket and its connections.

    Not asyncio: at 5,000 new connections a second asyncio's transport, task and handle objects
    cost the server about 110 us of CPU per request, several times this loop's, and every CPU
    second the server spends is taken from the tools it serves on a 2-core machine. The latency
    needs no timer heap: every answer waits the same time, so the queue is already in due order.
    """

    def __init__(self, web: ImageWeb, listeners: list[socket.socket]) -> None:
        self.web = web
        self.epoll = select.epoll()
        self.listeners = {s.fileno(): s for s in listeners}
        self.conns: dict[int, _Conn] = {}
        self.due: deque[tuple[float, _Conn, bytes]] = deque()
        self.since, self.per_second, self.late_sum, self.late_max = time.monotonic(), [0], 0.0, 0.0
        for fd in self.listeners:
            self.epoll.register(fd, select.EPOLLIN)
        self.epoll.register(sys.stdin.fileno(), select.EPOLLIN)

    def run(self) -> None:
        """Serve until stdin ends; a ``stats`` line prints the counts since the last one."""
        stdin, latency, due = sys.stdin.fileno(), self.web.latency, self.due
        commands = b""
        while True:
            wait = max(0.0, due[0][0] - time.monotonic()) if due else 1.0
            for fd, events in self.epoll.poll(wait):
                if fd in self.listeners:
                    self._accept(self.listeners[fd])
                elif fd == stdin:
                    chunk = os.read(stdin, 4096)
                    if not chunk:
                        return
                    commands += chunk
                    while b"\n" in commands:
                        line, _, commands = commands.partition(b"\n")
                        if line.strip() == b"stats":
                            print(json.dumps(self._stats()), flush=True)
                elif (conn := self.conns.get(fd)) is not None:
                    if events & select.EPOLLOUT:
                        self._send(conn, b"")
                    if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        self._receive(conn, time.monotonic() + latency)
            now = time.monotonic()
            while due and due[0][0] <= now:
                when, conn, head = due.popleft()
                if not conn.closed:
                    self._answer(conn, head)
                    second = int(now - self.since)
                    self.per_second.extend([0] * (second + 1 - len(self.per_second)))
                    self.per_second[second] += 1
                    self.late_sum += now - when
                    self.late_max = max(self.late_max, now - when)

    def _stats(self) -> dict[str, object]:
        """Since the last call: requests per kind, connections, requests answered in each second
        (the shape of a run: ramp-up, plateau, tail), and how late answers left (a server short
        of CPU answers late and would slow the tools down)."""
        counts = dict(self.web.counts)
        connections = counts.pop("connections", 0)
        answered = sum(self.per_second)
        stats = {
            "kinds": counts,
            "connections": connections,
            "per_second": self.per_second,
            "late_ms_mean": round(1000 * self.late_sum / answered, 2) if answered else 0.0,
            "late_ms_max": round(1000 * self.late_max, 1),
        }
        self.web.counts.clear()
        self.since, self.per_second, self.late_sum, self.late_max = time.monotonic(), [], 0.0, 0.0
        return stats

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            self.conns[sock.fileno()] = _Conn(sock)
            self.epoll.register(sock.fileno(), select.EPOLLIN)
            self.web.counts["connections"] += 1

    def _receive(self, conn: _Conn, when: float) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        inbox = conn.inbox + data
        while (end := inbox.find(b"\r\n\r\n")) >= 0:
            self.due.append((when, conn, inbox[:end]))
            inbox = inbox[end + 4 :]
        conn.inbox = inbox

    def _answer(self, conn: _Conn, head: bytes) -> None:
        kind, response = self.web.answer(head)
        self.web.counts[kind] += 1
        if kind == STALL:
            return  # never answered: the client's timeout ends it
        if kind == RESET:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            self._close(conn)
            return
        conn.close_after = conn.close_after or b"\r\nconnection: close" in head.lower()
        self._send(conn, response)

    def _send(self, conn: _Conn, data: bytes) -> None:
        """Send what is queued, then ``data``; what the socket cannot take waits for EPOLLOUT."""
        pending = conn.outbox + data
        try:
            sent = conn.sock.send(pending) if pending else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        waiting = bool(conn.outbox)
        conn.outbox = pending[sent:]
        if conn.outbox and not waiting:
            self.epoll.modify(conn.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
        elif not conn.outbox and waiting:
            self.epoll.modify(conn.sock.fileno(), select.EPOLLIN)
        if not conn.outbox and conn.close_after:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        with contextlib.suppress(OSError):
            self.epoll.unregister(fd)
        conn.sock.close()


def serve(plan: WebPlan, port: int, latency: float) -> None:
    """Listen on every answering host (all on one port), print READY, serve until stdin ends."""
    listeners = []
    for host in range(1, plan.hosts + 1):
        if host in plan.refused:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((plan.address(host), port))
        except OSError as exc:
            raise SystemExit(
                f"imageweb: cannot listen on {plan.address(host)}:{port}: {exc.strerror}"
            ) from None
        sock.listen(4096)
        sock.setblocking(False)
        port = port or sock.getsockname()[1]
        listeners.append(sock)
    server = _Server(ImageWeb(plan, latency), listeners)
    print(f"READY {port}", flush=True)
    server.run()
    for sock in listeners:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    serve(WebPlan(hosts=args.hosts, seed=args.seed), args.port, args.latency)


if __name__ == "__main__":
    main()
