"""Pixel data: decoding with pydicom's plugins, setting native or encapsulated frames, lossy marks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from ..dicom import codecs
from ..dicom.codecs import ImageInfo, Syntax
from ..stream.records import DcmtoolsError, ErrorCode

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pydicom.dataset import Dataset


def decode_pixels(ds: Dataset, path: str, uid: str) -> tuple[NDArray[Any], dict[str, Any]]:
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
            arr, decoded_meta = decoder.as_array(ds, raw=not codecs.decode_as_rgb(uid), decoding_plugin=plugin)
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
    meta: dict[str, Any] = dict(decoded_meta)
    pi = str(meta.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))
    pi = getattr(pi, "value", pi)
    if pi == "YBR_FULL_422":
        pi = "YBR_FULL"  # decoded pixels are never subsampled
    meta["photometric_interpretation"] = pi
    return arr, meta


@overload
def native_order(arr: NDArray[Any]) -> NDArray[Any]: ...
@overload
def native_order(arr: None) -> None: ...
def native_order(arr: NDArray[Any] | None) -> NDArray[Any] | None:
    """The array in little endian byte order (what DICOM files hold)."""
    if arr is None:
        return None
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _little()):
        return arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


def _image_info(ds: Dataset, meta: dict[str, Any], frames: int) -> ImageInfo:
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


def _set_encapsulated(ds: Dataset, frames: list[bytes], target: Syntax, out_pi: str, samples: int) -> None:
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


def set_native(ds: Dataset, arr: NDArray[Any], meta: dict[str, Any]) -> None:
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


def _mark_lossy(ds: Dataset, target: Syntax, ratio: float, keep_uid: bool, info: dict[str, Any]) -> None:
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


def _values(value: Any) -> list[Any]:  # an element's value, as pydicom holds it
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]


def _ds_string(value: float) -> str:
    text = f"{value:.2f}"
    return text[:16]
