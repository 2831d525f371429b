"""The bytes on the wire and in files, without pydicom: the hot path of send and listen.

* DIMSE command sets (always Implicit VR Little Endian, PS3.7 Annex E):
  ``encode_command`` / ``parse_command``, and the C-STORE-RQ/RSP shapes.
* P-DATA-TF framing (PS3.8 9.3.5): ``pdata_iovecs`` splits a message into
  PDV fragments that fit the peer's maximum PDU length, as a list of buffers
  for one ``sendmsg`` call (no copy of the data).
* Part 10 files: ``file_meta_bytes`` writes a File Meta Information group
  (reading is ``dcmtools.dicom.reader``'s job).

Importable without pydicom or pynetdicom.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, overload

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
TAG_REQUESTED_SOP_CLASS = 0x00000003
TAG_COMMAND_FIELD = 0x00000100
TAG_MESSAGE_ID = 0x00000110
TAG_MESSAGE_ID_RESPONDED = 0x00000120
TAG_PRIORITY = 0x00000700
TAG_DATASET_TYPE = 0x00000800
TAG_STATUS = 0x00000900
TAG_OFFENDING_ELEMENT = 0x00000901
TAG_ERROR_COMMENT = 0x00000902
TAG_AFFECTED_SOP_INSTANCE = 0x00001000
TAG_REQUESTED_SOP_INSTANCE = 0x00001001
TAG_EVENT_TYPE_ID = 0x00001002
TAG_ACTION_TYPE_ID = 0x00001008
TAG_REMAINING = 0x00001020  # Number of Remaining Sub-operations (and Completed, Failed, Warning below)
TAG_COMPLETED = 0x00001021
TAG_FAILED = 0x00001022
TAG_WARNING = 0x00001023
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


def encode_command(elements: Iterable[tuple[int, int | str]]) -> bytes:
    """An Implicit VR LE command set with its group length; values: int (US) or str (UI/AE/LO)."""
    body = bytearray()
    for tag, value in sorted(elements, key=lambda e: e[0]):
        group, elem = tag >> 16, tag & 0xFFFF
        if isinstance(value, int):
            body += _US.pack(group, elem, 2, value)
        else:
            data = (
                _pad_uid(value) if tag in (TAG_AFFECTED_SOP_CLASS, TAG_AFFECTED_SOP_INSTANCE) else _pad_text(str(value))
            )
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


@overload
def command_us(command: dict[int, bytes], tag: int, default: int) -> int: ...
@overload
def command_us(command: dict[int, bytes], tag: int, default: None = None) -> int | None: ...
def command_us(command: dict[int, bytes], tag: int, default: int | None = None) -> int | None:
    raw = command.get(tag)
    return struct.unpack("<H", raw[:2])[0] if raw and len(raw) >= 2 else default


def command_str(command: dict[int, bytes], tag: int) -> str | None:
    raw = command.get(tag)
    return raw.rstrip(b"\0 ").decode("ascii", "replace") if raw is not None else None


def store_rq(
    message_id: int,
    sop_class: str,
    sop_instance: str,
    priority: int = 0,
    move_originator: tuple[str, int] | None = None,
) -> bytes:
    elements: list[tuple[int, int | str]] = [
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
    elements: list[tuple[int, int | str]] = [
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
    # even, so that every PDV but an odd dataset's last is even (PS3.5 8.1) whatever the peer's limit
    room = max_pdu - 6
    return room & ~1 if room >= 2 else max(1, room)


def pdata_iovecs(
    context_id: int, data: bytes | bytearray | memoryview, command: bool, last: bool, fragment: int, out: list[Any]
) -> int:
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


def iter_pdvs(body: bytes | bytearray | memoryview) -> Iterator[tuple[int, int, memoryview]]:
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

    __slots__ = ("sop_class", "sop_instance", "transfer_syntax", "offset", "size")

    def __init__(self, sop_class: str, sop_instance: str, transfer_syntax: str, offset: int, size: int):
        self.sop_class = sop_class
        self.sop_instance = sop_instance
        self.transfer_syntax = transfer_syntax
        self.offset = offset
        self.size = size


class NotDicom(ValueError):
    """Raised by ``scan_dataset`` when the bytes do not parse as a dataset."""


def inflate_head(data: bytes, limit: int = 1 << 20) -> bytes:
    """The first bytes of a deflated dataset (raw deflate, PS3.5 A.5)."""
    try:
        return zlib.decompressobj(-15).decompress(data, limit)
    except zlib.error:
        return b""


_LONG_VRS = frozenset((b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV"))


def scan_dataset(
    data: bytes | bytearray | memoryview, ts: str, wanted: set[int], general: bool = False
) -> dict[int, bytes]:
    """Raw values of a few wanted top-level elements at the start of a received dataset.

    Used by the storage SCP on the first 64 kB of each instance, to name its
    folder (patient, study, series).  Unlike ``dcmtools.dicom.reader`` (which
    builds every element and item, about 0.4 ms for a small CT head) it only
    walks top-level elements, skips sequences without building them, and stops
    after the last wanted tag (about 0.02 ms).  Raises ``NotDicom`` when the
    bytes do not parse; returns what it found when ``data`` ends early.
    """
    if ts not in (IMPLICIT_LE, EXPLICIT_BE):
        if not general:
            return _scan_explicit_le(data, wanted)
        ts = EXPLICIT_LE
    scanner = _Scanner(data, ts)
    element = scanner.element
    last = max(wanted) if wanted else 0
    found: dict[int, bytes] = {}
    end = len(data)
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
                pos = scanner.skip_undefined(start)
                continue
            if tag in wanted:
                found[tag] = bytes(data[start : start + length])
            pos = start + length
    except (IndexError, struct.error):
        pass  # ran off the end of what we have: return what we found
    return found


class _Scanner:
    """The elements of a dataset in one transfer syntax, read where ``scan_dataset`` points."""

    def __init__(self, data: bytes | bytearray | memoryview, ts: str) -> None:
        endian = "<" if ts != EXPLICIT_BE else ">"
        self.data = data
        self.end = len(data)
        self.implicit = ts == IMPLICIT_LE
        self.hh = struct.Struct(endian + "HH")
        self.u16 = struct.Struct(endian + "H")
        self.u32 = struct.Struct(endian + "L")

    def element(self, pos: int) -> tuple[int, int, int, bool]:
        """(tag, value start, value length, is_sequence_like)"""
        data = self.data
        if pos + 8 > self.end:
            raise IndexError
        group, elem = self.hh.unpack_from(data, pos)
        tag = (group << 16) | elem
        if group == 0xFFFE or self.implicit:
            length = self.u32.unpack_from(data, pos + 4)[0]
            return tag, pos + 8, length, length == 0xFFFFFFFF
        vr = bytes(data[pos + 4 : pos + 6])
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            raise NotDicom("bad VR")
        if vr in _LONG_VRS:
            if pos + 12 > self.end:
                raise IndexError
            length = self.u32.unpack_from(data, pos + 8)[0]
            return tag, pos + 12, length, vr == b"SQ" or length == 0xFFFFFFFF
        return tag, pos + 8, self.u16.unpack_from(data, pos + 6)[0], False

    def skip_undefined(self, pos: int) -> int:
        """Skip items up to and including the sequence delimiter; return the position after it."""
        while True:
            tag, start, length, _ = self.element(pos)
            if tag == 0xFFFEE0DD:
                return start
            if tag != 0xFFFEE000:
                raise NotDicom("bad sequence item")
            if length != 0xFFFFFFFF:
                pos = start + length
                continue
            pos = start
            while True:  # elements of an undefined-length item, up to its delimiter
                tag, start, length, _ = self.element(pos)
                if tag == 0xFFFEE00D:
                    pos = start
                    break
                pos = self.skip_undefined(start) if length == 0xFFFFFFFF else start + length


_EXPLICIT_LE_HEAD = struct.Struct("<HH2sH")
_U32_LE = struct.Struct("<L")


def _scan_explicit_le(data: bytes | bytearray | memoryview, wanted: set[int]) -> dict[int, bytes]:
    """``scan_dataset`` for Explicit VR Little Endian (and the encapsulated syntaxes): the hot case."""
    head = _EXPLICIT_LE_HEAD.unpack_from
    u32 = _U32_LE.unpack_from
    long_vrs = _LONG_VRS
    last = max(wanted) if wanted else 0
    found: dict[int, bytes] = {}
    end = len(data)
    pos = 0
    try:
        while pos + 8 <= end:
            group, elem, vr, length = head(data, pos)
            tag = (group << 16) | elem
            if tag > last:
                break
            if vr in long_vrs:
                length = u32(data, pos + 8)[0]
                start = pos + 12
                if length == 0xFFFFFFFF:
                    # undefined length: let the general scanner skip the items from here
                    rest = scan_dataset(data[pos:], EXPLICIT_LE, wanted, general=True)
                    found.update(rest)
                    return found
            elif vr[0] < 65 or vr[0] > 90 or vr[1] < 65 or vr[1] > 90:
                raise NotDicom("bad VR")
            else:
                start = pos + 8
            if tag in wanted:
                found[tag] = bytes(data[start : start + length])
            pos = start + length
    except struct.error:
        pass
    return found


def file_meta_bytes(
    sop_class: str,
    sop_instance: str,
    transfer_syntax: str,
    implementation_uid: str,
    implementation_version: str | None = None,
    source_aet: str | None = None,
) -> bytes:
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
