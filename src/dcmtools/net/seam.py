"""The one place where dcmtools touches pynetdicom internals.

Everything else in dcmtools uses pynetdicom's public API only (``pynetdicom``,
``pynetdicom.evt``, ``pynetdicom.presentation``, ``pynetdicom.association.Association``,
``pynetdicom.dimse_primitives``, ``pynetdicom.transport.ThreadedAssociationServer``);
what the fast upper layer (``transport.py``) and the SCPs need beyond it is
reached through the named helpers below.  tests/test_pynetdicom_contract.py
checks that every name listed here exists and behaves as assumed, so that a
pynetdicom upgrade fails there first (pyproject.toml pins the tested range).

Privates relied on (pynetdicom 3.0):

Modules and names
    ``pynetdicom._globals.MODE_ACCEPTOR``, ``pynetdicom._globals.ALL_TRANSFER_SYNTAXES``;
    ``pynetdicom.dul.DULServiceProvider``, ``pynetdicom.dimse.DIMSEServiceProvider``,
    ``pynetdicom.acse.ACSE`` and ``pynetdicom.acse.negotiate_as_acceptor`` (looked up in its module
    at call time, swapped for one call), ``pynetdicom.pdu.A_ABORT_RQ`` / ``A_ASSOCIATE_RJ``,
    ``pynetdicom.pdu_primitives.P_DATA``, ``pynetdicom.transport.AssociationSocket`` /
    ``RequestHandler`` / ``AddressInformation``, ``pynetdicom.dsutils.encode``.
Association
    ``_reactor_checkpoint`` (Event: cleared pauses the reactor), ``_is_paused``,
    ``_accepted_cx`` (context id -> accepted context), ``_serve_request(msg, context_id)``
    (the reactor's dispatch of a request), ``_kill``, ``_dul_ready`` (Event), ``_server``;
    ``dul`` / ``acse`` / ``dimse`` (replaced by ours); ``dimse.msg_queue`` (queue of
    (context id, primitive)), ``dimse.send_msg``, ``dimse.receive_primitive``, ``dimse.cancel_req``.
DUL (DULServiceProvider)
    ``_kill_thread``, ``_idle_timer`` (start/restart), ``_decode_pdu(bytes) -> (pdu, event)``,
    ``_recv_pdu`` (queue), ``_process_recv_primitive()``, ``_is_transport_event()``,
    ``_read_pdu_data()`` (the hook called to read one PDU), ``state_machine.current_state``,
    ``event_queue``, ``to_provider_queue``, ``to_user_queue``, ``artim_timer``.
Socket (AssociationSocket)
    ``_is_connected``, ``_ready`` (Event), ``_shutdown_socket()``, ``tls_args``,
    ``provider_queue``, ``event_queue``.
Hooks overridden (through the base classes below)
    ``AE._create_socket(assoc, address, tls_args)``, ``ACSE._negotiate_as_acceptor()``,
    ``RequestHandler._create_association()``, ``DULServiceProvider._read_pdu_data()``;
    ``AssociationServer._handlers`` (event -> handlers) is read when building an association;
    ``PresentationContext._transfer_syntax`` is set to reorder a context's syntaxes.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pynetdicom import AE
from pynetdicom import acse as _acse_module
from pynetdicom._globals import ALL_TRANSFER_SYNTAXES, MODE_ACCEPTOR
from pynetdicom.acse import ACSE
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dsutils import encode
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ
from pynetdicom.pdu_primitives import P_DATA, SCP_SCU_RoleSelectionNegotiation
from pynetdicom.transport import AddressInformation, AssociationSocket, RequestHandler, ThreadedAssociationServer

# An SCP/SCU role selection item of an association negotiation (a type for annotations elsewhere).
RoleSelection = SCP_SCU_RoleSelectionNegotiation

__all__ = [
    "RoleSelection",
    "ALL_TRANSFER_SYNTAXES",
    "MODE_ACCEPTOR",
    "A_ABORT_RQ",
    "A_ASSOCIATE_RJ",
    "AddressInformation",
    "DIMSEServiceProvider",
    "AEBase",
    "ACSEBase",
    "DULBase",
    "RequestHandlerBase",
    "SocketBase",
    "ThreadedAssociationServer",
    "encode",
    "pause_reactor",
    "resume_reactor",
    "wait_reactor_paused",
    "pause_reactor_fresh",
    "accepted_context",
    "intercept_requests",
    "dimse_queue",
    "send_dimse",
    "pass_pdv",
    "forget_cancels",
    "cancel_requested",
    "dul_ended",
    "dul_has_work",
    "kill_association",
    "attach_server",
    "server_of",
    "server_handlers",
    "set_transfer_syntaxes",
    "restart_idle_timer",
    "acceptor_negotiation",
    "swapped_acceptor_negotiation",
]

# pynetdicom's own acceptor negotiation, kept before any swap (see ``swapped_acceptor_negotiation``).
# pynetdicom.acse imports it from pynetdicom.presentation and looks it up in its own namespace at each call:
# that module-level name (not re-exported, hence the ignores) is what the swap replaces.
_ORIGINAL_NEGOTIATE: Callable[..., Any] = _acse_module.negotiate_as_acceptor  # type: ignore[attr-defined]
_NEGOTIATE_LOCK = threading.Lock()


# ------------------------------------------------------------ the association's reactor
def pause_reactor(assoc: Any) -> None:
    """Stop the association thread polling for requests (as pynetdicom's own ``send_*`` do)."""
    assoc._reactor_checkpoint.clear()


def resume_reactor(assoc: Any) -> None:
    assoc._reactor_checkpoint.set()


def wait_reactor_paused(assoc: Any, seconds: float) -> bool:
    """After ``pause_reactor``: wait until the reactor is parked (or ``seconds``, or the association ends)."""
    deadline = time.monotonic() + seconds
    while not assoc._is_paused and time.monotonic() < deadline and assoc.is_established:
        time.sleep(0.0001)
    return bool(assoc._is_paused)


def pause_reactor_fresh(assoc: Any, seconds: float) -> bool:
    """Pause the reactor and wait until it parks in this round.  The paused flag may be left over
    from before the previous exchange released the reactor: cleared first, it is only true again once
    the reactor has finished that round (else it could take a response of the next request off the
    queue as a request)."""
    assoc._reactor_checkpoint.clear()
    assoc._is_paused = False
    return wait_reactor_paused(assoc, seconds)


def accepted_context(assoc: Any, context_id: int) -> Any | None:
    """The accepted presentation context with this id, or None."""
    return assoc._accepted_cx.get(context_id)


def intercept_requests(assoc: Any, serve: Callable[[Callable[[Any, int], None], Any, int], None]) -> None:
    """Route each request the reactor dispatches through ``serve(original, msg, context_id)``."""
    original = assoc._serve_request

    def dispatch(msg: Any, context_id: int) -> None:
        serve(original, msg, context_id)

    assoc._serve_request = dispatch


def kill_association(assoc: Any) -> None:
    """Mark the association thread to stop (its reactor exits at its next turn)."""
    assoc._kill = True


def mark_dul_ready(assoc: Any) -> None:
    if not assoc._dul_ready.is_set():
        assoc._dul_ready.set()


def attach_server(assoc: Any, server: Any) -> None:
    assoc._server = server


def server_of(assoc: Any) -> Any | None:
    return getattr(assoc, "_server", None)


def server_handlers(server: Any) -> dict[Any, Any]:
    """The server's bound event handlers (event -> handlers), as ``AE.start_server`` bound them."""
    return dict(server._handlers)


# ------------------------------------------------------------ DIMSE
def dimse_queue(assoc: Any) -> queue.Queue[Any]:
    """The DIMSE message queue: (context id, primitive), None marks a dropped connection."""
    return assoc.dimse.msg_queue  # type: ignore[no-any-return]


def send_dimse(assoc: Any, primitive: Any, context_id: int) -> None:
    assoc.dimse.send_msg(primitive, context_id)


def pass_pdv(assoc: Any, context_id: int, control: int, data: Any) -> None:
    """Hand one PDV read on the fast path to pynetdicom's DIMSE decoder."""
    primitive = P_DATA()
    # pynetdicom annotates (int, bytes) tuples, but its setter accepts only [int, bytes] lists
    primitive.presentation_data_value_list = [[context_id, bytes((control,)) + bytes(data)]]  # type: ignore[list-item]
    assoc.dimse.receive_primitive(primitive)


def forget_cancels(assoc: Any) -> None:
    """Drop the C-CANCELs noted for earlier requests."""
    assoc.dimse.cancel_req = {}


def cancel_requested(assoc: Any, message_id: int) -> bool:
    return message_id in assoc.dimse.cancel_req


def dul_ended(assoc: Any) -> bool:
    """The connection under ``assoc`` is closed (state Sta1) or its DUL thread is gone."""
    return bool(assoc.dul.state_machine.current_state == "Sta1" or not assoc.dul.is_alive())


def dul_has_work(dul: Any) -> bool:
    """Primitives or state-machine events are still queued for the DUL's reactor."""
    return bool(dul.to_provider_queue.qsize() or dul.event_queue.qsize())


def restart_idle_timer(dul: Any) -> None:
    dul._idle_timer.restart()


def set_transfer_syntaxes(context: Any, syntaxes: list[Any]) -> None:
    """Reorder an accepted context's transfer syntaxes (no validation, unlike the setter)."""
    context._transfer_syntax = syntaxes


# ------------------------------------------------------------ negotiation
def acceptor_negotiation(rq_contexts: list[Any], ac_contexts: list[Any], roles: Any) -> tuple[list[Any], list[Any]]:
    """pynetdicom's own ``negotiate_as_acceptor``."""
    return _ORIGINAL_NEGOTIATE(rq_contexts, ac_contexts, roles)  # type: ignore[no-any-return]


@contextmanager
def swapped_acceptor_negotiation(negotiate: Callable[..., Any]) -> Iterator[None]:
    """pynetdicom's ACSE looks ``negotiate_as_acceptor`` up in its module: swap ours in for one call."""
    with _NEGOTIATE_LOCK:
        _acse_module.negotiate_as_acceptor = negotiate  # type: ignore[attr-defined]  # see _ORIGINAL_NEGOTIATE
        try:
            yield
        finally:
            _acse_module.negotiate_as_acceptor = _ORIGINAL_NEGOTIATE  # type: ignore[attr-defined]


# ------------------------------------------------------------ base classes with public hooks
class AEBase(AE):
    """An AE whose association sockets come from ``create_socket``."""

    def _create_socket(self, assoc: Any, address: Any, tls_args: Any) -> Any:
        return self.create_socket(assoc, address, tls_args)

    def create_socket(self, assoc: Any, address: Any, tls_args: Any) -> Any:
        return super()._create_socket(assoc, address, tls_args)


class ACSEBase(ACSE):
    """An ACSE whose acceptor negotiation is ``negotiate_acceptor`` (``default_negotiation`` is pynetdicom's)."""

    def _negotiate_as_acceptor(self) -> None:
        self.negotiate_acceptor()

    def negotiate_acceptor(self) -> None:
        self.default_negotiation()

    def default_negotiation(self) -> None:
        super()._negotiate_as_acceptor()


class RequestHandlerBase(RequestHandler):
    """A request handler whose associations come from ``create_association``."""

    def _create_association(self) -> Any:
        return self.create_association()

    def create_association(self) -> Any:
        return super()._create_association()


class SocketBase(AssociationSocket):
    """An association socket with public names for the state a subclass's ``connect`` sets."""

    @property
    def connected(self) -> bool:
        return bool(getattr(self, "_is_connected", False))

    def mark_connected(self) -> None:
        self._is_connected = True

    def mark_ready(self) -> None:
        self._ready.set()

    def shutdown_socket(self) -> None:
        self._shutdown_socket()


class DULBase(DULServiceProvider):
    """A DUL with public names for the reactor internals a subclass's ``run_reactor`` uses;
    one PDU is read by ``read_pdu_data`` (pynetdicom's by default)."""

    def _read_pdu_data(self) -> None:
        self.read_pdu_data()

    def read_pdu_data(self) -> None:
        super()._read_pdu_data()

    def stop_thread(self) -> None:
        self._kill_thread = True

    @property
    def thread_stopping(self) -> bool:
        return bool(self._kill_thread)

    def start_idle_timer(self) -> None:
        self._idle_timer.start()

    def restart_idle_timer(self) -> None:
        self._idle_timer.restart()

    def decode_pdu(self, data: bytes | bytearray) -> tuple[Any, str]:
        return self._decode_pdu(bytearray(data))

    def queue_received_pdu(self, pdu: Any) -> None:
        self._recv_pdu.put(pdu)

    def process_received_primitive(self) -> bool:
        """Send what the user queued (True when there was something)."""
        return bool(self._process_recv_primitive())

    def check_transport_event(self) -> bool:
        """Read a PDU when one is waiting (True when there was)."""
        return bool(self._is_transport_event())
