"""Writing the datasets of ``dcmtools.dicom.reader`` back to DICOM files, fast.

The counterpart of the reader for commands that change a few elements and
keep the rest (anonymize): each element is written from the raw value bytes
the reader kept, so nothing is decoded or re-encoded that was not changed, and
bulk values the reader only located (pixel data above its threshold,
encapsulated fragments) are copied from the source file by the kernel
(``os.sendfile``) without passing through Python.

Encodings: explicit VR little and big endian, implicit VR little endian, and
deflated explicit VR little endian, as the transfer syntax in the meta says.
Sequences and items are written with undefined lengths and delimiters (valid
in every transfer syntax).  The file meta group is written in explicit VR
little endian with a freshly computed group length, after a 128-byte preamble
of zeros.  Importable without pydicom.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from .reader import (
    DEFLATED_LE,
    EXPLICIT_VR_BE,
    IMPLICIT_VR_LE,
    LONG_VRS,
    UNDEFINED,
    Dataset,
    DicomFile,
    Element,
)

_T = TypeVar("_T")

_ITEM_START = {
    True: struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED),
    False: struct.pack(">HHI", 0xFFFE, 0xE000, UNDEFINED),
}
_ITEM_END = {True: struct.pack("<HHI", 0xFFFE, 0xE00D, 0), False: struct.pack(">HHI", 0xFFFE, 0xE00D, 0)}
_SEQ_END = {True: struct.pack("<HHI", 0xFFFE, 0xE0DD, 0), False: struct.pack(">HHI", 0xFFFE, 0xE0DD, 0)}


class Bulk:
    """Where bulk values not held in memory come from: a file (by offset) or a buffer."""

    def __init__(self, path: str | None = None, buffer: bytes | memoryview | None = None) -> None:
        self.path = path
        self.buffer = buffer
        self.fd: int | None = None

    def __enter__(self) -> Bulk:
        if self.path is not None and self.buffer is None:
            self.fd = os.open(self.path, os.O_RDONLY)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def copy(self, out: BinaryIO, offset: int, length: int) -> None:
        if self.buffer is not None:
            out.write(self.buffer[offset : offset + length])
            return
        if self.fd is None:
            raise ValueError("a bulk value is not in memory and there is no source file to copy it from")
        out.flush()
        out_fd = out.fileno()
        while length > 0:
            try:
                sent = os.sendfile(out_fd, self.fd, offset, length)
            except OSError:
                sent = 0
            if sent <= 0:  # sendfile not possible here: copy through memory
                data = os.pread(self.fd, min(length, 1 << 20), offset)
                if not data:
                    raise ValueError("the source file is shorter than when it was read")
                out.write(data)
                sent = len(data)
                out.flush()
            offset += sent
            length -= sent


class _Encoder:
    """Serializes elements into a list of byte strings and bulk copies."""

    def __init__(self, little: bool, implicit: bool) -> None:
        self.little = little
        self.implicit = implicit
        e = "<" if little else ">"
        self.short = struct.Struct(e + "HH2sH").pack
        self.long = struct.Struct(e + "HH2sxxI").pack
        self.implicit_header = struct.Struct(e + "HHI").pack
        # pieces: bytes, or (offset, length) to copy from the source
        self.pieces: list[bytes | tuple[int, int]] = []

    def header(self, tag: int, vr: str, length: int) -> bytes:
        if self.implicit:
            return self.implicit_header(tag >> 16, tag & 0xFFFF, length)
        if vr in LONG_VRS or length > 0xFFFF and length != UNDEFINED:
            if vr not in LONG_VRS:
                vr = "UN" if vr not in ("LT", "ST") else "UT"  # too long for its VR: keep the bytes
            return self.long(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)
        return self.short(tag >> 16, tag & 0xFFFF, vr.encode("ascii"), length)

    def dataset(self, ds: Dataset) -> None:
        pieces = self.pieces
        for tag in sorted(ds):
            element = ds[tag]
            vr = element.vr
            if element.items is not None or vr == "SQ":
                pieces.append(self.header(tag, "SQ", UNDEFINED))
                for item in element.items or ():
                    pieces.append(_ITEM_START[self.little])
                    self.dataset(item)
                    pieces.append(_ITEM_END[self.little])
                pieces.append(_SEQ_END[self.little])
            elif element.value is not None:
                value = element.value
                if len(value) & 1:
                    value += b"\0" if vr in ("UI", "OB", "UN") else b" "
                pieces.append(self.header(tag, vr, len(value)))
                pieces.append(value)
            elif element.encapsulated:
                # Fragments and the sequence delimiter, as read.
                pieces.append(self.header(tag, vr or "OB", UNDEFINED))
                pieces.append((_offset(element), element.length))
            else:
                pieces.append(self.header(tag, vr, element.length))
                if element.length:
                    pieces.append((_offset(element), element.length))


def _offset(element: Element) -> int:
    if element.offset is None:
        raise ValueError(f"the value of {element!r} was neither read nor located")
    return element.offset


def encoding_of(transfer_syntax: str | None) -> tuple[bool, bool, bool]:
    """(little endian, implicit VR, deflated) of a transfer syntax (encapsulated ones are explicit LE)."""
    if transfer_syntax == IMPLICIT_VR_LE:
        return True, True, False
    if transfer_syntax == EXPLICIT_VR_BE:
        return False, False, False
    return True, False, transfer_syntax == DEFLATED_LE


def write(out: BinaryIO, meta: Dataset | None, dataset: Dataset, bulk: Bulk, *, deflated: bool = False) -> None:
    """Write a Part 10 file (preamble, meta, dataset) or, with ``meta=None``, a bare dataset.

    The dataset is written in its own encoding (``dataset.little``,
    ``dataset.implicit``), deflated when ``deflated``; the meta's transfer
    syntax is the caller's to keep in agreement.
    """
    little, implicit = dataset.little, dataset.implicit
    if meta is not None:
        out.write(b"\0" * 128 + b"DICM")
        meta_encoder = _Encoder(True, False)
        body = Dataset(True, False)
        for tag, element in meta.items():
            if tag != 0x00020000:
                body[tag] = element
        meta_encoder.dataset(body)
        payload = b"".join(p for p in meta_encoder.pieces if isinstance(p, bytes))
        out.write(struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(payload)))
        out.write(payload)
    encoder = _Encoder(little, implicit)
    encoder.dataset(dataset)
    if deflated:
        compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        chunks = []
        for piece in encoder.pieces:
            if not isinstance(piece, bytes):
                raise ValueError("deflated data must be read whole (no bulk copies)")
            chunks.append(compressor.compress(piece))
        chunks.append(compressor.flush())
        data = b"".join(chunks)
        out.write(data if len(data) % 2 == 0 else data + b"\0")
        return
    run: list[bytes] = []
    for piece in encoder.pieces:
        if isinstance(piece, bytes):
            run.append(piece)
        else:
            if run:
                out.write(b"".join(run))
                run = []
            bulk.copy(out, piece[0], piece[1])
    if run:
        out.write(b"".join(run))


def rewrite_bytes(data: bytes, change: Callable[[DicomFile], _T]) -> tuple[bytes, _T]:
    """A DICOM file (or bare dataset) held in memory, read, changed in place by ``change`` and written again.

    Returns the new bytes and what ``change`` returned.  Elements ``change``
    leaves alone keep their bytes (bulk values are copied from ``data``).
    """
    import io

    from .reader import read_bytes

    dicom = read_bytes(data)
    if dicom.deflated:  # the dataset is compressed as a whole: read it all
        dicom = read_bytes(data, bulk_threshold=1 << 62)
    result = change(dicom)
    out = io.BytesIO()
    write(out, dicom.meta or None, dicom.dataset, Bulk(buffer=data), deflated=dicom.deflated)
    return out.getvalue(), result
