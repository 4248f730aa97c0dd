"""SSRF guard: dataset URLs are untrusted, so every connection's address is checked before it opens.

The check sits inside urllib3's connection factory rather than in front of the request: the host is
resolved once, the resolved addresses are checked, and the socket connects to exactly the address
that passed (no second lookup a DNS-rebinding host could answer differently). Every redirect hop
opens its connection through the same factory, so no hop can reach a private address either.
Environment proxies are ignored (``trust_env = False``): through a proxy the guard would only see
the proxy's address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as u3connection

from audit.probes.deadline import Deadlines

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(Exception):  # noqa: N818 - reads as the outcome, like requests' names
    """The host resolves only to addresses the policy forbids; nothing was sent."""


class DnsFailure(Exception):  # noqa: N818
    """The host name does not resolve (NXDOMAIN, no address, resolver failure)."""


class AddressPolicy:
    """Which addresses may be contacted, with a per-run cache of host resolutions.

    Only globally routable unicast addresses are allowed by default; ``allow_private`` lifts the
    rule (tests, intranet mirrors) and ``allow_networks`` lifts it for listed networks only.
    """

    def __init__(self, allow_private: bool = False, allow_networks: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self.allow_networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        )
        self._cache: dict[tuple[str, int], list[tuple[int, str]] | str] = {}
        self._lock = threading.Lock()

    def allowed(self, address: Address) -> bool:
        if self.allow_private:
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allow_networks):
            return True
        return address.is_global and not address.is_multicast

    def literal_refused(self, host: str) -> bool:
        """True when ``host`` is an IP literal the policy forbids (refused without any lookup)."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return not self.allowed(address)

    def resolve(self, host: str, port: int) -> list[tuple[int, str]]:
        """Allowed (family, address) pairs for ``host``; raises DnsFailure or RefusedAddress."""
        key = (host, port)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._lookup(host, port)
            with self._lock:
                self._cache[key] = cached
        if isinstance(cached, str):
            raise DnsFailure(cached)
        allowed = [(fam, addr) for fam, addr in cached if self.allowed(ipaddress.ip_address(addr))]
        if not allowed:
            shown = ", ".join(sorted({addr for _, addr in cached}))
            raise RefusedAddress(f"{host} resolves to a non-public address ({shown})")
        return allowed

    @staticmethod
    def _lookup(host: str, port: int) -> list[tuple[int, str]] | str:
        try:
            infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            return f"cannot resolve {host}: {exc}"
        found = [(int(info[0]), str(info[4][0]).split("%", 1)[0]) for info in infos]
        return found or f"cannot resolve {host}: no address"


def _guarded_new_conn(conn: HTTPConnection, policy: AddressPolicy) -> socket.socket:
    """urllib3's ``_new_conn``, connecting only to addresses the policy allows."""
    candidates = policy.resolve(conn._dns_host, conn.port)
    error: OSError | None = None
    for _family, address in candidates:
        try:
            return u3connection.create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(conn, f"connection to {conn.host} timed out") from exc
        except OSError as exc:
            error = exc
    raise NewConnectionError(conn, f"failed to connect to {conn.host}: {error}")


def guarded_session(
    policy: AddressPolicy,
    *,
    pools: int,
    per_host: int,
    user_agent: str,
    deadlines: Deadlines | None = None,
) -> requests.Session:
    """A pooled session whose every connection passes :class:`AddressPolicy` (and, given
    ``deadlines``, whose every request is watched for its total time)."""

    def watch(sock: socket.socket | None) -> None:
        if deadlines is not None:
            deadlines.attach(sock)

    class _HTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_new_conn(self, policy)

        def request(self, *args: Any, **kwargs: Any) -> None:
            super().request(*args, **kwargs)
            watch(self.sock)

    class _HTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _guarded_new_conn(self, policy)

        def request(self, *args: Any, **kwargs: Any) -> None:
            super().request(*args, **kwargs)
            watch(self.sock)

    class _HTTPPool(HTTPConnectionPool):
        ConnectionCls = _HTTPConnection

    class _HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _HTTPSConnection

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    session = requests.Session()
    session.trust_env = False
    session.headers = requests.structures.CaseInsensitiveDict(
        {"User-Agent": user_agent, "Accept": "image/*,*/*;q=0.5", "Accept-Encoding": "identity"}
    )
    adapter = _Adapter(pool_connections=pools, pool_maxsize=per_host, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
