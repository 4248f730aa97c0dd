"""One probe job's state in the curl engine, and the checks and libcurl options around a hop.

See :mod:`audit.probes.curlprobe`: a :class:`Task` is one job (an image URL or a host file)
through its attempts and redirect hops, and the state of its one transfer in flight, whose
libcurl callbacks are its bound methods.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

import certifi
import pycurl

from audit.config import UrlConfig
from audit.probes.hostfiles import FileJob
from audit.probes.http import Answer, Outcome
from audit.probes.urlguard import AddressPolicy, DnsFailure, RefusedAddress
from audit.probes.urlnames import host_of

#: URLs that need no re-quoting or IDNA encoding (the common case) go to libcurl as they are.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]+)?(/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*)?(\?[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)?"
)
PORTS = {"http": 80, "https": 443}


class Task:
    """One job (an image URL or a host file) through its attempts and redirect hops; also the
    state of its one transfer in flight (libcurl's callbacks are its bound methods)."""

    __slots__ = (
        "address",
        "attempt",
        "body",
        "cap",
        "capped",
        "current",
        "head",
        "hops",
        "host",
        "job",
        "key",
        "mark",
        "quiet_since",
        "refused",
        "seen",
        "server",
        "size",
        "spent",
        "started",
        "url",
    )  # fmt: skip

    def __init__(self, job: FileJob | str, key: str, cap: int) -> None:
        self.job, self.key, self.cap = job, key, cap
        self.url = job.url if isinstance(job, FileJob) else job
        self.host = host_of(self.url)  # the key of HostHealth: a dead site behind a shared address
        self.attempt = 0
        self.new_attempt()

    def new_attempt(self) -> None:
        self.current, self.seen, self.hops, self.spent = self.url, {self.url}, 0, 0.0

    def new_hop(self, server: str, address: str, now: float) -> None:
        self.server, self.address, self.started = server, address, now
        self.head: list[bytes] = []
        self.body: list[bytes] = []
        self.size, self.capped, self.refused = 0, False, False
        self.mark, self.quiet_since = 0, now

    def write(self, chunk: bytes) -> int | None:
        self.body.append(chunk)
        self.size += len(chunk)
        if self.size > self.cap:  # one byte past the cap tells "more" from "exactly this"
            self.capped = True
            return 0  # stops the transfer (CURLE_WRITE_ERROR, read as "capped")
        return None

    def open_socket(self, _purpose: int, address: tuple[int, int, int, tuple[str, int]]) -> object:
        """libcurl's socket factory: a socket only for the address this hop was checked for."""
        family, socktype, protocol, where = address
        if ipaddress.ip_address(where[0]) != ipaddress.ip_address(self.address):
            self.refused = True
            return pycurl.SOCKET_BAD
        return socket.socket(family, socktype, protocol)

    def answer(self, code: int, broke: tuple[str, str] | None) -> Answer:
        """The final answer's headers (after any 1xx) and body."""
        start = max((i for i, h in enumerate(self.head) if h.startswith(b"HTTP/")), default=0)
        headers: dict[str, list[str]] = {}
        for raw in self.head[start + 1 :]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        return Answer(code, headers, b"".join(self.body), broke)

    def head_done(self) -> bool:
        return bool(self.head) and self.head[-1] in (b"\r\n", b"\n")


def check_hop(policy: AddressPolicy, url: str) -> tuple[Outcome | None, str, str | None, int]:
    """Before a hop: (a refusal or failure without any request, the URL as sent, the address the
    guard allowed for its host, the port)."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in PORTS or not parts.hostname:
            return Outcome("invalid", detail=f"not an http(s) URL: {url[:200]}"), url, None, 0
        if policy.literal_refused(parts.hostname):
            return (
                Outcome("refused", detail=f"non-public address {parts.hostname}"),
                url,
                None,
                0,
            )
        if not (url.isascii() and _PLAIN_URL.fullmatch(url)):
            url = _prepared(url)
            parts = urlsplit(url)
        port = parts.port or PORTS[parts.scheme]
        address = policy.resolve(parts.hostname or "", port)[0][1]
    except ValueError:
        return Outcome("invalid", detail="not a valid http(s) URL"), url, None, 0
    except (DnsFailure, RefusedAddress) as exc:  # ours: their text is written for users
        status = "refused" if isinstance(exc, RefusedAddress) else "dns"
        return Outcome(status, detail=str(exc)), url, None, 0
    return None, url, address, port


def _prepared(url: str) -> str:
    """``url`` as requests would send it (IDNA host, percent-encoding: the exact path); requests
    is imported only here, for the rare URL that needs it, so a worker process boots without it.
    Raises ValueError for a URL it cannot prepare."""
    import requests

    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except requests.RequestException as exc:
        raise ValueError(str(exc)) from exc
    return str(prepared.url)


def new_curl(settings: UrlConfig) -> pycurl.Curl:
    """An easy handle with the options every probe transfer shares."""
    curl = pycurl.Curl()
    curl.setopt(pycurl.NOSIGNAL, 1)
    curl.setopt(pycurl.PROXY, "")  # no proxy, whatever the environment says
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.FOLLOWLOCATION, 0)
    curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    curl.setopt(pycurl.CAINFO, certifi.where())
    curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(settings.timeout_seconds * 1000)))
    return curl
