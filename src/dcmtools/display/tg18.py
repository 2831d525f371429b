"""The AAPM TG18-LN luminance test patterns, written as DICOM images.

TG18-LN is the set of 18 images a physicist shows one after the other to
measure a display's luminance response (AAPM On-line Report No. 03, TG18):
each has a uniform background at 20% of the largest pixel value and a
central square covering 10% of the image area, whose value steps evenly from
0 to the largest value (8 bits: 0, 15, 30, ..., 255).  The photometer reads
the central square; the 18 readings are the input of ``dcmtools verify-display``.

The images are Secondary Capture objects (MONOCHROME2, synthetic) with a
window that maps every stored value to itself (centre 2^(n-1), width 2^n)
and an IDENTITY presentation LUT shape, so a viewer shows the P-values as
stored.  Written with pydicom (imported when a pattern is built).
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..stream.records import DcmtoolsError, ErrorCode
from .gsdf import atomic_write

if TYPE_CHECKING:
    from pydicom.dataset import FileDataset

__all__ = ["LEVELS", "ln_levels", "ln_pattern", "write_ln_patterns"]

LEVELS = 18  # TG18-LN: 18 luminance levels
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def ln_levels(bits: int = 8, count: int = LEVELS) -> list[int]:
    """The pixel values of the central square: ``count`` evenly spaced values 0..2^bits-1."""
    top = (1 << bits) - 1
    return [round(k * top / (count - 1)) for k in range(count)]


def ln_pattern(
    index: int, *, bits: int = 8, size: int = 1024, count: int = LEVELS, uids: dict[str, str] | None = None
) -> FileDataset:
    """The pydicom ``FileDataset`` of TG18-LN pattern ``index`` (1..count)."""
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import (
        PYDICOM_IMPLEMENTATION_UID,
        UID,
        ExplicitVRLittleEndian,
        generate_uid,
    )

    if bits not in (8, 10, 12, 16):
        raise ValueError("bits must be 8, 10, 12 or 16")
    if not 1 <= index <= count:
        raise ValueError(f"pattern index {index} out of 1..{count}")
    if size < 64:
        raise ValueError("the pattern size must be at least 64 pixels")
    uids = uids if uids is not None else {}
    top = (1 << bits) - 1
    level = ln_levels(bits, count)[index - 1]
    background = round(0.2 * top)
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = np.full((size, size), background, dtype=dtype)
    side = int(round(size * math.sqrt(0.10)))  # 10% of the area
    start = (size - side) // 2
    pixels[start : start + side, start : start + side] = level

    name = _pattern_name(bits, index)
    now = _dt.datetime.now()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    # named as write_ln_patterns writes it
    ds = FileDataset(name + ".dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.Modality = "OT"
    ds.ConversionType = "SYN"
    ds.Manufacturer = "dcmtools"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "AAPM TG18 display test patterns"
    ds.SeriesDescription = f"TG18-LN{bits} luminance response"
    ds.PatientName = "TG18^LN"
    ds.PatientID = "TG18-LN"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = uids.setdefault("study", generate_uid())
    ds.SeriesInstanceUID = uids.setdefault("series", generate_uid())
    ds.StudyID = "TG18"
    ds.SeriesNumber = 1
    ds.Laterality = ""
    ds.InstanceNumber = index
    ds.PatientOrientation = ""
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ImageComments = (
        f"{name}: central square {side}x{side} (10% of the area) at {level} of {top}, background {background} "
        f"(20%). Measure the luminance of the square; pattern {index} of {count}."
    )
    ds.BurnedInAnnotation = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.WindowCenter = 1 << (bits - 1)
    ds.WindowWidth = 1 << bits
    ds.WindowCenterWidthExplanation = "IDENTITY: every stored value shown as is"
    ds.PresentationLUTShape = "IDENTITY"
    ds.PixelData = pixels.tobytes()
    return ds


def _pattern_name(bits: int, index: int) -> str:
    return f"TG18-LN{bits}-{index:02d}"


def write_ln_patterns(
    folder: str, *, bits: int = 8, size: int = 1024, count: int = LEVELS, overwrite: bool = False
) -> Iterator[dict[str, Any]]:
    """Write the TG18-LN patterns into ``folder`` as TG18-LN<bits>-NN.dcm.

    Yields one ``file`` record per pattern: ``{"type": "file", "out": ...,
    "ok": true, "pattern": "TG18-LN8-01", "level": 0}``, or an error record
    (``exists`` without ``overwrite``, ``write_failed``).  Files are written
    atomically.
    """
    from ..stream.records import error_record

    uids: dict[str, str] = {}
    levels = ln_levels(bits, count)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        error = DcmtoolsError(ErrorCode.WRITE_FAILED, f"cannot create the folder {folder}: {exc.strerror or exc}")
        for index in range(1, count + 1):
            yield error_record("file", error, out=os.path.join(folder, _pattern_name(bits, index) + ".dcm"))
        return
    for index in range(1, count + 1):
        name = _pattern_name(bits, index)
        out = os.path.join(folder, name + ".dcm")
        try:
            ds = ln_pattern(index, bits=bits, size=size, count=count, uids=uids)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            atomic_write(out, buffer.getvalue(), overwrite=overwrite)
        except DcmtoolsError as exc:
            yield error_record("file", exc, out=out, pattern=name)
            continue
        yield {"type": "file", "out": out, "ok": True, "pattern": name, "level": levels[index - 1], "bits": bits}
