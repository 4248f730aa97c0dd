"""Running many URL probes at once, politely: per-host limits in threads, threads in processes.

A 50 ms round trip means 2,000 URLs/s needs ~100+ requests in flight, and requests spends most of
a millisecond of CPU per request, so one process tops out near one core. Large runs therefore fan
out to one process per core, each with its own thread pool and connection pools.

Politeness is per server, not per spelling of its name: each URL's host is resolved once up front
(the SSRF guard's resolution, which connections then use) and URLs are queued by that address, so
``localhost``, ``127.1`` and ``2130706433`` share one server's ``per_host`` slots; redirect hops
take a slot of the server they go to (:class:`audit.probes.urlguard.InFlight`). Worker processes
get URLs split by address, plus the parent's resolutions, so one server's limit is enforced by
exactly one process. The origins' robots.txt and tdmrep.json (:mod:`audit.probes.hostfiles`) are
jobs of the same pool, ahead of their server's URLs: fetched in parallel with the probing, not
in a phase after it. Results stream back in small msgpack chunks through one queue. The worker
processes are started the package's way (:mod:`audit.workers`) but not as a pool: a consumer that
stops early (Ctrl-C, an error) ends them at once, where a pool could only wait for their URLs. A
worker process whose parent dies (a killed run) ends too.
"""

from __future__ import annotations

import contextlib
import heapq
import multiprocessing
import os
import queue
import signal
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

import msgspec

from audit.config import UrlConfig
from audit.errors import ProbeError
from audit.probes.hostfiles import FileJob, fetch_host_file
from audit.probes.http import Prober
from audit.probes.urlguard import AddressPolicy, server_address
from audit.probes.urlnames import host_of
from audit.store.urls import HostFile, UrlProbe
from audit.workers import context as worker_context

_CHUNK = 64  # results per message from a worker process
_CHUNK_SECONDS = 0.1
J = TypeVar("J")


class HostScheduler(Generic[J]):
    """Hands out jobs (URLs, host files) so that no server (``key`` of a job: its address) has
    more than ``per_host`` in flight or starts within ``delay`` of its previous request; a server
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
        self.in_flight = dict.fromkeys(self.pending, 0)
        self.not_before = dict.fromkeys(self.pending, 0.0)
        self.ready: deque[str] = deque(self.pending)
        self.queued = set(self.pending)
        self.later: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.stopped = False

    def take(self) -> tuple[str, J] | None:
        """The next (host, job) to run, waiting for a host to free up; None when all are out."""
        with self.cond:
            while not self.stopped and self.remaining:
                now = time.monotonic()
                while self.later and self.later[0][0] <= now:
                    self.ready.append(heapq.heappop(self.later)[1])
                while self.ready:
                    host = self.ready.popleft()
                    if self.not_before[host] > now:
                        heapq.heappush(self.later, (self.not_before[host], host))
                        continue
                    return host, self._start(host, now)
                self.cond.wait(self.later[0][0] - now if self.later else None)
            self.cond.notify_all()
            return None

    def _start(self, host: str, now: float) -> J:
        waiting = self.pending[host]
        url = waiting.popleft()
        self.remaining -= 1
        self.in_flight[host] += 1
        if self.delay:
            self.not_before[host] = now + self.delay
        if waiting and self.in_flight[host] < self.per_host:
            self._requeue(host, now)
        else:
            self.queued.discard(host)
        return url

    def _requeue(self, host: str, now: float) -> None:
        if self.not_before[host] > now:
            heapq.heappush(self.later, (self.not_before[host], host))
        else:
            self.ready.append(host)

    def done(self, host: str) -> None:
        with self.cond:
            self.in_flight[host] -= 1
            if self.pending[host] and host not in self.queued:
                self.queued.add(host)
                self._requeue(host, time.monotonic())
                self.cond.notify()

    def pause(self, host: str, seconds: float) -> None:
        with self.cond:
            self.not_before[host] = max(self.not_before[host], time.monotonic() + seconds)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


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


def probe_threaded(
    urls: Sequence[str],
    settings: UrlConfig,
    *,
    files: Sequence[FileJob] = (),
    alive: Callable[[], bool] | None = None,
    policy: AddressPolicy | None = None,
) -> Iterator[UrlProbe | HostFile]:
    """Probe ``urls`` with ``settings.workers`` threads in this process, yielding as they finish;
    each host file of ``files`` goes out ahead of its server's URLs, yielded when definite."""
    policy = policy or AddressPolicy(settings.allow_private, settings.allow_networks)
    jobs: list[FileJob | str] = [*files, *urls]
    key = servers([_url(job) for job in jobs], policy, settings.workers)
    scheduler = HostScheduler(
        jobs, settings.per_host, settings.delay_seconds, lambda j: key(_url(j))
    )
    prober = Prober(settings, pools=max(64, 2 * settings.workers), policy=policy)
    results: queue.SimpleQueue[UrlProbe | HostFile | None] = queue.SimpleQueue()
    stopping = threading.Event()
    health = HostHealth(settings.host_failure_limit)

    def work() -> None:
        try:
            while (job := scheduler.take()) is not None:
                if alive is not None and not alive():
                    scheduler.stop()
                    break
                server, url = job
                if isinstance(url, FileJob):
                    try:
                        fetched = fetch_host_file(prober, url)
                    finally:
                        scheduler.done(server)
                    if fetched is not None:
                        results.put(fetched)
                    continue
                host = host_of(url)  # a dead site behind a shared address is given up on alone

                def backoff(seconds: float, server: str = server) -> None:
                    scheduler.pause(server, seconds)  # the whole server is asked to back off
                    stopping.wait(seconds)

                try:
                    result = health.down(host, url) or prober.probe(url, backoff)
                except Exception as exc:  # one bad URL never stops the run (a bug: type only)
                    detail = f"probe failed ({type(exc).__name__})"
                    result = UrlProbe(url, "invalid", None, detail, None, time.time())
                finally:
                    scheduler.done(server)
                health.saw(host, result)
                results.put(result)
        finally:
            results.put(None)

    threads = [
        threading.Thread(target=work, name="url-probe", daemon=True)
        for _ in range(max(1, min(settings.workers, len(jobs))))
    ]
    for thread in threads:
        thread.start()
    try:
        finished = 0
        while finished < len(threads):
            item = results.get()
            if item is None:
                finished += 1
            else:
                yield item
        prober.close()  # every thread is done with the session; an early exit leaves it to GC
    finally:
        stopping.set()
        scheduler.stop()


def _url(job: FileJob | str) -> str:
    return job.url if isinstance(job, FileJob) else job


def probe_parallel(
    urls: Sequence[str], settings: UrlConfig, processes: int, files: Sequence[FileJob] = ()
) -> Iterator[UrlProbe | HostFile]:
    """:func:`probe_threaded` in ``processes`` worker processes (jobs split by server address)."""
    policy = AddressPolicy(settings.allow_private, settings.allow_networks)
    key = servers([*urls, *(f.url for f in files)], policy, settings.workers)
    parts: list[list[str]] = [[] for _ in range(processes)]
    file_parts: list[list[FileJob]] = [[] for _ in range(processes)]
    for url in urls:
        parts[zlib.crc32(key(url).encode()) % processes].append(url)
    for job in files:
        file_parts[zlib.crc32(key(job.url).encode()) % processes].append(job)
    known = policy.known()
    per_process = msgspec.structs.replace(settings, workers=max(1, settings.workers // processes))
    context = worker_context()
    try:
        channel = context.Queue()
    except OSError:  # no POSIX semaphores here (some containers): threads still work
        yield from probe_threaded(urls, settings, files=files, policy=policy)
        return
    workers = [
        context.Process(
            target=_worker, args=(part, file_part, per_process, channel, known), daemon=True
        )
        for part, file_part in zip(parts, file_parts, strict=True)
        if part or file_part
    ]
    decoder = msgspec.msgpack.Decoder(tuple[list[UrlProbe], list[HostFile]])
    try:
        for process in workers:
            process.start()
        running = len(workers)
        while running:
            try:
                message = channel.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in workers) and channel.empty():
                    codes = sorted({p.exitcode or 0 for p in workers})
                    raise ProbeError(f"URL probe workers exited unexpectedly ({codes})") from None
                continue
            if message is None:
                running -= 1
            else:
                probes, fetched = decoder.decode(message)
                yield from fetched
                yield from probes
    finally:
        started = [p for p in workers if p.pid is not None]
        for process in started:
            if process.is_alive():
                process.terminate()
        for process in started:
            process.join(timeout=2.0)


def _worker(
    urls: list[str],
    files: list[FileJob],
    settings: UrlConfig,
    channel: object,
    known: dict[tuple[str, int], list[tuple[int, str]] | str],
) -> None:
    """Worker process body: probe in threads (connecting to the addresses the parent resolved),
    ship results in chunks, stop if orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    alive = _die_with_parent()
    encoder = msgspec.msgpack.Encoder()
    put = channel.put  # type: ignore[attr-defined]
    chunk: list[UrlProbe] = []
    fetched: list[HostFile] = []
    sent = time.monotonic()
    with contextlib.suppress(BrokenPipeError):
        policy = AddressPolicy(settings.allow_private, settings.allow_networks, known)
        for item in probe_threaded(urls, settings, files=files, alive=alive, policy=policy):
            if isinstance(item, HostFile):
                fetched.append(item)
            else:
                chunk.append(item)
            if len(chunk) >= _CHUNK or time.monotonic() - sent > _CHUNK_SECONDS:
                put(encoder.encode((chunk, fetched)))
                chunk, fetched, sent = [], [], time.monotonic()
        if not alive():
            channel.cancel_join_thread()  # type: ignore[attr-defined]  # nobody reads: just exit
            return
        if chunk or fetched:
            put(encoder.encode((chunk, fetched)))
        put(None)


def _die_with_parent() -> Callable[[], bool]:
    """End this worker when the process that started it dies (a ``kill -9`` of the run), watching
    it from a thread; returns the check the probing threads make before each URL."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a worker process: nothing to watch
        return lambda: True

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return parent.is_alive
