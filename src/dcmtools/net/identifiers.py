"""An identifier (a JSON-model dataset, see ``keys``) in its other forms: a pydicom ``Dataset`` to
send, the bytes of a received one, and the ``--flat`` keyword form of the records."""

from __future__ import annotations

from typing import Any

from ..dicom import dictionary
from .keys import TAGS, vr_of


def needs_unicode(identifier: dict[str, Any]) -> bool:
    """Whether any text in a JSON-model dataset is outside ASCII."""
    for element in identifier.values():
        if element.get("vr") == "SQ":
            if any(needs_unicode(item) for item in element.get("Value") or []):
                return True
            continue
        for value in element.get("Value") or []:
            if isinstance(value, dict):
                if any(not str(v).isascii() for v in value.values()):
                    return True
            elif isinstance(value, str) and not value.isascii():
                return True
    return False


def clean_json(identifier: dict[str, Any]) -> dict[str, Any]:
    """A JSON-model dataset pydicom can take: no elements carrying this tool's error markers."""
    out = {}
    for key, element in identifier.items():
        if "error" in element:
            raw = element.get("raw")
            element = {"vr": element.get("vr", "UN")}
            if raw:
                element["Value"] = [v.strip() for v in raw.split("\\")]
        elif element.get("vr") == "SQ" and element.get("Value"):
            element = {**element, "Value": [clean_json(item) for item in element["Value"]]}
        out[key] = element
    return out


def to_pydicom(identifier: dict[str, Any]) -> Any:
    """A pydicom Dataset of a JSON-model identifier (Specific Character Set set for non-ASCII text)."""
    from pydicom.dataset import Dataset

    data = clean_json(identifier)
    charset_key = f"{TAGS['SpecificCharacterSet']:08X}"
    if needs_unicode(data):
        data[charset_key] = {"vr": "CS", "Value": ["ISO_IR 192"]}
    ds = Dataset.from_json(data)
    _exact_names(ds, data, _encodings(ds))
    return ds


def _encodings(ds: Any) -> list[str]:
    from pydicom.charset import convert_encodings

    return convert_encodings(ds.get("SpecificCharacterSet") or "ISO_IR 6")


def pn_text(value: Any) -> str:
    """A PN value of the JSON model as the text it stands for (``DOE^J=ドウ^J=``): a query value from
    -k is kept whole in "Alphabetic", separators included."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if set(value) <= {"Alphabetic"}:
        return str(value.get("Alphabetic") or "")
    return "=".join(str(value.get(k) or "") for k in ("Alphabetic", "Ideographic", "Phonetic")).rstrip("=")


def _exact_names(ds: Any, data: dict[str, Any], encodings: list[str]) -> None:
    """Person names as given, byte for byte: pydicom drops trailing component separators
    ("Wang^XiaoDong=王^小東=" would lose its "=", and an exact match with it)."""
    from pydicom.charset import encode_string

    for key, element in data.items():
        values = element.get("Value")
        if not values:
            continue
        tag = int(key, 16)
        if element.get("vr") == "SQ":
            for item_ds, item in zip(ds[tag].value, values, strict=False):
                if isinstance(item, dict):
                    _exact_names(item_ds, item, encodings)
        elif element.get("vr") == "PN":
            ds[tag].value = encode_string("\\".join(pn_text(v) for v in values), encodings)


_META_HEAD = b"DICM"


def _meta(ts: str) -> bytes:
    import struct

    uid = ts.encode("ascii")
    if len(uid) % 2:
        uid += b"\0"
    element = struct.pack("<HH2sH", 2, 0x0010, b"UI", len(uid)) + uid
    return _META_HEAD + struct.pack("<HH2sHL", 2, 0, b"UL", 4, len(element)) + element


def from_bytes(data: bytes, transfer_syntax: str, bulk_threshold: int = 1024) -> dict[str, Any]:
    """A received identifier (dataset bytes in ``transfer_syntax``) as a JSON-model dict."""
    from ..dicom import jsonmodel, reader

    if not data:
        return {}
    read = reader.read_bytes(_meta(transfer_syntax) + bytes(data), bulk_threshold=bulk_threshold)
    return jsonmodel.to_json_model(read.dataset, jsonmodel.JsonOptions(bulk_threshold=bulk_threshold, bulk_uri=False))


def dataset_of(data: bytes, transfer_syntax: str) -> Any:
    """A received identifier as a ``dcmtools.dicom.reader.Dataset`` (for ``--flat``)."""
    from ..dicom import reader

    return reader.read_bytes(_meta(transfer_syntax) + bytes(data)).dataset


def flat_of(identifier: dict[str, Any]) -> dict[str, Any]:
    """The ``--flat`` form of a JSON-model dataset: keyword -> plain value(s)."""
    from ..dicom.jsonmodel import flat_from_model

    return flat_from_model(identifier)


def json_from_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """Back from the ``--flat`` form (piped records) to a JSON-model dataset (enough for identifiers)."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        tag = dictionary.tag_of(name)
        if tag is None:
            try:
                tag = int(name, 16)
            except ValueError:
                continue
        vr = vr_of(tag)
        key = f"{tag:08X}"
        if vr == "SQ":
            out[key] = {"vr": "SQ", "Value": [json_from_flat(item) for item in value or [] if isinstance(item, dict)]}
            continue
        if value is None:
            out[key] = {"vr": vr}
            continue
        values = value if isinstance(value, list) else [value]
        if vr == "PN":
            values = [{"Alphabetic": v} if isinstance(v, str) else v for v in values]
        out[key] = {"vr": vr, "Value": values}
    return out
