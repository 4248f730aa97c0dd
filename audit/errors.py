"""Failures to run. Findings describe the data; these say the audit itself could not proceed.

Each class carries the process exit code of DESIGN.md so the CLI can map any of them to one line and
one code without knowing where it came from.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base: a clear one-line message for the user, and the exit code to leave with."""

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(AuditError):
    """Bad command-line arguments or an impossible combination of them."""

    exit_code = 2


class ConfigError(AuditError):
    """`audit.toml` (or the licence policy) is unreadable or invalid."""

    exit_code = 2


class InputError(AuditError):
    """An input file cannot be audited at all (missing, unreadable, not JSON at all)."""

    exit_code = 3

    def __init__(self, path: str, problem: str, position: str | None = None) -> None:
        where = f"{path}:{position}" if position else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.problem = problem
        self.position = position


class StoreError(AuditError):
    """The SQLite state store cannot be opened or is locked by another audit."""

    exit_code = 3


class ProbeError(AuditError):
    """A probe (images, URLs, expectations) could not run as a whole."""

    exit_code = 3


class TakedownError(AuditError):
    """A takedown request is malformed or refers to something that does not exist."""

    exit_code = 2


class OutputError(AuditError):
    """An output file cannot be written where asked (a folder or a FIFO in its place, a full disk)."""

    exit_code = 3


class EngineError(AuditError):
    """The chosen engine cannot start: the Spark extra is not installed, no Java, a bad master."""

    exit_code = 3


class AlreadyRunningError(AuditError):
    """Another audit holds the run lock; two audits never run at once."""

    exit_code = 3
