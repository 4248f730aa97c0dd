"""The run lock: never two audits at once, also across processes (DESIGN.md stage 7).

An advisory ``fcntl.flock`` on a file beside the state store. The kernel drops the lock when its
holder exits, however it exits (kill -9 included), so a crash never leaves a stale lock behind the
way a "pid file exists" check would. The holder writes its pid into the file so the refusal can say
who is running.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from audit.errors import AlreadyRunningError, StoreError


def lock_path_for(state_path: str | Path) -> Path:
    """The lock file of a state store: ``<state>.lock`` in the same folder."""
    state = Path(state_path)
    return state.with_name(state.name + ".lock")


class RunLock:
    """A non-blocking, cross-process exclusive lock; use as a context manager.

    Two ``RunLock`` objects on the same path conflict even inside one process (flock locks belong
    to the open file description), so a thread cannot slip past a running audit either.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock now or raise :class:`AlreadyRunningError` naming the holder's pid."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except ValueError:  # a NUL byte in the configured path
            raise StoreError(f"{self.path!r}: cannot open the run lock: NUL byte in path") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the run lock: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise AlreadyRunningError(
                f"another audit is running ({who} holds {self.path}); two audits never run at once"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up; the file stays (removing it would race with the next acquirer)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
