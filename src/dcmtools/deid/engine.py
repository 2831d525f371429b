"""Applying a ``Plan`` to one dataset of ``dcmtools.dicom.reader``, in place, at any depth.

The walk looks at every element of every dataset (nested sequences, private
groups, repeating groups) by its tag and VR only; values are decoded only for
the elements an action needs to read, and everything else keeps its raw bytes
(bulk data is not even in memory: the writer copies it from the source file).

Sequences are walked in a *mode* that says what happens to the free-text
leaves that have no row of their own: inside a sequence whose action is D
(dummy) they get dummy values ("D"; "DS" inside structured content, where the
code triplets of coded concepts are kept), inside one whose action is C
(clean) they are cleaned ("C").
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any

from ..dicom import dictionary as datadict
from ..dicom import reader
from ..dicom.reader import Dataset, Element
from ..dicom.values import Charset, string_values
from .dates import shift_da, shift_dt
from .keys import Key
from .profile import ANIMAL_TYPE_2C, Plan

# VRs whose values are free text, which the D and C modes replace or clean.
TEXT_VRS = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
# Coded concept attributes: kept inside structured content even under D.
CODE_TAGS = frozenset(
    {
        0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080105, 0x0008010B, 0x0008010D,
        0x0008010F, 0x00080117, 0x00080118, 0x00080119, 0x00080120, 0x00080122,
    }
)  # fmt: skip
# Structured content: SR content tree, acquisition context, specimen preparation, graphic annotations.
STRUCTURED = frozenset({0x0040A730, 0x00400555, 0x00400610, 0x00700001})
PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
SPECIFIC_CHARACTER_SET = 0x00080005
RESPONSIBLE_PERSON, RESPONSIBLE_PERSON_ROLE = 0x00102297, 0x00102298

DUMMY_TEXT = "ANONYMIZED"
DUMMY_STRINGS = {
    "AE": "ANONYMIZED", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000",
    "TM": "000000", "DS": "0", "IS": "0", "LT": DUMMY_TEXT, "ST": DUMMY_TEXT, "UT": DUMMY_TEXT,
    "UC": DUMMY_TEXT, "UR": "urn:dcmtools:anonymized",
}  # fmt: skip
NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q", "AT": "HH"}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def text_of(element: Element, charset: Charset) -> list[str]:
    """The non-empty string values of a string element."""
    if not element.value:
        return []
    return [v for v in string_values(element, charset) if v]


def encode(text: str, charset: Charset, vr: str) -> bytes:
    """A string value in the dataset's character set, padded to even length."""
    if text.isascii():
        raw = text.encode("ascii")
    elif charset.extended:
        from pydicom import charset as pydicom_charset  # only for code extensions

        raw = pydicom_charset.encode_string(text, pydicom_charset.convert_encodings(charset.terms))
    else:
        raw = text.encode(charset.codec, errors="replace")
    if len(raw) & 1:
        raw += b"\0" if vr == "UI" else b" "
    return raw


def person_name(pseudonym: str) -> str:
    """A pseudonym as a PN value: family name ANON, the rest as the given name."""
    return pseudonym[:4] + "^" + pseudonym[4:]


def new_element(tag: int, vr: str, value: bytes | None) -> Element:
    return Element(tag, vr, len(value or b""), value or b"", None)


class FileState:
    """What the walk of one file needs: the key, the patient, the cleaner."""

    def __init__(self, plan: Plan, key: Key, ds: Dataset) -> None:
        self.plan = plan
        self.key = key
        self.warnings: list[str] = []
        self.uids: dict[str, str] = {}
        self.charset = Charset.of(ds)
        self.identity = identity(ds, self.charset)
        self.patient_key = self.identity["key"]
        self.patient_pseudonym = key.pseudonym("patient\0" + self.patient_key, 16)
        self.date_offset = key.date_offset(self.patient_key) if plan.shift_dates else 0
        self.animal = self.identity["animal"]
        self._cleaner: Callable[[str], str] | None = None
        self._terms = phi_terms(ds, plan, self.charset) if plan.has_clean else []

    def warn(self, tag: int, message: str) -> None:
        if len(self.warnings) < 50:
            self.warnings.append(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {message}")

    def uid(self, value: str) -> str:
        value = value.strip("\0 ")
        new = self.key.uid(value)
        self.uids[value] = new
        return new

    def clean_text(self, text: str) -> str:
        """``text`` with the identifying strings of this file's patient removed."""
        if self._cleaner is None:
            self._cleaner = _make_cleaner(self._terms)
        return self._cleaner(text)


def identity(ds: Dataset, charset: Charset) -> dict[str, Any]:
    """Who the patient is (before anything changes): the key of the patient's pseudonym and date offset."""

    def get(tag: int) -> str:
        element = ds.get(tag)
        if element is None or not element.value:
            return ""
        return "\\".join(text_of(element, charset))

    pid, issuer, name = get(0x00100020), get(0x00100021), get(0x00100010)
    if pid:
        key = f"id\0{issuer}\0{pid}"
    elif name:
        key = f"name\0{name}\0{get(0x00100030)}"
    else:
        key = f"study\0{get(0x0020000D)}"
    species = ds.get(0x00102202)
    animal = bool(get(0x00102201) or (species is not None and species.items))
    return {"key": key, "PatientID": pid, "IssuerOfPatientID": issuer, "PatientName": name, "animal": animal}


def phi_terms(ds: Dataset, plan: Plan, charset: Charset) -> list[str]:
    """Identifying strings of the top-level dataset that cleaning removes from text."""
    terms: set[str] = set()
    for tag, element in ds.items():
        group = tag >> 16
        if group not in (0x0008, 0x0010, 0x0012, 0x0032, 0x0038, 0x0040, 0x4008) or not element.value:
            continue
        action = plan.rules.get(tag)
        if action is None or action in ("K", "C", "U"):
            continue
        vr = element.vr
        if vr == "PN":
            for value in text_of(element, charset):
                terms.update(p for p in re.split(r"[\^=\s,]+", value) if len(p) >= 2)
        elif vr in ("LO", "SH", "ST", "LT", "UC"):
            terms.update(v.strip() for v in text_of(element, charset) if len(v.strip()) >= 3)
        elif vr == "DA":
            for value in text_of(element, charset):
                if re.fullmatch(r"\d{8}", value):
                    y, m, d = value[:4], value[4:6], value[6:]
                    terms.update({value, f"{y}-{m}-{d}", f"{d}/{m}/{y}", f"{m}/{d}/{y}", f"{d}.{m}.{y}"})
    return sorted(terms, key=len, reverse=True)


def _make_cleaner(terms: list[str]) -> Callable[[str], str]:
    if not terms:
        return lambda text: text
    pattern = re.compile(
        r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(t) for t in terms) + r")(?![A-Za-z0-9])", re.IGNORECASE
    )

    def clean(text: str) -> str:
        cleaned = pattern.sub("", text)
        if cleaned == text:
            return text
        return re.sub(r"[ \t]{2,}", " ", cleaned).strip(" \t,;:-^")

    return clean


class Walker:
    """Applies the plan to a dataset and every dataset nested in it."""

    def __init__(self, state: FileState) -> None:
        self.state = state
        self.plan = state.plan
        self.rules = state.plan.rules
        self.depth = 0

    # ------------------------------------------------------------ datasets
    def dataset(self, ds: Dataset, mode: str | None = None, charset: Charset | None = None) -> None:
        charset = self.state.charset if charset is None else Charset.of(ds, charset)
        rules = self.rules
        private_seen = False
        for tag in list(ds):
            group = tag >> 16
            if group & 1:
                private_seen = True
                continue
            if tag & 0xFFFF == 0 and group != 0x0002:
                del ds[tag]  # group lengths: wrong once elements go
                continue
            element = ds.get(tag)
            if element is None:
                continue  # went with its repeating group
            if element.vr == "UN" and not self.known_vr(ds, tag):
                continue
            action = rules.get(tag)
            if action is None:
                high = group & 0xFF00
                if high == 0x6000 or high == 0x5000:
                    self.repeating(ds, tag, group, high, charset)
                    continue
                if not self.plan.keep_unknown and datadict.lookup(tag) is None:
                    del ds[tag]
                    self.state.warn(tag, "is not in the DICOM data dictionary: removed (`keep_unknown` keeps it)")
                    continue
                element = ds[tag]  # known_vr may have parsed it
                if element.items is not None:
                    self.sequence(element, mode, charset)
                elif mode is not None and element.vr in TEXT_VRS:
                    if mode == "DS" and tag in CODE_TAGS:
                        continue
                    if mode == "C":
                        self.clean(ds, tag, element, charset)
                    else:
                        self.dummy(ds, tag, element, charset)
                continue
            self.apply(ds, tag, action, mode, charset)
        if private_seen:
            self.private(ds, charset)
        role = ds.get(RESPONSIBLE_PERSON_ROLE)
        if role is not None:
            person = ds.get(RESPONSIBLE_PERSON)
            if person is None or not person.length:
                del ds[RESPONSIBLE_PERSON_ROLE]  # Type 1C: only with a Responsible Person value

    def known_vr(self, ds: Dataset, tag: int) -> bool:
        """A public element written as UN gets its dictionary VR, so that its
        action can read it; a sequence is parsed (implicit VR little endian,
        CP-246).  False when it cannot be and was removed."""
        vr = datadict.vr_of(tag)
        if vr == "UN" or " or " in vr:
            return True
        element = ds[tag]
        if vr != "SQ":
            element.vr = vr
            return True
        value = element.value
        if value is None:
            self.state.warn(tag, "a sequence stored as UN could not be read; removed")
            del ds[tag]
            return False
        try:
            items, _ = reader._Reader(value, 1 << 62, None, None)._items(0, len(value), True, True, self.depth)
        except (reader.ReadError, reader._Truncated, ValueError):
            self.state.warn(tag, "a sequence stored as UN could not be read; removed")
            del ds[tag]
            return False
        ds[tag] = Element(tag, "SQ", 0, None, None, items, True)
        return True

    def sequence(self, element: Element, mode: str | None, charset: Charset) -> None:
        self.depth += 1
        try:
            for item in element.items or ():
                self.dataset(item, mode, charset)
        finally:
            self.depth -= 1

    # ------------------------------------------------------------ actions
    def apply(self, ds: Dataset, tag: int, action: str, mode: str | None, charset: Charset) -> None:
        element = ds[tag]
        is_sequence = element.items is not None
        if "/" in action:
            action = self.resolve(element, action, self.depth)
        if action == "X":
            if self.state.animal and tag in ANIMAL_TYPE_2C:
                self.zero(ds, tag, element, charset)
            else:
                del ds[tag]
        elif action == "K" or action == "KU":  # KU: X/Z/U*, references kept with their UIDs replaced
            if is_sequence:
                self.sequence(element, mode, charset)
        elif action == "U":
            self.replace_uids(ds, tag, element, charset)
        elif action == "Z":
            self.zero(ds, tag, element, charset)
        elif action == "D":
            if is_sequence:
                inner = mode if mode and mode.startswith("D") else ("DS" if tag in STRUCTURED else "D")
                self.sequence(element, inner, charset)
            else:
                self.dummy(ds, tag, element, charset)
        elif action == "C":
            if is_sequence:
                self.sequence(element, mode if mode and mode.startswith("D") else "C", charset)
            else:
                self.clean(ds, tag, element, charset)
        else:  # pragma: no cover - the table is checked when it is generated
            raise ValueError(f"unknown action {action!r}")

    @staticmethod
    def resolve(element: Element, action: str, depth: int = 0) -> str:
        """A combined code: the least removal that keeps the element as valid as it was.

        Without the IOD's attribute types at hand, an element the input has is
        kept present (so a Type 1 or 2 attribute stays), emptied for X/Z, and
        given a dummy value for X/D, X/Z/D and Z/D unless it was empty already.
        X/Z/U* sequences keep their items with every UID replaced.  An X/Z
        sequence is emptied at the top level (Type 2 there: Referenced Study,
        Acquisition Context) and removed inside items (Type 3 there, and an
        empty sequence would break the "one or more items" of its macro).
        """
        if action == "X/Z/U*":
            return "KU"
        if action == "X/Z":
            return "X" if element.items is not None and depth > 0 else "Z"
        empty = not element.items if element.items is not None else element.length == 0
        return "Z" if empty else "D"

    def zero(self, ds: Dataset, tag: int, element: Element, charset: Charset) -> None:
        if element.items is not None:
            ds[tag] = Element(tag, "SQ", 0, None, None, [], True)
            return
        if tag == PATIENT_NAME and text_of(element, charset):
            # A name stays recognisable per patient: the patient's pseudonym.
            ds[tag] = new_element(tag, "PN", encode(person_name(self.state.patient_pseudonym), charset, "PN"))
            return
        ds[tag] = new_element(tag, element.vr, b"")

    def dummy(self, ds: Dataset, tag: int, element: Element, charset: Charset) -> None:
        """A non-empty value that fits the VR: repeatable pseudonyms for names and IDs."""
        state, vr = self.state, element.vr
        if vr == "UI":
            values = text_of(element, charset)
            new = [state.uid(v) for v in values] or [state.key.uid(f"dummy\0{tag}")]
            ds[tag] = new_element(tag, vr, encode("\\".join(new), charset, vr))
        elif tag == PATIENT_ID:
            ds[tag] = new_element(tag, vr, encode(state.patient_pseudonym, charset, vr))
        elif vr in ("PN", "LO", "SH"):
            names = [state.key.pseudonym(f"{vr}\0{v}", 16) for v in text_of(element, charset)]
            if vr == "PN":
                names = [person_name(n) for n in names]
            ds[tag] = new_element(tag, vr, encode("\\".join(names) or DUMMY_TEXT, charset, vr))
        elif vr in DUMMY_STRINGS:
            ds[tag] = new_element(tag, vr, encode(DUMMY_STRINGS[vr], charset, vr))
        elif vr in NUMBER_FORMATS:
            fmt = ("<" if ds.little else ">") + NUMBER_FORMATS[vr]
            ds[tag] = new_element(tag, vr, struct.pack(fmt, *([0] * len(NUMBER_FORMATS[vr]))))
        else:  # OB, OW, UN, ...: two zero bytes
            ds[tag] = new_element(tag, vr if vr in BINARY_VRS else "UN", b"\0\0")

    def clean(self, ds: Dataset, tag: int, element: Element, charset: Charset) -> None:
        """Replace with values of similar meaning known not to identify anyone."""
        state, vr = self.state, element.vr
        if vr in ("DA", "DT"):
            if not self.plan.shift_dates:
                self.dummy(ds, tag, element, charset)
                return
            shift = shift_da if vr == "DA" else shift_dt
            try:
                new = [shift(v, state.date_offset) for v in text_of(element, charset)]
            except ValueError:
                state.warn(tag, f"a value is not a valid {vr}: emptied")  # never the value: it may identify
                ds[tag] = new_element(tag, vr, b"")
                return
            ds[tag] = new_element(tag, vr, encode("\\".join(new), charset, vr))
        elif vr in ("TM", "CS", "AS"):
            return  # times stay (dates move by whole days); codes and ages carry no identity
        elif vr in TEXT_VRS:
            values = text_of(element, charset)
            cleaned = [state.clean_text(v) for v in values]
            if cleaned != values:
                if vr == "PN":
                    cleaned = [c or DUMMY_TEXT for c in cleaned]
                ds[tag] = new_element(tag, vr, encode("\\".join(cleaned), charset, vr))
        else:
            self.dummy(ds, tag, element, charset)

    def replace_uids(self, ds: Dataset, tag: int, element: Element, charset: Charset) -> None:
        if element.items is not None:  # never let a sequence through unwalked
            self.sequence(element, None, charset)
            return
        values = text_of(element, charset)
        if values:
            new = [self.state.uid(v) for v in values]
            ds[tag] = new_element(tag, "UI", encode("\\".join(new), charset, "UI"))

    # ------------------------------------------------------------ groups
    def repeating(self, ds: Dataset, tag: int, group: int, high: int, charset: Charset) -> None:
        """Curves (50xx,xxxx) and overlays (60xx,xxxx)."""
        element = ds.get(tag)
        if element is None:
            return  # its whole group went already
        if high == 0x5000:
            action = self.plan.curve
        elif tag & 0xFFFF == 0x4000:
            action = self.plan.overlay_comments
            if action == "X":
                del ds[tag]
                return
        else:
            action = self.plan.overlay
        if action == "X":
            # The whole curve or overlay goes: a plane without its data would be invalid.
            for other in [t for t in ds if t >> 16 == group]:
                del ds[other]
            return
        if element.vr in TEXT_VRS:
            self.clean(ds, tag, element, charset)

    def private(self, ds: Dataset, charset: Charset) -> None:
        """Private groups: removed, or only the known-safe ones kept (Retain Safe Private)."""
        private = [t for t in ds if (t >> 16) & 1]
        if self.plan.private != "C":
            for tag in private:
                del ds[tag]
            return
        safe = self.plan.safe_private
        declared = declared_safe(ds)
        creators: dict[int, str] = {}
        for tag in private:
            if 0x0010 <= tag & 0xFFFF <= 0x00FF:
                raw = ds[tag].value or b""
                creators[tag] = raw.decode("latin-1").strip(" \0").upper()
        needed: set[int] = set()
        for tag in private:
            group, element = tag >> 16, tag & 0xFFFF
            if element < 0x1000:
                continue  # creators and group lengths: decided below
            creator_tag = (group << 16) | (element >> 8)
            creator = creators.get(creator_tag, "")
            key = (group, creator, element & 0xFF)
            if creator and (key in safe or key in declared or (group, creator, None) in declared):
                needed.add(creator_tag)
                if ds[tag].items is not None:
                    self.sequence(ds[tag], None, charset)
            else:
                del ds[tag]
        for tag in private:
            if tag in ds and tag & 0xFFFF < 0x1000 and tag not in needed:
                del ds[tag]


def declared_safe(ds: Dataset) -> set[tuple[int, str, int | None]]:
    """Private elements the dataset itself declares safe (Private Data Element Characteristics)."""
    out: set[tuple[int, str, int | None]] = set()
    sequence = ds.get(0x00080300)
    for item in (sequence.items if sequence is not None else None) or ():
        group = item.uint(0x00080301)
        creator = (item.text(0x00080302) or "").upper()
        if group is None or not creator:
            continue
        if (item.text(0x00080303) or "").upper() == "SAFE":
            out.add((group, creator, None))
        listed = item.get(0x00080304)
        if listed is not None and listed.value:
            fmt = ("<" if item.little else ">") + f"{len(listed.value) // 2}H"
            for number in struct.unpack(fmt, listed.value[: len(listed.value) // 2 * 2]):
                out.add((group, creator, number & 0xFF))
    return out
