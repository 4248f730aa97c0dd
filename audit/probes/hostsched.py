"""Politeness per server: which job may start now, and which hosts are given up on.

Politeness is per server, not per spelling of its name: each URL's host is resolved once up front
(the SSRF guard's resolution, which connections then use) and jobs are queued by that address, so
``localhost``, ``127.1`` and ``2130706433`` share one server's ``per_host`` slots; a redirect hop
takes a slot of the server it goes to. Single-threaded (the probe engine's loop asks and waits).
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from audit.probes.urlguard import AddressPolicy, server_address
from audit.probes.urlnames import host_of
from audit.store.urls import UrlProbe

J = TypeVar("J")


class HostScheduler(Generic[J]):
    """Hands out jobs so that no server (``key`` of a job: its address) has more than
    ``per_host`` requests in flight or starts a job within ``delay`` of its previous one; a server
    told to back off is paused for everyone. Each server's jobs go out in the order given."""

    def __init__(
        self, jobs: Sequence[J], per_host: int, delay: float, key: Callable[[J], str]
    ) -> None:
        self.per_host = max(1, per_host)
        self.delay = delay
        self.pending: dict[str, deque[J]] = {}
        for job in jobs:
            self.pending.setdefault(key(job), deque()).append(job)
        self.remaining = len(jobs)
        self.in_flight: dict[str, int] = {}
        self.not_before: dict[str, float] = {}
        self.ready: deque[str] = deque(self.pending)
        self.queued = set(self.pending)
        self.later: list[tuple[float, str]] = []

    def take(self, now: float) -> tuple[str, J] | None:
        """The next (server, job) that may start now (its request slot taken), else None."""
        while self.later and self.later[0][0] <= now:
            self.ready.append(heapq.heappop(self.later)[1])
        while self.ready:
            host = self.ready.popleft()
            if self.not_before.get(host, 0.0) > now:
                heapq.heappush(self.later, (self.not_before[host], host))
                continue
            waiting = self.pending[host]
            job = waiting.popleft()
            self.remaining -= 1
            self.in_flight[host] = self.in_flight.get(host, 0) + 1
            if self.delay:
                self.not_before[host] = now + self.delay
            if waiting and self.in_flight[host] < self.per_host:
                self._requeue(host, now)
            else:
                self.queued.discard(host)
            return host, job
        return None

    def wake_at(self) -> float | None:
        """When a paused or spaced-out server may start its next job (None: none is waiting)."""
        return self.later[0][0] if self.later else None

    def enter(self, server: str) -> bool:
        """Take a request slot of ``server`` for a redirect hop or a retry, if one is free."""
        if self.in_flight.get(server, 0) >= self.per_host:
            return False
        self.in_flight[server] = self.in_flight.get(server, 0) + 1
        return True

    def done(self, server: str, now: float) -> None:
        """A request to ``server`` is over: its slot is free again."""
        self.in_flight[server] -= 1
        if self.pending.get(server) and server not in self.queued:
            self.queued.add(server)
            self._requeue(server, now)

    def pause(self, server: str, seconds: float, now: float) -> None:
        self.not_before[server] = max(self.not_before.get(server, 0.0), now + seconds)

    def _requeue(self, host: str, now: float) -> None:
        if self.not_before.get(host, 0.0) > now:
            heapq.heappush(self.later, (self.not_before[host], host))
        else:
            self.ready.append(host)


class HostHealth:
    """Counts each host's consecutive connection-level failures; past the limit the host is
    treated as down and its remaining URLs take the last failure without a request."""

    FAILURES = frozenset({"timeout", "connection", "dns", "tls"})

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures: dict[str, int] = {}
        self.last: dict[str, UrlProbe] = {}

    def down(self, host: str, url: str) -> UrlProbe | None:
        """A stand-in result for ``url`` when ``host`` is down, else None (probe it)."""
        if self.limit <= 0 or self.failures.get(host, 0) < self.limit:
            return None
        last = self.last[host]
        detail = f"not probed: {self.limit} URLs of this host failed in a row ({last.detail})"
        return UrlProbe(url, last.status, None, detail[:300], None, time.time())

    def saw(self, host: str, probe: UrlProbe) -> None:
        if probe.status in self.FAILURES:
            self.failures[host] = self.failures.get(host, 0) + 1
            self.last[host] = probe
        else:
            self.failures[host] = 0


def servers(urls: Sequence[str], policy: AddressPolicy, threads: int) -> Callable[[str], str]:
    """Each URL's server key: the address its connection will use, resolved once per host in
    ``threads`` threads (the policy caches it); the host itself when the URL fails unconnected."""
    first = {host_of(url): url for url in urls}  # any URL of a host stands for it
    with ThreadPoolExecutor(max(1, min(threads, len(first)))) as pool:
        found = pool.map(lambda url: server_address(policy, url), first.values())
        keys = {host: address or host for host, address in zip(first, found, strict=True)}
    return lambda url: keys[host_of(url)]
