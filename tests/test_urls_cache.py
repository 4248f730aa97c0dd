"""The probe cache (TTL, batches), URL sources (metadata, JSONL, CC-3M TSV) and the stage's stats."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.config import UrlConfig
from audit.errors import InputError, UsageError
from audit.loaders.urlsources import load_url_refs
from audit.models import UrlRef
from audit.probes.http import settings_fingerprint
from audit.probes.urls import probe_urls
from audit.store import Store
from audit.store.urls import UrlProbe, latest_status, lookup, merge, record

DAY = 86400.0


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/ok.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        yield srv


#: robots.txt and tdmrep.json (one request each per host) are tested in test_urls_optouts.py
NO_HOST_FILES = {"check_robots": False, "check_tdmrep": False}


def loopback(**changes: object) -> UrlConfig:
    changes = NO_HOST_FILES | changes
    return UrlConfig(allow_networks=["127.0.0.1/32"], timeout_seconds=1.0, **changes)  # type: ignore[arg-type]


def test_fresh_results_are_not_reprobed_until_the_ttl_expires(
    server: HttpServer, tmp_path: Path
) -> None:
    refs = [UrlRef(0, "a", server.url("/ok.jpg")), UrlRef(1, "b", server.url("/gone.jpg"))]
    settings = loopback(ttl_days=7.0)
    with Store(tmp_path / "s.sqlite") as store:
        first = probe_urls(refs, settings, store=store)
        assert first.totals.probed == 2
        nightly = probe_urls(refs, settings, store=store, now=time.time() + 6 * DAY)
        assert (nightly.totals.probed, nightly.totals.cached) == (0, 2)
        assert sum(server.hits.values()) == 2
        # the cached run reports the same findings as the probing run
        assert [f.code for f in nightly.findings] == [f.code for f in first.findings]
        stale = probe_urls(refs, settings, store=store, now=time.time() + 8 * DAY)
        assert stale.totals.probed == 2
        assert server.hits["/ok.jpg"] == server.hits["/gone.jpg"] == 2


def test_only_stale_urls_are_reprobed(server: HttpServer, tmp_path: Path) -> None:
    old, new = server.url("/ok.jpg"), server.url("/gone.jpg")
    made_under = settings_fingerprint(loopback())
    with Store(tmp_path / "s.sqlite") as store:
        record(store, [UrlProbe(old, "ok", 200, "jpeg", None, time.time() - 40 * DAY)], made_under)
        record(store, [UrlProbe(new, "gone", 404, "HTTP 404", None, time.time() - DAY)], made_under)
        result = probe_urls([UrlRef(0, None, old), UrlRef(1, None, new)], loopback(), store=store)
    assert result.totals.probed == 1
    assert dict(server.hits) == {"/ok.jpg": 1}


def test_results_are_committed_in_batches_during_the_run(
    server: HttpServer, tmp_path: Path
) -> None:
    """A reader (or the next run after a kill) sees results before the run finishes."""
    seen_midway: list[int] = []
    path = tmp_path / "s.sqlite"

    class Watch:
        count = 0

        def start(self, label: str, total: int | None) -> None:
            pass

        def advance(self, n: int = 1) -> None:
            self.count += n
            if self.count == 7:
                with Store(path) as other:
                    seen_midway.append(len(lookup(other, urls)))

        def finish(self) -> None:
            pass

    urls = [server.url(f"/ok.jpg?n={i}") for i in range(10)]
    with Store(path) as store:
        probe_urls(
            [UrlRef(i, None, u) for i, u in enumerate(urls)],
            loopback(batch_size=3, workers=1),
            store=store,
            progress=Watch(),
        )
        assert len(latest_status(store, urls)) == 10
    assert seen_midway == [6]  # two full batches of three were on disk at the 7th result


def test_stats_give_unavailable_rate_status_counts_and_worst_domains(tmp_path: Path) -> None:
    now = time.time()
    rows = [
        ("http://a.example/1.jpg", "ok"),
        ("http://a.example/2.jpg", "gone"),
        ("http://www.b.example/1.jpg", "gone"),
        ("http://www.b.example/2.jpg", "dns"),
        ("http://c.example/1.jpg", "opt_out"),
    ]
    with Store(tmp_path / "s.sqlite") as store:
        offline = UrlConfig(**NO_HOST_FILES)  # type: ignore[arg-type]
        made_under = settings_fingerprint(offline)
        record(store, [UrlProbe(u, s, None, s, None, now) for u, s in rows], made_under)
        rows.append(("http://10.0.0.1/x.jpg", "refused"))  # refused by this run's guard
        refs = [UrlRef(i, None, u) for i, (u, _) in enumerate(rows)]
        totals = probe_urls(refs, offline, store=store).totals
        stats = msgspec.to_builtins(totals)
    assert stats["status_counts"] == {"ok": 1, "opt_out": 1, "gone": 2, "dns": 1, "refused": 1}
    fig = totals.figures
    assert (fig.referenced, fig.missing, fig.broken, fig.unavailable) == (5, 3, 0, 3)
    assert fig.unavailable_rate == pytest.approx(0.6)
    assert [(d["domain"], d["unavailable"], d["urls"]) for d in stats["worst_domains"]] == [
        ("b.example", 2, 2),
        ("a.example", 1, 2),
    ]


# ---- URL sources ------------------------------------------------------------------------------


def test_metadata_array_gives_index_id_image_and_url(tmp_path: Path) -> None:
    path = tmp_path / "metadata.json"
    records = [
        {"id": "GCC_train_000000001", "image": "GCC_train_000000001.jpg", "url": "http://a/1.jpg"},
        {"id": "GCC_train_000000002", "image": "GCC_train_000000002.jpg", "caption": "no url"},
        {"id": 3, "url": "http://a/3.jpg", "blip_caption": "x"},
    ]
    path.write_text(json.dumps(records))
    assert load_url_refs(path) == [
        UrlRef(0, "GCC_train_000000001", "http://a/1.jpg", "GCC_train_000000001.jpg"),
        UrlRef(2, "3", "http://a/3.jpg", None),
    ]


def test_json_lines_and_a_configured_column(tmp_path: Path) -> None:
    path = tmp_path / "meta.jsonl"
    path.write_text('{"id": "1", "source_url": "http://a/1.jpg"}\n{"id": "2"}\n')
    assert load_url_refs(path, column="source_url") == [UrlRef(0, "1", "http://a/1.jpg")]
    with pytest.raises(UsageError):
        load_url_refs(path, column="id")


def test_headerless_cc3m_tsv_indexes_by_line(tmp_path: Path) -> None:
    path = tmp_path / "Train_GCC-training.tsv"
    path.write_text("a dog .\thttp://a/0.jpg\nno url here\na cat .\thttp://a/2.jpg\r\n")
    assert load_url_refs(path) == [
        UrlRef(0, None, "http://a/0.jpg"),
        UrlRef(2, None, "http://a/2.jpg"),
    ]


def test_tsv_with_a_header_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "links.tsv"
    path.write_text("caption\tlink\nx\thttp://a/0.jpg\ny\thttp://a/1.jpg\n")
    assert [r.url for r in load_url_refs(path, column="link")] == [
        "http://a/0.jpg",
        "http://a/1.jpg",
    ]


def test_real_cc3m_tsv_sample(realdata: Path) -> None:
    path = realdata / "gcc_tsv_samples.tsv"
    refs = load_url_refs(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(refs) == len(lines)
    assert refs[1].url == lines[1].split("\t")[1]
    assert all(r.url.startswith(("http://", "https://")) for r in refs)


def test_unreadable_sources_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_url_refs(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[nonsense")
    with pytest.raises(InputError, match=r"bad\.json:line 1, column \d+"):
        load_url_refs(bad)
    cut = tmp_path / "cut.json"  # a truncated download: the complete records are still probed
    cut.write_text('[{"url": "http://a/1.jpg"}, {"url": "http://a/')
    assert [r.url for r in load_url_refs(cut)] == ["http://a/1.jpg"]


def test_transient_failures_are_reprobed_sooner(server: HttpServer, tmp_path: Path) -> None:
    flaky, gone = server.url("/ok.jpg"), server.url("/gone.jpg")
    two_days_ago = time.time() - 2 * DAY
    settings = loopback(transient_ttl_days=1.0, ttl_days=30.0)
    made_under = settings_fingerprint(settings)
    with Store(tmp_path / "s.sqlite") as store:
        record(store, [UrlProbe(flaky, "timeout", None, "slow", None, two_days_ago)], made_under)
        record(store, [UrlProbe(gone, "gone", 404, "HTTP 404", None, two_days_ago)], made_under)
        refs = [UrlRef(0, None, flaky), UrlRef(1, None, gone)]
        probe_urls(refs, settings, store=store)
        assert latest_status(store, [flaky, gone]) == {flaky: "ok", gone: "gone"}
    assert dict(server.hits) == {"/ok.jpg": 1}


def test_a_tsv_is_a_tsv_even_when_a_caption_starts_with_a_bracket(tmp_path: Path) -> None:
    path = tmp_path / "cc3m.tsv"
    path.write_text("[person] on a beach .\thttp://a/0.jpg\n")
    assert load_url_refs(path) == [UrlRef(0, None, "http://a/0.jpg")]


def test_metadata_url_key_is_discovered_like_the_structure_stage(tmp_path: Path) -> None:
    path = tmp_path / "blip_laion_cc_sbu_558k_meta.json"
    path.write_text(json.dumps([{"id": "004539375", "image_url": "http://a/1.jpg"}]))
    assert [(r.record_id, r.url) for r in load_url_refs(path)] == [("004539375", "http://a/1.jpg")]


def test_the_latest_probe_wins_before_and_after_the_log_is_merged(tmp_path: Path) -> None:
    url = "http://a.example/1.jpg"
    with Store(tmp_path / "s.sqlite") as store:
        record(store, [UrlProbe(url, "server_error", 503, "HTTP 503", None, 1.0)])
        merge(store)
        record(store, [UrlProbe(url, "timeout", None, "slow", None, 2.0)])
        record(store, [UrlProbe(url, "ok", 200, "jpeg", None, 3.0)])  # a killed run's last batch
        assert latest_status(store, [url]) == {url: "ok"}
        merge(store)
        assert latest_status(store, [url]) == {url: "ok"}
        assert store.conn.execute("SELECT COUNT(*) FROM url_result_log").fetchone() == (0,)
