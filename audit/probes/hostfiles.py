"""Each origin's robots.txt and /.well-known/tdmrep.json: fetched at most once per run and origin,
cached ``robots_ttl_days`` in the state store, and every URL's opt-outs judged from them.

The fetches are jobs in the URL probe's own worker pool, queued ahead of their server's URLs, so
every origin's files are fetched in parallel with the probing instead of in a phase after it,
with its machinery (:mod:`audit.probes.curlprobe`): the SSRF guard on every hop (a redirect to a
private address is refused), the per-server request slots and ``delay_seconds``
(:class:`audit.probes.hostsched.HostScheduler` keyed by server address), the per-request deadline
and a byte cap (robots.txt: RFC 9309's 500 KiB, parsed as far as it goes; tdmrep.json 256 KiB).
A 2xx answer is the file; a 4xx is a definite "none" (RFC 9309: no rules); both are cached. A 5xx,
a timeout, a refusal or any other failure counts as no rule for this run and is not cached, so
the next run asks again (RFC 9309 would read a 5xx as "disallow everything"; an opt-out claimed
from a broken server would be a guess, not a reservation).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from audit.config import UrlConfig
from audit.probes.http import Outcome
from audit.probes.reservations import (
    ROBOTS_MAX_BYTES,
    ROBOTS_PATH,
    TDM_HEADER,
    TDMREP_MAX_BYTES,
    TDMREP_PATH,
    X_ROBOTS_TAG,
    TdmRule,
    parse_tdmrep,
    robots_agents,
    robots_parser,
    robots_reservation,
    tdmrep_reservation,
)
from audit.store import Store
from audit.store.urls import HostFile, Reservation, UrlProbe, host_files, save_host_files

_CAPS = {ROBOTS_PATH: ROBOTS_MAX_BYTES, TDMREP_PATH: TDMREP_MAX_BYTES}


_ORIGIN_PART = re.compile(r"[^:/?#]*://[^/?#]*")


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` in lower case (robots.txt and tdmrep.json are per origin).

    Parsed once per ``scheme://netloc`` prefix: a run asks for every URL, and most share a few
    hosts."""
    prefix = _ORIGIN_PART.match(url)
    return _origin(prefix.group() if prefix else url)


@functools.lru_cache(maxsize=4096)
def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme.lower()}://{host.lower()}" + (f":{port}" if port else "")


def wanted_files(settings: UrlConfig) -> list[str]:
    return [
        p
        for p, on in ((ROBOTS_PATH, settings.check_robots), (TDMREP_PATH, settings.check_tdmrep))
        if on
    ]


class FileJob(NamedTuple):
    """One host file to fetch: queued with the origin's URLs in the probe's worker pool."""

    origin: str
    path: str

    @property
    def url(self) -> str:
        return self.origin + self.path

    @property
    def max_bytes(self) -> int:
        return _CAPS[self.path]


def host_file_jobs(
    urls: Iterable[str], settings: UrlConfig, store: Store | None, now: float
) -> tuple[dict[tuple[str, str], HostFile], list[FileJob]]:
    """(origin, path) -> the file, for every origin of ``urls`` and enabled file still fresh in
    the cache; and the jobs that fetch the others (each once) alongside the URL probes."""
    wanted = wanted_files(settings)
    unique = list(dict.fromkeys(o for o in map(origin_of, urls) if o)) if wanted else []
    cutoff = now - settings.robots_ttl_days * 86400.0
    found: dict[tuple[str, str], HostFile] = {}
    todo: list[FileJob] = []
    for path in wanted:
        cached = host_files(store, path, unique) if store is not None else {}
        for origin in unique:
            hit = cached.get(origin)
            if hit is not None and hit.fetched_at >= cutoff:
                found[(origin, path)] = hit
            else:
                todo.append(FileJob(origin, path))
    return found, todo


def keep_host_files(
    found: dict[tuple[str, str], HostFile], fetched: Sequence[HostFile], store: Store | None
) -> dict[tuple[str, str], HostFile]:
    """``found`` plus the files fetched this run, which are cached (only definite answers are)."""
    if store is not None:
        save_host_files(store, fetched)
    return found | {(f.origin, f.name): f for f in fetched}


def host_file(origin: str, path: str, out: Outcome, body: bytes) -> HostFile | None:
    """The file from a fetch's outcome and body (capped); None for an indefinite answer (a 5xx,
    a timeout, a refusal: never cached)."""
    if out.status == "ok":
        text = body.decode("utf-8", errors="replace")
        if path == ROBOTS_PATH and len(body) >= ROBOTS_MAX_BYTES:
            text = text.rpartition("\n")[0]  # a line cut by the cap is no rule
        return HostFile(origin, path, time.time(), True, text)
    code = out.http_status
    if code is not None and 400 <= code < 500 and code != 429:
        return HostFile(origin, path, time.time(), False, "")
    return None


def judge(
    probes: Mapping[str, UrlProbe],
    files: Mapping[tuple[str, str], HostFile],
    settings: UrlConfig,
) -> dict[str, tuple[Reservation, ...]]:
    """URL -> its opt-outs: its probe's header reservations, then the origin's tdmrep.json rule
    (unless a tdm-reservation header superseded it), then its robots.txt rules."""
    parsed_tdm: dict[str, list[TdmRule]] = {}
    parsed_robots: dict[str, tuple[RobotFileParser, list[str]]] = {}
    result: dict[str, tuple[Reservation, ...]] = {}
    for url, probe in probes.items():
        found = [r for r in probe.reservations if r.reserved]
        if probe.status == "opt_out" and not found:  # cached before reservations were kept
            found.append(Reservation(X_ROBOTS_TAG, probe.detail, url, probe.probed_at))
        origin = origin_of(url)
        tdm = files.get((origin, TDMREP_PATH)) if origin else None
        if (
            tdm is not None
            and tdm.found
            and not any(r.kind == TDM_HEADER for r in probe.reservations)
        ):
            rules = parsed_tdm.get(tdm.origin)
            if rules is None:
                rules = parsed_tdm[tdm.origin] = parse_tdmrep(tdm.body)
            hit = tdmrep_reservation(rules, url, tdm.origin + TDMREP_PATH, tdm.fetched_at)
            found += [hit] if hit else []
        robots = files.get((origin, ROBOTS_PATH)) if origin else None
        if robots is not None and robots.found:
            parsed = parsed_robots.get(robots.origin)
            if parsed is None:
                parser = robots_parser(robots.body)
                parsed = (parser, robots_agents(parser, settings.ai_user_agents))
                parsed_robots[robots.origin] = parsed
            parser, agents = parsed
            source = robots.origin + ROBOTS_PATH
            hit = robots_reservation(parser, agents, url, source, robots.fetched_at)
            found += [hit] if hit else []
        if found:
            result[url] = tuple(found)
    return result
