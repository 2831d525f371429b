"""The display pipeline of PS3.4: decoding, modality LUT, VOI, presentation LUT, colour."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..stream.records import DcmtoolsError, ErrorCode
from .options import RenderOptions

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pydicom.dataset import Dataset

# What a pipeline applied, for the record: {"window": [c, w], "voi": "file", "inverted": true ...}
Applied = dict[str, Any]


def _read(path: str) -> Dataset:
    from ..transcode.reading import read_dataset

    ds, _size = read_dataset(path)
    return ds


def decode(ds: Dataset, path: str) -> tuple[NDArray[Any], str, dict[str, Any]]:
    """All frames as an array ``(frames, rows, columns[, samples])`` and the photometric interpretation."""
    from ..transcode.pixels import decode_pixels, native_order
    from ..transcode.reading import source_syntax

    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise DcmtoolsError(
            ErrorCode.NO_IMAGE, f"{path} has no pixel data (nothing to render)", hint="only images are rendered"
        )
    arr, meta = decode_pixels(ds, path, source_syntax(ds))
    arr = native_order(arr)
    frames = int(meta.get("number_of_frames", ds.get("NumberOfFrames", 1) or 1) or 1)
    samples = int(meta.get("samples_per_pixel", ds.get("SamplesPerPixel", 1) or 1) or 1)
    if frames == 1 and arr.ndim == (3 if samples > 1 else 2):
        arr = arr[None, ...]
    return arr, str(meta.get("photometric_interpretation", "MONOCHROME2")), meta


# ------------------------------------------------------------------ the grey pipeline


def _first(value: Any) -> float | None:  # an element's value, as pydicom holds it
    if value is None:
        return None
    try:
        if hasattr(value, "__len__") and not isinstance(value, (str, bytes)):
            value = value[0] if len(value) else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def file_window(ds: Dataset) -> tuple[float, float] | None:
    """The file's first window (center, width), if it has a usable one."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or not width >= 1 or not math.isfinite(center):
        return None
    return center, width


def choose_voi(
    ds: Dataset, values: NDArray[Any], opts: RenderOptions, counts: NDArray[Any] | None = None
) -> dict[str, Any]:
    """Which VOI transformation applies: ``{"window": (c, w), "function": ...}`` or ``{"voi_lut": index}``.

    ``values`` are the modality values; with ``counts`` they are a table of
    distinct values and ``counts`` how many pixels hold each.
    """
    import numpy as np

    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if opts.window is not None:
        return {"window": opts.window, "function": function, "source": "option"}
    if opts.voi_lut is not None:
        luts = ds.get("VOILUTSequence")
        if not luts or opts.voi_lut > len(luts):
            raise DcmtoolsError(
                ErrorCode.BAD_VALUE,
                f"the file has {len(luts) if luts else 0} VOI LUT(s), not {opts.voi_lut}",
                hint="leave out `voi_lut`, or use `window` or `minmax`",
            )
        return {"voi_lut": opts.voi_lut - 1, "source": "voi_lut"}
    if counts is not None:
        present = counts > 0
        values, counts = values[present], counts[present]
    if opts.histogram:
        # Ignore the 5% of the values that are most extreme (2.5% each side), like `dcmj2pnm +Wh 5`.
        if counts is None:
            low, high = (float(v) for v in np.percentile(values, (2.5, 97.5)))
        else:
            order = np.argsort(values, kind="stable")
            cumulative = np.cumsum(counts[order]) / counts.sum()
            low = float(values[order][np.searchsorted(cumulative, 0.025)])
            high = float(values[order][min(len(order) - 1, int(np.searchsorted(cumulative, 0.975)))])
        return {**_minmax_window(low, high), "source": "histogram"}
    if not opts.minmax:
        window = file_window(ds)
        if window is not None:
            return {"window": window, "function": function, "source": "file"}
        if ds.get("VOILUTSequence"):
            return {"voi_lut": 0, "source": "file_voi_lut"}
    return {**_minmax_window(float(np.min(values)), float(np.max(values))), "source": "minmax"}


def _minmax_window(low: float, high: float) -> dict[str, Any]:
    # DCMTK's min-max window: center (min+max+1)/2, width max-min+1, so that the
    # lowest value shows black and the highest white with the PS3.3 formula.
    return {"window": ((low + high + 1) / 2, max(1.0, high - low + 1)), "function": "LINEAR"}


def apply_window(values: NDArray[Any], center: float, width: float, function: str, out_max: int) -> NDArray[Any]:
    """PS3.3 C.11.2.1.2 (and .3.2): modality values -> 0..out_max (float)."""
    import numpy as np

    x = values.astype(np.float64, copy=False)
    if function == "SIGMOID":
        return out_max / (1 + np.exp(-4 * (x - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((x - center) / width + 0.5, 0, 1) * out_max
    if width <= 1:
        return np.where(x <= center - 0.5, 0.0, float(out_max))
    return np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1) * out_max


def grey_pipeline(
    ds: Dataset, frames: NDArray[Any], photometric: str, opts: RenderOptions
) -> tuple[NDArray[Any], Applied]:
    """Stored grey values of ``frames`` -> display values (uint8/uint16) and what was applied.

    Integer pixels of up to 16 bits go through one table over the range of
    stored values (modality, VOI and inversion computed once per value, as
    DCMTK does), not through float arithmetic on every pixel.
    """
    import numpy as np
    from pydicom.pixels import apply_modality_lut

    counts = index = None
    if frames.dtype.kind in "iu" and frames.dtype.itemsize <= 2 and frames.size:
        lo, hi = int(frames.min()), int(frames.max())
        index = frames if (lo == 0 and frames.dtype.kind == "u") else np.subtract(frames, lo, dtype=np.int32)
        values = apply_modality_lut(np.arange(lo, hi + 1, dtype=np.int32), ds)
        if opts.window is None and opts.voi_lut is None and (opts.minmax or opts.histogram or not file_window(ds)):
            counts = np.bincount(index.ravel(), minlength=hi - lo + 1)
    else:
        values = apply_modality_lut(frames, ds)
    table, applied = display_values(ds, values, photometric, opts, counts)
    return (table[index] if index is not None else table), applied


def display_values(
    ds: Dataset, values: NDArray[Any], photometric: str, opts: RenderOptions, counts: NDArray[Any] | None = None
) -> tuple[NDArray[Any], Applied]:
    """Modality values -> display values: the VOI, then the presentation LUT shape."""
    import numpy as np
    from pydicom.pixels import apply_voi

    out_max = (1 << opts.bits) - 1
    voi = choose_voi(ds, values, opts, counts)
    if "voi_lut" in voi:
        index = voi["voi_lut"]
        item = ds.VOILUTSequence[index]
        lut_bits = int(item.LUTDescriptor[2]) or 16
        shown = apply_voi(values, ds, index).astype(np.float64) * (out_max / ((1 << lut_bits) - 1))
        applied: dict[str, Any] = {"voi_lut": index + 1}
    else:
        center, width = voi["window"]
        shown = apply_window(values, center, width, voi.get("function", "LINEAR"), out_max)
        applied = {"window": [round(center, 4), round(width, 4)]}
        if voi.get("function", "LINEAR") != "LINEAR":
            applied["voi_function"] = voi["function"]
    applied["voi"] = voi["source"]
    invert = photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).upper() == "INVERSE"
    if invert:
        shown = out_max - shown
        applied["inverted"] = True
    # Truncated, not rounded, as DCMTK does (dcmj2pnm then agrees to the grey level).
    dtype = np.uint8 if opts.bits == 8 else np.uint16
    return np.clip(np.floor(shown), 0, out_max).astype(dtype), applied


def colour_pipeline(
    ds: Dataset, frames: NDArray[Any], photometric: str, meta: dict[str, Any], opts: RenderOptions
) -> tuple[NDArray[Any], Applied]:
    """Stored colour samples -> RGB display values (uint8, or uint16 for 16-bit PNG of 16-bit data)."""
    import numpy as np
    from pydicom.pixels import apply_color_lut, convert_color_space

    applied: dict[str, Any] = {}
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frames, ds)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
        applied["palette"] = True
    elif photometric in ("YBR_FULL", "YBR_FULL_422"):
        rgb = convert_color_space(frames, "YBR_FULL", "RGB")
        bits = 8 * frames.dtype.itemsize
        applied["converted"] = "YBR_FULL to RGB"
    elif photometric == "RGB" or photometric.startswith("YBR_"):
        # YBR_RCT/ICT/PARTIAL: the JPEG 2000 and JPEG decoders give RGB already.
        rgb = frames
        bits = int(meta.get("bits_stored", ds.get("BitsStored", 8)) or 8)
    else:
        raise DcmtoolsError(ErrorCode.CANNOT_DECODE, f"photometric interpretation {photometric!r} is not rendered")
    rgb = rgb.astype(np.float64, copy=False)
    out_max = 255 if opts.bits == 8 else 65535
    in_max = (1 << bits) - 1
    scaled = np.clip(np.floor(rgb * (out_max / in_max) + 0.5), 0, out_max)
    return scaled.astype(np.uint8 if opts.bits == 8 else np.uint16), applied
