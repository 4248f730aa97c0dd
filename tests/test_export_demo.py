"""`llava-audit export` on the demo: every record accounted for once, nothing exported that the
run found an error on, and the re-fetch list exactly the broken images with a live source URL."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import polars as pl
import pytest

from audit import config as config_mod
from audit.cli import main
from audit.demo import run_demo
from audit.export.exporter import Manifest, export
from audit.export.fingerprints import stale_because
from audit.export.layout import read_raw
from audit.findings import Finding, Severity
from audit.output.model import AuditReport, read_report

BROKEN = {"image.missing", "image.empty", "image.corrupt", "image.truncated", "image.unreadable"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, config_mod.Config, AuditReport]:
    folder = tmp_path_factory.mktemp("export") / "demo"
    _, published = run_demo(folder)
    return folder, config_mod.load(folder / "audit.toml"), read_report(published)


@pytest.fixture(scope="module")
def exported(demo: tuple[Path, config_mod.Config, AuditReport]) -> tuple[Path, Manifest]:
    folder, config, _ = demo
    out = folder.parent / "trainset"
    manifest = export(config, out, purpose="research", include_conditional=True)
    return out, manifest


def _inputs(config: config_mod.Config) -> list[tuple[str, str, Path]]:
    return [
        (ds.name, p, config.path(p)) for ds in config.datasets for p in (ds.chat, ds.metadata) if p
    ]


def _dropped(out: Path, dataset: str) -> list[dict[str, object]]:
    lines = (out / dataset / "dropped.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_the_export_reuses_the_demo_run_and_writes_every_file(
    demo: tuple[Path, config_mod.Config, AuditReport], exported: tuple[Path, Manifest]
) -> None:
    _, _, report = demo
    out, manifest = exported
    assert manifest.reused_run and manifest.run_id == report.run_id
    written = json.loads((out / "manifest.json").read_text())
    assert written["run_id"] == report.run_id and written["config"]["purpose"] == "research"
    assert set(written["inputs"]) == {p for _, p, _ in _inputs(demo[1])}
    for ds in ("lcs", "cc3m", "instruct"):
        for name in ("dropped.jsonl", "refetch.parquet", "LICENSES.md"):
            assert (out / ds / name).is_file(), (ds, name)
    assert sum(written["reasons"].values()) >= sum(d["dropped"] for d in written["datasets"])


def test_exported_and_dropped_records_account_for_every_input_record_once(
    demo: tuple[Path, config_mod.Config, AuditReport], exported: tuple[Path, Manifest]
) -> None:
    _, config, _ = demo
    out, _ = exported
    for dataset, configured, path in _inputs(config):
        original = read_raw(path)
        dropped = [d["index"] for d in _dropped(out, dataset) if d["file"] == configured]
        assert len(dropped) == len(set(dropped)), configured
        kept = [i for i in range(len(original.elements)) if i not in set(dropped)]
        exported_file = read_raw(out / dataset / path.name)
        # the kept records, byte for byte and in order: nothing lost, nothing twice
        assert [bytes(e) for e in exported_file.elements] == [
            bytes(original.elements[i]) for i in kept
        ]
        assert len(kept) + len(dropped) == len(original.elements)
    assert any(read_raw(out / "instruct" / "llava_instruct_150k.json").elements)


def test_no_exported_record_has_an_error_finding_in_the_run(
    demo: tuple[Path, config_mod.Config, AuditReport], exported: tuple[Path, Manifest]
) -> None:
    _, config, report = demo
    out, _ = exported
    errors = {(f.file, f.index) for f in report.findings() if f.severity == Severity.ERROR}
    assert errors
    for dataset, configured, _path in _inputs(config):
        dropped = {d["index"] for d in _dropped(out, dataset) if d["file"] == configured}
        total = len(read_raw(config.path(configured)).elements)
        kept = set(range(total)) - dropped
        assert not {(configured, i) for i in kept} & errors, configured


def _live_broken(report: AuditReport, config: config_mod.Config, dataset: str) -> set[str]:
    """Worked out independently: broken image (a finding) + a URL the probe found fine."""
    ds = config.dataset(dataset)
    found: list[Finding] = list(next(d for d in report.datasets if d.name == dataset).findings())
    assert ds.chat is not None
    broken = {(f.index, f.record_id) for f in found if f.code in BROKEN and f.file == ds.chat}
    url_failed = {(f.file, f.index) for f in found if f.code.startswith("url.")}
    live: set[str] = set()
    if ds.metadata:
        meta = json.loads(config.path(ds.metadata).read_text())
        ok = {
            str(r["id"])
            for i, r in enumerate(meta)
            if r.get("url") and (ds.metadata, i) not in url_failed
        }
        live = {rid for _, rid in broken if rid in ok}
    else:  # COCO join: URL findings name the chat file
        live = {rid for i, rid in broken if (ds.chat, i) not in url_failed and rid}
    return live


@pytest.mark.parametrize("dataset", ["lcs", "cc3m", "instruct"])
def test_the_refetch_list_is_the_broken_images_with_a_live_url(
    demo: tuple[Path, config_mod.Config, AuditReport],
    exported: tuple[Path, Manifest],
    dataset: str,
) -> None:
    _, config, report = demo
    out, manifest = exported
    frame = pl.read_parquet(out / dataset / "refetch.parquet")
    assert frame.columns == ["url", "caption", "key", "image"]
    assert set(frame["key"].to_list()) == _live_broken(report, config, dataset)
    counts = next(d for d in manifest.datasets if d.name == dataset)
    recovery = next(d for d in report.datasets if d.name == dataset).recovery
    assert recovery is not None  # the report shows the same counts
    assert (recovery.recoverable, recovery.gone) == (counts.refetch, counts.gone)
    assert frame.height == counts.refetch


def test_the_report_counts_every_broken_demo_image(
    demo: tuple[Path, config_mod.Config, AuditReport],
) -> None:
    by_name = {d.name: d.recovery for d in demo[2].datasets}
    lcs, cc3m = by_name["lcs"], by_name["cc3m"]
    assert lcs is not None and lcs.broken == 3  # missing, empty, truncated
    assert cc3m is not None and cc3m.broken == 3  # zip member missing, not an image, path out
    for d in demo[2].datasets:  # one definition: the report's unavailable images
        assert d.recovery is None or d.images is None or d.recovery.broken == d.images.unavailable
    assert cc3m.gone >= 1  # record 12: its source URL answers 404


def test_conditional_records_stay_out_unless_asked_for(
    demo: tuple[Path, config_mod.Config, AuditReport],
) -> None:
    _, config, _ = demo
    manifest = export(config, None, purpose="research")  # dry run: nothing written
    cc3m = next(d for d in manifest.datasets if d.name == "cc3m")
    with_conditional = export(config, None, purpose="research", include_conditional=True)
    assert cc3m.kept == 0 and manifest.reasons.get("license:conditional")
    assert not with_conditional.reasons.get("license:conditional")


def test_a_changed_input_makes_the_run_stale(
    demo: tuple[Path, config_mod.Config, AuditReport],
) -> None:
    _, config, report = demo
    assert stale_because(report, config) is None
    chat = config.datasets[0].chat or ""
    recorded = report.inputs[chat]
    older = msgspec.structs.replace(recorded, mtime_ns=recorded.mtime_ns - 1)
    edited = msgspec.structs.replace(report, inputs={**report.inputs, chat: older})
    assert stale_because(edited, config) == f"{chat} changed since the last run"
    other = msgspec.structs.replace(report, settings_digest="0" * 64)
    assert stale_because(other, config) == "the settings changed since the last run"


def test_cli_dry_run_prints_reasons_and_writes_nothing(
    demo: tuple[Path, config_mod.Config, AuditReport],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _, _ = demo
    code = main(["export", "--config", str(folder / "audit.toml"), "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and "reusing run" in printed and "license:" in printed
    assert not (folder / "manifest.json").exists()


def test_cli_refuses_a_missing_out_and_an_out_that_overwrites_an_input(
    demo: tuple[Path, config_mod.Config, AuditReport],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    folder, config, _ = demo
    assert main(["export", "--config", str(folder / "audit.toml")]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    # a dataset named like its own folder: --out <demo folder's parent> would write over chat.json
    lcs = config.datasets[0]
    assert lcs.chat is not None
    target = config.path(lcs.chat).parent
    link = tmp_path / "lcs"
    link.symlink_to(target)
    assert main(["export", "--config", str(folder / "audit.toml"), "--out", str(tmp_path)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
