"""SSRF guard: dataset URLs are untrusted, so every connection's address is checked before it opens.

A host is resolved once (:meth:`AddressPolicy.resolve`), its addresses judged, and the probe
engine (:mod:`audit.probes.curlprobe`) connects to exactly the first allowed one: libcurl is told
that address (``CURLOPT_CONNECT_TO``, no lookup of its own a DNS-rebinding host could answer
differently) and its socket factory refuses any other. Every redirect hop is resolved and judged
the same way before its request, so no hop can reach a private address either. Proxies are
never used: through one the guard would only see the proxy's address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

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
        self._literals: dict[str, bool] = {}

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
        known = self._literals.get(host)
        if known is None:
            try:
                known = not self.allowed(ipaddress.ip_address(host.strip("[]")))
            except ValueError:
                known = False
            self._literals[host] = known  # asked per hop: parsed once per host
        return known

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
