"""Stand-in images found by their bytes or their redirect target, with nothing configured."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from httpserver import HttpServer, Reply
from PIL import Image

from audit.cli import main
from audit.config import UrlConfig, url_settings_problem
from audit.models import UrlRef
from audit.output import model as rpt
from audit.output.render import html
from audit.probes.placeholders import detect, known
from audit.probes.urls import probe_urls
from audit.results import Placeholder, UrlsResult
from audit.store import SCHEMA_VERSION, Store
from audit.store.urls import UrlProbe, lookup

PNG = {"Content-Type": "image/png"}


def png(shade: int, size: tuple[int, int] = (8, 8)) -> bytes:
    """A small PNG of its own colour: distinct bytes for each ``shade``."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, (shade * 7) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


UNAVAILABLE = png(1, (48, 32))  # what dead photos redirect to
REMOVED = png(2, (40, 40))  # what dead photos are answered with directly


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.sqlite") as st:
        yield st


def settings(**changes: object) -> UrlConfig:
    base = UrlConfig(
        allow_networks=["127.0.0.1/32"], timeout_seconds=2.0, backoff_seconds=0.01, workers=8
    )
    return msgspec.structs.replace(base, **changes)


def host(server: HttpServer, dead: int) -> list[str]:
    """``dead`` URLs redirecting to one stand-in, ``dead`` more answered with one other stand-in,
    six live photos (distinct bytes), and one more photo that four records share by URL."""
    server.route("/photo_unavailable.png", Reply(200, PNG, UNAVAILABLE))
    paths = []
    for i in range(dead):
        server.route(f"/photos/{i}.jpg", Reply(302, {"Location": "/photo_unavailable.png"}))
        server.route(f"/i/{i}.png", Reply(200, PNG, REMOVED))
        paths += [f"/photos/{i}.jpg", f"/i/{i}.png"]
    for i in range(6):
        server.route(f"/live/{i}.png", Reply(200, PNG, png(100 + i)))
        paths.append(f"/live/{i}.png")
    server.route("/popular.png", Reply(200, PNG, png(200)))
    return paths + ["/popular.png"] * 4


def run(server: HttpServer, paths: list[str], store: Store, **changes: object) -> UrlsResult:
    refs = [UrlRef(i, f"r{i}", server.url(p)) for i, p in enumerate(paths)]
    return probe_urls(refs, settings(**changes), store=store, dataset="d", file="meta.json")


def codes(result: UrlsResult, paths: list[str]) -> dict[str, set[str]]:
    """Finding codes per path (``ok``: none)."""
    by_path: dict[str, set[str]] = {p: set() for p in paths}
    for f in result.findings:
        if f.index is not None:
            by_path[paths[f.index]].add(f.code)
    return by_path


def test_stand_ins_found_by_bytes_and_redirect_target_also_from_the_cache(
    server: HttpServer, store: Store
) -> None:
    paths = host(server, dead=10)
    first = run(server, paths, store)
    found = codes(first, paths)
    dead = [p for p in paths if p.startswith(("/photos/", "/i/"))]
    assert len(dead) == 20
    assert all(found[p] == {"url.placeholder"} for p in dead)
    assert all(found[p] == set() for p in paths if p not in dead)  # live photos stay ok
    assert first.totals.status_counts == {"ok": 10, "placeholder": 20}

    groups = {(p.urls, p.target is not None) for p in first.placeholders}
    assert groups == {(10, True), (10, False)}
    redirect = next(p for p in first.placeholders if p.target)
    assert redirect.target == server.url("/photo_unavailable.png")
    assert len(redirect.examples) == 5 and all("/photos/" in u for u in redirect.examples)
    direct = next(p for p in first.placeholders if not p.target)
    assert direct.rule == "bytes" and direct.size == len(REMOVED)

    hits = sum(server.hits.values())
    again = run(server, paths, store)  # every result from the cache this time
    assert sum(server.hits.values()) == hits and again.totals.probed == 0
    assert codes(again, paths) == found
    assert again.placeholders == first.placeholders
    # the store keeps what was probed (an image), so the verdict follows the other URLs
    cached = lookup(store, [server.url("/i/0.png")])[server.url("/i/0.png")]
    assert cached.status == "ok" and cached.size == len(REMOVED)


def test_worker_processes_find_the_same_stand_ins(server: HttpServer, store: Store) -> None:
    paths = host(server, dead=5)
    result = run(server, paths, store, processes=2, process_threshold=1)
    assert result.totals.status_counts == {"ok": 10, "placeholder": 10}
    assert sorted(p.urls for p in result.placeholders) == [5, 5]


def test_below_the_threshold_nothing_is_a_stand_in(server: HttpServer, store: Store) -> None:
    paths = host(server, dead=4)
    result = run(server, paths, store)
    assert all(codes(result, paths)[p] == set() for p in paths)
    assert result.placeholders == []
    # the threshold is a setting: 4 distinct URLs are enough when asked (same store, no probes)
    lower = run(server, paths, store, placeholder_min_urls=4)
    assert lower.totals.probed == 0
    assert lower.totals.status_counts["placeholder"] == 8


def test_large_images_are_fingerprinted_by_their_first_bytes_and_size(
    server: HttpServer, store: Store
) -> None:
    big = png(3, (400, 400)) + b"\0" * 100_000  # past max_bytes: only the first 64 KB are read
    longer = big + b"\0" * 10
    paths = []
    for i in range(5):
        server.route(f"/same/{i}.png", Reply(200, PNG, big))
        server.route(f"/other/{i}.png", Reply(200, PNG, longer if i == 0 else png(50 + i)))
        paths += [f"/same/{i}.png", f"/other/{i}.png"]
    result = run(server, paths, store)
    flagged = {p for p, c in codes(result, paths).items() if c}
    assert flagged == {f"/same/{i}.png" for i in range(5)}  # the longer copy differs by size
    (only,) = result.placeholders
    assert only.size == len(big)


def probe(
    url: str, sha: str | None = "aa", size: int | None = 10, final: str | None = None
) -> UrlProbe:
    return UrlProbe(url, "ok", 200, "png", final, 0.0, (), sha, size)


def statuses(probes: list[UrlProbe], min_urls: int = 5) -> dict[str, str]:
    out, _ = detect({p.url: p for p in probes}, min_urls)
    return {url: p.status for url, p in out.items()}


def test_same_bytes_count_per_site_and_distinct_urls() -> None:
    # one photo copied onto five different websites: syndication, not a stand-in
    sites = [probe(f"https://news{i}.example{i}.org/a.jpg") for i in range(5)]
    assert set(statuses(sites).values()) == {"ok"}
    # the same bytes on five servers of one site (Flickr's farms): a stand-in
    farms = [probe(f"https://farm{i}.staticflickr.com/{i}/x.jpg") for i in range(5)]
    assert set(statuses(farms).values()) == {"placeholder"}
    # http/https and #fragment spellings of 3 URLs are 3 distinct URLs, not 6
    spellings = [
        probe(f"{scheme}://img.example.com/{i}.jpg{frag}")
        for i in range(3)
        for scheme, frag in (("http", ""), ("https", "#top"))
    ]
    assert set(statuses(spellings).values()) == {"ok"}
    # a .co.uk site is its last three labels: two newspapers are two sites
    uk = [probe(f"https://{name}.co.uk/{i}.jpg") for name in ("a", "b") for i in range(3)]
    assert set(statuses(uk).values()) == {"ok"}


def test_same_redirect_target_from_many_hosts_even_with_changing_bytes() -> None:
    target = "https://s.example.net/unavailable.png"
    moved = [
        probe(f"https://h{i}.example{i}.com/p.jpg", f"{i:02x}", 10 + i, target) for i in range(5)
    ]
    other = probe("https://h9.example.com/q.jpg", "ff", 99, "https://cdn.example.com/q.jpg")
    out, found = detect({p.url: p for p in [*moved, other]}, 5)
    assert {u for u, p in out.items() if p.status == "placeholder"} == {p.url for p in moved}
    assert [(f.rule, f.target, f.urls, f.hosts) for f in found] == [("redirect", target, 5, 5)]
    assert out[other.url].status == "ok"
    # other statuses already say the photo is not there: never reclassified
    gone = [msgspec.structs.replace(p, status="gone") for p in moved]
    assert set(statuses(gone).values()) == {"gone"}


def test_threshold_is_checked_like_every_urls_setting() -> None:
    assert url_settings_problem(UrlConfig(placeholder_min_urls=1)) is not None
    assert url_settings_problem(UrlConfig(placeholder_min_urls=2)) is None


def test_shipped_stand_ins_name_their_source_and_are_matched_without_config(
    server: HttpServer, store: Store
) -> None:
    entries = known()
    assert entries and all(e.source.strip() and (e.urls or e.sha256) for e in entries)
    assert any(u == "https://i.imgur.com/removed.png" for e in entries for u in e.urls)
    server.route("/gone.png", Reply(302, {"Location": "https://i.imgur.com/removed.png"}))
    result = run(server, ["/gone.png"], store)
    assert result.totals.status_counts == {"placeholder": 1}  # known from the redirect alone


def test_a_schema_3_store_gains_the_fingerprint_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with Store(path) as st:
        st.conn.execute(
            "INSERT INTO url_result (url, status, final_url, probed_at) "
            "VALUES ('http://a.example/x.jpg', 'gone', NULL, 1.0)"
        )
    conn = sqlite3.connect(path)  # back to how schema 3 wrote it
    for table in ("url_result", "url_result_log"):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN sha256")
        conn.execute(f"ALTER TABLE {table} DROP COLUMN size")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with Store(path) as st:
        (version,) = st.conn.execute("PRAGMA user_version").fetchone()
        assert version == SCHEMA_VERSION
        kept = lookup(st, ["http://a.example/x.jpg"])["http://a.example/x.jpg"]
        assert (kept.status, kept.sha256, kept.size) == ("gone", None, None)


def test_the_urls_command_lists_each_stand_in_with_example_urls(
    server: HttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = host(server, dead=5)
    meta = tmp_path / "meta.json"
    rows = [{"id": f"{i:09d}", "url": server.url(p)} for i, p in enumerate(paths)]
    meta.write_text(msgspec.json.encode(rows).decode())
    argv = ["urls", str(meta), "--allow-private", "--state", str(tmp_path / "s.sqlite")]
    assert main(argv) == 0  # stand-ins are warnings
    shown = capsys.readouterr().out.replace("\n", "")  # Rich wraps long lines anywhere
    assert shown.count("stand-in image:") == 2
    assert "answers 5 URLs on 1 hosts (url.placeholder)" in shown
    assert f"reached by redirects to {server.url('/photo_unavailable.png')}" in shown
    assert server.url("/photos/0.jpg") in shown and server.url("/i/0.png") in shown


def test_the_run_page_lists_stand_ins_with_their_examples_escaped() -> None:
    found = Placeholder(
        rule="bytes",
        sha256="ab" * 32,
        size=1234,
        urls=12,
        hosts=2,
        examples=["https://a.example/<script>x</script>.jpg", "https://b.example/2.jpg"],
    )
    urls = UrlsResult(placeholders=[found])
    ds = rpt.DatasetReport(
        name="cc3m",
        kind="cc3m",
        records=12,
        stages={"urls": rpt.StageRun(status="ok", result=urls)},
    )
    when = datetime(2026, 11, 26, tzinfo=UTC)
    report = rpt.AuditReport(
        run_id="20261126T000000Z-0000",
        started=when,
        finished=when,
        status="succeeded",
        datasets=[ds],
    )
    report.totals = rpt.compute_totals(report.datasets)
    page = html.render_run(report)
    assert "Stand-in images: cc3m" in page
    assert "sha256 abababababababab, 1,234 bytes" in page
    assert "https://b.example/2.jpg" in page
    assert "<script>x" not in page and "&lt;script&gt;x" in page
