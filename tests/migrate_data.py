"""A small archive for the migration tests: 3 patients, 21 studies, CT and MR, several transfer syntaxes,
and helpers to compare what a destination holds with the source files."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import urllib.request
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from qrpeers import PATIENTS, records, same_instance, uid

PATIENT_IDS = list(PATIENTS)
# (source file, modality, transfer syntax to write or None to keep the file's)
KINDS = [
    ("CT_small.dcm", "CT", ExplicitVRLittleEndian),
    ("MR_small.dcm", "MR", ImplicitVRLittleEndian),
    ("MR_small_RLE.dcm", "MR", None),
]


def build(
    folder: Path, studies: int = 21, *, compressed: bool = True, dateless: int = 0, refuse: int | None = None
) -> dict[str, list[Path]]:
    """``studies`` studies over 3 patients; each has 1 or 2 series of 1 or 2 instances.  Study n is dated
    2024-01-01 + 9n days (the last ``dateless`` have no StudyDate); study ``refuse`` is described
    "REFUSE ME".  Without ``compressed`` only uncompressed syntaxes.  Returns {study UID: files}."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {}
    kinds = KINDS if compressed else KINDS[:2]
    for n in range(studies):
        patient = PATIENT_IDS[n % 3]
        study_uid = uid(f"mig/study/{n}")
        date = "" if n >= studies - dateless else (dt.date(2024, 1, 1) + dt.timedelta(days=9 * n)).strftime("%Y%m%d")
        out[study_uid] = []
        for s in range(1 + n % 2):
            source, modality, ts = kinds[(n + s) % len(kinds)]
            for i in range(1 + (n + s) % 2):
                ds = pydicom.dcmread(get_testdata_file(source))
                for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence", "PatientAge", "PatientWeight"):
                    if keyword in ds:
                        delattr(ds, keyword)
                ds.PatientID = patient
                for keyword, value in PATIENTS[patient].items():
                    setattr(ds, keyword, value)
                ds.StudyInstanceUID = study_uid
                ds.StudyDate = date
                ds.StudyTime = "101500"
                ds.AccessionNumber = f"MIG{n:03d}"
                ds.StudyID = str(n)
                ds.StudyDescription = "REFUSE ME" if n == refuse else f"study {n}"
                ds.SeriesInstanceUID = uid(f"mig/series/{n}/{s}")
                ds.SeriesNumber = s + 1
                ds.Modality = modality
                ds.InstanceNumber = i + 1
                sop = uid(f"mig/instance/{n}/{s}/{i}")
                ds.SOPInstanceUID = sop
                ds.file_meta.MediaStorageSOPInstanceUID = sop
                path = folder / f"{n:02d}-{s}-{i}.dcm"
                if ts is not None:
                    ds.file_meta.TransferSyntaxUID = ts
                    ds.save_as(
                        path, enforce_file_format=True, implicit_vr=ts == ImplicitVRLittleEndian, little_endian=True
                    )
                else:
                    ds.save_as(path, enforce_file_format=True)
                out[study_uid].append(path)
    return out


def all_files(archive: dict[str, list[Path]]) -> list[Path]:
    return [p for files in archive.values() for p in files]


def orthanc_files(http: int, into: Path) -> dict[str, Path]:
    """Every instance Orthanc holds, written under ``into``: {SOP Instance UID: file}."""
    into.mkdir(parents=True, exist_ok=True)
    out = {}
    base = f"http://127.0.0.1:{http}"
    for ident in json.loads(urllib.request.urlopen(f"{base}/instances", timeout=10).read()):
        data = urllib.request.urlopen(f"{base}/instances/{ident}/file", timeout=10).read()
        path = into / f"{ident}.dcm"
        path.write_bytes(data)
        out[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    return out


def folder_files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in folder.rglob("*.dcm")}


def assert_same(
    archive: dict[str, list[Path]], received: dict[str, Path], skip_studies: set[str] = frozenset()
) -> None:
    """Every instance of the archive (but those of ``skip_studies``) is there, its dataset equal."""
    for study, files in archive.items():
        if study in skip_studies:
            continue
        for path in files:
            sop = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            assert sop in received, f"{path.name} ({sop}) is missing at the destination"
            assert same_instance(received[sop], path), f"{path.name} differs at the destination"


def by_type(out: str, kind: str) -> list[dict]:
    """The records of one type in a command's output."""
    return [r for r in records(out) if r.get("type") == kind]


def journal_data(path: Path) -> dict[str, dict]:
    """Each journal item's data (the new UIDs, commitment...), by item id."""
    with sqlite3.connect(path) as db:
        return {row[0]: json.loads(row[1] or "{}") for row in db.execute("SELECT id, data FROM items")}


def journal_counts(path: Path) -> dict[str, int]:
    """The journal's counts per state, read with plain sqlite3 (as another process would)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())


def journal_attempts(path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return dict(db.execute("SELECT id, attempts FROM items").fetchall())
