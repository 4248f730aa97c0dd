"""Hostile reports folders: unusable, overlapping the data, or holding a file the tool did not write."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lcs_records import LCS_RECORD

from audit import config as config_mod
from audit.cli import main
from audit.errors import AuditError
from audit.output import publish as pub
from audit.output import reportsdir
from audit.runner import run_audit

_DATASET = '[[datasets]]\nname = "lcs"\nkind = "lcs-chat"\nchat = "chat.json"\n'


def _write_config(tmp_path: Path, top: str = "", dataset: str = _DATASET) -> Path:
    (tmp_path / "chat.json").write_text(json.dumps([LCS_RECORD]), encoding="utf-8")
    (tmp_path / "audit.toml").write_text(top + "\n" + dataset, encoding="utf-8")
    return tmp_path / "audit.toml"


def _run(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["run", "--config", str(config)])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "reports_dir",
    [
        "/proc/llava-audit-reports",  # cannot be created
        "/proc/self",  # exists, cannot be written
        "reports\\u0000x",  # a NUL in the path
    ],
)
def test_an_unusable_reports_folder_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reports_dir: str
) -> None:
    code, err = _run(_write_config(tmp_path, f'reports_dir = "{reports_dir}"'), capsys)
    assert code == 3
    assert "reports" in _one_line(err) or "proc" in err


def test_a_reports_dir_that_is_a_file_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").write_text("a file")
    code, err = _run(_write_config(tmp_path, 'reports_dir = "out"'), capsys)
    assert code == 3 and "not a folder" in _one_line(err)
    assert (tmp_path / "out").read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_reports_folder_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "reports").mkdir(mode=0o555)
    try:
        code, err = _run(_write_config(tmp_path), capsys)
    finally:
        (tmp_path / "reports").chmod(0o755)
    assert code == 3 and "cannot write" in _one_line(err)


@pytest.mark.parametrize(
    ("reports_dir", "images", "named"),
    [
        (".", [], "chat.json"),  # holds the conversation file
        ("data", ["data"], "data"),  # is the image root
        ("data/reports", ["data"], "data"),  # inside the image root
        ("out", ["out/images"], "out/images"),  # holds the image root
    ],
)
def test_a_reports_folder_overlapping_the_data_is_a_config_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    reports_dir: str,
    images: list[str],
    named: str,
) -> None:
    for root in images:
        (tmp_path / root).mkdir(parents=True)
    dataset = _DATASET + f"images = {json.dumps(images)}\n"
    code, err = _run(_write_config(tmp_path, f'reports_dir = "{reports_dir}"', dataset), capsys)
    assert code == 2
    assert f"reports_dir {reports_dir} overlaps" in _one_line(err) and named in err
    assert not (tmp_path / reports_dir / "index.html").exists()


def test_a_foreign_index_html_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("<h1>my team's landing page</h1>")
    code, err = _run(_write_config(tmp_path), capsys)
    assert code == 3 and "not written by llava-audit" in _one_line(err)
    assert (reports / "index.html").read_text() == "<h1>my team's landing page</h1>"
    assert pub.published_runs(reports) == []


def test_a_symlinked_index_html_is_never_replaced(tmp_path: Path) -> None:
    config = config_mod.load(_write_config(tmp_path))
    (tmp_path / "reports").mkdir()
    (tmp_path / "page.html").write_text("elsewhere")
    (tmp_path / "reports" / "index.html").symlink_to(tmp_path / "page.html")
    with pytest.raises(AuditError, match="not written by llava-audit"):
        reportsdir.prepare(config)
    assert (tmp_path / "reports" / "index.html").is_symlink()


def test_our_own_index_html_is_replaced_run_after_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit import stages

    def skip(ctx: stages.StageContext) -> object:
        raise stages.StageSkipped("skipped by the test")

    monkeypatch.setitem(stages.STAGE_FUNCTIONS, "expectations", skip)
    config = config_mod.load(_write_config(tmp_path))
    first = run_audit(config)
    second = run_audit(config)
    index = (tmp_path / "reports" / "index.html").read_text()
    assert first.run_id in index and second.run_id in index
