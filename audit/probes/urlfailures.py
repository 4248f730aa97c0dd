"""A failed transfer's status class and message, told by libcurl's error number and the socket's
errno, never by any library's message text (which carries internals and changes between versions).
"""

from __future__ import annotations

import errno as errnos
import os

import pycurl

#: libcurl errors that end a TLS handshake or its checks, with what the user reads.
_TLS: dict[int, str] = {
    pycurl.E_SSL_CONNECT_ERROR: "TLS handshake failed (no TLS handshake with this server)",
    pycurl.E_PEER_FAILED_VERIFICATION: "certificate not trusted (verification failed)",
    pycurl.E_SSL_CERTPROBLEM: "TLS handshake failed (certificate problem)",
    pycurl.E_SSL_CIPHER: "TLS handshake failed (no common cipher)",
    pycurl.E_SSL_ENGINE_NOTFOUND: "TLS handshake failed (TLS engine missing)",
    pycurl.E_SSL_ENGINE_SETFAILED: "TLS handshake failed (TLS engine failed)",
    pycurl.E_SSL_CACERT_BADFILE: "TLS handshake failed (CA bundle unreadable)",
    pycurl.E_SSL_SHUTDOWN_FAILED: "TLS handshake failed (shutdown failed)",
    pycurl.E_SSL_CRL_BADFILE: "TLS handshake failed (revocation list unreadable)",
    pycurl.E_SSL_ISSUER_ERROR: "certificate not trusted (issuer check failed)",
    pycurl.E_USE_SSL_FAILED: "TLS handshake failed (TLS refused)",
    pycurl.E_SSL_PINNEDPUBKEYNOTMATCH: "certificate not trusted (pinned key mismatch)",
    pycurl.E_SSL_INVALIDCERTSTATUS: "certificate not trusted (status check failed)",
}

#: (pycurl names libcurl's 8 by its FTP-era name and lacks 92)
_WEIRD_SERVER_REPLY = pycurl.E_FTP_WEIRD_SERVER_REPLY
_HTTP2_STREAM = 92

#: What went wrong on the wire, by the socket's errno.
_ERRNO = {
    errnos.ECONNREFUSED: "connection refused",
    errnos.ECONNRESET: "connection reset by the server",
    errnos.ECONNABORTED: "connection aborted",
    errnos.EPIPE: "connection reset by the server",
}


def wire(os_errno: int) -> str:
    """What broke on the wire, from the socket's errno (0: unknown)."""
    text = _ERRNO.get(os_errno)
    if text:
        return text
    return (
        f"connection failed: {os.strerror(os_errno).lower()}" if os_errno else "connection failed"
    )


def failure(code: int, os_errno: int) -> tuple[str, str, bool]:
    """(status class, detail, worth a retry) of a transfer that failed before any answer came."""
    if code in _TLS:
        return "tls", _TLS[code], False
    if code == pycurl.E_URL_MALFORMAT:
        return "invalid", "not a valid http(s) URL", False
    if code == pycurl.E_GOT_NOTHING:
        return "connection", "the server closed the connection without answering", True
    # the scheme was checked before libcurl saw the URL: "unsupported protocol" is an answer in
    # no HTTP version libcurl accepts (HTTP/0.9, garbage)
    if code in (_WEIRD_SERVER_REPLY, pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_HTTP2, _HTTP2_STREAM):
        return "connection", "not a valid HTTP answer", True
    if code == pycurl.E_PARTIAL_FILE:
        return "connection", "fewer bytes than announced", True
    return "connection", wire(os_errno), True


def broke_off(code: int, os_errno: int) -> str:
    """The detail of a body whose transfer broke off after the answer's head."""
    if code == pycurl.E_PARTIAL_FILE:
        return "transfer broke off (fewer bytes than announced)"
    if code == pycurl.E_BAD_CONTENT_ENCODING:
        return "transfer broke off (not a valid HTTP answer)"
    return f"transfer broke off ({wire(os_errno)})"
