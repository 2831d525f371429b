"""Images made ready for a grayscale printer, as a viewer would show them.

    from dcmtools.printing.prepare import read_images
    for image in read_images("ct.dcm", window=(40, 400)):
        pixels = image.pixels(12)          # uint16 P-values 0..4095 (or image.pixels(8): uint8)

The grayscale pipeline of PS3.4 (N.2), per frame:

1. stored values -> modality values: the Modality LUT Sequence, else Rescale
   Slope/Intercept (per frame for enhanced multi-frame images: Pixel Value
   Transformation in the functional groups);
2. modality values -> 0..1 by the VOI: ``window=(center, width)`` from the
   command line, else the file's first window (Window Center/Width, per frame
   for enhanced images, with its VOI LUT Function LINEAR, LINEAR_EXACT or
   SIGMOID), else the file's first VOI LUT (VOI LUT Sequence), else: an image
   of at most 8 bits without rescale shows its whole stored range (as it was
   made to be shown), any other image its minimum to maximum (pixel padding
   left out) -- ``window="minmax"`` asks for that on any image;
3. MONOCHROME1: inverted after the VOI (1 - v), so black stays what the
   window makes black;
4. 0..1 -> P-values of 8 bits (0..255) or 12 bits (0..4095, in 16), rounded.

The printer receives P-values with an IDENTITY Presentation LUT, so a
P-value means the same grey as on a GSDF-calibrated display.

Colour images (RGB, YBR_*, PALETTE COLOR) become grayscale by their luma
(Rec. 601: 0.299 R + 0.587 G + 0.114 B, over the full range of the colour
samples), with a warning.  Overlays and presentation states are not applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from ..stream.records import DcmtoolsError, ErrorCode

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
from .options import select_frames

COLOUR = (
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_PARTIAL_420",
    "YBR_PARTIAL_422",
    "YBR_ICT",
    "YBR_RCT",
    "PALETTE COLOR",
)
LUMA = (0.299, 0.587, 0.114)


@dataclass
class PreparedImage:
    """One frame as P-values of 12 bits (``p12``) and 8 bits (``p8``), 0 = black.

    Both depths are rounded from the same double-precision grey levels, so
    neither is derived from the other; ``values`` gives the 12-bit levels as
    0..1 again (for previews).  Build one with ``PreparedImage.from_values``.
    """

    p12: np.ndarray
    p8: np.ndarray
    path: str
    frame: int | None = None  # 1-based, for a multi-frame source
    frames: int = 1
    voi: str = ""  # window | option | lut | minmax | range | colour
    window: tuple[float, float] | None = None
    photometric: str = "MONOCHROME2"
    aspect: tuple[int, int] | None = None  # Pixel Aspect Ratio (row, column) when not 1:1
    patient_id: str = ""
    patient_name: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_values(cls, values: np.ndarray, path: str = "", **fields: Any) -> PreparedImage:
        """From grey levels 0..1 (any float array; outside values are clipped)."""
        values = np.asarray(values, dtype=np.float64)
        return cls(p12=to_pvalues(values, 12), p8=to_pvalues(values, 8), path=path, **fields)

    @property
    def rows(self) -> int:
        return int(self.p12.shape[0])

    @property
    def columns(self) -> int:
        return int(self.p12.shape[1])

    @property
    def values(self) -> np.ndarray:
        """The 12-bit P-values as grey levels 0..1 (float32)."""
        return self.p12.astype(np.float32) / np.float32(4095)

    def pixels(self, bits: int) -> np.ndarray:
        """P-values: uint8 0..255 for ``bits=8``, uint16 0..4095 for ``bits=12``."""
        if bits == 8:
            return self.p8
        if bits == 12:
            return self.p12
        raise ValueError(f"bits must be 8 or 12, not {bits}")

    def describe(self) -> dict[str, Any]:
        """The image's part of a film record."""
        info: dict[str, Any] = {"path": self.path}
        if self.frame is not None:
            info["frame"] = self.frame
        info.update(rows=self.rows, columns=self.columns, photometric=self.photometric, voi=self.voi)
        if self.window is not None:
            info["window"] = [_number(self.window[0]), _number(self.window[1])]
        if self.aspect is not None:
            info["pixel_aspect_ratio"] = list(self.aspect)
        if self.sop_instance_uid:
            info["sop_instance_uid"] = self.sop_instance_uid
        if self.warnings:
            info["warnings"] = list(self.warnings)
        return info


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(float(value), 6)


def to_pvalues(values: np.ndarray, bits: int) -> np.ndarray:
    """0..1 grey levels as P-values of ``bits`` (8 -> uint8, 12 -> uint16), rounded to nearest."""
    if bits not in (8, 12):
        raise ValueError(f"bits must be 8 or 12, not {bits}")
    top = (1 << bits) - 1
    scaled = np.rint(np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * top)
    return scaled.astype(np.uint8 if bits == 8 else np.uint16)


# ------------------------------------------------------------------ VOI functions


def window_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR, to 0..1."""
    if width <= 1:
        return (x > center - 0.5).astype(np.float64)
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def window_linear_exact(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.3.2 LINEAR_EXACT, to 0..1."""
    return np.clip((x - center) / width + 0.5, 0.0, 1.0)


def window_sigmoid(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.3.1 SIGMOID, to 0..1."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))


VOI_FUNCTIONS = {"LINEAR": window_linear, "LINEAR_EXACT": window_linear_exact, "SIGMOID": window_sigmoid}


def min_max(x: np.ndarray, sample: np.ndarray | None = None) -> np.ndarray:
    """``x`` scaled so that its own range is 0..1; ``sample`` (a boolean mask) says which
    elements count for the range (e.g. not pixel padding, or the levels present in a frame)."""
    chosen = x[sample] if sample is not None and sample.any() else x
    low, high = float(np.min(chosen)), float(np.max(chosen))
    if high <= low:
        return np.zeros(x.shape, dtype=np.float64)
    return np.clip((x - low) / (high - low), 0.0, 1.0)


# ------------------------------------------------------------------ reading


def _open(path: str) -> Dataset:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except FileNotFoundError:
        raise DcmtoolsError(ErrorCode.NOT_FOUND, f"{path}: no such file") from None
    except IsADirectoryError:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"{path} is a folder") from None
    except PermissionError:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"{path}: permission denied") from None
    except InvalidDicomError:
        raise DcmtoolsError(ErrorCode.NOT_DICOM, f"{path} is not a DICOM file", "print DICOM images only") from None
    except Exception as exc:  # truncated or malformed beyond pydicom's patience
        raise DcmtoolsError(ErrorCode.INVALID, f"{path} cannot be read as DICOM: {exc}") from None


def read_images(
    path: str,
    *,
    window: tuple[float, float] | str | None = None,
    frames: list[tuple[int, int | None]] | None = None,
    dataset: Any = None,
) -> Iterator[PreparedImage]:
    """The frames of one file, prepared (see the module docs); one frame decoded at a time.

    ``frames`` (from ``options.parse_frames``) picks frames of a multi-frame
    image; a single-frame image always gives its one frame.  Raises
    ``DcmtoolsError`` when the file is not an image or cannot be decoded.
    """
    ds = dataset if dataset is not None else _open(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        what = _sop_name(ds)
        raise DcmtoolsError(
            ErrorCode.NO_IMAGE,
            f"{path} has no image{f' (it is a {what})' if what else ''}",
            "print image files only",
        )
    count = int(ds.get("NumberOfFrames") or 1) if _is_int(ds.get("NumberOfFrames") or 1) else 1
    chosen = select_frames(frames, count) if count > 1 else [0]
    if not chosen:
        raise DcmtoolsError(
            ErrorCode.NO_IMAGE,
            f"{path} has {count} frames; `frames` selects none of them",
            f"choose frames between 1 and {count}",
        )
    for index in chosen:
        yield prepare_frame(ds, index, count, path=path, window=window)


def _is_int(value: Any) -> bool:
    try:
        int(value)
        return True
    except (TypeError, ValueError):
        return False


def _sop_name(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)
    if not uid:
        return ""
    from pydicom.uid import UID

    name = UID(str(uid)).name
    return name if name != str(uid) else f"SOP class {uid}"


def _decode(ds: Any, index: int, count: int, path: str, **kwargs: Any) -> np.ndarray:
    """One frame's pixels, decoded by the fastest plugin installed (as ``dcmtools.dicom.codecs`` chooses)."""
    from pydicom.pixels import get_decoder, pixel_array

    from ..dicom import codecs

    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        plugin = codecs.decoding_plugin(str(ts), get_decoder(ts).available_plugins) if ts else ""
    except Exception:  # no decoder for this syntax: pixel_array says so below
        plugin = ""
    try:
        return pixel_array(ds, index=index if count > 1 else None, decoding_plugin=plugin, **kwargs)
    except Exception as exc:
        ts_name = getattr(ts, "name", None) or str(ts or "unknown transfer syntax")
        raise DcmtoolsError(
            ErrorCode.CANNOT_DECODE,
            f"{path}: cannot decode the image ({ts_name}): {exc}",
            "the file may be damaged, or its compression is not supported here (pylibjpeg plugins)",
        ) from None


def prepare_frame(
    ds: Any,
    index: int = 0,
    count: int | None = None,
    *,
    path: str = "",
    window: tuple[float, float] | str | None = None,
) -> PreparedImage:
    """Frame ``index`` (0-based) of dataset ``ds`` as a ``PreparedImage``."""
    count = count if count is not None else int(ds.get("NumberOfFrames") or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    warnings: list[str] = []
    frame_no = index + 1 if count > 1 else None
    if photometric in COLOUR or int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        values = _colour_to_grey(ds, index, count, path, photometric)
        voi, used = "colour", None
        warnings.append(f"colour image ({photometric}) printed in grayscale (luma of its RGB values)")
        if window is not None:
            warnings.append("`window` does not apply to a colour image")
    else:
        stored = _decode(ds, index, count, path)
        if stored.ndim != 2:
            raise DcmtoolsError(ErrorCode.INVALID, f"{path}: unexpected pixel array shape {stored.shape}")
        table = _lookup_tables(ds, stored, index, window, warnings)
        if table is not None:
            (p12, p8), voi, used = table
            return PreparedImage(
                p12=p12, p8=p8, **_fields(ds, path, frame_no, count, voi, used, photometric, index, warnings)
            )
        modality, rescaled = _modality(ds, stored, index)
        pad = _padding_mask(ds, stored)
        values, voi, used = _voi(ds, modality, rescaled, index, window, warnings, None if pad is None else ~pad)
        if photometric == "MONOCHROME1":
            values = 1.0 - values
        elif photometric != "MONOCHROME2":
            warnings.append(f"photometric interpretation {photometric!r} printed as MONOCHROME2")
    return PreparedImage.from_values(
        values, **_fields(ds, path, frame_no, count, voi, used, photometric, index, warnings)
    )


def _fields(
    ds: Any,
    path: str,
    frame: int | None,
    count: int,
    voi: str,
    used: Any,
    photometric: str,
    index: int,
    warnings: list[str],
) -> dict[str, Any]:
    return dict(
        path=path,
        frame=frame,
        frames=count,
        voi=voi,
        window=used,
        photometric=photometric,
        aspect=_aspect(ds, index),
        patient_id=str(ds.get("PatientID", "") or ""),
        patient_name=str(ds.get("PatientName", "") or ""),
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        study_instance_uid=str(ds.get("StudyInstanceUID", "") or ""),
        warnings=warnings,
    )


LOOKUP_MAX_LEVELS = 1 << 20  # a stored range wider than this is prepared pixel by pixel


def _lookup_tables(
    ds: Any, stored: np.ndarray, index: int, window: Any, warnings: list[str]
) -> tuple[tuple[np.ndarray, np.ndarray], str, Any] | None:
    """The grayscale pipeline through lookup tables: every step is a function of the stored
    value, so it is computed once per stored level (in double precision, exactly as pixel by
    pixel) and the P-values are looked up.  None for pixel data that is not integer, or whose
    range is too wide for a table."""
    if stored.dtype.kind not in "iu" or stored.size == 0:
        return None
    low, high = int(stored.min()), int(stored.max())
    if high - low >= LOOKUP_MAX_LEVELS:
        return None
    offsets = np.subtract(stored, low, dtype=np.intp)
    levels = np.arange(low, high + 1, dtype=np.int64)
    pad = _padding_mask(ds, levels)
    sample = None
    if pad is not None or "ModalityLUTSequence" in ds:
        # The range of the frame's own values: only the levels it holds (not padding) count.
        # (Without padding and with a linear rescale, the lowest and highest levels -- both
        # present -- give that range already.)
        sample = np.bincount(offsets.ravel(), minlength=levels.size) > 0
        if pad is not None:
            sample &= ~pad
    modality, rescaled = _modality(ds, levels, index)
    values, voi, used = _voi(ds, modality, rescaled, index, window, warnings, sample)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "MONOCHROME1":
        values = 1.0 - values
    elif photometric != "MONOCHROME2":
        warnings.append(f"photometric interpretation {photometric!r} printed as MONOCHROME2")
    p12 = np.take(to_pvalues(values, 12), offsets)
    p8 = np.take(to_pvalues(values, 8), offsets)
    return (p12, p8), voi, used


def _colour_to_grey(ds: Any, index: int, count: int, path: str, photometric: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        stored = _decode(ds, index, count, path)
        try:
            rgb = apply_color_lut(stored, ds)
        except Exception as exc:
            raise DcmtoolsError(ErrorCode.INVALID, f"{path}: cannot apply its colour palette: {exc}") from None
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2]) or 16
        top = float((1 << bits) - 1)
        if float(np.max(rgb)) > top:  # descriptors claiming 8 bits with 16-bit entries exist
            top = 65535.0
    else:
        rgb = _decode(ds, index, count, path)  # YBR_* converted to RGB by pydicom
        top = float((1 << int(ds.get("BitsStored", 8) or 8)) - 1)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DcmtoolsError(ErrorCode.INVALID, f"{path}: unexpected colour pixel array shape {rgb.shape}")
    rgb = rgb
    luma = rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]
    return np.clip(luma / top, 0.0, 1.0)


def _frame_item(ds: Any, index: int, sequence: str) -> Any:
    """The item of a functional group macro for frame ``index`` (per-frame first, then shared)."""
    for groups, position in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        seq = ds.get(groups)
        if seq and len(seq) > position:
            inner = seq[position].get(sequence)
            if inner:
                return inner[0]
    return None


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
            value = list(value)[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _modality(ds: Any, stored: np.ndarray, index: int) -> tuple[np.ndarray, bool]:
    """Modality values (float64), and whether a rescale or Modality LUT applied."""
    if "ModalityLUTSequence" in ds:
        from pydicom.pixels import apply_modality_lut

        return apply_modality_lut(stored, ds).astype(np.float64), True
    item = _frame_item(ds, index, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else ds
    slope = _first(source.get("RescaleSlope"))
    intercept = _first(source.get("RescaleIntercept"))
    values = stored.astype(np.float64)
    rescaled = False
    if slope is not None and slope != 1.0:
        values = values * slope
        rescaled = True
    if intercept is not None and intercept != 0.0:
        values = values + intercept
        rescaled = True
    return values, rescaled


def _padding_mask(ds: Any, stored: np.ndarray) -> np.ndarray | None:
    pad = ds.get("PixelPaddingValue")
    if pad is None or isinstance(pad, bytes):
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    mask: np.ndarray
    try:
        if limit is not None and not isinstance(limit, bytes):
            low, high = sorted((int(pad), int(limit)))
            mask = (stored >= low) & (stored <= high)
        else:
            mask = stored == int(pad)
    except (TypeError, ValueError):
        return None
    return mask


def _voi(
    ds: Any,
    modality: np.ndarray,
    rescaled: bool,
    index: int,
    window: tuple[float, float] | str | None,
    warnings: list[str],
    sample: np.ndarray | None = None,
) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Modality values to grey levels 0..1; ``sample`` marks the values that count for a
    minimum-to-maximum range (not padding; in a table: the levels present in the frame)."""
    if isinstance(window, tuple):
        return window_linear(modality, window[0], window[1]), "option", window
    if window == "minmax":
        return min_max(modality, sample), "minmax", None
    item = _frame_item(ds, index, "FrameVOILUTSequence")
    source = item if item is not None and "WindowCenter" in item else ds
    center, width = _first(source.get("WindowCenter")), _first(source.get("WindowWidth"))
    if center is not None and width is not None:
        if width >= 1:
            function = str(source.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
            apply = VOI_FUNCTIONS.get(function)
            if apply is None:
                warnings.append(f"VOI LUT function {function!r} unknown; used LINEAR")
                apply = window_linear
            if function in ("LINEAR_EXACT", "SIGMOID") and width <= 0:
                apply = window_linear
            return apply(modality, center, width), "window", (center, width)
        warnings.append(f"the file's window width {width:g} is not usable; showed the image's range instead")
    elif "VOILUTSequence" in ds and ds.VOILUTSequence:
        values = _voi_lut(ds, modality, warnings)
        if values is not None:
            return values, "lut", None
    bits_stored = int(ds.get("BitsStored", 16) or 16)
    if not rescaled and bits_stored <= 8 and int(ds.get("PixelRepresentation", 0) or 0) == 0:
        top = float((1 << bits_stored) - 1)
        return np.clip(modality / top, 0.0, 1.0), "range", None
    return min_max(modality, sample), "minmax", None


def _voi_lut(ds: Any, modality: np.ndarray, warnings: list[str]) -> np.ndarray | None:
    item = ds.VOILUTSequence[0]
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        entries, first, bits = descriptor
        entries = entries or 65536
        raw = item.LUTData
        if isinstance(raw, bytes):
            lut = np.frombuffer(raw, dtype="<u2" if bits > 8 else "u1")
        else:
            lut = np.asarray(raw if isinstance(raw, (list, tuple)) or hasattr(raw, "__len__") else [raw])
        lut = lut[:entries].astype(np.float64)
        top = float((1 << bits) - 1) if bits else float(lut.max() or 1)
        if lut.max() > top:
            top = float(lut.max())
        positions = np.clip(np.rint(modality).astype(np.int64) - first, 0, len(lut) - 1)
        grey: np.ndarray = lut[positions] / top
        return grey
    except Exception as exc:
        warnings.append(f"the file's VOI LUT cannot be used ({exc}); showed the image's range instead")
        return None


def _aspect(ds: Any, index: int) -> tuple[int, int] | None:
    """Pixel Aspect Ratio (row, column) when the pixels are not square."""
    ratio = ds.get("PixelAspectRatio")
    if ratio is not None and not isinstance(ratio, (str, bytes)):
        try:
            row, column = (int(v) for v in ratio)
            if row > 0 and column > 0 and row != column:
                fraction = Fraction(row, column)
                return fraction.numerator, fraction.denominator
            return None
        except (TypeError, ValueError):
            pass
    item = _frame_item(ds, index, "PixelMeasuresSequence")
    spacing = (
        (item.get("PixelSpacing") if item is not None else None)
        or ds.get("PixelSpacing")
        or ds.get("ImagerPixelSpacing")
    )
    try:
        row_mm, column_mm = (float(v) for v in spacing)
    except (TypeError, ValueError):
        return None
    if row_mm <= 0 or column_mm <= 0 or abs(row_mm / column_mm - 1.0) < 1e-3:
        return None
    fraction = Fraction(row_mm / column_mm).limit_denominator(100)
    return fraction.numerator, fraction.denominator
