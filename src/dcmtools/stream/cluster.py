"""``--cluster ADDRESS``: the per-file work of a command on a Dask cluster.

Dask (``dask`` and ``distributed``, the optional extra ``dcmtools[cluster]``)
is the engine: its scheduler places the tasks, moves them off a worker that
dies and runs them again elsewhere.  This module only feeds it:

* the driver (the command) reads its inputs as a stream and keeps a window of
  chunks in flight (constant memory at any number of inputs);
* results come back to the driver as they complete and are yielded in input
  order, so records stream from the driver and only the driver writes them
  (and the journal);
* a chunk whose worker died is run again by Dask on another worker; an item
  that keeps killing its workers (Dask's ``KilledWorker``) gets the command's
  ``lost`` record.  Every item gets exactly one result.
* a task run again after its worker died may find the output that its first
  attempt wrote ("exists"): when the scheduler's log says the chunk was on a
  worker that left, such an item is run once more with permission to replace
  that output (``again``).

Workers need dcmtools installed (the same version) and must see the input
and output paths (a shared file system).  Nothing here is imported unless
``--cluster`` (or ``DASK_SCHEDULER_ADDRESS``) is given.
"""

from __future__ import annotations

import importlib
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .records import DcmtoolsError, ErrorCode, ExitStatus

if TYPE_CHECKING:
    from distributed import Client, Future, Scheduler

T = TypeVar("T")
R = TypeVar("R")
# The module global a task sets on its worker before it runs: (module, attribute, value or Dask handle).
Shared = tuple[str, str, Any]

ENV = "DASK_SCHEDULER_ADDRESS"


class ClusterError(DcmtoolsError):
    """The cluster cannot be used (Dask not installed, scheduler unreachable): exit status 3."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(ErrorCode.CONNECT_FAILED, message, hint, ExitStatus.CONNECT)


def resolve_address(address: str | None) -> str | None:
    """``--cluster``, else ``DASK_SCHEDULER_ADDRESS``, else None (work locally)."""
    address = address or os.environ.get(ENV) or None
    if address and "://" not in address:
        address = f"tcp://{address}"
    return address


def _run_chunk(func: Callable[[T], R], chunk: list[T], state: Shared | None) -> list[R]:
    if state is not None:
        module, attribute, value = state
        setattr(importlib.import_module(module), attribute, value)
    return [func(item) for item in chunk]


def _lost_key(dask_scheduler: Scheduler, key: str, since: float) -> bool:  # runs on the scheduler
    """Was the task ``key`` running on (or its result held by) a worker that left since ``since``?"""
    for stamp, msg in dask_scheduler.get_events("all"):
        if stamp >= since and isinstance(msg, dict) and msg.get("action") == "remove-worker":
            lost = set(msg.get("processing-tasks") or ()) | set(msg.get("lost-computed-tasks") or ())
            if key in {str(k) for k in lost}:
                return True
    return False


class DaskExecutor:
    """A client of a running Dask scheduler that ``map_ordered`` can use."""

    def __init__(self, address: str, *, timeout: float = 30.0, window: int | None = None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ClusterError("`cluster` needs Dask", "pip install 'dcmtools[cluster]'") from None
        self.address = address
        self.client: Client | None
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.started = time.time()
        self.window = window
        self.rerun = 0  # items run once more after a lost worker (see again)

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {})) if self.client else 0

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _client(self) -> Client:
        if self.client is None:
            raise ClusterError(f"the client of the Dask scheduler at {self.address} is closed")
        return self.client

    def map_ordered(
        self,
        func: Callable[[T], R],
        items: Iterable[T],
        *,
        chunksize: int = 8,
        lost: Callable[[T, str], R] | None = None,
        state: Shared | None = None,
        again: Callable[[T, R], T | None] | None = None,
    ) -> Iterator[R]:
        from distributed import KilledWorker

        client = self._client()
        shared: Shared | None = None
        if state is not None:
            module, attribute, value = state
            # Sent once to every worker, not with every chunk.
            [handle] = client.scatter([value], broadcast=True, hash=False)
            shared = (module, attribute, handle)
        window = self.window or max(4, 4 * max(1, self.workers()))
        source = iter(items)
        pending: deque[tuple[list[T], Future[list[R]]]] = deque()
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                chunk = list(itertools.islice(source, max(1, chunksize)))
                if not chunk:
                    exhausted = True
                    break
                pending.append((chunk, self._submit(func, chunk, shared)))
            if not pending:
                break
            chunk, future = pending.popleft()
            try:
                results = future.result()
            except KilledWorker as exc:
                # Dask gave up on the chunk: every worker it went to died.  Find the item alone.
                results = list(self._alone(func, chunk, shared, lost, exc))
            key = str(future.key)
            future.release()
            if again is not None:
                results = self._again(func, chunk, results, shared, again, key)
            yield from results
            # The window refills only now: the results waiting on the driver stay bounded.
            del results

    def _submit(self, func: Callable[[T], R], chunk: list[T], shared: Shared | None) -> Future[list[R]]:
        return self._client().submit(_run_chunk, func, chunk, shared, pure=False)

    def _alone(
        self,
        func: Callable[[T], R],
        chunk: list[T],
        shared: Shared | None,
        lost: Callable[[T, str], R] | None,
        exc: BaseException,
    ) -> Iterator[R]:
        from distributed import KilledWorker

        for item in chunk:
            future = self._submit(func, [item], shared)
            try:
                yield future.result()[0]
            except KilledWorker:
                reason = "every Dask worker that ran it died (a crash in a codec or the system killed it)"
                if lost is None:
                    raise
                yield lost(item, reason)
            finally:
                future.release()

    def _again(
        self,
        func: Callable[[T], R],
        chunk: list[T],
        results: list[R],
        shared: Shared | None,
        again: Callable[[T, R], T | None],
        key: str,
    ) -> list[R]:
        redo: list[tuple[int, T]] = []
        for n, (item, result) in enumerate(zip(chunk, results, strict=False)):
            rerun = again(item, result)
            if rerun is not None:
                redo.append((n, rerun))
        if not redo:
            return results
        # Only when this chunk's worker left (the scheduler's event log says so) can an output be
        # our own earlier attempt's; otherwise "exists" is the user's file and stays an error.
        if not self._client().run_on_scheduler(_lost_key, key=key, since=self.started - 1.0):
            return results
        future = self._submit(func, [item for _, item in redo], shared)
        try:
            second = future.result()
        finally:
            future.release()
        results = list(results)
        for (n, _), result in zip(redo, second, strict=False):
            results[n] = result
        self.rerun += len(redo)
        return results
