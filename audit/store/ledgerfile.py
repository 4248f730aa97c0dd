"""Opening the takedown ledger's own file, and proving it was not tampered with.

The ledger used to live in the state store, in the cache folder people delete; now it has its own
file (``[takedown] ledger``, default ``takedown.sqlite`` beside audit.toml), opened through
:mod:`audit.store.sqlitefile` with its own :class:`FileFormat`. Every open checks it whole
(:func:`integrity_problem`: the triggers, the hash chain, the row count SQLite remembers, the
personal data against its hashes) and against the anchor the state store keeps (how many events the
ledger had and the hash of the last): a deleted ledger, or one cut back to an earlier copy, is an
error while the state store remembers it, never a silently empty blocklist. Any problem is one line
``ledger integrity: <file>: ...`` and exit 3.

A state store from before (its ``takedown_*`` tables) is migrated once, into a new ledger file; the
old tables stay in the state store as they were (they are append-only) and are no longer read.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.config import Config
from audit.errors import StoreError
from audit.store import Store, register_schema
from audit.store.ledger import RECEIVED, Ledger, now
from audit.store.ledgerchain import COLUMNS, DDL, canonical_detail, chain_problem, text_hash
from audit.store.sqlitefile import FileFormat, open_file

#: ``PRAGMA application_id`` of a ledger file ("lltk").
APPLICATION_ID = 0x6C6C746B
RESTORE = "restore it from a backup; never start an empty one (the blocklist would be lost)"
LEDGER_FORMAT = FileFormat(
    label="llava-audit takedown ledger",
    application_id=APPLICATION_ID,
    version=1,
    ddl=(DDL,),
    migrations={},
    unversioned_tables=frozenset(),
    restore=RESTORE,
)
PREFIX = "ledger integrity"

# The state store keeps where the ledger stands, so a deleted or cut-back ledger is noticed.
register_schema(
    "ledger_anchor",
    """
CREATE TABLE IF NOT EXISTS takedown_ledger_anchor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ledger TEXT NOT NULL,
    events INTEGER NOT NULL,
    head TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    migrated_requests INTEGER NOT NULL DEFAULT 0
);
""",
)

_LEGACY = ("takedown_request", "takedown_key", "takedown_event", "takedown_blocklist")
# The ledger as state stores before schema 2 held it: kept so those files are still recognised,
# and read once by the migration.
register_schema(
    "ledger_legacy",
    """
CREATE TABLE IF NOT EXISTS takedown_request (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL, received TEXT NOT NULL, deadline TEXT, ground TEXT NOT NULL,
    requester_contact TEXT NOT NULL, datasets TEXT NOT NULL, notes TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS takedown_key (
    request_id TEXT NOT NULL REFERENCES takedown_request(request_id), kind TEXT NOT NULL,
    value TEXT NOT NULL, PRIMARY KEY (request_id, kind, value));
CREATE TABLE IF NOT EXISTS takedown_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL REFERENCES takedown_request(request_id), step TEXT NOT NULL,
    happened_at TEXT NOT NULL, recorded_at TEXT NOT NULL, ok INTEGER NOT NULL,
    summary TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS takedown_blocklist (
    request_id TEXT NOT NULL REFERENCES takedown_request(request_id), kind TEXT NOT NULL,
    value TEXT NOT NULL, added_at TEXT NOT NULL, PRIMARY KEY (request_id, kind, value));
"""
    + "".join(
        f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op} BEFORE {op.upper()} ON {t} "
        f"BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END;\n"
        for t in _LEGACY
        for op in ("update", "delete")
    ),
)


def ledger_path(config: Config) -> Path:
    """The ledger's own file: ``[takedown] ledger``, beside audit.toml by default."""
    return config.path(config.takedown.ledger)


@contextlib.contextmanager
def opened_ledger(config: Config, state: Store) -> Iterator[Ledger]:
    """The configured ledger, checked (:func:`open_ledger`), closed afterwards."""
    ledger = open_ledger(ledger_path(config), state)
    try:
        yield ledger
    finally:
        ledger.close()


def open_ledger(path: Path, state: Store) -> Ledger:
    """The ledger at ``path``, checked whole and against the state store's anchor; migrated from
    the state store the first time. Any doubt is a :class:`StoreError` (exit 3)."""
    anchor = _anchor(state)
    existed = path.exists() or path.is_symlink()
    if not existed and anchor is not None and anchor["events"] > 0:
        raise StoreError(
            f"{PREFIX}: {path}: the ledger file is missing, but the state store {state.path} "
            f"records {anchor['events']} event(s) in the takedown ledger {anchor['ledger']}; "
            f"{RESTORE}"
        )
    try:
        conn = open_file(path, LEDGER_FORMAT)
    except StoreError as exc:
        raise StoreError(f"{PREFIX}: {exc.message}") from None
    ledger = Ledger(conn, path, on_append=functools.partial(_set_anchor, state, path))
    try:
        problem = integrity_problem(ledger) or _anchor_problem(ledger, anchor)
        if problem:
            raise StoreError(f"{PREFIX}: {path}: {problem}; {RESTORE}")
        if anchor is None:
            _migrate_legacy(ledger, state)
        events, head = ledger.head()
        if anchor != {"ledger": str(path), "events": events, "head": head}:
            _set_anchor(state, path, events, head)
    except BaseException:
        ledger.close()
        raise
    return ledger


@functools.cache
def _expected_triggers() -> dict[str, str]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(DDL)
        return dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    finally:
        conn.close()


def integrity_problem(ledger: Ledger) -> str | None:
    """What is wrong with an open ledger file, or None: triggers, chain, deleted tail, personal
    data. (A dropped table is refused when the file is opened.)"""
    actual = dict(ledger.conn.execute("SELECT name, sql FROM sqlite_master WHERE type='trigger'"))
    for name, sql in _expected_triggers().items():
        if name not in actual:
            return f"trigger {name} was dropped (it keeps the ledger append-only)"
        if actual[name] != sql:
            return f"trigger {name} was changed"
    rows = ledger.rows()
    problem = chain_problem(rows)
    if problem:
        return problem
    seq = ledger.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'ledger_event'")
    highest = (seq.fetchone() or (0,))[0]
    if highest > len(rows):
        return f"event {len(rows) + 1} is missing: the last {highest - len(rows)} row(s) deleted"
    return _personal_problem(ledger, rows)


def _personal_problem(ledger: Ledger, rows: list[tuple[Any, ...]]) -> str | None:
    """Each request's contact and notes match the hashes in its ``received`` event, unless a
    ``redacted`` event removed them."""
    personal = {
        rid: (contact, notes)
        for rid, contact, notes in ledger.conn.execute("SELECT * FROM ledger_personal")
    }
    step_at = COLUMNS.index("step")
    redacted = {r[1] for r in rows if r[step_at] == "redacted"}
    received = {r[1]: r for r in rows if r[step_at] == RECEIVED}
    for rid in sorted(set(personal) - set(received)):
        return f"personal data of {rid}, a request the ledger does not hold"
    for rid, row in received.items():
        if rid not in personal:
            if rid not in redacted:
                return f"the requester's data of {rid} was deleted without a redacted event"
            continue
        detail = json.loads(row[COLUMNS.index("detail")])
        contact, notes = personal[rid]
        if (text_hash(contact), text_hash(notes)) != (
            detail.get("contact_sha256"),
            detail.get("notes_sha256"),
        ):
            return f"the requester's data of {rid} does not match its hash: it was edited"
    return None


def _anchor(state: Store) -> dict[str, Any] | None:
    row = state.conn.execute(
        "SELECT ledger, events, head FROM takedown_ledger_anchor WHERE id = 1"
    ).fetchone()
    return None if row is None else {"ledger": row[0], "events": row[1], "head": row[2]}


def _anchor_problem(ledger: Ledger, anchor: dict[str, Any] | None) -> str | None:
    """The ledger holds at least the events the state store saw, and the same ones."""
    if anchor is None or anchor["events"] == 0:
        return None
    n = anchor["events"]
    row = ledger.conn.execute("SELECT hash FROM ledger_event WHERE seq = ?", (n,)).fetchone()
    if row is None:
        return (
            f"it holds {ledger.head()[0]} event(s) but the state store recorded {n} in "
            f"{anchor['ledger']}: events were removed or an older copy was put back"
        )
    if row[0] != anchor["head"]:
        return f"event {n} is not the one the state store recorded: it is another ledger"
    return None


def _set_anchor(state: Store, path: Path, events: int, head: str) -> None:
    """Remember where the ledger stands; a failure here costs only this extra check."""
    with contextlib.suppress(sqlite3.Error), state.transaction() as conn:
        conn.execute(
            "INSERT INTO takedown_ledger_anchor (id, ledger, events, head, updated_at)"
            " VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET ledger = excluded.ledger,"
            " events = excluded.events, head = excluded.head, updated_at = excluded.updated_at",
            (str(path), events, head, now()),
        )


def _migrate_legacy(ledger: Ledger, state: Store) -> None:
    """Copy a ledger kept in the state store (before it had its own file) into this one, once."""
    conn = state.conn
    (count,) = conn.execute("SELECT count(*) FROM takedown_request").fetchone()
    if count == 0:
        return
    if ledger.head()[0] > 0:
        raise StoreError(
            f"{PREFIX}: {ledger.path}: the state store {state.path} holds {count} takedown "
            "request(s) from before the ledger had its own file, and this ledger already holds "
            "others; move it away so they can be migrated into a new ledger file"
        )
    events: list[tuple[Any, ...]] = []
    personal = []
    for rid, created, received, deadline, ground, contact, datasets, notes in conn.execute(
        "SELECT request_id, created_at, received, deadline, ground, requester_contact,"
        " datasets, notes FROM takedown_request ORDER BY seq"
    ).fetchall():
        keys = conn.execute(
            "SELECT kind, value FROM takedown_key WHERE request_id = ? ORDER BY kind, value",
            (rid,),
        ).fetchall()
        detail = {
            "received": received,
            "deadline": deadline,
            "ground": ground,
            "datasets": json.loads(datasets),
            "keys": [list(k) for k in keys],
            "contact_sha256": text_hash(contact),
            "notes_sha256": text_hash(notes),
            "migrated_from": str(state.path),
        }
        summary = f"{ground} request, {len(keys)} identifier(s)"
        events.append((rid, RECEIVED, received, created, 1, summary, detail))
        personal.append((rid, contact, notes))
    for rid, step, happened, recorded, ok, summary, detail in conn.execute(
        "SELECT request_id, step, happened_at, recorded_at, ok, summary, detail"
        " FROM takedown_event ORDER BY seq"
    ).fetchall():
        body = json.loads(detail)
        body.pop("blocklist", None)  # the blocklist comes from its own table below
        events.append((rid, step, happened, recorded, ok, summary, body))
    carried: dict[str, list[tuple[str, str, str]]] = {}
    for rid, kind, value, added in conn.execute(
        "SELECT request_id, kind, value, added_at FROM takedown_blocklist ORDER BY rowid"
    ):
        carried.setdefault(rid, []).append((kind, value, added))
    stamp = now()
    for rid, keys in carried.items():
        detail = {
            "blocklist": sorted([k, v] for k, v, _ in keys),
            "migrated_from": str(state.path),
        }
        summary = f"{len(keys)} key(s) on the blocklist, carried over from the state store"
        events.append((rid, "blocklisted", min(a for _, _, a in keys), stamp, 1, summary, detail))
    ledger.append_rows(
        [(*e[:6], canonical_detail(e[6])) for e in events],
        personal,
    )
    with state.transaction() as c:
        c.execute(
            "INSERT OR REPLACE INTO takedown_ledger_anchor"
            " (id, ledger, events, head, updated_at, migrated_requests) VALUES (1, ?, ?, ?, ?, ?)",
            (str(ledger.path), *ledger.head(), stamp, count),
        )
