"""A config value outside its choices, or an unknown key, is one line that lists what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import config as config_mod
from audit.errors import ConfigError


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        (
            '[images]\nlevel = "deep"\n',
            "[images] level 'deep' is not one of: decode, exists, header",
        ),
        (
            '[[datasets]]\nname = "a"\n[[datasets]]\nname = "b"\nkind = "instrct"\n',
            "[[datasets]] #2 kind 'instrct' is not one of: cc3m-chat, cc3m-metadata, generic, "
            "instruct, lcs-chat, lcs-metadata, mix, auto",
        ),
        ('[use]\npurpose = "fun"\n', "[use] purpose 'fun' is not one of: commercial, research"),
        (
            '[use]\naction = ["train", "sell"]\n',
            "[use] action 'sell' is not one of: redistribute-annotations, redistribute-images, train",
        ),
        ('[use]\naction = "sell"\n', "[use] action 'sell' is not one of:"),
        ('[gate]\nfail_on = "x"\n', "[gate] has no key 'fail_on' (keys: max_errors,"),
        ("bogus = 1\n", "the top level has no key 'bogus' (keys: datasets, use,"),
    ],
)
def test_the_message_lists_the_valid_choices(tmp_path: Path, toml: str, said: str) -> None:
    path = tmp_path / "audit.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config_mod.load(path)
    assert caught.value.message.startswith(f"{path}: {said}")
    assert caught.value.exit_code == 2
    assert "base_dir" not in caught.value.message  # set by the loader, not a key to write
