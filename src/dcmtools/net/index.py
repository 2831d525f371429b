"""The index of a store folder: what ``listen`` has stored, for queries, retrieves and commitment.

    from dcmtools.net.index import StoreIndex, lookup_instance

    found = lookup_instance("incoming/", "1.2.826.0.1.3680043.2.1125.1")  # StoredInstance or None
    with StoreIndex("incoming/") as index:
        for match in index.query("STUDY", identifier):      # JSON-model identifiers
            ...

The index is an SQLite database beside the files, ``DIR/.dcmtools-index.sqlite``
(hidden, so that walking the store with other commands skips it).  When it is
missing, or was written by another version, it is rebuilt from the files
(every file under DIR that reads as DICOM; hidden entries and unfinished
``.part`` files are skipped).  ``listen`` adds each instance it stores; a file
put into the folder by other means is found after ``listen --reindex`` (or
``StoreIndex(..., rebuild=True)``).

It holds one row per patient (by Patient ID), study, series and instance,
each with the attributes of its level (as the DICOM JSON model, bulk data
left out) and, for instances, the file's path, SOP class and transfer
syntax.  Queries match at every level (see ``matching.py``), relationally: a
STUDY query may carry series or image keys (``Modality=CT``): a study matches
when one of its instances does.  The counts and lists a query may ask for
(``NumberOfStudyRelatedInstances``, ``ModalitiesInStudy`` ...) are computed.

Crash consistency: ``listen`` calls ``note_stored(path)`` before each C-STORE
answer leaves; it appends the path to ``DIR/.dcmtools-index.pending`` (one
small append, no SQLite transaction per instance) and queues it.  The journal
is emptied whenever the index has caught up with it; when the index is opened
(after a kill -9, say) the paths still in it are indexed first, so the work
at start is proportional to what changed, not to the store.

``lookup_instance`` / ``StoreIndex.instance`` answer "is this SOP instance
stored here, and where" (Storage Commitment uses it).
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .index_query import _Cache, _computed
from .index_schema import (
    _ANCESTOR_COL,
    _KEYCOL,
    _REBUILD,
    _SCHEMA,
    _TABLE,
    LOGGER,
    _dumps,
    _files,
    _level_attrs,
)
from .index_schema import ATTR_BULK as ATTR_BULK
from .index_schema import INDEX_NAME as INDEX_NAME
from .index_schema import JOURNAL_NAME as JOURNAL_NAME
from .index_schema import QUIET as QUIET
from .index_schema import SCHEMA_VERSION as SCHEMA_VERSION
from .index_schema import StoredInstance as StoredInstance
from .index_schema import index_path as index_path
from .index_schema import read_instance as read_instance
from .keys import (
    COMPUTED_TAGS,
    CONTROL_TAGS,
    LEVELS,
    TAGS,
    UNIQUE_KEY,
    first_text,
    level_index,
    level_of,
    normalize_level,
    sort_identifier,
    texts,
)
from .matching import dataset_matches, element_matches, is_universal, returned


class StoreIndex:
    """The SQLite index of a store folder (see the module docs).  Thread-safe."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        rebuild: bool = False,
        create: bool = True,
        background: bool = False,
        on_rebuilt: Callable[[int, float], None] | None = None,
    ) -> None:
        """Open (or create) the index of ``store_dir``; rebuild it from the files when it is missing,
        of another version, or with ``rebuild``.  With ``background`` the rebuild runs in the index's
        own thread (queries wait for it) and ``on_rebuilt(count, seconds)`` is called when it is done."""
        self.store_dir = os.fspath(store_dir)
        self.path = index_path(self.store_dir)
        self._lock = threading.RLock()
        self.rebuilt: int | None = None  # instances indexed by a rebuild at opening
        self.rebuild_seconds: float | None = None
        if create:
            os.makedirs(self.store_dir, exist_ok=True)
        existed = os.path.exists(self.path)
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        version = self.conn.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending = 0
        self._urgent = 0  # callers waiting in flush(): index now, do not wait for a quiet moment
        self._last_add = 0.0
        self._pending_cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self.on_rebuilt = on_rebuilt
        self.needs_rebuild = bool(rebuild or not existed or version is None or version[0] != SCHEMA_VERSION)
        self._journal_lock = threading.Lock()
        self._journal_fd: int | None = None
        self.replayed = 0  # journal entries indexed at opening
        if self.needs_rebuild:
            if background:
                self._enqueue(_REBUILD)
            else:
                self._rebuild_now()
                self._journal_caught_up(0)
        else:
            self._replay_journal(background)

    # -- the journal of acknowledged files
    def _journal_path(self) -> str:
        return os.path.join(self.store_dir, JOURNAL_NAME)

    def _replay_journal(self, background: bool) -> None:
        try:
            with open(self._journal_path(), "rb") as stream:
                paths = list(
                    dict.fromkeys(
                        line.rstrip(b"\n").decode("utf-8", "surrogateescape") for line in stream if line.strip()
                    )
                )
        except FileNotFoundError:
            return
        self.replayed = len(paths)
        if not paths:
            return
        for path in paths:
            self._enqueue(path)
        if not background:
            self.flush()

    def note_stored(self, path: str) -> None:
        """Index a file ``listen`` is about to acknowledge: journaled at once, indexed soon (see the module docs)."""
        line = os.path.abspath(path).encode("utf-8", "surrogateescape") + b"\n"
        with self._journal_lock:
            if self._journal_fd is None:
                self._journal_fd = os.open(
                    self._journal_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o666
                )
            os.write(self._journal_fd, line)
            self._enqueue(path)

    def _journal_caught_up(self, done: int) -> None:
        """After a commit of ``done`` items: empty the journal when nothing else is queued."""
        with self._journal_lock:
            with self._pending_cond:
                if self._pending != done:
                    return
            if self._journal_fd is not None:
                os.ftruncate(self._journal_fd, 0)
            elif os.path.exists(self._journal_path()):
                with open(self._journal_path(), "wb"):
                    pass

    # -- lifecycle
    def close(self) -> None:
        self.flush()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=10)
            self._worker = None
        with self._lock:
            try:
                self.conn.close()
            except sqlite3.Error:  # pragma: no cover
                pass
        with self._journal_lock:
            if self._journal_fd is not None:
                os.close(self._journal_fd)
                self._journal_fd = None

    def __enter__(self) -> StoreIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing
    def _rebuild_now(self) -> None:
        started = time.monotonic()
        self.rebuilt = self.rebuild()
        self.rebuild_seconds = time.monotonic() - started
        if self.on_rebuilt is not None:
            try:
                self.on_rebuilt(self.rebuilt, self.rebuild_seconds)
            except Exception as exc:  # noqa: BLE001 - a report callback does not stop the index
                LOGGER.debug("on_rebuilt failed: %s", exc)

    def rebuild(self) -> int:
        """Forget everything and index every file under the store folder; returns how many were indexed."""
        with self._lock:
            # Unversioned until complete: an interrupted rebuild is redone at the next opening.
            self.conn.execute("DELETE FROM meta WHERE key = 'version'")
            with self._transaction():
                for table in ("patients", "studies", "series", "instances"):
                    self.conn.execute(f"DELETE FROM {table}")
                count = 0
                for path in _files(self.store_dir):
                    if self._add(path):
                        count += 1
                        if count % 1000 == 0:
                            self.conn.execute("COMMIT")
                            self.conn.execute("BEGIN")
                self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('version', ?)", (SCHEMA_VERSION,))
        return count

    def add(self, path: str) -> StoredInstance | None:
        """Index one stored file (replacing an earlier entry of the same SOP instance); None if it is not DICOM."""
        with self._lock, self._transaction():
            return self._add(path)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception (the caller holds the lock)."""
        self.conn.execute("BEGIN")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _add(self, path: str) -> StoredInstance | None:
        read = read_instance(path)
        if read is None:
            return None
        dataset, sop_class, ts = read
        levels = _level_attrs(dataset)
        pkey = first_text(levels["PATIENT"].get(f"{TAGS['PatientID']:08X}")) or ""
        study = first_text(levels["STUDY"].get(f"{TAGS['StudyInstanceUID']:08X}")) or ""
        series = first_text(levels["SERIES"].get(f"{TAGS['SeriesInstanceUID']:08X}")) or ""
        sop = first_text(levels["IMAGE"].get(f"{TAGS['SOPInstanceUID']:08X}")) or ""
        if not sop:
            return None
        charset = dataset.get(f"{TAGS['SpecificCharacterSet']:08X}")
        if charset is not None:  # each level's text was decoded with it; keep it for the answers
            for level in LEVELS:
                levels[level][f"{TAGS['SpecificCharacterSet']:08X}"] = charset
        try:
            stat = os.stat(path)
            size, mtime = stat.st_size, stat.st_mtime
        except OSError:
            size, mtime = None, None
        modality = first_text(levels["SERIES"].get(f"{TAGS['Modality']:08X}"))
        conn = self.conn
        conn.execute("INSERT OR REPLACE INTO patients(pkey, attrs) VALUES(?, ?)", (pkey, _dumps(levels["PATIENT"])))
        conn.execute(
            "INSERT OR REPLACE INTO studies(study_uid, pkey, attrs) VALUES(?, ?, ?)",
            (study, pkey, _dumps(levels["STUDY"])),
        )
        conn.execute(
            "INSERT OR REPLACE INTO series(series_uid, study_uid, modality, attrs) VALUES(?, ?, ?, ?)",
            (series, study, modality, _dumps(levels["SERIES"])),
        )
        conn.execute(
            "INSERT OR REPLACE INTO instances(sop_uid, series_uid, study_uid, pkey, sop_class, ts, path, size, mtime,"
            " attrs) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sop, series, study, pkey, sop_class, ts, os.path.abspath(path), size, mtime, _dumps(levels["IMAGE"])),
        )
        return StoredInstance(sop, sop_class, ts, os.path.abspath(path), pkey, study, series)

    def add_later(self, path: str) -> None:
        """Index a stored file in the background (``listen`` calls this as each instance arrives).

        The files are indexed once nothing was added for ``QUIET`` seconds (so
        that indexing does not slow down a transfer), or at once when a query
        needs the index (``flush``)."""
        self._enqueue(path)

    def _enqueue(self, item: Any) -> None:
        with self._pending_cond:
            self._pending += 1
            self._last_add = time.monotonic()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="dcmtools-index", daemon=True)
                self._worker.start()
            self._pending_cond.notify_all()
        self._queue.put(item)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything queued (files, a background rebuild) is in the index."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._pending_cond:
            if not self._pending:
                return
            self._urgent += 1
            self._pending_cond.notify_all()
            try:
                while self._pending:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        LOGGER.warning("the store index is %d file(s) behind", self._pending)
                        return
                    self._pending_cond.wait(left if left is not None else 1.0)
            finally:
                self._urgent -= 1

    def _quiet(self) -> None:
        """Wait for a moment without new files (or for a caller in ``flush``)."""
        with self._pending_cond:
            while not self._urgent:
                idle = time.monotonic() - self._last_add
                if idle >= QUIET:
                    return
                self._pending_cond.wait(QUIET - idle)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if item is _REBUILD:
                try:
                    self._rebuild_now()
                    self._journal_caught_up(1)  # the files the journal names were indexed by the rebuild
                except Exception as exc:  # noqa: BLE001 - say why queries find nothing
                    LOGGER.warning("could not rebuild the store index: %s", exc)
                finally:
                    with self._pending_cond:
                        self._pending -= 1
                        self._pending_cond.notify_all()
                continue
            self._quiet()
            batch = [item]
            stop = False
            while len(batch) < 1000:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                with self._lock:
                    self.conn.execute("BEGIN")
                    try:
                        for path in batch:
                            try:
                                self._add(path)
                            except (OSError, ValueError) as exc:
                                LOGGER.warning("could not index %s: %s", path, exc)
                        self.conn.execute("COMMIT")
                    except BaseException:
                        self.conn.execute("ROLLBACK")
                        raise
                self._journal_caught_up(len(batch))
            except Exception as exc:  # noqa: BLE001 - the files stay stored; say why they are not findable
                LOGGER.warning("could not index %d file(s): %s", len(batch), exc)
            finally:
                with self._pending_cond:
                    self._pending -= len(batch)
                    self._pending_cond.notify_all()
            if stop:
                return

    def remove(self, sop_instance_uid: str) -> None:
        """Forget an instance (its file is gone); empty series, studies and patients go too."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                self.conn.execute("DELETE FROM instances WHERE sop_uid = ?", (sop_instance_uid,))
                self.conn.execute("DELETE FROM series WHERE series_uid NOT IN (SELECT series_uid FROM instances)")
                self.conn.execute("DELETE FROM studies WHERE study_uid NOT IN (SELECT study_uid FROM series)")
                self.conn.execute("DELETE FROM patients WHERE pkey NOT IN (SELECT pkey FROM studies)")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    # -- reading
    def count(self) -> int:
        self.flush()
        with self._lock:
            count: int = self.conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
            return count

    def instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The stored instance with this SOP Instance UID, or None (also when its file is gone)."""
        self.flush()
        with self._lock:
            row = self.conn.execute(
                "SELECT sop_uid, sop_class, ts, path, pkey, study_uid, series_uid FROM instances WHERE sop_uid = ?",
                (sop_instance_uid,),
            ).fetchone()
        if row is None:
            return None
        found = StoredInstance(*row)
        return found if found.exists() else None

    def query(
        self, level: str, identifier: dict[str, Any], retrieve_aet: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The C-FIND answers (JSON model) of ``identifier`` at ``level``."""
        level = normalize_level(level)
        self.flush()
        wanted = {k: v for k, v in identifier.items() if int(k, 16) not in CONTROL_TAGS}
        for chain, below in self._matches(level, wanted):
            yield self._answer(level, identifier, wanted, chain, below, retrieve_aet)

    def retrieve(self, level: str, identifier: dict[str, Any]) -> list[StoredInstance]:
        """The instances a C-MOVE/C-GET of ``identifier`` at ``level`` covers."""
        level = normalize_level(level)
        self.flush()
        wanted = {k: v for k, v in identifier.items() if int(k, 16) not in CONTROL_TAGS}
        uids: list[str] = []
        for chain, below in self._matches(level, wanted, need_below=True):
            if level == "IMAGE":
                uids.append(chain["IMAGE"][0])
            else:
                uids.extend(uid for uid, _ in below["IMAGE"])
        out: list[StoredInstance] = []
        with self._lock:
            for start in range(0, len(uids), 500):
                part = uids[start : start + 500]
                rows = self.conn.execute(
                    "SELECT sop_uid, sop_class, ts, path, pkey, study_uid, series_uid FROM instances WHERE sop_uid IN "
                    f"({','.join('?' * len(part))})",
                    part,
                ).fetchall()
                by_uid = {row[0]: row for row in rows}
                out.extend(StoredInstance(*by_uid[uid]) for uid in part if uid in by_uid)
        out.sort(key=lambda i: (i.patient_id, i.study_instance_uid, i.series_instance_uid, i.path))
        return out

    # -- matching
    def _matches(
        self, level: str, wanted: dict[str, Any], need_below: bool = False
    ) -> Iterator[tuple[dict[str, tuple[str, dict[str, Any]]], dict[str, list[Any]]]]:
        """(the matching row and its ancestors by level, its matching descendants by level).

        Descendants are looked up when keys of lower levels must match, when
        computed attributes are asked for, or with ``need_below``."""
        depth = level_index(level)
        by_level: dict[str, dict[str, Any]] = {lvl: {} for lvl in LEVELS}
        computed: dict[str, Any] = {}
        asks_computed = False
        for tag_key, element in wanted.items():
            tag = int(tag_key, 16)
            if tag in COMPUTED_TAGS:
                asks_computed = True
                if not is_universal(element):
                    computed[tag_key] = element
                continue
            if is_universal(element):
                continue
            by_level[level_of(tag)][tag_key] = element
        deepest = max((level_index(lvl) for lvl, keys in by_level.items() if keys), default=0)
        look_below = depth < 3 and (need_below or asks_computed or deepest > depth)
        cache = _Cache(self)
        sql, params = self._prefilter(level, wanted)
        with self._lock:
            rows = self.conn.execute(sql, params).fetchall()
        empty: dict[str, list[Any]] = {lvl: [] for lvl in LEVELS[depth + 1 :]}
        for row in rows:
            chain = cache.chain(level, row)
            if chain is None:
                continue
            if not all(
                not by_level[lvl] or dataset_matches(by_level[lvl], chain[lvl][1]) for lvl in LEVELS[: depth + 1]
            ):
                continue
            below = empty
            if look_below:
                below = cache.descendants(level, chain[level][0], by_level)
                if deepest > depth and not below["IMAGE"]:
                    continue
            if computed:
                values = _computed(level, chain, below)
                if not all(element_matches(key, values.get(tag_key)) for tag_key, key in computed.items()):
                    continue
            yield chain, below

    def _prefilter(self, level: str, wanted: dict[str, Any]) -> tuple[str, list[Any]]:
        """SQL for the rows of ``level`` narrowed by the unique keys given (exact values, UID lists)."""
        table = _TABLE[level]
        clauses, params = [], []
        columns = {level: _KEYCOL[level], **_ANCESTOR_COL.get(level, {})}
        for lvl, column in columns.items():
            element = wanted.get(f"{TAGS[UNIQUE_KEY[lvl]]:08X}")
            values = texts(element)
            if not values or any("*" in v or "?" in v for v in values):
                continue
            clauses.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
        if level == "SERIES":
            element = wanted.get(f"{TAGS['PatientID']:08X}")
            values = texts(element)
            if values and not any("*" in v or "?" in v for v in values):
                clauses.append(
                    f"study_uid IN (SELECT study_uid FROM studies WHERE pkey IN ({','.join('?' * len(values))}))"
                )
                params.extend(values)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = {
            "PATIENT": "pkey",
            "STUDY": "pkey, study_uid",
            "SERIES": "study_uid, series_uid",
            "IMAGE": "study_uid, series_uid, path",
        }[level]
        return f"SELECT * FROM {table}{where} ORDER BY {order}", params

    def _answer(
        self,
        level: str,
        identifier: dict[str, Any],
        wanted: dict[str, Any],
        chain: dict[str, tuple[str, dict[str, Any]]],
        below: dict[str, list[Any]],
        retrieve_aet: str | None,
    ) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for lvl in LEVELS[: level_index(level) + 1]:
            merged.update(chain[lvl][1])
        values = _computed(level, chain, below)
        answer: dict[str, Any] = {}
        for tag_key, key in wanted.items():
            tag = int(tag_key, 16)
            if tag in COMPUTED_TAGS:
                answer[tag_key] = values.get(tag_key) or {"vr": key.get("vr", "UN")}
            elif level_index(level_of(tag)) <= level_index(level):
                answer.update(returned({tag_key: key}, merged))
            else:
                answer[tag_key] = {"vr": key.get("vr") or "UN"}
        answer[f"{TAGS['QueryRetrieveLevel']:08X}"] = {"vr": "CS", "Value": [level]}
        if retrieve_aet:
            answer[f"{TAGS['RetrieveAETitle']:08X}"] = {"vr": "AE", "Value": [retrieve_aet]}
        if f"{TAGS['InstanceAvailability']:08X}" in identifier:
            answer[f"{TAGS['InstanceAvailability']:08X}"] = {"vr": "CS", "Value": ["ONLINE"]}
        return sort_identifier(answer)


def lookup_instance(store_dir: str | os.PathLike[str], sop_instance_uid: str) -> StoredInstance | None:
    """Is this SOP instance stored under ``store_dir``?  Its ``StoredInstance``, or None.

    Opens (and, if missing, builds) the store's index; for many look-ups keep
    a ``StoreIndex`` open and call ``instance`` instead.
    """
    with StoreIndex(store_dir) as index:
        return index.instance(sop_instance_uid)


def lookup_instances(
    store_dir: str | os.PathLike[str], sop_instance_uids: Iterable[str]
) -> dict[str, StoredInstance | None]:
    """``lookup_instance`` for many UIDs at once: {uid: StoredInstance or None}."""
    with StoreIndex(store_dir) as index:
        return {uid: index.instance(uid) for uid in sop_instance_uids}
