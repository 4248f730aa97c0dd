"""Which HTTP engine for the bulk URL probe (issue 14): the same ranged GETs, three clients.

    .venv/bin/python -m benchmarks.bench_url_engines                 # 20,000 URLs over 64 hosts
    .venv/bin/python -m benchmarks.bench_url_engines --urls 5000

Each engine runs in a child process of its own, in ONE process (no fan-out), against
``latency_server.py`` (64 loopback addresses, every answer after 50 ms), with ``--per-host``
requests in flight per address and keep-alive; the figure that decides is the client's CPU per URL
(``getrusage`` of the child: user + system), since the wall time is bounded by the latency and the
in-flight limit once the client keeps up. The engines are minimal (GET + Range, read the status and
the capped body, nothing else) so the comparison is of the transports, not of the probe around them:

- ``urllib3``: a PoolManager driven directly from ``--threads`` threads (what requests does inside);
- ``asyncio``: asyncio streams, a keep-alive connection pool and a semaphore per address;
- ``pycurl``: libcurl's multi interface (``socket_action`` on an epoll selector), one thread.

Printed on the 2-core development machine (20,000 URLs, 64 hosts, per host 8, 50 ms)::

    engine          ok  wall s  URLs/s   CPU s CPU ms/URL
    urllib3      20000    9.38    2131    9.08      0.454
    asyncio      20000    2.59    7710    0.96      0.048
    pycurl       20000    2.38    8407    0.75      0.038

CPU per URL 0.454 ms (urllib3), 0.048 ms (asyncio),
0.038 ms (pycurl); 2,131 / 7,710 / 8,407 URLs/s. pycurl it is (audit/probes/curlprobe.py): the
least CPU, and libcurl brings HTTP parsing, TLS, keep-alive and timeouts in C where an asyncio
client would need its own HTTP/1.1 parser hardened against the hostile-web tests.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import selectors
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from benchmarks.bench_urls import start_server

ENGINES = ("urllib3", "asyncio", "pycurl")
MAX_BYTES = 65536


def run_urllib3(urls: list[str], per_host: int, threads: int) -> int:
    import urllib3

    manager = urllib3.PoolManager(num_pools=256, maxsize=per_host, block=True, retries=False)
    headers = {"Range": f"bytes=0-{MAX_BYTES - 1}", "User-Agent": "bench"}

    def one(url: str) -> int:
        response = manager.request("GET", url, headers=headers, preload_content=False)
        response.read(MAX_BYTES + 1)
        response.release_conn()
        return response.status

    with ThreadPoolExecutor(threads) as pool:
        return sum(status == 200 for status in pool.map(one, urls, chunksize=16))


def run_asyncio(urls: list[str], per_host: int, threads: int) -> int:
    from urllib.parse import urlsplit

    async def main() -> int:
        idle: dict[tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        slots: dict[tuple[str, int], asyncio.Semaphore] = {}
        ok = 0

        async def one(url: str) -> None:
            nonlocal ok
            parts = urlsplit(url)
            key = (parts.hostname or "", parts.port or 80)
            slot = slots.setdefault(key, asyncio.Semaphore(per_host))
            async with slot:
                pool = idle.setdefault(key, [])
                reader, writer = pool.pop() if pool else await asyncio.open_connection(*key)
                writer.write(
                    f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: bench\r\n"
                    f"Range: bytes=0-{MAX_BYTES - 1}\r\n\r\n".encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(min(length, MAX_BYTES + 1))
                ok += lines[0].split(" ")[1] == "200"
                pool.append((reader, writer))

        await asyncio.gather(*(one(u) for u in urls))
        return ok

    return asyncio.run(main())


def run_pycurl(urls: list[str], per_host: int, threads: int) -> int:
    import pycurl

    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, per_host)
    selector = selectors.DefaultSelector()
    timeout: list[float | None] = [None]

    def on_socket(what: int, fd: int, _multi: object, _data: object) -> None:
        events = {
            pycurl.POLL_IN: selectors.EVENT_READ,
            pycurl.POLL_OUT: selectors.EVENT_WRITE,
            pycurl.POLL_INOUT: selectors.EVENT_READ | selectors.EVENT_WRITE,
        }.get(what)
        if events is None:
            if fd in selector.get_map():
                selector.unregister(fd)
        elif fd in selector.get_map():
            selector.modify(fd, events)
        else:
            selector.register(fd, events)

    def on_timer(ms: int) -> None:
        timeout[0] = None if ms < 0 else time.monotonic() + ms / 1000

    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    todo = deque(urls)
    free: list[pycurl.Curl] = []
    running = 0
    ok = 0
    limit = per_host * 64

    def start(url: str) -> None:
        curl = free.pop() if free else pycurl.Curl()
        body: list[bytes] = []
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.RANGE, f"0-{MAX_BYTES - 1}")
        curl.setopt(pycurl.USERAGENT, "bench")
        curl.setopt(pycurl.WRITEFUNCTION, body.append)
        multi.add_handle(curl)

    while todo or running:
        while todo and running < limit:
            start(todo.popleft())
            running += 1
        wait = 1.0 if timeout[0] is None else max(0.0, timeout[0] - time.monotonic())
        events = selector.select(wait)
        if not events:
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        for key, mask in events:
            flags = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | (
                pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0
            )
            multi.socket_action(key.fd, flags)
        while True:
            queued, done, failed = multi.info_read()
            for curl in done:
                ok += curl.getinfo(pycurl.RESPONSE_CODE) == 200
                multi.remove_handle(curl)
                free.append(curl)
                running -= 1
            for curl, _code, _msg in failed:
                multi.remove_handle(curl)
                free.append(curl)
                running -= 1
            if not queued:
                break
    return ok


def child(engine: str, port: int, count: int, hosts: int, per_host: int, threads: int) -> None:
    """One engine's run in this process; prints ok count, wall and CPU seconds."""
    urls = [f"http://127.0.0.{i % hosts + 1}:{port}/images/{i:09d}.jpg" for i in range(count)]
    run = {"urllib3": run_urllib3, "asyncio": run_asyncio, "pycurl": run_pycurl}[engine]
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    ok = run(urls, per_host, threads)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{ok} {wall:.3f} {cpu:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--per-host", type=int, default=8)
    parser.add_argument("--threads", type=int, default=256, help="urllib3 engine only")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.urls, args.hosts, args.per_host, args.threads)
        return
    server, port = start_server(args.hosts, 0.05, seconds=900)
    try:
        print(f"{args.urls} URLs, {args.hosts} hosts, {args.per_host} per host, 50 ms, 1 process")
        print(
            f"{'engine':10} {'ok':>7} {'wall s':>7} {'URLs/s':>7} {'CPU s':>7} {'CPU ms/URL':>10}"
        )
        for engine in ENGINES:
            out = subprocess.run(
                [
                    *(sys.executable, "-m", "benchmarks.bench_url_engines", "--child", engine),
                    *("--port", str(port), "--urls", str(args.urls), "--hosts", str(args.hosts)),
                    *("--per-host", str(args.per_host), "--threads", str(args.threads)),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            ok, wall, cpu = int(out[0]), float(out[1]), float(out[2])
            print(
                f"{engine:10} {ok:7d} {wall:7.2f} {args.urls / wall:7.0f} {cpu:7.2f}"
                f" {1000 * cpu / args.urls:10.3f}"
            )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
