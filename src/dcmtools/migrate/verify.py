"""Reconciliation: what each side holds of a study, by C-FIND (QIDO-RS for a DICOMweb
destination, or by looking in a folder).

A PACS is asked by the study's UID alone (some archives answer those and
not date queries): the study-level NumberOfStudyRelatedSeries and
NumberOfStudyRelatedInstances, and where the PACS does not return them (or
with ``uids``) an image-level query listing the SOP Instance UIDs (``find``
walks down a hierarchical PACS such as DCMTK dcmqrscp by itself).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..stream.journal import Journal
from .endpoints import tag_key


@dataclass
class Holding:
    """What one side holds of a study."""

    found: bool
    series: int | None = None
    instances: int | None = None
    uids: set[str] | None = field(default=None, repr=False)

    def as_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"found": self.found}
        if self.series is not None:
            out["series"] = self.series
        if self.instances is not None:
            out["instances"] = self.instances
        return out


class _QueryCounter:
    """Counts a study by queries at the STUDY level (its numbers of series and instances) and, where
    those are not returned or with ``uids``, at the IMAGE level; ``_query`` is the side's own."""

    uids: bool

    def _query(self, level: str, keys: list[str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def holding(self, study: str, item: Any = None) -> Holding:
        from ..net.keys import first_text

        studies = self._query(
            "STUDY", [f"StudyInstanceUID={study}", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
        )
        studies = [s for s in studies if first_text(s.get(tag_key("StudyInstanceUID"))) == study]
        if not studies:
            return Holding(False, 0, 0, set() if self.uids else None)
        series = _int(first_text(studies[0].get(tag_key("NumberOfStudyRelatedSeries"))))
        instances = _int(first_text(studies[0].get(tag_key("NumberOfStudyRelatedInstances"))))
        if series is not None and instances is not None and not self.uids:
            return Holding(True, series, instances)
        images = self._query("IMAGE", [f"StudyInstanceUID={study}", "SeriesInstanceUID", "SOPInstanceUID"])
        uids = {first_text(i.get(tag_key("SOPInstanceUID"))) or "" for i in images} - {""}
        series_set = {first_text(i.get(tag_key("SeriesInstanceUID"))) for i in images} - {None, ""}
        return Holding(True, len(series_set), len(uids), uids if self.uids else None)


class PacsCounter(_QueryCounter):
    """Counts a study on a PACS, on one association kept open between studies."""

    def __init__(self, peer: Any, options: Any, uids: bool = False) -> None:
        self.peer = peer
        self.options = options
        self.uids = uids
        from ..net.query import FindAssociation

        self._finds = FindAssociation(peer, options, ("study",))

    def close(self) -> None:
        self._finds.close()

    def _query(self, level: str, keys: list[str]) -> list[dict[str, Any]]:
        from ..net.keys import identifier_from, parse_keys, sort_identifier
        from ..net.query import Finder
        from ..stream.records import DcmtoolsError

        identifier = identifier_from(parse_keys(keys), (), level)
        finder = Finder(
            self.peer, sort_identifier(identifier), self.options, level, "study", check=False, assoc=self._finds.get()
        )
        out = []
        for record in finder.run():
            if not record.get("ok"):
                raise DcmtoolsError(record["error"]["code"], record["error"]["message"], record["error"].get("hint"))
            out.append(record["dataset"])
        return out


class WebCounter(_QueryCounter):
    """Counts a study at a DICOMweb service by QIDO-RS on its UID: the study's numbers of series and
    instances, or (where not returned, or with ``uids``) its instances listed."""

    def __init__(self, peer: Any, uids: bool = False) -> None:
        from ..web import WebSession

        self.session = WebSession(peer)
        self.uids = uids

    def close(self) -> None:
        self.session.close()

    def _query(self, level: str, keys: list[str]) -> list[dict[str, Any]]:
        from ..net.keys import identifier_from, parse_keys
        from ..web import qido

        identifier = identifier_from(parse_keys(keys), (), level)
        return [record["dataset"] for record in qido(self.session, identifier, level) if record.get("ok")]


class FolderCounter:
    """Counts a study in a folder written by migrate (the ``listen`` layout), or, for a folder
    source, from the journal's parts of the study."""

    def __init__(self, folder: str, journal: Journal | None = None, uids: bool = False) -> None:
        self.folder = folder
        self.journal = journal
        self.uids = uids

    def close(self) -> None:
        pass

    def holding(self, study: str, item: Any = None) -> Holding:
        if self.journal is not None:  # the source folder: its inventory
            uids, series = set(), set()
            for part, group, _ in self.journal.parts(study):
                uids.add(part)
                series.add(group)
            return Holding(bool(uids), len(series), len(uids), uids if self.uids else None)
        from ..net.scp import _component

        patient = (item.data.get("patient") if item is not None else None) or ""
        base = os.path.join(self.folder, _component(patient), _component(study))
        uids, series = set(), set()
        if os.path.isdir(base):
            for name in sorted(os.listdir(base)):
                sub = os.path.join(base, name)
                if not os.path.isdir(sub):
                    continue
                files = [f[:-4] for f in os.listdir(sub) if f.endswith(".dcm")]
                if files:
                    series.add(name)
                    uids.update(files)
        return Holding(bool(uids), len(series), len(uids), uids if self.uids else None)


def _int(text: str | None) -> int | None:
    if text in (None, ""):
        return None
    try:
        return int(float(text))
    except ValueError:
        return None


def compare(study: str, source: Holding, dest: Holding) -> dict[str, Any]:
    """The verification record of a study: matched (every instance of the source is at the
    destination), missing (the destination does not have the study), incomplete, or extra
    (more at the destination than at the source: verified, and said)."""
    record: dict[str, Any] = {
        "type": "verify",
        "study": study,
        "source": source.as_record(),
        "destination": dest.as_record(),
    }
    lost: list[str] = []
    extra: list[str] = []
    if source.uids is not None and dest.uids is not None:
        lost = sorted(source.uids - dest.uids)
        extra = sorted(dest.uids - source.uids)
    if not source.found:
        record.update(
            result="not_at_source",
            ok=False,
            error={"code": "not_at_source", "message": f"study {study} is no longer found at the source"},
        )
        return record
    if not dest.found:
        record.update(
            result="missing",
            ok=False,
            error={"code": "missing", "message": f"study {study} is not at the destination (C-FIND by its UID)"},
        )
        return record
    short = (dest.instances or 0) < (source.instances or 0) or (dest.series or 0) < (source.series or 0) or lost
    if short:
        message = (
            f"the destination holds {dest.instances} of {source.instances} instances "
            f"({dest.series} of {source.series} series)"
        )
        if lost:
            message += f"; {len(lost)} SOP Instance UID(s) missing"
            record["missing_sop_instance_uids"] = lost[:100]
        record.update(result="incomplete", ok=False, error={"code": "incomplete", "message": message})
        return record
    if extra or (dest.instances or 0) > (source.instances or 0):
        record["result"] = "extra"
        if extra:
            record["extra_sop_instance_uids"] = extra[:100]
    else:
        record["result"] = "matched"
    record["ok"] = True
    return record
