"""Transcoding one file: copied, rewritten or its pixels decoded and encoded, into one record."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from ..dicom import codecs, encoding
from ..stream.outputs import exists_error, write_atomic
from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .options import LOSSY_ONLY, TranscodeOptions
from .pixels import (
    _image_info,
    _mark_lossy,
    _raw_pixel_bytes,
    _set_encapsulated,
    decode_pixels,
    native_order,
    set_native,
)
from .reading import read_dataset, source_syntax
from .verify import _ratio, _verify
from .writing import _prepare_meta, _serialize

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pydicom.dataset import Dataset


def transcode_file(path: str, out: str, options: TranscodeOptions) -> dict[str, Any]:
    """Transcode one file; return its record (a failure is a record, never an exception).

    What pydicom warns about while reading the file (implicit VR data in an
    explicit file, excess padding ...) becomes the record's ``warnings`` list
    instead of lines on stderr without the file's name.
    """
    return file_record(path, lambda: _transcode(path, out, options), "transcode", hint="use fewer `jobs`", out=out)


def file_record(
    path: str, work: Callable[[], dict[str, Any]], verb: str, hint: str | None = None, **fields: Any
) -> dict[str, Any]:
    """The ``file`` record of ``work()`` on ``path``: its fields and ``ok``, or the failure it raised.

    pydicom's warnings while it runs become the record's ``warnings``; a file
    too large for memory is an ``unreadable`` failure ("too large to ``verb``").
    """
    import logging
    import warnings

    record: dict[str, Any] = {"type": "file", "path": path, **fields}
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        pydicom_log.setLevel(logging.ERROR)  # its warnings come as warnings too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            record.update(work())
            record["ok"] = True
        except DcmtoolsError as exc:
            record = error_record("file", exc, path=path, **fields)
        except MemoryError:
            error = DcmtoolsError(ErrorCode.UNREADABLE, f"{path} is too large to {verb} in memory", hint=hint)
            record = error_record("file", error, path=path, **fields)
        finally:
            pydicom_log.setLevel(level)
    messages = list(dict.fromkeys(str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)))
    if messages:
        record["warnings"] = messages
    return record


def _transcode(path: str, out: str, opts: TranscodeOptions) -> dict[str, Any]:
    target = opts.target
    if os.path.lexists(out):
        if same_file(path, out):
            raise DcmtoolsError(
                ErrorCode.EXISTS, f"the output {out} is the input itself", hint="choose another -o folder"
            )
        if not opts.overwrite:
            raise exists_error(out)
    ds, size_in = read_dataset(path)
    src_uid = source_syntax(ds)
    src_name = codecs.name_of(src_uid)
    info: dict[str, Any] = {"from": src_name, "to": target.name, "transfer_syntax": target.uid, "size_in": size_in}
    if str(ds.get("SOPClassUID", "")) == "1.2.840.10008.1.3.10" or "DirectoryRecordSequence" in ds:
        raise DcmtoolsError(
            ErrorCode.DICOMDIR,
            f"{path} is a DICOMDIR (a media index), not an instance",
            hint="a DICOMDIR holds byte offsets that transcoding would break: copy it as it is or rebuild it",
        )

    has_pixels = "PixelData" in ds
    out_uid = target.uid if (has_pixels or not target.encapsulated) else codecs.EXPLICIT_LE

    if src_uid == out_uid:
        write_atomic(out, lambda stream: _copy_into(path, stream), opts.overwrite)
        size_out = os.path.getsize(out)
        note = (
            f"already {target.name}: copied as it is"
            if has_pixels or not target.encapsulated
            else "no pixel data, already Explicit VR Little Endian: copied as it is"
        )
        info.update(action="copied", note=note, size_out=size_out, ratio=_ratio(size_in, size_out))
        return info

    if not has_pixels:
        _prepare_meta(ds, out_uid)
        data = _serialize(ds, path, src_uid)
        write_atomic(out, lambda stream: stream.write(data), opts.overwrite)
        info.update(action="rewritten", size_out=len(data), ratio=_ratio(size_in, len(data)))
        if out_uid != target.uid:
            info["note"] = "no pixel data: written as Explicit VR Little Endian (the rest is never compressed)"
            info["transfer_syntax"] = out_uid
        return info

    return _transcode_image(ds, path, out, opts, src_uid, info)


def _transcode_image(
    ds: Dataset, path: str, out: str, opts: TranscodeOptions, src_uid: str, info: dict[str, Any]
) -> dict[str, Any]:
    target = opts.target
    keep_native_bytes = src_uid in codecs.NATIVE_LE and not target.encapsulated
    verifying = opts.verifying

    # Decoded unless the native bytes are kept as they are and nothing is verified.
    src: NDArray[Any] | None = None
    meta: dict[str, Any] = {}
    if not keep_native_bytes or verifying:
        src, meta = decode_pixels(ds, path, src_uid)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    info["frames"] = frames

    if target.encapsulated:
        assert src is not None  # an encapsulated target never keeps the native bytes
        image = _image_info(ds, meta, frames)
        out_pi = codecs.check_encodable(target, image)
        arr = native_order(src)
        if target.name == "jpeg-baseline" and image.photometric == "YBR_FULL":
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, "YBR_FULL", "RGB")
            image.photometric = "RGB"
        encoded = encoding.encode_frames(
            arr, image, target, out_photometric=out_pi, error=opts.error, ratio=opts.ratio, quality=opts.quality
        )
        _set_encapsulated(ds, encoded, target, out_pi, image.samples_per_pixel)
        raw_size = _raw_pixel_bytes(image)
        enc_size = sum(len(f) for f in encoded)
        info["pixel_ratio"] = _ratio(raw_size, enc_size)
        if target.lossy:
            _mark_lossy(ds, target, raw_size / max(1, enc_size), opts.keep_uid, info)
    elif not keep_native_bytes:
        # Compressed or big endian in, native little endian out.
        assert src is not None
        set_native(ds, native_order(src), meta)
    if src_uid in LOSSY_ONLY and str(ds.get("LossyImageCompression", "")) != "01" and not target.lossy:
        # Once lossy, always lossy (PS3.3 C.7.6.1.1.5), whatever it is stored in now.
        ds.LossyImageCompression = "01"
        info["note"] = "the input was lossy compressed: Lossy Image Compression set to 01"
    _prepare_meta(ds, target.uid)
    data = _serialize(ds, path, src_uid)

    if verifying:
        assert src is not None
        info.update(_verify(data, src, meta, target, opts, path))
    else:
        info["verified"] = False
    write_atomic(out, lambda stream: stream.write(data), opts.overwrite)
    info.update(action="transcoded", size_out=len(data), ratio=_ratio(info["size_in"], len(data)))
    return info


def same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _copy_into(path: str, stream: BinaryIO) -> None:
    import shutil

    with open(path, "rb") as source:
        shutil.copyfileobj(source, stream, 1 << 20)
