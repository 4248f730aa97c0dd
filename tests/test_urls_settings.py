"""[urls] settings: out-of-range numbers are one-line config errors, and a cached result is a fact
about a URL only under the settings that decided it (SSRF refusals are never cached)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from httpserver import JPEG, HttpServer, Reply

from audit import config
from audit.cli import main
from audit.config import UrlConfig
from audit.errors import ConfigError
from audit.models import UrlRef
from audit.probes.urls import probe_urls
from audit.store import Store

IMAGE = {"Content-Type": "image/jpeg"}


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/a.jpg", Reply(200, IMAGE, JPEG))
        srv.route("/hop", Reply(302, {"Location": "/a.jpg"}))
        yield srv


def loopback(**changes: object) -> UrlConfig:
    base = UrlConfig(allow_networks=["127.0.0.1/32"], timeout_seconds=1.0)
    return msgspec.structs.replace(base, **changes)


def test_a_refusal_is_not_cached_so_allowing_private_probes_next_run(
    server: HttpServer, tmp_path: Path
) -> None:
    refs = [UrlRef(0, None, server.url("/a.jpg"))]
    with Store(tmp_path / "s.sqlite") as store:
        strict = probe_urls(refs, UrlConfig(), store=store)
        assert strict.totals.status_counts == {"refused": 1}
        assert sum(server.hits.values()) == 0
        allowed = probe_urls(refs, UrlConfig(allow_private=True), store=store)
    assert allowed.totals.status_counts == {"ok": 1}
    assert (allowed.totals.probed, server.hits["/a.jpg"]) == (1, 1)


def test_refusals_cached_by_an_older_version_are_dropped(
    server: HttpServer, tmp_path: Path
) -> None:
    """A state file from before the fingerprint: its cached 'refused' is not reported again."""
    url = server.url("/a.jpg")
    with sqlite3.connect(tmp_path / "s.sqlite") as old:
        columns = "url TEXT PRIMARY KEY, status TEXT, http_status INTEGER, detail TEXT, "
        columns += "final_url TEXT, probed_at REAL"
        old.execute(f"CREATE TABLE url_probe ({columns})")
        old.execute(f"CREATE TABLE url_probe_log ({columns.replace(' PRIMARY KEY', '')})")
        row = (url, "refused", None, "non-public address", None, time.time())
        old.execute("INSERT INTO url_probe VALUES (?, ?, ?, ?, ?, ?)", row)
    old.close()
    with Store(tmp_path / "s.sqlite") as store:
        result = probe_urls([UrlRef(0, None, url)], UrlConfig(allow_private=True), store=store)
    assert result.totals.status_counts == {"ok": 1}
    assert server.hits["/a.jpg"] == 1


def test_a_result_allowed_by_one_run_is_not_reported_by_a_stricter_one(
    server: HttpServer, tmp_path: Path
) -> None:
    refs = [UrlRef(0, None, server.url("/a.jpg"))]
    with Store(tmp_path / "s.sqlite") as store:
        assert probe_urls(refs, loopback(), store=store).totals.status_counts == {"ok": 1}
        strict = probe_urls(refs, UrlConfig(), store=store)
    assert strict.totals.status_counts == {"refused": 1}
    assert server.hits["/a.jpg"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"max_bytes": 4096},
        {"timeout_seconds": 2.0},
        {"max_seconds_per_url": 10.0},
        {"max_redirects": 0},
        {"allow_networks": ["127.0.0.0/8"]},
        {"placeholder_sha256": ["ab" * 32]},
    ],
)
def test_a_change_of_an_outcome_setting_reprobes(
    server: HttpServer, tmp_path: Path, change: dict[str, object]
) -> None:
    refs = [UrlRef(0, None, server.url("/hop"))]
    with Store(tmp_path / "s.sqlite") as store:
        probe_urls(refs, loopback(), store=store)
        again = probe_urls(refs, loopback(), store=store, now=time.time() + 60)
        assert (again.totals.probed, server.hits["/hop"]) == (0, 1)
        changed = probe_urls(refs, loopback(**change), store=store)
    assert (changed.totals.probed, server.hits["/hop"]) == (1, 2)


def test_politeness_settings_keep_the_cache(server: HttpServer, tmp_path: Path) -> None:
    refs = [UrlRef(0, None, server.url("/a.jpg"))]
    with Store(tmp_path / "s.sqlite") as store:
        probe_urls(refs, loopback(), store=store)
        again = probe_urls(refs, loopback(workers=3, per_host=1, user_agent="x"), store=store)
    assert (again.totals.cached, server.hits["/a.jpg"]) == (1, 1)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("timeout_seconds = 0", "[urls] timeout_seconds must be > 0 and <= 3600 (got 0.0)"),
        ("timeout_seconds = -1.5", "timeout_seconds must be > 0"),
        ("timeout_seconds = nan", "timeout_seconds must be > 0"),
        ("timeout_seconds = inf", "timeout_seconds must be > 0 and <= 3600 (got inf)"),
        ("max_seconds_per_url = 0", "max_seconds_per_url must be > 0"),
        ("max_bytes = 0", "[urls] max_bytes must be >= 16 and <= 67108864 (got 0)"),
        ("max_bytes = 8", "max_bytes must be >= 16"),
        ("max_redirects = -1", "max_redirects must be >= 0"),
        ("per_host = 0", "[urls] per_host must be >= 1 and <= 1024 (got 0)"),
        ("workers = 0", "workers must be >= 1"),
        ("workers = 100000000", "workers must be >= 1 and <= 4096"),
        ("batch_size = 0", "batch_size must be >= 1"),
        ("retries = -1", "retries must be >= 0"),
        ("retries = 5000", "retries must be >= 0 and <= 20"),
        ("delay_seconds = -1", "delay_seconds must be >= 0"),
        ("backoff_seconds = -0.5", "backoff_seconds must be >= 0"),
        ("ttl_days = -1", "ttl_days must be >= 0"),
        ("transient_ttl_days = -1", "transient_ttl_days must be >= 0"),
        ("processes = -1", "processes must be >= 0"),
        ("host_failure_limit = -1", "host_failure_limit must be >= 0"),
        ('user_agent = "x\\r\\nX-Injected: 1"', "user_agent must not contain control characters"),
    ],
)
def test_out_of_range_url_settings_are_one_line_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, expected: str
) -> None:
    path = tmp_path / "audit.toml"
    path.write_text(f"[urls]\n{line}\n")
    with pytest.raises(ConfigError, match="^" + f"{path}: ".replace("\\", "\\\\")) as caught:
        config.load(path)
    assert expected in str(caught.value)
    meta = tmp_path / "meta.json"
    meta.write_text('[{"url": "http://example.com/a.jpg"}]')
    assert main(["urls", str(meta), "--config", str(path), "--state", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_library_callers_get_the_same_range_checks() -> None:
    with pytest.raises(ConfigError, match=r"\[urls\] per_host must be >= 1"):
        probe_urls([UrlRef(0, None, "http://example.com/a.jpg")], UrlConfig(per_host=0))


def test_the_defaults_are_in_range() -> None:
    assert config.url_settings_problem(UrlConfig()) is None
