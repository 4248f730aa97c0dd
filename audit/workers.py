"""The one way this package starts worker processes (structure, images and URL workers alike).

Start method: spawn, everywhere. Fork would copy a parent that may be running threads (importing
polars alone starts three; rich refreshes its progress bar from another): a child forked while one
of them holds a lock can deadlock. The fork server avoids that too, but on Python 3.11 a pool
whose worker was killed sometimes never noticed (about one run in ten, while another worker waited
on a queue); spawned workers are plain children of this process, so a crash is always reported.
Spawn costs each worker an interpreter start and its imports, which both cores do side by side.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any


def context() -> SpawnContext:
    """The package's multiprocessing context, for queues, shared values and processes."""
    return multiprocessing.get_context("spawn")


def can_start() -> bool:
    """Spawned workers re-import ``__main__`` by path: a script read from stdin has none, so its
    caller runs the work in-process instead."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or Path(main_file).exists()


def pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A process pool of ``workers`` processes started the package's way."""
    return ProcessPoolExecutor(
        workers, mp_context=context(), initializer=initializer, initargs=initargs
    )


def watch_all(pool: ProcessPoolExecutor) -> None:
    """Call once the submits that start the pool's workers are made, so a worker that dies is
    always noticed. The pool's manager thread watches the workers it knew at its last wake-up, and
    a submit wakes it *before* starting the worker it needs (CPython 3.11-3.13): a death of the
    last worker started would go unseen and the pool would wait for ever. Submitting a call that
    starts no worker is that wake-up."""
    pool.submit(int)
