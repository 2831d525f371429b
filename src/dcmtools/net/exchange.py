"""The send hot path: one C-STORE-RQ and its dataset written straight from the file's bytes,
the C-STORE-RSP read back on the same socket (``FastDUL.exclusive``)."""

from __future__ import annotations

import socket
from typing import Any

from . import wire
from .transport import PDU_HEADER, FastDUL, recv_exact, sendv


class ExchangeError(Exception):
    """The association failed during a fast-path exchange; ``kind`` is timeout, aborted or released."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def store_exchange(
    assoc: Any,
    context_id: int,
    command: bytes,
    dataset: Any,
    timeout: float | None,
    message_id: int,
) -> dict[int, bytes]:
    """Send one C-STORE-RQ and its dataset, return the C-STORE-RSP command set.

    ``dataset`` is a bytes-like object (a memoryview into the file's bytes) or
    an iterable of them.  The caller's association must use ``FastDUL``.
    Raises ``ExchangeError`` when the association times out or fails; the
    caller then aborts it.
    """
    dul: FastDUL = assoc.dul
    max_pdu = assoc.acceptor.maximum_length
    fragment = wire.max_fragment(max_pdu)
    parts = [dataset] if isinstance(dataset, (bytes, bytearray, memoryview)) else list(dataset)
    buffers: list[Any] = []
    wire.pdata_iovecs(context_id, command, True, True, fragment, buffers)
    pdus = 0
    for index, part in enumerate(parts):
        pdus += wire.pdata_iovecs(context_id, part, False, index == len(parts) - 1, fragment, buffers)
    tracer = dul.trace
    try:
        with dul.exclusive() as sock:
            if tracer is not None:
                tracer.dimse_out(
                    "C-STORE-RQ", context_id, wire.parse_command(command), pdus=pdus, size=sum(len(p) for p in parts)
                )
            sock.settimeout(timeout)
            try:
                sendv(sock, buffers)
                response = _read_response(dul, sock, message_id)
            finally:
                try:
                    sock.settimeout(None)
                except OSError:
                    pass
    except TimeoutError as exc:
        raise ExchangeError("timeout", f"no answer within {timeout:g} s") from exc
    except ConnectionAbortedError as exc:
        raise ExchangeError("aborted", str(exc)) from exc
    except OSError as exc:
        raise ExchangeError("aborted", f"the connection dropped ({exc.strerror or exc})") from exc
    dul.restart_idle_timer()
    if tracer is not None:
        tracer.dimse_in("C-STORE-RSP", context_id, response)
    return response


def _read_response(dul: FastDUL, sock: socket.socket, message_id: int) -> dict[int, bytes]:
    command = bytearray()
    while True:
        header = recv_exact(sock, 6)
        pdu_type, _, length = PDU_HEADER.unpack(header)
        body = recv_exact(sock, length)
        if pdu_type != 4:
            name = dul.hand_over(pdu_type, header, body)
            if pdu_type == 7:
                raise ConnectionAbortedError("the peer aborted the association (A-ABORT)")
            if pdu_type == 5:
                raise ConnectionAbortedError("the peer asked to release the association in the middle of a transfer")
            raise ConnectionAbortedError(f"unexpected {name} from the peer")
        for _context, control, data in wire.iter_pdvs(body):
            if not control & 1:
                continue  # a dataset fragment: C-STORE-RSP has none; ignore
            command += data
            if control & 2:
                parsed = wire.parse_command(command)
                command = bytearray()
                if wire.command_us(parsed, wire.TAG_MESSAGE_ID_RESPONDED) == message_id:
                    return parsed
