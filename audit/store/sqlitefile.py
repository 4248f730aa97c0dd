"""Opening a versioned SQLite file of ours without ever mistaking, or silently replacing, a bad one.

The state store holds the takedown ledger, which must survive anything: a file that is empty,
truncated, damaged, another program's database or not SQLite at all is refused with one line that
names it and says how to restore it. It is never re-created, since an empty blocklist would let
taken-down data pass the gate. Only a path that does not exist is created, and atomically (built
under a temporary name beside it, then linked into place), so a crash mid-creation never leaves a
half-made file that the next run would have to refuse.

A file says what it is through ``PRAGMA application_id`` and which schema it has through ``PRAGMA
user_version``. Older schemas are migrated in one transaction; newer ones are refused. Files from
before versioning (both pragmas 0) are recognised by their tables and columns. Everything here is
per file format, so a second file (e.g. the ledger on its own) only needs its own :class:`FileFormat`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.errors import StoreError

_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}

#: One migration step; it runs inside the migration's transaction, after the current DDL has
#: created any missing table, so it only has to change tables that already existed.
Migration = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class FileFormat:
    """What one kind of file of ours is: how it is recognised, created and migrated."""

    label: str  # "llava-audit state store", for messages
    application_id: int
    version: int
    ddl: tuple[str, ...]  # idempotent scripts (CREATE ... IF NOT EXISTS) of the current schema
    migrations: Mapping[int, Sequence[Migration]]  # version -> steps from version - 1 to it
    unversioned_tables: frozenset[str]  # tables of files from before versioning (schema 0)
    restore: str  # the advice every refusal ends with


def open_file(path: Path, fmt: FileFormat) -> sqlite3.Connection:
    """A connection to ``path`` checked, migrated to ``fmt.version``, in WAL mode; or StoreError."""
    if _regular_file_size(path, fmt) is None:
        _create(path, fmt)
    _check_header(path, fmt)
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the {fmt.label}: {exc}") from None
    try:
        with _sqlite_errors(path, fmt, f"cannot open the {fmt.label}"):
            version = _identify(conn, path, fmt)
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise _refusal(path, fmt, f"is damaged (SQLite quick_check: {problems[0]})")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        if version < fmt.version:
            with _sqlite_errors(path, fmt, f"cannot upgrade it from schema {version}"):
                _migrate(conn, fmt)
    except BaseException:
        conn.close()
        raise
    return conn


def _refusal(path: Path, fmt: FileFormat, problem: str) -> StoreError:
    return StoreError(f"{path}: {problem}; {fmt.restore}")


@contextlib.contextmanager
def _sqlite_errors(path: Path, fmt: FileFormat, doing: str) -> Iterator[None]:
    """SQLite's corruption codes become a refusal; other errors (locked, read-only) one line."""
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED:
            raise _refusal(path, fmt, "is damaged (truncated or corrupt)") from None
        raise StoreError(f"{path}: {doing}: {exc}") from None


def _regular_file_size(path: Path, fmt: FileFormat) -> int | None:
    """The file's size, None when nothing is there; anything but a non-empty file is refused."""
    if "\0" in str(path):
        raise StoreError(f"{str(path)!r}: a path with a NUL byte cannot name the {fmt.label}")
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise StoreError(f"{path}: is a broken symbolic link, not a {fmt.label}") from None
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot open the {fmt.label}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "special file")
        raise StoreError(f"{path}: is a {kind}, not a {fmt.label} (which is a regular file)")
    if st.st_size == 0:
        raise _refusal(path, fmt, "is empty (0 bytes)")
    return st.st_size


_FILE_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def _check_header(path: Path, fmt: FileFormat) -> None:
    """Refuse text, random bytes and cut-off headers before SQLite is given the file."""
    try:
        with path.open("rb") as f:
            header = f.read(_HEADER_SIZE)
    except OSError as exc:
        raise StoreError(f"{path}: cannot open the {fmt.label}: {exc.strerror}") from None
    if header.startswith(_MAGIC) or _MAGIC.startswith(header):
        if len(header) < _HEADER_SIZE:
            raise _refusal(path, fmt, f"is truncated ({len(header)} bytes)")
    else:
        raise _refusal(path, fmt, f"is not a SQLite database, so not a {fmt.label}")


def _identify(conn: sqlite3.Connection, path: Path, fmt: FileFormat) -> int:
    """The file's schema version, once it is known to be ours and not from a newer tool."""
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    tables = _tables(conn)
    if app_id == fmt.application_id:
        if version > fmt.version:
            raise StoreError(
                f"{path} was written by a newer llava-audit (schema {version}); "
                "upgrade or point --state elsewhere"
            )
        missing = sorted(set(_reference(fmt.ddl)) - tables) if version == fmt.version else []
        if missing:
            raise _refusal(path, fmt, f"is damaged (table {', '.join(missing)} missing)")
        return int(version)
    if app_id == 0 and version == 0 and _is_unversioned_ours(conn, tables, fmt):
        return 0
    raise _refusal(path, fmt, f"is a SQLite database but not a {fmt.label}")


def _tables(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {name for (name,) in rows if not name.startswith("sqlite_")}


def _is_unversioned_ours(conn: sqlite3.Connection, tables: set[str], fmt: FileFormat) -> bool:
    """A file from before versioning: some of its tables, and those still in the schema with no
    column the schema lacks, so another program's ``runs`` table is not taken for ours."""
    reference = _reference(fmt.ddl)
    ours = tables & fmt.unversioned_tables
    return bool(ours) and all(_columns(conn, t) <= reference[t] for t in ours & reference.keys())


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))}


@functools.cache
def _reference(ddl: tuple[str, ...]) -> dict[str, set[str]]:
    """Table -> columns of the current schema, read from a scratch in-memory database."""
    conn = sqlite3.connect(":memory:")
    try:
        for script in ddl:
            conn.executescript(script)
        return {table: _columns(conn, table) for table in _tables(conn)}
    finally:
        conn.close()


def _statements(script: str) -> Iterator[str]:
    """The statements of a DDL script one by one (``executescript`` would commit first)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def _install(conn: sqlite3.Connection, fmt: FileFormat, since: int) -> None:
    """Bring a file at schema ``since`` to the current one (inside the caller's transaction)."""
    for script in fmt.ddl:
        for statement in _statements(script):
            conn.execute(statement)
    for version in range(since + 1, fmt.version + 1):
        for step in fmt.migrations.get(version, ()):
            step(conn)
    conn.execute(f"PRAGMA application_id = {int(fmt.application_id)}")
    conn.execute(f"PRAGMA user_version = {int(fmt.version)}")


def _migrate(conn: sqlite3.Connection, fmt: FileFormat) -> None:
    """One transaction: a failed or killed migration leaves the file exactly as it was."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version < fmt.version:  # else another process migrated it while we waited
            _install(conn, fmt, version)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create(path: Path, fmt: FileFormat) -> None:
    """Build a new file under a temporary name and link it into place (never over another)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))  # mode as SQLite's
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the {fmt.label}: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(temp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN")
            _install(conn, fmt, 0)
            conn.execute("COMMIT")
        finally:
            conn.close()
        _link(temp, path)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"{path}: cannot create the {fmt.label}: {exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def _link(temp: Path, path: Path) -> None:
    """Give ``temp`` the name ``path`` unless a file appeared there meanwhile (then keep that)."""
    try:
        os.link(temp, path)
    except FileExistsError:
        return  # another process created it first: its file, maybe already written to, wins
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        temp.rename(path)  # a file system without hard links (FAT, some network mounts)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
