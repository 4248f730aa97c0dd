"""A rich progress bar behind the :class:`audit.models.Progress` protocol.

Counts carry their unit (``MB`` for the structure stage, which counts bytes; ``images``, ``URLs``,
``records``), read from the first word of the stage's own label, so the library's Progress protocol
stays unit-free. One bar fits 80 columns: a long label (a dataset or file name) is cut with an
ellipsis, never wrapped, and is shown as text (``[bold]`` in a file name stays). The URL stage
also reports each host's share done (:class:`audit.models.HostProgress`): a line under the bars
names the slowest hosts, so a run held up by a few slow servers says which.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
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
SLOWEST = 3  # hosts named under the bars


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


class _Bars(Progress):
    """The bars, and under them one line naming the slowest hosts (when the stage reports hosts)."""

    def __init__(self, *columns: ProgressColumn, **options: Any) -> None:
        self.totals: Mapping[str, int] = {}
        self.done: dict[str, int] = {}
        super().__init__(*columns, **options)  # may draw already

    def get_renderables(self) -> Iterable[RenderableType]:
        """Drawn at rich's refresh rate, not per URL: the hosts are ranked only that often."""
        yield from super().get_renderables()
        note = slowest_hosts(self.totals, self.done)
        if note:
            yield Text(note, style="dim", no_wrap=True, overflow="ellipsis")


def slowest_hosts(totals: Mapping[str, int], done: Mapping[str, int], n: int = SLOWEST) -> str:
    """``slowest: a.example 12% · b.example 40%``: the unfinished hosts with the least share done
    (ties: the one with more left first), or "" when every host is done."""
    left = ((done.get(h, 0) / t, -(t - done.get(h, 0)), h) for h, t in totals.items() if t)
    worst = heapq.nsmallest(n, (item for item in left if item[0] < 1))
    if not worst:
        return ""
    return "slowest: " + " · ".join(f"{h} {share:.0%}" for share, _, h in worst)


class RichProgress:
    """Bars with rate and ETA on stderr; silent when stderr is not a terminal (CI logs stay clean)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        label = Column(max_width=LABEL_WIDTH, no_wrap=True, overflow="ellipsis")
        self._bar = _Bars(
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

    def hosts(self, totals: Mapping[str, int]) -> None:
        self._bar.totals, self._bar.done = totals, {}

    def host_advance(self, host: str) -> None:
        done = self._bar.done
        done[host] = done.get(host, 0) + 1

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=self._bar.tasks[-1].total or 0)
            self._task = None
        self._bar.totals, self._bar.done = {}, {}

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.stop()
