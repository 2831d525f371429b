"""``--jobs N``: per-file work spread over worker processes, results in input order.

Workers are forked (on Linux) after the parent has imported what the work
needs, so each worker starts warm.  Results come back in the order of the
inputs, lazily, so a million inputs stream with bounded memory.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """All the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_jobs(jobs: int | None) -> int:
    """``None`` or 0 mean all cores; negative counts from all cores down."""
    if not jobs:
        return default_jobs()
    if jobs < 0:
        return max(1, default_jobs() + jobs)
    return jobs


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group; only the parent handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def map_ordered(
    func: Callable[[T], R],
    items: Iterable[T],
    jobs: int = 1,
    chunksize: int = 8,
) -> Iterator[R]:
    """``map(func, items)`` over ``jobs`` processes, yielding results in order.

    ``func`` must be a module-level function and items and results picklable.
    With ``jobs <= 1`` it runs in this process (no pickling at all).
    """
    if jobs <= 1:
        for item in items:
            yield func(item)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = context.Pool(jobs, initializer=_ignore_sigint)
    try:
        yield from pool.imap(func, items, chunksize)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
