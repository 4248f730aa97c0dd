"""Stage-result cache: a re-run on unchanged inputs reuses results; any change runs the stage again."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
from lcs_records import LCS_RECORD

from audit import config as config_mod
from audit import findings, runner, stages, takedown
from audit.models import NoProgress
from audit.results import AnyStageResult, ExpectationsResult, ImagesResult, OptOut, UrlsResult
from audit.runner import run_audit
from audit.store import Store, stagecache

GOOD = LCS_RECORD


def _records() -> list[Any]:
    bad = json.loads(json.dumps(GOOD))
    bad["id"] = "004539376"
    bad["conversations"][0]["from"] = "Human"
    return [GOOD, bad, {"id": "x", "image": 7, "conversations": "none"}]


def _write_config(folder: Path, extra: str = "") -> config_mod.Config:
    if not (folder / "chat.json").exists():
        (folder / "chat.json").write_text(json.dumps(_records()), encoding="utf-8")
    text = """
        [[datasets]]
        name = "lcs"
        kind = "lcs-chat"
        chat = "chat.json"
        """
    (folder / "audit.toml").write_text(textwrap.dedent(text) + extra, encoding="utf-8")
    return config_mod.load(folder / "audit.toml")


def _context(
    config: config_mod.Config, store: Store, results: dict[str, AnyStageResult] | None = None
) -> stages.StageContext:
    """A fresh stage context for the config's first dataset, given earlier stages' results."""
    upstream = stages.Upstream()
    for result in (results or {}).values():
        upstream.record(result)
    return stages.StageContext(
        config=config,
        dataset=config.datasets[0],
        store=store,
        progress=NoProgress(),
        work_dir=Path(config.base_dir) / "work",
        upstream=upstream,
    )


def _stage(config: config_mod.Config, store: Store, name: str, **results: AnyStageResult) -> Any:
    """Run one stage in a fresh context; returns (result, reused from the cache?)."""
    ctx = _context(config, store, results)
    result = stages.STAGE_FUNCTIONS[name](ctx)
    return result, name in ctx.reused


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "state.sqlite") as opened:
        yield opened


@pytest.mark.parametrize("name", ["structure", "license", "takedown"])
def test_an_unchanged_input_reuses_the_result_with_identical_findings(
    tmp_path: Path, store: Store, name: str
) -> None:
    config = _write_config(tmp_path)
    first, reused_first = _stage(config, store, name)
    second, reused_second = _stage(config, store, name)
    assert (reused_first, reused_second) == (False, True)
    assert second.findings == first.findings
    assert second == first
    if name == "structure":
        assert {f.code for f in first.findings} >= {"turn.role"}


def test_a_changed_input_file_misses(tmp_path: Path, store: Store) -> None:
    config = _write_config(tmp_path)
    chat = tmp_path / "chat.json"
    _stage(config, store, "structure")
    chat.write_text(json.dumps([GOOD]), encoding="utf-8")  # other content, other size
    fixed, reused = _stage(config, store, "structure")
    assert not reused
    assert "turn.role" not in {f.code for f in fixed.findings}
    assert _stage(config, store, "structure")[1]
    before = chat.stat()
    os.utime(chat, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000))  # same size, rewritten
    assert not _stage(config, store, "structure")[1]
    # same size, and the old mtime given back after the edit (rsync -t, touch -d): still a miss
    chat.write_text(json.dumps(_records()), encoding="utf-8")
    assert "turn.role" in {f.code for f in _stage(config, store, "structure")[0].findings}
    before = chat.stat()
    chat.write_text(chat.read_text(encoding="utf-8").replace("Human", "human"), "utf-8")
    os.utime(chat, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert chat.stat().st_size == before.st_size
    fixed, reused = _stage(config, store, "structure")
    assert not reused and "turn.role" not in {f.code for f in fixed.findings}


@pytest.mark.parametrize(
    ("stage", "setting"),
    [
        ("structure", "kind"),
        ("license", "[use]\npurpose = 'commercial'\n"),
        ("license", "[license]\nresearch_exception = true\n"),
        ("license", "[use]\nredistribute_images = true\n"),
    ],
)
def test_a_changed_setting_misses(tmp_path: Path, store: Store, stage: str, setting: str) -> None:
    _stage(_write_config(tmp_path), store, stage)
    if setting == "kind":
        text = (tmp_path / "audit.toml").read_text(encoding="utf-8")
        (tmp_path / "audit.toml").write_text(text.replace("lcs-chat", "generic"), "utf-8")
        changed = config_mod.load(tmp_path / "audit.toml")
    else:
        changed = _write_config(tmp_path, setting)
    assert not _stage(changed, store, stage)[1]
    assert _stage(changed, store, stage)[1]


def test_a_changed_policy_file_misses(tmp_path: Path, store: Store) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("# our additions\n", encoding="utf-8")
    config = _write_config(tmp_path, "[license]\npolicy = 'policy.toml'\n")
    assert not _stage(config, store, "license")[1]
    assert _stage(config, store, "license")[1]
    policy.write_text("# our additions, revised\n", encoding="utf-8")
    assert not _stage(config, store, "license")[1]


def test_another_package_version_or_code_misses(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _write_config(tmp_path)
    _stage(config, store, "structure")
    code = stagecache.code_state()
    monkeypatch.setattr(stagecache, "__version__", "99.0")
    assert stagecache.code_state.__wrapped__() != code  # the version is part of the code state
    monkeypatch.setattr(stagecache, "code_state", lambda: "an edited checkout")
    assert not _stage(config, store, "structure")[1]


def test_a_new_takedown_request_misses_and_finds_the_record(tmp_path: Path, store: Store) -> None:
    config = _write_config(tmp_path)
    assert _stage(config, store, "takedown")[0].findings == []
    assert _stage(config, store, "takedown")[1]
    takedown.new_request(
        config,
        store,
        ground="gdpr",
        requester_contact="rights@example.org",
        identifiers=[("record_id", "004539375")],
        received=dt.date(2026, 11, 2),
        datasets=["lcs"],
    )
    result, reused = _stage(config, store, "takedown")
    assert not reused
    assert [(f.code, f.index) for f in result.findings] == [("takedown.pending", 0)]


def test_licence_reuse_restores_the_verdicts_and_follows_url_opt_outs(
    tmp_path: Path, store: Store
) -> None:
    config = _write_config(tmp_path)
    ctx_first = _context(config, store)
    first = stages.license_(ctx_first)
    ctx_second = _context(config, store)
    second = stages.license_(ctx_second)
    assert "license" in ctx_second.reused
    assert second.record_verdicts == first.record_verdicts != {}
    # with a metadata file the licence reads URL opt-outs: a changed URL outcome misses
    (tmp_path / "meta.json").write_text("[]", encoding="utf-8")
    text = (tmp_path / "audit.toml").read_text(encoding="utf-8")
    with_meta = text.replace('chat = "chat.json"', 'chat = "chat.json"\nmetadata = "meta.json"')
    (tmp_path / "audit.toml").write_text(with_meta, encoding="utf-8")
    config = config_mod.load(tmp_path / "audit.toml")
    urls = UrlsResult()
    assert _license_reused(config, store, None) is False  # URL stage failed: never reused
    assert _license_reused(config, store, urls) is False
    assert _license_reused(config, store, urls) is True
    opted_out = findings.make(
        "url.opt_out",
        "http://example.org/a.jpg: X-Robots-Tag noai",
        dataset="lcs",
        file="meta.json",
        index=0,
        record_id="004539375",
    )
    opt_out = OptOut("meta.json", 0, "http://example.org/a.jpg")
    changed = UrlsResult(findings=[opted_out], opt_outs=[opt_out])
    assert _license_reused(config, store, changed) is False


def _license_reused(config: config_mod.Config, store: Store, urls: UrlsResult | None) -> bool:
    results = {"urls": urls} if urls is not None else {}
    return bool(_stage(config, store, "license", **results)[1])


def _stand_in_validation(monkeypatch: pytest.MonkeyPatch, stats: dict[str, Any]) -> list[int]:
    """Replace the GX validation with one returning ``stats``; returns the table sizes it saw."""
    import audit.probes.expectations as expectations

    calls: list[int] = []

    def validate(table: Any, kind: str, **kwargs: Any) -> ExpectationsResult:
        calls.append(len(table))
        return msgspec.convert(stats, ExpectationsResult)

    monkeypatch.setattr(expectations, "run_expectations", validate)
    return calls


def test_expectations_reuse_needs_the_same_table_inputs_and_suites(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without GX: a stand-in validation counts the runs the cache did not answer."""
    calls = _stand_in_validation(monkeypatch, {"data_docs": None, "cached": False})
    config = _write_config(tmp_path)
    missing = findings.make(
        "image.missing",
        "not found",
        dataset="lcs",
        file="chat.json",
        index=0,
        record_id="004539375",
    )
    images = ImagesResult()
    for _ in range(2):
        result, _reused = _stage(config, store, "expectations", images=images)
    assert calls == [3] and result.cached is True
    _stage(config, store, "expectations", images=ImagesResult(findings=[missing]))
    assert calls == [3, 3]
    suites = tmp_path / "expectations"  # the user's own suites replace the shipped ones
    suites.mkdir()
    (suites / "generic.json").write_text('{"expectations": []}', encoding="utf-8")
    _stage(config, store, "expectations", images=images)
    assert len(calls) == 3


def test_second_run_reuses_every_stage_with_identical_findings_and_no_pandas(
    tmp_path: Path,
) -> None:
    """End to end with Great Expectations: the re-run imports neither pandas nor GX."""
    # The code state is computed once per process: an earlier test's audit in this process may
    # have hashed the package before someone saved a file in it, and the new process would miss.
    stagecache.code_state.cache_clear()
    config = _write_config(tmp_path)
    first = run_audit(config)
    script = textwrap.dedent(
        f"""
        import json, sys
        from audit import config
        from audit.runner import run_audit
        from audit.store import stagecache
        report = run_audit(config.load({str(tmp_path / "audit.toml")!r}))
        ds = report.datasets[0]
        print(json.dumps({{
            "heavy": sorted(m for m in ("pandas", "pandera", "great_expectations") if m in sys.modules),
            "notes": {{name: run.note for name, run in ds.stages.items()}},
            "findings": [[f.file, f.index, f.code, f.message] for f in report.findings()],
            "examples": ds.examples,
            "data_docs": report.data_docs,
            "code": stagecache.code_state(),
        }}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    second = json.loads(out.stdout.splitlines()[-1])
    assert second["code"] == stagecache.code_state(), "a file in audit/ changed during the test"
    assert second["heavy"] == []
    reused = {name for name, note in second["notes"].items() if note == runner.REUSED}
    assert reused == {"structure", "license", "takedown", "expectations"}
    assert second["findings"] == [[f.file, f.index, f.code, f.message] for f in first.findings()]
    assert {int(k): v for k, v in second["examples"].items()} == first.datasets[0].examples != {}
    assert second["data_docs"] == first.data_docs is not None


def test_expectations_reuse_needs_the_data_docs_it_was_built_with(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages come from the expectations cache folder: replaced or gone pages mean a miss."""
    calls = _stand_in_validation(monkeypatch, {"data_docs": "x/index.html"})
    config = _write_config(tmp_path)
    entry = tmp_path / "expectations-cache" / "lcs"  # beside the state store
    (entry / "docs").mkdir(parents=True)
    (entry / "docs" / "index.html").write_text("<p>lcs</p>", encoding="utf-8")
    (entry / "key").write_text("run-1", encoding="ascii")
    config = msgspec.structs.replace(config, state=str(tmp_path / "state.sqlite"))
    for _ in range(2):
        result, reused = _stage(config, store, "expectations")
    assert reused and len(calls) == 1
    assert result.data_docs == str(tmp_path / "work" / "data-docs" / "index.html")
    assert (tmp_path / "work" / "data-docs" / "index.html").read_text("utf-8") == "<p>lcs</p>"
    (entry / "key").write_text("run-2", encoding="ascii")  # another table's pages now
    assert not _stage(config, store, "expectations")[1]
    (entry / "docs" / "index.html").unlink()
    (entry / "docs").rmdir()
    assert not _stage(config, store, "expectations")[1]
    assert len(calls) == 3
