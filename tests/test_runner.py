"""The full audit run: every stage per dataset, publish, run history, lock, and kills mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lcs_records import LCS_RECORD

from audit import config as config_mod
from audit import stages
from audit.errors import AlreadyRunningError, AuditError
from audit.output import model as rpt
from audit.output import publish as pub
from audit.runlock import RunLock, lock_path_for
from audit.runner import run_audit
from audit.store import Store
from audit.store import runs as history

GOOD = LCS_RECORD


def _config(tmp_path: Path, records: list[object]) -> config_mod.Config:
    (tmp_path / "chat.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "audit.toml").write_text(
        textwrap.dedent(
            """
            [[datasets]]
            name = "lcs"
            kind = "lcs-chat"
            chat = "chat.json"
            """
        ),
        encoding="utf-8",
    )
    return config_mod.load(tmp_path / "audit.toml")


@pytest.fixture
def no_gx(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the expectations stage (Great Expectations costs seconds) where it is not the point."""

    def skip(ctx: stages.StageContext) -> object:
        raise stages.StageSkipped("skipped by the test")

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", skip)


def _bad_role() -> dict[str, object]:
    bad = json.loads(json.dumps(GOOD))
    bad["conversations"][0]["from"] = "Human"
    return bad


def test_run_publishes_report_index_and_history(tmp_path: Path) -> None:
    config = _config(tmp_path, [GOOD, _bad_role(), GOOD])
    report = run_audit(config, config_file="audit.toml")
    ds = report.datasets[0]
    assert report.status == "succeeded" and not report.passed
    assert ds.stages["structure"].status == "ok"
    assert ds.records == 3
    structure = ds.stage("structure")
    assert structure is not None
    assert [(f.code, f.index) for f in structure.findings if f.severity == "error"] == [
        ("turn.role", 1)
    ]
    assert '"from":"Human"' in ds.examples[1]  # the record behind the example, for the page
    assert ds.examples[1].startswith('{"id":"004539375","image"')
    assert ds.examples_file == "chat.json"
    assert ds.stages["expectations"].status == "ok"
    assert report.data_docs == "data-docs/index.html"
    assert (tmp_path / "reports" / report.run_id / "data-docs" / "index.html").is_file()
    assert ds.stages["images"].status == "skipped"  # no image roots configured: said, not hidden
    assert "image roots" in ds.stages["images"].note
    assert {f.file for f in ds.findings()} == {"chat.json"}  # relative to the config folder
    published = tmp_path / "reports" / report.run_id
    assert rpt.read_report(published) == report
    assert "turn.role" in (published / "index.html").read_text()
    assert report.run_id in (tmp_path / "reports" / "index.html").read_text()
    with Store(config.path(config.state)) as store:
        (run,) = history.list_runs(store)
    assert (run.run_id, run.status, run.records) == (report.run_id, "succeeded", 3)
    assert run.errors == report.totals.errors
    assert report.previous is None
    second = run_audit(config)
    assert second.previous is not None and second.previous.run_id == report.run_id
    assert second.previous.totals.by_code == report.totals.by_code
    assert (
        "no change since last run"
        in (tmp_path / "reports" / second.run_id / "index.html").read_text()
    )
    assert run.datasets[0].dataset == "lcs"


def _exploding(ctx: stages.StageContext) -> object:
    raise RuntimeError("probe exploded")


def _skipped(ctx: stages.StageContext) -> object:
    raise stages.StageSkipped("skipped by the test")


def test_a_crashing_stage_is_recorded_with_its_traceback_and_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    functions = {**stages.STAGE_FUNCTIONS, "license": _exploding, "expectations": _skipped}
    report = run_audit(_config(tmp_path, [GOOD]), stage_functions=functions)
    ds = report.datasets[0]
    assert ds.stages["license"].status == "failed"
    assert "probe exploded" in ds.stages["license"].note
    assert ds.stages["takedown"].status == "ok"  # later stages ran
    assert report.totals.stages_failed == 1 and not report.passed
    published = tmp_path / "reports" / report.run_id
    log = (published / "run.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "in _exploding" in log and "RuntimeError: probe exploded" in log
    assert "lcs/structure: ok in" in log and "lcs/takedown: ok in" in log  # every stage, timed
    assert "lcs/expectations: skipped in" in log
    page = (published / "index.html").read_text()
    assert page.count('href="run.log"') == 1  # from the failed stage, the only one


def test_a_crashing_stage_shows_its_traceback_on_stderr_only_with_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit.cli import main

    _config(tmp_path, [GOOD])
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "license", _exploding)
    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", _skipped)
    assert main(["run", "--config", str(tmp_path / "audit.toml")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert main(["run", "--config", str(tmp_path / "audit.toml"), "--debug"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: probe exploded" in err
    assert main(["gate", "--config", str(tmp_path / "audit.toml"), "--debug"]) == 3
    assert "RuntimeError: probe exploded" in capsys.readouterr().err


def test_the_conversation_file_is_read_once_for_images_and_licences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gx: None
) -> None:
    """A mix665k file is over a gigabyte: the stages share one load of it."""
    from audit.licensing import inputs as licence_inputs
    from audit.loaders import records as loader

    (tmp_path / "chat.json").write_text(json.dumps([GOOD]), encoding="utf-8")
    (tmp_path / "images").mkdir()
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "lcs"\nkind = "lcs-chat"\nchat = "chat.json"\nimages = ["images"]\n',
        encoding="utf-8",
    )
    reads: list[str] = []
    real_load = loader.load_records

    def counting(path: Path, *args: object, **kwargs: object) -> object:
        reads.append(Path(path).name)
        return real_load(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "load_records", counting)
    monkeypatch.setattr(licence_inputs, "load_records", counting)
    report = run_audit(config_mod.load(tmp_path / "audit.toml"))
    runs = report.datasets[0].stages
    assert runs["images"].status == runs["license"].status == "ok"
    assert runs["images"].result.figures.missing == 1  # the record's image really was looked up
    assert reads == ["chat.json"]


def test_two_audits_never_run_at_once(tmp_path: Path, no_gx: None) -> None:
    config = _config(tmp_path, [GOOD])
    with RunLock(lock_path_for(config.path(config.state))), pytest.raises(AlreadyRunningError):
        run_audit(config)
    assert pub.published_runs(config.path(config.reports_dir)) == []


def test_a_run_that_cannot_publish_is_recorded_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gx: None
) -> None:
    config = _config(tmp_path, [GOOD])

    def full_disk(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pub, "publish", full_disk)
    with pytest.raises(AuditError, match="cannot publish the report: No space"):
        run_audit(config)
    with Store(config.path(config.state)) as store:
        run = history.last_run(store)
    assert run is not None and run.status == "failed" and "No space" in (run.message or "")
    assert pub.published_runs(config.path(config.reports_dir)) == []
    assert not any(config.path(config.reports_dir).glob(".staging-*"))
    assert "No space" in (config.path(config.reports_dir) / "index.html").read_text()


_KILL_AT = """
import os, signal, sys
from audit import config, runner, stages

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def skip(ctx):
    raise stages.StageSkipped("skipped by the test")
stages.STAGE_FUNCTIONS["expectations"] = skip
where = sys.argv[2]
if where == "stage":
    stages.STAGE_FUNCTIONS["license"] = die
elif where == "publish":
    real = runner.pub.publish
    runner.pub.publish = lambda report, root, **kw: real(report, root, before_rename=die, **kw)
else:  # after the rename, before the history says succeeded
    real_finish = runner.history.finish_run
    def finish(store, run_id, **kw):
        if kw["status"] == "succeeded":
            die()
        real_finish(store, run_id, **kw)
    runner.history.finish_run = finish
runner.run_audit(config.load(sys.argv[1]))
"""


@pytest.mark.parametrize("where", ["stage", "publish", "history"])
def test_a_kill_anywhere_keeps_previous_report_and_never_marks_success(
    tmp_path: Path, no_gx: None, where: str
) -> None:
    config = _config(tmp_path, [GOOD])
    first = run_audit(config)
    reports = config.path(config.reports_dir)
    index_before = (reports / "index.html").read_bytes()
    page_before = (reports / first.run_id / "index.html").read_bytes()

    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AT, str(tmp_path / "audit.toml"), where],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == -9, proc.stderr.decode()
    assert (reports / "index.html").read_bytes() == index_before
    assert (reports / first.run_id / "index.html").read_bytes() == page_before
    with Store(config.path(config.state)) as store:
        killed = history.last_run(store)
    assert killed is not None and killed.run_id != first.run_id and killed.status == "running"
    if where == "history":  # published whole, but never marked succeeded
        assert rpt.read_report(reports / killed.run_id).run_id == killed.run_id
    else:
        assert pub.published_runs(reports) == [first.run_id]

    third = run_audit(config)  # the next run cleans up and marks the killed one failed
    with Store(config.path(config.state)) as store:
        by_id = {r.run_id: r.status for r in history.list_runs(store)}
    assert by_id == {first.run_id: "succeeded", killed.run_id: "failed", third.run_id: "succeeded"}
    assert not [p for p in reports.iterdir() if p.name.startswith(".staging")]
    index = (reports / "index.html").read_text()
    assert "interrupted" in index
    assert f'href="{killed.run_id}/index.html"' not in index  # no link to an unconfirmed run


def _index_links(reports: Path) -> set[str]:
    import re

    page = (reports / "index.html").read_text()
    return set(re.findall(r'href="([^"#:]+)/index\.html"', page))


def test_retention_keeps_the_newest_runs_and_the_index_only_links_to_them(
    tmp_path: Path, no_gx: None
) -> None:
    import msgspec

    config = msgspec.structs.replace(_config(tmp_path, [GOOD, _bad_role()]), keep_runs=2)
    reports = tmp_path / "reports"
    (reports).mkdir()
    (reports / "README.md").write_text("what this folder is")
    ids = [run_audit(config).run_id for _ in range(4)]
    assert sorted(pub.published_runs(reports)) == sorted(ids[2:])  # exactly the newest two
    assert (reports / "README.md").read_text() == "what this folder is"
    assert sorted(p.name for p in reports.iterdir()) == sorted(
        ["README.md", "index.html", *ids[2:]]
    )
    assert _index_links(reports) == set(ids[2:])  # no dead links
    assert all(run_id in (reports / "index.html").read_text() for run_id in ids)  # still listed
    with Store(config.path(config.state)) as store:
        runs = history.list_runs(store)
    assert [r.run_id for r in runs] == ids and all(r.status == "succeeded" for r in runs)
    assert [r.report for r in runs] == [None, None, *ids[2:]]
    assert all(r.datasets for r in runs)  # the trend charts keep every run's figures
    assert runs[0].message == history.PRUNED_NOTE


def test_keep_runs_zero_keeps_every_run(tmp_path: Path, no_gx: None) -> None:
    import msgspec

    config = msgspec.structs.replace(_config(tmp_path, [GOOD]), keep_runs=0)
    ids = [run_audit(config).run_id for _ in range(3)]
    assert sorted(pub.published_runs(tmp_path / "reports")) == sorted(ids)
    assert _index_links(tmp_path / "reports") == set(ids)


def test_retention_trouble_never_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_gx: None
) -> None:
    import sqlite3

    import msgspec

    config = msgspec.structs.replace(_config(tmp_path, [GOOD]), keep_runs=1)
    first = run_audit(config).run_id

    def locked(*_: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(history, "mark_pruned", locked)
    second = run_audit(config)
    assert second.status == "succeeded"
    assert sorted(pub.published_runs(tmp_path / "reports")) == sorted([first, second.run_id])
    assert _index_links(tmp_path / "reports") == {second.run_id, first}


def test_retention_keeps_the_gate_baseline_run(tmp_path: Path, no_gx: None) -> None:
    import msgspec

    config = _config(tmp_path, [GOOD])
    first = run_audit(config).run_id
    gate = msgspec.structs.replace(config.gate, baseline=f"reports/{first}/findings.jsonl")
    config = msgspec.structs.replace(config, keep_runs=1, gate=gate)
    ids = [run_audit(config).run_id for _ in range(2)]
    assert sorted(pub.published_runs(tmp_path / "reports")) == sorted([first, ids[-1]])
    assert _index_links(tmp_path / "reports") == {first, ids[-1]}
