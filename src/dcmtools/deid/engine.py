"""Applying a ``Plan`` to one pydicom dataset, in place, at any depth.

The walk looks at every element of every dataset (nested sequences, private
groups, repeating groups) by its tag, without converting the raw bytes of
elements it does not act on: pydicom writes those back as they were read.

Sequences are walked in a *mode* that says what happens to the free-text
leaves that have no row of their own: inside a sequence whose action is D
(dummy) they get dummy values ("D"; "DS" inside structured content, where the
code triplets of coded concepts are kept), inside one whose action is C
(clean) they are cleaned ("C").
"""

from __future__ import annotations

import re
from typing import Any, Callable

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

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

DUMMY_TEXT = "ANONYMIZED"
DUMMIES: dict[str, Any] = {
    "AE": "ANONYMIZED",
    "AS": "000D",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LT": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "UR": "urn:dcmtools:anonymized",
    "FL": 0.0,
    "FD": 0.0,
    "SS": 0,
    "US": 0,
    "SL": 0,
    "UL": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "UC": 64}

_VR_CACHE: dict[int, str] = {}


def element_vr(tag: int, elem: Any) -> str:
    """The VR of a raw or converted element, from the dictionary when implicit."""
    vr = elem.VR
    if vr is not None:
        return vr
    if getattr(elem, "length", 0) == 0xFFFFFFFF:
        return "SQ"
    vr = _VR_CACHE.get(tag)
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
        _VR_CACHE[tag] = vr
    return vr


def plain_vr(vr: str) -> str:
    """One VR for the dictionary's ambiguous ones ("OB or OW" -> "OW", "US or SS" -> "US")."""
    if " or " not in vr:
        return vr
    first, _, second = vr.partition(" or ")
    return second if first == "OB" else first


def text_values(value: Any) -> list[str]:
    """The string values of an element value (MultiValue, PersonName, str)."""
    if value is None or value == "":
        return []
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [str(value)]


class FileState:
    """What the walk of one file needs: the key, the patient, the cleaner."""

    def __init__(self, plan: Plan, key: Key, ds: Dataset) -> None:
        self.plan = plan
        self.key = key
        self.warnings: list[str] = []
        self.uids: dict[str, str] = {}
        self.identity = _identity(ds)
        self.patient_key = self.identity["key"]
        self.patient_pseudonym = key.pseudonym("patient\0" + self.patient_key, 16)
        self.date_offset = key.date_offset(self.patient_key) if plan.shift_dates else 0
        self.animal = self.identity["animal"]
        self._cleaner: Callable[[str], str] | None = None
        self._terms = _phi_terms(ds, plan) if plan.has_clean else []

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


def _identity(ds: Dataset) -> dict[str, Any]:
    def get(keyword: str) -> str:
        try:
            value = ds.get(keyword)
        except Exception:  # a malformed value must not stop the run
            return ""
        return "\\".join(text_values(value)).strip()

    pid, issuer, name = get("PatientID"), get("IssuerOfPatientID"), get("PatientName")
    if pid:
        key = f"id\0{issuer}\0{pid}"
    elif name:
        key = f"name\0{name}\0{get('PatientBirthDate')}"
    else:
        key = f"study\0{get('StudyInstanceUID')}"
    try:
        species = ds.get("PatientSpeciesCodeSequence")
    except Exception:
        species = None
    animal = bool(get("PatientSpeciesDescription") or species)
    return {"key": key, "PatientID": pid, "IssuerOfPatientID": issuer, "PatientName": name, "animal": animal}


def _phi_terms(ds: Dataset, plan: Plan) -> list[str]:
    """Identifying strings of the top-level dataset that cleaning removes from text."""
    terms: set[str] = set()
    for tag in list(ds._dict):
        group = tag >> 16
        if group not in (0x0008, 0x0010, 0x0012, 0x0032, 0x0038, 0x0040, 0x4008):
            continue
        action = plan.rules.get(tag)
        if action is None or action in ("K", "C", "U"):
            continue
        try:
            elem = ds[tag]
        except Exception:
            continue
        if elem.VR == "PN":
            for value in text_values(elem.value):
                terms.update(p for p in re.split(r"[\^=\s,]+", value) if len(p) >= 2)
        elif elem.VR in ("LO", "SH", "ST", "LT", "UC"):
            terms.update(v.strip() for v in text_values(elem.value) if len(v.strip()) >= 3)
        elif elem.VR == "DA":
            for value in text_values(elem.value):
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

    # ------------------------------------------------------------ datasets
    def dataset(self, ds: Dataset, mode: str | None = None) -> None:
        rules = self.rules
        elements = ds._dict
        private_seen = False
        for tag in list(elements):
            group = tag >> 16
            if group & 1:
                private_seen = True
                continue
            if tag & 0xFFFF == 0 and group != 0x0002:
                del elements[tag]  # group lengths: wrong once elements go
                continue
            action = rules.get(tag)
            if action is None:
                high = group & 0xFF00
                if high == 0x6000 or high == 0x5000:
                    self.repeating(ds, tag, group, high)
                    continue
                elem = elements[tag]
                vr = element_vr(tag, elem)
                if vr == "SQ":
                    self.sequence(ds, tag, mode)
                elif mode is not None and vr in TEXT_VRS:
                    if mode == "DS" and tag in CODE_TAGS:
                        continue
                    if mode == "C":
                        self.clean(ds, tag, vr)
                    else:
                        self.dummy(ds, tag, vr)
                continue
            self.apply(ds, tag, action, mode)
        if private_seen:
            self.private(ds)

    def sequence(self, ds: Dataset, tag: int, mode: str | None) -> None:
        try:
            items = ds[tag].value
        except Exception as exc:
            self.state.warn(tag, f"sequence could not be read ({exc}); removed")
            del ds[tag]
            return
        for item in items or ():
            if isinstance(item, Dataset):
                self.dataset(item, mode)

    # ------------------------------------------------------------ actions
    def apply(self, ds: Dataset, tag: int, action: str, mode: str | None) -> None:
        elem = ds._dict[tag]
        vr = element_vr(tag, elem)
        if "/" in action:
            action = self.resolve(ds, tag, action, vr)
        if action == "X":
            if self.state.animal and tag in ANIMAL_TYPE_2C:
                self.zero(ds, tag, vr)
            else:
                del ds._dict[tag]
        elif action == "K":
            if vr == "SQ":
                self.sequence(ds, tag, mode)
        elif action == "U":
            self.replace_uids(ds, tag, vr)
        elif action == "Z":
            self.zero(ds, tag, vr)
        elif action == "D":
            if vr == "SQ":
                self.sequence(ds, tag, mode if mode and mode.startswith("D") else ("DS" if tag in STRUCTURED else "D"))
            else:
                self.dummy(ds, tag, vr)
        elif action == "C":
            if vr == "SQ":
                self.sequence(ds, tag, mode if mode and mode.startswith("D") else "C")
            else:
                self.clean(ds, tag, vr)
        elif action == "KU":  # X/Z/U*: the references stay, their UIDs replaced
            self.sequence(ds, tag, mode)
        else:  # pragma: no cover - the table is checked when it is generated
            raise ValueError(f"unknown action {action!r}")

    def resolve(self, ds: Dataset, tag: int, action: str, vr: str) -> str:
        """A combined code: the least removal that keeps the element as valid as it was.

        Without the IOD's attribute types at hand, an element the input has is
        kept present (so a Type 1 or 2 attribute stays), emptied for X/Z, and
        given a dummy value for X/D, X/Z/D and Z/D unless it was empty already.
        X/Z/U* sequences keep their items with every UID replaced.
        """
        if action == "X/Z/U*":
            return "KU"
        if action == "X/Z":
            return "Z"
        elem = ds._dict[tag]
        if vr == "SQ":
            try:
                empty = not ds[tag].value
            except Exception:
                return "X"
        else:
            empty = getattr(elem, "length", None) == 0 or (
                not isinstance(elem, RawDataElement) and elem.is_empty
            )
        return "Z" if empty else "D"

    def zero(self, ds: Dataset, tag: int, vr: str) -> None:
        if vr == "SQ":
            ds._dict[tag] = DataElement(tag, "SQ", Sequence())
            return
        if tag == PATIENT_NAME:
            # A name is kept recognisable per patient: the patient's pseudonym.
            elem = ds._dict[tag]
            if getattr(elem, "length", 1) != 0 and text_values(ds[tag].value):
                ds._dict[tag] = DataElement(tag, "PN", self.state.patient_pseudonym)
                return
        ds._dict[tag] = DataElement(tag, plain_vr(vr), None)

    def dummy(self, ds: Dataset, tag: int, vr: str) -> None:
        """A non-empty value that fits the VR: repeatable pseudonyms for names and IDs."""
        state = self.state
        if vr == "UI":
            values = text_values(ds[tag].value)
            new = [state.uid(v) for v in values] or [state.key.uid(f"dummy\0{tag}")]
            ds._dict[tag] = DataElement(tag, "UI", new if len(new) > 1 else new[0])
            return
        if tag == PATIENT_ID:
            ds._dict[tag] = DataElement(tag, vr, state.patient_pseudonym)
            return
        if vr in ("PN", "LO", "SH"):
            try:
                values = text_values(ds[tag].value)
            except Exception:
                values = []
            length = 16 if vr != "PN" else 24
            names = [state.key.pseudonym(f"{vr}\0{v}", length) for v in values] or [DUMMY_TEXT]
            ds._dict[tag] = DataElement(tag, vr, names if len(names) > 1 else names[0])
            return
        if vr in BINARY_VRS or vr not in DUMMIES:
            ds._dict[tag] = DataElement(tag, plain_vr(vr) if vr in BINARY_VRS else "UN", b"\0\0")
            return
        ds._dict[tag] = DataElement(tag, vr, DUMMIES[vr])

    def clean(self, ds: Dataset, tag: int, vr: str) -> None:
        """Replace with values of similar meaning known not to identify anyone."""
        state = self.state
        if vr in ("DA", "DT"):
            if not self.plan.shift_dates:
                self.dummy(ds, tag, vr)
                return
            shift = shift_da if vr == "DA" else shift_dt
            try:
                values = text_values(ds[tag].value)
            except Exception:
                values = None
            try:
                if values is None:
                    raise ValueError("unreadable value")
                new = [shift(v, state.date_offset) for v in values]
            except ValueError as exc:
                state.warn(tag, f"{exc}: emptied")
                ds._dict[tag] = DataElement(tag, vr, None)
                return
            ds._dict[tag] = DataElement(tag, vr, new if len(new) > 1 else (new[0] if new else None))
            return
        if vr in ("TM", "CS", "AS"):
            return  # times stay (dates move by whole days); codes and ages carry no identity
        if vr in TEXT_VRS:
            try:
                elem = ds[tag]
            except Exception as exc:
                state.warn(tag, f"value could not be read ({exc}); removed")
                del ds._dict[tag]
                return
            values = text_values(elem.value)
            cleaned = [state.clean_text(v) for v in values]
            if cleaned != values:
                if vr == "PN":
                    cleaned = [c or DUMMY_TEXT for c in cleaned]
                ds._dict[tag] = DataElement(tag, vr, cleaned if len(cleaned) > 1 else (cleaned[0] if cleaned else None))
            return
        self.dummy(ds, tag, vr)

    def replace_uids(self, ds: Dataset, tag: int, vr: str) -> None:
        if vr == "SQ":  # not in the table, but never let a UID sequence through unwalked
            self.sequence(ds, tag, None)
            return
        try:
            values = text_values(ds[tag].value)
        except Exception as exc:
            self.state.warn(tag, f"UID could not be read ({exc}); removed")
            del ds._dict[tag]
            return
        if not values:
            return
        new = [self.state.uid(v) for v in values]
        ds._dict[tag] = DataElement(tag, "UI", new if len(new) > 1 else new[0])

    # ------------------------------------------------------------ groups
    def repeating(self, ds: Dataset, tag: int, group: int, high: int) -> None:
        """Curves (50xx,xxxx) and overlays (60xx,xxxx)."""
        elements = ds._dict
        if tag not in elements:
            return  # its whole group went already
        if high == 0x5000:
            action = self.plan.curve
        elif tag & 0xFFFF == 0x4000:
            action = self.plan.overlay_comments
            if action == "X":
                del elements[tag]
                return
        else:
            action = self.plan.overlay
        if action == "X":
            # The whole curve or overlay goes: a plane without its data would be invalid.
            for other in [t for t in elements if t >> 16 == group]:
                del elements[other]
            return
        vr = element_vr(tag, elements[tag])
        if vr in TEXT_VRS:
            self.clean(ds, tag, vr)

    def private(self, ds: Dataset) -> None:
        """Private groups: removed, or only the known-safe ones kept (Retain Safe Private)."""
        elements = ds._dict
        private = [t for t in elements if (t >> 16) & 1]
        if self.plan.private != "C":
            for tag in private:
                del elements[tag]
            return
        safe = self.plan.safe_private
        declared = _declared_safe(ds)
        creators: dict[int, str] = {}
        for tag in private:
            element = tag & 0xFFFF
            if 0x0010 <= element <= 0x00FF:
                try:
                    creators[tag] = str(ds[tag].value or "").strip().upper()
                except Exception:
                    creators[tag] = ""
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
                if element_vr(tag, elements[tag]) == "SQ":
                    self.sequence(ds, tag, None)
            else:
                del elements[tag]
        for tag in private:
            if tag in elements and tag & 0xFFFF < 0x1000 and tag not in needed:
                del elements[tag]


def _declared_safe(ds: Dataset) -> set[tuple[int, str, int | None]]:
    """Private elements the dataset itself declares safe (0008,0300), before it is walked."""
    out: set[tuple[int, str, int | None]] = set()
    try:
        items = ds.get("PrivateDataElementCharacteristicsSequence")
    except Exception:
        return out
    for item in items or ():
        try:
            group = int(item.get("PrivateGroupReference", 0) or 0)
            creator = str(item.get("PrivateCreatorReference", "") or "").strip().upper()
            if str(item.get("BlockIdentifyingInformationStatus", "")).upper() == "SAFE":
                out.add((group, creator, None))
            for element in item.get("NonidentifyingPrivateElements") or ():
                out.add((group, creator, int(element) & 0xFF))
        except (TypeError, ValueError):
            continue
    return out
