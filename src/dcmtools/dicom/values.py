"""Element values as Python values, per VR, with the dataset's character set.

Works on the raw elements of ``dcmtools.dicom.reader``.  Text VRs are decoded with
the Specific Character Set; single-byte sets and UTF-8 are decoded here, code
extensions (ISO 2022) through pydicom's charset module, imported only then.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from typing import Any

from .reader import Dataset, Element

SPECIFIC_CHARACTER_SET = 0x00080005

STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
# One value only: a backslash is text, not a separator.
SINGLE_VALUE_VRS = frozenset(("LT", "ST", "UT", "UR"))
# Decoded with the Specific Character Set; the others are ASCII by definition.
CHARSET_VRS = frozenset(("LO", "LT", "PN", "SH", "ST", "UC", "UT"))
# Leading spaces are significant only in these (PS3.5 6.2).
KEEP_LEADING_SPACES = frozenset(("LT", "ST", "UT", "UR"))
BINARY_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
BULK_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "UN"))
# Bytes per word, for swapping big endian bulk data to little endian.
WORD_SIZE = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}

# DICOM defined terms to Python codecs for character sets without code extensions.
PYTHON_CODECS = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 203": "iso8859_15",
    "ISO_IR 13": "shift_jis",
    "ISO_IR 166": "tis_620",
    "ISO_IR 192": "utf_8",
    "GB18030": "gb18030",
    "GBK": "gbk",
}


TEXT_DELIMITERS = frozenset({0x0D, 0x0A, 0x09, 0x0C, 0x5C})  # CR LF TAB FF backslash


class BadValue(ValueError):
    """One element's value cannot be converted; the rest of the file can."""


class Charset:
    """The Specific Character Set in force for a dataset (and its items)."""

    __slots__ = ("terms", "codec", "extended")

    def __init__(self, terms: list[str] | None = None):
        self.terms = [t.strip() for t in (terms or [""])]
        first = self.terms[0] if self.terms else ""
        self.extended = len(self.terms) > 1 or first.startswith("ISO 2022")
        self.codec = PYTHON_CODECS.get(first, "latin_1")

    @classmethod
    def of(cls, ds: Dataset, inherited: Charset | None = None) -> Charset:
        """The character set of ``ds``: its own (0008,0005), else the inherited one."""
        element = ds.get(SPECIFIC_CHARACTER_SET)
        if element is None or element.value is None:
            return inherited or DEFAULT_CHARSET
        terms = element.value.decode("latin-1").rstrip(" \0").split("\\")
        return cls(terms)

    def decode(self, raw: bytes, vr: str) -> str:
        if raw.isascii() and 0x1B not in raw:
            return raw.decode("ascii")
        if vr not in CHARSET_VRS:
            return raw.decode("latin-1")
        if self.extended:
            return _decode_iso2022(raw, self.terms, vr)
        try:
            return raw.decode(self.codec)
        except UnicodeDecodeError:
            # A value that does not match its declared set: keep every byte.
            return raw.decode("latin-1")


DEFAULT_CHARSET = Charset()


def _decode_iso2022(raw: bytes, terms: list[str], vr: str) -> str:
    from pydicom import charset as pydicom_charset  # only for code extensions

    encodings = pydicom_charset.convert_encodings(terms)
    # Escape sequences reset at value delimiters, and in PN also at component
    # and group delimiters ('^', '=').
    delimiters = set(TEXT_DELIMITERS) | ({0x5E, 0x3D} if vr == "PN" else set())
    return pydicom_charset.decode_bytes(raw, encodings, delimiters)


def strip_value(text: str, vr: str) -> str:
    """Remove the padding that is not part of a value (PS3.5 6.2)."""
    if vr == "UI":
        return text.rstrip("\0 ").lstrip(" ")
    if vr in KEEP_LEADING_SPACES:
        return text.rstrip(" \0")
    return text.strip(" \0")


def string_values(element: Element, charset: Charset) -> list[str | None]:
    """The values of a string VR, '' / missing components as None."""
    raw = element.value or b""
    text = charset.decode(raw, element.vr)
    if element.vr in SINGLE_VALUE_VRS:
        text = strip_value(text, element.vr)
        return [text] if text else []
    parts = [strip_value(part, element.vr) for part in text.split("\\")]
    if len(parts) == 1 and not parts[0]:
        return []
    return [part if part else None for part in parts]


def number_value(text: str, vr: str) -> int | float:
    """An IS or DS string as a number; BadValue when it is not one."""
    try:
        if vr == "IS":
            return int(text)
        if not any(c in text for c in ".eE") and text.strip("+-").isdigit():
            return int(text)
        value = float(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a valid {vr} number") from None
    if not math.isfinite(value):
        raise BadValue(f"{text!r} is not a finite {vr} number")
    return value


def binary_numbers(element: Element, little: bool) -> list[int | float | str]:
    """The values of a binary numeric VR (US, SS, UL, SL, FL, FD, SV, UV)."""
    raw = element.value or b""
    unpack = _unpacker(element.vr, little, len(raw))
    if unpack is None:
        size = struct.calcsize(BINARY_NUMBER_FORMATS[element.vr])
        raise BadValue(f"{len(raw)} bytes is not a whole number of {element.vr} values ({size} bytes each)")
    values = list(unpack(raw))
    if element.vr == "FL":
        values = [shortest_float32(v) for v in values]
    if element.vr in ("FL", "FD"):
        # JSON has no NaN or infinity: write them as the strings PS3.18 uses.
        return [
            v if math.isfinite(v) else ("NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")) for v in values
        ]
    return values


Unpack = Callable[[bytes], tuple[Any, ...]]
_unpackers: dict[tuple[str, bool, int], Unpack] = {}


def _unpacker(vr: str, little: bool, length: int) -> Unpack | None:
    """A cached ``Struct.unpack`` for ``length`` bytes of ``vr`` values, None if not a whole number."""
    key = (vr, little, length)
    unpack = _unpackers.get(key)
    if unpack is None:
        code = BINARY_NUMBER_FORMATS[vr]
        size = struct.calcsize(code)
        if length % size:
            return None
        unpack = struct.Struct(f"{'<' if little else '>'}{length // size}{code}").unpack
        if len(_unpackers) < 10_000:
            _unpackers[key] = unpack
    return unpack


def shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same 32-bit float.

    An FL value widened to a Python float prints as -77.20406341552734; the
    value stored was -77.20406.  (DCMTK prints 9 significant digits.)
    """
    if not math.isfinite(value):
        return value
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return candidate
    return value


def tag_values(element: Element, little: bool) -> list[str]:
    """AT values as 'GGGGEEEE'."""
    raw = element.value or b""
    if len(raw) % 4:
        raise BadValue(f"{len(raw)} bytes is not a whole number of AT values")
    words = struct.unpack(f"{'<' if little else '>'}{len(raw) // 2}H", raw)
    return [f"{words[i]:04X}{words[i + 1]:04X}" for i in range(0, len(words), 2)]


def little_endian_bytes(element: Element, little: bool) -> bytes:
    """Bulk data bytes in little endian order (the order of the JSON model)."""
    raw = element.value or b""
    size = WORD_SIZE.get(element.vr)
    if little or not size or len(raw) % size:
        return raw
    # Reverse each word of ``size`` bytes.
    import array

    code = {2: "H", 4: "I", 8: "Q"}[size]
    words = array.array(code, raw)
    words.byteswap()
    return words.tobytes()


def inline_binary(element: Element, little: bool) -> str:
    return base64.b64encode(little_endian_bytes(element, little)).decode("ascii")


def person_name(text: str) -> dict[str, str]:
    """A PN value as the JSON model's object of component groups."""
    groups = text.split("=")
    name: dict[str, str] = {}
    for key, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        # Trailing empty components carry nothing: 'DOE^^^' is 'DOE' (DCMTK agrees).
        group = group.rstrip(" ^")
        if group:
            name[key] = group
    return name


def python_values(element: Element, ds: Dataset, charset: Charset) -> list[Any]:
    """The values of a non-sequence, non-bulk element as plain Python values."""
    vr = element.vr
    if vr in STRING_VRS:
        values = string_values(element, charset)
        if vr in ("IS", "DS"):
            return [None if v is None else number_value(v, vr) for v in values]
        return values
    if vr in BINARY_NUMBER_FORMATS:
        return binary_numbers(element, ds.little)
    if vr == "AT":
        return tag_values(element, ds.little)
    raise BadValue(f"no value conversion for VR {vr!r}")
