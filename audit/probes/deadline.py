"""A total time bound per request, which socket timeouts alone cannot give.

A read timeout limits each wait for bytes, so a server that trickles one byte just under it (a
tarpit) holds a worker for hours. Each probe attempt registers its connection's socket with a
deadline; one watchdog thread shuts down the sockets of attempts past their deadline, the blocked
read returns at once, and the probe reports a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator


class Deadlines:
    """Per-thread deadlines over the sockets the guarded connections use."""

    def __init__(self, seconds: float, tick: float = 0.25) -> None:
        self.seconds = seconds
        self.tick = tick
        self._local = threading.local()
        self._watched: dict[int, tuple[float, socket.socket]] = {}
        self._expired: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def bound(self) -> Iterator[Callable[[], bool]]:
        """Bound the requests of this block; the yielded callable says whether time ran out."""
        ident = threading.get_ident()
        self._local.deadline = time.monotonic() + self.seconds
        self._start_watchdog()
        try:
            yield lambda: ident in self._expired
        finally:
            self._local.deadline = None
            with self._lock:
                self._watched.pop(ident, None)
                self._expired.discard(ident)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent waiting for our own politeness limit is not the server's: this thread's
        deadline moves on by the wait, and the previous hop's socket (back in the pool, maybe in
        another thread's hands by now) is no longer watched for it."""
        ident = threading.get_ident()
        with self._lock:
            self._watched.pop(ident, None)
        started = time.monotonic()
        try:
            yield
        finally:
            deadline = getattr(self._local, "deadline", None)
            if deadline is not None:
                self._local.deadline = deadline + (time.monotonic() - started)

    def attach(self, sock: socket.socket | None) -> None:
        """Called by a connection once its request is sent: watch this socket for this thread."""
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None and sock is not None:
            with self._lock:
                self._watched[threading.get_ident()] = (deadline, sock)

    def close(self) -> None:
        self._stop.set()

    def _start_watchdog(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._watch, name="url-deadlines", daemon=True
                    )
                    self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            with self._lock:
                late = [(ident, s) for ident, (d, s) in self._watched.items() if d <= now]
                for ident, _ in late:
                    del self._watched[ident]
                    self._expired.add(ident)
            for _, sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
