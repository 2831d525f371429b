"""De-identification: the PS3.15 Annex E Basic Application Level Confidentiality
Profile with all its options, keyed and repeatable.

Python use::

    from dcmtools.deid import Anonymizer, Key, Options

    anon = Anonymizer(Key("my secret"), Options(retain_longitudinal_modified_dates=True))
    record = anon.anonymize_file("in/a.dcm", "out/a.dcm")   # {"path", "out", "ok", ...}
    data, result = anon.anonymize_bytes(open("a.dcm", "rb").read())
    new_ds, result = anon.anonymize_pydicom(ds)             # a pydicom Dataset in, a new one out

Reading uses ``dcmtools.dicom.reader`` and writing ``dcmtools.dicom.writer``:
elements the profile leaves alone keep their bytes, and pixel data is copied
by the kernel without being read into Python.

``Anonymizer.anonymize_file`` never raises for a bad input: it returns an
error record (codes of ``dcmtools.stream.records.ErrorCode``).  Files whose pixels may
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .keys import Key
from .profile import OPTIONS, Options, Plan

__all__ = ["Anonymizer", "Key", "MapWriter", "Options", "OPTIONS", "Plan", "Result", "anonymize_paths", "plan_jobs"]

# The file meta of an output describes the de-identifying application (PS3.15 E.1.1 item 7).
IMPLEMENTATION_CLASS_UID = "2.25.109411659040749697386511660468373606429"
IMPLEMENTATION_VERSION = "DCMTOOLS_0.1"
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
    """One key and one set of options, for any number of files or datasets."""

    def __init__(
        self,
        key: Key | bytes | str | None = None,
        options: Options | None = None,
        *,
        allow_burned_in: bool = False,
        keep_map: bool = False,
        keep_unknown: bool = False,
    ) -> None:
        if key is None:
            key = Key.random()
        elif not isinstance(key, Key):
            key = Key(key)
        self.key = key
        self.plan = Plan(options)
        self.plan.keep_unknown = keep_unknown
        self.options = self.plan.options
        self.allow_burned_in = allow_burned_in
        self.keep_map = keep_map

    # ------------------------------------------------------------ datasets
    def anonymize(self, dicom: Any) -> Result:
        """De-identify a ``dcmtools.dicom.reader.DicomFile`` (meta and dataset) in place.

        Raises ``DcmtoolsError`` (``burned_in``, ``dicomdir``) when it must not
        be anonymized; nothing is changed then.
        """
        from .engine import FileState, Walker

        ds = dicom.dataset
        self.check(dicom)
        state = FileState(self.plan, self.key, ds)
        original = _originals(ds, state.charset) if self.keep_map else None
        Walker(state).dataset(ds)
        _mark(ds, self.plan, state.charset)
        self._meta(dicom, state)
        result = Result(sop_instance_uid=ds.text(0x00080018) or None, warnings=state.warnings)
        if original is not None:
            result.map = _map_entries(original, ds, state)
        return result

    def check(self, dicom: Any) -> None:
        """Refuse a DICOMDIR, and pixels that may carry burned-in text."""
        ds = dicom.dataset
        if dicom.is_dicomdir or 0x00041220 in ds:
            raise DcmtoolsError(
                ErrorCode.DICOMDIR,
                "this is a DICOMDIR (a media index), not an instance: skipped",
                "anonymize the files it indexes; write a new DICOMDIR for the output if needed",
            )
        if self.allow_burned_in or not any(tag in ds for tag in PIXEL_TAGS):
            return
        flag = (ds.text(0x00280301) or "").upper()
        if flag == "YES":
            raise DcmtoolsError(
                ErrorCode.BURNED_IN,
                "Burned In Annotation is YES: the pixels show text that may identify the patient; not written",
                "remove the text from the pixels first, or use `allow_burned_in` if you have checked them",
            )
        if flag:
            return
        modality = (ds.text(0x00080060) or "").upper()
        sop_class = dicom.sop_class_uid or ""
        if modality in BURNED_IN_MODALITIES or sop_class.startswith(BURNED_IN_CLASS_PREFIXES):
            what = (
                f"modality {modality}"
                if modality in BURNED_IN_MODALITIES
                else "a secondary capture or ultrasound image"
            )
            raise DcmtoolsError(
                ErrorCode.BURNED_IN,
                f"{what} without Burned In Annotation often shows identifying text in the pixels; not written",
                "check the pixels, then use `allow_burned_in`",
            )

    def _meta(self, dicom: Any, state: Any) -> None:
        """The file meta describes the de-identified instance and dcmtools (E.1.1 item 7)."""
        from ..dicom.reader import (
            DEFLATED_LE,
            EXPLICIT_VR_BE,
            EXPLICIT_VR_LE,
            IMPLICIT_VR_LE,
        )
        from .engine import encode, new_element

        meta, ds = dicom.meta, dicom.dataset
        sop_class, sop_instance = ds.text(0x00080016), ds.text(0x00080018)
        if not meta:
            if not (sop_class and sop_instance):
                return  # a bare dataset that cannot be a Part 10 file: written bare, as read
            meta[0x00020001] = new_element(0x00020001, "OB", b"\0\1")
        old = meta.text(0x00020003)
        if self.plan.rules.get(0x00020003, "U") == "K":
            new = old or sop_instance
        else:
            new = sop_instance if sop_instance and sop_instance != old else (state.uid(old) if old else None)
        if new:
            meta[0x00020003] = new_element(0x00020003, "UI", encode(new, state.charset, "UI"))
        if sop_class and not meta.text(0x00020002):
            meta[0x00020002] = new_element(0x00020002, "UI", encode(sop_class, state.charset, "UI"))
        ts = dicom.transfer_syntax
        native = ts in (None, IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE)
        if native or ts == DEFLATED_LE and ds.implicit:
            # The syntax the data is in (the reader reads what it finds).
            ts = IMPLICIT_VR_LE if ds.implicit else (EXPLICIT_VR_LE if ds.little else EXPLICIT_VR_BE)
            dicom.deflated = False
        meta[0x00020010] = new_element(0x00020010, "UI", encode(ts, state.charset, "UI"))
        for tag in META_REMOVED:
            meta.pop(tag, None)
        meta[0x00020012] = new_element(0x00020012, "UI", encode(IMPLEMENTATION_CLASS_UID, state.charset, "UI"))
        meta[0x00020013] = new_element(0x00020013, "SH", encode(IMPLEMENTATION_VERSION, state.charset, "SH"))

    # ------------------------------------------------------------ files
    def anonymize_file(self, path: str, out: str, *, overwrite: bool = False) -> dict[str, Any]:
        """Read ``path``, de-identify it, write ``out`` atomically; return the record.

        Never raises for a bad input: the record then has ``ok: false`` and an
        ``error`` with a stable code.
        """
        record, _ = self._file(path, out, overwrite)
        return record

    def anonymize_bytes(self, data: bytes) -> tuple[bytes, Result]:
        """De-identify a DICOM file (or bare dataset) held in memory."""
        from ..dicom.writer import rewrite_bytes

        return rewrite_bytes(data, self.anonymize)

    def anonymize_pydicom(self, ds: Any) -> tuple[Any, Result]:
        """De-identify a pydicom ``Dataset``: returns a new one (the input is left as it was)."""
        import io

        from pydicom import dcmread

        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=bool(getattr(ds, "file_meta", None)))
        data, result = self.anonymize_bytes(buffer.getvalue())
        return dcmread(io.BytesIO(data), force=True), result

    def _file(
        self, path: str, out: str, overwrite: bool, in_folder: bool = False
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Anonymize ``path`` into ``out``; with ``in_folder`` ``out`` is a folder and the
        file goes to STUDY/SERIES/INSTANCE.dcm (its new UIDs) under it."""
        from ..dicom.reader import read
        from ..dicom.writer import Bulk, write
        from ..stream.outputs import exists_error, write_atomic

        try:
            dicom = read(path)
            if dicom.deflated:  # inflated values have no file offsets: read them all
                dicom = read(path, bulk_threshold=1 << 62)
            result = self.anonymize(dicom)
            if in_folder:
                out = os.path.join(out, *uid_names(dicom.dataset))
            exists = os.path.lexists(out)
            if exists and not overwrite:
                raise exists_error(out)
            if exists and _same_file(path, out):
                raise DcmtoolsError(
                    ErrorCode.EXISTS, "the output would replace the input", "choose an output folder outside the inputs"
                )
            with Bulk(path) as bulk:
                write_atomic(
                    out,
                    lambda stream: write(stream, dicom.meta or None, dicom.dataset, bulk, deflated=dicom.deflated),
                    overwrite,
                )
        except DcmtoolsError as exc:
            return error_record("file", exc, path=path), []
        except (ValueError, OSError) as exc:
            error = DcmtoolsError(ErrorCode.WRITE_FAILED, f"the anonymized file could not be written: {exc}")
            return error_record("file", error, path=path), []
        record: dict[str, Any] = {"type": "file", "path": path, "out": out, "ok": True}
        if result.sop_instance_uid:
            record["sop_instance_uid"] = result.sop_instance_uid
        if result.warnings:
            record["warnings"] = result.warnings
        return record, result.map


# ---------------------------------------------------------------- helpers
def uid_names(ds: Any) -> list[str]:
    """STUDY/SERIES/INSTANCE.dcm from the (new) UIDs; 'unknown' for a missing or unusable one."""
    parts = []
    for tag in (0x0020000D, 0x0020000E, 0x00080018):
        text = (ds.text(tag) or "").strip()
        ok = text and len(text) <= 64 and all(c.isdigit() or c == "." for c in text) and text.strip(".")
        parts.append(text if ok else "unknown")
    parts[-1] += ".dcm"
    return parts


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _mark(ds: Any, plan: Plan, charset: Any) -> None:
    """Patient Identity Removed, De-identification Method (+ codes), Longitudinal ..."""
    from ..dicom.reader import Dataset, Element
    from .engine import encode, new_element, text_of

    ds[0x00120062] = new_element(0x00120062, "CS", encode("YES", charset, "CS"))
    existing = text_of(ds[0x00120063], charset) if 0x00120063 in ds else []
    methods = existing + [m for m in plan.method_text() if m not in existing]
    ds[0x00120063] = new_element(0x00120063, "LO", encode("\\".join(methods), charset, "LO"))
    sequence = ds.get(0x00120064)
    items = list(sequence.items or []) if sequence is not None else []
    have = {(item.text(0x00080100), item.text(0x00080102)) for item in items}
    for value, meaning in plan.options.codes():
        if (value, "DCM") not in have:
            item = Dataset(ds.little, ds.implicit)
            item[0x00080100] = new_element(0x00080100, "SH", encode(value, charset, "SH"))
            item[0x00080102] = new_element(0x00080102, "SH", encode("DCM", charset, "SH"))
            item[0x00080104] = new_element(0x00080104, "LO", encode(meaning, charset, "LO"))
            items.append(item)
    ds[0x00120064] = Element(0x00120064, "SQ", 0, None, None, items, True)
    ours = plan.longitudinal()
    before = (ds.text(0x00280303) or "").upper()
    rank = {"UNMODIFIED": 0, "MODIFIED": 1, "REMOVED": 2}
    if rank.get(before, -1) > rank[ours]:
        ours = before
    ds[0x00280303] = new_element(0x00280303, "CS", encode(ours, charset, "CS"))


ORIGINAL_TAGS = {
    "PatientID": 0x00100020, "IssuerOfPatientID": 0x00100021, "PatientName": 0x00100010,
    "PatientBirthDate": 0x00100030, "StudyInstanceUID": 0x0020000D, "AccessionNumber": 0x00080050,
    "StudyID": 0x00200010, "StudyDate": 0x00080020,
}  # fmt: skip


def _text(ds: Any, tag: int, charset: Any) -> str:
    from .engine import text_of

    element = ds.get(tag)
    return "\\".join(text_of(element, charset)) if element is not None else ""


def _originals(ds: Any, charset: Any) -> dict[str, str]:
    return {name: _text(ds, tag, charset) for name, tag in ORIGINAL_TAGS.items()}


def _map_entries(original: dict[str, str], ds: Any, state: Any) -> list[dict[str, Any]]:
    """Re-identification entries (for --map): the patient, the study, every UID replaced."""
    cs = state.charset
    entries: list[dict[str, Any]] = []
    patient: dict[str, Any] = {
        "type": "patient",
        "original": {k: original[k] for k in ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")},
        "new": {"PatientID": _text(ds, 0x00100020, cs), "PatientName": _text(ds, 0x00100010, cs)},
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
                    k: _text(ds, ORIGINAL_TAGS[k], cs)
                    for k in ("StudyInstanceUID", "AccessionNumber", "StudyID", "StudyDate")
                },
            }
        )
    for old, new in sorted(state.uids.items()):
        entries.append({"type": "uid", "original": old, "new": new})
    return entries


# ---------------------------------------------------------------- batches
# (path, out or None, error record or None), and a 4th item True when it replaces our own lost attempt's output
Job = tuple[Any, ...]


def plan_jobs(items: Iterable[Any], mirror: Any, keep_names: bool = False) -> Iterator[Job]:
    """``(path, out, error)`` for each input item (``dcmtools.stream.inputs.InputItem``).

    ``mirror`` maps an input path to its output path; two inputs that would
    write the same output make the second an ``exists`` error.  Without
    ``keep_names`` ``out`` is the output folder ending in ``/``: the file is
    named from its new UIDs (STUDY/SERIES/INSTANCE.dcm).
    """
    seen: set[str] = set()
    out_root = os.path.abspath(getattr(mirror, "out_dir", "") or os.sep) + os.sep
    for item in items:
        if item.error is not None:
            yield item.path, None, error_record("file", item.error, path=item.path)
            continue
        if out_root != os.sep and os.path.abspath(item.path).startswith(out_root):
            error = DcmtoolsError(
                ErrorCode.EXISTS,
                "this file is inside the output folder: it is an output, not anonymized again",
                "choose an output folder outside the inputs",
            )
            yield item.path, None, error_record("file", error, path=item.path)
            continue
        if not keep_names:
            yield item.path, os.path.join(mirror.out_dir, ""), None  # a folder: named from the new UIDs
            continue
        out = mirror(item.path)
        key = os.path.normpath(out)
        if key in seen:
            error = DcmtoolsError(
                ErrorCode.EXISTS,
                f"another input of this run is written to {out} already",
                "give inputs whose paths below their folders differ, or anonymize them into separate folders",
            )
            yield item.path, None, error_record("file", error, path=item.path)
            continue
        seen.add(key)
        yield item.path, out, None


class MapWriter:
    """The ``--map`` file: JSON Lines from original to new identifiers, each entry once.

    Written to a temporary file readable by its owner only, put in place by
    ``close()``; an existing map is not replaced without ``overwrite``.
    """

    def __init__(self, path: str, overwrite: bool = False) -> None:
        import tempfile

        from ..stream.outputs import exists_error

        self.path = path
        self.overwrite = overwrite
        if not overwrite and os.path.lexists(path):
            raise exists_error(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
        self.stream = os.fdopen(fd, "w", encoding="utf-8")  # mode 0600: the map re-identifies patients
        self.seen: set[str] = set()

    def add(self, entries: Iterable[dict[str, Any]]) -> None:
        from ..stream.records import dumps

        for entry in entries:
            line = dumps(entry)
            if line not in self.seen:
                self.seen.add(line)
                self.stream.write(line + "\n")

    def close(self) -> None:
        """Put the map in place (what was mapped so far, also after an interruption)."""
        from ..stream.outputs import exists_error

        self.stream.close()
        try:
            if self.overwrite:
                os.replace(self.tmp, self.path)
            else:
                try:
                    os.link(self.tmp, self.path)
                except FileExistsError:
                    raise exists_error(self.path) from None
        finally:
            if os.path.lexists(self.tmp):
                os.unlink(self.tmp)


_BATCH: tuple[Anonymizer, bool] | None = None


def _batch_job(job: Job) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path, out, error = job[:3]
    if error is not None:
        return error, []
    assert _BATCH is not None and out is not None
    anonymizer, overwrite = _BATCH
    overwrite = overwrite or len(job) > 3  # _again_job: our own lost attempt's output
    try:
        return anonymizer._file(path, out, overwrite, in_folder=out.endswith(os.sep))
    except Exception as exc:  # a bug must not stop the batch
        message = f"internal error: {type(exc).__name__}: {exc} (this is a bug in dcmtools; please report it)"
        return error_record("file", DcmtoolsError(ErrorCode.INTERNAL, message), path=path), []


def _again_job(job: Job, result: tuple[dict[str, Any], list[dict[str, Any]]]) -> Job | None:
    """--cluster: an output that "exists" may be this run's own attempt lost with its worker."""
    return (*job[:3], True) if (result[0].get("error") or {}).get("code") == ErrorCode.EXISTS else None


def _lost_job(job: Job, reason: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    path, out, _ = job
    error = DcmtoolsError(ErrorCode.WORKER_DIED, reason, "try it alone with `jobs` 1")
    return error_record("file", error, path=path), []


def anonymize_paths(
    anonymizer: Anonymizer,
    jobs_in: Iterable[Job],
    *,
    jobs: int = 1,
    overwrite: bool = False,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Anonymize ``(path, out, error_record_or_None)`` jobs, in order, over ``jobs`` processes.

    Yields ``(record, map_entries)`` per job; a job that carries an error
    record yields it unchanged.  Worker processes are forked with the
    anonymizer already built.
    """
    from ..stream.parallel import map_ordered

    global _BATCH
    _BATCH = (anonymizer, overwrite)
    try:
        yield from map_ordered(
            _batch_job, jobs_in, jobs, lost=_lost_job, state=(__name__, "_BATCH", _BATCH), again=_again_job
        )
    finally:
        _BATCH = None
