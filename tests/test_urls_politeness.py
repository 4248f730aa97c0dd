"""per_host is per server: one server under five spellings of its address, and the servers a
redirect hop goes to, never see more than per_host requests at once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import msgspec
import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.config import UrlConfig
from audit.models import UrlRef
from audit.probes.urls import probe_urls
from audit.store import Store

IMAGE = {"Content-Type": "image/jpeg"}
SPELLINGS = ("127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/slow.jpg", Reply(200, IMAGE, JPEG, delay=0.15))
        yield srv


def settings(**changes: object) -> UrlConfig:
    base = UrlConfig(
        allow_networks=["127.0.0.0/8"], per_host=2, workers=12, timeout_seconds=5.0, retries=0
    )
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize("processes", [1, 2])
def test_one_server_under_five_spellings_gets_per_host_at_once(
    server: HttpServer, tmp_path: Path, processes: int
) -> None:
    urls = [f"http://{host}:{server.port}/slow.jpg?n={i}" for host in SPELLINGS for i in range(4)]
    refs = [UrlRef(i, None, u) for i, u in enumerate(urls)]
    with Store(tmp_path / "s.sqlite") as store:
        result = probe_urls(refs, settings(processes=processes, process_threshold=1), store=store)
    assert result.totals.status_counts == {"ok": 20}
    assert server.hits["/slow.jpg"] == 20
    assert server.max_active <= 2


def test_redirect_hops_count_against_the_server_they_go_to(
    server: HttpServer, tmp_path: Path
) -> None:
    """Many first hosts, one image host behind their redirects (a CDN): still per_host there."""
    fronts = [HttpServer(f"127.0.0.{n}") for n in range(2, 6)]
    for front in fronts:
        front.__enter__()
        front.route("/hop", Reply(302, {"Location": server.url("/slow.jpg")}))
    try:
        urls = [f"{front.url('/hop')}?n={i}" for front in fronts for i in range(3)]
        with Store(tmp_path / "s.sqlite") as store:
            result = probe_urls(  # 12 URLs, one target: a stand-in but for the threshold
                [UrlRef(i, None, u) for i, u in enumerate(urls)],
                settings(placeholder_min_urls=99),
                store=store,
            )
    finally:
        for front in fronts:
            front.__exit__(None, None, None)
    assert result.totals.status_counts == {"ok": 12}
    assert server.hits["/slow.jpg"] == 12
    assert server.max_active <= 2


class HostCounts:
    """A progress sink that also takes the per-host hook (the console's URL bar has it)."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}
        self.advanced = 0

    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.advanced += n

    def finish(self) -> None:
        pass

    def hosts(self, totals: Mapping[str, int]) -> None:
        self.totals = dict(totals)

    def host_advance(self, host: str) -> None:
        self.done[host] = self.done.get(host, 0) + 1


def test_progress_is_told_each_hosts_share(server: HttpServer) -> None:
    server.route("/a.jpg", Reply(200, IMAGE, JPEG))
    with HttpServer("127.0.0.2") as other:
        other.route("/a.jpg", Reply(404))
        urls = [srv.url(f"/a.jpg?n={i}") for srv in (server, other) for i in range(3)]
        progress = HostCounts()
        probe_urls([UrlRef(i, None, u) for i, u in enumerate(urls)], settings(), progress=progress)
    hosts = {f"127.0.0.1:{server.port}": 3, f"127.0.0.2:{other.port}": 3}
    assert progress.totals == hosts
    assert progress.done == hosts
    assert progress.advanced == 6
