"""The report as data: JSON round-trip and atomic publishing (a kill never half-publishes)."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from audit import findings
from audit.atomic import write_atomic
from audit.output import model as rpt
from audit.output import publish as pub
from audit.output import reportsdir
from audit.results import ImagesResult, StructureResult


def _finding(code: str, index: int, dataset: str = "cc3m") -> findings.Finding:
    return findings.make(
        code, f"problem {index} <script>", dataset=dataset, file="chat.json", index=index
    )


def sample_report(run_id: str = "20261126T010000Z-0001") -> rpt.AuditReport:
    structure = StructureResult(
        findings=[_finding("turn.role", 3), _finding("turn.empty_value", 5)], records=10
    )
    images = ImagesResult(
        findings=[_finding("record.id_type", 1)], referenced=10, status={"ok": 9, "missing": 1}
    )
    ds = rpt.DatasetReport(
        name="cc3m",
        kind="cc3m-chat",
        records=10,
        images=images.figures,
        stages={
            "structure": rpt.StageRun(status="ok", result=structure, seconds=0.5),
            "images": rpt.StageRun(status="ok", result=images),
            "urls": rpt.StageRun(status="skipped", note="not configured"),
        },
    )
    other = rpt.DatasetReport(
        name="lcs",
        kind="lcs-chat",
        records=4,
        stages={
            "structure": rpt.StageRun(
                status="ok",
                result=StructureResult(findings=[_finding("turn.order", 0, "lcs")]),
            )
        },
    )
    report = rpt.AuditReport(
        run_id=run_id,
        started=datetime(2026, 11, 26, 1, 0, tzinfo=UTC),
        finished=datetime(2026, 11, 26, 1, 5, tzinfo=UTC),
        status="succeeded",
        datasets=[ds, other],
    )
    report.totals = rpt.compute_totals(report.datasets)
    return report


def test_totals_count_every_stage_and_dataset() -> None:
    totals = sample_report().totals
    assert (totals.errors, totals.warnings, totals.records) == (3, 1, 14)
    assert totals.by_code["turn.role"] == 1
    assert totals.stages_skipped == 1


def test_report_round_trips_through_json_and_jsonl() -> None:
    report = sample_report()
    report_json, findings_jsonl = rpt.to_files(report)
    assert b"<script>" not in report_json  # findings are not duplicated into report.json
    assert findings_jsonl.count(b"\n") == 4
    again = rpt.from_files(report_json, findings_jsonl)
    assert again == report
    assert [f.index for f in again.datasets[0].stage("structure").findings] == [3, 5]  # type: ignore[union-attr]


def test_mismatched_findings_file_is_detected() -> None:
    report_json, findings_jsonl = rpt.to_files(sample_report())
    with pytest.raises(ValueError, match="findings"):
        rpt.from_files(report_json, findings_jsonl.split(b"\n", 1)[1])


def test_publish_then_read_back(tmp_path: Path) -> None:
    report = sample_report()
    out = pub.publish(report, tmp_path, render_page=lambda r: f"<p>{r.run_id}</p>")
    assert out == tmp_path / report.run_id
    assert rpt.read_report(out) == report
    assert (out / "index.html").read_text() == f"<p>{report.run_id}</p>"
    assert pub.published_runs(tmp_path) == [report.run_id]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_kill_mid_publish_leaves_previous_report_intact(tmp_path: Path) -> None:
    first = sample_report("20261125T010000Z-0001")
    published = pub.publish(first, tmp_path)
    before = {p.name: p.read_bytes() for p in published.iterdir()}

    class Killed(BaseException):
        pass

    def die(_: Path) -> None:
        raise Killed

    second = sample_report("20261126T010000Z-0002")
    with pytest.raises(Killed):
        pub.publish(second, tmp_path, before_rename=die)
    assert pub.published_runs(tmp_path) == [first.run_id]
    assert {p.name: p.read_bytes() for p in published.iterdir()} == before
    assert not (tmp_path / second.run_id).exists()
    assert pub.remove_stale_staging(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.run_id]


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def _full_disk(path: Path, data: bytes) -> None:
    """A writer that gets half the bytes out, then fails like a full disk."""
    path.write_bytes(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_leaves_no_temp_file_and_the_earlier_report_intact(tmp_path: Path) -> None:
    first = pub.publish(sample_report("20261125T010000Z-0001"), tmp_path)
    write_atomic(tmp_path / "index.html", b"<p>runs</p>")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    with pytest.raises(OSError, match="No space"):
        pub.publish(sample_report("20261126T010000Z-0002"), tmp_path, write=_full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomic(tmp_path / "index.html", b"<p>more runs</p>", write=_full_disk)

    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # no *.tmp, no staging folder, nothing earlier touched
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, "index.html"]


def test_the_stale_staging_sweep_spares_folders_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / ".staging-notes").mkdir()
    (tmp_path / ".staging-notes" / "keep.txt").write_text("mine")
    pub.staging_dir(tmp_path, "20261126T010000Z-0002")
    assert pub.remove_stale_staging(tmp_path) == 1
    assert (tmp_path / ".staging-notes" / "keep.txt").read_text() == "mine"


def test_run_ids_sort_by_time() -> None:
    a = rpt.new_run_id(datetime(2026, 1, 2, tzinfo=UTC))
    b = rpt.new_run_id(datetime(2026, 1, 10, tzinfo=UTC))
    assert a < b and "/" not in a


def _publish_days(root: Path, days: range) -> list[str]:
    ids = [f"202611{day:02d}T023000Z-00{day:02d}" for day in days]
    for day, run_id in zip(days, ids, strict=True):
        started = datetime(2026, 11, day, 2, 30, tzinfo=UTC)
        pub.publish(msgspec.structs.replace(sample_report(run_id), started=started), root)
    return ids


def test_retention_deletes_only_the_oldest_runs_beyond_the_limit(tmp_path: Path) -> None:
    ids = _publish_days(tmp_path, range(1, 7))
    doomed = reportsdir.prunable_runs(tmp_path, 4, protect={ids[-1]})
    assert doomed == ids[:2]  # oldest first
    assert reportsdir.remove_runs(tmp_path, doomed) == ids[:2]
    assert pub.published_runs(tmp_path) == sorted(ids[2:], reverse=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ids[2:])
    assert reportsdir.prunable_runs(tmp_path, 4, protect=set()) == []  # already at the limit


def test_retention_can_also_cap_the_total_size_keeping_the_newest(tmp_path: Path) -> None:
    """keep_mb: the newest runs that fit stay, older ones go even under keep_runs; the newest
    always stays, however big, and a protected run stays and still counts."""
    ids = _publish_days(tmp_path, range(1, 6))
    for run_id in ids:
        (tmp_path / run_id / "data-docs.bin").write_bytes(b"x" * 100_000)
    size = reportsdir.folder_bytes(tmp_path / ids[-1])
    assert 100_000 < size < 150_000
    two = int(2.5 * size)
    assert reportsdir.prunable_runs(tmp_path, 30, protect=set(), keep_bytes=two) == ids[:3]
    assert reportsdir.prunable_runs(tmp_path, 30, protect=set(), keep_bytes=1) == ids[:4]
    kept_old = reportsdir.prunable_runs(tmp_path, 30, protect={ids[0]}, keep_bytes=int(3.5 * size))
    assert kept_old == ids[1:3]  # the protected oldest run takes one of the three places
    assert reportsdir.prunable_runs(tmp_path, 2, protect=set(), keep_bytes=10 * size) == ids[:3]


def test_retention_never_touches_what_llava_audit_did_not_publish(tmp_path: Path) -> None:
    ids = _publish_days(tmp_path, range(1, 4))
    (tmp_path / "README.md").write_text("ours")
    (tmp_path / "00-notes").mkdir()  # sorts before every run id: would be "oldest"
    (tmp_path / "00-notes" / "report.json").write_text('{"run_id": "someone-else"}')
    (tmp_path / "00-broken").mkdir()
    (tmp_path / "00-broken" / "report.json").write_text("not json")
    (tmp_path / "00-link").symlink_to(tmp_path / ids[0])
    (tmp_path / ".staging-x").mkdir()  # a run still being written
    doomed = reportsdir.prunable_runs(tmp_path, 1, protect=set())
    assert doomed == ids[:2]
    reportsdir.remove_runs(tmp_path, doomed)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".staging-x", "00-broken", "00-link", "00-notes", "README.md", ids[2]]
    )
    assert (tmp_path / "00-notes" / "report.json").is_file()


def test_retention_zero_keeps_every_run_and_protected_runs_stay(tmp_path: Path) -> None:
    ids = _publish_days(tmp_path, range(1, 5))
    assert reportsdir.prunable_runs(tmp_path, 0, protect=set()) == []
    assert reportsdir.prunable_runs(tmp_path, 1, protect={ids[0]}) == ids[1:3]


def test_a_failed_delete_is_logged_and_retried_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ids = _publish_days(tmp_path, range(1, 4))
    assert reportsdir.remove_runs(tmp_path, ["20261101T000000Z-gone", ids[0]]) == [ids[0]]
    assert "could not prune" in caplog.text  # a missing folder is reported, not raised
    leftover = tmp_path / f".pruning-{ids[1]}"
    (tmp_path / ids[1]).rename(leftover)  # as if a delete had been interrupted
    real_rmtree = reportsdir.shutil.rmtree
    monkeypatch.setattr(reportsdir.shutil, "rmtree", lambda *a, **k: None)
    reportsdir.remove_runs(tmp_path, [])
    assert leftover.is_dir() and "could not delete" in caplog.text
    monkeypatch.setattr(reportsdir.shutil, "rmtree", real_rmtree)
    reportsdir.remove_runs(tmp_path, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == [ids[2]]


def test_retention_orders_runs_of_the_same_second_by_start_time(tmp_path: Path) -> None:
    """Run ids share a second-granular prefix; the random suffix must not decide which goes."""
    second = datetime(2026, 11, 26, 2, 30, 0, tzinfo=UTC)
    earlier = msgspec.structs.replace(sample_report("20261126T023000Z-ffff"), started=second)
    later = msgspec.structs.replace(
        sample_report("20261126T023000Z-0000"), started=second.replace(microsecond=500)
    )
    pub.publish(earlier, tmp_path)
    pub.publish(later, tmp_path)
    assert reportsdir.prunable_runs(tmp_path, 1, protect=set()) == [earlier.run_id]
