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

from .batch import OutputPlan, raised_in_pydicom, run_plan, transcode
from .options import (
    IMPLEMENTATION_VERSION_NAME,
    LOSSY_ONLY,
    TranscodeOptions,
    options_for,
)
from .pixels import decode_pixels, native_order, set_native
from .reading import read_dataset, source_syntax
from .work import same_file, transcode_file
from .writing import to_little_endian

# The names net/store.py used before the split (it reads and re-encodes files to send).
_read = read_dataset
_decode = decode_pixels
_native_order = native_order
_set_native = set_native
_to_little_endian = to_little_endian

__all__ = [
    "IMPLEMENTATION_VERSION_NAME",
    "LOSSY_ONLY",
    "OutputPlan",
    "TranscodeOptions",
    "decode_pixels",
    "native_order",
    "options_for",
    "raised_in_pydicom",
    "read_dataset",
    "run_plan",
    "same_file",
    "set_native",
    "source_syntax",
    "to_little_endian",
    "transcode",
    "transcode_file",
]
