"""A per-file batch past one machine: its shard, its journal and where its work runs.

    from dcmtools.stream.batch import Batch
    from dcmtools.stream.shard import Shard

    with Batch("anonymize", shard=Shard(0, 4), journal="anon-0.journal", emit=print) as batch:
        for item in batch.inputs(iter_inputs(["/archive"])):      # this shard's, not done before
            ...                                                   # the work (map_ordered)
            batch.done(record)                                    # the journal learns the result

* ``inputs`` keeps the items of the shard (``dcmtools.stream.shard``) and,
  with a journal, passes over those it records as done: each gets a record
  ``{"type": "file", "path", "ok": true, "skipped": true, "reason"}`` through
  ``emit`` (with the ``out`` the journal kept), so a re-run says what it did
  not redo.  Failed items and items never recorded are worked on again.
* ``done(record)`` records a file record's result: ``done`` or ``failed``
  (with its error), keyed by the input's absolute path, one transaction per
  record (a process killed at any moment loses at most the record in flight).
* ``executor()`` is the block inside which ``map_ordered`` runs on the Dask
  cluster (``cluster`` address), else locally.
* ``overwrite(asked)``: on a resumed journal, an item not recorded as done
  may have been written by the killed run just before it died: its output is
  replaced (the journal, not the output folder, says what is done).

One journal per shard: a journal remembers its command and shard and refuses
another.  ``dcmtools journal status`` and ``merge`` read several.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .journal import Journal, JournalError
from .shard import Shard, select

if TYPE_CHECKING:
    from .cluster import DaskExecutor
    from .inputs import InputItem

R = TypeVar("R")


class Batch:
    def __init__(
        self,
        command: str,
        *,
        shard: Shard | None = None,
        journal: str | None = None,
        cluster: str | None = None,
        emit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.command = command
        self.shard = shard
        self.cluster = cluster
        self.emit = emit or (lambda record: None)
        self.skipped = 0
        self.journal: Journal | None = None
        self.resumed = False
        self.executor_: DaskExecutor | None = None
        if journal is not None:
            self.journal = Journal(journal, kind=command)
            try:
                self._check_shard()
            except BaseException:
                self.journal.close()
                raise

    def _check_shard(self) -> None:
        assert self.journal is not None
        mine = str(self.shard) if self.shard else None
        if self.journal.meta("shard", "unset") == "unset":
            self.journal.set_meta(shard=mine)
        elif self.journal.meta("shard") != mine:
            raise JournalError(
                f"{self.journal.path!r} is the journal of shard {self.journal.meta('shard') or 'none'}, "
                f"not of shard {mine or 'none'}: one journal per shard"
            )
        self.resumed = self.journal.total() > 0

    # -- inputs
    def inputs(self, items: Iterable[InputItem]) -> Iterator[InputItem]:
        """The items of this shard that the journal does not record as done."""
        for item in select(items, self.shard):
            if self.journal is not None and item.error is None and item.path:
                known = self.journal.get(_key(item.path))
                if known is not None and known.state == "done":
                    self.skipped += 1
                    record: dict[str, Any] = {
                        "type": "file",
                        "path": item.path,
                        "ok": True,
                        "skipped": True,
                        "reason": f"done in the journal {self.journal.path}",
                    }
                    if known.data.get("out"):
                        record["out"] = known.data["out"]
                    self.emit(record)
                    continue
            yield item

    def overwrite(self, asked: bool) -> bool:
        return asked or self.resumed

    # -- results
    def done(self, record: dict[str, Any]) -> None:
        """The journal learns one file record's result (nothing without a journal)."""
        if self.journal is None or record.get("type") != "file" or not record.get("path") or record.get("skipped"):
            return
        ok = record.get("ok") is not False
        data = {"out": record["out"]} if ok and record.get("out") else None
        self.journal.record(
            _key(record["path"]), "done" if ok else "failed", error=None if ok else record.get("error"), data=data
        )

    # -- where the work runs
    @contextmanager
    def executor(self) -> Iterator[DaskExecutor | None]:
        if not self.cluster:
            with nullcontext():
                yield None
            return
        from .cluster import DaskExecutor
        from .parallel import use_executor

        with DaskExecutor(self.cluster) as executor, use_executor(executor):
            self.executor_ = executor
            yield executor

    @overload
    def stream(self, results: Iterable[dict[str, Any]], record: None = None) -> Iterator[dict[str, Any]]: ...
    @overload
    def stream(self, results: Iterable[R], record: Callable[[R], dict[str, Any]]) -> Iterator[R]: ...
    def stream(self, results: Iterable[Any], record: Callable[[Any], dict[str, Any]] | None = None) -> Iterator[Any]:
        """``results`` (a lazy generator, e.g. of ``map_ordered``) run inside ``executor()``,
        each result's record (``record(result)``, else the result) given to ``done``."""
        with self.executor():
            for result in results:
                self.done(record(result) if record is not None else result)
                yield result

    def summary(self) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.shard is not None:
            extra["shard"] = str(self.shard)
        if self.journal is not None:
            extra["journal"] = self.journal.path
            extra["skipped"] = self.skipped
        if self.cluster:
            extra["cluster"] = self.cluster
        return extra

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _key(path: str) -> str:
    return os.path.abspath(path)
