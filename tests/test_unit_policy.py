"""Unit tests of the licence policy's cross-reference checks (audit/licensing/policy.py): a user
policy that names something undefined is refused with every problem's key path."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from audit.errors import ConfigError
from audit.licensing.policy import load_policy, merge, packaged_policy_text, parse


def _packaged() -> dict[str, Any]:
    return tomllib.loads(packaged_policy_text())


def _problems(override: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        parse(merge(_packaged(), override), "my-policy.toml")
    assert raised.value.exit_code == 2
    return str(raised.value)


def test_merge_replaces_lists_and_scalars_and_merges_tables() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}  # the packaged data is not changed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"version": 2}, "unsupported policy version 2 (expected 1)"),
        ({"coco": {"license_ids": {"three": "CC-BY-4.0"}}}, "key 'three' is not a number"),
        ({"lcs": {"fallback": "nowhere"}}, "lcs: unknown source 'nowhere'"),
        (
            {"sources": {"coco": {"components": {"image": {"license": "Nope-1.0"}}}}},
            "sources.coco.components.image: unknown licence 'Nope-1.0'",
        ),
        (
            {"image_origins": {"source": {"license": "Nope-1.0"}}},
            "image_origins.source: unknown licence 'Nope-1.0'",
        ),
    ],
)
def test_a_dangling_reference_names_its_key_path(override: dict[str, Any], message: str) -> None:
    assert message in _problems(override)


def test_removing_a_required_source_or_origin_is_refused() -> None:
    data = _packaged()
    del data["sources"]["sharegpt"]
    del data["image_origins"]["llava-images-zip"]
    with pytest.raises(ConfigError) as raised:
        parse(data, "my-policy.toml")
    assert "sources: missing 'sharegpt'" in str(raised.value)
    assert "image_origins: missing 'llava-images-zip'" in str(raised.value)


def test_many_problems_show_five_and_count_the_rest() -> None:
    ids = {str(n): f"Nope-{n}" for n in range(1, 9)}
    message = _problems({"coco": {"license_ids": ids}})
    assert message.count("unknown licence") == 5
    assert message.endswith("(and 3 more)")
    assert "\n" not in message


def test_a_policy_file_that_is_not_utf8_says_where(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b"version = 1\n# \xff\n")
    with pytest.raises(ConfigError, match=r"p\.toml: licence policy is not UTF-8 at byte 14"):
        load_policy(path)


def test_a_policy_path_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read licence policy") as raised:
        load_policy(tmp_path)
    assert raised.value.exit_code == 2
