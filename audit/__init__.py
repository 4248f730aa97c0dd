"""llava-audit: data validation and licence audit for LLaVA-format training data.

The library API, the calls the CLI itself makes (README "Use as a library")::

    from audit import Severity, check_files, load_config, run_audit

    result = check_files([Path("chat.json")])       # structure of files, no config needed
    errors = [f for f in result.findings if f.severity is Severity.ERROR]
    report = run_audit(load_config("audit.toml"))   # every stage, report published

    check_files      structure of conversation and metadata files -> StructureResult
    license_files    each record's licence verdict for a declared use -> LicenseResult
    load_config      read and validate an audit.toml -> Config
    run_audit        the full audit of every configured dataset, published -> AuditReport
    Finding          one observation (dataset, file, index, record_id, code, severity, message)
    Severity, Code   a finding's severity and its catalogued code (a str enum: compare to either)
    AuditError       a failure to run (subclasses below); ``exit_code`` is the CLI's exit code

Bad data is never an exception: it is a finding. An exception means the audit could not run.
Names are resolved on first use (PEP 562), so ``import audit`` and ``llava-audit --help`` load
none of polars, pandas or Great Expectations.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.config import Config
    from audit.config import load as load_config
    from audit.errors import (
        AlreadyRunningError,
        AuditError,
        ConfigError,
        InputError,
        ProbeError,
        StoreError,
        TakedownError,
        UsageError,
    )
    from audit.findings import Code, Finding, Severity
    from audit.licensing.stage import license_files
    from audit.output.model import AuditReport
    from audit.results import LicenseResult, StructureResult
    from audit.runner import run_audit
    from audit.structure import check_files

__version__ = "0.1.0"

__all__ = [
    "AlreadyRunningError",
    "AuditError",
    "AuditReport",
    "Code",
    "Config",
    "ConfigError",
    "Finding",
    "InputError",
    "LicenseResult",
    "ProbeError",
    "Severity",
    "StoreError",
    "StructureResult",
    "TakedownError",
    "UsageError",
    "__version__",
    "check_files",
    "license_files",
    "load_config",
    "run_audit",
]

#: public name -> (module, name there)
_HOME: dict[str, tuple[str, str]] = {
    "load_config": ("audit.config", "load"),
    "Config": ("audit.config", "Config"),
    "check_files": ("audit.structure", "check_files"),
    "license_files": ("audit.licensing.stage", "license_files"),
    "run_audit": ("audit.runner", "run_audit"),
    "StructureResult": ("audit.results", "StructureResult"),
    "LicenseResult": ("audit.results", "LicenseResult"),
    "AuditReport": ("audit.output.model", "AuditReport"),
    **{name: ("audit.findings", name) for name in ("Code", "Finding", "Severity")},
    **{
        name: ("audit.errors", name)
        for name in (
            "AlreadyRunningError",
            "AuditError",
            "ConfigError",
            "InputError",
            "ProbeError",
            "StoreError",
            "TakedownError",
            "UsageError",
        )
    },
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use and keep the name here (PEP 562)."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home[0]), home[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
