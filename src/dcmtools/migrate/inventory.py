"""The inventory: which studies the source holds, into the journal's plan.

From a PACS: study-level C-FIND over date windows.  A window that comes back
capped (as many answers as ``max_results``, or the query ended with a Cancel
status, which is what Orthanc's ``LimitFindResults`` does) is split in halves,
down to one day, then by modality (``ModalitiesInStudy``).  A day and
modality still capped is reported ``incomplete``: a cap is never mistaken
for the whole list.  Without ``--since``/``--until`` the first query asks for
everything; when that is capped, the date windows run from 1900-01-01 to
today, and studies without a date get a query of their own (Empty Value
Matching, ``StudyDate=""``; the answers that do have a date are left to their
windows).  A PACS that answers that query with nothing (Orthanc and DCMTK do
not implement Empty Value Matching) is asked patient by patient: its
PatientIDs by a patient-level query (split by prefix while capped), then each
patient's studies without a date key (split by modality while capped),
keeping those without a date.  Each unit of this plan is in the journal: an inventory
interrupted anywhere resumes at the first window not done.

From a folder: every file's patient, study, series and instance UIDs, read
with the project's own reader up to the pixel data (no pydicom), written to
the journal in batches (constant memory): the study is the item, its files
are its parts, grouped by series.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..stream.journal import Journal
from ..stream.records import DcmtoolsError, error_record
from .endpoints import tag_key

STUDY_KEYS = [
    "StudyInstanceUID",
    "PatientID",
    "StudyDate",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
]
MODALITIES = (
    "CT",
    "MR",
    "CR",
    "DX",
    "US",
    "MG",
    "NM",
    "PT",
    "XA",
    "RF",
    "OT",
    "SC",
    "SR",
    "PR",
    "KO",
    "SEG",
    "RTSTRUCT",
    "RTPLAN",
    "RTDOSE",
    "RTIMAGE",
    "ES",
    "XC",
    "IO",
    "PX",
    "OP",
    "ECG",
    "DOC",
    "AU",
    "DG",
    "SM",
    "OPT",
    "BI",
    "GM",
    "HD",
    "IVUS",
    "OCT",
    "REG",
    "RWV",
    "TG",
    "VL",
    "XRF",
    "LS",
    "BDUS",
)
EARLIEST = _dt.date(1900, 1, 1)
PATIENT_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_. ^"
CANCEL = 0xFE00


class InventoryErrorCode:
    CAPPED = "inventory_capped"  # one day and one modality still over the PACS's cap
    QUERY_FAILED = "inventory_query_failed"  # the PACS refused a window's query


def _date(text: str) -> _dt.date:
    return _dt.datetime.strptime(text, "%Y%m%d").date()


def _text(date: _dt.date) -> str:
    return date.strftime("%Y%m%d")


class PacsInventory:
    """The studies of a PACS into ``journal`` (see the module docs); ``run()`` yields records."""

    def __init__(
        self,
        peer: Any,
        options: Any,
        journal: Journal,
        *,
        since: str | None = None,
        until: str | None = None,
        max_results: int | None = None,
        modalities: tuple[str, ...] = MODALITIES,
        today: Callable[[], _dt.date] = _dt.date.today,
    ) -> None:
        self.peer = peer
        self.options = options
        self.journal = journal
        self.since = since
        self.until = until
        self.max_results = max_results
        self.modalities = modalities
        self.today = today
        from ..net.query import FindAssociation

        self._finds = FindAssociation(peer, options)
        self.incomplete = 0
        self.failed = 0

    # -- one query
    def close(self) -> None:
        self._finds.close()

    def _finder(self, identifier: dict[str, Any], level: str) -> Any:
        """One query at ``level`` (its own query model), as it is asked: no walking down, no checks."""
        from ..net.keys import sort_identifier
        from ..net.query import Finder

        return Finder(
            self.peer,
            sort_identifier(identifier),
            self.options,
            level,
            level.lower(),
            walk=False,
            check=False,
            assoc=self._finds.get(),
        )

    def query(
        self, date: str | None, modality: str | None = None, patient: str | None = None
    ) -> tuple[list[dict[str, Any]], bool, dict[str, Any] | None]:
        """(studies as journal entries, capped?, failure record or None) of one window."""
        from ..net.keys import first_text, identifier_from, parse_keys, texts

        identifier = identifier_from(parse_keys(STUDY_KEYS), (), "STUDY")
        if date is not None:
            identifier[tag_key("StudyDate")] = {"vr": "DA", "Value": [date]}
        if modality:
            identifier[tag_key("ModalitiesInStudy")] = {"vr": "CS", "Value": [modality]}
        if patient is not None:
            identifier[tag_key("PatientID")] = {"vr": "LO", "Value": [patient]}
        finder = self._finder(identifier, "STUDY")
        studies = []
        failure = None
        cut = False
        for record in finder.run():
            if record.get("incomplete"):
                cut = True  # find's own word for a cut answer (where net.query gives it)
                continue
            if not record.get("ok"):
                failure = record
                continue
            ds = record["dataset"]
            uid = first_text(ds.get(tag_key("StudyInstanceUID")))
            if not uid:
                continue
            data: dict[str, Any] = {
                "patient": first_text(ds.get(tag_key("PatientID"))) or "",
                "date": first_text(ds.get(tag_key("StudyDate"))) or "",
                "accession": first_text(ds.get(tag_key("AccessionNumber"))) or "",
                "modalities": texts(ds.get(tag_key("ModalitiesInStudy"))),
            }
            for key, name in (("series", "NumberOfStudyRelatedSeries"), ("instances", "NumberOfStudyRelatedInstances")):
                value = first_text(ds.get(tag_key(name)))
                if value not in (None, ""):
                    try:
                        data[key] = int(float(value))
                    except ValueError:
                        pass
            studies.append({"id": uid, **data})
        capped = (
            cut or finder.final_status == CANCEL or (self.max_results is not None and len(studies) >= self.max_results)
        )
        return studies, capped, failure

    # -- the plan
    def run(self) -> Iterator[dict[str, Any]]:
        try:
            if self.since or self.until:
                low = _date(self.since) if self.since else EARLIEST
                high = _date(self.until) if self.until else self.today()
                yield from self._window(low, high, first=True)
            else:
                if self.journal.plan_state("all") == "done":
                    return
                yield from self._unit("all", None, None, on_capped=self._split_all)
        finally:
            self.close()

    def _split_all(self) -> Iterator[dict[str, Any]]:
        yield from self._window(EARLIEST, self.today())
        found = [0]
        yield from self._unit("nodate", '""', None, dateless=True, found=found)
        if not found[0]:
            # No answer to Empty Value Matching (Orthanc, DCMTK do not implement it): ask patient by patient.
            yield from self._dateless_by_patient()

    def _dateless_by_patient(self) -> Iterator[dict[str, Any]]:
        if self.journal.plan_state("nodate-by-patient") == "done":
            return
        complete = True
        for patient in self._patients(""):
            if patient is None:
                complete = False
                continue

            def by_modality(patient: str = patient) -> Iterator[dict[str, Any]]:
                for modality in self.modalities:
                    yield from self._unit(
                        f"nodate/patient/{patient}/{modality}", None, modality, patient=patient, dateless=True
                    )

            yield from self._unit(
                f"nodate/patient/{patient}", None, None, patient=patient, dateless=True, on_capped=by_modality
            )
        if complete:
            self.journal.plan_set("nodate-by-patient", "done")

    def _patients(self, prefix: str) -> Iterator[str | None]:
        """PatientIDs of the PACS (patient-root PATIENT-level C-FIND on ``prefix*``, split while capped);
        None for a prefix that stays capped."""
        from ..net.keys import first_text, identifier_from, parse_keys

        identifier = identifier_from(parse_keys([f"PatientID={prefix}*"]), (), "PATIENT")
        finder = self._finder(identifier, "PATIENT")
        found = []
        for record in finder.run():
            if record.get("ok"):
                pid = first_text(record["dataset"].get(tag_key("PatientID")))
                if pid is not None:
                    found.append(pid)
        capped = finder.final_status == CANCEL or (self.max_results is not None and len(found) >= self.max_results)
        if not capped:
            yield from found
            return
        if len(prefix) >= 16:
            yield None
            return
        if prefix in found:
            yield prefix
        for char in PATIENT_ID_CHARS:
            yield from self._patients(prefix + char)

    def _window(self, low: _dt.date, high: _dt.date, first: bool = False) -> Iterator[dict[str, Any]]:
        date = _text(low) if low == high else f"{_text(low)}-{_text(high)}"

        def split() -> Iterator[dict[str, Any]]:
            if low == high:
                for modality in self.modalities:
                    yield from self._unit(f"{date}/{modality}", date, modality)
                return
            middle = low + (high - low) // 2
            yield from self._window(low, middle)
            yield from self._window(middle + _dt.timedelta(days=1), high)

        yield from self._unit(date, date, None, on_capped=split)

    def _unit(
        self,
        key: str,
        date: str | None,
        modality: str | None,
        *,
        on_capped: Any = None,
        dateless: bool = False,
        patient: str | None = None,
        found: list[int] | None = None,
    ) -> Iterator[dict[str, Any]]:
        state = self.journal.plan_state(key)
        if state == "done":
            return
        if state == "split":
            if on_capped is not None:
                yield from on_capped()
            return
        studies, capped, failure = self.query(date, modality, patient)
        if dateless:
            studies = [s for s in studies if not s.get("date")]
        if found is not None:
            found[0] += len(studies)
        base: dict[str, Any] = {"type": "inventory", "peer": str(self.peer), "window": key}
        if failure is not None:
            self.failed += 1
            yield error_record(
                "inventory",
                DcmtoolsError(
                    InventoryErrorCode.QUERY_FAILED, failure["error"]["message"], failure["error"].get("hint")
                ),
                peer=str(self.peer),
                window=key,
            )
            return
        if capped and (on_capped is not None or (dateless and modality is None)):
            self.journal.plan_set(key, "split", {"answers": len(studies)})
            yield {**base, "studies": len(studies), "capped": True, "split": True, "ok": True}
            if on_capped is not None:
                yield from on_capped()
            else:
                for one in self.modalities:
                    yield from self._unit(f"nodate/{one}", '""', one, dateless=True)
            return
        entries = [(s["id"], {k: v for k, v in s.items() if k != "id"}) for s in studies]
        if capped:
            # One day and one modality still capped: keep what came, say the list is cut.
            self.journal.add(entries)
            self.journal.plan_set(key, "incomplete", {"answers": len(studies)})
            self.incomplete += 1
            yield error_record(
                "inventory",
                DcmtoolsError(
                    InventoryErrorCode.CAPPED,
                    f"{self.peer.label} capped the answers for {key} ({len(studies)}) even for one day and one modality: "
                    "studies may be missing from the plan",
                    "raise the PACS's result limit (Orthanc: LimitFindResults) for the migration",
                ),
                peer=str(self.peer),
                window=key,
                studies=len(studies),
            )
            return
        added = self.journal.plan_done(key, entries, update_data=False)
        yield {**base, "studies": len(studies), "new": added, "ok": True}


class FolderInventory:
    """The studies of a folder tree into ``journal`` (see the module docs)."""

    def __init__(self, folder: str, journal: Journal) -> None:
        self.folder = folder
        self.journal = journal
        self.failed = 0
        self.incomplete = 0

    def run(self) -> Iterator[dict[str, Any]]:
        key = f"folder:{self.folder}"
        if self.journal.plan_state(key) == "done":
            return
        from ..dicom import reader as dicomfile
        from ..stream.inputs import walk

        studies: dict[str, dict[str, Any]] = {}  # one page of new studies, flushed with their parts
        parts: list[tuple[str, str, str | None, dict[str, Any]]] = []
        files = 0
        for entry in walk(self.folder):
            if entry.error is not None:
                self.failed += 1
                yield error_record("file", entry.error, path=entry.path)
                continue
            try:
                found = dicomfile.read(entry.path, stop_at=0x7FE00010)
            except DcmtoolsError as exc:
                self.failed += 1
                yield error_record("file", exc, path=entry.path)
                continue
            ds = found.dataset
            study, series = ds.text(0x0020000D), ds.text(0x0020000E)
            sop = ds.text(0x00080018) or found.sop_instance_uid
            if not study or not series or not sop:
                self.failed += 1
                yield error_record(
                    "file",
                    DcmtoolsError(
                        "no_uids",
                        "the file has no Study, Series or SOP Instance UID: it cannot be placed in an archive",
                    ),
                    path=entry.path,
                )
                continue
            files += 1
            if study not in studies:
                studies[study] = {
                    "patient": ds.text(0x00100020) or "",
                    "date": ds.text(0x00080020) or "",
                    "accession": ds.text(0x00080050) or "",
                }
            parts.append(
                (study, sop, series, {"path": os.path.abspath(entry.path), "size": os.path.getsize(entry.path)})
            )
            if len(parts) >= 1000:
                self._flush(studies, parts)
                studies, parts = {}, []
        self._flush(studies, parts)
        counts = self.journal.total()
        with self.journal.transaction():
            self.journal.update_data(
                (study, {"series": groups, "instances": n}) for study, n, groups in self.journal.part_groups()
            )
            self.journal.plan_done(key, data={"files": files})
        yield {"type": "inventory", "folder": self.folder, "files": files, "studies": counts, "ok": True}

    def _flush(
        self, studies: dict[str, dict[str, Any]], parts: Sequence[tuple[str, str, str | None, dict[str, Any] | None]]
    ) -> None:
        with self.journal.transaction():
            self.journal.add(studies.items())
            self.journal.add_parts(parts)
