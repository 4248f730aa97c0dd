"""Command-line entry point: arguments in, one library call, an exit code out.

Command groups live in sibling modules, each with ``register(subparsers)``; handlers return the exit
code. Every :class:`audit.errors.AuditError` becomes one line on stderr and its exit code; no input
can produce a traceback here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from rich.console import Console
from rich.markup import escape

from audit import __version__
from audit.errors import AuditError


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; this only keeps the message to one clear line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return int(args.handler(args))
    except AuditError as exc:
        err.print(f"[bold red]llava-audit:[/] {escape(exc.message)}", markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("llava-audit: interrupted")
        return 130
    except BrokenPipeError:
        return 0
