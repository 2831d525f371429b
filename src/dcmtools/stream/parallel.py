"""``--jobs N``: per-file work spread over worker processes, results in input order.

Workers are forked (on Linux) after the parent has imported what the work
needs, so each worker starts warm.  Results come back in the order of the
inputs, lazily, so a million inputs stream with bounded memory.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

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
    lost: Callable[[T, str], R] | None = None,
    state: tuple[str, str, object] | None = None,
    again: Callable[[T, R], T | None] | None = None,
) -> Iterator[R]:
    """``map(func, items)`` over ``jobs`` processes, yielding results in order.

    ``func`` must be a module-level function and items and results picklable.
    With ``jobs <= 1`` it runs in this process (no pickling at all).

    A worker process that dies (a crash in a C extension, the OOM killer, an
    exception that is not an ``Exception``) never hangs the run nor loses an
    item: the pool is replaced, the items that were in flight are run again
    one by one in a fresh pool to find the one that kills its worker, and
    that item's result is ``lost(item, reason)`` (``WorkerLost`` is raised
    when no ``lost`` is given).  The others get their normal results.

    Inside ``use_executor(...)`` (``--cluster``) the work goes to that
    executor instead (``dcmtools.stream.cluster``), whatever ``jobs`` says.
    ``state`` is ``(module, attribute, value)``: what ``func`` reads from a
    module global in the parent (forked workers inherit it; cluster workers
    get it set once).  ``again(item, result)`` names the item to run once
    more when a result may come from an earlier attempt lost with its worker
    (an output that "exists" because that attempt wrote it).
    """
    if _EXECUTOR is not None:
        yield from _EXECUTOR.map_ordered(func, items, chunksize=chunksize, lost=lost, state=state, again=again)
        return
    if jobs <= 1:
        for item in items:
            yield func(item)
        return
    yield from _Pool(func, jobs, chunksize, lost).map(items)


class Executor(Protocol):
    """Where ``map_ordered`` sends its work instead of local processes (``dcmtools.stream.cluster.DaskExecutor``)."""

    def map_ordered(
        self,
        func: Callable[[T], R],
        items: Iterable[T],
        *,
        chunksize: int = ...,
        lost: Callable[[T, str], R] | None = ...,
        state: tuple[str, str, object] | None = ...,
        again: Callable[[T, R], T | None] | None = ...,
    ) -> Iterator[R]: ...


_EXECUTOR: Executor | None = None  # set by use_executor()


@contextmanager
def use_executor(executor: Executor | None) -> Iterator[None]:
    """Within this block, ``map_ordered`` sends its work to ``executor`` (None: local)."""
    global _EXECUTOR
    previous, _EXECUTOR = _EXECUTOR, executor
    try:
        yield
    finally:
        _EXECUTOR = previous


class WorkerLost(RuntimeError):
    """A worker process died while working on this item."""


def _run_chunk(func: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [func(item) for item in chunk]


class _Pool(Generic[T, R]):
    def __init__(self, func: Callable[[T], R], jobs: int, chunksize: int, lost: Callable[[T, str], R] | None) -> None:
        self.func = func
        self.jobs = jobs
        self.chunksize = max(1, chunksize)
        self.lost = lost
        self.executor: Any = None  # a ProcessPoolExecutor while map() runs
        self.replaced = 0

    def _new(self, workers: int) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        return ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint)

    def map(self, items: Iterable[T]) -> Iterator[R]:
        from collections import deque
        from concurrent.futures.process import BrokenProcessPool

        self.executor = self._new(self.jobs)
        pending: deque[tuple[list[T], Future[list[R]]]] = deque()  # (chunk, future) in input order
        source = iter(items)
        window = self.jobs * 4  # chunks in flight: bounded memory
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    chunk = list(itertools.islice(source, self.chunksize))
                    if not chunk:
                        exhausted = True
                        break
                    pending.append((chunk, self._submit(chunk)))
                if not pending:
                    break
                chunk, future = pending.popleft()
                try:
                    results = future.result()
                except BrokenProcessPool:
                    # Every chunk in flight failed with the pool: run them again alone.
                    chunks = [chunk] + [c for c, _ in pending]
                    pending.clear()
                    self._replace()
                    for again in chunks:
                        yield from self._one_by_one(again)
                    continue
                yield from results
            self.executor.shutdown(wait=True)
        except BaseException:
            self._kill()
            raise

    def _submit(self, chunk: list[T]) -> Future[list[R]]:
        from concurrent.futures.process import BrokenProcessPool

        future: Future[list[R]]
        try:
            future = self.executor.submit(_run_chunk, self.func, chunk)
        except BrokenProcessPool:
            self._replace()
            future = self.executor.submit(_run_chunk, self.func, chunk)
        return future

    def _one_by_one(self, chunk: list[T]) -> Iterator[R]:
        from concurrent.futures.process import BrokenProcessPool

        for item in chunk:
            try:
                yield self._submit([item]).result()[0]
            except BrokenProcessPool:
                self._replace()
                reason = "the worker process died while working on it (a crash in a codec or the system killed it)"
                if self.lost is None:
                    raise WorkerLost(reason) from None
                yield self.lost(item, reason)

    def _replace(self) -> None:
        self._kill()
        self.replaced += 1
        self.executor = self._new(self.jobs)

    def _kill(self) -> None:
        executor, self.executor = self.executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:  # a worker stuck in a C call would keep the run alive
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
