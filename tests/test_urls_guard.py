"""SSRF guard: no request ever leaves for a private or loopback address unless allowed."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.config import UrlConfig
from audit.errors import ConfigError
from audit.models import UrlRef
from audit.probes.urlguard import AddressPolicy
from audit.probes.urls import probe_urls
from audit.store import Store
from audit.store.urls import latest_status


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/a.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        yield srv


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::127.0.0.1", False),  # IPv4-compatible (deprecated, still routed by some stacks)
        ("::10.0.0.1", False),
        ("::ffff:0:127.0.0.1", False),  # SIIT IPv4-translated
        ("64:ff9b::7f00:1", False),  # NAT64 well-known prefix: the gateway delivers to 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 to the cloud metadata service
        ("64:ff9b:1::808:808", False),  # NAT64 local-use prefix: never public
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", False),  # 6to4 of 192.168.1.1
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("::ffff:8.8.8.8", True),  # embedded public addresses stay allowed
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
    ],
)
def test_only_public_unicast_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert AddressPolicy().allowed(ipaddress.ip_address(address)) is allowed
    assert AddressPolicy(allow_private=True).allowed(ipaddress.ip_address(address)) is True


def test_allowed_networks_open_only_those_networks() -> None:
    policy = AddressPolicy(allow_networks=["10.0.0.0/8"])
    assert policy.allowed(ipaddress.ip_address("10.9.9.9"))
    assert not policy.allowed(ipaddress.ip_address("192.168.0.1"))


def test_loopback_urls_are_refused_and_never_requested(server: HttpServer, tmp_path: Path) -> None:
    urls = [server.url("/a.jpg"), f"http://localhost:{server.port}/a.jpg"]
    if _ipv6_loopback():
        urls.append(f"http://[::1]:{server.port}/a.jpg")
    refs = [UrlRef(i, None, u) for i, u in enumerate(urls)]
    with Store(tmp_path / "s.sqlite") as store:
        result = probe_urls(refs, UrlConfig(), store=store)
        assert latest_status(store, urls) == {}  # a refusal is this run's rule, not a URL's fact
    assert sum(server.hits.values()) == 0
    assert {f.code for f in result.findings if f.index is not None} == {"url.refused"}
    assert result.totals.figures.unavailable_rate is None  # refused URLs are unknown, not missing


def test_a_redirect_to_a_private_address_is_refused_before_connecting(
    server: HttpServer, tmp_path: Path
) -> None:
    with HttpServer("127.0.0.2") as internal:
        internal.route("/secret", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        server.route("/hop", Reply(302, {"Location": internal.url("/secret")}))
        server.route("/metadata", Reply(302, {"Location": "http://169.254.169.254/latest/"}))
        refs = [UrlRef(0, None, server.url("/hop")), UrlRef(1, None, server.url("/metadata"))]
        settings = UrlConfig(allow_networks=["127.0.0.1/32"])
        with Store(tmp_path / "s.sqlite") as store:
            result = probe_urls(refs, settings, store=store)
        assert [(f.index, f.code) for f in result.findings if f.index is not None] == [
            (0, "url.refused"),
            (1, "url.refused"),
        ]
        assert server.hits["/hop"] == server.hits["/metadata"] == 1
        assert sum(internal.hits.values()) == 0


def test_the_connection_itself_is_guarded_not_only_the_url(server: HttpServer) -> None:
    """A host name that resolves to loopback passes any URL-text check; the connection must not."""
    refs = [UrlRef(0, None, f"http://localhost:{server.port}/a.jpg")]
    refused = probe_urls(refs, UrlConfig(timeout_seconds=1.0, retries=0))
    assert refused.totals.status_counts == {"refused": 1}
    assert sum(server.hits.values()) == 0
    allowed = probe_urls(refs, UrlConfig(allow_private=True, timeout_seconds=1.0, retries=0))
    assert allowed.totals.status_counts == {"ok": 1}


def test_a_rebinding_name_connects_only_to_the_address_that_was_checked(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once, by the guard: first to an allowed address, then (a rebinding
    DNS) to a forbidden one. The request goes to the checked address and nowhere else."""
    with HttpServer("127.0.0.2") as internal:
        internal.route("/a.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        answers = iter(["127.0.0.1", *["127.0.0.2"] * 10])
        real = socket.getaddrinfo

        def rebinding(host: str, port: object, *args: object, **kwargs: object) -> object:
            if host == "rebind.example.test":
                address = next(answers)
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        url = f"http://rebind.example.test:{server.port}/a.jpg"
        settings = UrlConfig(allow_networks=["127.0.0.1/32"], timeout_seconds=1.0, retries=0)
        result = probe_urls([UrlRef(0, None, url)], settings)
        assert result.totals.status_counts == {"ok": 1}
        assert server.hits["/a.jpg"] == 1
        assert sum(internal.hits.values()) == 0


def test_a_malformed_allowed_network_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allow_networks"):
        probe_urls(
            [UrlRef(0, None, "http://example.com/")], UrlConfig(allow_networks=["10.0.0/33"])
        )


@pytest.mark.parametrize(
    "host",
    [
        "[::127.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "[::ffff:7f00:1]",
    ],
)
def test_ipv6_literals_carrying_a_private_ipv4_are_refused_without_a_request(
    server: HttpServer, host: str
) -> None:
    refs = [UrlRef(0, None, f"http://{host}:{server.port}/a.jpg")]
    result = probe_urls(refs, UrlConfig(timeout_seconds=0.5, retries=0))
    assert result.totals.status_counts == {"refused": 1}
    assert sum(server.hits.values()) == 0


def test_embedded_ipv4_in_an_allowed_network_is_allowed() -> None:
    policy = AddressPolicy(allow_networks=["127.0.0.1/32"])
    assert policy.allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.allowed(ipaddress.ip_address("::ffff:127.0.0.2"))
