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
from urllib.parse import urlsplit

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


#: IPv6 prefixes whose low 32 bits are an IPv4 address the packet really goes to: IPv4-compatible
#: (``::a.b.c.d``), SIIT-translated (``::ffff:0:a.b.c.d``) and NAT64's well-known prefix.
_CARRY_LOW_32 = tuple(
    ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
#: NAT64 local-use (RFC 8215): the IPv4 sits at a site-chosen offset, so it is never public.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4,
    Teredo): a gateway may deliver to them, so each must be allowed too."""
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if any(address in net for net in _CARRY_LOW_32):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


class AddressPolicy:
    """Which addresses may be contacted, with a per-run cache of host resolutions.

    Only globally routable unicast addresses are allowed by default; ``allow_private`` lifts the
    rule (tests, intranet mirrors) and ``allow_networks`` lifts it for listed networks only.
    ``known`` seeds the resolution cache (a worker process connects to the addresses its parent
    resolved and scheduled by, see :meth:`known`).
    """

    def __init__(
        self,
        allow_private: bool = False,
        allow_networks: Sequence[str] = (),
        known: dict[tuple[str, int], list[tuple[int, str]] | str] | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.allow_networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allow_networks
        )
        self._cache: dict[tuple[str, int], list[tuple[int, str]] | str] = dict(known or {})
        self._allowed: dict[tuple[str, int], list[tuple[int, str]]] = {}  # resolve's answers
        self._lock = threading.Lock()

    def allowed(self, address: Address) -> bool:
        if self.allow_private:
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:  # the socket talks IPv4 to exactly that address
                return self._public_or_listed(address.ipv4_mapped)
            if address in _LOCAL_NAT64:
                return any(address in net for net in self.allow_networks)
            if not all(self._public_or_listed(v4) for v4 in embedded_ipv4(address)):
                return False
        return self._public_or_listed(address)

    def _public_or_listed(self, address: Address) -> bool:
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
        """Allowed (family, address) pairs for ``host``; raises DnsFailure or RefusedAddress.

        The first pair is the address a connection uses (the others are fallbacks), so it is
        also the key the scheduler counts a server's requests in flight by.
        """
        key = (_normal_host(host), port)
        answer = self._allowed.get(key)
        if answer is not None:  # asked per request and redirect hop: parse and judge once
            return answer
        cached = self._cache.get(key)
        if cached is None:
            cached = self._lookup(key[0], port)
            with self._lock:
                self._cache[key] = cached
        if isinstance(cached, str):
            raise DnsFailure(cached)
        allowed = [(fam, addr) for fam, addr in cached if self.allowed(ipaddress.ip_address(addr))]
        if not allowed:
            shown = ", ".join(sorted({addr for _, addr in cached}))
            raise RefusedAddress(f"{host} resolves to a non-public address ({shown})")
        self._allowed[key] = allowed
        return allowed

    def known(self) -> dict[tuple[str, int], list[tuple[int, str]] | str]:
        """Every resolution made so far (seeds a worker process's policy, so it connects to the
        addresses its URLs were scheduled by)."""
        with self._lock:
            return dict(self._cache)

    @staticmethod
    def _lookup(host: str, port: int) -> list[tuple[int, str]] | str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return f"cannot resolve {host}: {_GAI_REASONS.get(exc.errno, 'lookup failed')}"
        except UnicodeError:
            return f"cannot resolve {host}: not a valid host name"
        found = [(int(info[0]), str(info[4][0]).split("%", 1)[0]) for info in infos]
        return found or f"cannot resolve {host}: no address"


_GAI_REASONS: dict[int | None, str] = {
    socket.EAI_NONAME: "no such host",
    socket.EAI_AGAIN: "temporary DNS failure",
    socket.EAI_FAIL: "DNS server failure",
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): "no such host",
}


def _normal_host(host: str) -> str:
    """One cache key per spelling DNS treats alike (case, brackets, trailing dot)."""
    return host.strip("[]").rstrip(".").lower()


def server_address(policy: AddressPolicy, url: str) -> str | None:
    """The address a connection for ``url`` would use (the policy's first allowed address for its
    host): politeness counts per server, whatever the host's spelling (``localhost``, ``127.1``,
    ``2130706433``). None when there is none: the URL is refused or fails without connecting."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme)
        if not host or port is None:
            return None
        return policy.resolve(host, port)[0][1]
    except (ValueError, DnsFailure, RefusedAddress):
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


class InFlight:
    """Requests in flight per server address across a process's threads, at most ``limit`` each
    (every redirect hop counts against the server it goes to)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._count: dict[str, int] = {}
        self._cond = threading.Condition()

    def try_enter(self, server: str) -> bool:
        with self._cond:
            if self._count.get(server, 0) >= self.limit:
                return False
            self._count[server] = self._count.get(server, 0) + 1
            return True

    def enter(self, server: str) -> None:
        with self._cond:
            while self._count.get(server, 0) >= self.limit:
                self._cond.wait()
            self._count[server] = self._count.get(server, 0) + 1

    def leave(self, server: str) -> None:
        with self._cond:
            self._count[server] -= 1
            if not self._count[server]:
                del self._count[server]
            self._cond.notify_all()


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
    # the OSError stays the cause: the probe reports it by its type and errno, not by this text
    raise NewConnectionError(conn, f"failed to connect to {conn.host}") from error


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
