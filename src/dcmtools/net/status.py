"""What a DIMSE status code means, in words (PS3.7 Annex C and the service classes).

``describe(0xA700, "storage")`` -> ``("failure", "Out of resources")``.
Importable without pydicom at call time only: pynetdicom's tables are loaded lazily.
"""

from __future__ import annotations

from functools import cache

_RANGES = [
    (0xA700, 0xA7FF, "failure", "Out of resources"),
    (0xA900, 0xA9FF, "failure", "Data set does not match SOP class"),
    (0xC000, 0xCFFF, "failure", "Cannot understand"),
    (0xB000, 0xBFFF, "warning", "Warning"),
]

SERVICES = ("verification", "storage", "find", "move", "get", "worklist", "commitment", "print", "general")


@cache
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


# What an Error Comment says, in the words archives use (checked in this order).
_COMMENT_CAUSES = (
    (
        (
            "missing",
            "required",
            "absent",
            "mandatory",
            "no such tag",
            "not present",
            "invalid tag",
            "bad tag",
            "attribute",
            "cannot index",
        ),
        "the peer says the dataset lacks or has a bad attribute it needs ({comment}): fix the file "
        "(dcmtools dump shows it; dciodvfy checks it) and send again",
    ),
    (
        ("disk", "space", "full", "quota", "storage area"),
        "the peer says its storage is full ({comment}): ask its admin to make room, then send again",
    ),
    (("memory",), "the peer says it ran out of memory ({comment}): send again later, or fewer at once"),
    (("duplicate", "already exist", "conflict"), "the peer says it already has this instance ({comment})"),
    (
        ("permission", "not allowed", "denied", "refused", "unauthori"),
        "the peer says we may not do this ({comment}): ask its admin to allow our AE title",
    ),
)


def comment_hint(comment: str | None) -> str | None:
    """A hint from the peer's own Error Comment (0000,0902), when it names a cause we know."""
    if not comment:
        return None
    text = comment.casefold()
    for words, hint in _COMMENT_CAUSES:
        if any(word in text for word in words):
            return hint.format(comment=comment.strip())
    return f"the peer says: {comment.strip()}"


def storage_hint(code: int, comment: str | None = None) -> str | None:
    """What to do about a failed C-STORE, from the status code and the peer's Error Comment only:
    0xA7xx is what many archives answer for any refusal (Orthanc: a dataset it cannot index), so
    without a comment it is not read as "disk full"."""
    said = comment_hint(comment)
    if said:
        return said
    if 0xA700 <= code <= 0xA7FF:
        return (
            "the peer answered 'out of resources' without saying why (some archives, e.g. Orthanc, answer it "
            "for any dataset they cannot store, such as one missing a UID): its log says why"
        )
    if 0xA900 <= code <= 0xA9FF:
        return "the peer found the dataset does not match its SOP class; check the file with dciodvfy"
    if 0xC000 <= code <= 0xCFFF:
        return "the peer could not process the dataset; check its log"
    if code in (0x0122, 0x0124):
        return "the peer does not store this kind of object, or refuses us; check its configuration"
    return "check the peer's log"
