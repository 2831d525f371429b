"""The DIMSE exchange that find, move, get and worklist share: one request on a paused association
and its responses read one by one (``Exchange``), the accepted context, message IDs, identifiers."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .assoc import NetOptions, failure_after
from .identifiers import to_pydicom
from .peer import Peer
from .status import describe

LOGGER = logging.getLogger("dcmtools.net")
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
CANCEL_WAIT = 3.0  # seconds to wait for the peer's answer to a C-CANCEL


# ------------------------------------------------------------- the DIMSE exchange
@dataclass
class Response:
    """One response of a C-FIND/C-MOVE/C-GET: status, its category, counts, identifier bytes."""

    status: int
    category: str
    identifier: bytes | None
    primitive: Any
    error_comment: str | None = None

    @property
    def pending(self) -> bool:
        return self.category == "pending"

    def count(self, name: str) -> int | None:
        value = getattr(self.primitive, f"NumberOf{name}Suboperations", None)
        return int(value) if value is not None else None


class Exchange:
    """One request on an established association and its responses (see ``responses``).

    ``service`` names the status table (find, move, get, worklist).  The
    association's own reactor is paused while we read its messages, as
    pynetdicom's ``send_c_*`` do.
    """

    def __init__(
        self, assoc: Any, peer: Peer, options: NetOptions, primitive: Any, context: Any, service: str, what: str
    ) -> None:
        self.assoc = getattr(assoc, "association", assoc)
        self.peer = peer
        self.timeout = options.timeout_for(peer)
        self.primitive = primitive
        self.context = context
        self.service = service
        self.what = what
        self.cancelled = False
        self.finished = False

    def _send(self) -> None:
        from . import seam

        seam.pause_reactor_fresh(self.assoc, 5)
        seam.send_dimse(self.assoc, self.primitive, self.context.context_id)

    def cancel(self) -> None:
        """Send a C-CANCEL for this request (once)."""
        if self.cancelled or self.finished or not self.assoc.is_established:
            return
        self.cancelled = True
        if self._final_queued():
            return  # the peer has finished already: nothing to cancel
        from pynetdicom.dimse_primitives import C_CANCEL

        primitive = C_CANCEL()
        primitive.MessageIDBeingRespondedTo = self.primitive.MessageID
        from .seam import send_dimse

        send_dimse(self.assoc, primitive, self.context.context_id)

    def _final_queued(self) -> bool:
        from .seam import dimse_queue

        queue_ = dimse_queue(self.assoc)
        with queue_.mutex:
            waiting = list(queue_.queue)
        for _, message in waiting:
            if getattr(message, "MessageIDBeingRespondedTo", None) == self.primitive.MessageID:
                status = getattr(message, "Status", None)
                if status is not None and describe(int(status), self.service)[0] != "pending":
                    return True
        return False

    def responses(self, timeout: float | None = None) -> Generator[Response, None, None]:
        """Send the request, then yield each response until the final one.

        Raises ``DcmtoolsError`` when no response comes within the timeout
        or the association ends.  On ``KeyboardInterrupt`` it sends a
        C-CANCEL, waits up to ``CANCEL_WAIT`` seconds for the final response,
        and re-raises.
        """
        self._send()
        try:
            while True:
                try:
                    response = self._next(timeout)
                except KeyboardInterrupt:
                    self.cancel()
                    self._drain(CANCEL_WAIT)
                    raise
                yield response
                if not response.pending:
                    self.finished = True
                    return
        finally:
            from .seam import resume_reactor

            resume_reactor(self.assoc)

    def drain(self, seconds: float = CANCEL_WAIT) -> Response | None:
        """After a C-CANCEL: read responses until the final one (or ``seconds``); returns it."""
        return self._drain(seconds)

    def _drain(self, seconds: float) -> Response | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                response = self._next(max(deadline - time.monotonic(), 0.01))
            except (DcmtoolsError, KeyboardInterrupt):
                return None
            if not response.pending:
                self.finished = True
                return response
        return None

    def _next(self, timeout: float | None) -> Response:
        assoc = self.assoc
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            try:
                from .seam import dimse_queue

                context_id, message = dimse_queue(assoc).get(timeout=0.2)
            except queue.Empty:
                if not assoc.is_established or _ended(assoc):
                    raise failure_after(assoc, self.peer, self.what, self.timeout) from None
                if time.monotonic() >= deadline:
                    if timeout is None:
                        assoc.abort()
                        raise failure_after(assoc, self.peer, self.what, self.timeout, timed_out=True) from None
                    raise DcmtoolsError(ErrorCode.TIMEOUT, "no answer yet", None, ExitStatus.TIMEOUT) from None
                continue
            if message is None:
                raise failure_after(assoc, self.peer, self.what, self.timeout)
            if getattr(message, "kind", type(message).__name__) != type(self.primitive).__name__:
                LOGGER.debug("ignoring an unexpected %s during the %s", type(message).__name__, self.what)
                continue
            if getattr(message, "MessageIDBeingRespondedTo", None) != self.primitive.MessageID:
                continue
            status = int(message.Status) if message.Status is not None else 0xC000
            category, _ = describe(status, self.service)
            data = message.Identifier.getvalue() if message.Identifier is not None else None
            comment = getattr(message, "ErrorComment", None)
            return Response(status, category, data, message, str(comment) if comment else None)


def _ended(assoc: Any) -> bool:
    """The association was aborted or its connection closed (the paused reactor has not noticed yet)."""
    try:
        if assoc.acse.is_aborted():
            return True
        from .seam import dul_ended

        return dul_ended(assoc)
    except Exception:  # noqa: BLE001
        return False


def transfer_syntax_of(context: Any) -> str:
    return str(context.transfer_syntax[0])


def context_for(assoc: Any, sop_class: str) -> Any:
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == sop_class:
            return cx
    return None


class MessageIDs:
    """Message IDs for one association (1, 2, ... wrapping at 65535)."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value = self.value % 65535 + 1
        return self.value


def c_find_primitive(message_id: int, sop_class: str, identifier: bytes, priority: int = 0) -> Any:
    from io import BytesIO

    from pynetdicom.dimse_primitives import C_FIND

    primitive = C_FIND()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.Priority = priority
    primitive.Identifier = BytesIO(identifier)
    return primitive


def encode_identifier(identifier: dict[str, Any], transfer_syntax: str) -> bytes:
    """A JSON-model identifier as dataset bytes in the context's transfer syntax."""
    from pydicom.uid import UID

    from .seam import encode

    ts = UID(transfer_syntax)
    data = encode(to_pydicom(identifier), ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
    if data is None:
        raise DcmtoolsError(
            ErrorCode.BAD_KEY, "the query keys cannot be encoded", "check the -k values", ExitStatus.USAGE
        )
    return data


def query_contexts(models: Iterable[str]) -> list[Any]:
    from pynetdicom.presentation import build_context

    return [build_context(uid, UNCOMPRESSED) for uid in models]
