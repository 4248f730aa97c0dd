"""Licences (DESIGN.md stage 3, spec/licensing.md §8): each record's sources and its verdict per use.

The public surface is what the CLI and the stage runner need; everything else is reached through
its module. The modules, in import order (each imports only the ones above it):

    policy       the policy data (audit/data/policy.toml + user TOML): loaded, merged, validated
    provenance   pure: which source and component each part of a record comes from
    verdicts     pure: a record's resolved licences and its verdict per purpose and action
    totals       pure: per-file and per-dataset counts, findings and the summary line
    evidence     pure: typed verdict rows, each with its chain of evidence (quote, public URL)
    inputs       I/O: records as views (JSON, the CC-3M TSV), metadata URLs, COCO and Visual
                 Genome joins, opt-outs, image sizes against COCO's (derivatives), the units
                 an input is read in (a file, or each shard of a set)
    units        a unit read and tallied (assessed): the per-record loop of both engines
    export       I/O: atomic text files, the verdicts JSON Lines written and read back
    attribution  I/O: the attribution export (Markdown or JSON Lines), written atomically
    stage        the library calls: license_files (the `license` command), license_dataset (a run)

Names are resolved on first use, so importing this package (the CLI does at start-up) loads no
loader, store or file-format code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.licensing.evidence import VerdictRow
    from audit.licensing.export import VerdictWriter, read_verdict_rows
    from audit.licensing.policy import Verdict
    from audit.licensing.stage import LEGACY_USES, license_dataset, license_files
    from audit.licensing.totals import usable_count
    from audit.licensing.verdicts import ACTIONS, PURPOSES, USES, use_key

__all__ = [
    "ACTIONS",
    "LEGACY_USES",
    "PURPOSES",
    "USES",
    "Verdict",
    "VerdictRow",
    "VerdictWriter",
    "license_dataset",
    "license_files",
    "read_verdict_rows",
    "usable_count",
    "use_key",
]

_HOME = {
    "ACTIONS": "verdicts",
    "LEGACY_USES": "stage",
    "PURPOSES": "verdicts",
    "USES": "verdicts",
    "use_key": "verdicts",
    "VerdictRow": "evidence",
    "VerdictWriter": "export",
    "read_verdict_rows": "export",
    "Verdict": "policy",
    "license_dataset": "stage",
    "license_files": "stage",
    "usable_count": "totals",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
