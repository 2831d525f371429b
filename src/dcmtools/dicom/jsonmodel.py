"""Datasets as the DICOM JSON Model (PS3.18 F.2), and the ``--flat`` keyword form.

The model, to the letter: keys are 8-digit upper-case tags in order; each
element is ``{"vr": VR}`` plus ``"Value"`` (a list), ``"InlineBinary"``
(base64) or ``"BulkDataURI"``; an empty element has none of the three; group
lengths are left out; PN values are objects of component groups; empty
values inside a multi-value are null; IS and DS are JSON numbers.

Binary values longer than ``bulk_threshold`` bytes are not inlined: when the
file offset is known the element carries ``"BulkDataURI":
"file:///abs/path?offset=N&length=M"`` (where the value starts in the file and
how long it is), otherwise it is left out and listed in the record's
``bulk_omitted``.

One bad element never fails the file: it becomes
``{"vr": VR, "error": {"code": "bad_value", "message": ...}, "raw": "..."}``
(``error`` and ``raw`` are this tool's additions to the model) and the rest
is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..stream.records import ErrorCode
from . import dictionary
from .reader import Dataset, Element
from .values import BULK_VRS, BadValue, Charset, inline_binary, person_name, python_values


@dataclass
class JsonOptions:
    """How a dataset is written."""

    bulk_threshold: int = 1024  # inline binary values up to this many bytes
    bulk_uri: bool = True  # note larger ones with a BulkDataURI (else leave them out)
    path: str | None = None  # the file, for BulkDataURI
    deflated: bool = False  # offsets are in the inflated stream: no usable URI
    errors: list[str] = field(default_factory=list)  # tags of elements with error markers
    omitted: list[str] = field(default_factory=list)  # tags of bulk elements left out


def to_json_model(ds: Dataset, options: JsonOptions | None = None, charset: Charset | None = None) -> dict[str, Any]:
    """The DICOM JSON Model object of a dataset (as read by ``dcmtools.dicom.reader``)."""
    options = options or JsonOptions()
    charset = Charset.of(ds, charset)
    out: dict[str, Any] = {}
    for tag, element in ds.items():
        if tag & 0xFFFF == 0:
            continue  # group lengths are not part of the model
        key = f"{tag:08X}"
        entry = _json_element(element, ds, charset, options, key)
        if entry is not None:
            out[key] = entry
    return out


def _json_element(
    element: Element, ds: Dataset, charset: Charset, options: JsonOptions, key: str
) -> dict[str, Any] | None:
    vr = element.vr
    if element.items is not None:
        entry: dict[str, Any] = {"vr": "SQ"}
        if element.items:
            entry["Value"] = [to_json_model(item, options, charset) for item in element.items]
        return entry
    if vr in BULK_VRS or element.value is None:
        if element.value is None and element.length:
            return _bulk_note(element, options, key)
        if not element.length:
            return {"vr": vr}
        return {"vr": vr, "InlineBinary": inline_binary(element, ds.little)}
    try:
        values = python_values(element, ds, charset)
    except BadValue as exc:
        options.errors.append(key)
        return {
            "vr": vr,
            "error": {"code": ErrorCode.BAD_VALUE, "message": str(exc)},
            "raw": (element.value or b"").decode("latin-1"),
        }
    if not values:
        return {"vr": vr}
    if vr == "PN":
        values = [(person_name(v) or None) if v is not None else None for v in values]
        if not any(values):
            return {"vr": vr}
    return {"vr": vr, "Value": values}


def _bulk_note(element: Element, options: JsonOptions, key: str) -> dict[str, Any] | None:
    if options.bulk_uri and options.path and element.offset is not None and not options.deflated:
        return {"vr": element.vr, "BulkDataURI": bulk_data_uri(options.path, element.offset, element.length)}
    options.omitted.append(key)
    return None


def bulk_data_uri(path: str, offset: int, length: int) -> str:
    """``file:///abs/path?offset=N&length=M`` for a value that was not read."""
    # quote the bytes: a file name that is not UTF-8 is percent-encoded as it is on disk
    return f"file://{quote(os.fsencode(os.path.abspath(path)))}?offset={offset}&length={length}"


# ---------------------------------------------------------------- flat form
def to_flat(ds: Dataset, options: JsonOptions | None = None, charset: Charset | None = None) -> dict[str, Any]:
    """``{"PatientName": "DOE^JOHN", "Rows": 512, ...}``: keywords, plain values.

    One value gives a scalar, several a list, none null; sequences are lists of
    objects; PN is its string form; binary data is base64 (or its BulkDataURI
    when over the threshold); elements without a keyword (private, unknown)
    are keyed by their 8-digit tag.
    """
    options = options or JsonOptions()
    charset = Charset.of(ds, charset)
    out: dict[str, Any] = {}
    for tag, element in ds.items():
        if tag & 0xFFFF == 0:
            continue
        key = dictionary.keyword_of(tag) if not tag >> 16 & 1 else ""
        key = key or f"{tag:08X}"
        value = _flat_value(element, ds, charset, options, f"{tag:08X}")
        if value is not _OMIT:
            out[key] = value
    return out


def flat_name(value: Any) -> Any:
    """A PN value of the JSON model as the flat form writes it: the Alphabetic group alone, else the
    three groups joined with '=' (trailing empty ones dropped); a value that is not a dict as it is."""
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and "Alphabetic" in value:
        return value["Alphabetic"]
    return "=".join(value.get(k, "") for k in ("Alphabetic", "Ideographic", "Phonetic")).rstrip("=")


def flat_from_model(dataset: dict[str, Any]) -> dict[str, Any]:
    """The flat form of a JSON-model dataset (a query's identifier, a record's dataset): keyword ->
    plain value(s), as ``to_flat`` gives for a file.  A key that is not a tag is kept as it is."""
    out: dict[str, Any] = {}
    for key, element in dataset.items():
        try:
            tag = int(key, 16)
        except ValueError:
            out[key] = element
            continue
        name = (dictionary.keyword_of(tag) if not tag >> 16 & 1 else "") or key
        if element.get("vr") == "SQ":
            out[name] = [flat_from_model(item) for item in element.get("Value") or []]
        elif "error" in element:
            out[name] = {"error": element["error"], "raw": element.get("raw")}
        elif element.get("Value") is None:
            out[name] = element.get("InlineBinary") or element.get("BulkDataURI")
        else:
            values = [flat_name(v) for v in element["Value"]]
            out[name] = values[0] if len(values) == 1 else values
    return out


_OMIT = object()


def _flat_value(element: Element, ds: Dataset, charset: Charset, options: JsonOptions, key: str) -> Any:
    if element.items is not None:
        return [to_flat(item, options, charset) for item in element.items]
    if element.vr in BULK_VRS or element.value is None:
        if element.value is None and element.length:
            note = _bulk_note(element, options, key)
            return note["BulkDataURI"] if note else _OMIT
        return inline_binary(element, ds.little) if element.length else None
    try:
        values = python_values(element, ds, charset)
    except BadValue as exc:
        options.errors.append(key)
        return {
            "error": {"code": ErrorCode.BAD_VALUE, "message": str(exc)},
            "raw": (element.value or b"").decode("latin-1"),
        }
    if not values:
        return None
    return values[0] if len(values) == 1 else values
