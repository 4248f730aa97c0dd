"""Executor side of the URL stage on Spark: top-level functions over Arrow batches (pickled by
reference), each a thin wrapper of the local engine's own function for the same step."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pyarrow as pa

from audit.config import UrlConfig
from audit.engines.spark.caches import arrow_schema
from audit.engines.spark.findingtable import to_batch
from audit.models import UrlRef
from audit.probes.hostfiles import FileJob, judge, origin_of
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
#: What a probing task yields: a URL's probe (kind "url") or a host file (kind "file").
PROBED = (
    f"kind string, {PROBE_COLUMNS}, origin string, name string, fetched_at double, "
    "found boolean, body string"
)
_PROBED = arrow_schema(PROBED)
_STRINGS = pa.string()
#: The probe row's columns, and the same without the URL (what a join on it adds).
PROBE_NAMES = [f.split()[0] for f in PROBE_COLUMNS.split(", ")]
PROBE_REST = PROBE_NAMES[1:]
_ROWS = 512  # rows per Arrow batch a task yields
_RESOLVERS = 64  # threads resolving one batch of hosts

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


def origins(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """url -> url, origin (robots.txt and tdmrep.json are per origin; "" for none)."""
    for batch in batches:
        urls = batch.column("url").to_pylist()
        found = [origin_of(u) or "" for u in urls]
        yield pa.RecordBatch.from_arrays(
            [batch.column("url"), pa.array(found, _STRINGS)], names=["url", "origin"]
        )


def hosts(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A job (url, origin, path) with its host: the name its server address is resolved for."""
    for batch in batches:
        urls = batch.column("url").to_pylist()
        named = pa.array([host_of(u) for u in urls], pa.string())
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, named], names=[*batch.schema.names, "host"]
        )


def resolve(settings: UrlConfig, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """host, url -> host, server: the address the probe will connect to, by the local engine's
    own keying (:func:`audit.probes.hostsched.servers`: the SSRF guard's resolution, or the
    host itself when it does not resolve)."""
    policy = AddressPolicy(settings.allow_private, settings.allow_networks)
    for batch in batches:
        urls = batch.column("url").to_pylist()
        key = servers(urls, policy, min(settings.workers, _RESOLVERS))
        yield pa.RecordBatch.from_arrays(
            [batch.column("host"), pa.array([key(u) for u in urls], _STRINGS)],
            names=["host", "server"],
        )


def probe_partition(
    settings: UrlConfig, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """One task's servers (every URL of an address is in this task): the local engine's batch
    probe (one process), so its per-server slots and back-offs are the whole cluster's."""
    urls: list[str] = []
    files: list[FileJob] = []
    for batch in batches:
        for url, origin, path in zip(
            batch.column("url").to_pylist(),
            batch.column("origin").to_pylist(),
            batch.column("path").to_pylist(),
            strict=True,
        ):
            if path is None:
                urls.append(url)
            else:
                files.append(FileJob(origin, path))
    one = msgspec.structs.replace(settings, processes=1)  # the executor is the process
    rows: list[dict[str, object]] = []
    for item in probe_batch(urls, one, files):
        rows.append(_probed_row(item))
        if len(rows) >= _ROWS:
            yield _probed_batch(rows)
            rows = []
    if rows:
        yield _probed_batch(rows)


def _probed_row(item: UrlProbe | HostFile) -> dict[str, object]:
    if isinstance(item, HostFile):
        return {"kind": "file", **msgspec.structs.asdict(item)}
    fields = msgspec.structs.asdict(item)
    fields["reservations"] = encode_reservations(item.reservations)
    return {"kind": "url", **fields}


def _probed_batch(rows: list[dict[str, object]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [{name: row.get(name) for name in _PROBED.names} for row in rows], schema=_PROBED
    )


def judge_origin(settings: UrlConfig, probes: pa.Table, files: pa.Table) -> pa.Table:
    """One origin's URLs and its host files -> url, reservations for the URLs opted out: the
    local engine's :func:`audit.probes.hostfiles.judge` over that origin."""
    results = {row["url"]: probe_of({k: row[k] for k in PROBE_NAMES}) for row in probes.to_pylist()}
    held = {
        (f["origin"], f["name"]): HostFile(
            f["origin"], f["name"], f["fetched_at"], f["found"], f["body"]
        )
        for f in files.to_pylist()
    }
    found = judge(results, held, settings)
    return pa.table(
        {
            "url": list(found),
            "reservations": [encode_reservations(r) for r in found.values()],
        },
        schema=pa.schema([("url", pa.string()), ("reservations", pa.string())]),
    )


def targets(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """url, final_url -> url, target: what makes redirect targets the same for the placeholder
    rule (:func:`audit.probes.placeholders.detect`'s own grouping)."""
    for batch in batches:
        finals = batch.column("final_url").to_pylist()
        found = [distinct_url(u) if u else None for u in finals]
        yield pa.RecordBatch.from_arrays(
            [batch.column("url"), pa.array(found, _STRINGS)], names=["url", "target"]
        )


def record_rows(
    dataset: str, file: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Each record joined to its URL's probe and opt-outs -> the local engine's findings."""
    for batch in batches:
        out = []
        for row in batch.to_pylist():
            ref = UrlRef(row["index"], row["record_id"], row["url"])
            probe = probe_of({k: row[k] for k in PROBE_NAMES})
            text = row["opted"]
            reserved = {ref.url: decode_reservations(text)} if text else {}
            out += record_findings(ref, probe, reserved, dataset, file)
        yield to_batch(out)


def tallies(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each record -> its (status, domain, opted out) key of the local engine's counts."""
    for batch in batches:
        keys = [
            tally_key(url, status, bool(opted))
            for url, status, opted in zip(
                batch.column("url").to_pylist(),
                batch.column("status").to_pylist(),
                batch.column("opted").to_pylist(),
                strict=True,
            )
        ]
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([k[0] for k in keys], _STRINGS),
                pa.array([k[1] for k in keys], _STRINGS),
                pa.array([k[2] for k in keys], pa.bool_()),
            ],
            names=["status", "domain", "opted"],
        )
