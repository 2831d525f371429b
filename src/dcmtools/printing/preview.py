"""``--dry-run``: each film drawn as the printer would lay it out, written as a DICOM image.

``compose_film(images, film)`` returns the film as 0..1 grey levels (0 =
black): the film's shape from its size and orientation (the printer's own
default size is not known here: 14INX17IN is drawn), the image boxes of the
layout separated by borders, each image scaled to fit its box keeping its
aspect (and pixel aspect ratio), REVERSE polarity inverted, empty boxes and
borders at their densities.  Densities (BLACK, WHITE or hundredths of OD)
become grey levels the way a printer with an IDENTITY Presentation LUT makes
them: P-values are equally spaced in JNDs of the GSDF between the luminance
of Dmax 3.20 and Dmin 0.20 on a 2000 cd/m2 light box (PS3.14, PS3.4 H).  It
is a preview: the printer's own scaling (magnification) and densities differ.

``write_film(path, pixels, ...)`` writes it as a Secondary Capture image
(MONOCHROME2, 8 bits, or 12 bits in 16), atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .options import FilmOptions, film_dimensions
from .prepare import PreparedImage, to_pvalues

PREVIEW_LONG_SIDE = 2048  # pixels along the film's long side
D_MIN, D_MAX = 20, 320  # hundredths of OD
ILLUMINATION, AMBIENT = 2000.0, 10.0  # cd/m2 (PS3.4 H.4.2.2.1 recommended defaults for film)


def density_level(density: str | None, default: float) -> float:
    """A Border/Empty Image Density as a grey level 0..1 (0 = black)."""
    if density is None:
        return default
    if density == "BLACK":
        return 0.0
    if density == "WHITE":
        return 1.0
    from ..display.gsdf import jnd_index

    def jnd(od: float) -> float:
        return jnd_index(ILLUMINATION * 10 ** (-od / 100.0) + AMBIENT)

    low, high = jnd(D_MAX), jnd(D_MIN)
    od = min(max(float(density), D_MIN), D_MAX)
    return (jnd(od) - low) / (high - low)


def resize(values: np.ndarray, height: int, width: int, method: str = "BILINEAR") -> np.ndarray:
    """``values`` resampled to ``height`` x ``width`` (REPLICATE: nearest; otherwise bilinear)."""
    rows, columns = values.shape
    if (rows, columns) == (height, width):
        return values
    y = (np.arange(height) + 0.5) * rows / height - 0.5
    x = (np.arange(width) + 0.5) * columns / width - 0.5
    if method == "REPLICATE":
        yi = np.clip(np.floor(y + 0.5).astype(np.int64), 0, rows - 1)
        xi = np.clip(np.floor(x + 0.5).astype(np.int64), 0, columns - 1)
        nearest: np.ndarray = values[np.ix_(yi, xi)]
        return nearest
    y = np.clip(y, 0, rows - 1)
    x = np.clip(x, 0, columns - 1)
    y0 = np.floor(y).astype(np.int64)
    x0 = np.floor(x).astype(np.int64)
    y1 = np.minimum(y0 + 1, rows - 1)
    x1 = np.minimum(x0 + 1, columns - 1)
    wy = (y - y0).astype(np.float32)[:, None]
    wx = (x - x0).astype(np.float32)[None, :]
    top = values[np.ix_(y0, x0)] * (1 - wx) + values[np.ix_(y0, x1)] * wx
    bottom = values[np.ix_(y1, x0)] * (1 - wx) + values[np.ix_(y1, x1)] * wx
    blended: np.ndarray = (top * (1 - wy) + bottom * wy).astype(np.float32)
    return blended


def box_rectangles(film: FilmOptions, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Each image box as (x, y, width, height) on a ``width`` x ``height`` film, in position order."""
    gap = max(2, round(0.01 * min(width, height)))
    rectangles = []
    for row, column, rows, columns in film.layout.cells():
        box_w = (width - (columns + 1) * gap) / columns
        box_h = (height - (rows + 1) * gap) / rows
        x = gap + column * (box_w + gap)
        y = gap + row * (box_h + gap)
        rectangles.append((round(x), round(y), max(1, math.floor(box_w)), max(1, math.floor(box_h))))
    return rectangles


def film_shape(film: FilmOptions) -> tuple[int, int]:
    """(width, height) in pixels of the preview of a film."""
    width_mm, height_mm, _ = film_dimensions(film.film_size, film.orientation)
    scale = PREVIEW_LONG_SIDE / max(width_mm, height_mm)
    return max(16, round(width_mm * scale)), max(16, round(height_mm * scale))


def compose_film(images: Sequence[PreparedImage], film: FilmOptions) -> np.ndarray:
    """The film as grey levels 0..1 (float32, rows x columns)."""
    width, height = film_shape(film)
    paper = film.medium == "PAPER"
    border = density_level(film.border_density, 1.0 if paper else 0.0)
    empty = density_level(film.empty_density, border)
    canvas = np.full((height, width), border, dtype=np.float32)
    method = film.magnification or "BILINEAR"
    for index, (x, y, box_w, box_h) in enumerate(box_rectangles(film, width, height)):
        if index >= len(images):
            canvas[y : y + box_h, x : x + box_w] = empty
            continue
        image = images[index]
        aspect_row, aspect_col = image.aspect or (1, 1)
        shown_h, shown_w = image.rows * aspect_row, image.columns * aspect_col
        scale = min(box_w / shown_w, box_h / shown_h)
        target_w = max(1, min(box_w, round(shown_w * scale)))
        target_h = max(1, min(box_h, round(shown_h * scale)))
        pixels = resize(image.values, target_h, target_w, method)
        if film.polarity == "REVERSE":
            pixels = 1.0 - pixels
        left = x + (box_w - target_w) // 2
        top = y + (box_h - target_h) // 2
        canvas[top : top + target_h, left : left + target_w] = pixels
    return canvas


def film_dataset(pixels: np.ndarray, bits: int, film: FilmOptions, number: int, images: Sequence[PreparedImage]) -> Any:
    """A Secondary Capture dataset (with file meta) holding the film preview."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    from .. import __version__

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    patients = {(image.patient_id, image.patient_name) for image in images}
    if len(patients) == 1:
        ds.PatientID, ds.PatientName = next(iter(patients))
    else:
        ds.PatientID, ds.PatientName = "", ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = ds.StudyTime = ds.AccessionNumber = ds.ReferringPhysicianName = ds.StudyID = ""
    ds.Modality = "OT"
    ds.Laterality = ""  # unknown: a film may show any body part
    ds.PatientOrientation = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ConversionType = "WSD"
    ds.SeriesDescription = "dcmtools print preview"
    ds.DerivationDescription = (
        f"film {number}: layout {film.layout.value}, film size {film.film_size or 'printer default (drawn as 14INX17IN)'}, "
        f"orientation {film.orientation or 'printer default (drawn as PORTRAIT)'}"
    )[:1024]
    ds.ImageComments = "\n".join(
        f"{i + 1}: {image.path}" + (f" frame {image.frame}" if image.frame else "") for i, image in enumerate(images)
    )[:10240]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.add_new(0x7FE00010, "OB" if bits == 8 else "OW", pvalues_bytes(pixels, bits))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = f"DCMTOOLS_{__version__}"[:16]
    ds.file_meta = meta
    return ds


def pvalues_bytes(pixels: np.ndarray, bits: int) -> bytes:
    values = to_pvalues(pixels, bits)
    data = values.tobytes() if bits == 8 else values.astype("<u2", copy=False).tobytes()
    return data + b"\x00" if len(data) % 2 else data


def write_film(path: str, ds: Any, overwrite: bool = False) -> None:
    """Write ``ds`` to ``path`` atomically (never replacing a file unless ``overwrite``)."""
    from ..stream.outputs import write_atomic

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    write_atomic(path, lambda stream: stream.write(data), overwrite=overwrite)
