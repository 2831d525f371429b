"""Images and a DCMTK print SCP for the print tests.

``printscp(tmp_path, **settings)`` starts DCMTK's ``dcmprscp`` on a free port
with a dcmpstat configuration of absolute paths (the IHEFULL printer of
/etc/dcmtk/printers.cfg; ``settings`` replace its lines, e.g.
``Supports12Bit="false"``) and stops it by PID.  ``stored_films(db)`` reads
back what it stored: for each printed film box, its Stored Print object
(SP_*.dcm) and the Hardcopy Grayscale images (HG_*.dcm) by image position.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from peers import free_port, require, running
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

PRINTER_SETTINGS = {
    "BorderDensity": "150\\20\\BLACK\\WHITE",
    "DisableNewVRs": "false",
    "DisplayFormat": "1,1\\1,2\\2,1\\2,2\\2,3\\3,3\\3,4\\3,5\\4,4\\4,5",
    "EmptyImageDensity": "20\\BLACK\\WHITE",
    "FilmDestination": "MAGAZINE\\PROCESSOR\\BIN_1\\BIN_2",
    "FilmSizeID": "8INX10IN\\10INX12IN\\10INX14IN\\11INX14IN\\14INX14IN\\14INX17IN\\24CMX24CM\\24CMX30CM",
    "ImplicitOnly": "false",
    "MagnificationType": "REPLICATE\\BILINEAR\\CUBIC\\NONE",
    "MaxDensity": "320",
    "MaxPDU": "32768",
    "MediumType": "PAPER\\CLEAR FILM\\BLUE FILM",
    "MinDensity": "20",
    "OmitSOPClassUIDFromCreateResponse": "false",
    "PresentationLUTMatchRequired": "false",
    "PresentationLUTinFilmSession": "false",
    "ResolutionID": "STANDARD\\HIGH",
    "SmoothingType": "NONE",
    "Supports12Bit": "true",
    "SupportsDecimateCrop": "true",
    "SupportsImageSize": "true",
    "SupportsPresentationLUT": "true",
    "SupportsTrim": "true",
}


@dataclass
class PrintSCP:
    aet: str
    port: int
    db: Path
    log: Path
    process: Any = None  # the dcmprscp Popen

    @property
    def peer(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.port}"


@contextlib.contextmanager
def printscp(tmp_path: Path, aet: str = "PRINTSCP", **settings: str) -> Iterator[PrintSCP]:
    require("dcmprscp")
    root = tmp_path / "printscp"
    db, spool, log_dir = root / "db", root / "spool", root / "log"
    for folder in (db, spool, log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    lines = [
        "[[GENERAL]]",
        "[APPLICATION]",
        f"LogDirectory = {log_dir}",
        "LogFile = general.log",
        "LogLevel = ERROR",
        "[PRINT]",
        "Spooler = /usr/bin/dcmprscu",
        "Server = /usr/bin/dcmprscp",
        f"Directory = {spool}",
        "DetailedLog = true",
        "DeletePrintJobs = false",
        "AlwaysDeleteTerminateJobs = false",
        "[DATABASE]",
        f"Directory = {db}",
        "[LUT]",
        f"Directory = {root / 'lut'}",
        "[[COMMUNICATION]]",
        "[PRT]",
        f"Aetitle = {aet}",
        "Description = dcmtools test printer",
        "Hostname = 127.0.0.1",
        f"Port = {port}",
        "Type = LOCALPRINTER",
    ]
    lines += [f"{key} = {value}" for key, value in {**PRINTER_SETTINGS, **settings}.items()]
    config = root / "printer.cfg"
    config.write_text("\n".join(lines) + "\n")
    log = root / "dcmprscp.log"
    with running(["dcmprscp", "-c", str(config), "-p", "PRT", "-d"], port, log=log) as process:
        yield PrintSCP(aet, port, db, log, process)


def stored_films(db: Path) -> list[tuple[Dataset, list[Dataset]]]:
    """Each printed film box: (Stored Print, [Hardcopy Grayscale image by position]), in print order."""
    hardcopy = {}
    for path in db.glob("HG_*.dcm"):
        ds = pydicom.dcmread(path)
        hardcopy[str(ds.SOPInstanceUID)] = ds
    films = []
    for path in sorted(db.glob("SP_*.dcm"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        sp = pydicom.dcmread(path)
        boxes = sorted(sp.ImageBoxContentSequence, key=lambda item: int(item.ImageBoxPosition))
        images = [hardcopy[str(item.ReferencedImageSequence[0].ReferencedSOPInstanceUID)] for item in boxes]
        films.append((sp, images))
    return films


# ------------------------------------------------------------------ test images


def _base(sop_class: str, patient: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient
    ds.PatientID = patient.upper()[:16]
    ds.StudyDate = "20240101"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def _pixels(ds: Dataset, array: np.ndarray, bits_stored: int, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = array.shape
    ds.BitsAllocated = 16 if bits_stored > 8 else 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = ("<i2" if signed else "<u2") if ds.BitsAllocated == 16 else "u1"
    ds.PixelData = array.astype(dtype).tobytes()


def ramp(rows: int, columns: int, low: int, high: int) -> np.ndarray:
    """A horizontal ramp from ``low`` to ``high`` with a vertical wobble (every value differs by row too)."""
    x = np.linspace(low, high, columns)
    y = np.linspace(0, (high - low) / 50, rows)[:, None]
    return np.rint(x[None, :] + y).astype(np.int64)


def make_ct(
    path: Path,
    *,
    center: float | None = 40,
    width: float | None = 400,
    rows: int = 96,
    columns: int = 80,
    patient: str = "Doe^Ct",
) -> np.ndarray:
    """A CT (stored -1000..2900 HU + 1024, rescale intercept -1024) with a soft-tissue window; returns stored values."""
    ds = _base(CTImageStorage, patient)
    ds.Modality = "CT"
    ds.PhotometricInterpretation = "MONOCHROME2"
    stored = ramp(rows, columns, 24, 3924)
    _pixels(ds, stored, 12, False)
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    if center is not None:
        ds.WindowCenter = str(center)
        ds.WindowWidth = str(width)
    ds.PixelSpacing = ["0.5", "0.5"]
    ds.save_as(path, enforce_file_format=True)
    return stored


def make_mono1(path: Path, *, rows: int = 64, columns: int = 48, patient: str = "Doe^Cr") -> np.ndarray:
    """A MONOCHROME1 CR-like secondary capture, 10 bits stored, window 512/1024; returns stored values."""
    ds = _base(SecondaryCaptureImageStorage, patient)
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.PhotometricInterpretation = "MONOCHROME1"
    stored = ramp(rows, columns, 0, 1000)
    _pixels(ds, stored, 10, False)
    ds.WindowCenter = "400"
    ds.WindowWidth = "600"
    ds.save_as(path, enforce_file_format=True)
    return stored


def make_gray8(path: Path, *, rows: int = 40, columns: int = 60, patient: str = "Doe^Us") -> np.ndarray:
    """An 8-bit MONOCHROME2 secondary capture without a window."""
    ds = _base(SecondaryCaptureImageStorage, patient)
    ds.Modality = "US"
    ds.ConversionType = "WSD"
    ds.PhotometricInterpretation = "MONOCHROME2"
    stored = ramp(rows, columns, 10, 240)
    _pixels(ds, stored, 8, False)
    ds.save_as(path, enforce_file_format=True)
    return stored


def make_not_an_image(path: Path) -> None:
    """A DICOM file without pixel data (a Basic Text SR header)."""
    ds = _base("1.2.840.10008.5.1.4.1.1.88.11", "Doe^Sr")
    ds.Modality = "SR"
    ds.save_as(path, enforce_file_format=True)


def linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, written out here independently of dcmtools, to 0..1."""
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    y = (x - (center - 0.5)) / (width - 1) + 0.5
    return np.where(x <= low, 0.0, np.where(x > high, 1.0, y))


def expected_pvalues(values01: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(np.clip(values01, 0, 1) * ((1 << bits) - 1)).astype(np.int64)
