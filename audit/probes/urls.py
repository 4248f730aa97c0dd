"""The remote-URL stage: probe what is stale, commit in batches, report every record's source.

Each unique URL is probed at most once per run and only when its cached result is older than the
TTL, so a nightly run over an unchanged file re-probes nothing. Results are committed every
``batch_size`` probes: a killed run loses at most one batch and the next run resumes from there.
Findings cover every record, cached or not, so each night's report is complete. A cached result
counts only under the settings that decided it, and a refusal by the SSRF guard is never cached:
it says what this run's settings allow, not what the URL serves.

:func:`probe_batch` (from :mod:`audit.probes.urlpool`, importable from here) is the stable
per-batch entry for other engines (the Spark engine runs it per partition in its executors): URLs
+ settings (+ host-file jobs) in, typed per-URL results out, no store touched. Its signature and
result types are kept across releases.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from audit import findings
from audit.config import Config, DatasetConfig, UrlConfig, url_settings_problem
from audit.errors import ConfigError
from audit.findings import Code, Finding
from audit.loaders.urlsources import coco_url_refs, load_url_refs
from audit.models import HostProgress, NoProgress, Progress, UrlRef
from audit.probes.hostfiles import host_file_jobs, judge, keep_host_files
from audit.probes.http import (
    AVAILABLE,
    NOT_PROBED,
    STATUSES,
    TRANSIENT,
    UNCACHED,
    settings_fingerprint,
)
from audit.probes.placeholders import detect
from audit.probes.reservations import ROBOTS_TXT, TDM_HEADER, TDMREP_JSON, X_ROBOTS_TAG
from audit.probes.urlguard import AddressPolicy
from audit.probes.urlnames import domain_of, host_of
from audit.probes.urlpool import probe_batch, warm
from audit.results import DomainCount, OptOut, UrlCounts, UrlsResult
from audit.store import Store
from audit.store.urls import HostFile, Reservation, UrlProbe, lookup, merge, record, save_opt_outs

_WORST_DOMAINS = 10
_BYTES_PER_URL = 200  # a low guess for a TSV line or a JSON record: workers start early

_CODES = {
    "gone": Code.URL_DEAD,
    "forbidden": Code.URL_FORBIDDEN,
    "http_error": Code.URL_HTTP_ERROR,
    "server_error": Code.URL_SERVER_ERROR,
    "timeout": Code.URL_TIMEOUT,
    "dns": Code.URL_DNS,
    "tls": Code.URL_TLS,
    "connection": Code.URL_CONNECTION,
    "not_image": Code.URL_NOT_IMAGE,
    "truncated": Code.URL_TRUNCATED,
    "placeholder": Code.URL_PLACEHOLDER,
    "opt_out": Code.URL_OPT_OUT,
    "redirects": Code.URL_REDIRECTS,
    "invalid": Code.URL_INVALID,
    "refused": Code.URL_REFUSED,
}


def probe_urls(
    refs: Sequence[UrlRef],
    settings: UrlConfig,
    *,
    store: Store | None = None,
    dataset: str = "",
    file: str = "",
    progress: Progress | None = None,
    now: float | None = None,
) -> UrlsResult:
    """Probe the stale URLs of ``refs`` (all of them without a store) and report every record."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    progress = progress or NoProgress()
    unique = list(dict.fromkeys(ref.url for ref in refs))
    _check(settings)
    fingerprint = settings_fingerprint(settings)
    if store is not None:
        merge(store)  # what a killed run left in the log
    cached = lookup(store, unique, fingerprint) if store is not None else {}
    cutoff = now - settings.ttl_days * 86400.0
    transient_cutoff = now - min(settings.transient_ttl_days, settings.ttl_days) * 86400.0
    results = {
        url: p
        for url, p in cached.items()
        if p.probed_at >= (transient_cutoff if p.status in TRANSIENT else cutoff)
    }
    todo = [url for url in unique if url not in results]
    files, file_jobs = host_file_jobs(unique, settings, store, now)
    fetched: list[HostFile] = []
    progress.start(f"urls {dataset or file}".strip(), len(todo))
    per_host = progress if isinstance(progress, HostProgress) else None
    if per_host is not None:
        per_host.hosts(Counter(map(host_of, todo)))
    batch: list[UrlProbe] = []
    try:
        for probe in probe_batch(todo, settings, file_jobs):
            if isinstance(probe, HostFile):
                fetched.append(probe)
                continue
            results[probe.url] = probe
            if probe.status not in UNCACHED:
                batch.append(probe)
            progress.advance()
            if per_host is not None:
                per_host.host_advance(host_of(probe.url))
            if store is not None and len(batch) >= settings.batch_size:
                record(store, batch, fingerprint)
                batch = []
    finally:
        if store is not None:
            record(store, batch, fingerprint)
            merge(store)
        progress.finish()
    files = keep_host_files(files, fetched, store)
    reserved = judge(results, files, settings)
    if store is not None:
        save_opt_outs(store, unique, reserved)  # for the licence stage
    results, placeholders = detect(results, settings.placeholder_min_urls)
    seconds = time.perf_counter() - started
    result_findings = [
        f for ref in refs for f in record_findings(ref, results[ref.url], reserved, dataset, file)
    ]
    stats = _stats(refs, results, reserved, file=file, probed=len(todo), seconds=seconds)
    result_findings.append(summary_finding(stats, dataset, file))
    kinds = {url: tuple(dict.fromkeys(r.kind for r in found)) for url, found in reserved.items()}
    opt_outs = [
        OptOut(ref.file or file, ref.index, ref.url, kinds[ref.url])
        for ref in refs
        if ref.url in reserved
    ]
    return UrlsResult(
        findings=result_findings,
        totals=stats,
        files=[stats],
        opt_outs=sorted(opt_outs),
        placeholders=placeholders,
    )


def _check(settings: UrlConfig) -> None:
    """Settings given by a library caller get the checks ``audit.toml`` gets."""
    problem = url_settings_problem(settings)
    if problem:
        raise ConfigError(problem)
    try:
        AddressPolicy(settings.allow_private, settings.allow_networks)
    except ValueError as exc:
        raise ConfigError(f"urls.allow_networks: {exc}") from None


def record_findings(
    ref: UrlRef,
    probe: UrlProbe,
    reserved: dict[str, tuple[Reservation, ...]],
    dataset: str,
    file: str,
) -> list[Finding]:
    """The probe's status finding (none for an image that is there), and one ``url.opt_out``
    naming each mechanism with its evidence. A shard set's record names its shard."""
    found: list[tuple[Code, str]] = []
    code = _CODES.get(probe.status)
    if code is not None and probe.status != "opt_out":
        final = f" (final URL {probe.final_url})" if probe.final_url else ""
        found.append((code, f"{ref.url}: {probe.detail}{final}"))
    opt_outs = reserved.get(ref.url)
    if opt_outs:
        evidence = "; ".join(f"{_MECHANISMS[r.kind]} ({r.rule}; {r.source})" for r in opt_outs)
        found.append((Code.URL_OPT_OUT, f"{ref.url}: opted out by {evidence}"))
    return [
        findings.make(
            c, m, dataset=dataset, file=ref.file or file, index=ref.index, record_id=ref.record_id
        )
        for c, m in found
    ]


_MECHANISMS = {
    X_ROBOTS_TAG: "X-Robots-Tag header",
    TDM_HEADER: "TDMRep tdm-reservation header",
    TDMREP_JSON: "TDMRep /.well-known/tdmrep.json",
    ROBOTS_TXT: "robots.txt AI-agent rule",
}


def _stats(
    refs: Sequence[UrlRef],
    results: dict[str, UrlProbe],
    reserved: dict[str, tuple[Reservation, ...]],
    *,
    file: str,
    probed: int,
    seconds: float,
) -> UrlCounts:
    """Per-record counts (a URL shared by two records counts twice, as two missing images)."""
    return url_counts(
        tally(refs, results, reserved),
        unique=len(results),
        file=file,
        probed=probed,
        seconds=seconds,
    )


def tally_key(url: str, status: str, opted: bool) -> tuple[str, str, bool]:
    """What one record adds to the counts: its URL's status, domain ("" when not judged, since
    no domain counts it) and whether it is opted out."""
    return (status, "" if status in NOT_PROBED else domain_of(url), opted)


def tally(
    refs: Sequence[UrlRef],
    results: dict[str, UrlProbe],
    reserved: dict[str, tuple[Reservation, ...]],
) -> Counter[tuple[str, str, bool]]:
    """(status, domain, opted out) -> records: all :func:`url_counts` needs of the records."""
    return Counter(tally_key(ref.url, results[ref.url].status, ref.url in reserved) for ref in refs)


def url_counts(
    tallies: Mapping[tuple[str, str, bool], int],
    *,
    unique: int,
    file: str,
    probed: int,
    seconds: float,
) -> UrlCounts:
    """A file's counts from its records' :func:`tally` (the Spark engine sums the same keys)."""
    counts: Counter[str] = Counter()
    per_domain: dict[str, list[int]] = {}
    opted = 0
    for (status, domain, reserved), n in tallies.items():
        counts[status] += n
        opted += n if reserved else 0
        if status in NOT_PROBED:
            continue
        row = per_domain.setdefault(domain, [0, 0])
        row[0] += n
        row[1] += n if status not in AVAILABLE else 0
    judged = sum(n for s, n in counts.items() if s not in NOT_PROBED)
    worst = sorted(per_domain.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    return UrlCounts(
        file=file,
        urls=counts.total(),
        unique_urls=unique,
        probed=probed,
        cached=unique - probed,
        status_counts={s: counts[s] for s in STATUSES if counts[s]},
        referenced=judged,
        opt_out=opted,
        worst_domains=[
            DomainCount(domain=d, urls=n, unavailable=m, unavailable_rate=m / n)
            for d, (n, m) in worst[:_WORST_DOMAINS]
            if m
        ],
        seconds=round(seconds, 3),
        probed_per_second=round(probed / seconds, 1) if seconds > 0 and probed else None,
    )


def summary_finding(stats: UrlCounts, dataset: str, file: str) -> Finding:
    fig = stats.figures
    rate = fig.unavailable_rate
    shown = "n/a" if rate is None else f"{rate:.1%}"
    counts = ", ".join(f"{s} {n}" for s, n in stats.status_counts.items())
    return findings.make(
        Code.URL_STATS,
        f"{stats.urls} URLs ({stats.probed} probed, {stats.cached} cached); unavailable "
        f"{shown} ({fig.missing} missing, {fig.broken} broken) vs ~15% documented by LLaVA "
        f"for CC-3M; {counts or 'none'}",
        dataset=dataset,
        file=file,
    )


class UrlSource(NamedTuple):
    """One file of URLs to probe: which dataset it belongs to and which column holds the URL."""

    dataset: str
    path: str
    column: str = "url"
    coco_annotations: str | None = None  # set: `path` is a chat file joined to COCO's image URLs


def sources_for(config: Config, ds: DatasetConfig) -> list[UrlSource]:
    """The URL files of a configured dataset: its CC-3M TSV and its metadata file, if any.

    A dataset with neither but with a COCO annotation file (LLaVA-Instruct, mix665k) is probed
    through the COCO join: each record's image id gives its Flickr source URL.
    """
    paths = [p for p in (ds.url_tsv, ds.metadata) if p]
    if paths or not (ds.chat and ds.coco_annotations):
        return [UrlSource(ds.name, str(config.path(p)), ds.url_column) for p in paths]
    chat, annotations = config.path(ds.chat), config.path(ds.coco_annotations)
    return [UrlSource(ds.name, str(chat), "url", str(annotations))]


def audit_urls(
    sources: Sequence[UrlSource],
    settings: UrlConfig,
    state: str | Path | Store,
    *,
    progress: Progress | None = None,
) -> UrlsResult:
    """Probe every source file against one state store (a path, or a store already open)."""
    with contextlib.ExitStack() as stack:
        # the worker processes boot while the files and the cache are read
        stack.enter_context(warm(settings, _expected_urls(sources)))
        store = state if isinstance(state, Store) else stack.enter_context(Store(state))
        results = [
            probe_urls(
                coco_url_refs(src.path, src.coco_annotations)
                if src.coco_annotations
                else load_url_refs(src.path, src.column),
                settings,
                store=store,
                dataset=src.dataset,
                file=src.path,
                progress=progress,
            )
            for src in sources
        ]
    return combine(results)


def _expected_urls(sources: Sequence[UrlSource]) -> int:
    """A guess at the URL count from the file sizes (a CC-3M TSV line is ~150 bytes), made
    before reading them: only whether worker processes will be wanted hangs on it."""
    size = 0
    for src in sources:
        with contextlib.suppress(OSError):
            size += Path(src.path).stat().st_size
    return size // _BYTES_PER_URL


def urls_stage(
    ds: DatasetConfig,
    config: Config,
    *,
    progress: Progress | None = None,
    store: Store | None = None,
) -> UrlsResult:
    """The runner's entry: probe a configured dataset's URL files (none: an empty result)."""
    sources = sources_for(config, ds)
    if not sources:
        return UrlsResult()
    state = store if store is not None else config.path(config.state)
    return audit_urls(sources, config.urls, state, progress=progress)


def combine(results: Sequence[UrlsResult]) -> UrlsResult:
    """One stage result for several files: findings concatenated, counts summed, each file's kept."""
    if len(results) == 1:
        return results[0]
    total: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    domains: dict[str, list[int]] = {}
    for result in results:
        s = result.totals
        for key in ("urls", "unique_urls", "probed", "cached", "referenced", "opt_out"):
            total[key] += getattr(s, key)
        statuses.update(s.status_counts)
        for row in s.worst_domains:
            tally = domains.setdefault(row.domain, [0, 0])
            tally[0] += row.urls
            tally[1] += row.unavailable
    worst = sorted(domains.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    totals = UrlCounts(
        urls=total["urls"],
        unique_urls=total["unique_urls"],
        probed=total["probed"],
        cached=total["cached"],
        referenced=total["referenced"],
        opt_out=total["opt_out"],
        status_counts=dict(statuses),
        worst_domains=[
            DomainCount(domain=d, urls=n, unavailable=m, unavailable_rate=m / n)
            for d, (n, m) in worst[:_WORST_DOMAINS]
        ],
    )
    return UrlsResult(
        findings=[f for r in results for f in r.findings],
        totals=totals,
        files=[f for r in results for f in r.files],
        opt_outs=sorted(o for r in results for o in r.opt_outs),
        placeholders=[p for r in results for p in r.placeholders],
    )
