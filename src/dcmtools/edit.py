"""Changing attributes of DICOM files in bulk: set, erase, a mapping table, new UIDs, UTF-8.

The library behind ``dcmtools edit`` (and, later, ``migrate --edit``):

    from dcmtools.edit import Editor, parse_assignment, load_map

    editor = Editor(sets=[parse_assignment("InstitutionName=North Clinic")],
                    erase=[parse_path("OtherPatientIDs")], new_uids="all", key="team secret")
    record = editor.edit_file("in.dcm", "out.dcm")        # a record, never raises for bad input
    data, changes = editor.edit_bytes(raw)                 # a file held in memory
    changes = editor.edit(dicomfile.read("in.dcm"))        # a DicomFile, in place

Everything the user gives (paths, values, the mapping table) is checked when
the ``Editor`` is built, so a typo is one error before any file is written
(``EditError``).  Per file, a value that its VR or character set cannot hold
is a ``bad_value`` record and the file is left alone.

Files are read with ``dcmtools.dicom.reader`` and written with
``dcmtools.dicom.writer``: elements that are not edited keep their bytes, pixel
data is copied by offset and never decoded.

New UIDs (``new_uids``) come from ``dcmtools.deid.keys.Key.uid`` (HMAC-SHA256
of the old UID under the key): the same old UID always becomes the same new
one, in every file, run and machine with the same key, so references between
files (Referenced SOP Instance UID, frames of reference) stay in step without
a table.  Which elements hold a UID of each level is in ``UID_LEVELS``.
"""

from __future__ import annotations

import csv
import datetime
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .dicom import dictionary as datadict
from .dicom.reader import Dataset, DicomFile, Element
from .stream.records import DcmtoolsError, ErrorCode, error_record
from .dicom.tagpath import PathError, Step, parse_path
from .dicom.values import CHARSET_VRS, PYTHON_CODECS, SINGLE_VALUE_VRS, Charset

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
        bad = not m or (m[3] and not 1 <= int(m[3]) <= 12) or (m[5] and not 1 <= int(m[5]) <= 31)
        # bad is true when m is None, so m is a match from here on.
        if bad or (m[7] and int(m[7]) > 23) or (m[9] and int(m[9]) > 59) or (m[11] and int(m[11]) > 60):  # type: ignore[index]
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
        raise ValueError(f"{text!r} cannot be written in the file's character set {shown} (add --charset utf8)") from None


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
        raise ValueError(f"byte {raw[exc.start]:#04x} is not a character of {term or 'the default repertoire (ASCII)'}") from None


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


# ---------------------------------------------------------------- what to edit
@dataclass(frozen=True)
class Assignment:
    """One ``PATH=VALUE`` (or a bare PATH for erase), parsed and checked."""

    text: str
    steps: tuple[Step, ...]
    value: str | None = None
    vr: str | None = None  # from the dictionary; None for private and unknown tags (taken from the file)


def _dictionary_vr(tag: int) -> str | None:
    if tag >> 16 & 1:
        return None  # private: the VR is the file's
    entry = datadict.lookup(tag)
    if entry is None:
        return None
    vr = entry.vr
    return vr.split(" or ")[0] if " or " in vr else vr


def parse_assignment(text: str, *, erase: bool = False) -> Assignment:
    """``'Seq[*].Keyword=VALUE'`` -> ``Assignment``; ``EditError`` for a bad path or value."""
    if erase:
        path, value = text, None
    else:
        path, sep, value = text.partition("=")
        if not sep:
            raise EditError(f"{text!r} has no '=VALUE' (write PATH=VALUE; PATH= sets an empty value)")
    try:
        steps = parse_path(path)
    except PathError as exc:
        raise EditError(str(exc)) from None
    for step in steps[:-1]:
        if _dictionary_vr(step.tag) not in ("SQ", None):
            raise EditError(f"{path!r}: {step} is not a sequence")
    vr = _dictionary_vr(steps[-1].tag)
    if not erase:
        if vr == "SQ":
            raise EditError(f"{path!r} is a sequence: set an element inside its items (e.g. {path}[0].Keyword=...)")
        if steps[-1].index is not None:
            raise EditError(f"{path!r}: a value cannot be set on a sequence item (name an element inside it)")
        if vr is not None:
            try:
                check_value(value or "", vr)
            except ValueError as exc:
                raise EditError(f"{path}: {exc}") from None
    return Assignment(text, steps, value, vr)


def _step_text(step: Step, index: int | None = None) -> str:
    name = datadict.keyword_of(step.tag) or datadict.format_tag(step.tag)
    return name if index is None else f"{name}[{index}]"


@dataclass
class MapTable:
    """The rows of a ``--map`` CSV by the value of its key column."""

    path: str
    match: int  # the tag matched in each file
    column: str  # the CSV column holding the key
    columns: list[tuple[str, Assignment]]  # column -> what it sets (value filled per row)
    rows: dict[str, dict[str, str]]

    def assignments(self, key: str) -> list[Assignment] | None:
        row = self.rows.get(key)
        if row is None:
            return None
        # An empty cell leaves the attribute as it is (spreadsheets leave gaps).
        return [Assignment(a.text, a.steps, row[c], a.vr) for c, a in self.columns if row.get(c, "") != ""]


def load_map(path: str, match: str) -> MapTable:
    """Read and check a mapping CSV: ``match`` is ``KEYWORD`` (the column of that name) or ``KEYWORD=COLUMN``.

    Every other column names an attribute to set (a PATH). ``EditError`` for
    a missing key column, an unknown column name, a duplicate key or a value
    its VR cannot hold, with the line and column.
    """
    keyword, _, column = match.partition("=")
    column = column or keyword
    try:
        steps = parse_path(keyword)
    except PathError as exc:
        raise EditError(f"--match: {exc}") from None
    if len(steps) != 1:
        raise EditError(f"--match {keyword!r}: name one top-level attribute (e.g. PatientID)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(4096)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(f, dialect)
            header = next(reader, None)
            if not header:
                raise EditError(f"{path} is empty: it needs a header line naming {column!r} and the attributes to set")
            header = [h.strip() for h in header]
            if column not in header:
                raise EditError(f"{path} has no column {column!r} (its columns: {', '.join(header)}); "
                                "name the key column with --match KEYWORD=COLUMN")  # fmt: skip
            columns: list[tuple[str, Assignment]] = []
            for name in header:
                if name == column:
                    continue
                if name in [c for c, _ in columns]:
                    raise EditError(f"{path}: column {name!r} appears twice")
                try:
                    columns.append((name, parse_assignment(name + "=")))
                except EditError as exc:
                    raise EditError(f"{path}: column {name!r}: {exc}") from None
            if not columns:
                raise EditError(f"{path} has no column to set besides {column!r}")
            rows: dict[str, dict[str, str]] = {}
            lines: dict[str, int] = {}
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise EditError(f"{path} line {line}: {len(row)} cells, the header has {len(header)}")
                cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
                key = cells[column]
                if key == "":
                    raise EditError(f"{path} line {line}: the key column {column!r} is empty")
                if key in rows:
                    raise EditError(f"{path} line {line}: key {key!r} is already on line {lines[key]} "
                                    "(one row per key)")  # fmt: skip
                for name, assignment in columns:
                    if assignment.vr is not None and cells[name] != "":
                        try:
                            check_value(cells[name], assignment.vr)
                        except ValueError as exc:
                            raise EditError(f"{path} line {line}, column {name}: {exc}") from None
                rows[key] = cells
                lines[key] = line
    except OSError as exc:
        raise EditError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EditError(f"{path} is not a UTF-8 CSV file: {exc}") from None
    return MapTable(path, steps[0].tag, column, columns, rows)


# ---------------------------------------------------------------- the editor
@dataclass
class Change:
    """One element changed: where, before and after (None: absent)."""

    path: str
    tag: int
    old: Any
    new: Any

    def record(self, file: str) -> dict[str, Any]:
        return {"type": "change", "path": file, "element": self.path, "tag": datadict.format_tag(self.tag),
                "old": self.old, "new": self.new}  # fmt: skip


@dataclass
class Outcome:
    """What editing one dataset did."""

    changes: list[Change] = field(default_factory=list)
    unmatched: str | None = None  # the key value no map row matched
    warnings: list[str] = field(default_factory=list)


class _FileEdit:
    """The edits of one file, applied to its datasets in place."""

    def __init__(self, editor: "Editor", dicom: DicomFile) -> None:
        self.editor = editor
        self.dicom = dicom
        self.ds = dicom.dataset
        self.little = self.ds.little
        self.outcome = Outcome()

    def change(self, path: str, tag: int, old: Element | None, new: Element | None, charset: Charset) -> None:
        self.outcome.changes.append(Change(path, tag, shown(old, charset, self.little), shown(new, charset, self.little)))

    # -- paths
    def apply(self, ds: Dataset, steps: tuple[Step, ...], action: str, a: Assignment, charset: Charset, prefix: str) -> None:
        step, rest = steps[0], steps[1:]
        charset = Charset.of(ds, charset)
        element = ds.get(step.tag)
        if not rest:
            if action == "erase":
                if element is None:
                    return
                if step.index is not None and element.items is not None:
                    if step.index < len(element.items):
                        del element.items[step.index]
                        self.outcome.changes.append(Change(prefix + _step_text(step, step.index), step.tag, "<item>", None))
                    return
                del ds[step.tag]
                self.change(prefix + _step_text(step), step.tag, element, None, charset)
                return
            if action == "set_existing" and element is None:
                return
            self.set_value(ds, step.tag, a, element, charset, prefix + _step_text(step))
            return
        if element is None or element.items is None:
            if action != "set" or step.index is None:
                return  # nothing to change inside a sequence that is not there
            if element is not None and (element.value or element.length):
                raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{prefix}{_step_text(step)} is not a sequence in this file")
            element = Element(step.tag, "SQ", 0, None, None, [], True)
            ds[step.tag] = element
            self.change(prefix + _step_text(step), step.tag, None, element, charset)
        items = element.items
        assert items is not None
        if step.index is None:
            numbers = range(len(items))
        else:
            if step.index >= len(items):
                if action != "set":
                    return
                while len(items) <= step.index:  # as dcmodify: the missing items are created
                    items.append(Dataset(ds.little, ds.implicit))
            numbers = range(step.index, step.index + 1)
        for number in numbers:
            self.apply(items[number], rest, action, a, charset, f"{prefix}{_step_text(step, number)}.")

    def set_value(self, ds: Dataset, tag: int, a: Assignment, old: Element | None, charset: Charset, path: str) -> None:
        vr = a.vr
        if vr is None:
            if old is None or old.vr in ("UN", "", None):
                raise DcmtoolsError(
                    ErrorCode.BAD_VALUE,
                    f"{path}: the VR of this private or unknown element is not known here, so it cannot be "
                    "written from text" + ("" if old is None else " (it is UN in the file)"),
                    "set an element that the file holds with a known VR",
                )
            vr = old.vr
        elif old is not None and old.vr and old.vr != vr and old.vr != "UN":
            vr = old.vr  # ambiguous dictionary VRs (US or SS): the file's
        if vr == "SQ":
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{path} is a sequence: set an element inside one of its items")
        value = a.value or ""
        if tag == SPECIFIC_CHARACTER_SET:
            charset = Charset(value.split("\\"))
        try:
            raw = encode_value(value, vr, charset, ds.little)
        except ValueError as exc:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{path}: {exc}") from None
        if old is not None and old.value is not None and _same(old.value, raw, vr):
            return
        new = Element(tag, vr, len(raw), raw, None)
        ds[tag] = new
        self.change(path, tag, old, new, charset)

    # -- the kinds of edit
    def erase_private(self, ds: Dataset, charset: Charset, prefix: str) -> None:
        charset = Charset.of(ds, charset)
        for tag in list(ds):
            element = ds[tag]
            if tag >> 16 & 1:
                del ds[tag]
                self.change(prefix + datadict.format_tag(tag), tag, element, None, charset)
            elif element.items:
                for number, item in enumerate(element.items):
                    self.erase_private(item, charset, f"{prefix}{_step_text(Step(tag), number)}.")

    def new_uids(self, ds: Dataset, tags: frozenset[int], charset: Charset, prefix: str) -> None:
        key = self.editor.key
        assert key is not None
        study_level = 0x0020000D in tags
        for tag, element in list(ds.items()):
            if element.items:
                for number, item in enumerate(element.items):
                    self.new_uids(item, tags, charset, f"{prefix}{_step_text(Step(tag), number)}.")
                continue
            if not element.value:
                continue
            if tag == REFERENCED_SOP_INSTANCE_UID:
                # A study management reference (Referenced Study Sequence) carries a study's UID.
                is_study = (ds.text(REFERENCED_SOP_CLASS_UID) or "").startswith(STUDY_CLASS_PREFIX)
                if not (study_level if is_study else SOP_INSTANCE_UID in tags):
                    continue
            elif tag not in tags:
                continue
            old = element.value.decode("ascii", "replace").rstrip("\0 ")
            values = [key.uid(v) if v.strip() else v for v in old.split("\\")]
            raw = "\\".join(values).encode("ascii")
            ds[tag] = Element(tag, "UI", len(raw), raw, None)
            self.change(prefix + _step_text(Step(tag)), tag, element, ds[tag], charset)

    def to_utf8(self, ds: Dataset, charset: Charset, prefix: str, top: bool) -> None:
        charset = Charset.of(ds, charset)
        for tag, element in list(ds.items()):
            if element.items:
                for number, item in enumerate(element.items):
                    self.to_utf8(item, charset, f"{prefix}{_step_text(Step(tag), number)}.", False)
                continue
            if element.vr not in CHARSET_VRS or not element.value:
                continue
            raw = element.value
            try:
                text = decode_strict(raw, element.vr, charset)
            except ValueError as exc:
                declared = "\\".join(charset.terms) or "none (ASCII)"
                raise DcmtoolsError(
                    ErrorCode.BAD_VALUE,
                    f"{prefix}{_step_text(Step(tag))}: the value cannot be decoded with the file's Specific "
                    f"Character Set ({declared}): {exc}; the file is left as it was",
                    "correct the Specific Character Set first (--set SpecificCharacterSet=...), then convert",
                ) from None
            new_raw = text.encode("utf-8")
            if new_raw != raw:
                ds[tag] = Element(tag, element.vr, len(new_raw), new_raw, None)
                self.change(prefix + _step_text(Step(tag)), tag, element, ds[tag], UTF8)
        old = ds.get(SPECIFIC_CHARACTER_SET)
        if top or old is not None:
            if old is None or old.value is None or old.value.rstrip(b" \0") != b"ISO_IR 192":
                new = Element(SPECIFIC_CHARACTER_SET, "CS", 10, b"ISO_IR 192", None)
                ds[SPECIFIC_CHARACTER_SET] = new
                self.change(prefix + "SpecificCharacterSet", SPECIFIC_CHARACTER_SET, old, new, UTF8)

    def meta(self) -> None:
        """The file meta follows the dataset's SOP Class and Instance UIDs (as dcmodify does)."""
        meta = self.dicom.meta
        if not meta:
            return
        for ds_tag, meta_tag in ((SOP_CLASS_UID, MEDIA_SOP_CLASS_UID), (SOP_INSTANCE_UID, MEDIA_SOP_INSTANCE_UID)):
            value = self.ds.get(ds_tag)
            old = meta.get(meta_tag)
            if value is None or value.value is None:
                continue
            if old is not None and old.value is not None and old.value.rstrip(b"\0 ") == value.value.rstrip(b"\0 "):
                continue
            meta[meta_tag] = Element(meta_tag, "UI", len(value.value), value.value, None)
            self.change("meta." + datadict.keyword_of(meta_tag), meta_tag, old, meta[meta_tag], Charset())


UTF8 = Charset(["ISO_IR 192"])


def _same(old: bytes, new: bytes, vr: str) -> bool:
    if vr in NUMBER_FORMATS or vr == "AT":
        return old == new
    pad = b"\0 " if vr == "UI" else b" \0"
    return old.rstrip(pad) == new.rstrip(pad)


def _drop_group_lengths(ds: Dataset) -> None:
    """Group lengths (gggg,0000; retired) would be wrong after an edit: they go, and so does
    Data Set Trailing Padding (FFFC,FFFC), which has no meaning (DCMTK drops it too)."""
    for tag in [t for t in ds if t & 0xFFFF == 0 or t == 0xFFFCFFFC]:
        del ds[tag]
    for element in ds.values():
        for item in element.items or ():
            _drop_group_lengths(item)


class Editor:
    """One set of edits, for any number of files, byte strings or ``DicomFile``s.

    ``sets``, ``set_existing``: ``Assignment``s (``parse_assignment``);
    ``erase``: paths (``parse_assignment(p, erase=True)``); ``mapping``: a
    ``MapTable`` (``load_map``); ``new_uids``: 'study', 'series', 'instance'
    or 'all' with ``key`` (a ``deid.keys.Key``, bytes or str); ``charset``:
    'utf8' or None.  Order of application: character set, new UIDs, erase
    private, erase, set, set-existing, the map's row.
    """

    def __init__(
        self,
        *,
        sets: Iterable[Assignment] = (),
        set_existing: Iterable[Assignment] = (),
        erase: Iterable[Assignment] = (),
        erase_private: bool = False,
        mapping: MapTable | None = None,
        require_match: bool = False,
        new_uids: str | None = None,
        key: Any = None,
        charset: str | None = None,
    ) -> None:
        from .deid.keys import Key

        self.sets = [a if isinstance(a, Assignment) else parse_assignment(a) for a in sets]
        self.set_existing = [a if isinstance(a, Assignment) else parse_assignment(a) for a in set_existing]
        self.erase = [a if isinstance(a, Assignment) else parse_assignment(a, erase=True) for a in erase]
        self.erase_private = erase_private
        self.mapping = mapping
        self.require_match = require_match
        if new_uids is not None and new_uids not in LEVELS:
            raise EditError(f"--new-uids {new_uids!r}: choose one of {', '.join(LEVELS)}")
        self.new_uids = new_uids
        if new_uids is not None:
            self.key: Key | None = key if isinstance(key, Key) else (Key(key) if key is not None else Key.random())
        else:
            self.key = None
        self.uid_tags = self._uid_tags(new_uids)
        if charset not in (None, "utf8"):
            raise EditError(f"--charset {charset!r}: only utf8 is supported")
        self.charset = charset

    @staticmethod
    def _uid_tags(level: str | None) -> frozenset[int]:
        if level is None:
            return frozenset()
        if level == "all":
            return frozenset().union(*UID_LEVELS.values())
        return UID_LEVELS[level]

    @property
    def does_nothing(self) -> bool:
        return not (self.sets or self.set_existing or self.erase or self.erase_private or self.mapping
                    or self.new_uids or self.charset)  # fmt: skip

    # ------------------------------------------------------------ datasets
    def edit(self, dicom: DicomFile) -> Outcome:
        """Apply the edits to a ``DicomFile`` (meta and dataset) in place.

        Raises ``DcmtoolsError`` (``bad_value``, ``unmatched``) when the file
        cannot be edited as asked; the ``DicomFile`` may then be half-edited:
        do not write it.
        """
        work = _FileEdit(self, dicom)
        ds = dicom.dataset
        top = Charset.of(ds)
        assignments: list[Assignment] = []
        if self.mapping is not None:
            element = ds.get(self.mapping.match)
            key = None
            if element is not None and element.value is not None:
                key = top.decode(element.value, element.vr).strip(" \0")
            found = self.mapping.assignments(key) if key is not None else None
            if found is None:
                name = datadict.keyword_of(self.mapping.match) or datadict.format_tag(self.mapping.match)
                shown_key = "absent" if key is None else repr(key)
                if self.require_match:
                    raise DcmtoolsError(
                        UNMATCHED,
                        f"no row of {self.mapping.path} matches this file's {name} ({shown_key}); the file is not written",
                        f"add a row for it, or drop --require-match to pass such files with the other edits only",
                    )
                work.outcome.unmatched = key if key is not None else ""
                work.outcome.warnings.append(f"no row of {self.mapping.path} matches {name} {shown_key}")
            else:
                assignments = found
        if self.charset == "utf8":
            work.to_utf8(ds, top, "", True)
            top = UTF8
        if self.uid_tags:
            work.new_uids(ds, self.uid_tags, top, "")
            if dicom.meta and SOP_INSTANCE_UID not in ds and MEDIA_SOP_INSTANCE_UID in dicom.meta and SOP_INSTANCE_UID in self.uid_tags:
                work.new_uids(dicom.meta, frozenset({MEDIA_SOP_INSTANCE_UID}), top, "meta.")
        if self.erase_private:
            work.erase_private(ds, top, "")
        for a in self.erase:
            work.apply(ds, a.steps, "erase", a, top, "")
        for a in self.sets:
            work.apply(ds, a.steps, "set", a, top, "")
        for a in self.set_existing:
            work.apply(ds, a.steps, "set_existing", a, top, "")
        for a in assignments:
            work.apply(ds, a.steps, "set", a, top, "")
        if work.outcome.changes:
            work.meta()
            _drop_group_lengths(ds)
        return work.outcome

    def edit_bytes(self, data: bytes) -> tuple[bytes, Outcome]:
        """Edit a DICOM file (or bare dataset) held in memory; returns the new bytes."""
        import io

        from .dicom.reader import read_bytes
        from .dicom.writer import Bulk, write

        dicom = read_bytes(data)
        if dicom.deflated:
            dicom = read_bytes(data, bulk_threshold=1 << 62)
        outcome = self.edit(dicom)
        out = io.BytesIO()
        write(out, dicom.meta or None, dicom.dataset, Bulk(buffer=data), deflated=dicom.deflated)
        return out.getvalue(), outcome

    # ------------------------------------------------------------ files
    def edit_file(
        self,
        path: str,
        out: str | None = None,
        *,
        in_place: bool = False,
        backup: bool = True,
        overwrite: bool = False,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Edit ``path`` into ``out`` (or in place); the records: one per change with ``dry_run``, then the file's.

        Never raises for a bad input: the file record then has ``ok: false``
        and nothing is written.  In place, the new file replaces the old one
        by a rename (atomic), the old one kept as ``path.bak`` unless
        ``backup=False``.
        """
        from .dicom.reader import read
        from .dicom.writer import Bulk, write
        from .stream.outputs import exists_error, write_atomic

        try:
            if not in_place and not dry_run:
                if out is None:
                    raise ValueError("an output path or in_place=True is required")
                exists = os.path.lexists(out)
                if exists and not overwrite:
                    raise exists_error(out)
                if exists and _same_file(path, out):
                    raise DcmtoolsError(ErrorCode.EXISTS, "the output would replace the input",
                                        "choose an output folder outside the inputs, or use --in-place")  # fmt: skip
            dicom = read(path)
            if dicom.deflated:  # inflated values have no file offsets: read them all
                dicom = read(path, bulk_threshold=1 << 62)
            outcome = self.edit(dicom)
            records: list[dict[str, Any]] = []
            if dry_run:
                records = [change.record(path) for change in outcome.changes]
            else:
                # In place through a symbolic link: the file it points to is edited, the link stays.
                target = os.path.realpath(path) if in_place else out
                assert target is not None
                mode = os.stat(path).st_mode & 0o7777 if in_place else None
                with Bulk(path) as bulk:
                    def body(stream: Any) -> None:
                        if mode is not None:
                            os.fchmod(stream.fileno(), mode)  # the edited file keeps its permissions
                        write(stream, dicom.meta or None, dicom.dataset, bulk, deflated=dicom.deflated)

                    if in_place and backup:
                        _backup(target)
                    write_atomic(target, body, overwrite=in_place or overwrite)
        except DcmtoolsError as exc:
            return [error_record("file", exc, path=path)]
        except (ValueError, OSError) as exc:
            error = DcmtoolsError(ErrorCode.WRITE_FAILED, f"the edited file could not be written: {exc}")
            return [error_record("file", error, path=path)]
        record: dict[str, Any] = {"type": "file", "path": path}
        if not dry_run:
            record["out"] = path if in_place else out
        record["ok"] = True
        record["changes"] = len(outcome.changes)
        if dry_run:
            record["dry_run"] = True
        if outcome.unmatched is not None:
            record[UNMATCHED] = True
        if outcome.warnings:
            record["warnings"] = outcome.warnings
        records.append(record)
        return records


def _backup(path: str) -> None:
    """Keep the original as ``path.bak`` (a hard link where possible: no copy), replacing an older backup."""
    import shutil

    bak = path + ".bak"
    tmp = f"{bak}.{os.getpid()}.part"
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copy2(path, tmp)
    os.replace(tmp, bak)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


# ---------------------------------------------------------------- batches
_BATCH: tuple[Editor, dict[str, Any]] | None = None


def _batch_job(job: tuple[Any, ...]) -> list[dict[str, Any]]:
    path, out, error = job
    if error is not None:
        return [error]
    assert _BATCH is not None
    editor, options = _BATCH
    try:
        return editor.edit_file(path, out, **options)
    except Exception as exc:  # a bug must not stop the batch
        message = f"internal error: {type(exc).__name__}: {exc} (this is a bug in dcmtools; please report it)"
        return [error_record("file", DcmtoolsError(ErrorCode.INTERNAL, message), path=path)]


def edit_paths(
    editor: Editor,
    jobs_in: Iterable[tuple[Any, ...]],
    *,
    jobs: int = 1,
    in_place: bool = False,
    backup: bool = True,
    overwrite: bool = False,
    dry_run: bool = False,
) -> Iterator[list[dict[str, Any]]]:
    """Edit ``(path, out or None, error record or None)`` jobs in order over ``jobs`` processes.

    Yields the records of each job (``Editor.edit_file``).  Jobs come from
    ``dcmtools.deid.plan_jobs`` (with an output folder) or are
    ``(path, None, None)`` in place.
    """
    from .stream.parallel import map_ordered

    global _BATCH
    _BATCH = (editor, {"in_place": in_place, "backup": backup, "overwrite": overwrite, "dry_run": dry_run})
    try:
        yield from map_ordered(_batch_job, jobs_in, jobs)
    finally:
        _BATCH = None
