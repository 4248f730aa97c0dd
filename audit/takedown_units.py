"""The audit's takedown check, one unit at a time: a dataset file, or one shard of a set.

Both engines match the same units through :func:`match_unit` (read the records' identifying
keys through the loaders, hash their images when the blocklist holds content hashes, then
:func:`audit.checks.takedown.find_matches`): the local engine in this process (:func:`match_here`),
the Spark engine one unit per executor task (audit.engines.spark.takedown_batches), which the
driver names by descriptor only. A shard's findings name the shard and the record's position
within it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.checks.takedown import Blocklist, Candidate, find_matches, present_findings
from audit.config import Config
from audit.errors import InputError
from audit.findings import Finding
from audit.loaders.shards import expand, is_shard_set
from audit.models import Progress
from audit.results import FindingTotals
from audit.store import Store
from audit.takedown_search import DatasetFile, LoadedFile, hashed_candidates, load_file


@dataclass(frozen=True)
class MatchJob:
    """What matching any unit needs (picklable: the Spark engine broadcasts it once)."""

    config: Config  # the datasets' image roots, for content hashes
    blocklist: Blocklist
    applied: dict[str, bool]  # request id -> its keys are on the blocklist (else: pending)


@dataclass
class Matched:
    """What matching came to: the findings (on Spark: the first per code, with the table's
    totals), the records read, and the files that could not be read."""

    findings: list[Finding]
    totals: FindingTotals | None = None
    records: int = 0
    unreadable: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MatchUnit:
    """What one reader reads: a dataset file, or one shard of a set (``shard``)."""

    source: DatasetFile
    shard: bool = False


def record_units(sources: Sequence[DatasetFile]) -> list[MatchUnit]:
    """Each shard of a set as its own unit (same dataset and role), every other file as it is;
    a set that cannot be expanded stays whole, and reading it reports why."""
    units: list[MatchUnit] = []
    for source in sources:
        if not is_shard_set(source.path):
            units.append(MatchUnit(source))
            continue
        try:
            shards = expand(source.path)
        except InputError:
            units.append(MatchUnit(source))
            continue
        units += [MatchUnit(DatasetFile(source.dataset, source.role, s), True) for s in shards]
    return units


def loaded_units(sources: Sequence[DatasetFile], *, raw: bool = False) -> Iterator[LoadedFile]:
    """Every configured file read whole (``raw``: its records' bytes too, for a cleaned copy),
    and each shard of a set read alone, one after another, keeping only its records' keys (a
    cleaned shard is copied from the shard file itself). A set that cannot be expanded, or a
    shard that breaks, is one line (exit 3)."""
    for source in sources:
        if not is_shard_set(source.path):
            yield load_file(source, raw=raw)
            continue
        for shard in expand(source.path):
            loaded = load_shard(DatasetFile(source.dataset, source.role, shard))
            loaded.shard_of = source.path
            yield loaded


def match_unit(job: MatchJob, unit: MatchUnit, store: Store | None, progress: Progress) -> Matched:
    """One unit's findings; with no ``store`` (an executor) image hashes are not cached."""
    try:
        loaded = _load(unit)
    except InputError as exc:  # the structure stage reports it in full
        return Matched([], unreadable=[exc.message])
    candidates = hashed_candidates(job.config, store, [loaded], job.blocklist, progress)
    found = present_findings(find_matches(job.blocklist, candidates), job.applied)
    return Matched(found, records=len(candidates))


def _load(unit: MatchUnit) -> LoadedFile:
    """A file through :func:`load_file`; a shard through the shard reader, as the structure
    stage reads it (positions within the shard; ``generic``: its keys say chat or metadata)."""
    return load_shard(unit.source) if unit.shard else load_file(unit.source)


def load_shard(source: DatasetFile) -> LoadedFile:
    """One shard's records' keys, by their position in the shard."""
    from audit.loaders.shardread import open_shard

    stream = open_shard(source.path, "generic", dataset=source.dataset)
    keys = [_keys(record) for batch in stream for record in batch]  # a batch's records at a time
    positions = stream.positions() or range(len(keys))
    candidates = [_candidate(source, i, k) for i, k in zip(positions, keys, strict=True)]
    return LoadedFile(source=source, jsonl=True, elements=[], candidates=candidates)


def _keys(record: Any) -> tuple[Any, Any, Any]:
    """A record's id, image and URL: all a candidate keeps of it."""
    return getattr(record, "id", None), getattr(record, "image", None), getattr(record, "url", None)


def _candidate(unit: DatasetFile, index: int, keys: tuple[Any, Any, Any]) -> Candidate:
    rid, image, url = keys
    return Candidate(
        dataset=unit.dataset,
        file=str(unit.path),
        index=index,
        record_id=str(rid) if isinstance(rid, str | int) and not isinstance(rid, bool) else None,
        image=image if isinstance(image, str) else None,
        url=url if isinstance(url, str) else None,
    )


#: Matching every unit: :func:`match_here`, or in Spark executors
#: (audit.engines.spark.takedown_batches), then with the findings table's totals.
MatchRecords = Callable[[MatchJob, list[MatchUnit], Store, Progress], Matched]


def match_here(job: MatchJob, units: list[MatchUnit], store: Store, progress: Progress) -> Matched:
    """The local engine: every unit in turn, every finding in record order."""
    out = Matched([])
    for unit in units:
        done = match_unit(job, unit, store, progress)
        out.findings += done.findings
        out.records += done.records
        out.unreadable += done.unreadable
    return out
