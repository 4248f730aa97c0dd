"""Findings: the one value every check produces, and the catalogue of stable codes.

A finding is data, not a log line: checks return them, the CLI and reports render them, the gate
counts them. Codes are stable dotted slugs; renaming one breaks users' gate configs and baselines,
so add new codes rather than repurposing old ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import msgspec

from audit.catalogue import CATALOGUE, Code, CodeInfo, Severity

__all__ = [
    "CATALOGUE",
    "Code",
    "CodeInfo",
    "Finding",
    "Severity",
    "count_by_severity",
    "from_jsonl",
    "info",
    "make",
    "to_jsonl",
]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One observation about one record (or a whole file when ``index`` is None)."""

    dataset: str
    file: str
    index: int | None
    record_id: str | None
    code: str
    severity: Severity
    message: str


def info(code: str) -> CodeInfo:
    """Catalogue entry for ``code``; unknown codes are a programming error."""
    return CATALOGUE[code]


def make(
    code: Code,
    message: str,
    *,
    dataset: str,
    file: str,
    index: int | None = None,
    record_id: str | int | None = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the catalogue's severity unless a rule overrides it (per-kind rules).

    A code outside the catalogue raises ValueError: a finding no report could explain is a bug.
    """
    code = Code(code)  # also catches a bare string slipped past the type checker
    entry = CATALOGUE[code]
    if _CODE_LOG is not None and code not in _logged:
        _log_code(_CODE_LOG, code)
    return Finding(
        dataset=dataset,
        file=file,
        index=index,
        record_id=None if record_id is None else str(record_id),
        code=code,
        severity=severity or entry.severity,
        message=message,
    )


#: A folder given by the test suite: every process (test workers, their pools, CLI subprocesses)
#: appends each code it makes to ``<pid>.codes``, so the suite can list catalogue codes no test
#: produces (tests/conftest.py). Unset in normal use.
_CODE_LOG = os.environ.get("LLAVA_AUDIT_CODE_LOG") or None
_logged: set[Code] = set()


def _log_code(folder: str, code: Code) -> None:
    _logged.add(code)
    with (Path(folder) / f"{os.getpid()}.codes").open("a", encoding="utf-8") as log:
        log.write(f"{code}\n")


_ENCODER = msgspec.json.Encoder()


def to_jsonl(findings: Iterable[Finding]) -> bytes:
    """Findings as JSON Lines, the `--findings` contract of DESIGN.md."""
    return b"".join(_ENCODER.encode(f) + b"\n" for f in findings)


def from_jsonl(data: bytes) -> list[Finding]:
    """Read findings written by :func:`to_jsonl` (baselines, report history)."""
    decoder = msgspec.json.Decoder(Finding)
    return [decoder.decode(line) for line in data.splitlines() if line.strip()]


def count_by_severity(findings: Iterable[Finding]) -> dict[Severity, int]:
    counts = dict.fromkeys(Severity, 0)
    for f in findings:
        counts[f.severity] += 1
    return counts
