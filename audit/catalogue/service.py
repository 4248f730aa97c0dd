"""Expectations, gate and the service (issue 5)."""

from __future__ import annotations

from audit.catalogue.base import CodeInfo, Severity
from audit.catalogue.codes import Code

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

ENTRIES: tuple[CodeInfo, ...] = (
    # ---- expectations and service (issue 5) -------------------------------------------------------
    CodeInfo(
        Code.EXPECTATION_FAILED,
        E,
        "Expectation suite rule failed",
        "A rule of the dataset kind's suite in `expectations/` failed on the per-record table (row "
        "count, id or image path pattern, missing-image rate, licence verdicts, duplicates). The "
        "severity is the rule's own (critical = error, warning, info); the message names the rule, "
        "the column, how many rows broke it and example record indexes. Edit the suite to change it.",
    ),
    CodeInfo(
        Code.EXPECTATION_INVALID,
        E,
        "Expectation could not be evaluated",
        "Great Expectations could not evaluate a rule of the suite, usually because it names a column "
        "the per-record table does not have (see expectations/README.md) or has a bad argument; the "
        "rule checked nothing.",
    ),
)
