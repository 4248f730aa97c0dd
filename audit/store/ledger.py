"""The takedown ledger: one hash-chained, append-only list of events in a file of its own.

A takedown must be provable months later (spec/licensing.md §4.6 step 7, §8.6), so nothing here is
ever updated or deleted: a request is its ``received`` event, each later step appends an event, and
everything else (state, deadline, blocklist) is derived from the events. Every event carries
``hash = sha256(prev_hash + canonical row)`` (:mod:`audit.store.ledgerchain`), so an edited,
deleted or re-ordered row breaks the chain. SQLite triggers refuse UPDATE and DELETE.

The requester's contact and notes are personal data: they sit beside the chain
(``ledger_personal``), hashed into the ``received`` event, so they can be redacted after the
retention period (a ``redacted`` event, then the row goes) while the chain stays whole.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import msgspec

from audit.checks.takedown import BlockKey
from audit.errors import TakedownError
from audit.store.ledgerchain import COLUMNS, GENESIS, canonical_detail, row_hash, text_hash

Ground = Literal["copyright", "gdpr", "illegal_content", "tdm_opt_out", "dataset_owner_request"]
GROUNDS: tuple[str, ...] = Ground.__args__  # type: ignore[attr-defined]
#: Every step an event can record after ``received`` (the intake, written by add_request).
STEPS: tuple[str, ...] = (
    "identity_checked",  # GDPR: the requester is the data subject (Art. 12(6))
    "notice_checked",  # DMCA: the §512(c)(3)(A) elements are present
    "extended",  # GDPR Art. 12(3): +2 months, with the reason
    "located",
    "removed",
    "blocklisted",
    "images_removed",  # image bytes out of zips (old zip kept) and folders (into quarantine)
    "reaudited",
    "purged",  # after a clean re-audit: the quarantine and the kept zips deleted
    "evidence_preserved",  # illegal content
    "reported",  # illegal content: to the authority or hotline
    "exempted",  # GDPR Art. 17(3): not erased, and on which ground
    "rejected",
    "refusal_notified",  # GDPR Art. 12(4): reasons, complaint and judicial remedy
    "recipient",  # GDPR Art. 17(2)/19: one recipient and when it was told
    "counter_notice",  # DMCA §512(g)
    "restored",  # DMCA §512(g)(2)(C): keys lifted by this event, never deleted
    "released",  # §8.6: versions affected, new version, published diff
    "derived",  # a [[derived]] artefact rebuilt, deleted or kept
    "notified",  # the requester was told what was done
    "redacted",  # the requester's personal data after the retention period
)
RECEIVED = "received"
REDACTED = "[redacted]"


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """A takedown request as received (§8.6 intake fields), with its current deadline."""

    request_id: str
    created_at: str
    received: dt.date
    deadline: dt.date | None  # after an Art. 12(3) extension, the extended one
    original_deadline: dt.date | None
    ground: str
    requester_contact: str  # "[redacted]" once the retention period is over
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


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


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


def check_date(day: dt.date, what: str, *, not_before: dt.date | None = None) -> None:
    """A date a maintainer gives: never in the future, never before the request arrived."""
    if day > today():
        raise TakedownError(f"{what} {day} is in the future (today is {today()}, UTC)")
    if not_before is not None and day < not_before:
        raise TakedownError(f"{what} {day} is before the request was received ({not_before})")


class Ledger:
    """Reads and appends events of one open ledger file (see :mod:`audit.store.ledgerfile`)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        on_append: Callable[[int, str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.path = path
        self._on_append = on_append  # (events, head hash): the state store's anchor

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def rows(self) -> list[tuple[Any, ...]]:
        """Every event row with its hashes, in chain order (for checks and the export)."""
        return self.conn.execute(
            f"SELECT {', '.join(COLUMNS)}, prev_hash, hash FROM ledger_event ORDER BY seq"
        ).fetchall()

    def head(self) -> tuple[int, str]:
        """(number of events, hash of the last): where the chain stands."""
        row = self.conn.execute("SELECT seq, hash FROM ledger_event ORDER BY seq DESC LIMIT 1")
        last = row.fetchone()
        return (0, GENESIS) if last is None else (int(last[0]), str(last[1]))

    def _append(
        self,
        conn: sqlite3.Connection,
        request_id: str,
        step: str,
        *,
        summary: str,
        ok: bool,
        detail: dict[str, Any],
        happened_at: str,
        stamp: str,
    ) -> int:
        return self._insert(
            conn, (request_id, step, happened_at, stamp, int(ok), summary, canonical_detail(detail))
        )

    def _insert(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> int:
        """Chain one row (every column but seq, detail as text) onto the last; its seq."""
        seq, prev = self.head()
        full = (seq + 1, *row)
        conn.execute(
            f"INSERT INTO ledger_event ({', '.join(COLUMNS)}, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*full, prev, row_hash(prev, full)),
        )
        return seq + 1

    def append_rows(
        self, rows: Sequence[tuple[Any, ...]], personal: Sequence[tuple[str, str, str]]
    ) -> None:
        """Append ready rows ``(request_id, step, happened_at, recorded_at, ok, summary,
        detail text)`` and personal data in one transaction (the migration of an old ledger)."""
        with self._transaction() as conn:
            for row in rows:
                self._insert(conn, row)
            conn.executemany("INSERT INTO ledger_personal VALUES (?, ?, ?)", personal)

    def _anchor(self) -> None:
        if self._on_append is not None:
            self._on_append(*self.head())

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
        contact = requester_contact.strip()
        if not contact:
            raise TakedownError("a takedown request needs the requester's contact")
        unique_keys = sorted(set(keys))
        if not unique_keys:
            raise TakedownError("a takedown request needs at least one identifier")
        check_date(received, "received date")
        deadline = deadline or default_deadline(ground, received)
        if deadline is not None and deadline < received:
            raise TakedownError(f"deadline {deadline} is before the received date {received}")
        detail = {
            "received": received.isoformat(),
            "deadline": deadline.isoformat() if deadline else None,
            "ground": ground,
            "datasets": sorted(set(datasets)),
            "keys": [[k.kind, k.value] for k in unique_keys],
            "contact_sha256": text_hash(contact),
            "notes_sha256": text_hash(notes),
        }
        stamp = now()
        with self._transaction() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM ledger_event WHERE step = ?", (RECEIVED,)
            ).fetchone()
            request_id = f"TD-{count + 1:04d}"
            self._append(
                conn,
                request_id,
                RECEIVED,
                summary=f"{ground} request, {len(unique_keys)} identifier(s)",
                ok=True,
                detail=detail,
                happened_at=received.isoformat(),
                stamp=stamp,
            )
            conn.execute(
                "INSERT INTO ledger_personal VALUES (?, ?, ?)", (request_id, contact, notes)
            )
        self._anchor()
        return self.get(request_id)

    def get(self, request_id: str) -> Request:
        requests = {r.request_id: r for r in self.requests()}
        if request_id not in requests:
            known = list(requests)
            hint = f"known: {', '.join(known[-5:])}" if known else "no requests recorded yet"
            raise TakedownError(f"unknown takedown request {request_id!r} ({hint})")
        return requests[request_id]

    def requests(self) -> list[Request]:
        personal = {
            rid: (contact, notes)
            for rid, contact, notes in self.conn.execute("SELECT * FROM ledger_personal")
        }
        extended = {
            e.request_id: e.detail.get("deadline") for e in self._events("step = 'extended'", ())
        }
        out = []
        for e in self._events("step = ?", (RECEIVED,)):
            d = e.detail
            contact, notes = personal.get(e.request_id, (REDACTED, REDACTED))
            original = dt.date.fromisoformat(d["deadline"]) if d.get("deadline") else None
            later = extended.get(e.request_id)
            out.append(
                Request(
                    request_id=e.request_id,
                    created_at=e.recorded_at,
                    received=dt.date.fromisoformat(d["received"]),
                    deadline=dt.date.fromisoformat(later) if later else original,
                    original_deadline=original,
                    ground=d["ground"],
                    requester_contact=contact,
                    datasets=list(d.get("datasets", [])),
                    notes=notes,
                    keys=[BlockKey(k, v) for k, v in d["keys"]],
                )
            )
        return out

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
        lift: Iterable[BlockKey] = (),
        redact: bool = False,
    ) -> Event:
        """Append one step's event in one transaction; ``blocklist`` and ``lift`` keys travel in
        its detail, so the blocklist is derived from the chain like everything else."""
        if step not in STEPS:
            raise TakedownError(f"unknown takedown step {step!r} (one of {', '.join(STEPS)})")
        self.get(request_id)
        stamp = now()
        body = dict(detail or {})
        added = sorted(set(blocklist))  # may be a generator that fails: before the transaction
        if added:
            body["blocklist"] = [[k.kind, k.value] for k in added]
        lifted = sorted(set(lift))
        if lifted:
            body["lifted"] = [[k.kind, k.value] for k in lifted]
        with self._transaction() as conn:
            seq = self._append(
                conn,
                request_id,
                step,
                summary=summary,
                ok=ok,
                detail=msgspec.to_builtins(body),
                happened_at=happened_at or stamp,
                stamp=stamp,
            )
            if redact:
                conn.execute("DELETE FROM ledger_personal WHERE request_id = ?", (request_id,))
        self._anchor()
        return next(e for e in self.events(request_id) if e.seq == seq)

    def _events(self, where: str, params: tuple[Any, ...]) -> list[Event]:
        rows = self.conn.execute(
            f"SELECT {', '.join(COLUMNS)} FROM ledger_event WHERE {where} ORDER BY seq", params
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

    def events(self, request_id: str) -> list[Event]:
        """The request's steps after intake, in order."""
        return self._events("request_id = ? AND step != ?", (request_id, RECEIVED))

    def state(self, request_id: str) -> dict[str, Event | None]:
        """The latest event of each step: the request's current state, derived, never stored."""
        latest: dict[str, Event | None] = dict.fromkeys(STEPS)
        for event in self.events(request_id):
            latest[event.step] = event
        return latest

    def closed(self, request_id: str) -> bool:
        """Rejected or exempted (Art. 17(3)): nothing is to be removed for it."""
        state = self.state(request_id)
        return state["rejected"] is not None or state["exempted"] is not None

    def blocklist(self) -> list[tuple[BlockKey, str]]:
        """Every blocklisted key with the request that put it there, less the keys a later
        ``restored`` event lifted (DMCA counter-notice)."""
        live: set[tuple[BlockKey, str]] = set()
        for e in self._events("step IN ('blocklisted', 'restored')", ()):
            for kind, value in e.detail.get("blocklist", []):
                live.add((BlockKey(kind, value), e.request_id))
            for kind, value in e.detail.get("lifted", []):
                live.discard((BlockKey(kind, value), e.request_id))
        return sorted(live)
