"""Proving a lossless output: its bytes decoded again and compared with the input's pixels."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from ..dicom import encoding
from ..dicom.codecs import Syntax
from ..stream.records import DcmtoolsError, ErrorCode
from .options import TranscodeOptions
from .pixels import decode_pixels

if TYPE_CHECKING:
    from numpy.typing import NDArray


def _verify(
    data: bytes, src: NDArray[Any], meta: dict[str, Any], target: Syntax, opts: TranscodeOptions, path: str
) -> dict[str, Any]:
    """Decode the bytes about to be written and compare them with the input's pixels."""
    import numpy as np
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        out, out_meta = decode_pixels(ds, path, str(ds.file_meta.TransferSyntaxUID))
    except DcmtoolsError as exc:
        raise DcmtoolsError(
            ErrorCode.VERIFY_FAILED,
            f"the {target.name} output of {path} does not decode again: {exc.message}",
            hint="nothing was written; please report this with the file",
        ) from None
    expected = src
    if target.name == "jpeg-baseline" and meta["photometric_interpretation"] == "YBR_FULL":
        from pydicom.pixels import convert_color_space

        expected = convert_color_space(src, "YBR_FULL", "RGB")
    if out.shape != expected.shape:
        raise DcmtoolsError(
            ErrorCode.VERIFY_FAILED,
            f"the {target.name} output of {path} decodes to shape {out.shape}, the input to {expected.shape}",
            hint="nothing was written; please report this with the file",
        )
    if not target.lossy:
        if not np.array_equal(out, expected):
            diff = int(np.count_nonzero(out != expected))
            raise DcmtoolsError(
                ErrorCode.VERIFY_FAILED,
                f"the {target.name} output of {path} differs from the input in {diff} sample(s)",
                hint="nothing was written; please report this with the file",
            )
        return {"verified": True}
    difference = np.abs(out.astype(np.float64) - expected.astype(np.float64))
    max_error = float(difference.max()) if difference.size else 0.0
    result: dict[str, Any] = {"verified": True, "max_error": int(max_error)}
    mse = float(np.mean(difference**2)) if difference.size else 0.0
    peak = float((1 << int(meta.get("bits_stored", 8) or 8)) - 1)
    result["psnr"] = round(10 * math.log10(peak * peak / mse), 2) if mse > 0 else None
    if target.name == "jpeg-ls-near":
        bound = encoding.DEFAULT_NEAR_ERROR if opts.error is None else opts.error
        if max_error > bound:
            raise DcmtoolsError(
                ErrorCode.VERIFY_FAILED,
                f"the jpeg-ls-near output of {path} differs by up to {int(max_error)}, more than `error` {bound}",
                hint="nothing was written; please report this with the file",
            )
    return result


def _ratio(before: int, after: int) -> float | None:
    return round(before / after, 3) if after else None
