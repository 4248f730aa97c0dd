"""The verdicts JSON Lines: written by `license --verdicts`, read back as typed rows.

`license --verdicts OUT.jsonl` streams one :class:`VerdictRow` per record and use; the file
appears only complete (:func:`audit.atomic.atomic_open`), and :func:`read_verdict_rows` gives the
same typed rows back, so the report and the gate read exactly what the CLI wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import IO

import msgspec

from audit.atomic import atomic_open
from audit.errors import InputError
from audit.licensing.evidence import VerdictRow, decode_row
from audit.loaders import read_input

_ENCODER = msgspec.json.Encoder()


def encode_row(row: VerdictRow) -> str:
    """One row as its line of the verdicts file (newline included)."""
    return _ENCODER.encode(row).decode() + "\n"


class VerdictWriter:
    """Context manager and sink: each :class:`VerdictRow` becomes one JSON line, atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._stack = ExitStack()
        self._out: IO[str] | None = None
        self.rows = 0

    def __enter__(self) -> VerdictWriter:
        self._out = self._stack.enter_context(atomic_open(self.path))
        return self

    def __call__(self, row: VerdictRow) -> None:
        self.write_lines(encode_row(row))

    def write_lines(self, text: str) -> None:
        """Rows already encoded by :func:`encode_row` (the Spark engine's executors make them)."""
        assert self._out is not None, "use VerdictWriter as a context manager"
        self._out.write(text)
        self.rows += text.count("\n")

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.__exit__(typ, exc, tb)


def read_verdict_rows(path: str | Path) -> Iterator[VerdictRow]:
    """The rows of a verdicts file, typed; a line that is not a verdict row is an InputError."""
    data = read_input(Path(path), "licence verdicts file")
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield decode_row(line)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise InputError(str(path), f"line {number} is not a verdict row: {exc}") from None
