"""One batch of URL probes (:func:`probe_batch`, the stable per-batch entry), in this process or,
for large runs, fanned out to one process per core, each running the curl engine.

One engine process (:mod:`audit.probes.curlprobe`) keeps thousands of requests in flight on one
core; past ``process_threshold`` URLs the run is split over ``processes`` worker processes by
server address (each URL's host resolved once here, the resolutions handed to the workers), so one
server's ``per_host`` limit is enforced by exactly one process. The origins' robots.txt and
tdmrep.json (:mod:`audit.probes.hostfiles`) go to the process of their server, ahead of its URLs.
Results stream back in small msgpack chunks through one queue. The worker processes are started the
package's way (:mod:`audit.workers`) but not as a pool: a consumer that stops early (Ctrl-C, an
error) ends them at once, where a pool could only wait for their URLs. A worker process whose
parent dies (a killed run) ends too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any, NamedTuple

import msgspec

from audit.config import UrlConfig
from audit.errors import ProbeError
from audit.probes.curlprobe import probe_curl
from audit.probes.hostfiles import FileJob
from audit.probes.hostsched import servers
from audit.probes.urlguard import AddressPolicy
from audit.store.urls import HostFile, UrlProbe
from audit.workers import can_start as worker_can_start
from audit.workers import context as worker_context

_CHUNK = 64  # results per message from a worker process
_CHUNK_SECONDS = 0.1


def probe_batch(
    urls: Sequence[str], settings: UrlConfig, files: Sequence[FileJob] = ()
) -> Iterator[UrlProbe | HostFile]:
    """Probe one batch of URLs and fetch its host files, touching no store: the stable entry for
    other engines (the Spark engine calls it per partition inside its executors).

    Yields one :class:`UrlProbe` per URL of ``urls`` (unique URLs; every guarantee of the probe:
    SSRF guard, politeness per server address, retries, caps) and a :class:`HostFile` per definite
    answer among ``files`` (:func:`audit.probes.hostfiles.host_file_jobs` makes them), in the order
    they are decided. Large batches (``settings.process_threshold`` URLs) fan out to
    ``settings.processes`` worker processes (0: one per core; 1: this process only).
    """
    if not urls and not files:
        return iter(())
    processes = settings.processes or os.cpu_count() or 1
    if processes > 1 and len(urls) >= settings.process_threshold:
        return probe_parallel(urls, settings, processes, files)
    return probe_curl(urls, settings, files=files)


def probe_parallel(
    urls: Sequence[str], settings: UrlConfig, processes: int, files: Sequence[FileJob] = ()
) -> Iterator[UrlProbe | HostFile]:
    """:func:`audit.probes.curlprobe.probe_curl` in ``processes`` worker processes, the jobs split
    by server address into parts of about equal size.

    The processes start first, with nothing big in their arguments, and boot (a fresh interpreter
    each) while this process resolves the hosts and splits the work; each part then goes down the
    worker's own pipe. Big arguments would be written into the spawn pipe, one process after the
    other, each write waiting until that child had booted far enough to read it."""
    crew = _take(settings, processes) or _Crew.start(settings, processes)
    if crew is None:  # no POSIX semaphores here (some containers): threads still work
        yield from probe_curl(urls, settings, files=files)
        return
    channel, workers, inboxes = crew.channel, crew.workers, crew.inboxes
    decoder = msgspec.msgpack.Decoder(tuple[list[UrlProbe], list[HostFile]])
    try:
        policy = AddressPolicy(settings.allow_private, settings.allow_networks)
        key = servers([*urls, *(f.url for f in files)], policy, settings.workers)
        parts, where = _split(urls, key, processes)
        file_parts: list[list[FileJob]] = [[] for _ in range(processes)]
        for job in files:
            server = key(job.url)
            if server not in where:  # a server with host files only
                where[server] = min(range(processes), key=lambda i: len(parts[i]))
            file_parts[where[server]].append(job)
        known = policy.known()
        for send, part, file_part in zip(inboxes, parts, file_parts, strict=True):
            try:
                send.send((part, file_part, known))
            except BrokenPipeError:
                raise ProbeError("a URL probe worker exited before taking its work") from None
            send.close()
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


class _Crew(NamedTuple):
    """Worker processes started and waiting for their parts: the settings they were started
    with, the results queue, the processes, this process's end of each one's pipe."""

    settings: UrlConfig
    channel: Any
    workers: list[SpawnProcess]
    inboxes: list[Connection]

    @classmethod
    def start(cls, settings: UrlConfig, processes: int) -> _Crew | None:
        """``processes`` workers started now (None: this system cannot give them a queue)."""
        context = worker_context()
        try:
            channel = context.Queue()
        except OSError:
            return None
        per_process = msgspec.structs.replace(
            settings, workers=max(1, settings.workers // processes)
        )
        pipes = [context.Pipe(duplex=False) for _ in range(processes)]
        workers = [
            context.Process(target=_worker, args=(inbox, per_process, channel), daemon=True)
            for inbox, _ in pipes
        ]
        for process, (inbox, _) in zip(workers, pipes, strict=True):
            process.start()
            inbox.close()  # the child's now: a child that dies breaks the pipe, not a hang here
        return cls(settings, channel, workers, [send for _, send in pipes])

    def stop(self) -> None:
        """End processes that got no work (their pipe closes: they return at once)."""
        for send in self.inboxes:
            send.close()
        for process in self.workers:
            process.join(timeout=2.0)
            if process.is_alive():
                process.terminate()


_ready: list[_Crew] = []  # started by warm(), taken by the next probe_parallel


@contextlib.contextmanager
def warm(settings: UrlConfig, expected: int) -> Iterator[None]:
    """Start the worker processes now, when about ``expected`` URLs are coming, so they boot (a
    fresh interpreter each: a second or more on a busy machine) while the caller reads its URL
    files and its cache; :func:`probe_parallel` takes them. Ones left unused are ended on exit."""
    processes = settings.processes or os.cpu_count() or 1
    crew = None
    if processes > 1 and expected >= settings.process_threshold and worker_can_start():
        crew = _Crew.start(settings, processes)
    if crew is not None:
        _ready.append(crew)
    try:
        yield
    finally:
        if crew is not None and crew in _ready:
            _ready.remove(crew)
            crew.stop()


def _take(settings: UrlConfig, processes: int) -> _Crew | None:
    """The crew :func:`warm` started for these settings, if it is still waiting."""
    for crew in _ready:
        if crew.settings == settings and len(crew.workers) == processes:
            _ready.remove(crew)
            return crew
    return None


def _split(
    urls: Sequence[str], key: Callable[[str], str], processes: int
) -> tuple[list[list[str]], dict[str, int]]:
    """The URLs in ``processes`` parts of about equal size, each server's all in one part (the
    biggest servers placed first, each in the smallest part so far: a part twice the others'
    would set the run's wall time); and the part of each server."""
    by_server: dict[str, list[str]] = {}
    for url in urls:
        by_server.setdefault(key(url), []).append(url)
    parts: list[list[str]] = [[] for _ in range(processes)]
    where: dict[str, int] = {}
    for server, group in sorted(by_server.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        smallest = min(range(processes), key=lambda i: len(parts[i]))
        parts[smallest].extend(group)
        where[server] = smallest
    return parts, where


def _worker(inbox: Connection, settings: UrlConfig, channel: object) -> None:
    """Worker process body: take this process's part (its URLs, host files and the parent's
    resolutions), probe (connecting to the addresses the parent resolved), ship results in
    chunks, stop if orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    alive = _die_with_parent()
    try:
        urls, files, known = inbox.recv()
    except EOFError:  # the parent stopped before sending any work
        return
    inbox.close()
    encoder = msgspec.msgpack.Encoder()
    put = channel.put  # type: ignore[attr-defined]
    chunk: list[UrlProbe] = []
    fetched: list[HostFile] = []
    sent = time.monotonic()
    with contextlib.suppress(BrokenPipeError):
        policy = AddressPolicy(settings.allow_private, settings.allow_networks, known)
        for item in probe_curl(urls, settings, files=files, alive=alive, policy=policy):
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
    it from a thread; returns the check the engine makes as it goes."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a worker process: nothing to watch
        return lambda: True

    def watch() -> None:
        parent.join()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return parent.is_alive
