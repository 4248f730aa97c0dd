"""Contract of the libcurl behaviour the SSRF guard and the probe engine rely on (issue 14).

The engine (audit/probes/curlprobe.py, curltask.py) resolves and judges each host itself, then tells
libcurl which address to connect to, and lets no other address have a socket. If an upgrade of
pycurl or libcurl changed one of these behaviours, the guard would silently stop holding: each is
pinned here with a message saying what broke. Do not relax a failing test: re-check the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import pycurl
import pytest
from httpserver import JPEG, HttpServer, Reply

UPGRADE = "pycurl/libcurl changed under the URL probe's SSRF guard (audit/probes/curlprobe.py): "


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/a.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        srv.route("/moved", Reply(302, {"Location": "/a.jpg"}))
        yield srv


def _get(url: str, **options: object) -> tuple[pycurl.Curl, int, bytes]:
    curl = pycurl.Curl()
    body = BytesIO()
    curl.setopt(pycurl.URL, url)
    curl.setopt(pycurl.WRITEFUNCTION, body.write)
    curl.setopt(pycurl.TIMEOUT_MS, 3000)
    for name, value in options.items():
        curl.setopt(getattr(pycurl, name), value)
    error = 0
    try:
        curl.perform()
    except pycurl.error as exc:
        error = exc.args[0]
    return curl, error, body.getvalue()


def test_connect_to_pins_the_address_without_a_lookup(server: HttpServer) -> None:
    """A name no resolver knows reaches the pinned address: libcurl made no lookup of its own."""
    url = f"http://images.example.invalid:{server.port}/a.jpg"
    curl, error, body = _get(url, CONNECT_TO=[f"::127.0.0.1:{server.port}"], PROXY="")
    assert error == 0 and body == JPEG, f"{UPGRADE}CONNECT_TO no longer pins the address"
    assert curl.getinfo(pycurl.PRIMARY_IP) == "127.0.0.1"
    (headers,) = [h for path, h in server.requests if path == "/a.jpg"]
    assert headers["host"] == f"images.example.invalid:{server.port}", f"{UPGRADE}Host header"


def test_a_refusing_socket_factory_stops_the_connection(server: HttpServer) -> None:
    seen: list[str] = []

    def refuse(_purpose: int, address: tuple[int, int, int, tuple[str, int]]) -> object:
        seen.append(address[3][0])
        return pycurl.SOCKET_BAD

    _curl, error, _body = _get(server.url("/a.jpg"), OPENSOCKETFUNCTION=refuse, PROXY="")
    assert seen == ["127.0.0.1"], f"{UPGRADE}the socket factory is not asked with the address"
    assert error == pycurl.E_COULDNT_CONNECT, f"{UPGRADE}a refused socket did not stop it"
    assert sum(server.hits.values()) == 0


def test_redirects_are_not_followed_unless_asked(server: HttpServer) -> None:
    curl, error, _body = _get(server.url("/moved"), PROXY="")
    assert error == 0 and curl.getinfo(pycurl.RESPONSE_CODE) == 302
    assert server.hits["/a.jpg"] == 0, f"{UPGRADE}libcurl followed a redirect by itself"


def test_an_empty_proxy_ignores_the_environment(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # nothing listens on the discard port
    _curl, error, body = _get(server.url("/a.jpg"), PROXY="")
    assert error == 0 and body == JPEG, f"{UPGRADE}PROXY='' no longer ignores http_proxy"


def test_a_write_callback_returning_zero_stops_the_transfer(server: HttpServer) -> None:
    """The byte cap: the engine stops a body one byte past max_bytes this way."""
    curl = pycurl.Curl()
    curl.setopt(pycurl.URL, server.url("/a.jpg"))
    curl.setopt(pycurl.PROXY, "")
    curl.setopt(pycurl.WRITEFUNCTION, lambda chunk: 0)
    with pytest.raises(pycurl.error) as caught:
        curl.perform()
    assert caught.value.args[0] == pycurl.E_WRITE_ERROR, f"{UPGRADE}write callback contract"
