"""Licences (DESIGN.md stage 3, spec/licensing.md §8): each record's sources and its verdict per use.

The public surface is what the CLI and the stage runner need; everything else is reached through
its module. The modules, in import order (each imports only the ones above it):

    policy       the policy data (audit/data/policy.toml + user TOML): loaded, merged, validated
    provenance   pure: which source and component each part of a record comes from
    verdicts     pure: a record's resolved licences and its verdict per use (cached by parts)
    totals       pure: per-file and per-dataset counts, findings and the summary line
    inputs       I/O: records as views, metadata URLs, COCO and Visual Genome joins, opt-outs
    attribution  I/O: the attribution export (Markdown or JSON Lines), written atomically
    stage        the library calls: license_files (the `license` command), license_dataset (a run)

Names are resolved on first use, so importing this package (the CLI does at start-up) loads no
loader, store or file-format code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.licensing.policy import Verdict
    from audit.licensing.stage import license_dataset, license_files
    from audit.licensing.totals import usable_count
    from audit.licensing.verdicts import USES

__all__ = ["USES", "Verdict", "license_dataset", "license_files", "usable_count"]

_HOME = {
    "USES": "verdicts",
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
