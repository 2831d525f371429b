"""The storage SCP: receives instances and writes each one atomically (``listen``, C-MOVE targets).

    from dcmtools.net import NetOptions, StorageSCP

    scp = StorageSCP("incoming/", aet="DCMTOOLS", port=11112, on_record=print)
    scp.start()                 # serves in the background
    scp.wait(count=10, idle_timeout=60)
    scp.stop()

Verification and Storage SCP for every storage SOP class pynetdicom knows, in
every transfer syntax pydicom knows.  Of the syntaxes a requestor proposes in
one presentation context, the first it lists that we know is accepted
(requestors list a file's own syntax first: it then arrives unconverted).

Each instance is written as it arrives (fragments go straight from the socket
into a temporary file in DIR, never held whole in memory) and moved into
place when complete, at ``stored_path()``::

    DIR/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm

(characters other than letters, digits and ``.-_^`` become ``_``; a missing
value becomes ``UNKNOWN``).  The dataset bytes are the received bytes, behind
a File Meta Information group naming the accepted transfer syntax and the
sender's AE title.  An instance that exists already is kept and the new one
is written as ``<SOPInstanceUID>-1.dcm`` (``-2`` ...), unless ``overwrite``.
The C-STORE-RSP (0x0000) goes out only after the file is in place; a write
failure answers 0xA700 (out of resources) and the record says why.

``on_record(record)`` is called (from the association threads) with one
record per association event (``type: association``) and per instance
(``type: instance``).  ``store_dir=None`` receives and answers without
writing (to see what a modality sends).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .assoc import NetOptions, make_ae, quiet_pynetdicom
from .peer import TLSSettings, check_aet
from .scp_layout import PART_PREFIX as PART_PREFIX
from .scp_layout import _component as _component
from .scp_layout import make_store_dir
from .scp_layout import remove_leftover_parts as remove_leftover_parts
from .scp_layout import stored_path as stored_path
from .scp_receive import HEAD_BYTES as HEAD_BYTES
from .scp_receive import MAX_COMMAND_BYTES as MAX_COMMAND_BYTES
from .scp_receive import MAX_PASSED_DATASET as MAX_PASSED_DATASET
from .scp_receive import _Receiver as _Receiver

LOGGER = logging.getLogger("dcmtools.net")
DEFAULT_MAX_ASSOCIATIONS = 32  # a busy department: several modalities, workstations and a router at once
DEFAULT_ASSOC_TIMEOUT = 10.0  # seconds for a connection to send its whole A-ASSOCIATE-RQ
DEFAULT_PDU_TIMEOUT = 60.0  # seconds for every later PDU to arrive whole (or one to be sent)


def storage_contexts() -> list[Any]:
    """Verification plus every storage SOP class, each with every known transfer syntax."""
    from pydicom.uid import AllTransferSyntaxes
    from pynetdicom.presentation import AllStoragePresentationContexts, build_context

    from .seam import ALL_TRANSFER_SYNTAXES

    # Which one is accepted in a proposed context is the requestor's first choice
    # (acceptor.negotiate_requestor_order), not this list's order.
    syntaxes = list(dict.fromkeys([*ALL_TRANSFER_SYNTAXES, *[str(ts) for ts in AllTransferSyntaxes]]))
    contexts = [build_context("1.2.840.10008.1.1", syntaxes)]
    for cx in AllStoragePresentationContexts:
        contexts.append(build_context(cast(str, cx.abstract_syntax), syntaxes))
    return contexts


class StorageSCP:
    """A storage SCP (see the module docs).  ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str] | None,
        *,
        aet: str = "DCMTOOLS",
        port: int = 11112,
        host: str = "",
        options: NetOptions | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        overwrite: bool = False,
        tls: TLSSettings | None = None,
        contexts: list[Any] | None = None,
        evt_handlers: list[Any] | None = None,
        access: Any = None,
        max_associations: int = DEFAULT_MAX_ASSOCIATIONS,
        assoc_timeout: float | None = DEFAULT_ASSOC_TIMEOUT,
        pdu_timeout: float | None = DEFAULT_PDU_TIMEOUT,
        on_stored: Callable[[str], None] | None = None,
    ) -> None:
        self.store_dir = os.fspath(store_dir) if store_dir is not None else None
        self.aet = check_aet(aet, "AE title (`aet`)")
        self.host = host
        self.requested_port = port
        self.options = options or NetOptions(calling_aet=self.aet)
        self.on_record = on_record or (lambda record: None)
        self.overwrite = overwrite
        self.tls = tls
        self.contexts = contexts
        self.evt_handlers = list(evt_handlers or [])
        self.access = access
        self.max_associations = max_associations
        self.assoc_timeout = assoc_timeout
        self.pdu_timeout = pdu_timeout
        self.on_stored = on_stored
        self._slots = threading.Lock()
        self.instances = 0
        self.failures = 0
        self._made: set[str] = set()  # folders created under store_dir (no makedirs per instance)
        self.last_activity = time.monotonic()
        self._cond = threading.Condition()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._tracer = None
        if options is not None and options.trace is not None:
            from .trace import Tracer

            self._tracer = Tracer(options.trace)

    # ------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self.requested_port

    def start(self) -> StorageSCP:
        from pynetdicom import evt

        from .seam import ThreadedAssociationServer

        if self.store_dir is not None:
            make_store_dir(self.store_dir)
            self.removed_parts = remove_leftover_parts(self.store_dir)
        quiet_pynetdicom(LOGGER.isEnabledFor(logging.DEBUG))
        ae = make_ae(self.options)
        ae.ae_title = self.aet
        ae.network_timeout = None
        ae.maximum_associations = 1 << 30  # our gate counts the slots (pynetdicom would count idle connections)
        for cx in self.contexts or storage_contexts():
            # Roles as the context says (None: default roles; True/True lets a C-GET requestor take the SCP role).
            ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax, scu_role=cx.scu_role, scp_role=cx.scp_role)
        handlers = [
            (evt.EVT_ACCEPTED, self._accepted),
            (evt.EVT_REJECTED, self._rejected),
            (evt.EVT_RELEASED, self._ended, ["released"]),
            (evt.EVT_ABORTED, self._ended, ["aborted"]),
            (evt.EVT_CONN_CLOSE, self._discard_partial),
            *self.evt_handlers,
        ]
        if self._tracer is not None:
            handlers += self._tracer.handlers()
        ssl_context = self.tls.server_context() if self.tls else None
        try:
            server = ae.make_server(
                (self.host, self.requested_port),
                ae_title=self.aet,
                ssl_context=ssl_context,
                evt_handlers=handlers,
                server_class=ThreadedAssociationServer,
            )
        except OSError as exc:
            raise DcmtoolsError(
                ErrorCode.CONNECT_FAILED,
                f"cannot listen on port {self.requested_port}: {exc.strerror or exc}",
                "another program may use this port (choose another with `port`); ports below 1024 need root",
                ExitStatus.CONNECT,
            ) from None
        server.configure_association = self._configure
        server.gate = self._gate
        server.on_connection = self._connection_event
        # Connections that have not associated yet (each lives at most assoc_timeout).
        server.max_pending = max(64, 4 * self.max_associations)
        server.tls_timeout = self.assoc_timeout
        self._server = server
        self._ae = ae
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="dcmtools-scp", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, grace: float = 0.0) -> None:
        """Stop accepting; give open associations ``grace`` seconds to end, then abort them."""
        server, self._server = self._server, None
        if server is None:
            return
        deadline = time.monotonic() + grace
        while grace and any(a.is_established for a in server.active_associations) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            for assoc in list(server.active_associations):
                assoc.abort()
            server.shutdown()
        except Exception as exc:  # pragma: no cover
            LOGGER.debug("stopping the server: %s", exc)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._port_closed = True

    def __enter__(self) -> StorageSCP:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def wait(self, count: int | None = None, idle_timeout: float | None = None, timeout: float | None = None) -> str:
        """Block until ``count`` instances arrived, ``idle_timeout`` s passed without
        traffic, or ``timeout`` s passed; returns "count", "idle" or "timeout"."""
        started = time.monotonic()
        with self._cond:
            while True:
                if count is not None and self.instances >= count:
                    return "count"
                now = time.monotonic()
                waits = [1.0]
                if idle_timeout is not None:
                    idle_left = self.last_activity + idle_timeout - now
                    if idle_left <= 0 and not self._busy():
                        return "idle"
                    waits.append(max(idle_left, 0.05))
                if timeout is not None:
                    left = started + timeout - now
                    if left <= 0:
                        return "timeout"
                    waits.append(left)
                self._cond.wait(min(waits))

    def _busy(self) -> bool:
        server = self._server
        return bool(server and server.active_associations)

    def _touch(self) -> None:
        with self._cond:
            self.last_activity = time.monotonic()
            self._cond.notify_all()

    def wake(self) -> None:
        """Make a ``wait()`` in progress look again at once (e.g. after a stop was asked for)."""
        with self._cond:
            self._cond.notify_all()

    def note_instance(self, record: dict[str, Any]) -> None:
        """Count an instance received (its record), wake the waiters, emit the record."""
        with self._cond:
            self.instances += 1
            if not record["ok"]:
                self.failures += 1
            self.last_activity = time.monotonic()
            self._cond.notify_all()
        self._emit(record)

    # ------------------------------------------------------------ events
    def _configure(self, assoc: Any) -> None:
        assoc.dul.pdata_hook = _Receiver(self, assoc).feed
        assoc.dul.trace = self._tracer
        assoc.dul.serve_limits(self._ae.maximum_pdu_size, self.assoc_timeout, self.pdu_timeout, self._dropped)

    def _gate(self, assoc: Any) -> Any:
        """Access control and association slots, at the A-ASSOCIATE-RQ (see ``acceptor.GatedServer``)."""
        from .acceptor import Rejection

        rq = assoc.requestor.primitive
        calling = (rq.calling_ae_title or "").strip()
        info = assoc.requestor.address_info
        address = info.address if info else None
        refused: frozenset[str] = frozenset()
        if self.access is not None:
            allowed = self.access.services(calling, address)
            if allowed is None:
                return Rejection(
                    Rejection.CALLING_AET,
                    "caller_refused",
                    f"calling AE title {calling!r} from {address} is not allowed here (see `allow`)",
                )
            if allowed != "all":
                refused = self._restricted()
                proposed = {cx.abstract_syntax for cx in rq.presentation_context_definition_list}
                if proposed and proposed <= refused:
                    return Rejection(
                        Rejection.CALLING_AET,
                        "caller_refused",
                        f"calling AE title {calling!r} from {address} may not use query, retrieve, "
                        "worklist or Storage Commitment here (only peers-file callers, or `allow`)",
                    )
        from pynetdicom.association import Association

        with self._slots:
            busy = sum(
                1
                for t in threading.enumerate()
                if isinstance(t, Association) and getattr(t, "_dcmtools_slot", False) and t.is_alive()
            )
            if busy >= self.max_associations:
                return Rejection(
                    Rejection.BUSY,
                    "too_many_associations",
                    f"{busy} associations are open, the most `max_associations` allows: try again later",
                )
            assoc._dcmtools_slot = True
        return refused

    def _restricted(self) -> frozenset[str]:
        """The abstract syntaxes we serve that are not Verification or Storage."""
        cached = getattr(self, "_restricted_cache", None)
        if cached is None:
            open_ = {cx.abstract_syntax for cx in storage_contexts()}
            cached = frozenset(cx.abstract_syntax for cx in (self.contexts or []) if cx.abstract_syntax not in open_)
            self._restricted_cache = cached
        return cached

    def _connection_event(self, fields: dict[str, Any]) -> None:
        code, message = fields.pop("code"), fields.pop("message")
        # No "ok": a refused or dropped connection is the server doing its job, not a failure of listen.
        self._emit({"type": "connection", **fields, "error": {"code": code, "message": message}})

    def _dropped(self, dul: Any, code: str, message: str) -> None:
        assoc = dul.assoc
        info = assoc.requestor.address_info
        associated = getattr(assoc, "_dcmtools_slot", False)
        record: dict[str, Any] = {
            "type": "connection",
            "event": "aborted" if associated else "dropped",
            "peer": f"{info.address}:{info.port}" if info else None,
        }
        if assoc.requestor.ae_title and associated:
            record["calling_aet"] = assoc.requestor.ae_title
        record["error"] = {"code": code, "message": message}
        self._emit(record)

    def _peer_fields(self, assoc: Any) -> dict[str, Any]:
        info = assoc.requestor.address_info
        return {
            "calling_aet": assoc.requestor.ae_title,
            "called_aet": assoc.acceptor.ae_title,
            "peer": f"{info.address}:{info.port}" if info else None,
        }

    def _emit(self, record: dict[str, Any]) -> None:
        try:
            self.on_record(record)
        except Exception as exc:  # a broken stdout must not kill the association thread
            LOGGER.debug("record callback failed: %s", exc)

    def _accepted(self, event: Any) -> None:
        from .assoc import uid_name

        assoc = event.assoc
        receiver = getattr(assoc, "_dcmtools_receiver", None)
        if receiver is not None:
            receiver.accepted = True
        accepted = [
            {
                "context_id": cx.context_id,
                "sop_class_uid": cx.abstract_syntax,
                "sop_class": uid_name(cx.abstract_syntax),
                "transfer_syntax": cx.transfer_syntax[0],
            }
            for cx in assoc.accepted_contexts
        ]
        rejected = [
            {
                "context_id": cx.context_id,
                "sop_class_uid": cx.abstract_syntax,
                "sop_class": uid_name(cx.abstract_syntax),
                "transfer_syntaxes": list(cx.transfer_syntax),
                "result": _CX_RESULTS.get(cx.result, cx.result),
            }
            for cx in assoc.rejected_contexts
        ]
        self._touch()
        self._emit(
            {
                "type": "association",
                "event": "accepted",
                **self._peer_fields(assoc),
                "max_pdu": assoc.requestor.maximum_length,
                "implementation": (assoc.requestor.implementation_version_name or "").strip() or None,
                "proposed": len(accepted) + len(rejected),
                "accepted": accepted,
                "rejected": rejected,
            }
        )

    def _rejected(self, event: Any) -> None:
        record = {"type": "association", "event": "rejected", **self._peer_fields(event.assoc)}
        why = getattr(event.assoc, "_dcmtools_rejection", None)
        if why is not None:
            record["error"] = {"code": why.code, "message": why.message}
        self._emit(record)

    def _discard_partial(self, event: Any) -> None:
        receiver = getattr(event.assoc, "_dcmtools_receiver", None)
        if receiver is not None and receiver.instance is not None:
            receiver.instance.discard()  # cut off in the middle: never acknowledged, not kept
            receiver.instance = None

    def _ended(self, event: Any, how: str) -> None:
        self._discard_partial(event)
        receiver = getattr(event.assoc, "_dcmtools_receiver", None)
        if receiver is None or not receiver.accepted or receiver.ended:
            return  # a connection that never became an association (a port probe), or said already
        receiver.ended = True
        record = {
            "type": "association",
            "event": how,
            **self._peer_fields(event.assoc),
            "instances": receiver.count if receiver else 0,
        }
        self._touch()
        self._emit(record)


_CX_RESULTS = {
    1: "user rejection",
    2: "no reason",
    3: "abstract syntax not supported",
    4: "transfer syntaxes not supported",
}
