"""Which records an export keeps, and why each other record is dropped. Pure.

Records, the run's findings and the licence verdicts in; kept positions and dropped records
(with their reasons) out. A record is kept when no error finding of the structure, images,
licence or takedown stage names it (nor its metadata record), every stage it depends on ran,
and its licence verdict for the declared purpose allows training (``conditional`` only when
asked for). A metadata record follows its conversation record (same id); one without a
conversation record is dropped. Reasons are finding codes, ``license:<verdict>`` or
``<stage>:not_checked``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, filterfalse
from operator import not_

import msgspec

from audit.catalogue.codes import Code
from audit.findings import Finding, Severity

#: the stages whose error findings drop a record (URL findings are warnings about the source)
GATING_STAGES = ("structure", "images", "license", "takedown")
ALLOWED = ("allowed", "allowed_with_obligations")
CONDITIONAL = "conditional"


@dataclass(frozen=True)
class FileRecords:
    """One input file as the selection sees it: each element's id and whether it names an image."""

    file: str  # as the run's findings name it
    ids: Sequence[str | None]
    has_image: Sequence[bool]


class Dropped(msgspec.Struct, frozen=True):
    """One line of ``dropped.jsonl``."""

    file: str
    index: int
    record_id: str | None
    reasons: list[str]


@dataclass
class FileChoice:
    file: str
    kept: list[int] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)


@dataclass
class Selection:
    files: list[FileChoice]
    #: per reason, how many records it dropped (a record with two reasons counts in both)
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return len(self.files[0].kept) if self.files else 0

    @property
    def dropped(self) -> int:
        return len(self.files[0].dropped) if self.files else 0


def record_errors(findings: Iterable[Finding]) -> dict[tuple[str, int], list[str]]:
    """The error codes naming each record, ``(file, index) -> codes`` in first-seen order."""
    out: dict[tuple[str, int], list[str]] = {}
    for f in findings:
        if f.severity == Severity.ERROR and f.index is not None:
            codes = out.setdefault((f.file, f.index), [])
            if f.code not in codes:
                codes.append(f.code)
    return out


def select(
    primary: FileRecords,
    secondary: FileRecords | None,
    errors: Mapping[tuple[str, int], list[str]],
    verdicts: Mapping[int, str] | None,
    *,
    include_conditional: bool = False,
    not_run: Sequence[str] = (),
) -> Selection:
    """Kept and dropped records of a dataset's conversation file (``primary``) and metadata file.

    ``verdicts`` maps primary positions to the licence verdict for the declared purpose (None:
    no verdicts); ``not_run`` names the gating stages that did not run on the dataset (images
    only matters for records that name an image).

    Set operations find the few records that may drop (an error, a verdict outside the
    allowed ones, a metadata error, an unchecked image); only those are judged one by one.
    """
    meta_errors: dict[str, list[str]] = {}
    if secondary is not None:
        metadata_errors(secondary, errors, meta_errors)
    first = choose(primary, errors, verdicts, meta_errors, include_conditional, not_run)
    sel = Selection([first], Counter(chain.from_iterable(d.reasons for d in first.dropped)))
    return sel if secondary is None else with_metadata(sel, primary.ids, secondary, errors)


def metadata_errors(
    meta: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
    into: dict[str, list[str]],
) -> None:
    """Add the error codes of ``meta``'s records ``into`` their ids (a conversation record whose
    metadata record has an error is dropped with it)."""
    for i in flagged(errors, meta.file, len(meta.ids)):
        rid = meta.ids[i]
        if rid is not None:
            known = into.setdefault(rid, [])
            known.extend(c for c in errors[(meta.file, i)] if c not in known)


def with_metadata(
    sel: Selection,
    chat_ids: Sequence[str | None],
    meta: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
) -> Selection:
    """``sel``, a conversation file's selection, with its metadata file following it.

    Without an error finding on the metadata file, the conversation file's subset does not
    depend on it: the export writes that subset while it reads the metadata file.
    """
    first = sel.files[0]
    why_by_id: dict[str, list[str]] = {}
    for d in first.dropped:
        if d.record_id is not None:
            why_by_id.setdefault(d.record_id, d.reasons)
    choice = _follow(meta, errors, chat_ids, first, why_by_id)
    reasons = sel.reasons + Counter(chain.from_iterable(d.reasons for d in choice.dropped))
    return Selection([first, choice], reasons)


def choose(
    primary: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
    verdicts: Mapping[int, str] | None,
    meta_errors: Mapping[str, list[str]],
    include_conditional: bool,
    not_run: Sequence[str],
) -> FileChoice:
    """The conversation file's kept and dropped records (see :func:`select`)."""
    allowed = {*ALLOWED, CONDITIONAL} if include_conditional else set(ALLOWED)
    unchecked = [f"{s}:not_checked" for s in not_run if s != "images"]
    image_unchecked = "images" in not_run
    ids, n = primary.ids, len(primary.ids)
    suspects: Iterable[int] = range(n)  # nothing is vouched for: every record is judged
    first = FileChoice(primary.file)
    if not unchecked and verdicts is not None:
        maybe = set(flagged(errors, primary.file, n))
        outside = map(not_, map(allowed.__contains__, verdicts.values()))
        maybe.update(i for i in compress(verdicts.keys(), outside) if 0 <= i < n)
        maybe.update(filterfalse(verdicts.__contains__, range(n)))  # not judged
        if meta_errors:
            maybe.update(matching(ids, meta_errors.keys()))
        if image_unchecked:
            maybe.update(compress(range(n), primary.has_image))
        suspects = sorted(maybe)
        first.kept = list(filterfalse(maybe.__contains__, range(n)))
    judged_kept = []
    for i in suspects:
        rid = ids[i]
        reasons = list(unchecked)
        if image_unchecked and primary.has_image[i]:
            reasons.append("images:not_checked")
        reasons += errors.get((primary.file, i), ())
        if rid is not None:
            reasons += [c for c in meta_errors.get(rid, ()) if c not in reasons]
        verdict = verdicts.get(i) if verdicts is not None else None
        if verdict is None:
            if "license" not in not_run:
                reasons.append("license:not_checked")
        elif verdict not in allowed:
            reasons.append(f"license:{verdict}")
        if reasons:
            first.dropped.append(Dropped(primary.file, i, rid, reasons))
        else:
            judged_kept.append(i)
    if judged_kept:
        first.kept = sorted(first.kept + judged_kept)
    return first


def matching(ids: Sequence[str | None], wanted: Collection[str | None]) -> list[int]:
    """The positions whose id is in ``wanted``, in order (one C-speed pass, no Python loop)."""
    return list(compress(range(len(ids)), map(wanted.__contains__, ids)))


def positions(ids: Sequence[str | None], wanted: Collection[str | None]) -> dict[str | None, int]:
    """Each wanted id's position (its last one when the id repeats)."""
    return {ids[i]: i for i in matching(ids, wanted)}


def flagged(errors: Mapping[tuple[str, int], list[str]], file: str, n: int) -> list[int]:
    """The positions of ``file`` with an error, in order (findings are few: no pass over records)."""
    return sorted(i for f, i in errors if f == file and 0 <= i < n)


def _follow(
    meta: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
    chat_ids: Sequence[str | None],
    chat: FileChoice,
    why_by_id: Mapping[str, list[str]],
) -> FileChoice:
    """The metadata file keeps exactly the records whose id the conversation file exports."""
    n = len(meta.ids)
    out = set(flagged(errors, meta.file, n))
    kept_ids: set[str | None]
    if meta.ids == chat_ids:  # the releases' layout: position i is the same record in both
        not_kept = _not_kept(chat_ids, chat.dropped)
        out.update(d.index for d in chat.dropped if d.record_id in not_kept)
        if None in meta.ids:
            out.update(matching(meta.ids, (None,)))
        kept_ids = {rid for i in out if (rid := meta.ids[i]) is not None and rid not in not_kept}
    else:
        kept_ids = set(map(chat_ids.__getitem__, chat.kept))
        kept_ids.discard(None)
        out.update(compress(range(n), map(not_, map(kept_ids.__contains__, meta.ids))))
    return _dropped(meta, errors, out, kept_ids, why_by_id)


def follow_ids(
    meta: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
    kept_ids: Collection[str | None],
    why_by_id: Mapping[str, list[str]],
) -> FileChoice:
    """A metadata file (or shard) keeping exactly the records whose id is in ``kept_ids``, the
    ids the conversation file (or set) exports; ``why_by_id``: why each dropped id went."""
    out = set(flagged(errors, meta.file, len(meta.ids)))
    out.update(compress(range(len(meta.ids)), map(not_, map(kept_ids.__contains__, meta.ids))))
    return _dropped(meta, errors, out, kept_ids, why_by_id)


def _dropped(
    meta: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
    out: set[int],
    kept_ids: Collection[str | None],
    why_by_id: Mapping[str, list[str]],
) -> FileChoice:
    """The metadata records at ``out`` dropped, each with its reasons; the others kept."""
    choice = FileChoice(meta.file, list(filterfalse(out.__contains__, range(len(meta.ids)))))
    for i in sorted(out):
        rid = meta.ids[i]
        own = list(errors.get((meta.file, i), ()))
        if rid is None or (rid not in kept_ids and rid not in why_by_id):
            own.append(Code.XFILE_MISSING_CHAT)
        else:
            own += [c for c in why_by_id.get(rid, ()) if c not in own]
        choice.dropped.append(Dropped(meta.file, i, rid, own))
    return choice


def _not_kept(ids: Sequence[str | None], dropped: Sequence[Dropped]) -> set[str]:
    """The ids of dropped records that no kept record shares."""
    count = Counter(d.record_id for d in dropped if d.record_id is not None)
    if not count:
        return set()
    seen = Counter(compress(ids, map(count.__contains__, ids)))
    return {rid for rid, n in count.items() if seen[rid] == n}
