"""Storage Commitment: the SOP class, its constants and the failure reasons (PS3.4 Annex J, PS3.3 C.14.1.1)."""

from __future__ import annotations

import logging

from ..status import describe

LOGGER = logging.getLogger("dcmtools.net")

STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"  # Storage Commitment Push Model SOP Class
WELL_KNOWN_INSTANCE = "1.2.840.10008.1.20.1.1"  # its well-known SOP Instance
REQUEST_ACTION = 1  # Action Type ID: Request Storage Commitment
EVENT_ALL_COMMITTED = 1  # Event Type ID: Storage Commitment Request Successful
EVENT_FAILURES = 2  # Event Type ID: Storage Commitment Request Complete - Failures Exist
DEFAULT_BATCH = 500
DEFAULT_WAIT = 60.0
SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")  # explicit, implicit VR little endian

# PS3.3 C.14.1.1 Failure Reason: (words, what to do).
FAILURE_REASONS: dict[int, tuple[str, str]] = {
    0x0110: ("processing failure", "the archive failed while processing it; check its log, then ask again"),
    0x0112: ("no such object instance", "the archive does not have it: send it (again), then ask again"),
    0x0119: (
        "class / instance conflict",
        "the archive holds this SOP Instance UID as another SOP class: two different objects share the UID; check the source",
    ),
    0x0122: (
        "referenced SOP class not supported",
        "the archive does not keep this kind of object: keep the local copy",
    ),
    0x0131: (
        "duplicate transaction UID",
        "the archive saw this Transaction UID before; ask again (a new one is made per request)",
    ),
    0x0213: (
        "resource limitation",
        "the archive lacks the resources (disk space?) to keep it; check it, then send and ask again",
    ),
}


def failure_words(code: int | None) -> tuple[str, str]:
    """(meaning, hint) of a Failure Reason (0x0112 -> "no such object instance", ...)."""
    if code is None:
        return "no failure reason given", "check the archive's log"
    words = FAILURE_REASONS.get(code)
    if words:
        return words
    category, meaning = describe(code, "commitment")
    return (meaning.lower() if meaning != "Unknown status" else "unknown failure reason"), "check the archive's log"


# ====================================================================== inputs
