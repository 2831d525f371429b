"""Modality Worklist: the query a modality makes (``worklist``), and the items ``listen`` answers from.

    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.net.worklist import worklist, worklist_identifier

    identifier = worklist_identifier(date="today", modality="CR")
    for record in worklist(parse_peer("RIS@10.0.0.7:104"), identifier, NetOptions()):
        print(record["dataset"])

The identifier asks for what a modality shows (``keys.WORKLIST_KEYS``):
patient name, ID, birth date, sex, the veterinary attributes (species and
breed, with their code sequences, breed registration, responsible person
and role, responsible organization, neutered), accession number, requested
procedure, and the scheduled procedure step (station AE title, start date
and time, modality, performing physician, description, station name, ID).
The friendly filters go into the scheduled procedure step item: ``date``
(start date; default today, ``any`` for no filter), ``modality``,
``station_aet``; ``patient`` matches the patient name.

Items for ``listen --worklist-dir DIR``: every ``*.wl`` or ``*.dcm`` file
(a DICOM dataset, with or without file meta) and every ``*.json`` file (one
dataset in the DICOM JSON model, or a list of them) directly in DIR; they
are read again when they change.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .assoc import NetOptions
from .finder import Finder
from .keys import WORKLIST_KEYS, date_key, identifier_from, name_key, parse_keys
from .peer import Peer

LOGGER = logging.getLogger("dcmtools.net")
SPS = "ScheduledProcedureStepSequence[0]"


def worklist_identifier(
    key_texts: Iterable[str] = (),
    *,
    date: str | None = "today",
    modality: str | None = None,
    station_aet: str | None = None,
    patient: str | None = None,
    defaults: bool = True,
) -> dict[str, Any]:
    """The identifier of a worklist query: the default return keys, the filters, then ``-k`` keys (which win)."""
    filters = []
    if date and date.strip().lower() not in ("any", "all", "*"):
        filters.append(f"{SPS}.ScheduledProcedureStepStartDate={date_key(date)}")
    if modality:
        filters.append(f"{SPS}.Modality={modality.upper()}")
    if station_aet:
        filters.append(f"{SPS}.ScheduledStationAETitle={station_aet}")
    if patient:
        filters.append(f"PatientName={name_key(patient)}")
    base = list(WORKLIST_KEYS if defaults else []) + filters
    # The empty Specific Character Set is a return key: the server says which one its answers use.
    return identifier_from(parse_keys(key_texts), base)


def worklist(
    peer: Peer,
    identifier: dict[str, Any],
    options: NetOptions | None = None,
    *,
    limit: int | None = None,
    check: bool = True,
    flat: bool = False,
) -> Iterator[dict[str, Any]]:
    """Modality Worklist C-FIND; yields one ``match`` record per item (as ``query.find``)."""
    finder = Finder(peer, identifier, options or NetOptions(), "WORKLIST", "worklist", limit, False, check, flat)
    yield from finder.run()


# ------------------------------------------------------------- items for listen
class WorklistItems:
    """The worklist items of a folder, read again when a file changes (thread-safe)."""

    SUFFIXES = (".wl", ".dcm", ".json")

    def __init__(self, folder: str | os.PathLike[str], on_error: Any = None) -> None:
        self.folder = os.fspath(folder)
        self.on_error = on_error
        self._cache: dict[str, tuple[tuple[int, int], list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        if not os.path.isdir(self.folder):
            raise DcmtoolsError(
                ErrorCode.NOT_FOUND,
                f"the worklist folder {self.folder!r} does not exist",
                "give `worklist_dir` a folder of .wl or .json items",
                ExitStatus.USAGE,
            )

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, JSON-model dataset) of every item, in name order."""
        out: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            try:
                names = sorted(os.listdir(self.folder))
            except OSError as exc:
                LOGGER.warning("cannot list the worklist folder %s: %s", self.folder, exc)
                return []
            seen = set()
            for name in names:
                if name.startswith(".") or not name.lower().endswith(self.SUFFIXES):
                    continue
                path = os.path.join(self.folder, name)
                seen.add(path)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                signature = (stat.st_mtime_ns, stat.st_size)
                cached = self._cache.get(path)
                if cached is None or cached[0] != signature:
                    cached = (signature, self._read(path))
                    self._cache[path] = cached
                out.extend((path, item) for item in cached[1])
            for gone in set(self._cache) - seen:
                del self._cache[gone]
        return out

    def _read(self, path: str) -> list[dict[str, Any]]:
        try:
            return read_items(path)
        except DcmtoolsError as exc:
            LOGGER.warning("worklist item %s: %s", path, exc.message)
            if self.on_error is not None:
                self.on_error(path, exc)
            return []


def read_items(path: str) -> list[dict[str, Any]]:
    """The worklist item(s) of one file as JSON-model datasets; ``DcmtoolsError`` when unreadable."""
    if path.lower().endswith(".json"):
        try:
            with open(path, encoding="utf-8") as stream:
                data = json.load(stream)
        except (OSError, ValueError) as exc:
            raise DcmtoolsError(
                ErrorCode.INVALID,
                f"cannot read it as JSON: {exc}",
                "write one dataset in the DICOM JSON model (or a list of them)",
            ) from None
        items = data if isinstance(data, list) else [data]
        if not all(isinstance(item, dict) for item in items):
            raise DcmtoolsError(
                ErrorCode.INVALID,
                "it is not a DICOM JSON dataset (an object of tags)",
                "write one dataset in the DICOM JSON model (or a list of them)",
            )
        return [_normalized(item) for item in items]
    from ..dicom import jsonmodel, reader

    try:
        read = reader.read(path, bulk_threshold=256)
    except reader.ReadError as exc:
        raise DcmtoolsError(exc.code, exc.message, exc.hint) from None
    return [jsonmodel.to_json_model(read.dataset, jsonmodel.JsonOptions(bulk_threshold=256, bulk_uri=False))]


def _normalized(item: dict[str, Any]) -> dict[str, Any]:
    """A JSON-model item as we match it: tags upper-case, PN values as objects."""
    out = {}
    for key, element in item.items():
        if not isinstance(element, dict):
            raise DcmtoolsError(
                ErrorCode.INVALID,
                f"element {key!r} is not an object with a 'vr'",
                'write the DICOM JSON model: {"00100010": {"vr": "PN", "Value": [...]}}',
            )
        tag_key = key.upper()
        if len(tag_key) != 8 or any(c not in "0123456789ABCDEF" for c in tag_key):
            raise DcmtoolsError(
                ErrorCode.INVALID,
                f"{key!r} is not a tag (8 hexadecimal digits)",
                'write the DICOM JSON model: {"00100010": {"vr": "PN", "Value": [...]}}',
            )
        element = dict(element)
        if element.get("vr") == "SQ":
            element["Value"] = [_normalized(v) for v in element.get("Value") or []]
        elif element.get("vr") == "PN" and element.get("Value"):
            element["Value"] = [{"Alphabetic": v} if isinstance(v, str) else v for v in element["Value"]]
        out[tag_key] = element
    return out
