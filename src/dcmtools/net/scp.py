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

import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from . import wire
from .assoc import NetOptions, make_ae, quiet_pynetdicom
from .peer import TLSSettings, check_aet

LOGGER = logging.getLogger("dcmtools.net")
_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_^]")
_IDS = {
    0x00080018: "sop_instance_uid",
    0x00080060: "modality",
    0x00100020: "patient_id",
    0x0020000D: "study_instance_uid",
    0x0020000E: "series_instance_uid",
}
HEAD_BYTES = 65536
_SERIAL = itertools.count(1)
PART_PREFIX = ".incoming-"
DEFAULT_MAX_ASSOCIATIONS = 32  # a busy department: several modalities, workstations and a router at once
DEFAULT_ASSOC_TIMEOUT = 10.0  # seconds for a connection to send its whole A-ASSOCIATE-RQ
DEFAULT_PDU_TIMEOUT = 60.0  # seconds for every later PDU to arrive whole (or one to be sent)
MAX_COMMAND_BYTES = 65536  # a DIMSE command set is a few hundred bytes
MAX_PASSED_DATASET = 16 << 20  # a C-FIND / N-ACTION ... dataset that pynetdicom decodes in memory


def _write_all(fd: int, buffers: list) -> None:
    """Write every buffer (``writev``, continuing after short writes)."""
    total = sum(len(b) for b in buffers)
    written = os.writev(fd, buffers)
    if written < total:
        rest = b"".join(bytes(b) for b in buffers)[written:]
        while rest:
            n = os.write(fd, rest)
            rest = rest[n:]


def _component(value: str | None) -> str:
    value = (value or "").strip()
    if not value:
        return "UNKNOWN"
    cleaned = _UNSAFE.sub("_", value)
    if cleaned.startswith("."):
        # Never hidden, never "." or "..", never one of listen's own (dot) files such as the index.
        cleaned = "_" + cleaned[1:]
    return cleaned[:128]


def stored_path(store_dir: str, patient_id: str | None, study: str | None, series: str | None, sop_instance: str) -> str:
    """Where an instance is written (the layout documented above)."""
    return os.path.join(store_dir, _component(patient_id), _component(study), _component(series),
                        _component(sop_instance) + ".dcm")


def remove_leftover_parts(store_dir: str) -> int:
    """Delete the unfinished ``.incoming-PID-N.part`` files of listen processes that are gone
    (killed in the middle of an instance: never acknowledged); returns how many."""
    removed = 0
    try:
        names = os.listdir(store_dir)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(PART_PREFIX) and name.endswith(".part")):
            continue
        pid_text = name[len(PART_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _alive(int(pid_text)):
            continue  # another listen on the same folder is writing it
        try:
            os.unlink(os.path.join(store_dir, name))
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


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
        contexts.append(build_context(cx.abstract_syntax, syntaxes))
    return contexts


class StorageSCP:
    """A storage SCP (see the module docs).  ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self,
        store_dir: str | os.PathLike | None,
        *,
        aet: str = "DCMTOOLS",
        port: int = 11112,
        host: str = "",
        options: NetOptions | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        overwrite: bool = False,
        tls: TLSSettings | None = None,
        contexts: list[Any] | None = None,
        evt_handlers: list | None = None,
        access: Any = None,
        max_associations: int = DEFAULT_MAX_ASSOCIATIONS,
        assoc_timeout: float | None = DEFAULT_ASSOC_TIMEOUT,
        pdu_timeout: float | None = DEFAULT_PDU_TIMEOUT,
        on_stored: Callable[[str], None] | None = None,
    ) -> None:
        self.store_dir = os.fspath(store_dir) if store_dir is not None else None
        self.aet = check_aet(aet, "AE title (--aet)")
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
            try:
                os.makedirs(self.store_dir, exist_ok=True)
            except OSError as exc:
                raise DcmtoolsError(ErrorCode.WRITE_FAILED, f"cannot create {self.store_dir!r}: {exc.strerror or exc}",
                                    "choose a folder you can write to with --store-dir", ExitStatus.USAGE) from None
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
            server = ae.make_server((self.host, self.requested_port), ae_title=self.aet, ssl_context=ssl_context,
                                    evt_handlers=handlers, server_class=ThreadedAssociationServer)
        except OSError as exc:
            raise DcmtoolsError(
                ErrorCode.CONNECT_FAILED,
                f"cannot listen on port {self.requested_port}: {exc.strerror or exc}",
                "another program may use this port (choose another with --port); ports below 1024 need root",
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
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="dcmtools-scp", daemon=True)
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
                return Rejection(Rejection.CALLING_AET, "caller_refused",
                                 f"calling AE title {calling!r} from {address} is not allowed here (see --allow)")
            if allowed != "all":
                refused = self._restricted()
                proposed = {cx.abstract_syntax for cx in rq.presentation_context_definition_list}
                if proposed and proposed <= refused:
                    return Rejection(Rejection.CALLING_AET, "caller_refused",
                                     f"calling AE title {calling!r} from {address} may not use query, retrieve, "
                                     "worklist or Storage Commitment here (only peers-file callers, or --allow)")
        from pynetdicom.association import Association

        with self._slots:
            busy = sum(1 for t in threading.enumerate()
                       if isinstance(t, Association) and getattr(t, "_dcmtools_slot", False) and t.is_alive())
            if busy >= self.max_associations:
                return Rejection(Rejection.BUSY, "too_many_associations",
                                 f"{busy} associations are open, the most --max-associations allows: try again later")
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
        record = {"type": "connection", "event": "aborted" if associated else "dropped",
                  "peer": f"{info.address}:{info.port}" if info else None}
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
            {"context_id": cx.context_id, "sop_class_uid": cx.abstract_syntax, "sop_class": uid_name(cx.abstract_syntax),
             "transfer_syntax": cx.transfer_syntax[0]}
            for cx in assoc.accepted_contexts
        ]
        rejected = [
            {"context_id": cx.context_id, "sop_class_uid": cx.abstract_syntax, "sop_class": uid_name(cx.abstract_syntax),
             "transfer_syntaxes": list(cx.transfer_syntax), "result": _CX_RESULTS.get(cx.result, cx.result)}
            for cx in assoc.rejected_contexts
        ]
        self._touch()
        self._emit({
            "type": "association",
            "event": "accepted",
            **self._peer_fields(assoc),
            "max_pdu": assoc.requestor.maximum_length,
            "implementation": (assoc.requestor.implementation_version_name or "").strip() or None,
            "proposed": len(accepted) + len(rejected),
            "accepted": accepted,
            "rejected": rejected,
        })

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
        record = {"type": "association", "event": how, **self._peer_fields(event.assoc),
                  "instances": receiver.count if receiver else 0}
        self._touch()
        self._emit(record)


_CX_RESULTS = {1: "user rejection", 2: "no reason", 3: "abstract syntax not supported", 4: "transfer syntaxes not supported"}


class _Receiver:
    """Per association: turns P-DATA-TF bodies into stored files and C-STORE responses.

    Runs in the association's reactor thread.  Messages other than C-STORE
    (C-ECHO ...) are handed to pynetdicom as P-DATA primitives.
    """

    def __init__(self, scp: StorageSCP, assoc: Any) -> None:
        self.scp = scp
        self.assoc = assoc
        self.mode: str | None = None  # None: reading a command; "store"; "pass"
        self.command = bytearray()
        self.command_pdvs: list[tuple[int, int, bytes]] = []
        self.passed = 0
        self.count = 0
        self.accepted = False
        self.ended = False
        self.instance: _Incoming | None = None
        assoc._dcmtools_receiver = self

    def feed(self, dul: Any, body: bytearray) -> bool:
        for context_id, control, data in wire.iter_pdvs(body):
            if self.mode == "store":
                if control & 1:
                    raise ValueError("a command fragment arrived in the middle of a dataset")
                self.instance.write(data)
                if control & 2:
                    self.mode = None
                    self._finish(dul)
                continue
            if self.mode == "pass":
                self.passed += len(data)
                if self.passed > MAX_PASSED_DATASET:  # pynetdicom holds these whole: bound them
                    raise ValueError(f"a {self.passed}-byte dataset in a request other than C-STORE")
                self._pass(context_id, control, data)
                if control & 2 and not control & 1:
                    self.mode = None
                continue
            if not control & 1:
                raise ValueError("a dataset fragment arrived before its command")
            if len(self.command) + len(data) > MAX_COMMAND_BYTES:
                raise ValueError(f"a command set longer than {MAX_COMMAND_BYTES} bytes")
            self.command += data
            self.command_pdvs.append((context_id, control, bytes(data)))
            if control & 2:
                command = wire.parse_command(self.command)
                has_dataset = wire.command_us(command, wire.TAG_DATASET_TYPE) != wire.NO_DATASET
                if wire.command_us(command, wire.TAG_COMMAND_FIELD) == wire.C_STORE_RQ and has_dataset:
                    self._begin(context_id, command)
                    self.mode = "store"
                else:
                    for pdv in self.command_pdvs:
                        self._pass(*pdv)
                    self.mode = "pass" if has_dataset else None
                    self.passed = 0
                self.command = bytearray()
                self.command_pdvs = []
        return True

    def _pass(self, context_id: int, control: int, data: Any) -> None:
        from .seam import pass_pdv

        pass_pdv(self.assoc, context_id, control, data)

    def _begin(self, context_id: int, command: dict[int, bytes]) -> None:
        from .seam import accepted_context

        cx = accepted_context(self.assoc, context_id)
        ts = cx.transfer_syntax[0] if cx is not None else None
        self.instance = _Incoming(self.scp, self.assoc, context_id, command, ts)
        if self.assoc.dul.trace is not None:
            self.assoc.dul.trace.dimse_in("C-STORE-RQ", context_id, command)

    def _finish(self, dul: Any) -> None:
        instance, self.instance = self.instance, None
        status, record = instance.finish()
        if record.get("ok") and record.get("path") and self.scp.on_stored is not None:
            # Before the C-STORE-RSP: an acknowledged instance is never missing from the index.
            try:
                self.scp.on_stored(record["path"])
            except Exception as exc:  # noqa: BLE001 - the file is stored; say why it is not findable
                LOGGER.warning("could not note %s for the index: %s", record["path"], exc)
        response = wire.store_rsp(instance.message_id, instance.sop_class, instance.sop_instance, status,
                                  record.get("error", {}).get("message") if status else None)
        buffers: list = []
        wire.pdata_iovecs(instance.context_id, response, True, True, wire.max_fragment(self.assoc.requestor.maximum_length), buffers)
        from .transport import sendv

        sendv(dul.socket.socket, buffers)
        if dul.trace is not None:
            dul.trace.dimse_out("C-STORE-RSP", instance.context_id, wire.parse_command(response))
        self.count += 1
        self.scp.note_instance(record)


class _Incoming:
    """One instance being received: a temporary file in the store folder, and its first bytes."""

    def __init__(self, scp: StorageSCP, assoc: Any, context_id: int, command: dict[int, bytes], ts: str | None) -> None:
        self.scp = scp
        self.assoc = assoc
        self.context_id = context_id
        self.message_id = wire.command_us(command, wire.TAG_MESSAGE_ID, 0)
        self.sop_class = wire.command_str(command, wire.TAG_AFFECTED_SOP_CLASS) or ""
        self.sop_instance = wire.command_str(command, wire.TAG_AFFECTED_SOP_INSTANCE) or ""
        self.ts = ts
        self.head = bytearray()
        self.size = 0
        self.error: str | None = None
        self.fd: int | None = None
        self.pending: list = []  # the file meta, kept to go out with the first fragment (one write)
        self.tmp: str | None = None
        if ts is None:
            self.error = f"presentation context {context_id} was not accepted"
            return
        if scp.store_dir is not None:
            self.pending.append(wire.file_meta_bytes(self.sop_class, self.sop_instance, ts,
                                                     assoc.acceptor.implementation_class_uid,
                                                     assoc.acceptor.implementation_version_name,
                                                     assoc.requestor.ae_title))
            try:
                # Plain descriptor writes: fragments are large (up to our max PDU), and a
                # buffered file object per instance costs more than it saves.
                self.tmp = os.path.join(scp.store_dir, f"{PART_PREFIX}{os.getpid()}-{next(_SERIAL)}.part")
                self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            except OSError as exc:
                self.tmp = None
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.error = f"cannot write in {self.scp.store_dir!r}: {exc.strerror or exc}"
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None

    def write(self, data: memoryview) -> None:
        self.size += len(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        if self.fd is not None:
            try:
                if self.pending:
                    self.pending.append(data)
                    _write_all(self.fd, self.pending)
                    self.pending = []
                else:
                    _write_all(self.fd, [data])
            except OSError as exc:
                self._fail(exc)

    def discard(self) -> None:
        """Drop an instance that will not be completed (the association ended)."""
        if self.fd is not None or self.tmp is not None:
            self._fail(OSError("the association ended before the instance was complete"))

    def _close(self) -> None:
        fd, self.fd = self.fd, None
        if self.pending:  # an empty dataset: the meta alone
            _write_all(fd, self.pending)
            self.pending = []
        os.close(fd)

    def finish(self) -> tuple[int, dict[str, Any]]:
        scp = self.scp
        record: dict[str, Any] = {
            "type": "instance",
            **scp._peer_fields(self.assoc),
            "sop_class_uid": self.sop_class,
            "sop_instance_uid": self.sop_instance,
            "transfer_syntax": self.ts,
            "bytes": self.size,
        }
        ids = self._identifiers() if self.ts is not None else {}
        if ids.get("sop_instance_uid") and ids["sop_instance_uid"] != self.sop_instance:
            record["dataset_sop_instance_uid"] = ids["sop_instance_uid"]
        for name in ("patient_id", "study_instance_uid", "series_instance_uid", "modality"):
            if name in ids:
                record[name] = ids[name]
        if self.fd is not None and self.error is None:
            try:
                self._close()
                record["path"] = self._place(ids)
            except OSError as exc:
                self._fail(exc)
        if self.error is not None:
            if self.ts is None:
                status = 0x0122
            else:
                status = 0xA700
            record.update({"status": f"0x{status:04X}", "ok": False,
                           "error": {"code": ErrorCode.WRITE_FAILED if self.ts else ErrorCode.NO_CONTEXT,
                                     "message": self.error}})
            return status, record
        record.update({"status": "0x0000", "ok": True})
        return 0x0000, record

    def _identifiers(self) -> dict[str, str]:
        """Patient, study, series ... from the first bytes received (``wire.scan_dataset``)."""
        ts, head = self.ts, bytes(self.head)
        if ts == wire.DEFLATED_LE:
            ts, head = wire.EXPLICIT_LE, wire.inflate_head(head)
        try:
            found = wire.scan_dataset(head, ts, set(_IDS))
        except wire.NotDicom:
            return {}
        ids = {}
        for tag, name in _IDS.items():
            if tag in found:
                text = found[tag].decode("latin-1").strip(" \0")
                if text:
                    ids[name] = text
        return ids

    def _place(self, ids: dict[str, str]) -> str:
        dest = stored_path(self.scp.store_dir, ids.get("patient_id"), ids.get("study_instance_uid"),
                           ids.get("series_instance_uid"), self.sop_instance)
        folder = os.path.dirname(dest)
        if folder not in self.scp._made:
            os.makedirs(folder, exist_ok=True)
            self.scp._made.add(folder)
        tmp, self.tmp = self.tmp, None
        if self.scp.overwrite:
            os.replace(tmp, dest)
            return dest
        stem = dest[:-4]
        for n in range(0, 10000):
            candidate = dest if n == 0 else f"{stem}-{n}.dcm"
            try:
                os.link(tmp, candidate)
            except FileExistsError:
                continue
            except OSError:
                if os.path.exists(candidate):
                    continue
                os.replace(tmp, candidate)  # no hard links here: rename (still atomic)
                return candidate
            os.unlink(tmp)
            return candidate
        raise OSError(f"too many copies of {dest}")
