"""The relational side of the store index: the rows one query loads (``_Cache``: an instance's chain of
parents, the descendants of a match) and the counts and lists a query may ask for (``_computed``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .index_schema import (
    _KEYCOL,
    _PARENT,
    _TABLE,
)
from .keys import (
    LEVELS,
    TAGS,
    level_index,
    texts,
)
from .matching import dataset_matches

if TYPE_CHECKING:
    from .index import StoreIndex


class _Cache:
    """Rows of one query, loaded once."""

    def __init__(self, index: StoreIndex) -> None:
        self.index = index
        self.attrs: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}

    def _row(self, level: str, key: str) -> tuple[dict[str, Any], Any] | None:
        found = self.attrs.get((level, key))
        if found is None:
            with self.index._lock:
                row = self.index.conn.execute(
                    f"SELECT * FROM {_TABLE[level]} WHERE {_KEYCOL[level]} = ?", (key,)
                ).fetchone()
            if row is None:
                return None
            found = (json.loads(row[-1]), row)
            self.attrs[(level, key)] = found
        return found

    def chain(self, level: str, row: Any) -> dict[str, tuple[str, dict[str, Any]]] | None:
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

    def descendants(self, level: str, key: str, by_level: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
        """Descendants of a row that match the keys of their levels: {level: [(key, attrs)]}."""
        index = self.index
        out: dict[str, list[Any]] = {lvl: [] for lvl in LEVELS[level_index(level) + 1 :]}
        attrs_column = "attrs" if by_level["IMAGE"] else "''"  # instance attributes only when matched
        with index._lock:
            if level == "PATIENT":
                studies = index.conn.execute("SELECT study_uid, attrs FROM studies WHERE pkey = ?", (key,)).fetchall()
                series = index.conn.execute(
                    "SELECT series_uid, attrs, study_uid FROM series WHERE study_uid IN "
                    "(SELECT study_uid FROM studies WHERE pkey = ?)",
                    (key,),
                ).fetchall()
                images = index.conn.execute(
                    f"SELECT sop_uid, {attrs_column}, series_uid, sop_class FROM instances WHERE pkey = ?", (key,)
                ).fetchall()
            elif level == "STUDY":
                studies = []
                series = index.conn.execute(
                    "SELECT series_uid, attrs, study_uid FROM series WHERE study_uid = ?", (key,)
                ).fetchall()
                images = index.conn.execute(
                    f"SELECT sop_uid, {attrs_column}, series_uid, sop_class FROM instances WHERE study_uid = ?", (key,)
                ).fetchall()
            else:
                studies, series = [], []
                images = index.conn.execute(
                    f"SELECT sop_uid, {attrs_column}, series_uid, sop_class FROM instances WHERE series_uid = ?", (key,)
                ).fetchall()
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


def _computed(level: str, chain: dict[str, tuple[str, dict[str, Any]]], below: dict[str, list[Any]]) -> dict[str, Any]:
    """The computed attributes of a match at ``level`` (counts, modalities, SOP classes)."""
    values: dict[str, Any] = {}

    def put(name: str, vr: str, value: Any) -> None:
        values[f"{TAGS.get(name) or _tag(name):08X}"] = (
            {"vr": vr, "Value": value if isinstance(value, list) else [value]}
            if value not in (None, [])
            else {"vr": vr}
        )

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
