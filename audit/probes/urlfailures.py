"""A failed request's status class and message, told by the exception's type, never its text.

Library messages carry internals (``HTTPConnectionPool(host=...): Max retries exceeded ...``) and
change between versions; the types and errnos under requests' wrappers say what happened.
"""

from __future__ import annotations

import http.client
import os
import ssl
from collections.abc import Iterator

import requests

from audit.probes.urlguard import DnsFailure, RefusedAddress


def failure(exc: Exception) -> tuple[str, str, bool]:
    """(status class, detail, worth a retry) of a request that raised."""
    if isinstance(exc, RefusedAddress | DnsFailure):  # ours: their text is written for users
        return ("refused" if isinstance(exc, RefusedAddress) else "dns"), str(exc), False
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls", _tls(exc), False
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timeout", "connect timed out", True
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout", "no answer within the timeout", False
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.URLRequired
        | requests.exceptions.InvalidSchema
        | requests.exceptions.MissingSchema,
    ):
        return "invalid", "not a valid http(s) URL", False
    return "connection", broken(exc), True


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, wrapped arguments and reasons)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = (current.__cause__, current.__context__, getattr(current, "reason", None))
        todo.extend(e for e in (*wrapped, *current.args) if isinstance(e, BaseException))


#: What went wrong on the wire, by exception type, most specific first.
_WIRE: tuple[tuple[type[BaseException], str], ...] = (
    (http.client.RemoteDisconnected, "the server closed the connection without answering"),
    (http.client.IncompleteRead, "fewer bytes than announced"),
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError, "connection reset by the server"),
    (ConnectionAbortedError, "connection aborted"),
    (http.client.HTTPException, "not a valid HTTP answer"),
)


def broken(exc: BaseException) -> str:
    """What broke on the wire (refused, reset, cut short), from the exceptions ``exc`` wraps."""
    causes = list(_chain(exc))
    for kind, text in _WIRE:
        if any(isinstance(e, kind) for e in causes):
            return text
    for e in causes:
        if isinstance(e, OSError) and e.errno:
            return f"connection failed: {os.strerror(e.errno).lower()}"
    return "connection failed"


def _tls(exc: BaseException) -> str:
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"certificate not trusted ({e.verify_message or 'verification failed'})"
        if isinstance(e, ssl.SSLError):
            return f"TLS handshake failed ({e.reason or type(e).__name__})"
    return "TLS handshake failed"
