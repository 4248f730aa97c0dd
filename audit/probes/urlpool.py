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

import msgspec

from audit.config import UrlConfig
from audit.errors import ProbeError
from audit.probes.curlprobe import probe_curl
from audit.probes.hostfiles import FileJob
from audit.probes.hostsched import servers
from audit.probes.urlguard import AddressPolicy
from audit.store.urls import HostFile, UrlProbe
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
    by server address into parts of about equal size."""
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
    per_process = msgspec.structs.replace(settings, workers=max(1, settings.workers // processes))
    context = worker_context()
    try:
        channel = context.Queue()
    except OSError:  # no POSIX semaphores here (some containers): threads still work
        yield from probe_curl(urls, settings, files=files, policy=policy)
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


def _worker(
    urls: list[str],
    files: list[FileJob],
    settings: UrlConfig,
    channel: object,
    known: dict[tuple[str, int], list[tuple[int, str]] | str],
) -> None:
    """Worker process body: probe (connecting to the addresses the parent resolved),
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
