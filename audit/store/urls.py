"""Cache of remote URL probes, with the probe time, so a nightly run re-probes only what is stale.

One row per URL holds the latest result. A probe run appends its results to a log in batches (a
run killed part-way keeps everything up to its last batch) and :func:`merge` moves the log into the
table sorted by URL at the start and end of each run: appending costs a few pages per batch where
inserting 600K random URL keys straight into the table rewrote ~500 pages per batch (30 s against
1.7 s for 300K results). Reads see both. Other stages read results through :func:`latest_status`
(the licence stage reads each URL's opt-out kinds through :func:`opt_out_kinds`).

Opt-outs: a probe keeps the reservations its response's headers made (X-Robots-Tag,
``tdm-reservation``) with the probe; ``host_file`` caches each origin's ``robots.txt`` and
``/.well-known/tdmrep.json`` (body and fetch time, re-fetched after ``robots_ttl_days``); and
``url_opt_out`` holds each URL's opt-outs as its latest run judged them (headers and host files
together, with their evidence), which is what other stages read.

Each row carries the fingerprint of the settings that decided it (byte cap, timeouts, redirect cap,
allowed networks, placeholder and opt-out lists): a cached result is a fact about the URL only
under those settings, so :func:`lookup` for other settings does not see it and the URL is
re-probed. (Tables renamed from ``url_probe*`` when the fingerprint came: old rows had none.)

An image's row also keeps the image's own fingerprint (``sha256`` of the bytes read, total
``size``) and, as every row, its final redirect target: the cross-URL placeholder pass
(:mod:`audit.probes.placeholders`) groups cached and fresh results alike by them, and the rows stay
as probed (``ok``), since whether bytes are a stand-in depends on how many URLs share them.

Status classes: ok, opt_out, gone, forbidden, http_error, server_error, timeout, dns, tls,
connection, not_image, truncated, placeholder, redirects, invalid, refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from audit.store import Store, register_migration, register_schema

register_schema(
    "urls",
    """
    CREATE TABLE IF NOT EXISTS url_result (
        url TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        http_status INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        final_url TEXT,
        probed_at REAL NOT NULL,
        settings TEXT NOT NULL DEFAULT '',
        reservations TEXT NOT NULL DEFAULT '',
        sha256 TEXT,
        size INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS url_result_log (
        url TEXT NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        final_url TEXT,
        probed_at REAL NOT NULL,
        settings TEXT NOT NULL DEFAULT '',
        reservations TEXT NOT NULL DEFAULT '',
        sha256 TEXT,
        size INTEGER
    );
    CREATE TABLE IF NOT EXISTS url_opt_out (
        url TEXT PRIMARY KEY,
        opt_outs TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS host_file (
        origin TEXT NOT NULL,
        name TEXT NOT NULL,
        fetched_at REAL NOT NULL,
        found INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (origin, name)
    ) WITHOUT ROWID;
    """,
)


def _drop_unfingerprinted(conn: sqlite3.Connection) -> None:
    """Schema 1: results cached without the settings that decided them are not reused."""
    conn.execute("DROP TABLE IF EXISTS url_probe")
    conn.execute("DROP TABLE IF EXISTS url_probe_log")


register_migration(1, _drop_unfingerprinted)


def _add_reservations(conn: sqlite3.Connection) -> None:
    """Schema 3: a probe keeps the opt-outs its response headers made (older rows: none)."""
    for table in ("url_result", "url_result_log"):
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if "reservations" not in columns:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN reservations TEXT NOT NULL DEFAULT ''")


register_migration(3, _add_reservations)


def _add_fingerprints(conn: sqlite3.Connection) -> None:
    """Schema 4: an image's fingerprint (sha256 of the bytes read, total size) is kept, so the
    cross-URL placeholder pass works on cached results too (older rows: none)."""
    for table in ("url_result", "url_result_log"):
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column, kind in (("sha256", "TEXT"), ("size", "INTEGER")):
            if column not in columns:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


register_migration(4, _add_fingerprints)

_COLUMNS = "url, status, http_status, detail, final_url, probed_at, reservations, sha256, size"
_ALL = f"{_COLUMNS}, settings"

_LOOKUP_CHUNK = 500  # URLs per IN (...) query: well under SQLite's variable limit


class Reservation(msgspec.Struct, frozen=True, array_like=True, order=True):
    """One machine-readable opt-out of a URL, with its evidence.

    ``kind`` is the mechanism (x-robots-tag, tdm-reservation, tdmrep-json, robots-txt), ``rule``
    the header or rule text, ``source`` the URL it was read from, ``seen_at`` when (epoch
    seconds), ``policy`` a TDMRep ``tdm-policy`` URL. ``reserved`` is False only for a
    ``tdm-reservation: 0`` header, kept because it overrides the origin's tdmrep.json.
    """

    kind: str
    rule: str
    source: str
    seen_at: float
    policy: str | None = None
    reserved: bool = True


class UrlProbe(msgspec.Struct, frozen=True, array_like=True):
    """One probe of one URL: the status class, what the server said, and when (epoch seconds);
    ``reservations``: the opt-outs its response headers made. For an image (``ok``), its
    fingerprint: ``sha256`` of the bytes read (the whole image when it fits ``max_bytes``, else
    its first ``max_bytes``) and ``size``, the image's total size when the server said it."""

    url: str
    status: str
    http_status: int | None
    detail: str
    final_url: str | None
    probed_at: float
    reservations: tuple[Reservation, ...] = ()
    sha256: str | None = None
    size: int | None = None


_encode = msgspec.json.Encoder().encode
_decode_reservations = msgspec.json.Decoder(tuple[Reservation, ...]).decode


def _probe(row: Sequence[object]) -> UrlProbe:
    """A row of ``_ALL`` (settings last) as a probe."""
    reservations = row[6]
    kept = (
        _decode_reservations(reservations) if isinstance(reservations, str) and reservations else ()
    )
    url, status, http_status, detail, final_url, probed_at = row[:6]
    sha256, size = row[7:9]
    return UrlProbe(url, status, http_status, detail, final_url, probed_at, kept, sha256, size)  # type: ignore[arg-type]


def lookup(store: Store, urls: Sequence[str], settings: str | None = None) -> dict[str, UrlProbe]:
    """The latest probe of each of ``urls`` that has one (fresh or not: callers apply the TTL);
    given ``settings`` (a fingerprint), only probes made under those settings count."""
    found: dict[str, UrlProbe] = {}
    for start in range(0, len(urls), _LOOKUP_CHUNK):
        chunk = urls[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = store.conn.execute(f"SELECT {_ALL} FROM url_result WHERE url IN ({marks})", chunk)
        for row in rows:
            found[row[0]] = _probe(row)
            if settings is not None and row[-1] != settings:
                del found[row[0]]
    if store.conn.execute("SELECT 1 FROM url_result_log LIMIT 1").fetchone():
        wanted = set(urls)
        for row in store.conn.execute(f"SELECT {_ALL} FROM url_result_log ORDER BY rowid"):
            if row[0] in wanted:  # later log rows are later probes
                found[row[0]] = _probe(row)
                if settings is not None and row[-1] != settings:
                    del found[row[0]]
    return found


def record(store: Store, probes: Iterable[UrlProbe], settings: str = "") -> int:
    """Append one batch of probes made under ``settings`` (a fingerprint) atomically (the resume
    point after a kill); returns the count."""
    rows = [
        (
            p.url,
            p.status,
            p.http_status,
            p.detail,
            p.final_url,
            p.probed_at,
            _encode(p.reservations).decode() if p.reservations else "",
            p.sha256,
            p.size,
            settings,
        )
        for p in probes
    ]
    if rows:
        with store.transaction() as conn:
            conn.executemany(
                f"INSERT INTO url_result_log ({_ALL}) VALUES ({', '.join('?' * 10)})", rows
            )
    return len(rows)


def merge(store: Store) -> None:
    """Move the log into the table in URL order (the latest probe of a URL wins), atomically."""
    if not store.conn.execute("SELECT 1 FROM url_result_log LIMIT 1").fetchone():
        return
    with store.transaction() as conn:
        conn.execute(
            f"INSERT OR REPLACE INTO url_result ({_ALL}) "
            f"SELECT {_ALL} FROM url_result_log ORDER BY url, rowid"
        )
        conn.execute("DELETE FROM url_result_log")


def latest_status(store: Store, urls: Iterable[str]) -> dict[str, str]:
    """Status class of the latest probe of each URL that was ever probed, under any settings
    (others are absent)."""
    return {url: probe.status for url, probe in lookup(store, list(dict.fromkeys(urls))).items()}


def save_opt_outs(
    store: Store, urls: Iterable[str], found: Mapping[str, tuple[Reservation, ...]]
) -> None:
    """Replace the judged opt-outs of ``urls`` (this run's) by ``found``: a URL absent from it
    has none now. Other URLs' rows stay (another file's run judged them)."""
    judged = set(urls)
    held = {row[0] for row in store.conn.execute("SELECT url FROM url_opt_out")}
    stale = [(url,) for url in held & judged if not found.get(url)]
    rows = [(url, _encode(r).decode()) for url, r in found.items() if r and url in judged]
    with store.transaction() as conn:
        conn.executemany("DELETE FROM url_opt_out WHERE url = ?", stale)
        conn.executemany("INSERT OR REPLACE INTO url_opt_out (url, opt_outs) VALUES (?, ?)", rows)


def opted_out_urls(store: Store) -> list[str]:
    """Every URL that may have an opt-out (:func:`opt_outs` decides): for an engine that cannot
    look its records' URLs up file by file (the Spark engine's executors have no store)."""
    query = (
        "SELECT url FROM url_opt_out UNION SELECT url FROM url_result WHERE status = 'opt_out' "
        "UNION SELECT url FROM url_result_log WHERE status = 'opt_out'"
    )
    return [row[0] for row in store.conn.execute(query)]


def opt_outs(store: Store, urls: Iterable[str]) -> dict[str, tuple[Reservation, ...]]:
    """URL -> its opt-outs with evidence, as the latest URL run judged them (URLs with none are
    absent). A probe cached before opt-outs were judged separately counts as X-Robots-Tag."""
    wanted = list(dict.fromkeys(urls))
    found: dict[str, tuple[Reservation, ...]] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        query = f"SELECT url, opt_outs FROM url_opt_out WHERE url IN ({marks})"
        for url, text in store.conn.execute(query, chunk):
            found[url] = _decode_reservations(text)
    for url, probe in lookup(store, [u for u in wanted if u not in found]).items():
        if probe.status == "opt_out":
            legacy = Reservation("x-robots-tag", probe.detail, url, probe.probed_at)
            found[url] = probe.reservations or (legacy,)
    return found


def opt_out_kinds(store: Store, urls: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """URL -> the kinds of its opt-outs (x-robots-tag, tdm-reservation, tdmrep-json, robots-txt)."""
    return {
        url: tuple(dict.fromkeys(r.kind for r in found if r.reserved))
        for url, found in opt_outs(store, urls).items()
    }


class HostFile(msgspec.Struct, frozen=True):
    """An origin's robots.txt or tdmrep.json as last fetched: ``found`` False is a definite
    "there is none" (HTTP 4xx); ``body`` is the (capped) text."""

    origin: str
    name: str
    fetched_at: float
    found: bool
    body: str


def host_files(store: Store, name: str, origins: Iterable[str]) -> dict[str, HostFile]:
    """The cached ``name`` file of each origin that has one (fresh or not: callers apply the TTL)."""
    wanted = list(dict.fromkeys(origins))
    found: dict[str, HostFile] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        query = (
            "SELECT origin, name, fetched_at, found, body FROM host_file "
            f"WHERE name = ? AND origin IN ({marks})"
        )
        for row in store.conn.execute(query, [name, *chunk]):
            found[row[0]] = HostFile(row[0], row[1], row[2], bool(row[3]), row[4])
    return found


def save_host_files(store: Store, files: Iterable[HostFile]) -> None:
    rows = [(f.origin, f.name, f.fetched_at, int(f.found), f.body) for f in files]
    if rows:
        with store.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO host_file (origin, name, fetched_at, found, body) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
