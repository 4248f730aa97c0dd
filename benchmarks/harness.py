"""Reusable benchmark helpers: time a callable or a subprocess, sample memory and CPU of the whole
process tree, compare figures as ratios measured in the same run, print and save the results.

Why ratios: the machine is shared (2 cores, several users); absolute seconds drift between runs,
but two measurements taken back to back in one run drift together.

    from benchmarks.harness import Bench
    bench = Bench("images", params={"files": 20_000})
    base = bench.call("bare decode", decode_all)            # in-process callable
    tool = bench.run("llava-audit images", [exe, "images", ...])  # subprocess, tree RSS/CPU
    bench.ratio("tool / bare", tool.wall_s, base.wall_s, target=1.5)
    bench.finish()   # rich table + benchmarks/results/images.json
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


@dataclass
class Measurement:
    """One timed thing. ``cpu_s`` is user+sys of the whole tree, so ``cores`` shows parallelism."""

    name: str
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes, summed over the process tree at the sampled peak
    peak_cores: float  # highest CPU use over a sampling window, in cores
    exit_code: int | None = None
    #: share of the tree's CPU done outside its busiest process: ~0 serial, ~0.5 even over two
    #: processes; unlike ``cores`` it does not drop when other users load the machine
    spread: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # what the child reported (last JSON line)

    @property
    def cores(self) -> float:
        """Average cores busy: 1.0 = one core flat out, 2.0 = both cores on this machine."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class Ratio:
    """A figure compared with another from the same run, optionally against a target bound."""

    name: str
    value: float
    target: float | None = None
    higher_is_better: bool = False

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


class TreeSampler:
    """Samples RSS (summed over a process and all its descendants) and CPU in a background thread.

    Summed RSS counts pages shared after fork() once per process, so it is an upper bound; that is
    the conservative reading for a memory target. With ``role`` (a process -> a name such as
    "driver" or "jvm"), the peak of each role's summed RSS is kept too (``peak_by_role``).
    """

    def __init__(
        self, pid: int, interval: float = 0.05, role: Callable[[psutil.Process], str] | None = None
    ) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.role = role
        self.peak_rss = 0
        self.peak_by_role: dict[str, int] = {}
        self.peak_cores = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        times = self.root.cpu_times()
        # user+sys per pid at the last sample; children first seen later start from 0
        self._cpu_seen: dict[int, float] = {pid: times.user + times.system}
        self._cpu_base = dict(self._cpu_seen)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_total(self) -> float:
        """User+sys of every process seen, up to its last sample: counts descendants that are
        never reaped by the root (a JVM the driver leaves behind, its forked workers), which
        getrusage(RUSAGE_CHILDREN) misses."""
        return sum(cpu - self._cpu_base.get(pid, 0.0) for pid, cpu in self._cpu_seen.items())

    def spread(self) -> float:
        """1 - (CPU of the busiest process / CPU of all sampled processes), from the last samples."""
        used = {pid: cpu - self._cpu_base.get(pid, 0.0) for pid, cpu in self._cpu_seen.items()}
        total = sum(used.values())
        return 1 - max(used.values()) / total if total > 0 else 0.0

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    def _loop(self) -> None:
        window_start, window_cpu = time.perf_counter(), 0.0
        while not self._stop.is_set():
            rss = 0
            by_role: dict[str, int] = {}
            for proc in self._tree():
                try:
                    with proc.oneshot():
                        used_rss = proc.memory_info().rss
                        times = proc.cpu_times()
                        if self.role is not None:
                            name = self.role(proc)
                            by_role[name] = by_role.get(name, 0) + used_rss
                    rss += used_rss
                    used = times.user + times.system
                    window_cpu += used - self._cpu_seen.get(proc.pid, 0.0)
                    self._cpu_seen[proc.pid] = used
                except psutil.Error:
                    continue
            self.peak_rss = max(self.peak_rss, rss)
            for name, value in by_role.items():
                self.peak_by_role[name] = max(self.peak_by_role.get(name, 0), value)
            elapsed = time.perf_counter() - window_start
            if elapsed >= 0.5:
                self.peak_cores = max(self.peak_cores, window_cpu / elapsed)
                window_start, window_cpu = time.perf_counter(), 0.0
            self._stop.wait(self.interval)


def _last_json_line(text: str) -> dict[str, Any]:
    """Children report their own figures (e.g. the decode time alone) as a final JSON line."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
    return {}


def run_subprocess(
    name: str,
    argv: Sequence[str],
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    timeout: float = 1800,
    role: Callable[[psutil.Process], str] | None = None,
) -> Measurement:
    """Run ``argv`` to completion; CPU from getrusage(RUSAGE_CHILDREN) counts every reaped
    descendant. With ``role``, ``extra["peak_rss_by_role"]`` holds each role's peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=err)
        with TreeSampler(proc.pid, role=role) as sampler:
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cpu = max(cpu, sampler.cpu_total())  # the larger: each misses what the other sees
    extra = _last_json_line(stdout)
    if code not in (0, 1):
        extra["stderr_tail"] = stderr.strip().splitlines()[-3:]
    if role is not None:
        extra["peak_rss_by_role"] = dict(sampler.peak_by_role)
    return Measurement(
        name,
        wall,
        cpu,
        sampler.peak_rss,
        sampler.peak_cores,
        code,
        extra=extra,
        spread=sampler.spread(),
    )


def time_callable(name: str, fn: Callable[[], Any]) -> Measurement:
    """Time ``fn()`` in this process; the returned value, if a dict, is kept as ``extra``."""
    cpu_before = time.process_time()
    with TreeSampler(os.getpid()) as sampler:
        started = time.perf_counter()
        value = fn()
        wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    extra = value if isinstance(value, dict) else {}
    return Measurement(
        name,
        wall,
        cpu,
        sampler.peak_rss,
        sampler.peak_cores,
        None,
        extra=extra,
        spread=sampler.spread(),
    )


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read the inputs once so every measured run sees the same (warm) cache."""
    for path in paths:
        with path.open("rb") as handle:
            while handle.read(16 * MB):
                pass


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    return done.stdout.strip() or None


class Bench:
    """Collects measurements and ratios of one benchmark run, then prints and saves them."""

    def __init__(
        self, name: str, params: dict[str, Any] | None = None, console: Console | None = None
    ) -> None:
        self.name = name
        self.params = params or {}
        self.console = console or Console(stderr=True, width=None if sys.stderr.isatty() else 120)
        self.measurements: list[Measurement] = []
        self.ratios: list[Ratio] = []
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.load_at_start = list(os.getloadavg())
        if self.load_at_start[0] > (os.cpu_count() or 1):
            self.console.print(
                f"[yellow]load average {self.load_at_start[0]:.1f} on {os.cpu_count()} cores: other work "
                "competes for the CPU; wall-time ratios and 'cores used' will be noisy[/]"
            )

    def run(self, name: str, argv: Sequence[str], **kwargs: Any) -> Measurement:
        self.console.log(f"[bold]{name}[/]: {' '.join(str(a) for a in argv)[:100]}")
        measured = run_subprocess(name, argv, **kwargs)
        self.measurements.append(measured)
        return measured

    def call(self, name: str, fn: Callable[[], Any]) -> Measurement:
        self.console.log(f"[bold]{name}[/] (in process)")
        measured = time_callable(name, fn)
        self.measurements.append(measured)
        return measured

    def ratio(
        self,
        name: str,
        value: float,
        base: float,
        target: float | None = None,
        higher_is_better: bool = False,
    ) -> Ratio:
        figure = Ratio(name, value / base if base else float("inf"), target, higher_is_better)
        self.ratios.append(figure)
        return figure

    def figure(
        self, name: str, value: float, target: float | None = None, higher_is_better: bool = False
    ) -> Ratio:
        """A figure that is already a ratio (cores used, GB against a budget, caught/injected)."""
        figure = Ratio(name, value, target, higher_is_better)
        self.ratios.append(figure)
        return figure

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "started": self.started,
            "git_commit": _git_commit(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "load_at_start": self.load_at_start,
                "load_at_end": list(os.getloadavg()),
            },
            "params": self.params,
            "measurements": [asdict(m) | {"cores": round(m.cores, 2)} for m in self.measurements],
            "ratios": [asdict(r) | {"passed": r.passed} for r in self.ratios],
        }

    def finish(self, results_dir: Path = RESULTS) -> Path:
        """Print the tables and write ``results/<name>.json``; returns the path written."""
        table = Table(title=f"{self.name}: measurements")
        columns = (
            "what",
            "wall s",
            "cpu s",
            "cores avg",
            "cores peak",
            "spread",
            "peak RSS MB",
            "exit",
        )
        for column in columns:
            table.add_column(column, justify="left" if column == "what" else "right")
        for m in self.measurements:
            table.add_row(
                m.name,
                f"{m.wall_s:.2f}",
                f"{m.cpu_s:.2f}",
                f"{m.cores:.2f}",
                f"{m.peak_cores:.2f}",
                f"{m.spread:.2f}",
                f"{m.peak_rss / MB:,.0f}",
                "" if m.exit_code is None else str(m.exit_code),
            )
        self.console.print(table)
        ratios = Table(title=f"{self.name}: ratios (same run)")
        for column in ("figure", "value", "target", "verdict"):
            ratios.add_column(column, justify="left" if column == "figure" else "right")
        for r in self.ratios:
            bound = (
                "" if r.target is None else f"{'>=' if r.higher_is_better else '<='} {r.target:g}"
            )
            verdict = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: ""}[r.passed]
            ratios.add_row(r.name, f"{r.value:.3g}", bound, verdict)
        self.console.print(ratios)
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        self.console.log(f"results written to {path}")
        return path
