"""A rich progress bar behind the :class:`audit.models.Progress` protocol.

Counts carry their unit (``MB`` for the structure stage, which counts bytes; ``images``, ``URLs``,
``records``), read from the first word of the stage's own label, so the library's Progress protocol
stays unit-free. One bar fits 80 columns: a long label (a dataset or file name) is cut with an
ellipsis, never wrapped, and is shown as text (``[bold]`` in a file name stays).
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

MB = 1 << 20
#: the first word of each stage's progress label -> what its count counts
UNITS = {
    "structure": "MB",
    "images": "images",
    "locating": "images",
    "hashing": "images",
    "urls": "URLs",
    "licences": "records",
}
LABEL_WIDTH = 20


def unit_of(label: str) -> str:
    """The unit a bar labelled ``label`` counts in (``items`` for a label of no known stage)."""
    return UNITS.get(label.split(" ", 1)[0], "items")


def _amount(n: float, unit: str) -> str:
    """A count short enough for 80 columns: ``982``, ``12.5`` (MB), ``12,345``, ``595k``, ``1.2M``."""
    if unit == "MB":
        n /= MB
        if n < 100:
            return f"{n:,.1f}"
    if n < 100_000:
        return f"{n:,.0f}"
    return f"{n / 1000:,.0f}k" if n < 1_000_000 else f"{n / 1_000_000:,.1f}M"


class _CountColumn(ProgressColumn):
    """``12.5/300 MB``, ``1,200/5,000 images`` or ``120k/3.0M URLs``."""

    def render(self, task: Task) -> Text:
        unit = unit_of(task.description)
        total = "?" if task.total is None else _amount(task.total, unit)
        return Text(f"{_amount(task.completed, unit)}/{total} {unit}", style="green")


class _RateColumn(ProgressColumn):
    """Units per second; blank until rich has enough samples to estimate it."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        unit = unit_of(task.description)
        return Text(f"{_amount(speed, unit)} {unit}/s", style="cyan")


class RichProgress:
    """Bars with rate and ETA on stderr; silent when stderr is not a terminal (CI logs stay clean)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        label = Column(max_width=LABEL_WIDTH, no_wrap=True, overflow="ellipsis")
        self._bar = Progress(
            TextColumn("{task.description}", style="bold", markup=False, table_column=label),
            BarColumn(bar_width=10),
            TaskProgressColumn(),
            _CountColumn(table_column=Column(no_wrap=True)),
            _RateColumn(table_column=Column(no_wrap=True)),
            TimeRemainingColumn(compact=True),
            console=self.console,
            disable=not self.console.is_terminal,
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, label: str, total: int | None) -> None:
        self.finish()
        self._task = self._bar.add_task(label, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=self._bar.tasks[-1].total or 0)
            self._task = None

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()
