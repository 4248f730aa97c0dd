"""The CI gate: thresholds, baselines, JUnit XML and JSON, and the command's exit codes."""

from __future__ import annotations

import gzip
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lcs_records import lcs_records

from audit import findings
from audit.cli import main
from audit.config import GateConfig
from audit.errors import ConfigError
from audit.findings import Finding
from audit.gate import GateResult, check_config, evaluate, new_findings
from audit.output import model as rpt
from audit.output import publish as pub
from audit.output.baseline import load_baseline
from audit.output.render.junit import to_json, to_junit_xml
from audit.results import ImagesResult, StructureResult


def finding(code: str, index: int | None = 0, record_id: str | None = "r0", **kw: str) -> Finding:
    return findings.make(
        code,
        kw.get("message", f"{code} at {index}"),
        dataset=kw.get("dataset", "lcs"),
        file=kw.get("file", "/data/lcs.json"),
        index=index,
        record_id=record_id,
    )


def dataset(
    name: str = "lcs",
    found: list[Finding] | None = None,
    missing_rate: float | None = 0.0,
    failed_stage: str | None = None,
    broken_rate: float = 0.0,
) -> rpt.DatasetReport:
    """A dataset of 100 image records, ``missing_rate`` of them missing and ``broken_rate``
    broken (None: images not probed)."""
    structure = StructureResult(findings=list(found or []))
    stages = {"structure": rpt.StageRun(status="ok", result=structure)}
    if failed_stage:
        stages[failed_stage] = rpt.StageRun(status="failed", note="image root not found")
    images = None
    if missing_rate is not None:
        missing, broken = round(missing_rate * 100), round(broken_rate * 100)
        status = {"ok": 100 - missing - broken, "missing": missing, "truncated": broken}
        images = ImagesResult(referenced=100, status=status).figures
    return rpt.DatasetReport(name=name, kind="lcs-chat", records=10, images=images, stages=stages)


def report(*datasets: rpt.DatasetReport, status: rpt.RunStatus = "succeeded") -> rpt.AuditReport:
    started = datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    out = rpt.AuditReport(
        run_id=rpt.new_run_id(started), started=started, status=status, datasets=list(datasets)
    )
    out.totals = rpt.compute_totals(out.datasets)
    return out


def failed_rules(result: GateResult) -> list[tuple[str | None, str]]:
    return [(r.dataset, r.rule) for r in result.failures]


def test_clean_report_passes_every_rule_of_every_dataset() -> None:
    result = evaluate(report(dataset("a"), dataset("b")), GateConfig())
    assert result.passed
    assert [(r.dataset, r.rule) for r in result.rules] == [(None, "run")] + [
        (ds, rule)
        for ds in ("a", "b")
        for rule in ("stages", "errors", "unavailable_rate", "license", "takedown")
    ]


def test_error_findings_fail_beyond_max_errors_and_per_code_limits() -> None:
    errors = [finding("turn.role", i, f"r{i}") for i in range(3)] + [finding("image.path", 9, "x")]
    warnings = [finding("turn.leading_gpt", i, f"r{i}") for i in range(50)]
    rep = report(dataset(found=errors + warnings))
    assert failed_rules(evaluate(rep, GateConfig())) == [("lcs", "errors")]
    assert evaluate(rep, GateConfig(max_errors=4)).passed
    per_code = GateConfig(max_errors=1, max_errors_per_code={"turn.role": 3})
    assert evaluate(rep, per_code).passed
    tight = evaluate(rep, GateConfig(max_errors=1, max_errors_per_code={"turn.role": 2}))
    (rule,) = tight.failures
    assert "turn.role: 3 > 2" in rule.reason and "other codes" not in rule.reason
    assert all("turn.role" in example for example in rule.examples)


def test_unavailable_rate_over_the_threshold_fails_and_unprobed_passes() -> None:
    config = GateConfig(max_unavailable_rate=0.15)
    assert failed_rules(evaluate(report(dataset(missing_rate=0.3)), config)) == [
        ("lcs", "unavailable_rate")
    ]
    assert evaluate(report(dataset(missing_rate=0.15)), config).passed
    unprobed = evaluate(report(dataset(missing_rate=None)), config)
    assert unprobed.passed and "not probed" in unprobed.rules[3].reason


def test_the_gate_counts_broken_images_as_unavailable_as_the_report_does() -> None:
    """10% missing + 10% broken is 20% unavailable: over a 15% limit, though neither alone is."""
    config = GateConfig(max_unavailable_rate=0.15)
    result = evaluate(report(dataset(missing_rate=0.1, broken_rate=0.1)), config)
    (rule,) = result.failures
    assert rule.rule == "unavailable_rate" and rule.count == pytest.approx(0.2)
    assert "10 missing + 10 broken of 100" in rule.reason


def test_the_old_max_missing_rate_key_still_sets_the_limit_and_both_together_are_refused() -> None:
    old = GateConfig(max_missing_rate=0.15)
    assert failed_rules(evaluate(report(dataset(missing_rate=0.1, broken_rate=0.1)), old))
    with pytest.raises(ConfigError, match="both max_unavailable_rate and max_missing_rate"):
        check_config(GateConfig(max_missing_rate=0.1, max_unavailable_rate=0.1))


def test_forbidden_licence_and_takedown_have_their_own_rules() -> None:
    rep = report(dataset(found=[finding("license.forbidden"), finding("takedown.present", 4, "t")]))
    result = evaluate(rep, GateConfig(max_errors=100))
    assert failed_rules(result) == [("lcs", "license"), ("lcs", "takedown")]
    relaxed = GateConfig(fail_on_forbidden=False, fail_on_takedown=False)
    assert evaluate(rep, relaxed).passed, "own rules: not counted again under errors"


def test_baseline_lets_only_new_findings_fail_but_never_a_takedown() -> None:
    old = [finding("turn.role", 3, "a"), finding("turn.role", 7, "b"), finding("takedown.present")]
    shifted = [
        finding("turn.role", 4, "a"),
        finding("turn.role", 8, "b"),
        finding("takedown.present"),
    ]
    rep = report(dataset(found=shifted))
    result = evaluate(rep, GateConfig(), baseline=old, baseline_name="last.jsonl")
    assert failed_rules(result) == [("lcs", "takedown")], "records moved, ids kept: not new"
    rep = report(dataset(found=[*shifted[:2], finding("turn.role", 9, "b")]))
    result = evaluate(rep, GateConfig(), baseline=old)
    (rule,) = result.failures
    assert rule.rule == "errors" and rule.count == 1 and "1 new error" in rule.reason
    assert "id b" in rule.examples[0]


def test_file_level_findings_match_on_the_rule_not_on_the_counts() -> None:
    before = finding("expectation.failed", None, None, message="regex on id failed; 2 of 9 rows")
    after = finding("expectation.failed", None, None, message="regex on id failed; 3 of 9 rows")
    other = finding("expectation.failed", None, None, message="unique on id failed; 1 of 9 rows")
    assert new_findings([after, other], [before]) == [other]


def test_a_failed_stage_or_run_fails_the_gate() -> None:
    result = evaluate(report(dataset(failed_stage="images")), GateConfig())
    (rule,) = result.failures
    assert rule.rule == "stages" and "images: image root not found" in rule.reason
    assert failed_rules(evaluate(report(dataset(), status="failed"), GateConfig())) == [
        (None, "run")
    ]
    empty = evaluate(report(), GateConfig())
    assert failed_rules(empty) == [(None, "run")] and "no dataset" in empty.rules[0].reason


def test_junit_xml_parses_and_carries_each_failure_with_its_reason() -> None:
    nasty = "<script>alert(1)</script>\x01"
    bad = [finding("turn.role", i, nasty, message=nasty) for i in range(2)]
    rep = report(dataset("clean"), dataset("bad", found=bad, missing_rate=0.5))
    xml = to_junit_xml(evaluate(rep, GateConfig()))
    root = ET.fromstring(xml)
    assert root.tag == "testsuites" and root.get("tests") == "11" and root.get("failures") == "2"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"(run)", "clean", "bad"}
    assert suites["clean"].get("failures") == "0" and len(suites["clean"].findall("testcase")) == 5
    failures = {c.get("name"): c.find("failure") for c in suites["bad"].iter("testcase")}
    assert failures["unavailable_rate"] is not None and "50.0%" in failures["unavailable_rate"].get(
        "message", ""
    )
    errors = failures["errors"]
    assert errors is not None and "<script>alert(1)</script>" in (errors.text or "")
    assert failures["license"] is None


def test_json_result_round_trips_the_verdict() -> None:
    rep = report(dataset(found=[finding("turn.role")]))
    data = json.loads(to_json(evaluate(rep, GateConfig())))
    assert data["passed"] is False and data["run_id"] == rep.run_id
    assert [r["rule"] for r in data["rules"] if not r["passed"]] == ["errors"]


def test_findings_are_published_compressed_and_older_plain_runs_still_read(tmp_path: Path) -> None:
    """A run folder holds findings.jsonl.gz; a run published before keeps its findings.jsonl,
    and the baseline, --report and read_report take both (a --findings file gzipped too)."""
    rep = report(dataset(found=[finding("turn.role"), finding("turn.order", 2, "r2")]))
    published = pub.publish(rep, tmp_path / "reports")
    assert not (published / "findings.jsonl").exists()
    plain = gzip.decompress((published / "findings.jsonl.gz").read_bytes())
    assert plain == findings.to_jsonl(rep.findings())
    old = tmp_path / "old-run"
    old.mkdir()
    (old / rpt.REPORT_FILE).write_bytes((published / rpt.REPORT_FILE).read_bytes())
    (old / "findings.jsonl").write_bytes(plain)
    gz = tmp_path / "f.jsonl.gz"
    gz.write_bytes(gzip.compress(plain))
    for source in (old, old / rpt.REPORT_FILE, gz):
        assert [f.code for f in load_baseline(source).findings] == ["turn.role", "turn.order"]
    assert len(list(rpt.read_report(old).findings())) == 2
    assert main(["gate", "--report", str(old)]) == 1  # read, and its turn.role errors fail
    broken = tmp_path / "cut.jsonl.gz"
    broken.write_bytes(gzip.compress(plain)[:20])
    with pytest.raises(ConfigError, match="damaged or truncated gzip"):
        load_baseline(broken)


def test_baseline_reads_a_run_folder_its_report_json_or_findings_jsonl(tmp_path: Path) -> None:
    rep = report(dataset(found=[finding("turn.role"), finding("turn.order", 2, "r2")]))
    published = pub.publish(rep, tmp_path / "reports")
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_bytes(findings.to_jsonl(rep.findings()))
    for source in (published, published / rpt.REPORT_FILE, jsonl):
        assert [f.code for f in load_baseline(source).findings] == ["turn.role", "turn.order"]
    with pytest.raises(ConfigError, match="baseline not found"):
        load_baseline(tmp_path / "nope.json")
    lonely = tmp_path / "lonely" / "report.json"
    lonely.parent.mkdir()
    lonely.write_bytes((published / rpt.REPORT_FILE).read_bytes())
    with pytest.raises(ConfigError, match=r"findings\.jsonl\.gz beside it"):
        load_baseline(lonely)


def test_gate_command_on_a_saved_report_writes_junit_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    good = pub.publish(report(dataset()), tmp_path / "reports")
    bad = pub.publish(report(dataset(found=[finding("turn.role")])), tmp_path / "reports")
    assert main(["gate", "--report", str(good)]) == 0
    assert "GATE PASSED" in capsys.readouterr().out
    assert main(["gate", "--report", str(good / rpt.REPORT_FILE)]) == 0
    args = ["gate", "--report", str(bad), "--junit", "g.xml", "--json", "g.json"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "GATE FAILED" in out and "turn.role" in out
    assert ET.parse(tmp_path / "g.xml").getroot().get("failures") == "1"
    assert json.loads((tmp_path / "g.json").read_text())["passed"] is False
    assert main([*args[:3], "--baseline", str(bad)]) == 0, "nothing new since the baseline"
    failed_stage = pub.publish(report(dataset(failed_stage="urls")), tmp_path / "reports")
    assert main(["gate", "--report", str(failed_stage)]) == 3


def test_gate_command_config_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gate", "--config", str(tmp_path / "missing.toml")]) == 2
    bad = tmp_path / "audit.toml"
    bad.write_text("[gate]\nmax_errors = 'many'\n")
    assert main(["gate", "--config", str(bad)]) == 2
    bad.write_text('[gate]\nmax_errors_per_code = {"turn.roles" = 3}\n')
    assert main(["gate", "--config", str(bad)]) == 2
    assert "turn.roles (did you mean turn.role or" in capsys.readouterr().err
    bad.write_text("[gate]\nmax_unavailable_rate = 20\n")
    assert main(["gate", "--config", str(bad)]) == 2
    assert main(["gate", "--report", str(tmp_path / "no-such-run")]) == 2


def test_gate_command_runs_the_audit_when_no_report_is_given(tmp_path: Path) -> None:
    records = lcs_records(6)
    (tmp_path / "lcs.json").write_text(json.dumps(records))
    config = tmp_path / "audit.toml"
    config.write_text(
        'reports_dir = "reports"\nstate = "state/state.sqlite"\n'
        '[[datasets]]\nname = "lcs"\nkind = "lcs-chat"\nchat = "lcs.json"\n'
    )
    out = tmp_path / "gate.json"
    assert main(["gate", "--config", str(config), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["passed"] is True
    assert {r["dataset"] for r in result["rules"]} == {None, "lcs"}
    (run,) = pub.published_runs(tmp_path / "reports")
    assert result["run_id"] == run, "the gate's own audit run was published"
    records[2]["conversations"][0]["from"] = "Human"
    (tmp_path / "lcs.json").write_text(json.dumps(records))
    assert main(["gate", "--config", str(config)]) == 1


def test_gate_that_cannot_run_still_writes_its_junit_and_json(tmp_path: Path) -> None:
    from audit.runlock import RunLock, lock_path_for

    (tmp_path / "lcs.json").write_text("[]")
    config = tmp_path / "audit.toml"
    config.write_text(
        'state = "state/state.sqlite"\n[[datasets]]\nname = "lcs"\nchat = "lcs.json"\n'
    )
    junit, out = tmp_path / "g.xml", tmp_path / "g.json"
    args = ["gate", "--config", str(config), "--junit", str(junit), "--json", str(out)]
    with RunLock(lock_path_for(tmp_path / "state" / "state.sqlite")):
        assert main(args) == 3
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "another audit is running" in failure.get("message", "")
    assert json.loads(out.read_text())["passed"] is False


def test_gate_command_refuses_a_config_without_datasets(tmp_path: Path) -> None:
    config = tmp_path / "audit.toml"
    config.write_text('state = "state/state.sqlite"\n')
    assert main(["gate", "--config", str(config)]) == 2
