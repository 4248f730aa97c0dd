"""Unit tests of audit.toml parsing (audit/config.py): what a user with a wrong config is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import config
from audit.errors import ConfigError


def _load(tmp_path: Path, text: str | bytes) -> config.Config:
    path = tmp_path / "audit.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return config.load(path)


def test_defaults_need_only_a_dataset(tmp_path: Path) -> None:
    loaded = _load(tmp_path, '[[datasets]]\nname = "lcs"\nchat = "chat.json"\n')
    assert loaded.base_dir == str(tmp_path)
    assert loaded.dataset("lcs").kind == "auto"
    assert loaded.limits.bytes("dataset_mb") == 8192 * 1024 * 1024
    assert loaded.urls.per_host >= 1
    assert loaded.gate.max_errors == 0


def test_an_unknown_dataset_name_lists_the_configured_ones(tmp_path: Path) -> None:
    loaded = _load(tmp_path, '[[datasets]]\nname = "a"\n[[datasets]]\nname = "b"\n')
    with pytest.raises(ConfigError, match=r"unknown dataset 'c' \(configured: a, b\)"):
        loaded.dataset("c")
    with pytest.raises(ConfigError, match=r"configured: none"):
        _load(tmp_path, "").dataset("c")


def test_paths_resolve_against_the_config_folder_and_home(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "")
    assert loaded.path("data/x.json") == tmp_path / "data" / "x.json"
    assert loaded.path("/srv/x.json") == Path("/srv/x.json")
    assert loaded.path("~/x.json") == Path.home() / "x.json"


def test_repeated_dataset_names_are_refused(tmp_path: Path) -> None:
    text = '[[datasets]]\nname = "a"\n[[datasets]]\nname = "b"\n[[datasets]]\nname = "a"\n'
    with pytest.raises(ConfigError, match=r"dataset names must be unique, repeated: a$"):
        _load(tmp_path, text)


def test_base_dir_comes_from_the_file_location_not_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'base_dir' is set from the file's location"):
        _load(tmp_path, 'base_dir = "/elsewhere"\n')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"[[datasets]\n", r"audit\.toml: invalid TOML: "),
        (b'[[datasets]]\nname = "\xff"\n', r"audit\.toml: not UTF-8 at byte 21"),
        (b"[urls]\nper_host = 0\n", r"\[urls\] per_host must be >= 1"),
        (b'[[datasets]]\nname = "a"\nkind = "lcs"\n', r"kind\b.*\blcs\b"),
        (b"[limits]\ndataset_mb = 0\n", r"dataset_mb"),
    ],
)
def test_every_bad_config_is_one_config_error_naming_the_file(
    tmp_path: Path, text: bytes, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        _load(tmp_path, text)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == 2


def test_a_missing_config_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"llava-audit init"):
        config.load(tmp_path / "audit.toml")


def test_a_folder_in_the_config_place_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "audit.toml").mkdir()
    with pytest.raises(ConfigError) as raised:
        config.load(tmp_path / "audit.toml")
    assert raised.value.exit_code == 2
    assert "audit.toml" in str(raised.value)


def test_url_settings_outside_their_range_name_the_range() -> None:
    assert config.url_settings_problem(config.UrlConfig()) is None
    nan = config.UrlConfig(timeout_seconds=float("nan"))
    assert "timeout_seconds must be > 0" in (config.url_settings_problem(nan) or "")
    agent = config.UrlConfig(user_agent="x\r\nX-Injected: 1")
    assert "control characters" in (config.url_settings_problem(agent) or "")
