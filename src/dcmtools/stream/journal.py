"""The journal: the memory of a batch that outlives one run (SQLite, WAL, one file per run or shard).

    from dcmtools.stream.journal import Journal

    with Journal("run.journal", kind="migrate") as journal:
        journal.add([("1.2.3", {"patient": "H001"}), ("1.2.4", {})])      # planned
        for item in journal.items(states=["planned", "failed"], max_attempts=3):
            journal.begin(item.id)                  # attempts + 1, before the work
            ...                                     # the work
            journal.set_state(item.id, "done")      # after the work, never before
        print(journal.counts())                     # {"planned": 0, "done": 2, ...}

What it keeps, in one file:

* ``items``: one row per item, keyed by a stable id (a study UID, a path, a
  SOP Instance UID): its ``state`` (any word; ``planned`` when added), the
  ``attempts`` begun, the ``last_error`` (a record's error object), the
  item's ``data`` (JSON) and when it last changed.
* ``plan``: the units of work that produce items (e.g. the date windows of an
  inventory), each ``pending`` or ``done``; ``plan_done(key, items)`` adds a
  unit's items and marks it done in one transaction, so a plan interrupted
  anywhere resumes at the first unit not done and never half-adds one.
* ``parts``: the parts of an item, when an item is made of several (the files
  of a study, grouped by series): ``add_parts``, ``parts(item)``,
  ``part_groups()`` (per item: parts and groups), read in pages as well.
* ``meta``: what the run was started with (the command, its peers ...), so
  that the same command run again can check it is resuming the same run.
* ``events``: a count of items per state and 10 s, for throughput and ETA
  without scanning the items.

Safety: every change is a transaction in WAL mode.  A process killed (kill -9)
at any moment loses at most the change in flight: an item is in the state its
last committed change gave it, so a caller that marks an item done only after
the work never finds one "done" that was not.  ``synchronous=NORMAL`` (the
default) survives a killed process; ``durable=True`` (``synchronous=FULL``)
also survives a power cut, at some cost in speed.

Memory: ``items()`` reads in pages by rowid (keyset pagination), so iterating
10^6 items holds one page, and the caller may change items while iterating.
``counts()`` and ``status()`` use an index and the 10-second event buckets:
well under a second at 10^6 items.

Threads: one ``Journal`` may be shared by threads (a lock around the
connection).  Several processes may open the same file (SQLite's own
locking, with a busy timeout); one file per shard avoids the contention.
``dcmtools.stream.journal_merge.merge(target, sources)`` gathers shard journals into one.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

SCHEMA_VERSION = 1
T = TypeVar("T")
PAGE = 1000  # rows per page of items() and per transaction of add()
BUCKET = 10.0  # seconds per row of the events table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    data TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_state ON items (state);
CREATE TABLE IF NOT EXISTS plan (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    data TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS parts (
    item TEXT NOT NULL,
    part TEXT NOT NULL,
    grp TEXT,
    data TEXT,
    PRIMARY KEY (item, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    bucket INTEGER NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (bucket, state)
) WITHOUT ROWID;
"""


class JournalError(Exception):
    """The journal file cannot be used (not a journal, another kind of run, unreadable)."""


@dataclass(frozen=True)
class Item:
    """One item of the journal as read by ``items()`` / ``get()``."""

    id: str
    state: str
    attempts: int
    last_error: dict[str, Any] | None
    data: dict[str, Any]
    updated: float
    seq: int


class Journal:
    """One journal file (see the module docs).  A context manager; ``close()`` otherwise."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str | None = None,
        durable: bool = False,
        create: bool = True,
        clock: Any = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.clock = clock
        if not create and not os.path.exists(self.path):
            raise JournalError(f"no journal at {self.path!r}")
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path!r} is not a journal that can be opened ({exc})") from None
        self._lock = threading.RLock()
        self._in_tx = False
        found_kind = self.meta("kind")
        if found_kind is None and kind is not None:
            self.set_meta(kind=kind, schema=SCHEMA_VERSION, created=self.clock())
        elif kind is not None and found_kind != kind:
            raise JournalError(f"{self.path!r} is the journal of a {found_kind} run, not of a {kind} run")

    # -- lifecycle
    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None  # type: ignore[assignment]

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group changes into one atomic transaction (nested calls join the outer one)."""
        with self._lock:
            if self._in_tx:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield
            except BaseException:
                self._in_tx = False
                self._db.execute("ROLLBACK")
                raise
            self._in_tx = False
            self._db.execute("COMMIT")

    # -- meta
    def meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, **values: Any) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def all_meta(self) -> dict[str, Any]:
        with self._lock:
            return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    # -- items
    def add(
        self,
        items: Iterable[tuple[str, dict[str, Any] | None] | str],
        state: str = "planned",
        *,
        update_data: bool = False,
    ) -> int:
        """Add items (``id`` or ``(id, data)``) in ``state``; ids already there keep their state
        (their data is replaced with ``update_data``).  Streams: one transaction per ``PAGE``
        items.  Returns how many were new."""

        def row(entry: tuple[str, dict[str, Any] | None] | str) -> tuple[str, str, str | None, float]:
            item_id, data = (entry, None) if isinstance(entry, str) else entry
            return str(item_id), state, json.dumps(data, separators=(",", ":")) if data else None, self.clock()

        return sum(self._insert(batch, update_data) for batch in _pages(map(row, items)))

    def _insert(self, batch: list[tuple[str, str, str | None, float]], update_data: bool) -> int:
        with self.transaction():
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO items (id, state, data, updated) VALUES (?, ?, ?, ?)", batch)
            added = self._db.total_changes - before
            if update_data:
                self._db.executemany(
                    "UPDATE items SET data = ? WHERE id = ? AND data IS NOT ?", [(b[2], b[0], b[2]) for b in batch]
                )
            self._event(batch[0][1], added)
        return added

    def get(self, item_id: str) -> Item | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row else None

    def begin(self, item_id: str) -> int:
        """An attempt at the item starts (before the work): attempts + 1; returns it.
        The state does not change, so a process killed now leaves the item to be redone."""
        with self.transaction():
            self._db.execute(
                "UPDATE items SET attempts = attempts + 1, updated = ? WHERE id = ?", (self.clock(), item_id)
            )
            row = self._db.execute("SELECT attempts FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise KeyError(item_id)
        return int(row[0])

    def set_state(
        self,
        item_id: str,
        state: str,
        *,
        error: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        merge_data: bool = True,
    ) -> None:
        """Record that the item reached ``state`` (call it after the work).  ``error`` becomes
        its last error (kept when None, so a later success still shows what went wrong before;
        ``clear_error`` drops it); ``data`` is merged into (or, without ``merge_data``, replaces)
        the item's data."""
        with self.transaction():
            row = self._db.execute("SELECT state, data FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise KeyError(item_id)
            new_data = row[1]
            if data is not None:
                base = json.loads(row[1]) if (row[1] and merge_data) else {}
                base.update(data)
                new_data = json.dumps(base, separators=(",", ":"))
            self._db.execute(
                "UPDATE items SET state = ?, last_error = COALESCE(?, last_error), data = ?, updated = ? WHERE id = ?",
                (state, json.dumps(error) if error is not None else None, new_data, self.clock(), item_id),
            )
            if row[0] != state:
                self._event(state, 1)

    def record(
        self, item_id: str, state: str, *, error: dict[str, Any] | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """One attempt at an item ended in ``state``, in one transaction: the item is added when
        new, its attempts + 1, its error (when given) and data replaced.  For per-file batches,
        where an item's first mention is its result (no plan ahead)."""
        with self.transaction():
            row = self._db.execute("SELECT state FROM items WHERE id = ?", (item_id,)).fetchone()
            self._db.execute(
                "INSERT INTO items (id, state, attempts, last_error, data, updated) VALUES (?, ?, 1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = attempts + 1, "
                "last_error = COALESCE(excluded.last_error, last_error), data = COALESCE(excluded.data, data), "
                "updated = excluded.updated",
                (
                    item_id,
                    state,
                    json.dumps(error) if error is not None else None,
                    json.dumps(data, separators=(",", ":")) if data else None,
                    self.clock(),
                ),
            )
            if row is None or row[0] != state:
                self._event(state, 1)

    def drop(self, ids: Iterable[str]) -> int:
        """Remove items (and their parts), a transaction per ``PAGE``; e.g. those of other shards."""
        dropped = 0
        for batch in _pages(ids):
            with self.transaction():
                before = self._db.total_changes
                self._db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in batch])
                dropped += self._db.total_changes - before
                self._db.executemany("DELETE FROM parts WHERE item = ?", [(i,) for i in batch])
        return dropped

    def update_data(self, updates: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Merge ``data`` into items' data (state unchanged), a transaction per ``PAGE`` items."""
        batch: list[tuple[str, dict[str, Any]]] = []

        def flush() -> None:
            with self.transaction():
                for item_id, data in batch:
                    row = self._db.execute("SELECT data FROM items WHERE id = ?", (item_id,)).fetchone()
                    if row is None:
                        continue
                    merged = {**(json.loads(row[0]) if row[0] else {}), **data}
                    self._db.execute(
                        "UPDATE items SET data = ? WHERE id = ?", (json.dumps(merged, separators=(",", ":")), item_id)
                    )

        for entry in updates:
            batch.append(entry)
            if len(batch) >= PAGE:
                flush()
                batch = []
        if batch:
            flush()

    def clear_error(self, item_id: str) -> None:
        with self.transaction():
            self._db.execute("UPDATE items SET last_error = NULL WHERE id = ?", (item_id,))

    def undo_attempt(self, item_id: str, error: dict[str, Any] | None = None) -> None:
        """The attempt begun did not count (the peer, not the item, failed): attempts - 1."""
        with self.transaction():
            self._db.execute(
                "UPDATE items SET attempts = MAX(attempts - 1, 0), last_error = COALESCE(?, last_error) WHERE id = ?",
                (json.dumps(error) if error else None, item_id),
            )

    def items(
        self, states: Sequence[str] | None = None, *, max_attempts: int | None = None, page: int = PAGE
    ) -> Iterator[Item]:
        """Items in insertion order (only those in ``states``, and with fewer than
        ``max_attempts`` attempts), read a page at a time: constant memory, and the
        caller may change items (or add new ones) while iterating."""
        where = []
        args: list[Any] = []
        if states is not None:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        if max_attempts is not None:
            where.append("attempts < ?")
            args.append(max_attempts)
        condition = (" AND " + " AND ".join(where)) if where else ""
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM items WHERE seq > ?{condition} ORDER BY seq LIMIT ?", (last, *args, page)
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _item(row)
            last = rows[-1][6]

    def counts(self) -> dict[str, int]:
        """Items per state."""
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())

    def total(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    # -- throughput
    def _event(self, state: str, n: int) -> None:
        if n:
            self._db.execute(
                "INSERT INTO events (bucket, state, n) VALUES (?, ?, ?) "
                "ON CONFLICT (bucket, state) DO UPDATE SET n = n + excluded.n",
                (int(self.clock() // BUCKET), state, n),
            )

    def status(self, done: Sequence[str] = ("done",), *, window: float = 600.0) -> dict[str, Any]:
        """Counts per state, throughput (items reaching a ``done`` state per second over the
        last ``window`` seconds of activity) and ETA of the rest (not done and not failed)."""
        counts = self.counts()
        total = sum(counts.values())
        finished = sum(counts.get(s, 0) for s in done)
        failed = counts.get("failed", 0)
        now = self.clock()
        with self._lock:
            placeholders = ",".join("?" * len(done))
            last_row = self._db.execute(
                f"SELECT MAX(bucket) FROM events WHERE state IN ({placeholders})", tuple(done)
            ).fetchone()
            last = last_row[0]
            rate = None
            if last is not None:
                first = last - int(window // BUCKET) + 1
                rows = self._db.execute(
                    f"SELECT MIN(bucket), SUM(n) FROM events WHERE state IN ({placeholders}) AND bucket >= ?",
                    (*done, first),
                ).fetchone()
                span = max((min(now, (last + 1) * BUCKET) - rows[0] * BUCKET), 1.0)
                rate = rows[1] / span
        left = total - finished - failed
        status: dict[str, Any] = {"total": total, "counts": counts, "done": finished, "failed": failed, "left": left}
        status["rate"] = round(rate, 3) if rate else 0.0
        status["eta_seconds"] = round(left / rate) if rate and left else (0 if not left else None)
        return status

    # -- the plan
    def plan_add(self, keys: Iterable[tuple[str, dict[str, Any] | None] | str]) -> int:
        """Units of the plan (``key`` or ``(key, data)``), pending; known keys are kept."""
        added = 0
        with self.transaction():
            for entry in keys:
                key, data = (entry, None) if isinstance(entry, str) else entry
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO plan (key, state, data, updated) VALUES (?, 'pending', ?, ?)",
                    (key, json.dumps(data) if data else None, self.clock()),
                )
                added += cursor.rowcount
        return added

    def plan_done(
        self,
        key: str,
        items: Iterable[tuple[str, dict[str, Any] | None] | str] = (),
        state: str = "planned",
        *,
        data: dict[str, Any] | None = None,
        update_data: bool = True,
    ) -> int:
        """Add the unit's items and mark the unit done, in one transaction; returns the new items."""
        with self.transaction():
            added = self.add(items, state, update_data=update_data)
            self._db.execute(
                "INSERT INTO plan (key, state, data, updated) VALUES (?, 'done', ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET state = 'done', data = COALESCE(excluded.data, data), updated = excluded.updated",
                (key, json.dumps(data) if data else None, self.clock()),
            )
        return added

    def plan_set(self, key: str, state: str, data: dict[str, Any] | None = None) -> None:
        """Set a plan unit's state (e.g. ``incomplete``: it could not be done whole)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO plan (key, state, data, updated) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "state = excluded.state, data = COALESCE(excluded.data, data), updated = excluded.updated",
                (key, state, json.dumps(data) if data else None, self.clock()),
            )

    def plan_units(self, states: Sequence[str] | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(key, state, data) of the plan's units (in ``states``)."""
        with self._lock:
            if states is None:
                rows = self._db.execute("SELECT key, state, data FROM plan ORDER BY key").fetchall()
            else:
                rows = self._db.execute(
                    f"SELECT key, state, data FROM plan WHERE state IN ({','.join('?' * len(states))}) ORDER BY key",
                    tuple(states),
                ).fetchall()
        for key, state, data in rows:
            yield key, state, json.loads(data) if data else {}

    # -- parts of items
    def add_parts(self, parts: Iterable[tuple[str, str, str | None, dict[str, Any] | None]]) -> int:
        """Add ``(item, part, group, data)`` rows (known ones are kept), a transaction per ``PAGE``."""
        rows = (
            (item, part, group, json.dumps(data, separators=(",", ":")) if data else None)
            for item, part, group, data in parts
        )
        added = 0
        for batch in _pages(rows):
            with self.transaction():
                before = self._db.total_changes
                self._db.executemany("INSERT OR IGNORE INTO parts (item, part, grp, data) VALUES (?, ?, ?, ?)", batch)
                added += self._db.total_changes - before
        return added

    def parts(self, item_id: str, page: int = PAGE) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """(part, group, data) of an item, in part order, a page at a time."""
        last = ""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT part, grp, data FROM parts WHERE item = ? AND part > ? ORDER BY part LIMIT ?",
                    (item_id, last, page),
                ).fetchall()
            if not rows:
                return
            for part, group, data in rows:
                yield part, group, json.loads(data) if data else {}
            last = rows[-1][0]

    def part_groups(self, page: int = PAGE) -> Iterator[tuple[str, int, int]]:
        """(item, parts, distinct groups) for every item that has parts, a page of items at a time."""
        last = ""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT item, COUNT(*), COUNT(DISTINCT grp) FROM parts WHERE item IN "
                    "(SELECT DISTINCT item FROM parts WHERE item > ? ORDER BY item LIMIT ?) GROUP BY item ORDER BY item",
                    (last, page),
                ).fetchall()
            if not rows:
                return
            yield from ((r[0], int(r[1]), int(r[2])) for r in rows)
            last = rows[-1][0]

    def plan_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM plan WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def plan_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT state, COUNT(*) FROM plan GROUP BY state").fetchall())


def _pages(rows: Iterable[T]) -> Iterator[list[T]]:
    """``rows`` in lists of ``PAGE`` (one transaction each): a long stream is never held whole."""
    iterator = iter(rows)
    while page := list(itertools.islice(iterator, PAGE)):
        yield page


_COLUMNS = "id, state, attempts, last_error, data, updated, seq"


def _item(row: tuple[Any, ...]) -> Item:
    return Item(
        row[0],
        row[1],
        int(row[2]),
        json.loads(row[3]) if row[3] else None,
        json.loads(row[4]) if row[4] else {},
        float(row[5]),
        int(row[6]),
    )
