"""Executor side of the URL stage on Spark: top-level functions over Arrow batches (pickled by
reference), each a thin wrapper of the local engine's own functions for the same step.

Two Python passes do all the per-URL work: :func:`prepare` (unique URLs, host-file jobs, server
addresses) and :func:`probe_partition` (probe, fetch, judge the opt-outs, and what the cross-URL
steps group by); :func:`record_rows` then turns each record into its findings."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pyarrow as pa

from audit.config import UrlConfig
from audit.engines.spark.caches import arrow_schema
from audit.engines.spark.findingtable import to_batch
from audit.models import UrlRef
from audit.probes.hostfiles import FileJob, judge, origin_of, wanted_files
from audit.probes.hostsched import servers
from audit.probes.placeholders import _distinct as distinct_url
from audit.probes.urlguard import AddressPolicy
from audit.probes.urlnames import host_of
from audit.probes.urls import probe_batch, record_findings, tally_key
from audit.store.urls import HostFile, Reservation, UrlProbe

#: A probe row: a URL cache row without its key and settings (audit.engines.spark.caches.URLS).
PROBE_COLUMNS = (
    "url string, status string, http_status int, detail string, final_url string, "
    "probed_at double, reservations string, sha256 string, size long"
)
#: The probe row's columns, and the same without the URL (what a join on it adds).
PROBE_NAMES = [f.split()[0] for f in PROBE_COLUMNS.split(", ")]
PROBE_REST = PROBE_NAMES[1:]
#: A job for :func:`probe_partition`: a URL (path None) with its cached probe when still fresh
#: (status None: to probe), or an origin's host file with its cached copy when still fresh
#: (found None: to fetch); both keyed by server address.
WORK = (
    f"{PROBE_COLUMNS}, key string, origin string, path string, server string, "
    "fetched_at double, found boolean, body string"
)
#: What a probing task yields: every URL's probe (kind "url": ``probed`` when asked this run,
#: ``opted`` its judged opt-outs, ``target`` and ``domain`` what placeholders and counts group
#: by), and each host file fetched this run (kind "file").
PROBED = (
    f"kind string, {PROBE_COLUMNS}, key string, probed boolean, opted string, target string, "
    "domain string, origin string, name string, fetched_at double, found boolean, body string"
)
PREPARED = "url string, origin string, path string, server string"
_PROBED = arrow_schema(PROBED)
_PREPARED = arrow_schema(PREPARED)
_ROWS = 2048  # rows per Arrow batch a task yields
_RESOLVERS = 64  # threads resolving one task's hosts

_encode = msgspec.json.Encoder().encode
decode_reservations = msgspec.json.Decoder(tuple[Reservation, ...]).decode


def encode_reservations(found: tuple[Reservation, ...]) -> str:
    """The SQLite cache's encoding of a probe's reservations ("" for none)."""
    return _encode(found).decode() if found else ""


def probe_of(row: dict[str, object]) -> UrlProbe:
    """A probe row (:data:`PROBE_COLUMNS`) as the local engine's :class:`UrlProbe`."""
    text = row["reservations"]
    return UrlProbe(
        str(row["url"]),
        str(row["status"]),
        row["http_status"],  # type: ignore[arg-type]
        str(row["detail"] or ""),
        row["final_url"],  # type: ignore[arg-type]
        float(row["probed_at"]),  # type: ignore[arg-type]
        decode_reservations(text) if isinstance(text, str) and text else (),
        row["sha256"],  # type: ignore[arg-type]
        row["size"],  # type: ignore[arg-type]
    )


def home(url: str) -> str:
    """The key that puts a URL with every URL of its origin (and so the origin's host files) in
    one preparing task: the origin's host and port, else the URL's host."""
    origin = origin_of(url)
    return host_of(origin) if origin else host_of(url)


def prepare(settings: UrlConfig, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """url (a task holding every URL of its origins) -> each unique URL and each host-file job
    (url, origin, path: None for a URL) with its server: the address the probe will connect to,
    by the local engine's own keying (:func:`audit.probes.hostsched.servers`: each host resolved
    once, by the SSRF guard), or the URL's :func:`home` when it has none (it fails without
    connecting), so that an origin's URLs and files still share one probing task."""
    urls = list(dict.fromkeys(u for b in batches for u in b.column("url").to_pylist()))
    origins = [origin_of(u) or "" for u in urls]
    wanted = wanted_files(settings)
    jobs = [FileJob(o, p) for o in dict.fromkeys(o for o in origins if o) for p in wanted]
    every = [*urls, *(j.url for j in jobs)]
    if not every:
        return
    policy = AddressPolicy(settings.allow_private, settings.allow_networks)
    key = servers(every, policy, min(settings.workers, _RESOLVERS))
    rows = {
        "url": every,
        "origin": [*origins, *(j.origin for j in jobs)],
        "path": [*([None] * len(urls)), *(j.path for j in jobs)],
        "server": [a if (a := key(u)) != host_of(u) else home(u) for u in every],
    }
    yield from pa.Table.from_pydict(rows, schema=_PREPARED).to_batches(max_chunksize=_ROWS)


def probe_partition(
    settings: UrlConfig, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """One task's servers (every URL of an address, every URL and host file of an origin): the
    local engine's batch probe (one process: its per-server slots and back-offs are the whole
    cluster's) over the URLs and files not fresh in the caches, then its opt-out judgement
    (:func:`audit.probes.hostfiles.judge`) over the task's origins."""
    results: dict[str, UrlProbe] = {}
    keys: dict[str, str] = {}
    files: dict[tuple[str, str], HostFile] = {}
    todo: list[str] = []
    fetch: list[FileJob] = []
    for batch in batches:
        for row in batch.to_pylist():
            if row["path"] is not None:
                if row["found"] is None:
                    fetch.append(FileJob(row["origin"], row["path"]))
                else:
                    held = HostFile(
                        row["origin"], row["path"], row["fetched_at"], row["found"], row["body"]
                    )
                    files[(held.origin, held.name)] = held
                continue
            keys[row["url"]] = row["key"]
            if row["status"] is None:
                todo.append(row["url"])
            else:
                results[row["url"]] = probe_of(row)
    one = msgspec.structs.replace(settings, processes=1)  # the executor is the process
    fetched: list[HostFile] = []
    for item in probe_batch(todo, one, fetch):
        if isinstance(item, HostFile):
            fetched.append(item)
            files[(item.origin, item.name)] = item
        else:
            results[item.url] = item
    reserved = judge(results, files, settings)
    asked = set(todo)
    out = [
        _url_row(probe, keys[url], url in asked, reserved.get(url))
        for url, probe in results.items()
    ]
    out += [{"kind": "file", **msgspec.structs.asdict(f)} for f in fetched]
    for start in range(0, len(out), _ROWS):
        chunk = out[start : start + _ROWS]
        yield pa.RecordBatch.from_pylist(
            [{name: row.get(name) for name in _PROBED.names} for row in chunk], schema=_PROBED
        )


def _url_row(
    probe: UrlProbe, key: str, probed: bool, opted: tuple[Reservation, ...] | None
) -> dict[str, object]:
    fields = msgspec.structs.asdict(probe)
    fields["reservations"] = encode_reservations(probe.reservations)
    return {
        "kind": "url",
        **fields,
        "key": key,
        "probed": probed,
        "opted": encode_reservations(opted) if opted else None,
        "target": distinct_url(probe.final_url) if probe.final_url else None,
        # the counts' domain key: a stand-in found later turns "ok" into "placeholder", both
        # probed, so this key holds for the URL's final status too
        "domain": tally_key(probe.url, probe.status, False)[1],
        "origin": origin_of(probe.url) or "",
    }


def record_rows(
    dataset: str, file: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Each record joined to its URL's probe and opt-outs -> the local engine's findings."""
    for batch in batches:
        out = []
        for row in batch.to_pylist():
            ref = UrlRef(row["index"], row["record_id"], row["url"], file=row["file"])
            probe = probe_of({k: row[k] for k in PROBE_NAMES})
            text = row["opted"]
            reserved = {ref.url: decode_reservations(text)} if text else {}
            out += record_findings(ref, probe, reserved, dataset, file)
        yield to_batch(out)
