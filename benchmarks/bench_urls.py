"""URL probe throughput against a loopback server answering every request after 50 ms.

    .venv/bin/python -m benchmarks.bench_urls                    # 30,000 URLs over 32 hosts
    .venv/bin/python -m benchmarks.bench_urls --urls 5000        # quick look

Figures (DESIGN.md "Performance"): ``probe_urls`` URLs/s (target >= 2,000 on 2 cores), the ratio
against a naive sequential ``requests.get`` loop measured in the same run, and a second run on the
same state store (a nightly run with a fresh cache) that must re-probe nothing. The server is
``benchmarks/latency_server.py`` in its own process on 127.0.0.1..127.0.0.N, so the per-host limit
applies as in a real crawl; the probe settings are the defaults except the thread count and the
per-host limit (loopback needs ``allow_private``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import requests

from audit.config import UrlConfig
from audit.models import UrlRef
from audit.probes.urls import probe_urls
from audit.store import Store
from benchmarks.harness import Bench

LATENCY_SERVER = Path(__file__).resolve().parent / "latency_server.py"


def start_server(hosts: int, latency: float, seconds: float) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(LATENCY_SERVER),
            "--hosts",
            str(hosts),
            "--latency",
            str(latency),
            "--seconds",
            str(seconds),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    ready = server.stdout.readline().split()
    if ready[:1] != ["READY"]:
        server.kill()
        raise SystemExit(f"latency server did not start: {ready}")
    return server, int(ready[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=30_000)
    parser.add_argument("--naive", type=int, default=100, help="URLs for the sequential loop")
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=256, help="threads over all processes")
    parser.add_argument("--per-host", type=int, default=16)
    parser.add_argument("--processes", type=int, default=0, help="0: one per core")
    args = parser.parse_args()

    server, port = start_server(args.hosts, args.latency, seconds=600)
    urls = [
        f"http://127.0.0.{i % args.hosts + 1}:{port}/images/{i:09d}.jpg" for i in range(args.urls)
    ]
    refs = [UrlRef(i, f"{i:09d}", url) for i, url in enumerate(urls)]
    settings = msgspec.structs.replace(
        UrlConfig(),
        allow_private=True,
        workers=args.workers,
        per_host=args.per_host,
        processes=args.processes,
    )
    bench = Bench(
        "urls",
        params={
            "urls": args.urls,
            "hosts": args.hosts,
            "latency_s": args.latency,
            "workers": args.workers,
            "per_host": args.per_host,
            "processes": args.processes,
        },
    )
    try:

        def naive() -> dict[str, float]:
            ok = 0
            for url in urls[: args.naive]:
                response = requests.get(url, timeout=10)
                ok += response.status_code == 200
            return {"urls": args.naive, "ok": ok}

        base = bench.call("naive sequential requests.get", naive)
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "state.sqlite") as store:

            def first() -> dict[str, object]:
                return msgspec.to_builtins(probe_urls(refs, settings, store=store).totals)

            def second() -> dict[str, object]:
                return msgspec.to_builtins(
                    probe_urls(refs, settings, store=store, now=time.time()).totals
                )

            cold = bench.call("probe_urls, empty cache", first)
            warm = bench.call("probe_urls, second run (fresh cache)", second)
        rate = args.urls / cold.wall_s
        naive_rate = args.naive / base.wall_s
        bench.figure("URLs/s (probe_urls, empty cache)", rate, target=2000, higher_is_better=True)
        bench.ratio("URLs/s vs naive sequential loop", rate, naive_rate, higher_is_better=True)
        bench.figure(
            "ok / URLs (first run)",
            cold.extra["status_counts"].get("ok", 0) / args.urls,
            target=1.0,
            higher_is_better=True,
        )
        bench.figure("re-probed in the second run", float(warm.extra["probed"]), target=0)
        bench.ratio("second run / first run (wall)", warm.wall_s, cold.wall_s, target=0.10)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        assert server.stdout is not None
        served = server.stdout.read().strip()
        server.wait(timeout=30)
        bench.params["server"] = served
    bench.finish()


if __name__ == "__main__":
    main()
