"""The run lock refuses a second audit, in this process and in another one, and names the holder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lockholder import lock_held_elsewhere

from audit.errors import AlreadyRunningError
from audit.runlock import RunLock, lock_path_for


def test_lock_path_sits_beside_the_state_store(tmp_path: Path) -> None:
    assert lock_path_for(tmp_path / "state.sqlite") == tmp_path / "state.sqlite.lock"


def test_second_lock_in_the_same_process_is_refused_and_freed_on_release(tmp_path: Path) -> None:
    path = tmp_path / "s" / "run.lock"
    with RunLock(path), pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
        RunLock(path).acquire()
    with RunLock(path) as again:
        assert again.held


def test_lock_held_by_another_process_is_refused_until_it_exits(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    with (
        lock_held_elsewhere(path, wait=10) as holder,
        pytest.raises(AlreadyRunningError, match=f"pid {holder.pid}"),
    ):
        RunLock(path).acquire()
    with RunLock(path) as lock:  # the kernel dropped the lock when the holder exited
        assert lock.held


def test_a_nul_byte_in_the_lock_path_is_a_store_error_not_a_traceback(tmp_path: Path) -> None:
    from audit.errors import StoreError

    with pytest.raises(StoreError, match="NUL byte"):
        RunLock(tmp_path / "st\x00ate.lock").acquire()
