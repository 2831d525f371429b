"""Records as a table a spreadsheet opens: ``--csv`` and ``--tsv`` (as csvkit and sqlite-utils write them).

    from dcmtools.stream.tables import TableWriter
    table = TableWriter(sys.stdout, ["PatientName", "StudyDate"], lead=["path"])
    for record in records:
        table.write(record)
    table.close()                      # the header alone when there was no row

The rules (the README's "CSV and TSV" section says the same):

- A header row, then one row per item record (a record with an ``ok`` flag); the
  summary and other records are never rows.
- The columns: ``lead`` fields of the record itself (``path`` for dump, ``q`` for
  find --queries-from), then one per element path (``PatientName``, ``0010,0020``,
  ``Seq[0].Keyword``; ``Seq.Keyword`` gathers every item), then ``error`` (the
  error code) and ``error_message``, empty when the item succeeded.
- Values as text: multiple values joined with a backslash, as DICOM does; a person
  name as ``--flat`` writes it (the alphabetic name, then ``=ideographic=phonetic``
  when the name has those groups); whole numbers without ``.0``; binary data as its
  BulkDataURI or base64 InlineBinary; a sequence as JSON text of its items in the
  ``--flat`` form (``[{"CodeValue":"T-D1100",...}]``), as sqlite-utils stores
  nested values; an absent or empty element as an empty cell.
- ``delimiter="\\t"`` gives TSV: the same quoting rules (a value holding a tab, a
  quote or a newline is quoted), so Python's csv module reads both back.

Works on records in either dataset form (DICOM JSON model or ``--flat``).
Importable without typer or pydicom.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from .records import printable_name

ERROR_COLUMNS = ("error", "error_message")

# dump --csv without -t: who, what, when, which image.
DUMP_COLUMNS = (
    "PatientName",
    "PatientID",
    "StudyDate",
    "Modality",
    "StudyDescription",
    "SeriesNumber",
    "InstanceNumber",
    "SOPInstanceUID",
)


def key_columns(keys: Iterable[str]) -> list[str]:
    """The columns of ``-k KEY[=VALUE]`` keys: each key without its value, in order, once each."""
    columns: list[str] = []
    for key in keys:
        name = key.partition("=")[0].strip()
        if name and name not in columns:
            columns.append(name)
    return columns


def plain_columns(keys: Iterable[str]) -> list[str]:
    """Default return keys fit for a table: without SpecificCharacterSet and whole sequences."""
    return [k for k in key_columns(keys) if k != "SpecificCharacterSet" and not k.endswith("Sequence")]


class TableWriter:
    """Writes item records as CSV (or TSV) rows; see the module's rules."""

    def __init__(
        self,
        stream: TextIO,
        columns: Sequence[str],
        *,
        lead: Sequence[str] = (),
        delimiter: str = ",",
    ) -> None:
        from ..dicom.tagpath import parse_path  # the dictionary loads here, not at import

        self.columns = list(columns)
        self.lead = list(lead)
        self.paths = [parse_path(c) for c in self.columns]  # PathError for a column that names no element
        self.header = [*self.lead, *self.columns, *ERROR_COLUMNS]
        self.stream = stream
        # "\n" line ends as the JSON Lines stream has them; csv's default is "\r\n".
        self._csv = csv.writer(stream, delimiter=delimiter, lineterminator="\n")
        self._started = False

    def write(self, record: dict[str, Any]) -> None:
        """One row when ``record`` is an item (``ok`` true or false); the summary and others are skipped."""
        self._start()
        if record.get("type") == "summary" or not isinstance(record.get("ok"), bool):
            return
        data = record.get("dataset") or {}
        error = (record.get("error") or {}) if record.get("ok") is False else {}
        row = [cell(record.get(name)) for name in self.lead]
        row += [cell_at(data, steps) for steps in self.paths]
        row += [str(error.get("code") or ("error" if record.get("ok") is False else "")), str(error.get("message", ""))]
        self._csv.writerow([printable_name(text) for text in row])
        self.stream.flush()

    def close(self) -> None:
        """Write the header if no record came (a query without matches is still a table)."""
        self._start()
        self.stream.flush()

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._csv.writerow(self.header)


def cell_at(dataset: dict[str, Any], steps: Sequence[Any]) -> str:
    """The text of the element at ``steps`` (``tagpath`` steps) in a record's dataset."""
    found = _values_at([dataset], steps)
    return "\\".join(found)


def _values_at(datasets: list[dict[str, Any]], steps: Sequence[Any]) -> list[str]:
    step, rest = steps[0], steps[1:]
    out: list[str] = []
    for dataset in datasets:
        element = _lookup(dataset, step.tag)
        if element is None:
            continue
        if not rest:
            if step.index is not None:  # Seq[0] as the last step: that item
                items = _items(element)
                text = _json([items[step.index]]) if step.index < len(items) else ""
            else:
                text = cell(element)
            if text:
                out.append(text)
            continue
        items = _items(element)
        if step.index is not None:
            items = items[step.index : step.index + 1]
        out += _values_at(items, rest)
    return out


def _lookup(dataset: dict[str, Any], tag: int) -> Any:
    if not isinstance(dataset, dict):
        return None
    key = f"{tag:08X}"
    if key in dataset:
        return dataset[key]
    from ..dicom import dictionary

    keyword = dictionary.keyword_of(tag)
    return dataset.get(keyword) if keyword else None


def _is_model_element(value: Any) -> bool:
    return isinstance(value, dict) and "vr" in value


def _items(element: Any) -> list[dict[str, Any]]:
    """The items of a sequence, in either form."""
    if _is_model_element(element):
        element = element.get("Value") if element.get("vr") == "SQ" else None
    if isinstance(element, list):
        return [item for item in element if isinstance(item, dict)]
    return []


def cell(value: Any) -> str:
    """One value (a record field, a JSON-model element or a --flat value) as the text of a cell."""
    if value is None:
        return ""
    if _is_model_element(value):
        return _model_text(value)
    if isinstance(value, dict):
        if "error" in value:  # --flat: an element that could not be read
            return str(value.get("raw") or "")
        return _json(value)
    if isinstance(value, list):
        if any(isinstance(v, dict) for v in value):  # --flat: a sequence
            return _json(value) if value else ""
        return "\\".join(cell(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _model_text(element: dict[str, Any]) -> str:
    if element.get("vr") == "SQ":
        items = element.get("Value") or []
        return _json([_flat(item) for item in items]) if items else ""
    if "error" in element:
        return str(element.get("raw") or "")
    values = element.get("Value")
    if values is None:
        return str(element.get("BulkDataURI") or element.get("InlineBinary") or "")
    from ..dicom.jsonmodel import flat_name

    return "\\".join(cell(flat_name(v)) for v in values)


def _flat(item: dict[str, Any]) -> dict[str, Any]:
    """A JSON-model sequence item in the --flat form (keywords, plain values)."""
    if not all(_is_model_element(v) for v in item.values()):
        return item  # already flat
    from ..dicom.jsonmodel import flat_from_model

    return flat_from_model(item)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
