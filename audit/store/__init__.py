"""The state store: one SQLite database for probe caches, the takedown ledger and run history.

Each concern lives in its own submodule and contributes its tables through :data:`SCHEMAS` (and
the steps that upgrade older files through :data:`MIGRATIONS`); this module owns only the
connection: WAL mode so a killed writer never corrupts earlier commits, and a busy timeout so a
reader waits for a writer instead of failing. :mod:`audit.store.sqlitefile` checks the file when it
is opened (never re-creating an empty, damaged or foreign one: the takedown ledger is in it) and
migrates older schemas.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit.store.sqlitefile import FileFormat, Migration, open_file

#: The state store's schema version (``PRAGMA user_version``); files from before versioning are 0.
#: Bump it with every schema change, registering the steps that bring an older file to it.
SCHEMA_VERSION = 4  # 2: the takedown ledger moved to its own file (ledgerfile.py); 3: URL opt-outs;
#: 4: URL image fingerprints (sha256, size) for the cross-URL placeholder pass, and perceptual
#: image hashes for takedown matching (imagehash.py's takedown_image_phash)
#: ``PRAGMA application_id`` of a state store ("llav"), so another program's database is refused.
APPLICATION_ID = 0x6C6C6176
#: The tables a state file had before schema versions (how such a file is recognised as ours).
UNVERSIONED_TABLES = frozenset(
    {
        "image_probe",
        "url_probe",
        "url_probe_log",
        "takedown_request",
        "takedown_key",
        "takedown_event",
        "takedown_blocklist",
        "takedown_image_hash",
        "runs",
        "run_datasets",
        "stage_cache",
    }
)
RESTORE = (
    "restore it from a backup or move it away to start a new cache; the takedown ledger is in it"
)

#: Table definitions registered by the store submodules (name -> idempotent DDL).
SCHEMAS: dict[str, str] = {}
#: Migration steps registered by the store submodules (version -> steps from version - 1).
MIGRATIONS: dict[int, list[Migration]] = {}


def register_schema(name: str, ddl: str) -> None:
    """Called at import time by each store submodule to add its tables. The DDL runs only when a
    file is created or migrated: changing it means bumping :data:`SCHEMA_VERSION` (and, for
    tables that already exist, a :func:`register_migration` step)."""
    SCHEMAS[name] = ddl


def register_migration(version: int, step: Migration) -> None:
    """Called at import time by a store submodule whose tables changed in schema ``version``."""
    MIGRATIONS.setdefault(version, []).append(step)


def state_format() -> FileFormat:
    """The state store's file format, once every submodule has registered its tables."""
    _import_submodules()
    return FileFormat(
        label="llava-audit state store",
        application_id=APPLICATION_ID,
        version=SCHEMA_VERSION,
        ddl=tuple(SCHEMAS.values()),
        migrations=MIGRATIONS,
        unversioned_tables=UNVERSIONED_TABLES,
        restore=RESTORE,
    )


class Store:
    """An open state database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = open_file(self.path, state_format())

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
