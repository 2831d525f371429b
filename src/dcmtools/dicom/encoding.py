"""Encoding frames into a compressed transfer syntax, with the encoder ``codecs.encoder_for`` chooses.

Like ``codecs``, importing it imports neither pydicom nor numpy nor any codec.
"""

from __future__ import annotations

import math
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode
from .codecs import (
    ImageInfo,
    Syntax,
    _first_line,
    _importable,
    _quiet_plugins,
    encoder_for,
    missing_encoder_hint,
    reraise_interrupt,
)


def encode_frames(
    arr: Any,
    info: ImageInfo,
    syntax: Syntax,
    *,
    out_photometric: str,
    error: int | None = None,
    ratio: float | None = None,
    quality: float | None = None,
) -> list[bytes]:
    """Encode every frame of ``arr`` (pydicom's array layout) into ``syntax``.

    ``arr`` is shaped (rows, cols[, samples]) or (frames, rows, cols[, samples]),
    interleaved, native byte order.  ``error`` is JPEG-LS near-lossless NEAR;
    ``ratio``/``quality`` are the JPEG 2000 compression ratio or PSNR (dB),
    ``quality`` also the JPEG baseline/extended quality (1-100).
    """
    choice = encoder_for(syntax)
    if choice is None:
        raise DcmtoolsError(
            ErrorCode.CANNOT_ENCODE, f"no encoder for {syntax.title} is installed", hint=missing_encoder_hint(syntax)
        )
    if choice.plugin == "imagecodecs":
        return _encode_jpeg(arr, info, syntax, out_photometric, quality)
    from pydicom.pixels import get_encoder

    options: dict[str, Any] = {
        "rows": info.rows,
        "columns": info.columns,
        "samples_per_pixel": info.samples_per_pixel,
        "bits_allocated": info.bits_allocated,
        "bits_stored": info.bits_stored,
        "pixel_representation": info.pixel_representation,
        "photometric_interpretation": out_photometric,
        "number_of_frames": info.number_of_frames,
    }
    if info.samples_per_pixel > 1:
        options["planar_configuration"] = 0
    if syntax.name == "jpeg-ls-near":
        options["jls_error"] = 2 if error is None else int(error)
    if syntax.name == "j2k-lossy":
        if quality is not None:
            options["j2k_psnr"] = [float(quality)]
        else:
            options["j2k_cr"] = [float(ratio if ratio is not None else DEFAULT_J2K_RATIO)]
    if syntax.name in ("j2k", "j2k-lossy") and min(info.rows, info.columns) < 32 and _importable("imagecodecs"):
        # pylibjpeg-openjpeg always asks OpenJPEG for 6 resolution levels,
        # which images under 32 pixels wide or high cannot have.
        frames = _encode_j2k_imagecodecs(arr, info, syntax, out_photometric, ratio, quality)
        if frames is not None:
            return frames
    encoder = get_encoder(syntax.uid)
    try:
        with _quiet_plugins():
            return [bytes(frame) for frame in encoder.iter_encode(arr, encoding_plugin=choice.plugin, **options)]
    except (ValueError, RuntimeError) as exc:
        if syntax.name in ("j2k", "j2k-lossy") and _importable("imagecodecs"):
            # pylibjpeg-openjpeg refuses samples over 24 bits: imagecodecs'
            # OpenJPEG takes them (and its verification proves the result).
            frames = _encode_j2k_imagecodecs(arr, info, syntax, out_photometric, ratio, quality)
            if frames is not None:
                return frames
        if syntax.name in ("jpeg-ls", "jpeg-ls-near") and _importable("imagecodecs") and "too small" in str(exc):
            # pyjpegls sizes its output buffer by the raw image, which tiny
            # images (a few pixels) outgrow: imagecodecs' CharLS does not.
            frames = _encode_jls_imagecodecs(arr, info, options.get("jls_error", 0))
            if frames is not None:
                return frames
        hint = "choose another syntax (j2k holds the most), or explicit"
        if syntax.name == "j2k-lossy" and min(info.rows, info.columns) < 32:
            hint = "images under 32 pixels wide or high take `quality` (a PSNR in dB) instead of `ratio`, or use j2k"
        raise DcmtoolsError(
            ErrorCode.CANNOT_ENCODE,
            f"{syntax.title} encoder ({choice.package}) refused this image: {_first_line(exc)}",
            hint=hint,
        ) from exc


DEFAULT_J2K_RATIO = 10.0
DEFAULT_JPEG_QUALITY = 90
DEFAULT_NEAR_ERROR = 2


def _encode_jpeg(arr: Any, info: ImageInfo, syntax: Syntax, out_pi: str, quality: float | None) -> list[bytes]:
    """JPEG (ISO 10918-1) through libjpeg-turbo 3 in imagecodecs."""
    import imagecodecs
    import numpy as np

    frames = arr if info.number_of_frames > 1 else arr[np.newaxis]
    level = int(quality) if quality is not None else DEFAULT_JPEG_QUALITY
    out: list[bytes] = []
    try:
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            if syntax.name == "jpeg-lossless":
                if info.pixel_representation:
                    # Signed samples are encoded as their Bits Stored-wide two's
                    # complement bit patterns (PS3.5 8.2.1); the decoder
                    # sign-extends them by Pixel Representation.
                    unsigned = frame.view(frame.dtype.str.replace("i", "u"))
                    frame = unsigned & np.array((1 << info.bits_stored) - 1, dtype=unsigned.dtype)
                bits = max(2, info.bits_stored)
                if frame.dtype.itemsize > 1 and bits <= 8:
                    frame = frame.astype(np.uint8)
                elif frame.dtype.itemsize == 1 and bits > 8:
                    frame = frame.astype(np.uint16)
                kwargs: dict[str, Any] = {"lossless": True, "predictor": 1, "bitspersample": bits}
                if info.samples_per_pixel == 3:
                    # No colour transform: the samples are stored as they are.
                    kwargs.update(colorspace="RGB", outcolorspace="RGB")
                out.append(bytes(imagecodecs.jpeg8_encode(frame, **kwargs)))
            elif syntax.name == "jpeg-baseline":
                if info.samples_per_pixel == 3:
                    out.append(
                        bytes(
                            imagecodecs.jpeg8_encode(
                                frame, level=level, colorspace="RGB", outcolorspace="YCbCr", subsampling="422"
                            )
                        )
                    )
                else:
                    out.append(bytes(imagecodecs.jpeg8_encode(frame.astype(np.uint8), level=level)))
            else:  # jpeg-extended: 8 or 12 bits, monochrome
                bits = 12 if info.bits_stored > 8 else 8
                data = frame.astype(np.uint16 if bits == 12 else np.uint8)
                out.append(bytes(imagecodecs.jpeg8_encode(data, level=level, bitspersample=bits)))
    except BaseException as exc:  # a codec panic (pyo3 PanicException) is no Exception
        reraise_interrupt(exc)
        raise DcmtoolsError(
            ErrorCode.CANNOT_ENCODE,
            f"{syntax.title} encoder (imagecodecs) refused this image: {_first_line(exc)}",
            hint="choose another syntax (j2k holds the most), or explicit",
        ) from exc
    return out


def _encode_j2k_imagecodecs(
    arr: Any, info: ImageInfo, syntax: Syntax, out_pi: str, ratio: float | None, quality: float | None
) -> list[bytes] | None:
    """JPEG 2000 through imagecodecs' OpenJPEG, with as many resolutions as the image allows."""
    import imagecodecs
    import numpy as np

    lossy = syntax.name == "j2k-lossy"
    if lossy and quality is None:
        return None  # imagecodecs takes a PSNR, not a ratio
    if arr.size and int(np.abs(arr).max()).bit_length() > 24:
        return None  # OpenJPEG does not encode wider samples exactly
    smallest = max(1, min(info.rows, info.columns))
    resolutions = max(1, min(6, int(math.floor(math.log2(smallest))) + 1))
    frames = arr if info.number_of_frames > 1 else arr[np.newaxis]
    psnr = float(quality) if lossy and quality is not None else None
    out: list[bytes] = []
    try:
        for frame in frames:
            out.append(
                bytes(
                    imagecodecs.jpeg2k_encode(
                        np.ascontiguousarray(frame),
                        # imagecodecs' stub says int, but its OpenJPEG encoder takes the PSNR as a float (40.5 works)
                        level=psnr,  # type: ignore[arg-type]
                        codecformat="J2K",
                        bitspersample=info.bits_stored,
                        resolutions=resolutions,
                        reversible=not lossy,
                        mct=out_pi in ("YBR_RCT", "YBR_ICT"),
                    )
                )
            )
    except BaseException as exc:  # a codec panic (pyo3 PanicException) is no Exception
        reraise_interrupt(exc)
        return None
    return out


def _encode_jls_imagecodecs(arr: Any, info: ImageInfo, near: int) -> list[bytes] | None:
    """JPEG-LS through imagecodecs' CharLS (samples interleaved)."""
    import imagecodecs
    import numpy as np

    frames = arr if info.number_of_frames > 1 else arr[np.newaxis]
    out: list[bytes] = []
    try:
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            if info.pixel_representation:
                unsigned = frame.view(frame.dtype.str.replace("i", "u"))
                frame = unsigned & np.array((1 << info.bits_stored) - 1, dtype=unsigned.dtype)
            frame = frame.astype(np.uint8 if info.bits_stored <= 8 else np.uint16)
            out.append(bytes(imagecodecs.jpegls_encode(frame, level=near or None)))
    except BaseException as exc:  # a codec panic (pyo3 PanicException) is no Exception
        reraise_interrupt(exc)
        return None
    return out
