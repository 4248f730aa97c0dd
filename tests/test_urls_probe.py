"""URL probing against a real HTTP server on 127.0.0.1: every status class, retries, politeness."""

from __future__ import annotations

import hashlib
import itertools
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from httpserver import JPEG, PNG, TRUNCATED_JPEG, HttpServer, Reply

from audit.config import UrlConfig
from audit.models import UrlRef
from audit.probes.urls import probe_urls
from audit.store import Store
from audit.store.urls import latest_status, lookup

IMAGE = {"Content-Type": "image/jpeg"}


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.sqlite") as st:
        yield st


def settings(**changes: object) -> UrlConfig:
    """Loopback allowed explicitly (the guard stays on for everything else); fast timeouts."""
    base = UrlConfig(
        allow_networks=["127.0.0.1/32"], timeout_seconds=0.5, backoff_seconds=0.01, workers=8
    )
    return msgspec.structs.replace(base, **changes)


def probe(server: HttpServer, paths: list[str], store: Store, **changes: object) -> dict[str, str]:
    """Status class per path, read back through the store's public read API."""
    refs = [UrlRef(i, f"r{i}", server.url(p)) for i, p in enumerate(paths)]
    probe_urls(refs, settings(**changes), store=store, dataset="d", file="meta.json")
    by_url = latest_status(store, [r.url for r in refs])
    return {p: by_url[server.url(p)] for p in paths}


def test_each_kind_of_answer_gets_its_status_class(server: HttpServer, store: Store) -> None:
    server.route("/ok.jpg", Reply(200, IMAGE, JPEG))
    server.route("/png-as-octets", Reply(200, {"Content-Type": "application/octet-stream"}, PNG))
    server.route("/gone", Reply(410))
    server.route("/forbidden", Reply(403))
    server.route("/teapot", Reply(418))
    server.route("/down", Reply(503))
    server.route("/html", Reply(200, {"Content-Type": "text/html"}, b"<html>no photo</html>"))
    server.route("/html-as-jpeg", Reply(200, IMAGE, b"<!doctype html><p>removed</p>"))
    server.route("/empty", Reply(200, IMAGE, b""))
    server.route("/truncated.jpg", Reply(200, IMAGE, TRUNCATED_JPEG))
    server.route("/slow.jpg", Reply(200, IMAGE, JPEG, delay=1.5))
    server.route("/noai.jpg", Reply(200, {**IMAGE, "X-Robots-Tag": "noindex, noai"}, JPEG))
    server.route("/other-bot.jpg", Reply(200, {**IMAGE, "X-Robots-Tag": "googlebot: noai"}, JPEG))
    server.route("/loop-a", Reply(302, {"Location": "/loop-b"}))
    server.route("/loop-b", Reply(301, {"Location": "/loop-a"}))
    server.route("/moved", Reply(301, {"Location": "/ok.jpg"}))
    statuses = probe(
        server,
        [
            "/ok.jpg",
            "/png-as-octets",
            "/gone",
            "/missing",
            "/forbidden",
            "/teapot",
            "/down",
            "/html",
            "/html-as-jpeg",
            "/empty",
            "/truncated.jpg",
            "/slow.jpg",
            "/noai.jpg",
            "/other-bot.jpg",
            "/loop-a",
            "/moved",
        ],
        store,
        retries=1,
    )
    assert statuses == {
        "/ok.jpg": "ok",
        "/png-as-octets": "ok",
        "/gone": "gone",
        "/missing": "gone",
        "/forbidden": "forbidden",
        "/teapot": "http_error",
        "/down": "server_error",
        "/html": "not_image",
        "/html-as-jpeg": "not_image",
        "/empty": "not_image",
        "/truncated.jpg": "truncated",
        "/slow.jpg": "timeout",
        "/noai.jpg": "opt_out",
        "/other-bot.jpg": "ok",
        "/loop-a": "redirects",
        "/moved": "ok",
    }
    assert server.hits["/down"] == 2  # one retry allowed
    assert server.hits["/slow.jpg"] == 1  # a read timeout is not retried


def test_requests_are_ranged_gets_with_an_identifying_user_agent(
    server: HttpServer, store: Store
) -> None:
    server.route("/ok.jpg", Reply(200, IMAGE, JPEG))
    probe(server, ["/ok.jpg"], store, max_bytes=4096)
    (headers,) = [h for path, h in server.requests if path == "/ok.jpg"]
    assert headers["range"] == "bytes=0-4095"
    assert headers["user-agent"].startswith("llava-audit/")


def test_server_error_then_success_is_retried_to_ok(server: HttpServer, store: Store) -> None:
    server.route("/flaky.jpg", Reply(500), Reply(502), Reply(200, IMAGE, JPEG))
    assert probe(server, ["/flaky.jpg"], store, retries=3) == {"/flaky.jpg": "ok"}
    assert server.hits["/flaky.jpg"] == 3


def test_429_waits_for_retry_after(server: HttpServer, store: Store) -> None:
    server.route("/busy.jpg", Reply(429, {"Retry-After": "1"}), Reply(200, IMAGE, JPEG))
    assert probe(server, ["/busy.jpg"], store, backoff_seconds=0.0) == {"/busy.jpg": "ok"}
    first, second = server.times["/busy.jpg"]
    assert second - first >= 0.9  # the server asked for one second


def test_retry_after_beyond_the_cap_is_reported_not_waited_for(
    server: HttpServer, store: Store
) -> None:
    server.route("/busy.jpg", Reply(429, {"Retry-After": "3600"}), Reply(200, IMAGE, JPEG))
    assert probe(server, ["/busy.jpg"], store) == {"/busy.jpg": "http_error"}
    assert server.hits["/busy.jpg"] == 1
    assert (
        "exceeds the cap"
        in lookup(store, [server.url("/busy.jpg")])[server.url("/busy.jpg")].detail
    )


def test_placeholder_by_redirect_target_and_by_hash(server: HttpServer, store: Store) -> None:
    placeholder = b"GIF89a photo unavailable"
    server.route("/flickr.jpg", Reply(302, {"Location": "/photo_unavailable.png"}))
    server.route("/photo_unavailable.png", Reply(200, {"Content-Type": "image/png"}, PNG))
    server.route("/same-bytes.jpg", Reply(200, IMAGE, placeholder))

    statuses = probe(
        server,
        ["/flickr.jpg", "/same-bytes.jpg", "/photo_unavailable.png"],
        store,
        placeholder_urls=[server.url("/photo_unavailable.png")],
        placeholder_sha256=[hashlib.sha256(placeholder).hexdigest()],
    )
    assert set(statuses.values()) == {"placeholder"}
    assert server.hits["/photo_unavailable.png"] == 0  # recognised from the redirect alone


def test_tls_dns_and_refused_connections(
    server: HttpServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def no_such_host(host: str, *args: object, **kwargs: object) -> object:
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    refs = [
        UrlRef(0, None, f"https://127.0.0.1:{server.port}/ok.jpg"),  # TLS to a plain HTTP port
        UrlRef(1, None, "http://images.example.invalid/a.jpg"),
        UrlRef(2, None, f"http://127.0.0.1:{closed_port}/a.jpg"),
        UrlRef(3, None, "ftp://example.com/a.jpg"),
    ]
    result = probe_urls(refs, settings(retries=1), store=store)
    assert latest_status(store, [r.url for r in refs]) == {
        refs[0].url: "tls",
        refs[1].url: "dns",
        refs[2].url: "connection",
        refs[3].url: "invalid",
    }
    # what the user reads: our words, never a library's internals (pool reprs, "Max retries")
    details = [f.message.partition(": ")[2] for f in result.findings if f.index is not None]
    assert details[1:] == [
        "cannot resolve images.example.invalid: no such host",
        "connection refused (after 2 attempts)",
        "not an http(s) URL: ftp://example.com/a.jpg",
    ]
    assert details[0].startswith("TLS handshake failed (")
    for text in details:
        assert not any(word in text for word in ("Pool", "Max retries", "_HTTP", "Errno", "<"))


def test_per_host_limit_caps_concurrent_requests(server: HttpServer, store: Store) -> None:
    server.route("/slow.jpg", Reply(200, IMAGE, JPEG, delay=0.1))
    refs = [UrlRef(i, None, server.url(f"/slow.jpg?n={i}")) for i in range(12)]
    probe_urls(refs, settings(per_host=2, workers=12), store=store)
    assert server.hits["/slow.jpg"] == 12
    assert server.max_active == 2


def test_politeness_delay_spaces_requests_to_one_host(server: HttpServer, store: Store) -> None:
    server.route("/a.jpg", Reply(200, IMAGE, JPEG))
    refs = [UrlRef(i, None, server.url(f"/a.jpg?n={i}")) for i in range(3)]
    probe_urls(refs, settings(delay_seconds=0.25, workers=3), store=store)
    times = server.times["/a.jpg"]
    assert len(times) == 3
    assert all(b - a >= 0.15 for a, b in itertools.pairwise(times))  # ms apart without it


def test_a_url_shared_by_records_is_probed_once_and_reported_for_each(
    server: HttpServer, store: Store
) -> None:
    refs = [UrlRef(i, f"id{i}", server.url("/gone.jpg")) for i in range(3)]
    result = probe_urls(refs, settings(), store=store, dataset="cc3m", file="metadata.json")
    assert server.hits["/gone.jpg"] == 1
    dead = [f for f in result.findings if f.code == "url.dead"]
    assert [(f.index, f.record_id, f.severity) for f in dead] == [
        (0, "id0", "warning"),
        (1, "id1", "warning"),
        (2, "id2", "warning"),
    ]
    assert {f.dataset for f in dead} == {"cc3m"}


def test_non_ascii_and_spaced_urls_are_percent_encoded(server: HttpServer, store: Store) -> None:
    server.route("/caf%C3%A9%20noir.jpg", Reply(200, IMAGE, JPEG))
    refs = [UrlRef(0, None, server.url("/café noir.jpg"))]
    probe_urls(refs, settings(), store=store)
    assert latest_status(store, [refs[0].url]) == {refs[0].url: "ok"}


def test_a_host_that_keeps_timing_out_is_given_up_on(server: HttpServer, store: Store) -> None:
    server.route("/hang.jpg", Reply(200, IMAGE, JPEG, delay=1.0))
    refs = [UrlRef(i, None, server.url(f"/hang.jpg?n={i}")) for i in range(6)]
    probe_urls(
        refs,
        settings(timeout_seconds=0.2, per_host=1, workers=1, host_failure_limit=2),
        store=store,
    )
    probes = lookup(store, [r.url for r in refs])
    assert {p.status for p in probes.values()} == {"timeout"}
    assert server.hits["/hang.jpg"] == 2
    assert sum("not probed" in p.detail for p in probes.values()) == 4


def test_worker_processes_give_the_same_results(server: HttpServer, store: Store) -> None:
    with HttpServer("127.0.0.2") as other:
        for srv in (server, other):
            srv.route("/a.jpg", Reply(200, IMAGE, JPEG))
        urls = [srv.url(f"/a.jpg?n={i}") for srv in (server, other) for i in range(10)]
        urls.append(server.url("/gone.jpg"))
        refs = [UrlRef(i, None, u) for i, u in enumerate(urls)]
        # (one image at 10 URLs of a host is a stand-in, test_urls_placeholders: not here)
        wide = {"processes": 2, "process_threshold": 1, "placeholder_min_urls": 99}
        result = probe_urls(refs, settings(allow_networks=["127.0.0.0/8"], **wide), store=store)
        assert server.hits["/a.jpg"] == other.hits["/a.jpg"] == 10
    assert result.totals.status_counts == {"ok": 20, "gone": 1}
    assert len(lookup(store, urls)) == 21


def test_a_server_trickling_bytes_cannot_hold_a_worker(server: HttpServer, store: Store) -> None:
    """Each byte arrives within the read timeout, so only the per-URL time bound stops it."""
    server.route("/tarpit.jpg", Reply(200, IMAGE, JPEG, drip=0.05))
    server.route("/ok.jpg", Reply(200, IMAGE, JPEG))
    statuses = probe(
        server, ["/tarpit.jpg", "/ok.jpg"], store, timeout_seconds=0.5, max_seconds_per_url=0.6
    )
    assert statuses == {"/tarpit.jpg": "timeout", "/ok.jpg": "ok"}
    detail = lookup(store, [server.url("/tarpit.jpg")])[server.url("/tarpit.jpg")].detail
    assert "within 0.6 s" in detail


@pytest.mark.parametrize(
    "answer",
    [b"garbage without a status line\r\n\r\n", b"\x00\xff" * 64, b"SSH-2.0-OpenSSH_9.6\r\n"],
)
def test_an_answer_in_no_http_version_is_a_connection_failure(store: Store, answer: bytes) -> None:
    """Not "invalid": the URL was fine, the server answered in something that is not HTTP."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            for _ in range(2):  # the probe and its one retry
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(answer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}/a.jpg"
        quiet = settings(retries=1, check_robots=False, check_tdmrep=False)  # 2 requests only
        probe_urls([UrlRef(0, None, url)], quiet, store=store)
        thread.join(timeout=5)
    result = lookup(store, [url])[url]
    assert (result.status, result.detail) == (
        "connection",
        "not a valid HTTP answer (after 2 attempts)",
    )


def test_a_body_cut_short_is_truncated_and_a_stalled_body_a_timeout(
    server: HttpServer, store: Store
) -> None:
    announced = {**IMAGE, "Content-Length": str(len(JPEG) + 5000)}
    server.route("/cut.jpg", Reply(200, {**announced, "Connection": "close"}, JPEG))
    server.route("/stalled.jpg", Reply(200, announced, JPEG))  # kept open, the rest never comes
    assert probe(server, ["/cut.jpg", "/stalled.jpg"], store, timeout_seconds=0.3) == {
        "/cut.jpg": "truncated",
        "/stalled.jpg": "timeout",
    }
    probes = lookup(store, [server.url("/cut.jpg"), server.url("/stalled.jpg")])
    assert (
        probes[server.url("/cut.jpg")].detail == "transfer broke off (fewer bytes than announced)"
    )
    assert probes[server.url("/stalled.jpg")].detail == "body read timed out"
    assert probes[server.url("/stalled.jpg")].http_status == 200
