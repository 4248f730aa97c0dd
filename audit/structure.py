"""The structure stage: every rule of spec §5 on conversation and metadata files, file by file.

Each file is audited by one worker of a process pool (:mod:`audit.workers`) so both cores work;
each worker returns only findings and stats, encoded with msgpack, and streams its file into columns
chunk by chunk so the file's bytes and its Python objects are never all in memory at once. For the
cross-file checks a chat file's worker leaves the pair's columns in an Arrow IPC file that its
result names; this process hands that name to the metadata file's worker through the pair's queue.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import tempfile
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import msgspec

from audit import engines
from audit import findings as fnd
from audit import workers as processes
from audit.config import EngineConfig
from audit.errors import InputError, ProbeError
from audit.findings import Code, Finding
from audit.loaders import regular_file
from audit.loaders.records import KINDS, detect_kind
from audit.loaders.shards import ShardInfo, is_shard_set
from audit.models import NoProgress, Progress
from audit.results import FileStats, StructureResult
from audit.structure_sets import entries, expand_sets, finish, shard_specs

PAIRS = {"cc3m-metadata": "cc3m-chat", "lcs-metadata": "lcs-chat"}


@dataclass(frozen=True)
class Handoff:
    """How a chat file's columns reach the worker of its metadata file (the pair ``number``).

    The planner queues every chat file before its metadata file and workers take tasks in queue
    order, so a metadata file only ever waits for a chat file that is being audited or done.
    """

    number: int  # the pair's queue
    path: str  # Arrow IPC file in the run's temporary folder, written by the chat file's worker
    role: str  # "chat" or "metadata"
    chat: tuple[str, str]  # the pair's chat file (path, kind): file and kind of its findings


class _Channel(Protocol):
    """A pair's queue: :class:`queue.SimpleQueue` in this process, a multiprocessing one across."""

    def put(self, item: str | None) -> None: ...
    def get(self) -> str | None: ...


@dataclass(frozen=True)
class Task:
    """One file for one worker; files of a chat + metadata pair carry their handoff."""

    path: str
    kind: str
    dataset: str | None
    handoff: Handoff | None = None
    shard: ShardInfo | None = None  # a shard of a set (folder or glob of shards)
    keys_file: str | None = None  # where the worker leaves its key table (Arrow IPC)

    @property
    def size(self) -> int:
        return _size(Path(self.path))


class Outcome(msgspec.Struct):
    """One file's audit as a worker returns it (msgpack): findings, stats, why it was unreadable."""

    findings: list[Finding]
    stats: dict[str, Any]
    unreadable: list[str]
    side: str | None  # a chat file's columns for its metadata partner (Arrow IPC file)
    keys: str | None = None  # its key table for the set's cross-record checks (Arrow IPC file)


#: this process's end of each pair's queue (set in a worker by _init_worker)
_channels: dict[int, _Channel] = {}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@cache
def known_prompts() -> dict[str, frozenset[str]]:
    """The packaged prompt lists (spec §1.1-1.3), per kind."""
    text = resources.files("audit").joinpath("data/prompts.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {
        kind: frozenset(entry["prompts"])
        for kind, entry in data.items()
        if not kind.startswith("_")
    }


def _kind_of(path: Path, forced: str | None) -> str:
    """The detected kind, or the forced one; a forced chat kind does not turn the dataset's own
    metadata file (given alongside) into a chat file, and vice versa."""
    detected = detect_kind(path)
    if forced is None:
        return detected
    counterpart = {**PAIRS, **{chat: meta for meta, chat in PAIRS.items()}}
    return detected if counterpart.get(forced) == detected else forced


def plan(
    paths: Sequence[Path],
    kind: str | None,
    dataset: str | None,
    handoff_dir: Path | None = None,
    max_bytes: int | None = None,
) -> tuple[list[Task], list[Finding]]:
    """Detect kinds and pair each metadata file with the chat file of its dataset (cross-file
    checks need ``handoff_dir``, a temporary folder where the pair's workers meet). A folder or
    glob of shards is a task per shard, after the files' tasks (audit.structure_sets)."""
    kinds: dict[Path, str] = {}
    sets, problems = expand_sets([p for p in paths if is_shard_set(p)], kind, dataset, max_bytes)
    for path in (p for p in paths if not is_shard_set(p)):
        try:
            regular_file(path, "file", max_bytes, "dataset_mb")
            kinds[path] = _kind_of(path, kind)
        except InputError as exc:
            problems.append(
                fnd.make(
                    Code.FILE_UNREADABLE, exc.message, dataset=dataset or path.stem, file=str(path)
                )
            )
    tasks = _pair(kinds, dataset, handoff_dir)
    if sets and handoff_dir is not None:  # every task leaves its key table for the sets' checks
        tasks = [
            replace(t, keys_file=str(handoff_dir / f"keys-{n}.arrow")) for n, t in enumerate(tasks)
        ]
    return tasks + [
        Task(*spec) for spec in shard_specs(sets, dataset, handoff_dir, len(tasks))
    ], problems


def _pair(kinds: dict[Path, str], dataset: str | None, handoff_dir: Path | None) -> list[Task]:
    """One task per file, largest first, each chat file queued before its metadata partner."""
    partner: dict[Path, Path] = {}
    for meta, meta_kind in kinds.items():
        if meta_kind not in PAIRS:
            continue
        chats = [p for p, k in kinds.items() if k == PAIRS[meta_kind] and p not in partner]
        chat = next(
            (c for c in chats if c.parent == meta.parent), chats[0] if len(chats) == 1 else None
        )
        if chat is not None and handoff_dir is not None:
            partner[chat], partner[meta] = meta, chat
    tasks: dict[Path, Task] = {}
    for path, kind in kinds.items():
        handoff = None
        if path in partner:
            chat = path if kind not in PAIRS else partner[path]
            role = "chat" if chat == path else "metadata"
            number = list(kinds).index(chat)
            file = (handoff_dir or Path()) / f"pair-{number}.arrow"
            handoff = Handoff(number, str(file), role, (str(chat), kinds[chat]))
        tasks[path] = Task(str(path), kind, dataset, handoff)
    ordered: list[Task] = []
    for path in sorted(tasks, key=lambda p: -tasks[p].size):
        if path in partner and tasks[path].handoff.role == "metadata":  # type: ignore[union-attr]
            continue  # queued right after its chat file
        ordered.append(tasks[path])
        if path in partner:
            ordered.append(tasks[partner[path]])
    return ordered


def check_files(
    paths: Sequence[Path],
    *,
    kind: str | None = None,
    dataset: str | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    max_bytes: int | None = None,
    engine: EngineConfig | None = None,
    findings_dir: str | None = None,
) -> StructureResult:
    """Audit the files' structure; chat and metadata files given together are cross-checked.

    A file that cannot be audited at all (missing, not a regular file, over ``max_bytes``) gives a
    file-level finding and is listed in ``unreadable`` (the CLI exits 3 for it); it never
    raises for bad input. On the spark ``engine`` the findings go to a Parquet table in
    ``findings_dir`` (a new temporary folder when None) and the result holds their totals.
    """
    if kind is not None and kind not in KINDS:
        raise InputError(
            str(paths[0]) if paths else "-", f"unknown kind {kind!r} (known: {', '.join(KINDS)})"
        )
    progress = progress or NoProgress()
    given = [Path(p) for p in paths]
    if engine is not None and engines.is_spark(engine):
        from audit.engines.spark.session import StartingSession

        with StartingSession(engine, warm=warm_up) as spark:  # it starts while files are planned
            from audit.engines.spark.structure import check_on_spark

            tasks, problems = plan(given, kind, dataset, Path("pairs"), max_bytes)
            names = [str(p) for p in given]
            return check_on_spark(
                tasks, problems, names, progress, engine, findings_dir, run=run_group, spark=spark
            )
    with tempfile.TemporaryDirectory(prefix="llava-audit-") as handoff_dir:
        tasks, findings = plan(given, kind, dataset, Path(handoff_dir), max_bytes)
        outcomes = _run(tasks, progress, workers)
        set_findings, set_stats = finish(entries(tasks), outcomes)
    unreadable = [f.message for f in findings]
    files: dict[str, FileStats] = {}
    order = {str(Path(p)): i for i, p in enumerate(paths)}
    source = {n: t.path if t.shard is None else t.shard.source for n, t in enumerate(tasks)}
    for number in sorted(outcomes, key=lambda n: (order.get(source[n], 0), n)):
        outcome = outcomes[number]
        findings += outcome.findings
        files.update(msgspec.convert(outcome.stats, dict[str, FileStats]))
        unreadable += outcome.unreadable
    findings += set_findings
    for name, stats in set_stats.items():  # a plain file's entry: it met a set (crossfile)
        old = msgspec.to_builtins(files[name]) if name in files else {}
        files[name] = msgspec.convert(old | stats, FileStats)
    return StructureResult(
        findings=findings,
        records=sum(f.records for f in files.values() if not f.metadata_keys),
        files=files,
        unreadable=unreadable,
    )


def _run(tasks: list[Task], progress: Progress, workers: int | None) -> dict[int, Outcome]:
    """Every task's outcome by its position in ``tasks``: in this process or in a pool."""
    progress.start("structure", sum(t.size for t in tasks) or None)
    n_workers = min(workers or os.cpu_count() or 1, len(tasks))
    if n_workers <= 1 or not processes.can_start():
        outcomes = _in_process(tasks, progress)
    else:
        outcomes = _in_pool(tasks, n_workers, progress)
    progress.finish()
    return outcomes


def _in_process(tasks: list[Task], progress: Progress) -> dict[int, Outcome]:
    """Run the tasks one by one here (each chat file runs before its metadata partner)."""
    from audit.structure_worker import set_progress_sink

    _channels.clear()
    _channels.update({n: queue.SimpleQueue() for n in _pairs(tasks)})
    set_progress_sink(progress.advance)
    try:
        outcomes: dict[int, Outcome] = {}
        for number, task in enumerate(tasks):
            outcomes[number] = msgspec.msgpack.decode(run_task(task), type=Outcome)
            _hand_over(task, outcomes[number].side)
        return outcomes
    finally:
        set_progress_sink(None)
        _channels.clear()


def warm_up() -> None:
    """What a worker's first file imports: the worker, and pandera, which most files of a real
    set need for some failing row (a Spark executor runs this while the driver plans)."""
    from audit.checks.schema import load_pandera
    from audit.structure_worker import audit_task  # noqa: F401 - imported ahead

    load_pandera()


def run_group(tasks: list[Task]) -> list[Outcome]:
    """Run ``tasks`` here, in order (a pair's chat file first): a Spark executor's unit of work."""
    outcomes = _in_process(tasks, NoProgress())
    return [outcomes[number] for number in range(len(tasks))]


def _pairs(tasks: list[Task]) -> set[int]:
    return {task.handoff.number for task in tasks if task.handoff is not None}


def _hand_over(task: Task, side: str | None) -> None:
    """A chat file is done (or failed: ``side`` None): its metadata partner may compare."""
    if task.handoff is not None and task.handoff.role == "chat":
        _channels[task.handoff.number].put(side)


def _in_pool(tasks: list[Task], n_workers: int, progress: Progress) -> dict[int, Outcome]:
    """Run the tasks in worker processes; their shared byte counter drives the progress bar."""
    context = processes.context()
    counter = context.Value("q", 0)
    _channels.update({n: context.SimpleQueue() for n in _pairs(tasks)})
    outcomes: dict[int, Outcome] = {}
    shown = 0
    pool = processes.pool(n_workers, _init_worker, (counter, dict(_channels)))
    futures: dict[Future[bytes], int] = {}
    try:
        futures = {pool.submit(run_task, task): number for number, task in enumerate(tasks)}
        processes.watch_all(pool)
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for future in done:
                number = futures.pop(future)
                try:
                    outcomes[number] = msgspec.msgpack.decode(future.result(), type=Outcome)
                finally:  # also when it failed: its partner must not wait for ever
                    _hand_over(tasks[number], outcomes[number].side if number in outcomes else None)
            current = counter.value
            progress.advance(current - shown)
            shown = current
    except BrokenProcessPool:
        raise ProbeError(
            "a structure worker process died (out of memory?); run with --workers 1 to see "
            "which file it was"
        ) from None
    finally:
        for number in futures.values():  # stopped early: nobody is left waiting for a partner
            _hand_over(tasks[number], None)
        pool.shutdown(wait=True, cancel_futures=True)
        _channels.clear()
    return outcomes


def _init_worker(counter: Any, channels: dict[int, _Channel]) -> None:
    # polars' jemalloc keeps freed pages for 10 s by default; a file's transient frames would then
    # still count against the memory budget while the next file loads. Set before polars loads.
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:200,muzzy_decay_ms:0")
    from audit.structure_worker import set_progress_sink

    def add(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    set_progress_sink(add)
    _channels.update(channels)


def run_task(task: Task) -> bytes:
    """Worker entry: audit one file (meeting its pair partner); its outcome as msgpack."""
    # heavy imports (polars) stay here
    from audit.structure_worker import Partner, audit_task, collapse_info

    handoff = task.handoff
    side_file = handoff.path if handoff is not None and handoff.role == "chat" else None
    partner = None
    if handoff is not None and handoff.role == "metadata":
        partner = Partner(*handoff.chat, receive=_channels[handoff.number].get)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of acyclic Structs and lists: the cyclic GC would only rescan them
    try:
        audited = audit_task(
            task.path,
            task.kind,
            task.dataset,
            known_prompts(),
            side_file=side_file,
            partner=partner,
            shard=task.shard,
            want_keys=task.keys_file is not None,
        )
        keys = None
        if audited.keys is not None and task.keys_file is not None:
            audited.keys.write_ipc(task.keys_file)
            keys = task.keys_file
        found = collapse_info(audited.findings)
        return msgspec.msgpack.encode(
            Outcome(found, audited.stats, audited.unreadable, audited.side, keys)
        )
    finally:
        if gc_was_enabled:
            gc.enable()


__all__ = [
    "Outcome",
    "Task",
    "check_files",
    "known_prompts",
    "plan",
    "run_group",
    "run_task",
]
