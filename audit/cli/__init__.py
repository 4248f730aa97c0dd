"""Command-line entry point: arguments in, one library call, an exit code out.

Command groups live in sibling modules, each with ``register(subparsers)``; handlers return the exit
code. Every :class:`audit.errors.AuditError` becomes one line on stderr and its exit code; no input
can produce a traceback here.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from rich.console import Console

from audit import __version__
from audit.cli._common import error_line
from audit.cli._help import add_examples
from audit.errors import AuditError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; this keeps the message to one clear line and
    remembers the parser's commands, so a mistyped one can get a "did you mean"."""

    commands: argparse._SubParsersAction | None = None

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:
        self.commands = super().add_subparsers(**kwargs)
        return self.commands


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llava-audit",
        description="Validate LLaVA-format training data: structure, images, source URLs, "
        "licences and takedowns. Exit codes: 0 passed, 1 errors found (or gate failed), "
        "2 usage or config error, 3 could not run.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        module.register(sub)
    add_examples(parser)
    return parser


def _command_modules() -> list[ModuleType]:
    """Every sibling module with a ``register`` function, in their ``ORDER`` (the `--help` order)."""
    modules = [
        importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
    ]
    commands = [m for m in modules if hasattr(m, "register")]
    return sorted(commands, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns (and, as a console script, exits with) the DESIGN.md exit code."""
    parser = build_parser()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        _known_commands(parser, sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        err.print(error_line(exc.message))
        return exc.exit_code
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except AuditError as exc:
        err.print(error_line(exc.message))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("llava-audit: interrupted")
        return 130
    except BrokenPipeError:
        return 0


def _known_commands(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """A command or subcommand that does not exist is a usage error naming the closest one."""
    current = parser
    for token in argv:
        commands = getattr(current, "commands", None)
        if token.startswith("-") or commands is None:
            return  # options and arguments are argparse's to judge
        choices = commands.choices
        if token not in choices:
            close = difflib.get_close_matches(token, list(choices), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            group = current.prog.removeprefix(parser.prog).strip()
            raise UsageError(
                f"unknown {group + ' ' if group else ''}command {token!r}{hint} "
                f"(commands: {', '.join(choices)})"
            )
        current = choices[token]
