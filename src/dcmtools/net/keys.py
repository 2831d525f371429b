"""Query keys: levels, information models, default return keys, and identifiers built from ``-k``.

Shared by the query/retrieve SCU (``query.py``, ``retrieve.py``, ``worklist.py``)
and the SCP side of ``listen`` (``index.py``, ``qrscp.py``).

Keys are written as DCMTK and pynetdicom write them (``dcmtools.dicom.tagpath``)::

    PatientName=DOE*                          a keyword with a value (wildcards * and ?)
    0010,0020=PAT001                          a tag
    StudyDate=20240101-20240131               a range (dates, times)
    SeriesInstanceUID=1.2.3\\1.2.4            a list of UIDs
    StudyDescription                          a return key (no value: universal)
    ScheduledProcedureStepSequence[0].Modality=CT   a key inside a sequence item

Identifiers are held as DICOM JSON model dicts (``{"00100010": {"vr": "PN",
"Value": [{"Alphabetic": "DOE*"}]}}``): that is what the records carry, what
the matching engine (``matching.py``) works on and what the SCP's index
stores.  ``to_pydicom`` / ``from_bytes`` convert at the wire.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from typing import Any

from ..dicom import dictionary
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
LEVEL_NAMES = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "image": "IMAGE", "instance": "IMAGE"}

# Information models (PS3.4 C.6) and Modality Worklist (K.6)
FIND = {"patient": "1.2.840.10008.5.1.4.1.2.1.1", "study": "1.2.840.10008.5.1.4.1.2.2.1"}
MOVE = {"patient": "1.2.840.10008.5.1.4.1.2.1.2", "study": "1.2.840.10008.5.1.4.1.2.2.2"}
GET = {"patient": "1.2.840.10008.5.1.4.1.2.1.3", "study": "1.2.840.10008.5.1.4.1.2.2.3"}
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MODEL_OF = {uid: model for table in (FIND, MOVE, GET) for model, uid in table.items()}


# Tags by name, to keep the tables readable.
TAGS = {
    "SpecificCharacterSet": 0x00080005,
    "QueryRetrieveLevel": 0x00080052,
    "RetrieveAETitle": 0x00080054,
    "InstanceAvailability": 0x00080056,
    "FailedSOPInstanceUIDList": 0x00080058,
    "PatientID": 0x00100020,
    "PatientName": 0x00100010,
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "SOPInstanceUID": 0x00080018,
    "SOPClassUID": 0x00080016,
    "Modality": 0x00080060,
    "ModalitiesInStudy": 0x00080061,
    "SOPClassesInStudy": 0x00080062,
    "StudyDate": 0x00080020,
    "AccessionNumber": 0x00080050,
}

UNIQUE_KEY = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}

# Which entity an attribute belongs to (PS3.4 C.6.1.1 / C.6.2.1 and the modules of
# each IE).  Anything not listed is an IMAGE (instance) level attribute.
_PATIENT_ATTRS = """
PatientName PatientID IssuerOfPatientID IssuerOfPatientIDQualifiersSequence TypeOfPatientID
PatientBirthDate PatientBirthTime PatientSex OtherPatientIDsSequence OtherPatientNames
OtherPatientIDs EthnicGroup PatientComments PatientSpeciesDescription PatientSpeciesCodeSequence
PatientSexNeutered PatientBreedDescription PatientBreedCodeSequence BreedRegistrationSequence
ResponsiblePerson ResponsiblePersonRole ResponsibleOrganization PatientIdentityRemoved
DeidentificationMethod DeidentificationMethodCodeSequence PatientMotherBirthName
NumberOfPatientRelatedStudies NumberOfPatientRelatedSeries NumberOfPatientRelatedInstances
""".split()
_STUDY_ATTRS = """
StudyDate StudyTime AccessionNumber IssuerOfAccessionNumberSequence StudyID StudyInstanceUID
ReferringPhysicianName ReferringPhysicianIdentificationSequence StudyDescription ProcedureCodeSequence
NameOfPhysiciansReadingStudy PhysiciansOfRecord AdmittingDiagnosesDescription PatientAge PatientSize
PatientWeight Occupation AdditionalPatientHistory OtherStudyNumbers ModalitiesInStudy
SOPClassesInStudy AnatomicRegionsInStudyCodeSequence NumberOfStudyRelatedSeries
NumberOfStudyRelatedInstances StudyStatusID ReasonForPerformedProcedureCodeSequence
""".split()
_SERIES_ATTRS = """
Modality SeriesInstanceUID SeriesNumber SeriesDescription SeriesDate SeriesTime BodyPartExamined
Laterality ProtocolName PerformingPhysicianName OperatorsName PerformedProcedureStepStartDate
PerformedProcedureStepStartTime PerformedProcedureStepID PerformedProcedureStepDescription
RequestAttributesSequence Manufacturer InstitutionName InstitutionalDepartmentName StationName
ManufacturerModelName DeviceSerialNumber SoftwareVersions NumberOfSeriesRelatedInstances
PatientPosition FrameOfReferenceUID
""".split()
COMPUTED = {
    "NumberOfPatientRelatedStudies",
    "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
    "ModalitiesInStudy",
    "SOPClassesInStudy",
}


def _tags(names: Iterable[str]) -> frozenset[int]:
    out = set()
    for name in names:
        tag = dictionary.tag_of(name)
        if tag is None:  # pragma: no cover - the tables above are checked by a test
            raise KeyError(name)
        out.add(tag)
    return frozenset(out)


PATIENT_TAGS = _tags(_PATIENT_ATTRS)
STUDY_TAGS = _tags(_STUDY_ATTRS)
SERIES_TAGS = _tags(_SERIES_ATTRS)
COMPUTED_TAGS = _tags(COMPUTED)
# Query/retrieve bookkeeping elements: never matched, never stored.
CONTROL_TAGS = frozenset(
    {
        TAGS["SpecificCharacterSet"],
        TAGS["QueryRetrieveLevel"],
        TAGS["RetrieveAETitle"],
        TAGS["InstanceAvailability"],
        0x00080053,
        0x00080005,
        0x00080201,
        0x00880130,
        0x00880140,
    }
)


def level_of(tag: int) -> str:
    """The entity (PATIENT, STUDY, SERIES, IMAGE) an attribute belongs to."""
    if tag in PATIENT_TAGS:
        return "PATIENT"
    if tag in STUDY_TAGS:
        return "STUDY"
    if tag in SERIES_TAGS:
        return "SERIES"
    return "IMAGE"


def level_index(level: str) -> int:
    return LEVELS.index(level)


# ------------------------------------------------------------- default keys
DEFAULT_KEYS: dict[str, list[str]] = {
    "PATIENT": [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "PatientSpeciesDescription",
        "ResponsiblePerson",
        "NumberOfPatientRelatedStudies",
    ],
    "STUDY": [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "StudyInstanceUID",
    ],
    "SERIES": [
        "PatientID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "SeriesDate",
        "BodyPartExamined",
        "NumberOfSeriesRelatedInstances",
    ],
    "IMAGE": ["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "InstanceNumber"],
}

WORKLIST_KEYS = [
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence",
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "BreedRegistrationSequence",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "PatientSexNeutered",
    "AccessionNumber",
    "ReferringPhysicianName",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence[0].ScheduledStationName",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
]


def normalize_level(level: str) -> str:
    name = LEVEL_NAMES.get(level.strip().lower())
    if name is None:
        raise DcmtoolsError(
            ErrorCode.BAD_KEY, f"unknown query level {level!r}", "use patient, study, series or image", ExitStatus.USAGE
        )
    return name


def choose_model(level: str, model: str | None) -> str:
    """``patient`` or ``study`` root: the given one, else study root (patient root for PATIENT)."""
    if model is None:
        return "patient" if level == "PATIENT" else "study"
    model = model.strip().lower()
    if model not in ("patient", "study"):
        raise DcmtoolsError(
            ErrorCode.BAD_KEY,
            f"unknown information model {model!r}",
            "use `model` patient or `model` study",
            ExitStatus.USAGE,
        )
    if model == "study" and level == "PATIENT":
        raise DcmtoolsError(
            ErrorCode.BAD_KEY,
            "the study root model has no PATIENT level",
            "use `model` patient (the default at the patient level), or `level` study",
            ExitStatus.USAGE,
        )
    return model


# ------------------------------------------------------------- building identifiers
def vr_of(tag: int) -> str:
    vr = dictionary.vr_of(tag)
    if " or " in vr:
        vr = vr.split(" or ")[0]
    return vr


def parse_keys(texts: Iterable[str]) -> list[tuple[tuple[Any, ...], str | None]]:
    """``-k`` texts -> (steps, value); a bad one is a usage error naming it."""
    from ..dicom.tagpath import PathError, parse_key

    keys = []
    for text in texts:
        try:
            keys.append(parse_key(text))
        except PathError as exc:
            raise DcmtoolsError(
                ErrorCode.BAD_KEY,
                f"-k {text!r}: {exc}",
                "write keys as Keyword=VALUE, gggg,eeee=VALUE or Sequence[0].Keyword=VALUE",
                ExitStatus.USAGE,
            ) from None
    return keys


def _value_json(tag: int, vr: str, value: str | None) -> dict[str, Any]:
    element: dict[str, Any] = {"vr": vr}
    if value is None or value == "":
        return element
    if vr == "SQ":
        raise DcmtoolsError(
            ErrorCode.BAD_KEY,
            f"{dictionary.keyword_of(tag) or hex(tag)} is a sequence: give keys inside it",
            "e.g. -k 'ScheduledProcedureStepSequence[0].Modality=CT'",
            ExitStatus.USAGE,
        )
    parts = value.split("\\")
    if vr == "PN":
        element["Value"] = [{"Alphabetic": part} if part else None for part in parts]
    elif vr in ("US", "UL", "SS", "SL", "UV", "SV", "FL", "FD"):
        number = float if vr in ("FL", "FD") else int
        try:
            element["Value"] = [number(part) for part in parts]
        except ValueError:
            raise DcmtoolsError(
                ErrorCode.BAD_KEY,
                f"{dictionary.keyword_of(tag)}={value!r}: a number is expected",
                None,
                ExitStatus.USAGE,
            ) from None
    elif vr in ("IS", "DS"):
        # Keep the text: a key may hold a wildcard or a range that is not a number.
        element["Value"] = parts
    else:
        element["Value"] = parts
    return element


def set_key(identifier: dict[str, Any], steps: tuple[Any, ...], value: str | None) -> None:
    """Put one key (tagpath steps, value or None) into a JSON-model identifier."""
    node = identifier
    for step in steps[:-1]:
        key = f"{step.tag:08X}"
        vr = vr_of(step.tag)
        if vr != "SQ":
            raise DcmtoolsError(
                ErrorCode.BAD_KEY,
                f"{dictionary.keyword_of(step.tag) or key} is not a sequence, so nothing can be inside it",
                None,
                ExitStatus.USAGE,
            )
        element = node.get(key)
        if element is None or element.get("vr") != "SQ":
            element = node[key] = {"vr": "SQ", "Value": []}
        items = element.setdefault("Value", [])
        index = step.index or 0
        while len(items) <= index:
            items.append({})
        node = items[index]
    last = steps[-1]
    key = f"{last.tag:08X}"
    vr = vr_of(last.tag)
    if vr == "SQ" and value in (None, ""):
        if key not in node:
            node[key] = {"vr": "SQ"}  # universal: every item, whole
        return
    node[key] = _value_json(last.tag, vr, value)


def identifier_from(
    keys: Iterable[tuple[tuple[Any, ...], str | None]], base: Iterable[str] = (), level: str | None = None
) -> dict[str, Any]:
    """A JSON-model identifier: the ``base`` return keys, then ``keys`` (which win)."""
    identifier: dict[str, Any] = {}
    if level is not None:
        identifier[f"{TAGS['QueryRetrieveLevel']:08X}"] = {"vr": "CS", "Value": [level]}
    for steps, value in parse_keys(base):
        set_key(identifier, steps, value)
    for steps, value in keys:
        set_key(identifier, steps, value)
    return sort_identifier(identifier)


def sort_identifier(identifier: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key in sorted(identifier):
        element = identifier[key]
        if element.get("vr") == "SQ" and element.get("Value"):
            element = {**element, "Value": [sort_identifier(item) for item in element["Value"]]}
        out[key] = element
    return out


def key_text(identifier: dict[str, Any], name: str) -> str | None:
    """The first value of a top-level key as text (PN: its alphabetic form)."""
    element = identifier.get(f"{TAGS[name] if name in TAGS else dictionary.tag_of(name):08X}")
    return first_text(element)


def first_text(element: dict[str, Any] | None) -> str | None:
    if not element:
        return None
    values = element.get("Value")
    if not values:
        raw = element.get("raw")
        return raw.strip() if isinstance(raw, str) and raw.strip() else None
    value = values[0]
    if isinstance(value, dict):
        value = value.get("Alphabetic")
    if value is None:
        return None
    text = str(value)
    return text or None


def texts(element: dict[str, Any] | None) -> list[str]:
    """All values of an element as text (PN: alphabetic); [] when empty."""
    if not element:
        return []
    out = []
    for value in element.get("Value") or []:
        if isinstance(value, dict):
            value = value.get("Alphabetic")
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        out.append(str(value))
    if not out and isinstance(element.get("raw"), str) and element["raw"].strip():
        out = [v.strip() for v in element["raw"].split("\\")]
    return out


# ------------------------------------------------------------- friendly shortcuts
_DATE = re.compile(r"^\d{8}$")
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _one_date(text: str, today: _dt.date) -> str:
    word = text.strip().lower()
    if word == "today":
        return today.strftime("%Y%m%d")
    if word == "yesterday":
        return (today - _dt.timedelta(days=1)).strftime("%Y%m%d")
    if word == "tomorrow":
        return (today + _dt.timedelta(days=1)).strftime("%Y%m%d")
    match = re.match(r"^(\d+)\s*days?\s*ago$", word)
    if match:
        return (today - _dt.timedelta(days=int(match[1]))).strftime("%Y%m%d")
    iso = _ISO.match(word)
    if iso:
        word = "".join(iso.groups())
    if _DATE.match(word):
        try:
            _dt.datetime.strptime(word, "%Y%m%d")
        except ValueError:
            raise ValueError(f"{text!r} is not a valid date") from None
        return word
    raise ValueError(f"{text!r} is not a date")


def date_key(text: str, today: _dt.date | None = None) -> str:
    """``today``, ``yesterday``, ``YYYYMMDD``, ``YYYY-MM-DD``, ``N days ago``, and ranges
    ``A-B`` / ``A..B`` / ``A-`` / ``-B`` of those -> a DICOM date or date range."""
    today = today or _dt.date.today()
    value = text.strip()
    try:
        if ".." in value:
            start, _, end = value.partition("..")
        elif _ISO.match(value.lower()) or value.lower().endswith("ago"):
            start, end = value, None
        elif "-" in value:
            start, _, end = value.partition("-")
        else:
            start, end = value, None
        if end is None:
            return _one_date(start, today)
        low = _one_date(start, today) if start.strip() else ""
        high = _one_date(end, today) if end.strip() else ""
        if not low and not high:
            raise ValueError("a range needs at least one end")
        if low and high and low > high:
            raise ValueError(f"the range starts after it ends ({low} > {high})")
        return f"{low}-{high}"
    except ValueError as exc:
        raise DcmtoolsError(
            ErrorCode.BAD_KEY,
            f"`date` {text!r}: {exc}",
            "use today, yesterday, YYYYMMDD, YYYY-MM-DD, 'N days ago', or a range A-B, A.., ..B",
            ExitStatus.USAGE,
        ) from None


def name_key(text: str) -> str:
    """A patient name as typed: wildcards are kept; a plain name matches as a prefix (``DOE`` -> ``DOE*``)."""
    value = text.strip()
    if not value or "*" in value or "?" in value:
        return value
    return value + "*"


def shortcut_keys(
    level: str,
    *,
    patient: str | None = None,
    patient_id: str | None = None,
    date: str | None = None,
    modality: str | None = None,
    accession: str | None = None,
) -> list[str]:
    """The ``-k`` texts for the friendly options of ``find``."""
    out = []
    if patient:
        out.append(f"PatientName={name_key(patient)}")
    if patient_id:
        out.append(f"PatientID={patient_id}")
    if date:
        out.append(f"StudyDate={date_key(date)}")
    if modality:
        out.append(("ModalitiesInStudy" if level in ("PATIENT", "STUDY") else "Modality") + f"={modality.upper()}")
    if accession:
        out.append(f"AccessionNumber={accession}")
    return out
