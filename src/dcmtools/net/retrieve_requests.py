"""What to retrieve: ``RetrieveRequest`` (a level and an identifier of unique keys), built from ``-k``
keys (``request_from_keys``), from a record of ``find`` (``request_from_record``) or from a stream of
them (``requests_from_lines``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .identifiers import flat_of, json_from_flat
from .keys import (
    LEVELS,
    TAGS,
    UNIQUE_KEY,
    choose_model,
    first_text,
    identifier_from,
    level_index,
    normalize_level,
    parse_keys,
    sort_identifier,
)


# ------------------------------------------------------------- what to retrieve
@dataclass
class RetrieveRequest:
    """One thing to retrieve: a level, its unique keys (JSON model), where it came from."""

    level: str
    identifier: dict[str, Any]
    model: str | None = None
    source: dict[str, Any] = field(default_factory=dict)  # e.g. {"n": 3} of the find record
    error: DcmtoolsError | None = None
    keys_only: bool = True  # False: keys that need a C-FIND first

    def label(self) -> dict[str, Any]:
        """The identifier as ``{"StudyInstanceUID": "1.2..."}`` for records."""
        flat = flat_of(self.identifier)
        flat.pop("QueryRetrieveLevel", None)
        return flat


def unique_identifier(level: str, dataset: dict[str, Any], model: str) -> dict[str, Any]:
    """The identifier of a match for retrieving it at ``level``: QueryRetrieveLevel and the unique keys.

    Raises ``DcmtoolsError`` (``not_retrievable``) when one is missing.
    """
    needed = []
    if model == "patient":
        needed.append("PatientID")
    needed += [UNIQUE_KEY[lvl] for lvl in LEVELS[1 : level_index(level) + 1]]
    if level == "PATIENT" and "PatientID" not in needed:
        needed.append("PatientID")
    identifier: dict[str, Any] = {f"{TAGS['QueryRetrieveLevel']:08X}": {"vr": "CS", "Value": [level]}}
    for name in needed:
        tag_key = f"{TAGS[name]:08X}"
        value = first_text(dataset.get(tag_key))
        if not value:
            raise DcmtoolsError(
                ErrorCode.NOT_RETRIEVABLE,
                f"the record has no {name}, which a {level.lower()}-level retrieve needs",
                f"let find return it (-k {name}), or retrieve at another `level`",
            )
        identifier[tag_key] = {"vr": "LO" if name == "PatientID" else "UI", "Value": [value]}
    return sort_identifier(identifier)


def _only_unique(identifier: dict[str, Any], level: str, model: str) -> bool:
    allowed = {TAGS["QueryRetrieveLevel"], TAGS["SpecificCharacterSet"]}
    allowed |= {TAGS[UNIQUE_KEY[lvl]] for lvl in LEVELS[: level_index(level) + 1]}
    for tag_key, element in identifier.items():
        tag = int(tag_key, 16)
        if tag not in allowed:
            return False
        if tag != TAGS["QueryRetrieveLevel"] and not first_text(element) and tag == TAGS[UNIQUE_KEY[level]]:
            return False
    return bool(first_text(identifier.get(f"{TAGS[UNIQUE_KEY[level]]:08X}")))


def request_from_keys(level: str, key_texts: Iterable[str], model: str | None = None) -> RetrieveRequest:
    """A request from ``-k`` keys at ``level``; non-unique keys are resolved by a C-FIND first."""
    level = normalize_level(level)
    model = choose_model(level, model)
    identifier = identifier_from(parse_keys(key_texts), (), level)
    return RetrieveRequest(level, identifier, model, keys_only=_only_unique(identifier, level, model))


def request_from_record(record: dict[str, Any], model: str | None = None, level: str | None = None) -> RetrieveRequest:
    """A request from a record of ``find`` (or ``dump``: a file record is retrieved as an image)."""
    source: dict[str, Any] = {k: record[k] for k in ("n", "path") if k in record}
    if record.get("ok") is False:
        upstream = (record.get("error") or {}).get("message", "failed")
        return RetrieveRequest(
            "",
            {},
            source=source,
            error=DcmtoolsError(ErrorCode.UPSTREAM_FAILED, f"skipped: the previous command failed on it ({upstream})"),
        )
    if record.get("model") == "worklist":
        return RetrieveRequest(
            "",
            {},
            source=source,
            error=DcmtoolsError(
                ErrorCode.NOT_RETRIEVABLE,
                "a worklist item is scheduled work, not stored images",
                "query the images with 'dcmtools find' and move those",
            ),
        )
    dataset = record.get("dataset")
    if not isinstance(dataset, dict):
        return RetrieveRequest(
            "",
            {},
            source=source,
            error=DcmtoolsError(
                ErrorCode.BAD_RECORD,
                "the record has no dataset to take the identifiers from",
                "pipe the records of 'dcmtools find' (JSON Lines)",
            ),
        )
    if dataset and not all(len(k) == 8 and all(c in "0123456789ABCDEFabcdef" for c in k) for k in dataset):
        dataset = json_from_flat(dataset)  # the --flat form
    rec_level = level or record.get("level")
    if not rec_level:
        rec_level = "IMAGE" if first_text(dataset.get(f"{TAGS['SOPInstanceUID']:08X}")) else "STUDY"
    try:
        rec_level = normalize_level(rec_level)
        rec_model = choose_model(
            rec_level, model or (record.get("model") if record.get("model") in ("patient", "study") else None)
        )
        identifier = unique_identifier(rec_level, dataset, rec_model)
    except DcmtoolsError as exc:
        exc.exit_status = ExitStatus.FAILED
        return RetrieveRequest(rec_level, {}, source=source, error=exc)
    return RetrieveRequest(rec_level, identifier, rec_model, source=source)


def requests_from_lines(
    stream: TextIO | Iterable[str], model: str | None = None, level: str | None = None
) -> Iterator[RetrieveRequest]:
    """Requests from JSON Lines records (a summary line is skipped; a bad line is an error request)."""
    for number, line in enumerate(stream, 1):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield RetrieveRequest(
                "",
                {},
                source={"line": number},
                error=DcmtoolsError(
                    ErrorCode.BAD_RECORD,
                    f"input line {number} is not a JSON record ({exc.msg})",  # type: ignore[attr-defined]  # json raises JSONDecodeError
                    "pipe the records of 'dcmtools find'",
                ),
            )
            continue
        if not isinstance(record, dict):
            yield RetrieveRequest(
                "",
                {},
                source={"line": number},
                error=DcmtoolsError(ErrorCode.BAD_RECORD, f"input line {number} is not a JSON object"),
            )
            continue
        if record.get("type") in ("summary", "query") and "dataset" not in record:
            if record.get("type") == "query" and record.get("ok") is False:
                yield request_from_record(record, model, level)
            continue
        yield request_from_record(record, model, level)
