"""The store index on disk: its file names, SQLite schema and level tables, ``StoredInstance``, and how
one file's attributes are read and split by level."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .keys import (
    COMPUTED_TAGS,
    CONTROL_TAGS,
    LEVELS,
    level_of,
)

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


def index_path(store_dir: str | os.PathLike[str]) -> str:
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


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _files(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith(".part"):
                continue
            yield os.path.join(root, name)
