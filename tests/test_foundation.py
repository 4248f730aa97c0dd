"""Findings catalogue, config parsing and CLI basics."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import config, findings
from audit.cli import main
from audit.errors import ConfigError


def test_every_code_has_a_title_and_an_explanation() -> None:
    for code, entry in findings.CATALOGUE.items():
        assert code == entry.code
        assert entry.title and len(entry.explanation) > 30, code
        assert code.count(".") >= 1 and code == code.lower(), code


def test_findings_round_trip_as_jsonl() -> None:
    f = findings.make(
        "turn.role", "bad role 'Human'", dataset="d", file="f.json", index=3, record_id=7
    )
    data = findings.to_jsonl([f])
    assert data.startswith(b'{"dataset":"d","file":"f.json","index":3,"record_id":"7",')
    assert findings.from_jsonl(data) == [f]


def test_config_rejects_unknown_keys_with_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[[datasets]]\nname = "x"\nchatt = "a.json"\n')
    with pytest.raises(ConfigError, match=r"chatt"):
        config.load(cfg)


def test_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[[datasets]]\nname = "x"\nchat = "data/chat.json"\n')
    loaded = config.load(cfg)
    assert loaded.path(loaded.dataset("x").chat or "") == tmp_path / "data" / "chat.json"


def test_cli_without_a_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "llava-audit" in capsys.readouterr().out
