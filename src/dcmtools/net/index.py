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

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

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

LOGGER = logging.getLogger("dcmtools.net")
INDEX_NAME = ".dcmtools-index.sqlite"
JOURNAL_NAME = ".dcmtools-index.pending"  # files acknowledged but maybe not yet in the index
SCHEMA_VERSION = "1"
ATTR_BULK = 256  # binary values longer than this are not kept in the index
QUIET = 0.5  # seconds without a new file before received files are indexed (unless a query needs them)
_REBUILD = object()  # the queue item that rebuilds the whole index

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS patients(pkey TEXT PRIMARY KEY, attrs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies(study_uid TEXT PRIMARY KEY, pkey TEXT NOT NULL, attrs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series(series_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, modality TEXT,
                                  attrs TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances(sop_uid TEXT PRIMARY KEY, series_uid TEXT NOT NULL, study_uid TEXT NOT NULL,
                                     pkey TEXT NOT NULL, sop_class TEXT, ts TEXT, path TEXT NOT NULL,
                                     size INTEGER, mtime REAL, attrs TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS studies_pkey ON studies(pkey);
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE INDEX IF NOT EXISTS instances_path ON instances(path);
"""

_TABLE = {"PATIENT": "patients", "STUDY": "studies", "SERIES": "series", "IMAGE": "instances"}
_KEYCOL = {"PATIENT": "pkey", "STUDY": "study_uid", "SERIES": "series_uid", "IMAGE": "sop_uid"}
_PARENT = {"STUDY": "PATIENT", "SERIES": "STUDY", "IMAGE": "SERIES"}
# Column of each ancestor's key in a level's table.
_ANCESTOR_COL = {
    "STUDY": {"PATIENT": "pkey"},
    "SERIES": {"STUDY": "study_uid"},
    "IMAGE": {"PATIENT": "pkey", "STUDY": "study_uid", "SERIES": "series_uid"},
}


@dataclass(frozen=True)
class StoredInstance:
    """An instance in the store: where its file is and what it is."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str

    def exists(self) -> bool:
        return os.path.isfile(self.path)


def index_path(store_dir: str | os.PathLike) -> str:
    return os.path.join(os.fspath(store_dir), INDEX_NAME)


def _level_attrs(dataset: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The attributes of one instance split by the level they belong to."""
    out: dict[str, dict[str, Any]] = {level: {} for level in LEVELS}
    for tag_key, element in dataset.items():
        tag = int(tag_key, 16)
        if tag >> 16 == 0x0002 or tag in COMPUTED_TAGS or tag in CONTROL_TAGS:
            continue
        if element.get("InlineBinary") is not None and len(element["InlineBinary"]) > ATTR_BULK * 4 // 3 + 4:
            continue
        out[level_of(tag)][tag_key] = element
    return out


def read_instance(path: str) -> tuple[dict[str, Any], str, str] | None:
    """(JSON-model dataset without bulk data, SOP class, transfer syntax) of a file, or None if it is not one."""
    from ..dicom import jsonmodel, reader

    try:
        read = reader.read(path, bulk_threshold=ATTR_BULK, stop_at=0x7FE00010)
    except reader.ReadError as exc:
        if exc.partial is None or not exc.partial.dataset or exc.code != "truncated":
            return None
        read = exc.partial
    if read.is_dicomdir or not read.sop_instance_uid:
        return None
    dataset = jsonmodel.to_json_model(read.dataset, jsonmodel.JsonOptions(bulk_threshold=ATTR_BULK, bulk_uri=False))
    return dataset, read.sop_class_uid or "", read.transfer_syntax or ""


class StoreIndex:
    """The SQLite index of a store folder (see the module docs).  Thread-safe."""

    def __init__(self, store_dir: str | os.PathLike, *, rebuild: bool = False, create: bool = True,
                 background: bool = False, on_rebuilt: Callable[[int, float], None] | None = None) -> None:
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
                paths = list(dict.fromkeys(line.rstrip(b"\n").decode("utf-8", "surrogateescape")
                                           for line in stream if line.strip()))
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
                self._journal_fd = os.open(self._journal_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND
                                           | getattr(os, "O_CLOEXEC", 0), 0o666)
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
            self.conn.execute("BEGIN")
            try:
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
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return count

    def add(self, path: str) -> StoredInstance | None:
        """Index one stored file (replacing an earlier entry of the same SOP instance); None if it is not DICOM."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                found = self._add(path)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return found

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
        conn.execute("INSERT OR REPLACE INTO studies(study_uid, pkey, attrs) VALUES(?, ?, ?)",
                     (study, pkey, _dumps(levels["STUDY"])))
        conn.execute("INSERT OR REPLACE INTO series(series_uid, study_uid, modality, attrs) VALUES(?, ?, ?, ?)",
                     (series, study, modality, _dumps(levels["SERIES"])))
        conn.execute("INSERT OR REPLACE INTO instances(sop_uid, series_uid, study_uid, pkey, sop_class, ts, path, size, mtime,"
                     " attrs) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (sop, series, study, pkey, sop_class, ts, os.path.abspath(path), size, mtime,
                      _dumps(levels["IMAGE"])))
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
            return self.conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0]

    def instance(self, sop_instance_uid: str) -> StoredInstance | None:
        """The stored instance with this SOP Instance UID, or None (also when its file is gone)."""
        self.flush()
        with self._lock:
            row = self.conn.execute(
                "SELECT sop_uid, sop_class, ts, path, pkey, study_uid, series_uid FROM instances WHERE sop_uid = ?",
                (sop_instance_uid,)).fetchone()
        if row is None:
            return None
        found = StoredInstance(*row)
        return found if found.exists() else None

    def query(self, level: str, identifier: dict[str, Any], retrieve_aet: str | None = None) -> Iterator[dict[str, Any]]:
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
        out = []
        with self._lock:
            for start in range(0, len(uids), 500):
                part = uids[start: start + 500]
                rows = self.conn.execute(
                    "SELECT sop_uid, sop_class, ts, path, pkey, study_uid, series_uid FROM instances WHERE sop_uid IN "
                    f"({','.join('?' * len(part))})", part).fetchall()
                by_uid = {row[0]: row for row in rows}
                out.extend(StoredInstance(*by_uid[uid]) for uid in part if uid in by_uid)
        out.sort(key=lambda i: (i.patient_id, i.study_instance_uid, i.series_instance_uid, i.path))
        return out

    # -- matching
    def _matches(self, level: str, wanted: dict[str, Any], need_below: bool = False
                 ) -> Iterator[tuple[dict[str, tuple[str, dict]], dict[str, list]]]:
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
        empty = {lvl: [] for lvl in LEVELS[depth + 1:]}
        for row in rows:
            chain = cache.chain(level, row)
            if chain is None:
                continue
            if not all(not by_level[lvl] or dataset_matches(by_level[lvl], chain[lvl][1]) for lvl in LEVELS[: depth + 1]):
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
                clauses.append(f"study_uid IN (SELECT study_uid FROM studies WHERE pkey IN ({','.join('?' * len(values))}))")
                params.extend(values)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        order = {"PATIENT": "pkey", "STUDY": "pkey, study_uid", "SERIES": "study_uid, series_uid",
                 "IMAGE": "study_uid, series_uid, path"}[level]
        return f"SELECT * FROM {table}{where} ORDER BY {order}", params

    def _answer(self, level: str, identifier: dict[str, Any], wanted: dict[str, Any],
                chain: dict[str, tuple[str, dict]], below: dict[str, list], retrieve_aet: str | None) -> dict[str, Any]:
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


class _Cache:
    """Rows of one query, loaded once."""

    def __init__(self, index: StoreIndex) -> None:
        self.index = index
        self.attrs: dict[tuple[str, str], tuple[dict, Any]] = {}

    def _row(self, level: str, key: str) -> tuple[dict, Any] | None:
        found = self.attrs.get((level, key))
        if found is None:
            with self.index._lock:
                row = self.index.conn.execute(f"SELECT * FROM {_TABLE[level]} WHERE {_KEYCOL[level]} = ?", (key,)).fetchone()
            if row is None:
                return None
            found = (json.loads(row[-1]), row)
            self.attrs[(level, key)] = found
        return found

    def chain(self, level: str, row: Any) -> dict[str, tuple[str, dict]] | None:
        """The row and its ancestors: {level: (key, attrs)}.  Every table has its key
        first, its parent's key second and its attributes last."""
        chain = {level: (row[0], json.loads(row[-1]))}
        current, current_row = level, row
        while current in _PARENT:
            parent = _PARENT[current]
            found = self._row(parent, current_row[1])
            if found is None:
                return None
            chain[parent] = (current_row[1], found[0])
            current, current_row = parent, found[1]
        return chain

    def descendants(self, level: str, key: str, by_level: dict[str, dict[str, Any]]) -> dict[str, list]:
        """Descendants of a row that match the keys of their levels: {level: [(key, attrs)]}."""
        index = self.index
        out: dict[str, list] = {lvl: [] for lvl in LEVELS[level_index(level) + 1:]}
        attrs_column = "attrs" if by_level["IMAGE"] else "''"  # instance attributes only when matched
        with index._lock:
            if level == "PATIENT":
                studies = index.conn.execute("SELECT study_uid, attrs FROM studies WHERE pkey = ?", (key,)).fetchall()
                series = index.conn.execute("SELECT series_uid, attrs, study_uid FROM series WHERE study_uid IN "
                                            "(SELECT study_uid FROM studies WHERE pkey = ?)", (key,)).fetchall()
                images = index.conn.execute(f"SELECT sop_uid, {attrs_column}, series_uid, sop_class FROM instances "
                                            "WHERE pkey = ?", (key,)).fetchall()
            elif level == "STUDY":
                studies = []
                series = index.conn.execute("SELECT series_uid, attrs, study_uid FROM series WHERE study_uid = ?",
                                            (key,)).fetchall()
                images = index.conn.execute(f"SELECT sop_uid, {attrs_column}, series_uid, sop_class FROM instances "
                                            "WHERE study_uid = ?", (key,)).fetchall()
            else:
                studies, series = [], []
                images = index.conn.execute(f"SELECT sop_uid, {attrs_column}, series_uid, sop_class FROM instances "
                                            "WHERE series_uid = ?", (key,)).fetchall()
        ok_studies = None
        if "STUDY" in out:
            ok_studies = set()
            for uid, attrs in studies:
                data = json.loads(attrs)
                if not by_level["STUDY"] or dataset_matches(by_level["STUDY"], data):
                    out["STUDY"].append((uid, data))
                    ok_studies.add(uid)
        ok_series = None
        if "SERIES" in out:
            ok_series = set()
            for uid, attrs, study in series:
                if ok_studies is not None and study not in ok_studies:
                    continue
                data = json.loads(attrs)
                if not by_level["SERIES"] or dataset_matches(by_level["SERIES"], data):
                    out["SERIES"].append((uid, data))
                    ok_series.add(uid)
        for uid, attrs, series_uid, sop_class in images:
            if ok_series is not None and series_uid not in ok_series:
                continue
            if by_level["IMAGE"]:
                data = json.loads(attrs)
                if not dataset_matches(by_level["IMAGE"], data):
                    continue
            out["IMAGE"].append((uid, {"sop_class": sop_class, "series": series_uid}))
        if ok_series is not None:
            # A series (and study) without a matching instance does not count.
            with_images = {info["series"] for _, info in out["IMAGE"]}
            out["SERIES"] = [(uid, data) for uid, data in out["SERIES"] if uid in with_images]
        if ok_studies is not None:
            with_series = set()
            with index._lock:
                for uid, _ in out["SERIES"]:
                    row = index.conn.execute("SELECT study_uid FROM series WHERE series_uid = ?", (uid,)).fetchone()
                    if row:
                        with_series.add(row[0])
            out["STUDY"] = [(uid, data) for uid, data in out["STUDY"] if uid in with_series]
        return out


def _computed(level: str, chain: dict[str, tuple[str, dict]], below: dict[str, list]) -> dict[str, Any]:
    """The computed attributes of a match at ``level`` (counts, modalities, SOP classes)."""
    values: dict[str, Any] = {}

    def put(name: str, vr: str, value: Any) -> None:
        values[f"{TAGS.get(name) or _tag(name):08X}"] = {"vr": vr, "Value": value if isinstance(value, list) else [value]} \
            if value not in (None, []) else {"vr": vr}

    images = below.get("IMAGE", [])
    if level == "PATIENT":
        put("NumberOfPatientRelatedStudies", "IS", len(below.get("STUDY", [])))
        put("NumberOfPatientRelatedSeries", "IS", len(below.get("SERIES", [])))
        put("NumberOfPatientRelatedInstances", "IS", len(images))
    elif level == "STUDY":
        series = below.get("SERIES", [])
        put("NumberOfStudyRelatedSeries", "IS", len(series))
        put("NumberOfStudyRelatedInstances", "IS", len(images))
        modalities: list[str] = []
        for _, attrs in series:
            for value in texts(attrs.get(f"{TAGS['Modality']:08X}")):
                if value not in modalities:
                    modalities.append(value)
        put("ModalitiesInStudy", "CS", sorted(modalities))
        put("SOPClassesInStudy", "UI", sorted({info["sop_class"] for _, info in images if info.get("sop_class")}))
    elif level == "SERIES":
        put("NumberOfSeriesRelatedInstances", "IS", len(images))
    return values


def _tag(name: str) -> int:
    from ..dicom import dictionary

    tag = dictionary.tag_of(name)
    assert tag is not None, name
    return tag


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _files(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".part"):
                continue
            yield os.path.join(root, name)


def lookup_instance(store_dir: str | os.PathLike, sop_instance_uid: str) -> StoredInstance | None:
    """Is this SOP instance stored under ``store_dir``?  Its ``StoredInstance``, or None.

    Opens (and, if missing, builds) the store's index; for many look-ups keep
    a ``StoreIndex`` open and call ``instance`` instead.
    """
    with StoreIndex(store_dir) as index:
        return index.instance(sop_instance_uid)


def lookup_instances(store_dir: str | os.PathLike, sop_instance_uids: Iterable[str]) -> dict[str, StoredInstance | None]:
    """``lookup_instance`` for many UIDs at once: {uid: StoredInstance or None}."""
    with StoreIndex(store_dir) as index:
        return {uid: index.instance(uid) for uid in sop_instance_uids}
