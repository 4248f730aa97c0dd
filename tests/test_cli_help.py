"""The CLI explains itself: a mistyped command gets "did you mean", every command and subcommand
has a description and an example, metavars are consistent, no internal spec references."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from audit.cli import build_parser, main


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


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the CLI with its command path ("" for llava-audit itself)."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        found.append((path, parser))
        commands = getattr(parser, "commands", None)
        for name, sub in (commands.choices if commands is not None else {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(build_parser(), "")
    return found


COMMANDS = _commands()
# an internal spec section (§4.6, §8.6), a spec file, or the structure rules' numbering; a law's
# section (DMCA §512(c)) is fine
INTERNAL = re.compile(r"§\s?\d+(\.\d+)*(?!\d*\()|\bspec/|\bspec §|\brules \d+-\d+")


@pytest.mark.parametrize(
    ("path", "parser"), COMMANDS, ids=[p or "llava-audit" for p, _ in COMMANDS]
)
def test_every_command_has_a_description_and_examples_that_parse(
    path: str, parser: argparse.ArgumentParser
) -> None:
    assert parser.description
    text = parser.format_help()
    assert "example" in (parser.epilog or "")
    examples = [
        line.strip()
        for line in (parser.epilog or "").splitlines()
        if line.strip().startswith("llava-audit")
    ]
    assert examples
    for example in examples:
        for command in example.split("&&"):
            argv = shlex.split(command, comments=True)[1:]
            assert " ".join(argv).startswith(path), example
            build_parser().parse_args(argv)  # SystemExit here: the example is wrong
    assert not INTERNAL.search(text), INTERNAL.search(text)


@pytest.mark.parametrize("generic", ["--config CONFIG", "--state STATE", "WORKERS", "DATASET"])
def test_metavars_are_consistent(generic: str) -> None:
    offenders = [path for path, parser in COMMANDS if generic in parser.format_help()]
    assert offenders == []


def test_a_port_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "99999"]) == 2
    assert "--port must be a number from 0 to 65535" in capsys.readouterr().err


def test_catalogue_texts_shown_in_reports_cite_no_internal_spec() -> None:
    from audit.catalogue import CATALOGUE

    cited = {
        code: INTERNAL.search(f"{info.title} {info.explanation}").group(0)  # type: ignore[union-attr]
        for code, info in CATALOGUE.items()
        if INTERNAL.search(f"{info.title} {info.explanation}")
    }
    assert cited == {}


def test_the_starter_config_cites_no_internal_spec() -> None:
    from audit.cli.service import starter_config

    assert not INTERNAL.search(starter_config())
