"""A URL's host and domain by plain string operations: the scheduling and statistics keys.

Pure and cheap (600K URLs per run); what the SSRF guard connects to is decided elsewhere.
"""

from __future__ import annotations


def host_of(url: str) -> str:
    """The per-host scheduling key: the URL's host and port, lower case (str ops: 600K URLs)."""
    rest = url.partition("://")[2]
    for sep in "/?#":
        rest = rest.partition(sep)[0]
    return rest.rpartition("@")[2].lower()


def domain_of(url: str) -> str:
    """The host without port and ``www.``, for per-domain statistics."""
    host = host_of(url)
    host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return host.removeprefix("www.")
