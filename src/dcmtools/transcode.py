"""Transcoding DICOM files between transfer syntaxes, lossless proven.

``transcode_file(path, out, options)`` reads one file, writes it in the
target transfer syntax and returns its record; ``transcode(inputs, to,
out_dir)`` does it for many inputs (files, folders, globs), ``jobs`` at a
time, mirroring the input tree under ``out_dir``:

    >>> from dcmtools.transcode import transcode
    >>> for record in transcode(["legacy/"], "jpeg-ls", "compressed/", jobs=0):
    ...     print(record["path"], record["ok"], record.get("ratio"))

What happens to a file:

* already in the target syntax: copied byte for byte (``"action": "copied"``);
* no pixel data (SR, RT plan, ...): written in the target syntax, or in
  Explicit VR Little Endian when the target is a compressed one
  (``"action": "rewritten"``);
* an image: its pixels are decoded (every syntax pydicom's plugins decode,
  big endian and deflated included) and encoded into the target
  (``"action": "transcoded"``).  Lossy JPEG colour is decoded to RGB; other
  colour keeps its samples (YBR_FULL stays YBR_FULL).  The codec's rules are
  applied: RGB becomes YBR_RCT/YBR_ICT in JPEG 2000 and YBR_FULL_422 in JPEG
  baseline, Planar Configuration is 1 for RLE and 0 otherwise, Bits Stored is
  kept.  An image the target cannot hold fails with ``cannot_encode``.

Lossless targets are verified by default: the output is parsed and decoded
again from the bytes about to be written and compared with the input's
pixels; any difference fails the file (``verify_failed``) and nothing is
written.  Lossy targets set Lossy Image Compression (01), Ratio and Method,
and get a new SOP Instance UID unless ``keep_uid``; with ``verify`` they
report the largest difference and the PSNR (JPEG-LS near-lossless fails
when a pixel differs by more than its ``error`` bound).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .dicom import codecs
from .dicom.codecs import ImageInfo, Syntax
from .stream.outputs import Mirror, exists_error, write_atomic
from .stream.records import DcmtoolsError, ErrorCode, error_record

IMPLEMENTATION_VERSION_NAME = "DCMTOOLS"
# Syntaxes whose pixel data are always lossy (JPEG 2000 and HTJ2K may hold
# reversible codestreams, so they are not listed).
LOSSY_ONLY = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81")


@dataclass
class TranscodeOptions:
    """What ``transcode_file`` is asked to do (picklable, for ``--jobs``)."""

    target: Syntax
    error: int | None = None  # JPEG-LS near-lossless NEAR (default 2)
    ratio: float | None = None  # JPEG 2000 lossy compression ratio (default 10)
    quality: float | None = None  # JPEG 2000 lossy PSNR in dB, or JPEG baseline/extended quality 1-100
    verify: bool | None = None  # None: verify lossless targets only
    keep_uid: bool = False  # lossy targets keep the SOP Instance UID
    overwrite: bool = False

    @property
    def verifying(self) -> bool:
        return (not self.target.lossy) if self.verify is None else self.verify


def options_for(
    to: str | Syntax,
    *,
    error: int | None = None,
    ratio: float | None = None,
    quality: float | None = None,
    verify: bool | None = None,
    keep_uid: bool = False,
    overwrite: bool = False,
) -> TranscodeOptions:
    """Checked options for a target (raises ``DcmtoolsError`` with a usage message)."""
    target = to if isinstance(to, Syntax) else codecs.resolve(to)
    if not target.writable:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE, f"dcmtools cannot write {target.title}", hint=codecs.missing_encoder_hint(target)
        )
    if codecs.encoder_for(target) is None:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE,
            f"no encoder for {target.title} is installed here",
            hint=codecs.missing_encoder_hint(target),
        )
    if error is not None and target.name != "jpeg-ls-near":
        raise DcmtoolsError(ErrorCode.BAD_VALUE, "--error applies to --to jpeg-ls-near only")
    if error is not None and not 1 <= error <= 255:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"--error {error} is out of range", hint="use 1 to 255")
    if ratio is not None and target.name != "j2k-lossy":
        raise DcmtoolsError(ErrorCode.BAD_VALUE, "--ratio applies to --to j2k-lossy only")
    if ratio is not None and not ratio > 1:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"--ratio {ratio} must be greater than 1 (e.g. 10 for 10:1)")
    if quality is not None:
        if target.name == "j2k-lossy":
            if ratio is not None:
                raise DcmtoolsError(ErrorCode.BAD_VALUE, "give --ratio or --quality for j2k-lossy, not both")
            if not quality > 0:
                raise DcmtoolsError(ErrorCode.BAD_VALUE, "--quality for j2k-lossy is a PSNR in dB, e.g. 50")
        elif target.name in ("jpeg-baseline", "jpeg-extended"):
            if not 1 <= quality <= 100:
                raise DcmtoolsError(ErrorCode.BAD_VALUE, f"--quality {quality} is out of range", hint="use 1 to 100")
        else:
            raise DcmtoolsError(
                ErrorCode.BAD_VALUE, "--quality applies to --to j2k-lossy (PSNR, dB) or jpeg-baseline/jpeg-extended (1-100)"
            )
    return TranscodeOptions(
        target=target, error=error, ratio=ratio, quality=quality, verify=verify, keep_uid=keep_uid, overwrite=overwrite
    )


# ------------------------------------------------------------------ reading


def _read(path: str):
    """The dataset in ``path``, or a DcmtoolsError in the user's words."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        size = os.path.getsize(path)
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory")
    except FileNotFoundError:
        raise DcmtoolsError(ErrorCode.NOT_FOUND, f"no such file: {path}") from None
    except OSError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise DcmtoolsError(ErrorCode.EMPTY, f"{path} is empty (0 bytes)")
    try:
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            ds = _read_bare(path)
    except DcmtoolsError:
        raise
    except (EOFError, IndexError) as exc:
        raise DcmtoolsError(
            ErrorCode.TRUNCATED, f"{path} ends in the middle of an element ({exc})", hint="the file is incomplete"
        ) from None
    except PermissionError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno is None:  # pydicom's own OSError: the data, not the system ("No tag to read at ...")
            code = ErrorCode.TRUNCATED if "No tag to read" in str(exc) else ErrorCode.INVALID
            raise DcmtoolsError(code, f"{path} is not readable DICOM: {exc}") from None
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise DcmtoolsError(ErrorCode.INVALID, f"{path} is not readable DICOM: {exc}") from None
    return ds, size


def _read_bare(path: str):
    """A dataset without preamble and file meta (an older way to store DICOM).

    ``dicomfile`` (the reader of ``dump``) decides whether the file holds DICOM
    data at all, so both commands call the same files DICOM.
    """
    import pydicom

    from .dicom import reader as dicomfile

    try:
        dicomfile.read(path, stop_at=0x00100000)
    except dicomfile.ReadError as exc:
        raise DcmtoolsError(
            exc.code,
            f"{path}: {exc.message}",
            hint=exc.hint or ("only DICOM files are transcoded" if exc.code == ErrorCode.NOT_DICOM else None),
        ) from None
    return pydicom.dcmread(path, force=True)


def source_syntax(ds) -> str:
    """The transfer syntax UID the dataset was read in."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else codecs.BIG_ENDIAN


# ------------------------------------------------------------------ the work


def transcode_file(path: str, out: str, options: TranscodeOptions) -> dict[str, Any]:
    """Transcode one file; return its record (a failure is a record, never an exception).

    What pydicom warns about while reading the file (implicit VR data in an
    explicit file, excess padding ...) becomes the record's ``warnings`` list
    instead of lines on stderr without the file's name.
    """
    import logging
    import warnings

    record: dict[str, Any] = {"type": "file", "path": path, "out": out}
    pydicom_log = logging.getLogger("pydicom")
    level = pydicom_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        pydicom_log.setLevel(logging.ERROR)  # its warnings come as warnings too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            record.update(_transcode(path, out, options))
            record["ok"] = True
        except DcmtoolsError as exc:
            record = error_record("file", exc, path=path, out=out)
        except MemoryError:
            record = error_record(
                "file",
                DcmtoolsError(
                    ErrorCode.UNREADABLE, f"{path} is too large to transcode in memory", hint="use fewer --jobs"
                ),
                path=path,
                out=out,
            )
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
    ds, size_in = _read(path)
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


def _transcode_image(ds, path: str, out: str, opts: TranscodeOptions, src_uid: str, info: dict[str, Any]):
    target = opts.target
    keep_native_bytes = src_uid in codecs.NATIVE_LE and not target.encapsulated
    verifying = opts.verifying

    src = meta = None
    if not keep_native_bytes or verifying:
        src, meta = _decode(ds, path, src_uid)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    info["frames"] = frames

    if target.encapsulated:
        image = _image_info(ds, meta, frames)
        out_pi = codecs.check_encodable(target, image)
        arr = _native_order(src)
        if target.name == "jpeg-baseline" and image.photometric == "YBR_FULL":
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, "YBR_FULL", "RGB")
            image.photometric = "RGB"
        encoded = codecs.encode_frames(
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
        _set_native(ds, _native_order(src), meta)
    if src_uid in LOSSY_ONLY and str(ds.get("LossyImageCompression", "")) != "01" and not target.lossy:
        # Once lossy, always lossy (PS3.3 C.7.6.1.1.5), whatever it is stored in now.
        ds.LossyImageCompression = "01"
        info["note"] = "the input was lossy compressed: Lossy Image Compression set to 01"
    _prepare_meta(ds, target.uid)
    data = _serialize(ds, path, src_uid)

    if verifying:
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


def _copy_into(path: str, stream) -> None:
    import shutil

    with open(path, "rb") as source:
        shutil.copyfileobj(source, stream, 1 << 20)


def _decode(ds, path: str, uid: str):
    """The pixels as pydicom decodes them, and their description."""
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DcmtoolsError(
            ErrorCode.CANNOT_DECODE,
            f"pixel data in {codecs.name_of(uid)} ({uid}) cannot be decoded by this installation",
            hint="'dcmtools transcode --list' shows what can be decoded; a file already in the target syntax is copied",
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise DcmtoolsError(
            ErrorCode.CANNOT_DECODE,
            f"no decoder for {codecs.name_of(uid)} is installed",
            hint=f"install one of: {missing}" if missing else "see 'dcmtools transcode --list'",
        )
    try:
        plugin = codecs.decoding_plugin(uid, decoder.available_plugins)
        with codecs._quiet_plugins():
            arr, meta = decoder.as_array(ds, raw=not codecs.decode_as_rgb(uid), decoding_plugin=plugin)
    except BaseException as exc:  # a codec panic (pyo3 PanicException) is no Exception
        codecs.reraise_interrupt(exc)
        text = codecs._first_line(exc)
        if "less than expected" in text or "truncated" in text.lower():
            raise DcmtoolsError(
                ErrorCode.TRUNCATED, f"the pixel data of {path} is incomplete: {text}", hint="the file is truncated"
            ) from None
        if "Unknown Value Representation" in text or type(exc).__name__ == "BytesLengthException":
            # an attribute the decoder reads (Rows, Bits Allocated ...) is malformed: the data's fault
            raise DcmtoolsError(ErrorCode.INVALID, f"{path} has a malformed Image Pixel attribute: {text}") from None
        if "Missing required element" in text or "required" in text and "element" in text:
            raise DcmtoolsError(
                ErrorCode.INVALID, f"{path} has pixel data but lacks Image Pixel attributes: {text}"
            ) from None
        raise DcmtoolsError(
            ErrorCode.CANNOT_DECODE,
            f"the pixel data of {path} ({codecs.name_of(uid)}) could not be decoded: {text}",
            hint="the codestream may be corrupt; a file already in the target syntax is copied as it is",
        ) from None
    meta = dict(meta)
    pi = str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    pi = getattr(pi, "value", pi)
    if pi == "YBR_FULL_422":
        pi = "YBR_FULL"  # decoded pixels are never subsampled
    meta["photometric_interpretation"] = pi
    return arr, meta


def _native_order(arr):
    if arr is None:
        return None
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _little()):
        return arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


def _image_info(ds, meta: dict[str, Any], frames: int) -> ImageInfo:
    return ImageInfo(
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        samples_per_pixel=int(ds.get("SamplesPerPixel", 1) or 1),
        bits_allocated=int(ds.BitsAllocated),
        bits_stored=int(ds.get("BitsStored", ds.BitsAllocated) or ds.BitsAllocated),
        pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
        number_of_frames=frames,
        photometric=str(meta["photometric_interpretation"]),
    )


def _raw_pixel_bytes(image: ImageInfo) -> int:
    return (
        image.rows * image.columns * image.samples_per_pixel * image.number_of_frames * image.bits_allocated + 7
    ) // 8


def _set_encapsulated(ds, frames: list[bytes], target: Syntax, out_pi: str, samples: int) -> None:
    from pydicom.encaps import encapsulate, encapsulate_extended

    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    total = sum(len(f) for f in frames) + 8 * len(frames)
    if total > 0xFFFFFFF0:
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(frames)
    else:
        ds.PixelData = encapsulate(frames, has_bot=len(frames) > 1)
    element = ds["PixelData"]
    element.VR = "OB"
    element.is_undefined_length = True
    ds.PhotometricInterpretation = out_pi
    if samples > 1:
        ds.PlanarConfiguration = 1 if codecs.uses_planar_configuration_1(target) else 0


def _set_native(ds, arr, meta: dict[str, Any]) -> None:
    import numpy as np
    from pydicom.pixels import pack_bits

    bits = int(ds.BitsAllocated)
    if bits == 1:
        data = pack_bits(arr)
    else:
        data = np.ascontiguousarray(arr).tobytes()
    if len(data) % 2:
        data += b"\x00"
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            del ds[keyword]
    ds.PixelData = data
    element = ds["PixelData"]
    element.VR = "OW" if bits > 8 else "OB"
    element.is_undefined_length = False
    ds.PhotometricInterpretation = meta["photometric_interpretation"]
    if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
        ds.PlanarConfiguration = 0


def _mark_lossy(ds, target: Syntax, ratio: float, keep_uid: bool, info: dict[str, Any]) -> None:
    """Lossy Image Compression (0028,2110), Ratio (0028,2112), Method (0028,2114)."""
    from pydicom.uid import generate_uid

    ratios = _values(ds.get("LossyImageCompressionRatio"))
    methods = _values(ds.get("LossyImageCompressionMethod"))
    if str(ds.get("LossyImageCompression", "")) != "01":
        ratios, methods = [], []
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [str(r) for r in ratios] + [_ds_string(ratio)]
    ds.LossyImageCompressionMethod = [str(m) for m in methods] + [target.method]
    info["lossy"] = True
    if not keep_uid:
        uid = generate_uid()
        info["previous_sop_instance_uid"] = str(ds.get("SOPInstanceUID", ""))
        ds.SOPInstanceUID = uid
        if getattr(ds, "file_meta", None) is not None:
            ds.file_meta.MediaStorageSOPInstanceUID = uid
        info["sop_instance_uid"] = uid


def _values(value) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]


def _ds_string(value: float) -> str:
    text = f"{value:.2f}"
    return text[:16]


def _prepare_meta(ds, uid: str) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    from . import __version__

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    meta.TransferSyntaxUID = uid
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"{IMPLEMENTATION_VERSION_NAME}_{__version__}"[:16]


_SWAP_WIDTH = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _to_little_endian(ds, src_uid: str) -> None:
    """Parse every element (in sequences too) and make raw binary values little endian.

    Parsing them all lets pydicom write each with its VR even when the file's
    real encoding differed from its transfer syntax (implicit VR data in an
    explicit file).  pydicom re-encodes parsed values (US, FL, ...) itself
    but keeps raw OW/OF/OL/OD/OV values as read: from a big endian file they
    are byte-swapped here.  Pixel Data was rebuilt from the decoded array.
    """
    import numpy as np

    swap = src_uid == codecs.BIG_ENDIAN

    def walk(dataset) -> None:
        for element in dataset:  # converts raw elements using the source encoding
            if element.VR == "SQ":
                for item in element.value or []:
                    walk(item)
            elif not swap or element.tag == 0x7FE00010:
                continue
            elif element.VR in _SWAP_WIDTH and isinstance(element.value, (bytes, bytearray)):
                width = _SWAP_WIDTH[element.VR]
                value = bytes(element.value)
                usable = len(value) - len(value) % width
                swapped = np.frombuffer(value[:usable], dtype=f">u{width}").astype(f"<u{width}").tobytes()
                element.value = swapped + value[usable:]

    walk(ds)


def _serialize(ds, path: str, src_uid: str) -> bytes:
    """The dataset as a DICOM file in the transfer syntax of its file meta."""
    import pydicom

    if src_uid == codecs.BIG_ENDIAN:
        _to_little_endian(ds, src_uid)
    buffer = io.BytesIO()
    try:
        fast = _explicit_le_bytes(ds)
        if fast is not None:
            return fast
        try:
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        except (TypeError, ValueError, AttributeError):
            # Elements still raw as read from a file whose real encoding is
            # not its transfer syntax's (implicit VR in an explicit file):
            # parse them all so each is written with its VR.
            _to_little_endian(ds, src_uid)
            buffer = io.BytesIO()
            pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    except Exception as exc:
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            raise DcmtoolsError(
                ErrorCode.INVALID,
                f"{path} has no SOP Class UID or SOP Instance UID, so no DICOM file can be written from it",
                hint="add them (e.g. with dcmodify) and try again",
            ) from None
        raise DcmtoolsError(
            ErrorCode.INVALID,
            f"{path} cannot be written as DICOM: {codecs._first_line(exc)}",
            hint="the dataset has values pydicom cannot encode; 'dcmtools dump' shows them",
        ) from None
    return buffer.getvalue()


_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})


def _explicit_le_bytes(ds) -> bytes | None:
    """What ``dcmwrite(enforce_file_format=True)`` writes, faster, or None when it does not apply.

    For an explicit VR little endian dataset written again in explicit VR
    little endian (every compressed syntax and ``explicit``), the elements
    left as read are copied as they are (tag, VR, length, value) instead of
    going through pydicom's writer one call at a time, which costs about
    2 ms per file of a few hundred elements.  Changed elements, sequences and
    undefined lengths go through pydicom's own ``write_data_element``.  A test
    checks the bytes equal ``dcmwrite``'s on every bundled test file.
    """
    import struct
    from copy import deepcopy

    from pydicom.dataelem import RawDataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element, write_file_meta_info

    meta = getattr(ds, "file_meta", None)
    uid = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if uid in ("", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", codecs.BIG_ENDIAN):
        return None
    if tuple(ds.original_encoding) != (False, True) or ds.original_character_set != ds._character_set:
        return None
    if any(tag >> 16 in (0, 2) for tag in ds._dict):
        return None
    preamble = getattr(ds, "preamble", None) or b"\x00" * 128
    if len(preamble) != 128:
        return None
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = False, True
    fp.write(preamble)
    fp.write(b"DICM")
    write_file_meta_info(fp, deepcopy(meta), enforce_standard=True)
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = uid not in codecs.NATIVE_LE
    encoding = ds.get("SpecificCharacterSet", "iso8859")
    header16 = struct.Struct("<HH2sH").pack
    header32 = struct.Struct("<HH2sHI").pack
    write = fp.write
    for tag in sorted(ds._dict):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = ds._dict[tag]
        if type(elem) is RawDataElement and not elem.VR:
            return None  # implicit VR data in an explicit file: pydicom's way, after parsing
        if (
            type(elem) is RawDataElement
            and elem.VR
            and len(elem.VR) == 2
            and elem.VR != "SQ"
            and elem.length != 0xFFFFFFFF
            and not elem.is_implicit_VR
            and elem.is_little_endian
            and type(elem.value) is bytes
            and (elem.VR in _LONG_VRS or len(elem.value) <= 0xFFFF)
        ):
            vr = elem.VR.encode()
            if elem.VR in _LONG_VRS:
                write(header32(tag >> 16, tag & 0xFFFF, vr, 0, len(elem.value)))
            else:
                write(header16(tag >> 16, tag & 0xFFFF, vr, len(elem.value)))
            write(elem.value)
        else:
            write_data_element(fp, ds.get_item(tag), encoding)
    return fp.getvalue()


def _verify(data: bytes, src, meta, target: Syntax, opts: TranscodeOptions, path: str):
    """Decode the bytes about to be written and compare them with the input's pixels."""
    import numpy as np
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        out, out_meta = _decode(ds, path, str(ds.file_meta.TransferSyntaxUID))
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
        bound = codecs.DEFAULT_NEAR_ERROR if opts.error is None else opts.error
        if max_error > bound:
            raise DcmtoolsError(
                ErrorCode.VERIFY_FAILED,
                f"the jpeg-ls-near output of {path} differs by up to {int(max_error)}, more than --error {bound}",
                hint="nothing was written; please report this with the file",
            )
    return result


def _ratio(before: int, after: int) -> float | None:
    return round(before / after, 3) if after else None


# ------------------------------------------------------------------ batches


def _work(job: tuple[str, str, TranscodeOptions]) -> dict[str, Any]:
    path, out, options = job
    try:
        return transcode_file(path, out, options)
    except BaseException as exc:  # a bug: never lose the batch over it
        codecs.reraise_interrupt(exc)
        if not isinstance(exc, Exception):  # a panic in a codec (pyo3 PanicException)
            error = DcmtoolsError(ErrorCode.CANNOT_DECODE, f"a codec failed on {path}: {type(exc).__name__}: {exc}")
            return error_record("file", error, path=path, out=out)
        if raised_in_pydicom(exc):
            # pydicom converts values lazily: an unknown VR or a value of the wrong size in the
            # input surfaces when an element is first used.  The data's fault, not ours.
            error = DcmtoolsError(
                ErrorCode.INVALID,
                f"{path} holds an element pydicom cannot read: {codecs._first_line(exc)}",
                hint="'dcmtools dump' shows the file as it is",
            )
            return error_record("file", error, path=path, out=out)
        return error_record(
            "file",
            DcmtoolsError(
                ErrorCode.INTERNAL,
                f"internal error on {path}: {type(exc).__name__}: {exc}",
                hint="this is a bug in dcmtools; please report it with --debug output",
            ),
            path=path,
            out=out,
        )


def raised_in_pydicom(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc`` is pydicom's (reading the input's values)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}pydicom{os.sep}" in tb.tb_frame.f_code.co_filename


def transcode(
    inputs: Iterable[str],
    to: str | Syntax,
    out_dir: str | os.PathLike,
    *,
    jobs: int = 1,
    files_from: str | None = None,
    null: bool = False,
    **option_values: Any,
) -> Iterator[dict[str, Any]]:
    """Transcode ``inputs`` (files, folders, globs) into ``out_dir``; yield one record per input.

    ``to`` is a syntax name (``explicit``, ``rle``, ``jpeg-ls``, ``j2k`` ...)
    or a UID; ``option_values`` are those of ``options_for`` (``error``,
    ``ratio``, ``quality``, ``verify``, ``keep_uid``, ``overwrite``).
    ``jobs`` worker processes (0 = all cores); records come in input order.
    """
    from .stream.inputs import iter_inputs
    from .stream.parallel import resolve_jobs

    options = options_for(to, **option_values)
    inputs = list(inputs)
    items = iter_inputs(inputs, files_from=files_from, null=null, read_stdin_when_piped=False)
    yield from run_plan(Plan(items, out_dir, inputs), options, resolve_jobs(jobs))


class Plan:
    """``(path, out, error_record)`` for each input item, outputs mirrored under ``out_dir``.

    The output path comes from ``outputs.Mirror`` (the tree below each INPUTS
    argument).  Files inside the output folder are skipped and counted in
    ``skipped_inside_output`` (a second run does not take its own outputs as
    inputs); a second input mapped to an output of the same run is an
    ``exists`` error (it would replace the first with --overwrite).
    """

    def __init__(self, items: Iterable[Any], out_dir: str | os.PathLike, args: Iterable[str] | None) -> None:
        self.items = items
        self.mirror = Mirror(out_dir, list(args or []))
        self.out_real = os.path.realpath(os.fspath(out_dir))
        self.skipped_inside_output = 0

    def __iter__(self) -> Iterator[tuple[str, str | None, dict[str, Any] | None]]:
        seen: set[str] = set()
        prefix = self.out_real.rstrip(os.sep) + os.sep
        for item in self.items:
            if item.error is not None:
                yield item.path, None, error_record("file", item.error, path=item.path)
                continue
            real = os.path.realpath(item.path)
            if real == self.out_real or real.startswith(prefix):
                self.skipped_inside_output += 1
                continue
            out = self.mirror(item.path)
            key = os.path.normpath(os.path.abspath(out))
            if key in seen:
                error = DcmtoolsError(
                    ErrorCode.EXISTS,
                    f"another input of this run is written to {out} already",
                    hint="give inputs whose paths below their folders differ, or transcode them into separate folders",
                )
                yield item.path, None, error_record("file", error, path=item.path, out=out)
                continue
            seen.add(key)
            yield item.path, out, None


def run_plan(plan: Iterable[tuple[str, str | None, dict[str, Any] | None]], options: TranscodeOptions, jobs: int):
    """Records for every entry of a plan, input errors included, in input order."""
    from .stream.parallel import map_ordered

    def jobs_of() -> Iterator[tuple[str, str, TranscodeOptions] | dict[str, Any]]:
        for path, out, error in plan:
            yield error if error is not None else (path, out, options)

    yield from map_ordered(_work_or_pass, jobs_of(), jobs, lost=_lost, again=_again)


def _again(job, record):
    """--cluster: an output that "exists" may be this run's own attempt lost with its worker."""
    if isinstance(job, tuple) and (record.get("error") or {}).get("code") == ErrorCode.EXISTS:
        from dataclasses import replace

        return (job[0], job[1], replace(job[2], overwrite=True))
    return None


def _lost(job, reason: str) -> dict[str, Any]:
    path, out, _ = job
    error = DcmtoolsError(ErrorCode.WORKER_DIED, reason, hint="try it alone with --jobs 1")
    return error_record("file", error, path=path, out=out)


def _work_or_pass(job):
    if isinstance(job, dict):
        return job
    return _work(job)
