"""The takedown ledger: requests and what was done about them, append-only.

A takedown must be provable months later (spec/licensing.md §4.6 step 7, §8.6), so nothing here is
ever updated or deleted: a request is written once, each step (located, removed, re-audited,
blocklisted, requester notified) appends an event, and the current state is derived from the
events. SQLite triggers refuse UPDATE and DELETE. Each step is one transaction written after its
work is done, so a crash between steps loses nothing and the step is simply run again.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Iterable
from typing import Any, Literal

import msgspec

from audit.checks.takedown import BlockKey
from audit.errors import TakedownError
from audit.store import Store, register_schema

Ground = Literal["copyright", "gdpr", "illegal_content", "tdm_opt_out", "dataset_owner_request"]
GROUNDS: tuple[str, ...] = Ground.__args__  # type: ignore[attr-defined]
Step = Literal["located", "removed", "reaudited", "blocklisted", "notified", "rejected"]
STEPS: tuple[str, ...] = Step.__args__  # type: ignore[attr-defined]

_TABLES = ("takedown_request", "takedown_key", "takedown_event", "takedown_blocklist")
_APPEND_ONLY = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op} BEFORE {op.upper()} ON {t} "
    f"BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END;\n"
    for t in _TABLES
    for op in ("update", "delete")
)

register_schema(
    "ledger",
    """
CREATE TABLE IF NOT EXISTS takedown_request (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    received TEXT NOT NULL,
    deadline TEXT,
    ground TEXT NOT NULL,
    requester_contact TEXT NOT NULL,
    datasets TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS takedown_key (
    request_id TEXT NOT NULL REFERENCES takedown_request(request_id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (request_id, kind, value)
);
CREATE TABLE IF NOT EXISTS takedown_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL REFERENCES takedown_request(request_id),
    step TEXT NOT NULL,
    happened_at TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    summary TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS takedown_event_request ON takedown_event(request_id, seq);
CREATE TABLE IF NOT EXISTS takedown_blocklist (
    request_id TEXT NOT NULL REFERENCES takedown_request(request_id),
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (request_id, kind, value)
);
"""
    + _APPEND_ONLY,
)


register_schema(
    "takedown_hashes",
    """
CREATE TABLE IF NOT EXISTS takedown_image_hash (
    root TEXT NOT NULL,
    name TEXT NOT NULL,
    signature TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    md5 TEXT NOT NULL,
    PRIMARY KEY (root, name)
) WITHOUT ROWID;
""",
)


class ImageHashes(msgspec.Struct, frozen=True):
    sha256: str
    md5: str


def cached_hashes(store: Store, root: str) -> dict[str, tuple[str, ImageHashes]]:
    """Content hashes of a root's images seen before: name -> (signature, hashes), one query."""
    rows = store.conn.execute(
        "SELECT name, signature, sha256, md5 FROM takedown_image_hash WHERE root = ?", (root,)
    )
    return {name: (sig, ImageHashes(sha, md5)) for name, sig, sha, md5 in rows}


def cache_hashes(store: Store, rows: Iterable[tuple[str, str, str, ImageHashes]]) -> None:
    """Remember hashes so nightly audits re-read only images that changed (a cache, not ledger)."""
    with store.transaction() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO takedown_image_hash VALUES (?, ?, ?, ?, ?)",
            [(root, name, sig, h.sha256, h.md5) for root, name, sig, h in rows],
        )


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """A takedown request as received (§8.6 intake fields)."""

    request_id: str
    created_at: str
    received: dt.date
    deadline: dt.date | None
    ground: str
    requester_contact: str
    datasets: list[str]  # empty: every configured dataset
    notes: str
    keys: list[BlockKey]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One step taken on a request; ``detail`` holds the step's evidence (matches, files, keys)."""

    seq: int
    request_id: str
    step: str
    happened_at: str
    recorded_at: str
    ok: bool
    summary: str
    detail: dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months, clamped to the month's end: 31 January + 1 month is 28/29 February."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return day.replace(
        year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1])
    )


def default_deadline(ground: str, received: dt.date) -> dt.date | None:
    """GDPR Art. 12(3): answer within one month of receipt; other grounds have no fixed clock."""
    return add_months(received, 1) if ground == "gdpr" else None


class Ledger:
    """Reads and appends takedown records in the state store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add_request(
        self,
        *,
        ground: str,
        requester_contact: str,
        keys: Iterable[BlockKey],
        received: dt.date,
        deadline: dt.date | None = None,
        datasets: Iterable[str] = (),
        notes: str = "",
    ) -> Request:
        """Record a new request; the id is assigned here, inside the same transaction."""
        if ground not in GROUNDS:
            raise TakedownError(f"unknown ground {ground!r} (one of {', '.join(GROUNDS)})")
        if not requester_contact.strip():
            raise TakedownError("a takedown request needs the requester's contact")
        unique_keys = sorted(set(keys))
        if not unique_keys:
            raise TakedownError("a takedown request needs at least one identifier")
        deadline = deadline or default_deadline(ground, received)
        if deadline is not None and deadline < received:
            raise TakedownError(f"deadline {deadline} is before the received date {received}")
        with self.store.transaction() as conn:
            (last,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM takedown_request").fetchone()
            request_id = f"TD-{last + 1:04d}"
            conn.execute(
                "INSERT INTO takedown_request (request_id, created_at, received, deadline, ground,"
                " requester_contact, datasets, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    now(),
                    received.isoformat(),
                    deadline.isoformat() if deadline else None,
                    ground,
                    requester_contact.strip(),
                    json.dumps(sorted(set(datasets))),
                    notes,
                ),
            )
            conn.executemany(
                "INSERT INTO takedown_key (request_id, kind, value) VALUES (?, ?, ?)",
                [(request_id, k.kind, k.value) for k in unique_keys],
            )
        return self.get(request_id)

    def get(self, request_id: str) -> Request:
        row = self.store.conn.execute(
            "SELECT request_id, created_at, received, deadline, ground, requester_contact,"
            " datasets, notes FROM takedown_request WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            known = [r.request_id for r in self.requests()]
            hint = f"known: {', '.join(known[-5:])}" if known else "no requests recorded yet"
            raise TakedownError(f"unknown takedown request {request_id!r} ({hint})")
        return self._request(row)

    def requests(self) -> list[Request]:
        rows = self.store.conn.execute(
            "SELECT request_id, created_at, received, deadline, ground, requester_contact,"
            " datasets, notes FROM takedown_request ORDER BY seq"
        ).fetchall()
        return [self._request(r) for r in rows]

    def _request(self, row: tuple[Any, ...]) -> Request:
        rid, created, received, deadline, ground, contact, datasets, notes = row
        keys = self.store.conn.execute(
            "SELECT kind, value FROM takedown_key WHERE request_id = ? ORDER BY kind, value", (rid,)
        ).fetchall()
        return Request(
            request_id=rid,
            created_at=created,
            received=dt.date.fromisoformat(received),
            deadline=dt.date.fromisoformat(deadline) if deadline else None,
            ground=ground,
            requester_contact=contact,
            datasets=json.loads(datasets),
            notes=notes,
            keys=[BlockKey(k, v) for k, v in keys],
        )

    def record(
        self,
        request_id: str,
        step: str,
        *,
        summary: str,
        ok: bool = True,
        detail: dict[str, Any] | None = None,
        happened_at: str | None = None,
        blocklist: Iterable[BlockKey] = (),
    ) -> Event:
        """Append one step's event (and, for `blocklisted`, its keys) in one transaction."""
        if step not in STEPS:
            raise TakedownError(f"unknown takedown step {step!r} (one of {', '.join(STEPS)})")
        self.get(request_id)
        stamp = now()
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO takedown_event (request_id, step, happened_at, recorded_at, ok,"
                " summary, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    step,
                    happened_at or stamp,
                    stamp,
                    int(ok),
                    summary,
                    msgspec.json.encode(detail or {}).decode(),
                ),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO takedown_blocklist (request_id, kind, value, added_at)"
                " VALUES (?, ?, ?, ?)",
                [(request_id, k.kind, k.value, stamp) for k in blocklist],
            )
            seq = cur.lastrowid
        return next(e for e in self.events(request_id) if e.seq == seq)

    def events(self, request_id: str) -> list[Event]:
        rows = self.store.conn.execute(
            "SELECT seq, request_id, step, happened_at, recorded_at, ok, summary, detail"
            " FROM takedown_event WHERE request_id = ? ORDER BY seq",
            (request_id,),
        ).fetchall()
        return [
            Event(
                seq=seq,
                request_id=rid,
                step=step,
                happened_at=happened,
                recorded_at=recorded,
                ok=bool(ok),
                summary=summary,
                detail=json.loads(detail),
            )
            for seq, rid, step, happened, recorded, ok, summary, detail in rows
        ]

    def state(self, request_id: str) -> dict[str, Event | None]:
        """The latest event of each step: the request's current state, derived, never stored."""
        latest: dict[str, Event | None] = dict.fromkeys(STEPS)
        for event in self.events(request_id):
            latest[event.step] = event
        return latest

    def blocklist(self) -> list[tuple[BlockKey, str]]:
        """Every blocklisted key with the request that put it there."""
        rows = self.store.conn.execute(
            "SELECT kind, value, request_id FROM takedown_blocklist ORDER BY kind, value, request_id"
        ).fetchall()
        return [(BlockKey(k, v), rid) for k, v, rid in rows]
