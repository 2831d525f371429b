"""De-identification: the PS3.15 Annex E Basic Application Level Confidentiality
Profile with all its options, keyed and repeatable.

Python use::

    from dcmtools.deid import Anonymizer, Key, Options

    anon = Anonymizer(Key("my secret"), Options(retain_longitudinal_modified_dates=True))
    record = anon.anonymize_file("in/a.dcm", "out/a.dcm")   # {"path", "out", "ok", ...}
    result = anon.anonymize_dataset(ds)                     # a pydicom Dataset, changed in place

``Anonymizer.anonymize_file`` never raises for a bad input: it returns an
error record (codes of ``dcmtools.records.ErrorCode``).  Files whose pixels may
carry burned-in text are refused unless ``allow_burned_in``; DICOMDIR files
are refused.  ``anonymize_paths`` runs a batch over worker processes.

What is done (the table is data: ``profile.py``, ``data/profile_e11.json``):

* every action of Table E.1-1 (D, Z, X, K, C, U and the combined codes), in
  nested sequences at any depth, in the file meta information, in the
  repeating groups (curves 50xx, overlays 60xx) and on private attributes;
* UIDs become ``2.25.`` UIDs derived from the key (HMAC-SHA256), so
  references stay consistent across files and runs with the same key;
* Patient ID and Patient's Name become one pseudonym per patient; names and
  identifiers replaced by a dummy (D) get repeatable pseudonyms;
* with Retain Longitudinal Temporal Information with Modified Dates, dates
  move back by 1 to 10 years, by an offset derived from the key and the
  patient (the same for every file of the patient);
* the marks: Patient Identity Removed = YES, De-identification Method and its
  Code Sequence (CID 7050), Longitudinal Temporal Information Modified; the
  128-byte preamble is zeroed and the file meta describes dcmtools.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from ..records import DcmtoolsError, ErrorCode, error_record
from .keys import Key
from .profile import OPTIONS, Options, Plan

__all__ = ["Anonymizer", "Key", "Options", "OPTIONS", "Plan", "Result", "anonymize_paths"]

# The file meta of an output describes the de-identifying application (PS3.15 E.1.1 item 7).
IMPLEMENTATION_CLASS_UID = "2.25.109411659040749697386511660468373606429"
IMPLEMENTATION_VERSION = "DCMTOOLS_0.1"
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
# Modalities and SOP classes whose pixels often carry burned-in text.
BURNED_IN_MODALITIES = frozenset({"US", "IVUS", "SC", "OT", "XC", "ES", "GM", "DOC"})
BURNED_IN_CLASS_PREFIXES = ("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.", "1.2.840.10008.5.1.4.1.1.3.")
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
META_REMOVED = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028, 0x00020100, 0x00020102)


@dataclass
class Result:
    """What anonymizing one dataset did."""

    sop_instance_uid: str | None = None
    warnings: list[str] = field(default_factory=list)
    map: list[dict[str, Any]] = field(default_factory=list)  # re-identification entries


class Anonymizer:
    """One key and one set of options, for any number of datasets or files."""

    def __init__(
        self,
        key: Key | bytes | str | None = None,
        options: Options | None = None,
        *,
        allow_burned_in: bool = False,
        keep_map: bool = False,
    ) -> None:
        if key is None:
            key = Key.random()
        elif not isinstance(key, Key):
            key = Key(key)
        self.key = key
        self.plan = Plan(options)
        self.options = self.plan.options
        self.allow_burned_in = allow_burned_in
        self.keep_map = keep_map

    # ------------------------------------------------------------ datasets
    def anonymize_dataset(self, ds: Any) -> Result:
        """De-identify a pydicom ``Dataset`` (with its ``file_meta``) in place.

        Raises ``DcmtoolsError`` (``burned_in``, ``dicomdir``) when it must not
        be anonymized; nothing is changed then.
        """
        from .engine import FileState, Walker

        self.check(ds)
        state = FileState(self.plan, self.key, ds)
        original = _originals(ds) if self.keep_map else None
        Walker(state).dataset(ds)
        _mark(ds, self.plan)
        meta = getattr(ds, "file_meta", None)
        if meta is not None:
            self._meta(ds, meta, state)
        result = Result(sop_instance_uid=_get_str(ds, "SOPInstanceUID") or None, warnings=state.warnings)
        if original is not None:
            result.map = _map_entries(original, ds, state)
        return result

    def check(self, ds: Any) -> None:
        """Refuse a DICOMDIR, and pixels that may carry burned-in text."""
        meta = getattr(ds, "file_meta", None)
        sop_class = _get_str(meta, "MediaStorageSOPClassUID") if meta is not None else ""
        if sop_class == DICOMDIR_CLASS or _get_str(ds, "SOPClassUID") == DICOMDIR_CLASS or (
            0x00041220 in ds._dict
        ):
            raise DcmtoolsError(
                ErrorCode.DICOMDIR,
                "this is a DICOMDIR (a media index), not an instance: skipped",
                "anonymize the files it indexes; write a new DICOMDIR for the output if needed",
            )
        if self.allow_burned_in or not any(tag in ds._dict for tag in PIXEL_TAGS):
            return
        flag = _get_str(ds, "BurnedInAnnotation").upper()
        if flag == "YES":
            raise DcmtoolsError(
                ErrorCode.BURNED_IN,
                "Burned In Annotation is YES: the pixels show text that may identify the patient; not written",
                "remove the text from the pixels first, or use --allow-burned-in if you have checked them",
            )
        if flag:
            return
        modality = _get_str(ds, "Modality").upper()
        sop_class = _get_str(ds, "SOPClassUID") or sop_class
        if modality in BURNED_IN_MODALITIES or sop_class.startswith(BURNED_IN_CLASS_PREFIXES):
            what = f"modality {modality}" if modality in BURNED_IN_MODALITIES else "a secondary capture or ultrasound image"
            raise DcmtoolsError(
                ErrorCode.BURNED_IN,
                f"{what} without Burned In Annotation often shows identifying text in the pixels; not written",
                "check the pixels, then use --allow-burned-in",
            )

    def _meta(self, ds: Any, meta: Any, state: Any) -> None:
        from pydicom.dataelem import DataElement
        from pydicom.tag import BaseTag

        action = self.plan.rules.get(0x00020003, "U")
        new_sop = _get_str(ds, "SOPInstanceUID")
        if new_sop and action != "K":
            meta._dict[BaseTag(0x00020003)] = DataElement(0x00020003, "UI", new_sop)
        elif action == "U" and 0x00020003 in meta._dict:
            old = _get_str(meta, "MediaStorageSOPInstanceUID")
            if old:
                meta._dict[BaseTag(0x00020003)] = DataElement(0x00020003, "UI", state.uid(old))
        for tag in META_REMOVED:
            meta._dict.pop(tag, None)
        meta._dict[BaseTag(0x00020012)] = DataElement(0x00020012, "UI", IMPLEMENTATION_CLASS_UID)
        meta._dict[BaseTag(0x00020013)] = DataElement(0x00020013, "SH", IMPLEMENTATION_VERSION)
        meta._dict.pop(0x00020000, None)  # group length: pydicom writes it anew

    # ------------------------------------------------------------ files
    def anonymize_file(self, path: str, out: str, *, overwrite: bool = False) -> dict[str, Any]:
        """Read ``path``, de-identify it, write ``out`` atomically; return the record."""
        record, _ = self._file(path, out, overwrite)
        return record

    def _file(self, path: str, out: str, overwrite: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        from ..outputs import exists_error, write_atomic

        try:
            if not overwrite and os.path.lexists(out):
                raise exists_error(out)
            if _same_file(path, out):
                raise DcmtoolsError(
                    ErrorCode.EXISTS, "the output would replace the input", "choose an output folder outside the inputs"
                )
            ds = read_dataset(path)
            result = self.anonymize_dataset(ds)
            write_atomic(out, lambda stream: write_dataset(ds, stream), overwrite)
        except DcmtoolsError as exc:
            return error_record("file", exc, path=path), []
        record: dict[str, Any] = {"type": "file", "path": path, "out": out, "ok": True}
        if result.sop_instance_uid:
            record["sop_instance_uid"] = result.sop_instance_uid
        if result.warnings:
            record["warnings"] = result.warnings
        return record, result.map


def read_dataset(path: str) -> Any:
    """The dataset of ``path`` with its file meta, or a ``DcmtoolsError``."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        size = os.path.getsize(path)
        if size == 0:
            raise DcmtoolsError(ErrorCode.EMPTY, "the file is empty (0 bytes)")
        with open(path, "rb") as stream:
            try:
                return dcmread(stream)
            except InvalidDicomError:
                stream.seek(0)
                head = stream.read(8)
                if len(head) < 8 or head[:2] not in (b"\x08\x00", b"\x00\x08", b"\x02\x00", b"\x10\x00"):
                    raise DcmtoolsError(
                        ErrorCode.NOT_DICOM, "not a DICOM file (no DICM prefix and no dataset at the start)"
                    ) from None
                stream.seek(0)
                return dcmread(stream, force=True)
    except DcmtoolsError:
        raise
    except FileNotFoundError as exc:
        raise DcmtoolsError(ErrorCode.NOT_FOUND, f"no such file: {path}") from exc
    except IsADirectoryError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, "this is a folder, not a file") from exc
    except PermissionError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, "permission denied", "check the file's permissions") from exc
    except EOFError as exc:
        raise DcmtoolsError(ErrorCode.TRUNCATED, f"the file ends too early ({exc})") from exc
    except OSError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read the file: {exc.strerror or exc}") from exc
    except Exception as exc:  # pydicom's many ways of saying "malformed"
        raise DcmtoolsError(ErrorCode.INVALID, f"malformed DICOM: {exc}") from exc


def write_dataset(ds: Any, stream: Any) -> None:
    """Write ``ds`` in its own transfer syntax; a Part 10 file when it had file meta."""
    from pydicom.filewriter import dcmwrite

    meta = getattr(ds, "file_meta", None)
    if meta is not None and 0x00020010 in meta._dict:
        ds.preamble = b"\0" * 128
        try:
            dcmwrite(stream, ds, enforce_file_format=True)
        except (ValueError, AttributeError, TypeError) as exc:
            raise DcmtoolsError(ErrorCode.WRITE_FAILED, f"the anonymized file could not be encoded: {exc}") from exc
        return
    # A bare dataset (no file meta) is written as one, in the encoding it was read in.
    try:
        ds.preamble = None
        dcmwrite(stream, ds, enforce_file_format=False)
    except (ValueError, AttributeError, TypeError) as exc:
        raise DcmtoolsError(ErrorCode.WRITE_FAILED, f"the anonymized dataset could not be encoded: {exc}") from exc


# ---------------------------------------------------------------- helpers
def _get_str(ds: Any, keyword: str) -> str:
    if ds is None:
        return ""
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    return str(value).strip("\0 ")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _mark(ds: Any, plan: Plan) -> None:
    """Patient Identity Removed, De-identification Method (+ codes), Longitudinal ..."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.tag import BaseTag

    from .engine import text_values

    d = ds._dict
    d[BaseTag(0x00120062)] = DataElement(0x00120062, "CS", "YES")
    try:
        existing = text_values(ds.get("DeidentificationMethod"))
    except Exception:
        existing = []
    methods = existing + [m for m in plan.method_text() if m not in existing]
    d[BaseTag(0x00120063)] = DataElement(0x00120063, "LO", methods if len(methods) > 1 else methods[0])
    try:
        items = list(ds.get("DeidentificationMethodCodeSequence") or [])
    except Exception:
        items = []
    have = {(str(i.get("CodeValue", "")), str(i.get("CodingSchemeDesignator", ""))) for i in items}
    for value, meaning in plan.options.codes():
        if (value, "DCM") not in have:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
    d[BaseTag(0x00120064)] = DataElement(0x00120064, "SQ", Sequence(items))
    ours = plan.longitudinal()
    before = _get_str(ds, "LongitudinalTemporalInformationModified").upper()
    rank = {"UNMODIFIED": 0, "MODIFIED": 1, "REMOVED": 2}
    if rank.get(before, -1) > rank[ours]:
        ours = before
    d[BaseTag(0x00280303)] = DataElement(0x00280303, "CS", ours)


def _originals(ds: Any) -> dict[str, str]:
    keys = (
        "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID",
        "AccessionNumber", "StudyID", "StudyDate", "SeriesInstanceUID", "SOPInstanceUID",
    )  # fmt: skip
    return {k: _get_str(ds, k) for k in keys}


def _map_entries(original: dict[str, str], ds: Any, state: Any) -> list[dict[str, Any]]:
    """Re-identification entries (for --map): the patient, the study, every UID replaced."""
    entries: list[dict[str, Any]] = []
    patient_new = {"PatientID": _get_str(ds, "PatientID"), "PatientName": _get_str(ds, "PatientName")}
    patient: dict[str, Any] = {
        "type": "patient",
        "original": {k: original[k] for k in ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")},
        "new": patient_new,
    }
    if state.plan.shift_dates:
        patient["date_offset_days"] = state.date_offset
    entries.append(patient)
    if original["StudyInstanceUID"]:
        entries.append(
            {
                "type": "study",
                "original": {k: original[k] for k in ("StudyInstanceUID", "AccessionNumber", "StudyID", "StudyDate")},
                "new": {
                    "StudyInstanceUID": _get_str(ds, "StudyInstanceUID"),
                    "AccessionNumber": _get_str(ds, "AccessionNumber"),
                    "StudyID": _get_str(ds, "StudyID"),
                    "StudyDate": _get_str(ds, "StudyDate"),
                },
            }
        )
    for old, new in sorted(state.uids.items()):
        entries.append({"type": "uid", "original": old, "new": new})
    return entries


# ---------------------------------------------------------------- batches
_BATCH: tuple[Anonymizer, bool] | None = None


def _batch_job(job: tuple[str, str | None, dict[str, Any] | None]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path, out, error = job
    if error is not None:
        return error, []
    assert _BATCH is not None and out is not None
    anonymizer, overwrite = _BATCH
    try:
        return anonymizer._file(path, out, overwrite)
    except Exception as exc:  # a bug must not stop the batch
        message = f"internal error: {type(exc).__name__}: {exc} (this is a bug in dcmtools; please report it)"
        return error_record("file", DcmtoolsError(ErrorCode.INTERNAL, message), path=path), []


def anonymize_paths(
    anonymizer: Anonymizer,
    jobs_in: Iterable[tuple[str, str | None, dict[str, Any] | None]],
    *,
    jobs: int = 1,
    overwrite: bool = False,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Anonymize ``(path, out, error_record_or_None)`` jobs, in order, over ``jobs`` processes.

    Yields ``(record, map_entries)`` per job; a job that carries an error
    record yields it unchanged.
    """
    from ..parallel import map_ordered

    global _BATCH
    _BATCH = (anonymizer, overwrite)
    try:
        yield from map_ordered(_batch_job, jobs_in, jobs)
    finally:
        _BATCH = None
