"""The takedown ledger: append-only, hash-chained, state derived from events, nothing lost between
steps."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.checks.takedown import BlockKey, parse_key
from audit.errors import TakedownError
from audit.store import Store
from audit.store.ledger import Ledger, add_months, default_deadline
from audit.store.ledgerfile import open_ledger

IMAGE = parse_key("image", "00453/004539375.jpg")


def _ledger(tmp_path: Path) -> Ledger:
    return open_ledger(tmp_path / "takedown.sqlite", Store(tmp_path / "state.sqlite"))


def test_gdpr_deadline_is_one_calendar_month_clamped_to_the_month_end() -> None:
    assert default_deadline("gdpr", dt.date(2026, 1, 31)) == dt.date(2026, 2, 28)
    assert default_deadline("gdpr", dt.date(2026, 11, 26)) == dt.date(2026, 12, 26)
    assert add_months(dt.date(2026, 12, 15), 1) == dt.date(2027, 1, 15)
    assert default_deadline("copyright", dt.date(2026, 1, 31)) is None


def test_a_request_keeps_its_fields_and_gets_sequential_ids(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    first = ledger.add_request(
        ground="gdpr",
        requester_contact="jane@example.org",
        keys=[IMAGE, IMAGE, parse_key("record_id", "004539375")],
        received=dt.date(2026, 11, 2),
        datasets=["lcs"],
        notes="photo of me",
    )
    second = ledger.add_request(
        ground="copyright", requester_contact="x", keys=[IMAGE], received=dt.date(2026, 11, 3)
    )
    assert (first.request_id, second.request_id) == ("TD-0001", "TD-0002")
    again = _ledger(tmp_path).get("TD-0001")
    assert again == first
    assert again.deadline == dt.date(2026, 12, 2)
    assert again.keys == [
        BlockKey("image", "00453/004539375.jpg"),
        BlockKey("record_id", "004539375"),
    ]
    assert [r.request_id for r in ledger.requests()] == ["TD-0001", "TD-0002"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ground": "because"}, "unknown ground 'because'"),
        ({"requester_contact": "  "}, "contact"),
        ({"keys": []}, "at least one identifier"),
        ({"deadline": dt.date(2026, 1, 1)}, "before the received date"),
    ],
)
def test_bad_requests_are_refused_and_leave_no_trace(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    ledger = _ledger(tmp_path)
    args: dict[str, object] = {
        "ground": "copyright",
        "requester_contact": "a@b.c",
        "keys": [IMAGE],
        "received": dt.date(2026, 11, 2),
    }
    with pytest.raises(TakedownError, match=message):
        ledger.add_request(**{**args, **kwargs})  # type: ignore[arg-type]
    assert ledger.requests() == []


def test_unknown_request_id_names_the_known_ones(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    with pytest.raises(TakedownError, match="no requests recorded yet"):
        ledger.get("TD-0009")
    ledger.add_request(
        ground="copyright", requester_contact="a", keys=[IMAGE], received=dt.date(2026, 1, 1)
    )
    with pytest.raises(TakedownError, match=r"unknown takedown request 'TD-9'.*TD-0001"):
        ledger.get("TD-9")


def test_state_is_derived_from_events_and_the_latest_event_wins(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    rid = ledger.add_request(
        ground="copyright", requester_contact="a", keys=[IMAGE], received=dt.date(2026, 1, 1)
    ).request_id
    assert set(ledger.state(rid).values()) == {None}
    ledger.record(rid, "located", summary="3 records", detail={"matches": [1, 2, 3]})
    ledger.record(rid, "reaudited", summary="still there", ok=False)
    ledger.record(rid, "reaudited", summary="clean")
    ledger.record(rid, "blocklisted", summary="1 key", blocklist=[IMAGE])
    state = ledger.state(rid)
    assert state["located"] is not None and state["located"].detail == {"matches": [1, 2, 3]}
    assert state["reaudited"] is not None and state["reaudited"].ok
    assert state["removed"] is None and state["notified"] is None
    assert [e.step for e in ledger.events(rid)] == [
        "located",
        "reaudited",
        "reaudited",
        "blocklisted",
    ]
    assert ledger.blocklist() == [(IMAGE, rid)]


def test_the_database_refuses_updates_and_deletes(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    rid = ledger.add_request(
        ground="gdpr", requester_contact="a", keys=[IMAGE], received=dt.date(2026, 1, 1)
    ).request_id
    ledger.record(rid, "notified", summary="mailed", blocklist=[IMAGE])
    conn = ledger.conn
    for sql in (
        "UPDATE ledger_event SET ok = 0",
        "UPDATE ledger_event SET happened_at = '2025-12-31' WHERE step = 'received'",
        "DELETE FROM ledger_event",
        "UPDATE ledger_personal SET contact = 'b'",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    with pytest.raises(sqlite3.IntegrityError, match="only by a redacted event"):
        conn.execute("DELETE FROM ledger_personal")
    assert ledger.get(rid).ground == "gdpr" and len(ledger.events(rid)) == 1


def test_a_crash_inside_a_step_leaves_no_half_written_event(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    rid = ledger.add_request(
        ground="gdpr", requester_contact="a", keys=[IMAGE], received=dt.date(2026, 1, 1)
    ).request_id
    with pytest.raises(TakedownError, match="unknown takedown step"):
        ledger.record(rid, "forgotten", summary="x")

    def keys_then_crash() -> Iterator[BlockKey]:
        yield IMAGE
        raise RuntimeError("killed")

    # A crash while the keys are written aborts the whole step: no event without its keys.
    with pytest.raises(RuntimeError, match="killed"):
        ledger.record(rid, "blocklisted", summary="x", blocklist=keys_then_crash())
    assert ledger.events(rid) == [] and ledger.blocklist() == []
