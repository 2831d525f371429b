"""Values the user gives, checked against their VR and encoded in the file's character set."""

from __future__ import annotations

import datetime
import re
import struct
from typing import Any

from ..dicom.reader import Element
from ..dicom.tagpath import PathError, parse_path
from ..dicom.values import CHARSET_VRS, PYTHON_CODECS, SINGLE_VALUE_VRS, Charset
from ..stream.records import ErrorCode

SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
REFERENCED_SOP_CLASS_UID, REFERENCED_SOP_INSTANCE_UID = 0x00081150, 0x00081155
MEDIA_SOP_CLASS_UID, MEDIA_SOP_INSTANCE_UID = 0x00020002, 0x00020003
UNMATCHED = ErrorCode.UNMATCHED

# Elements holding a UID of each level, at any depth.  A Referenced SOP
# Instance UID is an instance unless its Referenced SOP Class is a study
# management class (Referenced Study Sequence): then it is the study's UID.
UID_LEVELS: dict[str, frozenset[int]] = {
    "study": frozenset({0x0020000D}),
    "series": frozenset({0x0020000E}),
    "instance": frozenset({SOP_INSTANCE_UID, REFERENCED_SOP_INSTANCE_UID, 0x00041511}),
    # 'all' adds frames of reference: Frame of Reference UID, Referenced and
    # Related Frame of Reference UID (RT), Synchronization Frame of Reference UID.
    "frame": frozenset({0x00200052, 0x30060024, 0x300600C2, 0x00200200}),
}
STUDY_CLASS_PREFIX = "1.2.840.10008.3.1.2.3."  # Detached Study Management and its relatives
LEVELS = ("study", "series", "instance", "all")

# Dates and times are checked by their form instead.
MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DS": 16, "IS": 12, "LO": 64, "LT": 10240, "SH": 16, "ST": 1024, "UI": 64}
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
INT_RANGES = {"US": (0, 0xFFFF), "SS": (-0x8000, 0x7FFF), "UL": (0, 0xFFFFFFFF), "SL": (-(2**31), 2**31 - 1),
              "SV": (-(2**63), 2**63 - 1), "UV": (0, 2**64 - 1)}  # fmt: skip
STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_TIME = re.compile(r"^(\d\d)((\d\d)((\d\d)(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^(\d{4})((\d\d)((\d\d)((\d\d)((\d\d)((\d\d)(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")


class EditError(ValueError):
    """An edit that cannot be done at all (bad path, value, mapping table): said before any file is written."""


# ---------------------------------------------------------------- values
def check_value(text: str, vr: str) -> None:
    """Raise ``ValueError`` when ``text`` (backslash-separated values) is not valid for ``vr``."""
    if vr in ("SQ", "OB", "OD", "OF", "OL", "OV", "OW", "UN"):
        raise ValueError(f"a {vr} value cannot be given as text")
    parts = [text] if vr in SINGLE_VALUE_VRS else text.split("\\")
    for part in parts:
        _check_one(part, vr)


def _check_one(value: str, vr: str) -> None:
    limit = MAX_LENGTH.get(vr)
    if vr == "PN":
        if any(len(group) > 64 for group in value.split("=")):
            raise ValueError(f"{value!r} is longer than 64 characters per name (PN)")
        return
    if limit is not None and len(value) > limit:
        raise ValueError(f"{value!r} is longer than {limit} characters ({vr})")
    if vr in STRING_VRS and vr not in CHARSET_VRS and vr != "UR" and not value.isascii():
        raise ValueError(f"{value!r}: {vr} holds ASCII characters only")
    if value == "" and vr in STRING_VRS:
        return  # an empty value (Type 2)
    if vr == "DA":
        try:
            datetime.datetime.strptime(value, "%Y%m%d") if len(value) == 8 and value.isdigit() else _fail()
        except ValueError:
            raise ValueError(f"{value!r} is not a date (DA: YYYYMMDD, e.g. 20240131)") from None
    elif vr == "TM":
        m = _TIME.match(value)
        if not m or int(m[1]) > 23 or (m[3] and int(m[3]) > 59) or (m[5] and int(m[5]) > 60):
            raise ValueError(f"{value!r} is not a time (TM: HHMMSS.FFFFFF, e.g. 143000)")
    elif vr == "DT":
        m = _DT.match(value)
        if (
            m is None
            or (m[3] and not 1 <= int(m[3]) <= 12)
            or (m[5] and not 1 <= int(m[5]) <= 31)
            or (m[7] and int(m[7]) > 23)
            or (m[9] and int(m[9]) > 59)
            or (m[11] and int(m[11]) > 60)
        ):
            raise ValueError(f"{value!r} is not a date-time (DT: YYYYMMDDHHMMSS.FFFFFF&ZZXX)")
    elif vr == "IS":
        if not re.fullmatch(r"\s*[+-]?\d+\s*", value) or not -(2**31) <= int(value) < 2**31:
            raise ValueError(f"{value!r} is not an integer string (IS)")
    elif vr == "DS":
        if not re.fullmatch(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", value):
            raise ValueError(f"{value!r} is not a decimal string (DS)")
    elif vr == "UI":
        if not _UID.match(value):
            raise ValueError(f"{value!r} is not a UID (digits and dots, no leading zeros, e.g. 1.2.840.10008)")
    elif vr == "AS":
        if not re.fullmatch(r"\d{3}[DWMY]", value):
            raise ValueError(f"{value!r} is not an age (AS: nnnD, nnnW, nnnM or nnnY, e.g. 045Y)")
    elif vr == "CS":
        if not re.fullmatch(r"[A-Z0-9 _]*", value):
            raise ValueError(f"{value!r} is not a code string (CS: upper-case letters, digits, space, _)")
    elif vr in INT_RANGES:
        low, high = INT_RANGES[vr]
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer ({vr})") from None
        if not low <= number <= high:
            raise ValueError(f"{value} is out of range for {vr} ({low} to {high})")
    elif vr in ("FL", "FD"):
        try:
            float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number ({vr})") from None
    elif vr == "AT":
        try:
            _tag_value(value)
        except PathError as exc:
            raise ValueError(str(exc)) from None


def _fail() -> None:
    raise ValueError


def _tag_value(text: str) -> int:
    steps = parse_path(text)
    if len(steps) != 1:
        raise PathError(f"{text!r} is not one tag")
    return steps[0].tag


def encode_value(text: str, vr: str, charset: Charset, little: bool) -> bytes:
    """The raw bytes of ``text`` as a value of ``vr`` (``ValueError`` when it cannot be)."""
    check_value(text, vr)
    if vr in NUMBER_FORMATS or vr == "AT":
        if text == "":
            return b""
        end = "<" if little else ">"
        parts = text.split("\\")
        if vr == "AT":
            return b"".join(struct.pack(end + "HH", t >> 16, t & 0xFFFF) for t in map(_tag_value, parts))
        fmt = NUMBER_FORMATS[vr]
        convert = float if vr in ("FL", "FD") else int
        return struct.pack(end + fmt * len(parts), *(convert(p) for p in parts))
    return encode_text(text, vr, charset)


def encode_text(text: str, vr: str, charset: Charset) -> bytes:
    """A string value in ``charset`` (``ValueError`` when the set cannot hold it)."""
    if text.isascii():
        return text.encode("ascii")
    if vr not in CHARSET_VRS and vr != "UR":
        raise ValueError(f"{text!r}: {vr} holds ASCII characters only")
    if charset.extended:
        from pydicom import charset as pydicom_charset  # only for code extensions

        return pydicom_charset.encode_string(text, pydicom_charset.convert_encodings(charset.terms))
    term = charset.terms[0] if charset.terms else ""
    try:
        return text.encode(PYTHON_CODECS.get(term, "ascii") if term else "ascii")
    except UnicodeEncodeError:
        shown = term or "the default repertoire (ASCII)"
        raise ValueError(
            f"{text!r} cannot be written in the file's character set {shown} (add `charset` utf8)"
        ) from None


def decode_strict(raw: bytes, vr: str, charset: Charset) -> str:
    """A text value decoded with ``charset``; ``ValueError`` when its bytes do not belong to it."""
    if raw.isascii() and 0x1B not in raw:
        return raw.decode("ascii")
    if charset.extended:
        import warnings

        from pydicom import charset as pydicom_charset

        delimiters = {0x0D, 0x0A, 0x09, 0x0C, 0x5C} | ({0x5E, 0x3D} if vr == "PN" else set())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pydicom warns (and replaces) where it cannot decode
            try:
                return pydicom_charset.decode_bytes(raw, pydicom_charset.convert_encodings(charset.terms), delimiters)
            except (UnicodeError, Warning, LookupError) as exc:
                raise ValueError(f"bytes not in {'/'.join(charset.terms)}: {exc}") from None
    term = charset.terms[0] if charset.terms else ""
    codec = PYTHON_CODECS.get(term)
    if codec is None:
        raise ValueError(f"unknown Specific Character Set {term!r}")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"byte {raw[exc.start]:#04x} is not a character of {term or 'the default repertoire (ASCII)'}"
        ) from None


def shown(element: Element | None, charset: Charset, little: bool) -> Any:
    """An element's value for a change record: text, numbers, '<sequence of N items>' or None."""
    if element is None:
        return None
    if element.items is not None:
        return f"<sequence of {len(element.items)} items>"
    if element.value is None:
        return f"<{element.length} bytes>"
    vr = element.vr
    if vr in STRING_VRS:
        return charset.decode(element.value, vr).rstrip(" \0")
    if vr in NUMBER_FORMATS and element.value:
        size = struct.calcsize(NUMBER_FORMATS[vr])
        count = len(element.value) // size
        values = struct.unpack(("<" if little else ">") + NUMBER_FORMATS[vr] * count, element.value[: count * size])
        return "\\".join(str(v) for v in values)
    return f"<{len(element.value)} bytes>"
