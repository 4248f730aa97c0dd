"""The state store: one SQLite database for probe caches, the takedown ledger and run history.

Each concern lives in its own submodule and contributes its tables through :data:`SCHEMAS`; this
module owns only the connection: WAL mode so a killed writer never corrupts earlier commits, and a
busy timeout so a reader waits for a writer instead of failing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit.errors import StoreError

#: Table definitions registered by the store submodules (name -> idempotent DDL).
SCHEMAS: dict[str, str] = {}


def register_schema(name: str, ddl: str) -> None:
    """Called at import time by each store submodule to add its tables."""
    SCHEMAS[name] = ddl


class Store:
    """An open state database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            _import_submodules()
            for ddl in SCHEMAS.values():
                self.conn.executescript(ddl)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open state store: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: committed whole or not at all (crash safety)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _import_submodules() -> None:
    """Import every store submodule so their schemas are registered before first use."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
