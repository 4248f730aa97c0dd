"""The library surface (`from audit import ...`): light to import, complete, and the README's
"Use as a library" example runs as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import audit
import audit.config
import audit.errors
import audit.findings
import audit.runner
import audit.structure

ROOT = Path(__file__).resolve().parents[1]
LCS = ROOT / "tests" / "data" / "blip_laion_cc_sbu_2k_head20.json"
HEAVY = ("polars", "pandas", "pandera", "great_expectations", "PIL", "requests", "jinja2")


def test_import_audit_loads_no_heavy_library() -> None:
    """`import audit` and the foundation names stay fast: no data-frame or validation library."""
    code = (
        "import sys, audit\n"
        "audit.Finding, audit.Severity, audit.Code, audit.AuditError, audit.load_config\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_every_public_name_is_the_object_the_cli_uses() -> None:
    assert audit.load_config is audit.config.load
    assert audit.check_files is audit.structure.check_files
    assert audit.run_audit is audit.runner.run_audit
    assert audit.Finding is audit.findings.Finding
    assert issubclass(audit.ConfigError, audit.AuditError)
    assert audit.ConfigError is audit.errors.ConfigError
    for name in audit.__all__:
        assert getattr(audit, name) is not None, name
        assert name in dir(audit)
    assert sorted(audit.__all__) == audit.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'check_file'"):
        _ = audit.check_file
    with pytest.raises(ImportError):
        from audit import not_a_name  # noqa: F401


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use as a library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the section shows one runnable example"
    return str(blocks[0])


@pytest.fixture
def lcs_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real LCS-558K excerpt as chat.json, record 3's human turn relabelled "user" (a
    turn.role error), and an audit.toml naming it, in the current folder."""
    text = LCS.read_text(encoding="utf-8")
    at = text.index('"from": "human"', text.index('"000010012"'))
    (tmp_path / "chat.json").write_text(
        text[:at] + '"from": "user"' + text[at + len('"from": "human"') :], encoding="utf-8"
    )
    (tmp_path / "audit.toml").write_text(
        '[[datasets]]\nname = "lcs"\nkind = "lcs-chat"\nchat = "chat.json"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_example_runs_on_real_data(
    lcs_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, object] = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "20 records, " in out
    assert "chat.json:3 [000010012] turn.role: turn 0: from 'user'" in out
    assert [f.index for f in namespace["wrong_roles"]] == [3]  # type: ignore[attr-defined]
    run_line = next(line for line in out.splitlines() if line.startswith("run "))
    assert re.search(r": [1-9]\d* errors", run_line), run_line
    assert "lcs structure: ok" in out
    assert "lcs images: skipped" in out  # no image roots configured: said, not silent
    assert (lcs_dataset / "reports" / "index.html").is_file()


def test_the_readme_example_turns_a_bad_config_into_one_line(
    lcs_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (lcs_dataset / "audit.toml").write_text("[[datasets]]\nnmae = 'lcs'\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        exec(compile(_readme_example(), "README.md", "exec"), {})
    message = str(exited.value.code)
    assert message.startswith("llava-audit: audit.toml: ")
    assert "nmae" in message
    assert "\n" not in message
    assert "20 records" in capsys.readouterr().out  # the structure part ran before
