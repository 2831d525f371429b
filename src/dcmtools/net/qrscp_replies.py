"""The answering side of the Q/R SCP: C-FIND/C-MOVE/C-GET responses written on the paused association
(``_Replier``), a C-GET's C-STORE sub-operations on the same association (``_GetSession``), and the
sub-operation counts and failure lists they carry."""

from __future__ import annotations

import os
import struct
import time
from io import BytesIO
from typing import Any

from ..stream.records import DcmtoolsError
from . import wire
from .index import StoredInstance
from .status import describe

C_GET_RSP = 0x8010
C_STORE_RSP = 0x8001
C_CANCEL_RQ = 0x0FFF


class _Counts:
    __slots__ = ("remaining", "completed", "failed", "warning")

    def __init__(self) -> None:
        self.remaining = self.completed = self.failed = self.warning = 0


class _Gone(Exception):
    """The requestor aborted, released or dropped the association during a C-GET."""


class _GetSession:
    """The C-STORE sub-operations of one C-GET, on the requestor's own association.

    We own the socket for the whole C-GET (the reactor neither reads nor
    writes it): each sub-operation writes a C-STORE-RQ and the file's dataset
    bytes and reads the C-STORE-RSP; a C-CANCEL-RQ read meanwhile is noted.
    """

    def __init__(self, assoc: Any, msg: Any, context_id: int, ts: str, timeout: float) -> None:
        self.assoc = assoc
        self.dul = assoc.dul
        self.msg = msg
        self.message_id = int(msg.MessageID)
        self.context_id = context_id
        self.ts = ts
        self.timeout = timeout
        self.sop_class = str(msg.AffectedSOPClassUID)
        self._cancel = False
        self._next_id = self.message_id
        self.last_problem: str | None = None
        self._contexts: dict[tuple[str, str], int] | None = None  # (SOP class, syntax) -> context ID, SCP role
        self.reply = _Replier(assoc, context_id, self.message_id, self.sop_class, C_GET_RSP, timeout)

    def __enter__(self) -> _GetSession:
        self._wait_for_idle()
        self.dul.own(True)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.dul.own(False)

    def _wait_for_idle(self) -> None:
        # Messages already queued for the DUL must go out before we write ourselves.
        deadline = time.monotonic() + 5
        from .seam import dul_has_work

        while dul_has_work(self.dul) and time.monotonic() < deadline:
            time.sleep(0.001)

    def cancelled(self) -> bool:
        from .seam import cancel_requested

        return self._cancel or cancel_requested(self.assoc, self.message_id)

    # -- contexts on which we may send C-STOREs
    def _context_for(self, sop_class: str, ts: str) -> tuple[int | None, str | None]:
        if self._contexts is None:
            self._contexts = {}
            for cx in self.assoc.accepted_contexts:
                if cx.as_scu:
                    self._contexts.setdefault((str(cx.abstract_syntax), str(cx.transfer_syntax[0])), cx.context_id)
        found = self._contexts.get((sop_class, ts))
        if found is not None:
            return found, ts
        for candidate in wire.UNCOMPRESSED:
            found = self._contexts.get((sop_class, candidate))
            if found is not None:
                return found, candidate
        return None, None

    def store(self, stored: StoredInstance) -> str:
        """One C-STORE sub-operation: "ok", "warning" or "failed"."""
        from .assoc import uid_name
        from .store import convert, read_head

        try:
            head = read_head(stored.path)
        except DcmtoolsError as exc:
            self.last_problem = f"{os.path.basename(stored.path)}: {exc.message}"
            return "failed"
        context_id, target = self._context_for(head.sop_class, head.transfer_syntax)
        if context_id is None or target is None:
            self.last_problem = f"no presentation context with the SCP role for {uid_name(head.sop_class)}"
            return "failed"
        try:
            if target == head.transfer_syntax:
                with open(stored.path, "rb") as stream:
                    stream.seek(head.offset)
                    payload = stream.read()
            else:
                payload = convert(stored.path, target)
        except (OSError, DcmtoolsError) as exc:
            self.last_problem = f"{os.path.basename(stored.path)}: {getattr(exc, 'message', None) or exc}"
            return "failed"
        self._next_id = self._next_id % 65535 + 1
        command = wire.store_rq(self._next_id, head.sop_class, head.sop_instance, 0)
        buffers: list[Any] = []
        fragment = wire.max_fragment(self.assoc.requestor.maximum_length)
        wire.pdata_iovecs(context_id, command, True, True, fragment, buffers)
        wire.pdata_iovecs(context_id, memoryview(payload), False, True, fragment, buffers)
        trace = self.dul.trace
        if trace is not None:
            trace.dimse_out("C-STORE-RQ", context_id, wire.parse_command(command), size=len(payload))
        response = self._exchange(buffers, self._next_id)
        if trace is not None:
            trace.dimse_in("C-STORE-RSP", context_id, response)
        status = wire.command_us(response, wire.TAG_STATUS, 0xC000)
        category = describe(status, "storage")[0]
        if category == "success":
            return "ok"
        if category == "warning":
            return "warning"
        self.last_problem = f"the requestor answered 0x{status:04X} ({describe(status, 'storage')[1]})"
        return "failed"

    def respond(
        self, status: int, counts: _Counts, comment: str | None = None, failed: list[str] | None = None
    ) -> None:
        """A C-GET-RSP (pending with the counts, or the final one)."""
        self.reply.send(status, _failed_list(failed, self.ts) if failed else None, counts=counts, comment=comment)

    def _exchange(self, buffers: list[Any], message_id: int) -> dict[int, bytes]:
        from .transport import recv_exact, sendv

        try:
            with self.dul.exclusive() as sock:
                sock.settimeout(self.timeout)
                try:
                    sendv(sock, buffers)
                    command = bytearray()
                    while True:
                        header = recv_exact(sock, 6)
                        pdu_type, _, length = struct.unpack(">BBL", header)
                        body = recv_exact(sock, length)
                        if pdu_type != 4:
                            self.dul.hand_over(pdu_type, header, body)
                            raise _Gone(f"PDU type {pdu_type} during the C-GET")
                        for _context, control, data in wire.iter_pdvs(body):
                            if not control & 1:
                                continue  # no dataset is expected from the requestor here
                            command += data
                            if control & 2:
                                parsed = wire.parse_command(command)
                                command = bytearray()
                                field = wire.command_us(parsed, wire.TAG_COMMAND_FIELD)
                                if field == C_CANCEL_RQ:
                                    self._cancel = True
                                    if self.dul.trace is not None:
                                        self.dul.trace.dimse_in("C-CANCEL-RQ", _context, parsed)
                                    continue
                                if (
                                    field == C_STORE_RSP
                                    and wire.command_us(parsed, wire.TAG_MESSAGE_ID_RESPONDED) == message_id
                                ):
                                    return parsed
                finally:
                    try:
                        sock.settimeout(None)
                    except OSError:
                        pass
        except TimeoutError:
            raise _Gone(f"no C-STORE-RSP within {self.timeout:g} s") from None
        except (OSError, ConnectionError) as exc:
            raise _Gone(str(exc)) from None


class _Replier:
    """Responses to one request, written straight to the socket (``FastDUL.exclusive``).

    The requestor's C-CANCEL is read by the association's reactor between two
    responses (or by ``_GetSession`` while it owns the socket)."""

    def __init__(
        self, assoc: Any, context_id: int, message_id: int, sop_class: str, field: int, timeout: float
    ) -> None:
        self.assoc = assoc
        self.dul = assoc.dul
        self.context_id = context_id
        self.message_id = message_id
        self.sop_class = sop_class
        self.field = field
        self.timeout = timeout
        self.fragment = wire.max_fragment(assoc.requestor.maximum_length)
        self.name = _RSP_NAMES[field]

    def cancelled(self) -> bool:
        from .seam import cancel_requested

        return cancel_requested(self.assoc, self.message_id)

    def send(
        self, status: int, dataset: bytes | None = None, *, counts: _Counts | None = None, comment: str | None = None
    ) -> None:
        elements: list[tuple[int, int | str]] = [
            (wire.TAG_AFFECTED_SOP_CLASS, self.sop_class),
            (wire.TAG_COMMAND_FIELD, self.field),
            (wire.TAG_MESSAGE_ID_RESPONDED, self.message_id),
            (wire.TAG_DATASET_TYPE, 0x0000 if dataset else wire.NO_DATASET),
            (wire.TAG_STATUS, status),
        ]
        if counts is not None:
            category = describe(status, "get")[0]
            if category == "pending" or status == 0xFE00:
                elements.append((wire.TAG_REMAINING, counts.remaining))
            if status != 0xA900:
                elements += [
                    (wire.TAG_COMPLETED, counts.completed),
                    (wire.TAG_FAILED, counts.failed),
                    (wire.TAG_WARNING, counts.warning),
                ]
        if comment:
            elements.append((wire.TAG_ERROR_COMMENT, comment[:64]))
        command = wire.encode_command(elements)
        buffers: list[Any] = []
        wire.pdata_iovecs(self.context_id, command, True, True, self.fragment, buffers)
        if dataset:
            wire.pdata_iovecs(self.context_id, memoryview(dataset), False, True, self.fragment, buffers)
        if self.dul.trace is not None:
            self.dul.trace.dimse_out(
                self.name,
                self.context_id,
                wire.parse_command(command),
                pdus=-(-len(dataset) // self.fragment) if dataset else 0,
                size=len(dataset or b""),
            )
        from .transport import sendv

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with self.dul.exclusive() as sock:
                    sock.settimeout(self.timeout)
                    try:
                        sendv(sock, buffers)
                    finally:
                        try:
                            sock.settimeout(None)
                        except OSError:
                            pass
                return
            except ConnectionAbortedError as exc:
                # The reactor has a PDU or an event in hand: let it finish, unless the association is gone.
                if self.dul.state_machine.current_state != "Sta6" or time.monotonic() > deadline:
                    raise _Gone(str(exc)) from None
                time.sleep(0.001)
            except OSError as exc:
                raise _Gone(str(exc)) from None


C_FIND_RSP = 0x8020
_RSP_NAMES = {0x8020: "C-FIND-RSP", 0x8010: "C-GET-RSP", 0x8021: "C-MOVE-RSP"}


def _move_rsp(msg: Any, ts: str, counts: _Counts, status: int, comment: str | None, failed: list[str] | None) -> Any:
    """A C-MOVE-RSP to ``msg`` with the sub-operation counts its status calls for."""
    from pynetdicom.dimse_primitives import C_MOVE

    rsp = C_MOVE()
    rsp.MessageIDBeingRespondedTo = msg.MessageID
    rsp.AffectedSOPClassUID = msg.AffectedSOPClassUID
    rsp.Status = status
    if describe(status, "move")[0] == "pending" or status == 0xFE00:
        rsp.NumberOfRemainingSuboperations = counts.remaining
    if status != 0xA801 and status != 0xA900:
        rsp.NumberOfCompletedSuboperations = counts.completed
        rsp.NumberOfFailedSuboperations = counts.failed
        rsp.NumberOfWarningSuboperations = counts.warning
    if comment:
        # pynetdicom sets ErrorComment to None in __init__ without an annotation: mypy takes None for its type
        rsp.ErrorComment = comment[:64]  # type: ignore[assignment]
    if failed:
        rsp.Identifier = BytesIO(_failed_list(failed, ts))
    return rsp


def _context(assoc: Any, context_id: int) -> Any:
    from .seam import accepted_context

    return accepted_context(assoc, context_id)


def _failed_list(uids: list[str], ts: str) -> bytes:
    from pydicom.dataset import Dataset
    from pydicom.uid import UID

    from .seam import encode

    ds = Dataset()
    ds.FailedSOPInstanceUIDList = [uid for uid in uids if uid] or ""
    syntax = UID(ts)
    return encode(ds, syntax.is_implicit_VR, syntax.is_little_endian, syntax.is_deflated) or b""
