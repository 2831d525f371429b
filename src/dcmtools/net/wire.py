"""The bytes on the wire and in files, without pydicom: the hot path of send and listen.

* DIMSE command sets (always Implicit VR Little Endian, PS3.7 Annex E):
  ``encode_command`` / ``parse_command``, and the C-STORE-RQ/RSP shapes.
* P-DATA-TF framing (PS3.8 9.3.5): ``pdata_iovecs`` splits a message into
  PDV fragments that fit the peer's maximum PDU length, as a list of buffers
  for one ``sendmsg`` call (no copy of the data).
* Part 10 files: ``read_file_head`` finds the SOP class/instance, the transfer
  syntax and where the dataset starts; ``scan_dataset`` reads a few top-level
  elements from dataset bytes (skipping sequences, any VR encoding);
  ``file_meta_bytes`` writes a File Meta Information group.

Importable without pydicom or pynetdicom.
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterable

# Transfer syntaxes we must recognise by hand.
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
UNCOMPRESSED = (EXPLICIT_LE, IMPLICIT_LE)
NATIVE = (EXPLICIT_LE, IMPLICIT_LE, EXPLICIT_BE, DEFLATED_LE)  # pixel data not encapsulated

# Command fields (PS3.7 E.1)
C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_ECHO_RQ = 0x0030
NO_DATASET = 0x0101

TAG_GROUP_LENGTH = 0x00000000
TAG_AFFECTED_SOP_CLASS = 0x00000002
TAG_COMMAND_FIELD = 0x00000100
TAG_MESSAGE_ID = 0x00000110
TAG_MESSAGE_ID_RESPONDED = 0x00000120
TAG_PRIORITY = 0x00000700
TAG_DATASET_TYPE = 0x00000800
TAG_STATUS = 0x00000900
TAG_OFFENDING_ELEMENT = 0x00000901
TAG_ERROR_COMMENT = 0x00000902
TAG_AFFECTED_SOP_INSTANCE = 0x00001000
TAG_MOVE_ORIGINATOR_AET = 0x00001030
TAG_MOVE_ORIGINATOR_ID = 0x00001031

_UL = struct.Struct("<HHLL")  # group, element, length 4, value
_US = struct.Struct("<HHLH")
_TAG_LEN = struct.Struct("<HHL")
PDU_HEADER = struct.Struct(">BBL")  # type, reserved, length
PDV_HEADER = struct.Struct(">LBB")  # item length, context id, message control header
PDATA_HEADER = struct.Struct(">BBLLBB")  # a P-DATA-TF PDU holding one PDV: 12 bytes


def _pad_uid(value: str) -> bytes:
    data = value.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def _pad_text(value: str) -> bytes:
    data = value.encode("ascii", "replace")
    return data + b" " if len(data) % 2 else data


def encode_command(elements: Iterable[tuple[int, object]]) -> bytes:
    """An Implicit VR LE command set with its group length; values: int (US) or str (UI/AE/LO)."""
    body = bytearray()
    for tag, value in sorted(elements, key=lambda e: e[0]):
        group, elem = tag >> 16, tag & 0xFFFF
        if isinstance(value, int):
            body += _US.pack(group, elem, 2, value)
        else:
            data = _pad_uid(value) if tag in (TAG_AFFECTED_SOP_CLASS, TAG_AFFECTED_SOP_INSTANCE) else _pad_text(str(value))
            body += _TAG_LEN.pack(group, elem, len(data)) + data
    return _UL.pack(0, 0, 4, len(body)) + bytes(body)


def parse_command(data: bytes | bytearray | memoryview) -> dict[int, bytes]:
    """A command set as ``{tag: raw value bytes}``."""
    out: dict[int, bytes] = {}
    pos, end = 0, len(data)
    while pos + 8 <= end:
        group, elem, length = _TAG_LEN.unpack_from(data, pos)
        pos += 8
        out[(group << 16) | elem] = bytes(data[pos : pos + length])
        pos += length
    return out


def command_us(command: dict[int, bytes], tag: int, default: int | None = None) -> int | None:
    raw = command.get(tag)
    return struct.unpack("<H", raw[:2])[0] if raw and len(raw) >= 2 else default


def command_str(command: dict[int, bytes], tag: int) -> str | None:
    raw = command.get(tag)
    return raw.rstrip(b"\0 ").decode("ascii", "replace") if raw is not None else None


def store_rq(message_id: int, sop_class: str, sop_instance: str, priority: int = 0,
             move_originator: tuple[str, int] | None = None) -> bytes:
    elements: list[tuple[int, object]] = [
        (TAG_AFFECTED_SOP_CLASS, sop_class),
        (TAG_COMMAND_FIELD, C_STORE_RQ),
        (TAG_MESSAGE_ID, message_id),
        (TAG_PRIORITY, priority),
        (TAG_DATASET_TYPE, 0x0000),
        (TAG_AFFECTED_SOP_INSTANCE, sop_instance),
    ]
    if move_originator:
        elements += [(TAG_MOVE_ORIGINATOR_AET, move_originator[0]), (TAG_MOVE_ORIGINATOR_ID, move_originator[1])]
    return encode_command(elements)


def store_rsp(message_id: int, sop_class: str, sop_instance: str, status: int, comment: str | None = None) -> bytes:
    elements: list[tuple[int, object]] = [
        (TAG_AFFECTED_SOP_CLASS, sop_class),
        (TAG_COMMAND_FIELD, C_STORE_RSP),
        (TAG_MESSAGE_ID_RESPONDED, message_id),
        (TAG_DATASET_TYPE, NO_DATASET),
        (TAG_STATUS, status),
        (TAG_AFFECTED_SOP_INSTANCE, sop_instance),
    ]
    if comment:
        elements.append((TAG_ERROR_COMMENT, comment[:64]))
    return encode_command(elements)


def max_fragment(max_pdu: int | None) -> int:
    """Largest PDV data per P-DATA-TF for the peer's maximum PDU length (0/None: no limit)."""
    if not max_pdu:
        return 4 * 1024 * 1024  # unlimited: keep PDUs at a size every peer buffers well
    return max(1, max_pdu - 6)


def pdata_iovecs(context_id: int, data: bytes | bytearray | memoryview, command: bool, last: bool,
                 fragment: int, out: list) -> int:
    """Append P-DATA-TF PDUs carrying ``data`` (one PDV each) to ``out``; return the PDU count.

    ``last`` marks the final fragment of the command or dataset.  Buffers are
    memoryviews into ``data``: nothing is copied.
    """
    view = memoryview(data)
    total = len(view)
    kind = 1 if command else 0
    count = 0
    pos = 0
    while True:
        chunk = view[pos : pos + fragment]
        n = len(chunk)
        pos += n
        is_last = last and pos >= total
        out.append(PDATA_HEADER.pack(0x04, 0, n + 6, n + 2, context_id, kind | (2 if is_last else 0)))
        if n:
            out.append(chunk)
        count += 1
        if pos >= total:
            return count


def iter_pdvs(body: bytes | bytearray | memoryview):
    """``(context_id, control_header, data)`` of each PDV in a P-DATA-TF body."""
    view = memoryview(body)
    pos, end = 0, len(view)
    while pos + 6 <= end:
        length, context_id, control = PDV_HEADER.unpack_from(view, pos)
        yield context_id, control, view[pos + 6 : pos + 4 + length]
        pos += 4 + length


# ------------------------------------------------------------- Part 10 files

class FileHead:
    """What ``send`` needs from a file before streaming it."""

    __slots__ = ("sop_class", "sop_instance", "transfer_syntax", "offset", "size", "has_meta")

    def __init__(self, sop_class: str, sop_instance: str, transfer_syntax: str, offset: int, size: int, has_meta: bool):
        self.sop_class = sop_class
        self.sop_instance = sop_instance
        self.transfer_syntax = transfer_syntax
        self.offset = offset
        self.size = size
        self.has_meta = has_meta


class NotDicom(ValueError):
    """Raised by the readers when bytes are not DICOM (message in plain words)."""


def read_file_head(path: str, probe: int = 65536) -> FileHead:
    """SOP class and instance, transfer syntax, and dataset offset of a DICOM file.

    Reads the File Meta Information (or, for a bare dataset without one, scans
    the start of the dataset as Implicit VR LE then Explicit VR LE).
    Raises ``NotDicom`` or ``OSError``.
    """
    with open(path, "rb") as stream:
        head = stream.read(probe)
        size = stream.seek(0, 2)
        if len(head) >= 132 and head[128:132] == b"DICM":
            pos, meta = 132, {}
            while True:
                if pos + 8 > len(head):
                    stream.seek(0)
                    head = stream.read(max(len(head) * 4, 1 << 20))
                    if pos + 8 > len(head):
                        break
                group, elem = struct.unpack_from("<HH", head, pos)
                if group != 0x0002:
                    break
                vr = head[pos + 4 : pos + 6]
                if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"):
                    length = struct.unpack_from("<L", head, pos + 8)[0]
                    start = pos + 12
                else:
                    length = struct.unpack_from("<H", head, pos + 6)[0]
                    start = pos + 8
                if length == 0xFFFFFFFF:
                    raise NotDicom("the file meta information has an element of undefined length")
                meta[elem] = head[start : start + length]
                pos = start + length
            ts = meta.get(0x0010, b"").rstrip(b"\0 ").decode("ascii", "replace")
            sop_class = meta.get(0x0002, b"").rstrip(b"\0 ").decode("ascii", "replace")
            sop_instance = meta.get(0x0003, b"").rstrip(b"\0 ").decode("ascii", "replace")
            if not ts:
                raise NotDicom("the file meta information has no Transfer Syntax UID")
            # The dataset's own UIDs win over the meta's (some writers leave them out of step).
            try:
                found = scan_dataset(_dataset_head(stream, pos, ts, 16384), ts, {0x00080016, 0x00080018})
            except NotDicom:
                found = {}
            sop_class = found.get(0x00080016, b"").rstrip(b"\0 ").decode("ascii", "replace") or sop_class
            sop_instance = found.get(0x00080018, b"").rstrip(b"\0 ").decode("ascii", "replace") or sop_instance
            if not (sop_class and sop_instance):
                raise NotDicom("no SOP Class UID or SOP Instance UID in the file")
            return FileHead(sop_class, sop_instance, ts, pos, size, True)
    # No preamble: maybe a bare dataset (ACR-NEMA style or a stripped file).
    if len(head) < 8:
        raise NotDicom("not a DICOM file (too short)")
    for ts in (IMPLICIT_LE, EXPLICIT_LE):
        try:
            found = scan_dataset(head, ts, {0x00080016, 0x00080018})
        except NotDicom:
            continue
        if 0x00080016 in found and 0x00080018 in found:
            sop_class = found[0x00080016].rstrip(b"\0 ").decode("ascii", "replace")
            sop_instance = found[0x00080018].rstrip(b"\0 ").decode("ascii", "replace")
            if _looks_like_uid(sop_class) and _looks_like_uid(sop_instance):
                return FileHead(sop_class, sop_instance, ts, 0, size, False)
    raise NotDicom("not a DICOM file (no DICM prefix and no readable dataset)")


def _looks_like_uid(text: str) -> bool:
    return 0 < len(text) <= 64 and all(c.isdigit() or c == "." for c in text)


def _dataset_head(stream, offset: int, ts: str, size: int = 1 << 20) -> bytes:
    stream.seek(offset)
    data = stream.read(size)
    return inflate_head(data) if ts == DEFLATED_LE else data


def inflate_head(data: bytes, limit: int = 1 << 20) -> bytes:
    """The first bytes of a deflated dataset (raw deflate, PS3.5 A.5)."""
    try:
        return zlib.decompressobj(-15).decompress(data, limit)
    except zlib.error:
        return b""


_LONG_VRS = frozenset((b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"))


def scan_dataset(data: bytes | bytearray | memoryview, ts: str, wanted: set[int]) -> dict[int, bytes]:
    """Raw values of the wanted top-level elements found at the start of a dataset.

    Stops after the last wanted tag or at the end of ``data``; sequences
    (defined or undefined length) are skipped.  Raises ``NotDicom`` when the
    bytes do not parse.
    """
    little = ts != EXPLICIT_BE
    implicit = ts == IMPLICIT_LE
    endian = "<" if little else ">"
    tag_len = struct.Struct(endian + "HHL")
    hh = struct.Struct(endian + "HH")
    u16 = struct.Struct(endian + "H")
    u32 = struct.Struct(endian + "L")
    last = max(wanted) if wanted else 0
    found: dict[int, bytes] = {}
    end = len(data)

    def element(pos: int) -> tuple[int, int, int, bool]:
        """(tag, value start, value length, is_sequence_like)"""
        if pos + 8 > end:
            raise IndexError
        group, elem = hh.unpack_from(data, pos)
        tag = (group << 16) | elem
        if group == 0xFFFE or implicit:
            length = u32.unpack_from(data, pos + 4)[0]
            return tag, pos + 8, length, length == 0xFFFFFFFF
        vr = bytes(data[pos + 4 : pos + 6])
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            raise NotDicom("bad VR")
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise IndexError
            length = u32.unpack_from(data, pos + 8)[0]
            return tag, pos + 12, length, vr == b"SQ" or length == 0xFFFFFFFF
        return tag, pos + 8, u16.unpack_from(data, pos + 6)[0], False

    def skip_undefined(pos: int) -> int:
        """Skip items up to and including the sequence delimiter; return the position after it."""
        while True:
            tag, start, length, _ = element(pos)
            if tag == 0xFFFEE0DD:
                return start
            if tag != 0xFFFEE000:
                raise NotDicom("bad sequence item")
            if length != 0xFFFFFFFF:
                pos = start + length
                continue
            pos = start
            while True:  # elements of an undefined-length item, up to its delimiter
                tag, start, length, seq = element(pos)
                if tag == 0xFFFEE00D:
                    pos = start
                    break
                pos = skip_undefined(start) if length == 0xFFFFFFFF else start + length

    pos = 0
    prev = -1
    try:
        while pos < end:
            tag, start, length, seq = element(pos)
            if tag <= prev and not (tag >> 16) == 0x0002:
                raise NotDicom("elements out of order")
            prev = tag
            if tag > last:
                break
            if length == 0xFFFFFFFF:
                if tag == 0x7FE00010:
                    break
                pos = skip_undefined(start)
                continue
            if tag in wanted:
                found[tag] = bytes(data[start : start + length])
            pos = start + length
    except (IndexError, struct.error):
        pass  # ran off the end of what we have: return what we found
    return found


def file_meta_bytes(sop_class: str, sop_instance: str, transfer_syntax: str,
                    implementation_uid: str, implementation_version: str | None = None,
                    source_aet: str | None = None) -> bytes:
    """Preamble, ``DICM`` and a File Meta Information group (Explicit VR LE)."""
    body = bytearray()

    def put(elem: int, vr: bytes, value: bytes) -> None:
        if vr in (b"OB",):
            body.extend(struct.pack("<HH2sHL", 2, elem, vr, 0, len(value)))
        else:
            body.extend(struct.pack("<HH2sH", 2, elem, vr, len(value)))
        body.extend(value)

    put(0x0001, b"OB", b"\x00\x01")
    put(0x0002, b"UI", _pad_uid(sop_class))
    put(0x0003, b"UI", _pad_uid(sop_instance))
    put(0x0010, b"UI", _pad_uid(transfer_syntax))
    put(0x0012, b"UI", _pad_uid(implementation_uid))
    if implementation_version:
        put(0x0013, b"SH", _pad_text(implementation_version[:16]))
    if source_aet:
        put(0x0016, b"AE", _pad_text(source_aet[:16]))
    return b"\0" * 128 + b"DICM" + struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(body)) + bytes(body)
