"""The accepting side of the fast upper layer: the server, its request handler, the AE.

``DcmtoolsAE`` is a pynetdicom ``AE`` whose associations (both sides) use
``FastDUL`` and ``FastSocket`` (``transport.py``); as acceptor, each proposed
presentation context gets the first transfer syntax the requestor lists that we
support (``negotiate_requestor_order``; pynetdicom would take the first of
ours), so files arrive as the sender has them.  ``GatedServer`` admits
connections and associations (access control, slots) before pynetdicom
negotiates.  The negotiation function is swapped in only for the duration of
one of our negotiations, under a lock (``seam.swapped_acceptor_negotiation``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pynetdicom import evt

from . import seam
from .seam import MODE_ACCEPTOR
from .transport import FastDUL, FastSocket

if TYPE_CHECKING:
    from pynetdicom.presentation import PresentationContext

    from .seam import RoleSelection

LOGGER = logging.getLogger("dcmtools.net")
_Socket = socket.socket

# pynetdicom's SCP/SCU role selections of the acceptor: {SOP class UID: (SCP role, SCU role)}
Roles = dict[str, tuple[bool | None, bool | None]] | None


def negotiate_requestor_order(
    rq_contexts: list[PresentationContext],
    ac_contexts: list[PresentationContext],
    roles: Roles,
    refused: frozenset[str] = frozenset(),
) -> tuple[list[PresentationContext], list[RoleSelection]]:
    """pynetdicom's acceptor negotiation, but choosing in each proposed context the first
    transfer syntax *the requestor* lists that we support (pynetdicom takes the first of
    ours).  A requestor lists a file's own syntax first: it then arrives unconverted.
    Contexts of the abstract syntaxes in ``refused`` (services this caller may not use)
    are rejected (user rejection)."""
    from copy import copy

    original = seam.acceptor_negotiation
    by_abstract = {cx.abstract_syntax: cx for cx in ac_contexts}
    results: list[PresentationContext] = []
    reply_roles: dict[str, RoleSelection] = {}
    for rq in rq_contexts:
        ac = by_abstract.get(rq.abstract_syntax)
        if rq.abstract_syntax in refused and ac is not None:
            result, _ = original([rq], [], roles)
            for cx in result:
                cx.result = 0x01  # user rejection: not for this caller
        elif ac is None:
            result, _ = original([rq], [], roles)
        else:
            supported = list(ac.transfer_syntax)
            first = [ts for ts in rq.transfer_syntax if ts in supported]
            ordered = copy(ac)
            seam.set_transfer_syntaxes(ordered, first + [ts for ts in supported if ts not in first])
            result, rq_roles = original([rq], [ordered], roles)
            for item in rq_roles:
                reply_roles[item.sop_class_uid] = item
        results.extend(result)
    return results, list(reply_roles.values())


def _acse_class() -> type:
    class RequestorOrderACSE(seam.ACSEBase):
        """ACSE whose acceptor negotiation honours the requestor's transfer syntax order."""

        def negotiate_acceptor(self) -> None:
            # The server's gate (access control, association slots) comes first: see ``Gate``.
            refused: frozenset[str] = frozenset()
            gate = getattr(seam.server_of(self.assoc), "gate", None)
            if gate is not None:
                verdict = gate(self.assoc)
                if isinstance(verdict, Rejection):
                    # our own state on pynetdicom's Association, read back by scp.py's EVT_REJECTED handler
                    self.assoc._dcmtools_rejection = verdict  # type: ignore[attr-defined]
                    request = self.requestor.primitive
                    if request is not None:  # the A-ASSOCIATE-RQ being answered (set before negotiation)
                        self.requestor.ae_title = request.calling_ae_title
                    self.send_reject(*verdict.rsd)
                    evt.trigger(self.assoc, evt.EVT_REJECTED, {})
                    self.assoc.kill()
                    return
                refused = verdict
            ours = (
                (lambda rq, ac, roles: negotiate_requestor_order(rq, ac, roles, refused))
                if refused
                else negotiate_requestor_order
            )
            with seam.swapped_acceptor_negotiation(ours):
                self.default_negotiation()

    return RequestorOrderACSE


class Rejection:
    """A gate's answer refusing an association: A-ASSOCIATE-RJ (result, source, reason) and why."""

    CALLING_AET = (0x01, 0x01, 0x03)  # rejected-permanent, service-user, calling AE title not recognised
    BUSY = (0x02, 0x03, 0x02)  # rejected-transient, service-provider (presentation), local limit exceeded

    def __init__(self, rsd: tuple[int, int, int], code: str, message: str) -> None:
        self.rsd = rsd
        self.code = code
        self.message = message


class GatedServer:
    """Server-side limits around pynetdicom's threaded server (mixed in by ``make_server``).

    ``gate(assoc)`` (set by the owner) is called with each A-ASSOCIATE-RQ: it
    returns a ``Rejection`` or the abstract syntaxes this caller may not use.
    ``max_pending`` bounds the connections that have not yet sent their
    A-ASSOCIATE-RQ (each lives at most the A-ASSOCIATE-RQ timeout);
    ``tls_timeout`` bounds a TLS handshake, which runs in the connection's own
    thread (pynetdicom does it in the accepting thread: one slow client would
    stop every other one); ``on_connection(record_fields)`` hears of
    connections refused or dropped before any association.
    """

    gate: Callable[[Any], Any] | None = None
    on_connection: Callable[[dict[str, Any]], None] | None = None
    # pynetdicom's AssociationServer, the class this is mixed into, sets them
    socket: _Socket
    ssl_context: ssl.SSLContext | None
    max_pending: int | None = None
    tls_timeout: float | None = None

    def get_request(self) -> tuple[_Socket, Any]:
        client_socket, address = self.socket.accept()
        if self.ssl_context:
            client_socket = self.ssl_context.wrap_socket(client_socket, server_side=True, do_handshake_on_connect=False)
        return client_socket, address

    _handoff = 0  # connections admitted whose association thread has not started yet
    _handoff_lock = threading.Lock()

    def pending_connections(self) -> int:
        from pynetdicom.association import Association

        return self._handoff + sum(
            1
            for t in threading.enumerate()
            if isinstance(t, Association) and t.is_acceptor and not getattr(t, "_dcmtools_slot", False)
        )

    def verify_request(self, request: Any, client_address: Any) -> bool:
        if self.max_pending is not None and self.pending_connections() >= self.max_pending:
            self.tell_connection(
                client_address,
                "refused",
                "too_many_connections",
                f"{self.max_pending} connections are already waiting to associate: connection closed",
            )
            return False
        with self._handoff_lock:
            self._handoff += 1
        return True

    def handed_off(self) -> None:
        with self._handoff_lock:
            self._handoff -= 1

    def tell_connection(self, address: Any, event: str, code: str, message: str) -> None:
        if self.on_connection is None:
            return
        try:
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
            self.on_connection({"event": event, "peer": peer, "code": code, "message": message})
        except Exception as exc:  # noqa: BLE001
            LOGGER.debug("on_connection failed: %s", exc)


class FastRequestHandler(seam.RequestHandlerBase):
    """Accepted connections get ``FastDUL`` and ``FastSocket``."""

    def handle(self) -> None:
        try:
            self._handle()
        finally:
            handed_off = getattr(self.server, "handed_off", None)
            if handed_off is not None:
                handed_off()  # its association thread runs now (and is counted as such), or it is closed

    def _handle(self) -> None:
        sock = self.request
        if isinstance(sock, ssl.SSLSocket):
            timeout = getattr(self.server, "tls_timeout", None)
            try:
                sock.settimeout(timeout)
                sock.do_handshake()
                sock.settimeout(None)
            except (OSError, ValueError) as exc:
                reason = (
                    getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                )
                if isinstance(exc, socket.timeout):
                    reason = f"no TLS handshake within {timeout:g} s"
                tell = getattr(self.server, "tell_connection", None)
                if tell is not None:
                    tell(self.client_address, "tls_refused", "tls_failed", f"TLS handshake failed: {reason}")
                try:
                    sock.close()
                except OSError:
                    pass
                return
        super().handle()

    def create_association(self) -> Any:
        from pynetdicom.association import Association

        assoc = Association(self.ae, MODE_ACCEPTOR)
        assoc.dul = FastDUL(assoc)
        assoc.acse = _acse_class()(assoc)
        seam.attach_server(assoc, self.server)
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        sock = FastSocket(assoc, client_socket=self.request)
        assoc.set_socket(sock)
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor.supported_contexts = deepcopy(self.server.contexts)
        assoc.requestor.address_info = self.remote
        for event, bound in seam.server_handlers(self.server).items():
            if event.is_intervention and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent):
                for handler in bound:
                    assoc.bind(event, handler[0], handler[1])
        configure = getattr(self.server, "configure_association", None)
        if configure is not None:
            configure(assoc)
        return assoc


class DcmtoolsAE(seam.AEBase):
    """A pynetdicom ``AE`` whose associations use the fast upper layer (both sides)."""

    def create_socket(self, assoc: Any, address: Any, tls_args: Any) -> Any:
        assoc.dul = FastDUL(assoc)
        sock = FastSocket(assoc, address=address)
        sock.tls_args = tls_args
        return sock

    def make_server(self, address: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("request_handler", FastRequestHandler)
        base = kwargs.get("server_class")
        if base is not None and not issubclass(base, GatedServer):
            kwargs["server_class"] = type(f"Gated{base.__name__}", (GatedServer, base), {})
        return super().make_server(address, *args, **kwargs)


# ---------------------------------------------------------------- fast C-STORE
