"""The takedown ledger is tamper-evident: `run`, `gate` and `takedown verify` refuse a ledger that
was edited behind the tool's back (exit 3, "ledger integrity: <file>"), and an open request blocks
training from the day it is received."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from lcs_records import lcs_records

from audit import stages
from audit.checks.takedown import parse_key
from audit.cli import main
from audit.errors import StoreError
from audit.store import Store
from audit.store.ledgerfile import open_ledger

RECORDS = lcs_records(4)
TAKEN = RECORDS[1]["id"]
RECEIVED = dt.date.today() - dt.timedelta(days=10)


@pytest.fixture
def no_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the expectations stage (seconds of Great Expectations): not the point here."""

    def skip(ctx: stages.StageContext) -> object:
        raise stages.StageSkipped("skipped by the test")

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", skip)


def _world(folder: Path) -> Path:
    """A dataset and an audit.toml (state in a cache folder, ledger beside audit.toml)."""
    (folder / "chat.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    (folder / "audit.toml").write_text(
        textwrap.dedent(
            """
            reports_dir = "reports"
            state = ".cache/state.sqlite"
            [[datasets]]
            name = "lcs"
            kind = "lcs-chat"
            chat = "chat.json"
            """
        ),
        encoding="utf-8",
    )
    return folder / "takedown.sqlite"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _applied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One request received, applied and the requester told: three events after intake."""
    cfg = ["--config", "audit.toml"]
    new = ["takedown", "new", *cfg, "--ground", "copyright", "--contact", "a@b.c"]
    assert _cli(capsys, *new, "--record-id", TAKEN, "--received", str(RECEIVED))[0] == 0
    assert _cli(capsys, "takedown", "apply", *cfg, "TD-0001")[0] == 0
    assert _cli(capsys, "takedown", "notify", *cfg, "TD-0001")[0] == 0


def _sql(*statements: str) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        conn = sqlite3.connect(path)
        with conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()

    return edit


_RESTORE_TRIGGER = (
    "CREATE TRIGGER ledger_event_no_delete BEFORE DELETE ON ledger_event\n"
    "BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END"
)
TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "drop trigger": (
        _sql("DROP TRIGGER ledger_event_no_update"),
        "trigger ledger_event_no_update was dropped",
    ),
    "edit a date": (
        _sql(
            "DROP TRIGGER ledger_event_no_update",
            "UPDATE ledger_event SET happened_at = '2020-01-01' WHERE step = 'notified'",
            "CREATE TRIGGER ledger_event_no_update BEFORE UPDATE ON ledger_event\n"
            "BEGIN SELECT RAISE(ABORT, 'the takedown ledger is append-only'); END",
        ),
        "does not match its hash: the row was edited",
    ),
    "delete a row": (
        _sql(
            "DROP TRIGGER ledger_event_no_delete",
            "DELETE FROM ledger_event WHERE step = 'removed'",
            _RESTORE_TRIGGER,
        ),
        "is missing (the next is",
    ),
    "delete the last row": (
        _sql(
            "DROP TRIGGER ledger_event_no_delete",
            "DELETE FROM ledger_event WHERE seq = (SELECT max(seq) FROM ledger_event)",
            _RESTORE_TRIGGER,
            "UPDATE sqlite_sequence SET seq = seq - 1 WHERE name = 'ledger_event'",
        ),
        "it holds 4 event(s) but the state store recorded 5",
    ),
    "drop a table": (_sql("DROP TABLE ledger_personal"), "table ledger_personal missing"),
}


@pytest.mark.parametrize("command", ["run", "gate", "takedown verify"])
@pytest.mark.parametrize("case", TAMPERING)
def test_a_tampered_ledger_stops_run_gate_and_verify_with_exit_3(
    tmp_path: Path,
    case: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_gx: None,
) -> None:
    ledger = _world(tmp_path)
    monkeypatch.chdir(tmp_path)
    _applied(tmp_path, capsys)
    tamper, problem = TAMPERING[case]
    tamper(ledger)
    argv = {"run": ["run"], "gate": ["gate"], "takedown verify": ["takedown", "verify"]}[command]
    extra = ["TD-0001"] if command == "takedown verify" else []
    code, _, err = _cli(capsys, *argv, "--config", "audit.toml", *extra)
    line = err.strip().splitlines()[-1]
    assert code == 3, err
    assert "ledger integrity: " in line and str(ledger) in line and problem in line
    assert "Traceback" not in err


def test_a_deleted_ledger_is_an_error_while_the_state_store_remembers_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _world(tmp_path)
    monkeypatch.chdir(tmp_path)
    _applied(tmp_path, capsys)
    ledger.unlink()
    code, _, err = _cli(capsys, "gate", "--config", "audit.toml")
    assert code == 3 and "ledger integrity" in err and "the ledger file is missing" in err
    assert not ledger.exists(), "an empty ledger was created in its place"


def test_the_cache_folder_can_be_deleted_without_losing_the_ledger(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_gx: None,
) -> None:
    _world(tmp_path)
    monkeypatch.chdir(tmp_path)
    _applied(tmp_path, capsys)
    shutil.rmtree(tmp_path / ".cache")
    code, out, _ = _cli(capsys, "gate", "--config", "audit.toml")
    assert code == 1 and "takedown.present" in out  # the blocklist survived


def test_a_request_blocks_the_gate_from_the_day_it_is_received(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_gx: None,
) -> None:
    _world(tmp_path)
    monkeypatch.chdir(tmp_path)
    cfg = ["--config", "audit.toml"]
    assert _cli(capsys, "gate", *cfg)[0] == 0
    new = ["takedown", "new", *cfg, "--ground", "gdpr", "--contact", "a@b.c"]
    assert _cli(capsys, *new, "--record-id", TAKEN)[0] == 0
    code, out, _ = _cli(capsys, "gate", *cfg)
    assert code == 1 and "takedown.pending" in out  # before apply: GDPR Art. 18
    code, _, _ = _cli(capsys, "run", *cfg)
    assert code == 1
    assert _cli(capsys, "takedown", "reject", *cfg, "TD-0001", "--reason", "not theirs")[0] == 0
    assert _cli(capsys, "gate", *cfg)[0] == 0  # rejected: no longer blocking


def test_an_old_ledger_in_the_state_store_is_migrated_once(tmp_path: Path) -> None:
    """A state store written before the ledger had its own file: its requests, events and
    blocklist move into the new file, chained; the old tables stay, unread."""
    state = tmp_path / "state.sqlite"
    with Store(state) as store:
        store.conn.execute(
            "INSERT INTO takedown_request (request_id, created_at, received, ground,"
            " requester_contact, datasets) VALUES ('TD-0001', '2026-01-01T00:00:00+00:00',"
            " '2026-01-01', 'copyright', 'x@y.z', '[]')"
        )
        store.conn.execute("INSERT INTO takedown_key VALUES ('TD-0001', 'record_id', ?)", (TAKEN,))
        store.conn.execute(
            "INSERT INTO takedown_event (request_id, step, happened_at, recorded_at, ok, summary,"
            " detail) VALUES ('TD-0001', 'removed', '2026-01-02', '2026-01-02', 1, 'x', '{}')"
        )
        store.conn.execute(
            "INSERT INTO takedown_blocklist VALUES ('TD-0001', 'record_id', ?, '2026-01-02')",
            (TAKEN,),
        )
        with open_ledger(tmp_path / "takedown.sqlite", store) as ledger:
            assert [r.request_id for r in ledger.requests()] == ["TD-0001"]
            assert ledger.requests()[0].requester_contact == "x@y.z"
            assert [e.step for e in ledger.events("TD-0001")] == ["removed", "blocklisted"]
            assert ledger.blocklist() == [(parse_key("record_id", TAKEN), "TD-0001")]
        with open_ledger(tmp_path / "takedown.sqlite", store) as ledger:
            assert ledger.head()[0] == 3, "migrated twice"
        (tmp_path / "takedown.sqlite").unlink()
        with pytest.raises(StoreError, match=r"ledger integrity: .* the ledger file is missing"):
            open_ledger(tmp_path / "takedown.sqlite", store)
