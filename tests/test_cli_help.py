"""The CLI explains itself: a mistyped command gets "did you mean", every command and subcommand
has a description and an example, metavars are consistent, no internal spec references."""

from __future__ import annotations

import pytest

from audit.cli import main


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["chek", "x.json"], "unknown command 'chek'; did you mean 'check'?"),
        (["takedown", "lst"], "unknown takedown command 'lst'; did you mean 'list'?"),
        (["frobnicate"], "unknown command 'frobnicate' (commands: check, images"),
    ],
)
def test_a_mistyped_command_gets_did_you_mean(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"llava-audit: {said}")
    assert len(captured.err.splitlines()) == 1
