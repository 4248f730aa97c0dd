"""Contract of the urllib3/requests internals the SSRF guard (audit/probes/urlguard.py) relies on.

The guard checks the resolved address inside urllib3's connection factory, so no second lookup a
DNS-rebinding host could answer differently reaches the socket. That needs a few private or
semi-private urllib3 details; an upgrade that changes one would silently turn the guard off, so
each is pinned here with a message saying what broke. If one of these fails after an upgrade, do
not relax the test: re-check urlguard.py against the new urllib3 (issue 9: public extension points).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
import requests
from httpserver import JPEG, HttpServer, Reply
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.poolmanager import PoolManager
from urllib3.util import connection as u3connection

from audit.probes.urlguard import AddressPolicy, RefusedAddress, guarded_session

UPGRADE = "urllib3/requests changed under the SSRF guard (audit/probes/urlguard.py): "


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/a.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        yield srv


def _params(func: object) -> list[str]:
    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_connections_open_their_socket_through_new_conn() -> None:
    for cls in (HTTPConnection, HTTPSConnection):
        assert callable(getattr(cls, "_new_conn", None)), f"{UPGRADE}{cls.__name__}._new_conn gone"
        assert _params(cls._new_conn) == ["self"], f"{UPGRADE}_new_conn takes new arguments"


def test_a_connection_carries_the_fields_the_guard_reads() -> None:
    conn = HTTPConnection("images.example.com.", 8080, timeout=3.0)
    for name in ("_dns_host", "port", "timeout", "source_address", "socket_options", "sock"):
        assert hasattr(conn, name), f"{UPGRADE}HTTPConnection.{name} gone"
    assert conn._dns_host.rstrip(".") == "images.example.com", f"{UPGRADE}_dns_host changed"
    assert conn.port == 8080 and conn.timeout == 3.0


def test_create_connection_keeps_its_signature() -> None:
    params = _params(u3connection.create_connection)
    assert params[:4] == ["address", "timeout", "source_address", "socket_options"], (
        f"{UPGRADE}urllib3.util.connection.create_connection({', '.join(params)})"
    )


def test_pools_build_connections_from_connection_cls() -> None:
    assert issubclass(HTTPConnectionPool.ConnectionCls, HTTPConnection), f"{UPGRADE}ConnectionCls"
    assert issubclass(HTTPSConnectionPool.ConnectionCls, HTTPSConnection), f"{UPGRADE}ConnectionCls"


def test_the_pool_manager_picks_pools_from_pool_classes_by_scheme() -> None:
    classes = getattr(PoolManager(), "pool_classes_by_scheme", None)
    assert isinstance(classes, dict) and {"http", "https"} <= set(classes), (
        f"{UPGRADE}PoolManager.pool_classes_by_scheme gone or changed"
    )
    assert _params(HTTPAdapter.init_poolmanager)[:4] == ["self", "connections", "maxsize", "block"]
    session = guarded_session(AddressPolicy(), pools=2, per_host=1, user_agent="t")
    manager = session.get_adapter("http://").poolmanager  # type: ignore[attr-defined]
    for url in ("http://example.com/", "https://example.com/"):
        pool = manager.connection_from_url(url)
        factory = pool.ConnectionCls._new_conn
        assert factory is not HTTPConnection._new_conn, f"{UPGRADE}the guard is not in {url}'s pool"
        assert factory is not HTTPSConnection._new_conn, (
            f"{UPGRADE}the guard is not in {url}'s pool"
        )


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_scheme_connects_only_through_the_guard(server: HttpServer, scheme: str) -> None:
    """Behaviour, not only attributes: a name resolving to loopback is refused before any byte."""
    session = guarded_session(AddressPolicy(), pools=2, per_host=1, user_agent="t")
    with pytest.raises(RefusedAddress):
        session.get(f"{scheme}://localhost:{server.port}/a.jpg", timeout=2)
    assert sum(server.hits.values()) == 0, f"{UPGRADE}a {scheme} request bypassed the guard"


def test_a_failed_connection_keeps_its_cause_for_the_probe_to_read() -> None:
    """http.py names connection failures by the exception types under requests' wrapper."""
    assert "reason" in _params(MaxRetryError.__init__), f"{UPGRADE}MaxRetryError.reason gone"
    assert issubclass(requests.exceptions.ConnectTimeout, requests.exceptions.Timeout)
