"""The state store refuses a file it cannot trust (it holds the takedown ledger) and migrates old ones.

Each hostile file is tried through the library and through every command that opens the store
(`run`, `gate`, `takedown list`, `urls --state`): one line naming the file and how to restore it,
exit 3, and the file left exactly as it was, never re-created empty.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from lcs_records import lcs_records

from audit import stages
from audit import store as store_mod
from audit.checks.takedown import parse_key
from audit.cli import main
from audit.errors import StoreError
from audit.store import APPLICATION_ID, SCHEMA_VERSION, Store, runs, sqlitefile, urls
from audit.store.ledgerfile import open_ledger

RESTORE = "restore it from a backup or move it away to start a new cache"
RECORDS = lcs_records(4)
TAKEN_DOWN = RECORDS[1]["id"]


@pytest.fixture
def no_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the expectations stage (seconds of Great Expectations) where it is not the point."""

    def skip(ctx: stages.StageContext) -> object:
        raise stages.StageSkipped("skipped by the test")

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", skip)


def _world(folder: Path) -> Path:
    """A dataset, its metadata with a URL, and an audit.toml whose state is ``state.sqlite``."""
    (folder / "chat.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    (folder / "meta.json").write_text(
        json.dumps([{"id": "1", "image": "a.jpg", "url": "http://127.0.0.1:9/a.jpg"}])
    )
    (folder / "audit.toml").write_text(
        textwrap.dedent(
            """
            reports_dir = "reports"
            state = "state.sqlite"
            [[datasets]]
            name = "lcs"
            kind = "lcs-chat"
            chat = "chat.json"
            """
        ),
        encoding="utf-8",
    )
    return folder / "state.sqlite"


def _real_store(path: Path) -> None:
    """A store with a blocklisted record and enough cached URLs to span many pages."""
    with Store(path) as store, open_ledger(path.with_name("takedown.sqlite"), store) as ledger:
        key = parse_key("record_id", TAKEN_DOWN)
        request = ledger.add_request(
            ground="gdpr",
            requester_contact="jane@example.org",
            keys=[key],
            received=dt.date.today(),
        )
        ledger.record(request.request_id, "blocklisted", summary="blocked", blocklist=[key])
        urls.record(
            store,
            [urls.UrlProbe(f"http://h/{i:05d}.jpg", "ok", 200, "", None, 1.0) for i in range(3000)],
        )
        urls.merge(store)


def _truncated(path: Path) -> None:
    _real_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
        conn.execute("INSERT INTO moz_places (url) VALUES ('https://example.org')")
    conn.close()


def _newer(path: Path) -> None:
    _real_store(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


HOSTILE: dict[str, tuple[Callable[[Path], object], str]] = {
    "truncated": (_truncated, "is damaged (truncated or corrupt)"),
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "random bytes": (lambda p: p.write_bytes(os.urandom(8192)), "is not a SQLite database"),
    "text": (lambda p: p.write_text("state = 1\n"), "is not a SQLite database"),
    "cut header": (lambda p: p.write_bytes(b"SQLite format 3\x00\x10\x00"), "is truncated"),
    "another app's database": (_foreign, "is a SQLite database but not a llava-audit state store"),
}


def _refused(path: Path, make: Callable[[Path], object]) -> bytes:
    make(path)
    return path.read_bytes()


@pytest.mark.parametrize("case", HOSTILE)
def test_library_refuses_an_untrustworthy_file_and_leaves_it_alone(
    tmp_path: Path, case: str
) -> None:
    make, problem = HOSTILE[case]
    path = tmp_path / "state.sqlite"
    before = _refused(path, make)
    with pytest.raises(StoreError) as caught:
        Store(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {problem}") and RESTORE in message
    assert "takedown ledger" in message and "\n" not in message
    assert path.read_bytes() == before, "the file was changed"


COMMANDS = {
    "run": ["run", "--config", "audit.toml"],
    "gate": ["gate", "--config", "audit.toml"],
    "takedown list": ["takedown", "list", "--config", "audit.toml"],
    "urls --state": ["urls", "meta.json", "--state", "state.sqlite"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", HOSTILE)
def test_every_command_refuses_it_with_one_line_and_exit_3(
    tmp_path: Path,
    case: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_gx: None,
) -> None:
    make, problem = HOSTILE[case]
    path = _world(tmp_path)
    before = _refused(path, make)
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command]) == 3
    err = capsys.readouterr().err
    assert problem in err and RESTORE in err and "state.sqlite" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert path.read_bytes() == before, "the file was changed"


def test_an_emptied_store_no_longer_lets_taken_down_data_pass_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gx: None
) -> None:
    path = _world(tmp_path)
    _real_store(path)
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS["gate"]) == 1, "the blocklisted record fails the gate"
    path.write_bytes(b"")  # `: > state.sqlite`
    assert main(COMMANDS["gate"]) == 3
    assert path.stat().st_size == 0, "the store was silently re-created"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_store_from_a_newer_tool_is_refused(
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_gx: None,
) -> None:
    path = _world(tmp_path)
    _newer(path)
    before = path.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command]) == 3
    err = capsys.readouterr().err.strip()
    newer = SCHEMA_VERSION + 1
    assert err.endswith(
        f"state.sqlite was written by a newer llava-audit (schema {newer}); "
        "upgrade or point --state elsewhere"
    )
    assert len(err.splitlines()) == 1 and path.read_bytes() == before
    with pytest.raises(StoreError, match=f"newer llava-audit \\(schema {newer}\\)"):
        Store(path)


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
@pytest.mark.parametrize("command", ["takedown list", "urls --state", "run"])
def test_a_state_path_that_is_not_a_file_is_one_line(
    tmp_path: Path,
    kind: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = _world(tmp_path)
    path.mkdir() if kind == "directory" else os.mkfifo(path)
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command]) == 3
    err = capsys.readouterr().err.strip()
    assert f"state.sqlite: is a {kind}" in err and len(err.splitlines()) == 1
    with pytest.raises(StoreError, match=f"is a {kind}"):
        Store(path)


def test_a_state_path_with_a_nul_byte_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _world(tmp_path)
    config = (tmp_path / "audit.toml").read_text().replace("state.sqlite", "st\\u0000ate.sqlite")
    (tmp_path / "audit.toml").write_text(config)
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS["takedown list"]) == 3
    err = capsys.readouterr().err.strip()
    assert "NUL byte" in err and len(err.splitlines()) == 1


def test_a_missing_table_in_a_current_store_is_damage_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    _real_store(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE takedown_blocklist")
    conn.close()
    with pytest.raises(StoreError, match="table takedown_blocklist missing"):
        Store(path)


def _unversioned_store(path: Path) -> None:
    """A state file as llava-audit wrote it before schema versions: our tables, both pragmas 0,
    ``run_datasets`` still without ``url_missing_rate``; one blocklisted takedown."""
    store_mod.state_format()
    with sqlite3.connect(path) as conn:
        for ddl in store_mod.SCHEMAS.values():
            conn.executescript(ddl)
        conn.execute("ALTER TABLE run_datasets DROP COLUMN url_missing_rate")
        conn.execute(
            "INSERT INTO takedown_request (request_id, created_at, received, ground,"
            " requester_contact, datasets) VALUES ('TD-0001', '2026-01-01T00:00:00+00:00',"
            " '2026-01-01', 'copyright', 'x@y.z', '[]')"
        )
        conn.execute(
            "INSERT INTO takedown_blocklist VALUES ('TD-0001', 'record_id', ?, '2026-01-02')",
            (TAKEN_DOWN,),
        )
    conn.close()


def _pragmas(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        return (
            conn.execute("PRAGMA application_id").fetchone()[0],
            conn.execute("PRAGMA user_version").fetchone()[0],
        )
    finally:
        conn.close()


def test_an_unversioned_store_is_migrated_keeping_its_ledger(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    _unversioned_store(path)
    with Store(path) as store:
        with open_ledger(tmp_path / "takedown.sqlite", store) as ledger:  # migrated out once
            assert [key.value for key, _ in ledger.blocklist()] == [TAKEN_DOWN]
        started = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
        runs.start_run(store, "r", started)
        figures = runs.DatasetFigures(
            dataset="lcs",
            records=1,
            errors=0,
            warnings=0,
            unavailable_rate=None,
            url_unavailable_rate=0.3,
        )
        runs.finish_run(store, "r", finished=started, status="succeeded", datasets=[figures])
        assert runs.list_runs(store)[0].datasets[0].url_unavailable_rate == 0.3
    assert _pragmas(path) == (APPLICATION_ID, SCHEMA_VERSION)


def test_an_unversioned_store_only_the_url_cache_used_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE url_probe (url TEXT PRIMARY KEY, status TEXT NOT NULL, http_status"
            " INTEGER, detail TEXT NOT NULL DEFAULT '', final_url TEXT, probed_at REAL NOT NULL)"
        )
    conn.close()
    Store(path).close()
    assert _pragmas(path) == (APPLICATION_ID, SCHEMA_VERSION)


def test_another_programs_runs_table_is_not_taken_for_ours(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, lap_time REAL)")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a llava-audit state store"):
        Store(path)
    assert path.read_bytes() == before


def test_an_unversioned_store_is_migrated_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _world(tmp_path)
    _unversioned_store(path)
    monkeypatch.chdir(tmp_path)
    assert main([*COMMANDS["takedown list"], "--json"]) == 0
    assert [r["request_id"] for r in json.loads(capsys.readouterr().out)] == ["TD-0001"]
    assert _pragmas(path) == (APPLICATION_ID, SCHEMA_VERSION)


def test_a_new_store_is_versioned_and_an_older_version_migrates_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite"
    _real_store(path)
    assert _pragmas(path) == (APPLICATION_ID, SCHEMA_VERSION)

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk full")

    next_version = SCHEMA_VERSION + 1
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", next_version)
    monkeypatch.setitem(store_mod.MIGRATIONS, next_version, [half_done])
    with pytest.raises(
        StoreError, match=f"cannot upgrade it from schema {SCHEMA_VERSION}: disk full"
    ):
        Store(path)
    assert _pragmas(path) == (APPLICATION_ID, SCHEMA_VERSION)
    with sqlite3.connect(path) as conn:
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []
        )
    conn.close()

    def add_note(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    monkeypatch.setitem(store_mod.MIGRATIONS, next_version, [add_note])
    with Store(path) as store:
        assert _ledger_events(store) == 2  # the anchor of the ledger file: kept
        store.conn.execute("SELECT note FROM runs").fetchall()
    assert _pragmas(path) == (APPLICATION_ID, next_version)


def test_creating_a_store_never_replaces_one_that_appeared_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite"
    _real_store(path)
    # another process creates the file right after this process found nothing there
    monkeypatch.setattr(sqlitefile, "_regular_file_size", lambda *_: None)
    with Store(path) as store:
        assert _ledger_events(store) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.sqlite", "takedown.sqlite"]


def _ledger_events(store: Store) -> int:
    """How many events the state store saw in the takedown ledger (its anchor)."""
    return int(store.conn.execute("SELECT events FROM takedown_ledger_anchor").fetchone()[0])
