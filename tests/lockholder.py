"""A run lock held by another process, for tests of what a second audit does meanwhile."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def lock_held_elsewhere(path: Path, *, wait: float) -> Iterator[subprocess.Popen[str]]:
    """A child process holds the :class:`audit.runlock.RunLock` at ``path`` for the block; it must
    exit within ``wait`` seconds of being released."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from audit.runlock import RunLock; "
            f"l = RunLock({str(path)!r}); l.acquire(); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(wait)
