"""Which dataset kind a file holds, decided by most of its records and by its release file name.

One odd record (an integer id, a stray image path) must not flip the kind of a whole file: every
sampled record votes for a kind from its image path, its id and its keys, and the file name of a
LLaVA release (``llava_instruct_150k.json``, ``blip_laion_cc_sbu_558k.json``, ...) counts as well.
The sample is spread over the file (windows at evenly spaced offsets), so a file that changes
partway through, like mix665k with its text-only part at the end, is read fairly and a 1 GB file
costs about a megabyte of reading. When the records are split, or the name and the records
disagree, the guess says so (``KindGuess.note``) so the user can pass ``--kind``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from audit.errors import InputError
from audit.models import MIX_PREFIXES

WINDOW = 1 << 16
WINDOWS = 16
CLEAR_MAJORITY = 0.75  # share of the sampled records that must agree for the content to decide

_ID = re.compile(rb'"id"\s*:\s*(?:"([^"\\]*)"|(-?\d+)\b)')
_IMAGE = re.compile(rb'"image"\s*:\s*"([^"\\]*)"')
_MODEL = re.compile(rb'"model"\s*:')
_CHAT_KEY = re.compile(rb'"conversations"\s*:')
_META_KEY = re.compile(rb'"(?:url|caption|blip_caption|image_url)"\s*:')
_ID_SHAPES = (
    ("cc3m", re.compile(r"GCC_train_\d{9}")),
    ("lcs", re.compile(r"\d{9}")),
    ("instruct", re.compile(r"\d{12}")),
)
_IMAGE_SHAPES = (
    ("cc3m", re.compile(r"GCC_train_\d{9}\.jpg")),
    ("lcs", re.compile(r"\d{5}/\d{9}\.jpg")),
    ("instruct", re.compile(r"(?:COCO_train2014_)?\d{12}\.jpg")),
)
_CHAT_KINDS = {"cc3m": "cc3m-chat", "lcs": "lcs-chat", "instruct": "instruct", "mix": "mix"}
_METADATA_KINDS = {"cc3m": "cc3m-metadata", "lcs": "lcs-metadata"}


@dataclass(frozen=True)
class KindGuess:
    """The kind to audit a file as, and, when that is a guess, why (``None``: records and file
    name agree, or there was nothing to disagree about)."""

    kind: str
    note: str | None = None


def sample(path: Path) -> list[bytes]:
    """The whole file when small, else ``WINDOWS`` windows spread evenly from start to end."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= WINDOW * WINDOWS:
                return [handle.read()]
            windows = []
            for i in range(WINDOWS):
                handle.seek(i * (size - WINDOW) // (WINDOWS - 1))
                windows.append(handle.read(WINDOW))
            return windows
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None


def by_name(path: Path) -> str | None:
    """The kind a LLaVA release file name stands for (None: the name is not a release's)."""
    name = path.name.lower()
    if "blip_laion" in name or "558k" in name:
        return "lcs-metadata" if "meta" in name else "lcs-chat"
    if "mix665k" in name:
        return "mix"
    if any(k in name for k in ("instruct", "detail_23k", "conversation_58k", "complex_reasoning")):
        return "instruct"
    if name == "cc3m_595k.json" or (name == "chat.json" and _under_cc3m(path)):
        return "cc3m-chat"
    if name == "metadata.json" and _under_cc3m(path):
        return "cc3m-metadata"
    return None


def _under_cc3m(path: Path) -> bool:
    """chat.json and metadata.json are common names; they name the CC-3M release only in its
    folder (LLaVA-CC3M-Pretrain-595K)."""
    return "cc3m" in path.absolute().parent.name.lower()


def _shape(value: str, shapes: tuple[tuple[str, re.Pattern[str]], ...]) -> str | None:
    return next((name for name, rx in shapes if rx.fullmatch(value)), None)


def _vote(record: bytes, id_text: str | None) -> str:
    """One record's kind family: mix, cc3m, lcs, instruct or generic (no known shape)."""
    if _MODEL.search(record):
        return "mix"  # mix665k's ShareGPT part
    image = _IMAGE.search(record)
    if image is not None:
        path = image.group(1).decode("utf-8", "replace")
        if path.startswith(MIX_PREFIXES):
            return "mix"
        shape = _shape(path, _IMAGE_SHAPES)
        if shape is not None:
            return shape
    return (_shape(id_text, _ID_SHAPES) if id_text is not None else None) or "generic"


def _records(windows: list[bytes]) -> list[bytes]:
    """Each sampled record's bytes from its ``"id"`` to the next one; a window's last record is
    left out unless the window is the whole file (it may be cut off)."""
    found: list[bytes] = []
    whole = len(windows) == 1
    for window in windows:
        starts = [m.start() for m in _ID.finditer(window)]
        ends = starts[1:] + ([len(window)] if whole else [])
        found += [window[a:b] for a, b in zip(starts, ends, strict=False)]
    return found


def _id_text(record: bytes) -> str | None:
    match = _ID.match(record)
    if match is None or match.group(1) is None:
        return None  # an integer id has no release shape
    return match.group(1).decode("utf-8", "replace")


def guess_kind(path: Path) -> KindGuess:
    """The file's kind from a majority of its sampled records, with the release name as support."""
    path = Path(path)
    return guess_from_sample(sample(path), by_name(path))


def guess_from_sample(windows: list[bytes], named: str | None) -> KindGuess:
    """The kind from sampled JSON text (``windows``; one window: the whole sample) and the kind
    a release file name says (``named``); a shard set samples its first shard's records."""
    records = _records(windows)
    chat = sum(bool(_CHAT_KEY.search(r)) for r in records)
    metadata = sum(bool(_META_KEY.search(r)) and not _CHAT_KEY.search(r) for r in records)
    kinds = _CHAT_KINDS if chat >= metadata else _METADATA_KINDS
    votes = Counter(kinds.get(_vote(r, _id_text(r)), "generic") for r in records)
    if not votes:
        return KindGuess(named or "generic")
    (content, agree), total = votes.most_common(1)[0], sum(votes.values())
    clear = agree / total >= CLEAR_MAJORITY
    kind = content if clear and content != "generic" else named or content
    split = ", ".join(f"{n:,} {k}" for k, n in votes.most_common(3))
    if not clear:
        return KindGuess(kind, f"the {total:,} sampled records disagree ({split})")
    if named is not None and named != content:
        return KindGuess(
            kind, f"the file name suggests {named} but the sampled records look {content}"
        )
    return KindGuess(kind)
