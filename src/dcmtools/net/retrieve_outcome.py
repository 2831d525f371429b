"""What one C-MOVE or C-GET came to: the sub-operation counts and status of its responses (``Outcome``),
merged over the associations a C-GET is split into."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..stream.records import DcmtoolsError
from .identifiers import from_bytes
from .keys import (
    TAGS,
    texts,
)
from .qrexchange import Response
from .status import describe


@dataclass
class Outcome:
    status: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    error_comment: str | None = None
    failed_uids: list[str] = field(default_factory=list)
    cancelled: bool = False
    responses: int = 0
    refused: DcmtoolsError | None = None  # the association was dropped instead of an answer

    def update(self, response: Response, transfer_syntax: str) -> None:
        self.responses += 1
        for name in ("Completed", "Failed", "Warning", "Remaining"):
            value = response.count(name)
            if value is not None:
                setattr(self, name.lower(), value)
        if response.pending:
            return
        self.status = response.status
        self.error_comment = response.error_comment
        if response.category == "cancel":
            self.cancelled = True
        else:
            self.remaining = 0
        if response.identifier:
            try:
                ds = from_bytes(response.identifier, transfer_syntax)
            except Exception:  # noqa: BLE001 - a malformed list of failures does not hide the counts
                ds = {}
            self.failed_uids = texts(ds.get(f"{TAGS['FailedSOPInstanceUIDList']:08X}"))

    def add(self, other: Outcome) -> None:
        """Merge the outcome of another C-GET of the same request (split over associations)."""
        self.completed += other.completed
        self.failed += other.failed
        self.warning += other.warning
        self.remaining += other.remaining
        self.failed_uids += other.failed_uids
        self.cancelled = self.cancelled or other.cancelled
        self.error_comment = self.error_comment or other.error_comment
        self.responses += other.responses
        statuses = [c for c in (self.status, other.status) if c is not None]
        bad = [c for c in statuses if describe(c, "get")[0] in ("failure", "cancel")]
        if bad and not (self.completed or self.warning):
            self.status = bad[0]
        elif self.failed or bad:
            self.status = 0xB000
        elif statuses:
            self.status = max(statuses)
