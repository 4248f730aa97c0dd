"""The URL worker processes start before the URL file is read (they boot while it is), take
their work over a pipe, and are gone when the run returns, used or not."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from httpserver import JPEG, HttpServer, Reply

import audit.probes.urls as urls_module
from audit.config import UrlConfig
from audit.errors import ProbeError
from audit.models import UrlRef
from audit.probes.urlpool import probe_batch, warm
from audit.probes.urls import UrlSource, audit_urls

IMAGE = {"Content-Type": "image/jpeg"}


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/a.jpg", Reply(200, IMAGE, JPEG))
        yield srv


def settings(**changes: object) -> UrlConfig:
    base = UrlConfig(
        allow_networks=["127.0.0.1/32"], timeout_seconds=5.0, retries=0, workers=8, processes=2
    )
    return msgspec.structs.replace(base, **changes)


def test_workers_boot_while_the_url_file_is_read(
    server: HttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tsv = tmp_path / "urls.tsv"
    lines = [f"caption {i}\t{server.url('/a.jpg')}?n={i}" for i in range(40)]
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    children_at_read: list[int] = []
    real_load = urls_module.load_url_refs

    def load(path: str, column: str = "url") -> list[UrlRef]:
        children_at_read.append(len(multiprocessing.active_children()))
        return real_load(path, column)

    monkeypatch.setattr(urls_module, "load_url_refs", load)
    result = audit_urls(
        [UrlSource("d", str(tsv))],
        settings(process_threshold=5, placeholder_min_urls=99),
        tmp_path / "state.sqlite",
    )
    assert result.totals.status_counts == {"ok": 40}
    assert server.hits["/a.jpg"] == 40
    assert children_at_read == [2]
    assert multiprocessing.active_children() == []


def test_workers_started_ahead_take_the_work_and_unused_ones_end(server: HttpServer) -> None:
    urls = [f"{server.url('/a.jpg')}?n={i}" for i in range(12)]
    wide = settings(process_threshold=1)
    with warm(wide, expected=len(urls)):
        started = {p.pid for p in multiprocessing.active_children()}
        probes = list(probe_batch(urls, wide))
    assert len(started) == 2
    assert sorted(p.status for p in probes) == ["ok"] * 12
    assert server.hits["/a.jpg"] == 12
    with warm(wide, expected=len(urls)):  # a run that probes nothing (all cached)
        assert len(multiprocessing.active_children()) == 2
    assert multiprocessing.active_children() == []


def test_a_worker_gone_before_its_work_is_one_error(server: HttpServer) -> None:
    wide = settings(process_threshold=1)
    with warm(wide, expected=10):
        for child in multiprocessing.active_children():
            child.kill()
            child.join()
        with pytest.raises(ProbeError, match="worker"):
            list(probe_batch([server.url("/a.jpg")], wide))
