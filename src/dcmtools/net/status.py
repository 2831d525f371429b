"""What a DIMSE status code means, in words (PS3.7 Annex C and the service classes).

``describe(0xA700, "storage")`` -> ``("failure", "Out of resources")``.
Importable without pydicom at call time only: pynetdicom's tables are loaded lazily.
"""

from __future__ import annotations

from functools import lru_cache

_RANGES = [
    (0xA700, 0xA7FF, "failure", "Out of resources"),
    (0xA900, 0xA9FF, "failure", "Data set does not match SOP class"),
    (0xC000, 0xCFFF, "failure", "Cannot understand"),
    (0xB000, 0xBFFF, "warning", "Warning"),
]

SERVICES = ("verification", "storage", "find", "move", "get", "worklist", "commitment", "print", "general")


@lru_cache(maxsize=None)
def _table(service: str) -> dict[int, tuple[str, str]]:
    from pynetdicom import status as st

    tables = {
        "verification": st.VERIFICATION_SERVICE_CLASS_STATUS,
        "storage": st.STORAGE_SERVICE_CLASS_STATUS,
        "find": st.QR_FIND_SERVICE_CLASS_STATUS,
        "move": st.QR_MOVE_SERVICE_CLASS_STATUS,
        "get": st.QR_GET_SERVICE_CLASS_STATUS,
        "worklist": st.MODALITY_WORKLIST_SERVICE_CLASS_STATUS,
        "commitment": st.STORAGE_COMMITMENT_SERVICE_CLASS_STATUS,
        "print": st.PRINT_JOB_MANAGEMENT_SERVICE_CLASS_STATUS,
        "general": st.GENERAL_STATUS,
    }
    table = dict(st.GENERAL_STATUS)
    table.update(tables.get(service, {}))
    return table


def describe(code: int, service: str = "general") -> tuple[str, str]:
    """``(category, meaning)``; category is success, warning, failure, cancel or pending."""
    if code == 0x0000:
        return "success", "Success"
    entry = _table(service).get(code)
    if entry:
        category, meaning = entry
        return category.lower(), meaning.rstrip(".")
    for low, high, category, meaning in _RANGES:
        if low <= code <= high:
            return category, meaning
    if code in (0xFF00, 0xFF01):
        return "pending", "Pending"
    if code == 0xFE00:
        return "cancel", "Cancelled"
    return "failure", "Unknown status"


def status_fields(code: int, service: str = "general", error_comment: str | None = None) -> dict[str, object]:
    """The status part of a record: ``{"status": "0x0000", "status_meaning": "Success"}``."""
    category, meaning = describe(code, service)
    fields: dict[str, object] = {"status": f"0x{code:04X}", "status_meaning": meaning}
    if category == "warning":
        fields["warning"] = True
    if error_comment:
        fields["error_comment"] = error_comment
    return fields


def is_success(code: int) -> bool:
    return code == 0x0000


def is_ok(code: int, service: str = "general") -> bool:
    """Success or warning: the operation was carried out."""
    return describe(code, service)[0] in ("success", "warning")
