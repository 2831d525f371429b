"""Storage Commitment inputs: the SOP Class/Instance UIDs of a file or an upstream record."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...stream.records import DcmtoolsError, ErrorCode


@dataclass
class Reference:
    """One instance to ask about: its UIDs, and where it came from."""

    sop_class_uid: str
    sop_instance_uid: str
    path: str | None = None

    def fields(self) -> dict[str, Any]:
        base: dict[str, Any] = {"type": "commitment"}
        if self.path:
            base["path"] = self.path
        base["sop_class_uid"] = self.sop_class_uid
        base["sop_instance_uid"] = self.sop_instance_uid
        return base


_CLASS_KEYS = ("sop_class_uid", "SOPClassUID", "00080016")
_INSTANCE_KEYS = ("sop_instance_uid", "SOPInstanceUID", "00080018")


def _value(mapping: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, dict):  # DICOM JSON: {"vr": "UI", "Value": [...]}
            values = value.get("Value") or []
            value = values[0] if values else None
        elif isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def uids_from_record(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(SOP Class UID, SOP Instance UID) named by an upstream record, or its dataset."""
    sop_class = _value(record, _CLASS_KEYS[:1]) or _value(record.get("dataset"), _CLASS_KEYS)
    sop_instance = _value(record, _INSTANCE_KEYS[:1]) or _value(record.get("dataset"), _INSTANCE_KEYS)
    return sop_class, sop_instance


def read_reference(path: str) -> Reference:
    """The UIDs of a DICOM file (its first elements only), or ``DcmtoolsError``."""
    from ...dicom import reader

    try:
        info = reader.read(path, stop_at=0x00080019, bulk_threshold=0)
    except reader.ReadError as exc:
        if exc.code != ErrorCode.TRUNCATED or exc.partial is None:
            raise
        info = exc.partial  # UIDs come first; a file cut short later still names them
        if not (info.sop_class_uid and info.sop_instance_uid):
            raise
    if info.is_dicomdir:
        raise DcmtoolsError(
            ErrorCode.DICOMDIR,
            "this is a DICOMDIR (a media index), not an instance",
            "ask about the files it lists instead",
        )
    if not info.sop_class_uid or not info.sop_instance_uid:
        raise DcmtoolsError(
            ErrorCode.INVALID,
            "the file has no SOP Class UID or SOP Instance UID",
            "an archive cannot commit to keep it without them",
        )
    return Reference(info.sop_class_uid, info.sop_instance_uid, path)


def reference_for(item: Any) -> Reference:
    """The ``Reference`` of one input (a path or an ``InputItem``), or ``DcmtoolsError``."""
    if isinstance(item, (str, os.PathLike)):
        return read_reference(os.fspath(item))
    record = getattr(item, "record", None)
    error = getattr(item, "error", None)
    if error is not None and not (error.code == ErrorCode.BAD_RECORD and isinstance(record, dict)):
        raise error
    if isinstance(record, dict):
        sop_class, sop_instance = uids_from_record(record)
        named = record.get("out") or record.get("path")
        # a record naming a folder gives each file under it: those files speak for themselves
        whole = (
            error is not None or not isinstance(named, str) or os.path.normpath(named) == os.path.normpath(item.path)
        )
        if sop_class and sop_instance and whole:
            return Reference(sop_class, sop_instance, item.path if error is None else None)
        if error is not None:
            raise DcmtoolsError(
                ErrorCode.BAD_RECORD,
                "input record names no file and no SOP Class UID and SOP Instance UID",
                "pipe the records of send, listen or a query, or give files",
            )
    return read_reference(item.path)


# ====================================================================== one exchange on a busy association
