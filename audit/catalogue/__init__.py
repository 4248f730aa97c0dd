"""The catalogue of finding codes: one stable slug, severity, title and explanation each.

Entries live in one module per stage (``structure``, ``probes``, ``licensing``, ``service``) so the
table stays readable; this package joins them into the single :data:`CATALOGUE` that
:mod:`audit.findings` exposes. Add new codes to the section of their stage.
"""

from __future__ import annotations

from audit.catalogue import licensing, probes, service, structure
from audit.catalogue.base import CodeInfo, Severity

_ENTRIES: tuple[CodeInfo, ...] = (
    structure.ENTRIES + probes.ENTRIES + licensing.ENTRIES + service.ENTRIES
)

CATALOGUE: dict[str, CodeInfo] = {entry.code: entry for entry in _ENTRIES}
if len(CATALOGUE) != len(_ENTRIES):  # pragma: no cover - guards the tables
    raise RuntimeError("duplicate finding code in the catalogue")

__all__ = ["CATALOGUE", "CodeInfo", "Severity"]
