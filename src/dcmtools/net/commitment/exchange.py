"""Storage Commitment's raw exchange: one DIMSE request written straight to the socket, its answer read back."""

from __future__ import annotations

import itertools
import time
from typing import Any

from .common import LOGGER, STORAGE_COMMITMENT


class Exchanges:
    """Requests sent whole on a busy association, and their answers picked out by message ID.

    pynetdicom's ``send_n_action``/``send_n_event_report`` pause the
    association's reactor and take the next message that arrives as their
    answer.  Storage Commitment breaks both assumptions: the other side may
    send a request of its own (its report, its next N-ACTION) before it
    answers ours, as the default asynchronous operations window allows, and
    pynetdicom serves an incoming N-EVENT-REPORT from a thread of its own that
    upsets the pause handshake (seen here as a requester stuck for good).  So
    ``send`` writes the request's P-DATA-TF PDUs straight on the socket while
    the association's reactor is held off (``FastDUL.exclusive``: no other
    message can interleave with its fragments), without pausing the reactor,
    and takes its answer out of the DIMSE message queue by its Message ID
    Being Responded To (the net core's reactor never takes responses off that
    queue, see ``transport.ResponseSafeDIMSE``); requests that arrive
    meanwhile are served as usual.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def message_id(self) -> int:
        return (next(self._ids) - 1) % 65535 + 1

    def send(
        self,
        assoc: Any,
        name: str,
        elements: list[tuple[int, int | str]],
        dataset: Any,
        message_id: int,
        timeout: float,
    ) -> Any:
        """Send one request (command ``elements`` and ``dataset``) on the Storage Commitment context.

        Returns the answer (a pynetdicom DIMSE primitive with ``Status`` and
        ``ErrorComment``), or None when no answer came within ``timeout`` or
        the association ended.
        """
        from .. import seam, wire
        from ..transport import sendv

        contexts = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == STORAGE_COMMITMENT]
        if not contexts or not assoc.is_established:
            return None
        cx = contexts[0]
        ts = cx.transfer_syntax[0]
        data = seam.encode(dataset, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        if data is None:  # pydicom could not write the dataset we built: a bug, not the peer's doing
            raise ValueError(f"the {name} dataset cannot be encoded in {ts.name}")
        command = wire.encode_command([*elements, (wire.TAG_MESSAGE_ID, message_id), (wire.TAG_DATASET_TYPE, 0x0000)])
        peer_max = assoc.acceptor.maximum_length if assoc.is_requestor else assoc.requestor.maximum_length
        fragment = wire.max_fragment(peer_max)
        buffers: list[Any] = []
        wire.pdata_iovecs(cx.context_id, command, True, True, fragment, buffers)
        pdus = wire.pdata_iovecs(cx.context_id, data, False, True, fragment, buffers)
        deadline = time.monotonic() + timeout
        dul = assoc.dul
        while True:
            try:
                with dul.exclusive() as sock:
                    if dul.trace is not None:
                        dul.trace.dimse_out(name, cx.context_id, wire.parse_command(command), pdus=pdus, size=len(data))
                    sock.settimeout(timeout)
                    try:
                        sendv(sock, buffers)
                    finally:
                        sock.settimeout(None)
                break
            except ConnectionAbortedError:  # a message of the reactor's is still going out: wait for it
                if not assoc.is_established or time.monotonic() > deadline:
                    return None
                time.sleep(0.005)
            except OSError as exc:
                LOGGER.debug("sending the %s failed: %s", name, exc)
                return None
        seam.restart_idle_timer(dul)
        pending = seam.dimse_queue(assoc)
        while True:
            with pending.mutex:
                for index, (_context, primitive) in enumerate(pending.queue):
                    if (
                        primitive is not None
                        and getattr(primitive, "is_valid_response", False)
                        and getattr(primitive, "MessageIDBeingRespondedTo", None) == message_id
                    ):
                        del pending.queue[index]
                        pending.not_full.notify()
                        return primitive
                if not assoc.is_established or time.monotonic() > deadline:
                    return None
                pending.not_empty.wait(0.05)


# ====================================================================== the requester (SCU)
