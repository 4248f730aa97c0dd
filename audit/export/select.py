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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

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
    """
    allowed = {*ALLOWED, CONDITIONAL} if include_conditional else set(ALLOWED)
    meta_errors: dict[str, list[str]] = {}
    if secondary is not None:
        for i, rid in enumerate(secondary.ids):
            codes = errors.get((secondary.file, i))
            if codes and rid is not None:
                known = meta_errors.setdefault(rid, [])
                known.extend(c for c in codes if c not in known)
    unchecked = [f"{s}:not_checked" for s in not_run if s != "images"]
    image_unchecked = "images" in not_run
    first = FileChoice(primary.file)
    why_by_id: dict[str, list[str]] = {}
    kept_ids: set[str] = set()
    flagged = {i for f, i in errors if f == primary.file}  # few: the fast path skips the rest
    has_image = primary.has_image
    for i, rid in enumerate(primary.ids):
        if (
            not unchecked
            and verdicts is not None
            and verdicts.get(i) in allowed
            and i not in flagged
            and (rid is None or rid not in meta_errors)
            and not (image_unchecked and has_image[i])
        ):
            first.kept.append(i)
            if rid is not None:
                kept_ids.add(rid)
            continue
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
            if rid is not None:
                why_by_id.setdefault(rid, reasons)
        else:
            first.kept.append(i)
            if rid is not None:
                kept_ids.add(rid)
    files = [first]
    if secondary is not None:
        files.append(_follow(secondary, errors, kept_ids, why_by_id))
    selection = Selection(files)
    for choice in files:
        for d in choice.dropped:
            selection.reasons.update(d.reasons)
    return selection


def _follow(
    meta: FileRecords,
    errors: Mapping[tuple[str, int], list[str]],
    kept_ids: set[str],
    why_by_id: Mapping[str, list[str]],
) -> FileChoice:
    """The metadata file keeps exactly the records whose id the conversation file exports."""
    choice = FileChoice(meta.file)
    flagged = {i for f, i in errors if f == meta.file}
    for i, rid in enumerate(meta.ids):
        if rid in kept_ids and i not in flagged:  # rid None is never in kept_ids
            choice.kept.append(i)
            continue
        own = list(errors.get((meta.file, i), ()))
        if rid is None or (rid not in kept_ids and rid not in why_by_id):
            own.append(Code.XFILE_MISSING_CHAT)
        else:
            own += [c for c in why_by_id.get(rid, ()) if c not in own]
        choice.dropped.append(Dropped(meta.file, i, rid, own))
    return choice
