"""The catalogue of finding codes: one stable slug, severity, title and explanation each.

Entries live in one module per stage (``structure``, ``probes``, ``licensing``, ``service``) so the
table stays readable; this package joins them into the single :data:`CATALOGUE` that
:mod:`audit.findings` exposes. Each code's string is written once, as a member of
:class:`~audit.catalogue.codes.Code`; add a new code there and its entry to the section of its
stage.
"""

from __future__ import annotations

from audit.catalogue import licensing, probes, service, structure
from audit.catalogue.base import CodeInfo, Severity
from audit.catalogue.codes import Code

_ENTRIES: tuple[CodeInfo, ...] = (
    structure.ENTRIES + probes.ENTRIES + licensing.ENTRIES + service.ENTRIES
)

CATALOGUE: dict[str, CodeInfo] = {entry.code: entry for entry in _ENTRIES}
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - guards the tables
    raise RuntimeError("duplicate finding code in the catalogue")
if set(CATALOGUE) != set(Code):  # pragma: no cover - every constant has its title and explanation
    raise RuntimeError(f"codes without a catalogue entry: {sorted(set(Code) - set(CATALOGUE))}")

__all__ = ["CATALOGUE", "Code", "CodeInfo", "Severity"]
