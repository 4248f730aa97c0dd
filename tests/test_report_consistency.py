"""One truth in every view: the demo's figures agree across the console, the page, report.json,
the gate and the expectation suite, and the run's outcome is told the same way everywhere."""

from __future__ import annotations

import io
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from audit.cli import main
from audit.config import load as load_config
from audit.output.model import read_report
from audit.output.render.report_console import render_report
from audit.store import Store
from audit.store import runs as history


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """The demo run through the CLI: (its folder, what the console printed, the exit code)."""
    folder = tmp_path_factory.mktemp("demo")
    capture = pytest.MonkeyPatch()
    out = io.StringIO()
    capture.setattr(sys, "stdout", out)
    try:
        code = main(["demo", "--dir", str(folder)])
    finally:
        capture.undo()
    return folder, out.getvalue(), code


def _run_dir(folder: Path) -> Path:
    (run,) = [p for p in (folder / "reports").iterdir() if p.is_dir() and p.name[0].isdigit()]
    return run


def _console_figures(text: str) -> list[tuple[int, int]]:
    """(missing, broken) per dataset row of the console's stage table, in dataset order."""
    table = text.split("Findings by code")[0]
    return [(int(m), int(b)) for m, b in re.findall(r"(\d+) missing.*?\n.*?(\d+) broken", table)]


def _page_figures(page: str) -> list[tuple[int, int, int]]:
    rows = re.findall(r'<tr class="files">(.*?)</tr>', page, re.S)
    cells = [
        [re.search(rf'class="num {c}">([\d,]+)', row) for c in ("missing", "broken", "unavailable")]
        for row in rows
    ]
    return [tuple(int(m.group(1).replace(",", "")) for m in row if m) for row in cells]  # type: ignore[misc]


def _console_severity_rows(text: str) -> Counter[str]:
    """Findings per severity as the console's "Findings by code" table lists them."""
    counts: Counter[str] = Counter()
    for severity, n in re.findall(r"│ (error|warning)\s+│ \S+\s+│\s+([\d,]+) │", text):
        counts[severity] += int(n.replace(",", ""))
    return counts


def _page_severity_groups(page: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    pattern = r'<summary><span class="badge (error|warning|info)">.*?· ([\d,]+) findings?</span>'
    for severity, n in re.findall(pattern, page, re.S):
        counts[severity] += int(n.replace(",", ""))
    return counts


def test_missing_broken_unavailable_errors_and_warnings_agree_in_every_view(
    demo: tuple[Path, str, int], tmp_path: Path
) -> None:
    folder, console, _ = demo
    run = _run_dir(folder)
    report = read_report(run)
    data = json.loads((run / "report.json").read_text())
    page = (run / "index.html").read_text()
    gate_json = tmp_path / "gate.json"
    assert main(["gate", "--report", str(run), "--json", str(gate_json)]) == 1
    gate = json.loads(gate_json.read_text())

    from_json = [
        (d["images"]["missing"], d["images"]["broken"], d["images"]["unavailable"])
        for d in data["datasets"]
    ]
    # the demo plants missing and broken images in every dataset, and lcs has both kinds
    assert from_json == [(1, 2, 3), (2, 1, 3), (1, 0, 1)]
    assert [(m, b) for m, b, _ in from_json] == _console_figures(console)
    assert from_json == _page_figures(page)
    rules = {(r["dataset"], r["rule"]): r for r in gate["rules"]}
    for ds, (missing, broken, unavailable) in zip(report.datasets, from_json, strict=True):
        rule = rules[(ds.name, "unavailable_rate")]
        assert f"{missing} missing + {broken} broken of {ds.images.referenced}" in rule["reason"]
        assert rule["count"] == pytest.approx(unavailable / ds.images.referenced, abs=1e-6)
        # the expectation suite's image_available counts the same records
        rules_on = [r for r in ds.stage("expectations").rules if r.column == "image_available"]
        assert rules_on and all(r.unexpected_count == unavailable for r in rules_on)

    totals = data["totals"]
    errors, warnings = totals["errors"], totals["warnings"]
    assert f"{errors:,} errors, {warnings:,} warnings" in console
    assert f'<div class="n">{errors:,}</div><div class="l">errors</div>' in page
    assert f'<div class="n">{warnings:,}</div><div class="l">warnings</div>' in page
    # the gate counts licence and takedown errors under their own rules, each error once
    gate_errors = sum(
        r["count"] for r in gate["rules"] if r["rule"] in ("errors", "license", "takedown")
    )
    assert gate_errors == errors
    # every code's findings under their own severity, in both listings
    assert _console_severity_rows(console) == Counter(error=errors, warning=warnings)
    assert _page_severity_groups(page) == Counter(
        error=errors, warning=warnings, info=data["totals"]["infos"]
    )


def test_stage_badges_tell_the_outcome_never_ok_on_errors(demo: tuple[Path, str, int]) -> None:
    folder, _, _ = demo
    run = _run_dir(folder)
    report = read_report(run)
    page = (run / "index.html").read_text()
    badges = re.findall(r'<span class="badge (\w+)" title="[^"]*">(\w+)</span>', page)
    shown = [label for _, label in badges]
    expected = [r.outcome for ds in report.datasets for r in ds.stages.values()]
    assert shown == expected and "errors" in shown and "warnings" in shown
    assert all(cls != "ok" for cls, label in badges if label != "clean")
    assert ">ok<" not in page.split("<h2>Missing and broken images</h2>")[0]
    wide = Console(width=300, record=True, file=io.StringIO())
    render_report(report, wide)
    line = next(x for x in wide.export_text().splitlines() if " lcs " in x)
    images = report.datasets[0].stages["images"]
    n = sum(f.severity == "error" for f in images.result.findings)  # type: ignore[union-attr]
    assert f"images {n} errors" in line and "urls " in line and " ok" not in line


def test_demo_exits_0_and_says_why_while_run_exits_1_on_the_same_findings(
    demo: tuple[Path, str, int],
) -> None:
    folder, console, code = demo
    assert code == 0
    assert "are the planted defects" in console and "exits 1 on them" in console
    assert main(["run", "--config", str(folder / "audit.toml")]) == 1


def test_the_run_index_shows_each_runs_result(demo: tuple[Path, str, int]) -> None:
    """The demo found errors; a gate on the next run fails it; a killed run is interrupted."""
    folder, _, _ = demo
    assert main(["gate", "--config", str(folder / "audit.toml")]) == 1
    config = load_config(folder / "audit.toml")
    with Store(config.path(config.state)) as store:
        history.start_run(store, "20991231T000000Z-dead", history.list_runs(store)[-1].started)
        history.fail_interrupted(store, now=history.list_runs(store)[-1].started)
        results = {r.run_id: r.result for r in history.list_runs(store)}
    assert results.pop("20991231T000000Z-dead") == "interrupted"
    assert "gate failed" in results.values() and "errors" in results.values()
    assert "succeeded" not in results.values()
    main(["run", "--config", str(folder / "audit.toml")])  # rewrites the index from the history
    index = (folder / "reports" / "index.html").read_text()
    for word in ("gate failed", "errors", "interrupted"):
        assert f">{word}</span>" in index
