"""The two types every catalogue section uses: severities and code entries."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from audit.catalogue.codes import Code


class Severity(enum.StrEnum):
    """How bad a finding is for training (DESIGN.md "Findings")."""

    ERROR = "error"  # would crash, be silently dropped or mis-trained, or is forbidden for the use
    WARNING = "warning"  # suspicious but trainable
    INFO = "info"  # statistics

    @property
    def rank(self) -> int:
        return {"error": 2, "warning": 1, "info": 0}[self.value]


@dataclass(frozen=True)
class CodeInfo:
    """Catalogue entry: what a code means, shown beside findings in reports."""

    code: Code
    severity: Severity
    title: str
    explanation: str
