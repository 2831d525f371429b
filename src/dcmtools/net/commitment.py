"""Storage Commitment Push Model (PS3.4 Annex J): asking an archive whether it keeps instances, and answering.

The requester (SCU, ``dcmtools commit``)::

    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.net.commitment import commit

    for record in commit(parse_peer("PACS@10.0.0.5:104"), ["study/"], NetOptions(), wait=60, port=11113):
        print(record["sop_instance_uid"], record["state"])      # committed, failed, pending ...

* The SOP Class and Instance UIDs of each input come from the file (its first
  elements, read with ``dcmtools.dicom.reader``) or from an upstream record
  (``send``, ``listen``, a query match: ``sop_class_uid``/``sop_instance_uid``
  or the dataset's (0008,0016)/(0008,0018)).
* Every ``batch`` instances make one transaction: one N-ACTION (Request
  Storage Commitment, action type 1) on the well-known SOP instance
  1.2.840.10008.1.20.1.1, with a new Transaction UID that is tracked until its
  N-EVENT-REPORT comes.
* The report is accepted on the association of the request (kept open while
  waiting) and, with ``port``, on new associations the archive opens to us
  (our AE title ``options.calling_aet`` on that port; the SCP role for the
  Storage Commitment Push Model SOP class is accepted).
* One record per instance: ``state`` committed (``ok``), failed (the failure
  reason decoded, e.g. 0x0112 no such object instance), pending (no report
  within ``wait`` seconds after the last request, with the likely cause), or
  not_requested (the association failed before its request went out).

The archive side (``dcmtools listen``): ``CommitmentSCP`` answers N-ACTION
requests for what a ``StorageSCP`` has stored (the store's index, ``index.py``) and
sends the report the way the requester asks: on its association while it is
still open, or on a new association to a configured address (``report``:
auto, same, new).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .assoc import NetOptions, associate, close, failure_after
from .peer import Peer
from .status import describe, status_fields

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
    0x0119: ("class / instance conflict",
             "the archive holds this SOP Instance UID as another SOP class: two different objects share the UID; check the source"),
    0x0122: ("referenced SOP class not supported", "the archive does not keep this kind of object: keep the local copy"),
    0x0131: ("duplicate transaction UID", "the archive saw this Transaction UID before; ask again (a new one is made per request)"),
    0x0213: ("resource limitation", "the archive lacks the resources (disk space?) to keep it; check it, then send and ask again"),
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

@dataclass
class Reference:
    """One instance to ask about: its UIDs, and where it came from."""

    sop_class_uid: str
    sop_instance_uid: str
    path: str | None = None

    def fields(self) -> dict[str, Any]:
        base: dict[str, Any] = {"type": "commitment"}
        if self.path:
            base["path"] = self.path
        base["sop_class_uid"] = self.sop_class_uid
        base["sop_instance_uid"] = self.sop_instance_uid
        return base


_CLASS_KEYS = ("sop_class_uid", "SOPClassUID", "00080016")
_INSTANCE_KEYS = ("sop_instance_uid", "SOPInstanceUID", "00080018")


def _value(mapping: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(mapping, dict):
        return None
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, dict):  # DICOM JSON: {"vr": "UI", "Value": [...]}
            values = value.get("Value") or []
            value = values[0] if values else None
        elif isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def uids_from_record(record: dict[str, Any]) -> tuple[str | None, str | None]:
    """(SOP Class UID, SOP Instance UID) named by an upstream record, or its dataset."""
    sop_class = _value(record, _CLASS_KEYS[:1]) or _value(record.get("dataset"), _CLASS_KEYS)
    sop_instance = _value(record, _INSTANCE_KEYS[:1]) or _value(record.get("dataset"), _INSTANCE_KEYS)
    return sop_class, sop_instance


def read_reference(path: str) -> Reference:
    """The UIDs of a DICOM file (its first elements only), or ``DcmtoolsError``."""
    from ..dicom import reader

    try:
        info = reader.read(path, stop_at=0x00080019, bulk_threshold=0)
    except reader.ReadError as exc:
        if exc.code != ErrorCode.TRUNCATED or exc.partial is None:
            raise
        info = exc.partial  # UIDs come first; a file cut short later still names them
        if not (info.sop_class_uid and info.sop_instance_uid):
            raise
    if info.is_dicomdir:
        raise DcmtoolsError(ErrorCode.DICOMDIR, "this is a DICOMDIR (a media index), not an instance",
                            "ask about the files it lists instead")
    if not info.sop_class_uid or not info.sop_instance_uid:
        raise DcmtoolsError(ErrorCode.INVALID, "the file has no SOP Class UID or SOP Instance UID",
                            "an archive cannot commit to keep it without them")
    return Reference(info.sop_class_uid, info.sop_instance_uid, path)


def reference_for(item: Any) -> Reference:
    """The ``Reference`` of one input (a path or an ``InputItem``), or ``DcmtoolsError``."""
    if isinstance(item, (str, os.PathLike)):
        return read_reference(os.fspath(item))
    record = getattr(item, "record", None)
    error = getattr(item, "error", None)
    if error is not None and not (error.code == ErrorCode.BAD_RECORD and isinstance(record, dict)):
        raise error
    if isinstance(record, dict):
        sop_class, sop_instance = uids_from_record(record)
        named = record.get("out") or record.get("path")
        # a record naming a folder gives each file under it: those files speak for themselves
        whole = error is not None or not isinstance(named, str) or os.path.normpath(named) == os.path.normpath(item.path)
        if sop_class and sop_instance and whole:
            return Reference(sop_class, sop_instance, item.path if error is None else None)
        if error is not None:
            raise DcmtoolsError(ErrorCode.BAD_RECORD,
                                "input record names no file and no SOP Class UID and SOP Instance UID",
                                "pipe the records of send, listen or a query, or give files")
    return read_reference(item.path)


# ====================================================================== one exchange on a busy association

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

    def send(self, assoc: Any, name: str, elements: list[tuple[int, object]], dataset: Any, message_id: int,
             timeout: float) -> Any:
        """Send one request (command ``elements`` and ``dataset``) on the Storage Commitment context.

        Returns the answer (a pynetdicom DIMSE primitive with ``Status`` and
        ``ErrorComment``), or None when no answer came within ``timeout`` or
        the association ended.
        """
        from . import seam, wire
        from .transport import sendv

        contexts = [cx for cx in assoc.accepted_contexts if cx.abstract_syntax == STORAGE_COMMITMENT]
        if not contexts or not assoc.is_established:
            return None
        cx = contexts[0]
        ts = cx.transfer_syntax[0]
        data = seam.encode(dataset, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        command = wire.encode_command([*elements, (wire.TAG_MESSAGE_ID, message_id), (wire.TAG_DATASET_TYPE, 0x0000)])
        peer_max = assoc.acceptor.maximum_length if assoc.is_requestor else assoc.requestor.maximum_length
        fragment = wire.max_fragment(peer_max)
        buffers: list = []
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
                    if (primitive is not None and getattr(primitive, "is_valid_response", False)
                            and getattr(primitive, "MessageIDBeingRespondedTo", None) == message_id):
                        del pending.queue[index]
                        pending.not_full.notify()
                        return primitive
                if not assoc.is_established or time.monotonic() > deadline:
                    return None
                pending.not_empty.wait(0.05)


# ====================================================================== the requester (SCU)

@dataclass
class _Entry:
    ref: Reference
    state: str = "pending"  # pending, committed, failed
    reason: int | None = None
    retrieve_aet: str | None = None
    reported_class: str | None = None


@dataclass
class Transaction:
    """One N-ACTION: its Transaction UID, its instances, and what the report said."""

    uid: str
    entries: list[_Entry]
    answer_lost: DcmtoolsError | None = None
    reports: int = 0
    via: str | None = None
    emitted: bool = False
    by_uid: dict[str, list[_Entry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.entries:
            self.by_uid.setdefault(entry.ref.sop_instance_uid, []).append(entry)

    @property
    def done(self) -> bool:
        return all(entry.state != "pending" for entry in self.entries)

    def unique_refs(self) -> list[Reference]:
        return [entries[0].ref for entries in self.by_uid.values()]


class CommitmentSCU:
    """Requests Storage Commitment and waits for the reports (see the module docs).

    ``run(items)`` yields one record per input.  ``fault`` holds the error of
    an association that failed after the first request went out (its
    ``exit_status`` says what kind); a failure before any request raises.
    """

    def __init__(
        self,
        peer: Peer,
        options: NetOptions | None = None,
        *,
        batch: int = DEFAULT_BATCH,
        wait: float = DEFAULT_WAIT,
        port: int | None = None,
        bind: str = "",
    ) -> None:
        self.peer = peer
        self.options = options or NetOptions()
        self.batch = max(1, batch)
        self.wait = max(0.0, wait)
        self.port = port
        self.bind = bind
        self.timeout = self.options.timeout_for(peer)
        self.fault: DcmtoolsError | None = None
        self.listener: Any = None
        self._assoc: Any = None
        self._raw_assoc: Any = None
        self._transactions: dict[str, Transaction] = {}
        self._order: list[Transaction] = []
        self._cond = threading.Condition()
        self._exchanges = Exchanges()
        self._requested = 0
        self._last_request = time.monotonic()
        self._closed_by_peer = False
        self._inbound: list[dict[str, Any]] = []  # association records of the listener
        self._unknown_reports: list[str] = []
        self._unreadable_reports = 0
        self._answering = 0  # reports received whose answer (N-EVENT-REPORT-RSP) is not out yet
        self._report_threads: list[threading.Thread] = []  # pynetdicom serves each report in a thread

    # ------------------------------------------------------------------ run
    def run(self, items: Iterable[Any]) -> Iterator[dict[str, Any]]:
        try:
            if self.port is not None:
                self._listen()
            pending: list[Reference] = []
            for item in items:
                try:
                    ref = reference_for(item)
                except DcmtoolsError as exc:
                    path = item if isinstance(item, str) else getattr(item, "path", None)
                    yield error_record("commitment", exc, **({"path": path} if path else {}))
                    continue
                pending.append(ref)
                if len(pending) >= self.batch:
                    yield from self._request(pending)
                    pending = []
                yield from self._resolved()
            if pending:
                yield from self._request(pending)
            yield from self._wait()
            self._settle()
        except BaseException:
            self._close(abort=True)
            raise
        finally:
            self._stop_listener()
        self._close()

    # ------------------------------------------------------------------ listener
    def _listen(self) -> None:
        from pynetdicom import evt
        from pynetdicom.presentation import build_context

        from .scp import StorageSCP

        verification = build_context("1.2.840.10008.1.1")
        commitment = build_context(STORAGE_COMMITMENT, list(SYNTAXES))
        commitment.scu_role, commitment.scp_role = True, True  # the archive proposes the SCP role
        tls = self.options.tls if self.options.tls is not None and self.options.tls.cert else None
        self.listener = StorageSCP(
            None,
            aet=self.options.calling_aet,
            port=self.port,
            host=self.bind,
            options=self.options,
            on_record=self._inbound_record,
            tls=tls,
            contexts=[verification, commitment],
            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_report), (evt.EVT_DIMSE_SENT, self._on_sent)],
        )
        self.listener.start()

    def _inbound_record(self, record: dict[str, Any]) -> None:
        if record.get("type") == "association":
            with self._cond:
                self._inbound.append(record)
                self._cond.notify_all()

    def _stop_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.stop(grace=2.0)  # let the archive release the associations it opened to report

    # ------------------------------------------------------------------ association
    def _open(self) -> None:
        from pynetdicom import evt
        from pynetdicom.presentation import build_context

        self._close()
        assoc = associate(
            self.peer,
            [build_context(STORAGE_COMMITMENT, list(SYNTAXES))],
            self.options,
            evt_handlers=[(evt.EVT_N_EVENT_REPORT, self._on_report), (evt.EVT_DIMSE_SENT, self._on_sent),
                          (evt.EVT_RELEASED, self._on_closed), (evt.EVT_ABORTED, self._on_closed)],
        )
        self._assoc = assoc
        self._raw_assoc = assoc.association
        self._closed_by_peer = False

    def _on_closed(self, event: Any) -> None:
        with self._cond:
            if event.assoc is self._raw_assoc:
                self._closed_by_peer = True
            self._cond.notify_all()

    def _close(self, abort: bool = False) -> None:
        assoc, self._assoc = self._assoc, None
        if assoc is not None:
            raw = assoc.association
            close(raw, abort=abort)

    def _established(self) -> bool:
        return self._assoc is not None and bool(self._raw_assoc.is_established)

    # ------------------------------------------------------------------ request
    def _request(self, refs: list[Reference]) -> Iterator[dict[str, Any]]:
        from pydicom.dataset import Dataset
        from pydicom.uid import generate_uid

        from . import wire

        tx = Transaction(generate_uid(), [_Entry(ref) for ref in refs])
        try:
            if not self._established():
                self._open()
        except DcmtoolsError as exc:
            if self._requested == 0:
                raise
            yield from self._not_requested(tx, exc)
            return
        info = Dataset()
        info.TransactionUID = tx.uid
        items = []
        for ref in tx.unique_refs():
            item = Dataset()
            item.ReferencedSOPClassUID = ref.sop_class_uid
            item.ReferencedSOPInstanceUID = ref.sop_instance_uid
            items.append(item)
        info.ReferencedSOPSequence = items
        with self._cond:  # tracked before the request goes out: the report may come at once
            self._transactions[tx.uid] = tx
            self._order.append(tx)
        started = time.monotonic()
        status = self._exchanges.send(self._raw_assoc, "N-ACTION-RQ", [
            (wire.TAG_REQUESTED_SOP_CLASS, STORAGE_COMMITMENT),  # even length: needs no padding
            (wire.TAG_COMMAND_FIELD, 0x0130),  # N-ACTION-RQ
            (wire.TAG_REQUESTED_SOP_INSTANCE, WELL_KNOWN_INSTANCE),
            (wire.TAG_ACTION_TYPE_ID, REQUEST_ACTION),
        ], info, self._exchanges.message_id(), self.timeout)
        self._last_request = time.monotonic()
        self._requested += 1
        if status is None or getattr(status, "Status", None) is None:
            timed_out = time.monotonic() - started >= self.timeout * 0.9
            error = failure_after(self._raw_assoc, self.peer, "Storage Commitment request (N-ACTION)", self.timeout,
                                  timed_out=timed_out)
            self.fault = self.fault or error
            self._close(abort=True)
            if timed_out:
                with self._cond:  # it went out: the archive may still report (on our port)
                    tx.answer_lost = error
                return
            # an abort instead of an answer: the archive refused the request
            error.hint = (f"the archive may not allow Storage Commitment for our AE title '{self.options.calling_aet}': "
                          f"ask its administrator (for Orthanc: a DicomModalities entry for '{self.options.calling_aet}' "
                          "with \"AllowStorageCommitment\": true); its log says why")
            with self._cond:
                del self._transactions[tx.uid]
                self._order.remove(tx)
            for entry in tx.entries:
                yield error_record("commitment", error, **entry.ref.fields(), transaction_uid=tx.uid, state="failed")
            return
        code = int(status.Status)
        comment = getattr(status, "ErrorComment", None)
        category, meaning = describe(code, "commitment")
        with self._cond:
            if category in ("success", "warning"):
                return
            del self._transactions[tx.uid]
            self._order.remove(tx)
        error = DcmtoolsError(
            ErrorCode.DIMSE_FAILED,
            f"{self.peer.label} refused the Storage Commitment request: {meaning} (status 0x{code:04X})"
            + (f": {comment}" if comment else ""),
            _request_hint(code),
        )
        for entry in tx.entries:
            yield error_record("commitment", error, **entry.ref.fields(), transaction_uid=tx.uid, state="failed",
                               **status_fields(code, "commitment"))

    def _not_requested(self, tx: Transaction, error: DcmtoolsError) -> Iterator[dict[str, Any]]:
        self.fault = self.fault or error
        for entry in tx.entries:
            yield error_record("commitment", error, **entry.ref.fields(), state="not_requested")

    # ------------------------------------------------------------------ reports
    def _on_report(self, event: Any) -> tuple[int, None]:
        """EVT_N_EVENT_REPORT on our association or on the listener's: record what it says."""
        via = "same association" if event.assoc is self._raw_assoc else _inbound_name(event.assoc)
        with self._cond:
            self._answering += 1
            self._report_threads.append(threading.current_thread())
        try:
            info = event.event_information
            tx_uid = str(info.TransactionUID).strip()
            committed = [(str(i.ReferencedSOPInstanceUID), str(i.get("ReferencedSOPClassUID", "")), i.get("RetrieveAETitle"))
                         for i in info.get("ReferencedSOPSequence", [])]
            failed = [(str(i.ReferencedSOPInstanceUID), str(i.get("ReferencedSOPClassUID", "")), i.get("FailureReason"))
                      for i in info.get("FailedSOPSequence", [])]
            retrieve_aet = info.get("RetrieveAETitle")
        except Exception as exc:  # a report we cannot read: say so, and it stays pending
            LOGGER.warning("a Storage Commitment report from %s could not be read: %s", via, exc)
            with self._cond:
                self._unreadable_reports += 1
                self._cond.notify_all()
            return 0x0110, None
        with self._cond:
            tx = self._transactions.get(tx_uid)
            if tx is None:
                self._unknown_reports.append(tx_uid)
                LOGGER.warning("a Storage Commitment report from %s names transaction %s, which this run did not "
                               "request (an earlier run's?)", via, tx_uid)
                self._cond.notify_all()
                return 0x0000, None
            for uid, sop_class, aet in committed:
                for entry in tx.by_uid.get(uid, []):
                    entry.state, entry.reason = "committed", None
                    entry.retrieve_aet = _text(aet) or _text(retrieve_aet)
                    entry.reported_class = sop_class or None
            for uid, sop_class, reason in failed:
                for entry in tx.by_uid.get(uid, []):
                    entry.state = "failed"
                    entry.reason = int(reason) if reason is not None else None
                    entry.reported_class = sop_class or None
            tx.reports += 1
            tx.via = via
            self._cond.notify_all()
        return 0x0000, None

    def _on_sent(self, event: Any) -> None:
        if type(event.message).__name__ == "N_EVENT_REPORT_RSP":
            with self._cond:
                self._answering = max(0, self._answering - 1)
                self._cond.notify_all()

    def _settle(self, timeout: float = 5.0) -> None:
        """Let the answers to the reports go out, and pynetdicom's report threads end, before closing.

        (A report thread that ends while ``release()`` waits for the reactor to
        pause would leave that wait spinning: pynetdicom shares one "paused"
        flag between them.)
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._answering and time.monotonic() < deadline:
                self._cond.wait(0.05)
            threads = [t for t in self._report_threads if t is not threading.current_thread()]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _resolved(self) -> Iterator[dict[str, Any]]:
        """Records of the transactions whose report came (in request order)."""
        with self._cond:
            ready = [tx for tx in self._order if tx.done and not tx.emitted]
            for tx in ready:
                tx.emitted = True
        for tx in ready:
            for entry in tx.entries:
                yield self._record(tx, entry)

    def _record(self, tx: Transaction, entry: _Entry) -> dict[str, Any]:
        base = {**entry.ref.fields(), "transaction_uid": tx.uid}
        if entry.reported_class and entry.reported_class != entry.ref.sop_class_uid:
            base["reported_sop_class_uid"] = entry.reported_class  # the archive named another class
        if entry.state == "committed":
            record = {**base, "state": "committed", "reported_via": tx.via}
            if entry.retrieve_aet:
                record["retrieve_aet"] = entry.retrieve_aet
            record["ok"] = True
            return record
        meaning, hint = failure_words(entry.reason)
        reason = f"0x{entry.reason:04X}" if entry.reason is not None else None
        error = DcmtoolsError(
            ErrorCode.NOT_COMMITTED,
            f"{self.peer.label} did not commit to keep it: {meaning}" + (f" (failure reason {reason})" if reason else ""),
            hint,
        )
        return error_record("commitment", error, **base, state="failed", failure_reason=reason,
                            failure_meaning=meaning, reported_via=tx.via)

    # ------------------------------------------------------------------ waiting
    def _wait(self) -> Iterator[dict[str, Any]]:
        deadline = self._last_request + self.wait
        while True:
            yield from self._resolved()
            with self._cond:
                open_txs = [tx for tx in self._order if not tx.emitted]
                if not open_txs:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.listener is None and not self._established():
                    break  # nothing can bring a report any more
                if not any(tx.done for tx in open_txs):
                    self._cond.wait(min(left, 0.5))
        why = self._pending_error()
        with self._cond:
            late = [tx for tx in self._order if not tx.emitted]
            for tx in late:
                tx.emitted = True
        for tx in late:
            for entry in tx.entries:
                if entry.state != "pending":
                    yield self._record(tx, entry)
                    continue
                error = tx.answer_lost if tx.answer_lost is not None and not tx.reports else why
                if tx.reports:
                    error = DcmtoolsError(
                        ErrorCode.COMMIT_PENDING,
                        f"the report from {self.peer.label} for this transaction did not mention this instance",
                        "ask again; if it stays so, check the archive's log",
                    )
                yield error_record("commitment", error, **entry.ref.fields(), transaction_uid=tx.uid, state="pending")

    def _pending_error(self) -> DcmtoolsError:
        """Why no report came: the likely cause, in words."""
        peer, aet, wait = self.peer.label, self.options.calling_aet, self.wait
        if self.listener is None:
            if self._closed_by_peer:
                return DcmtoolsError(
                    ErrorCode.COMMIT_PENDING,
                    f"{peer} accepted the request and closed the association without sending the report: "
                    "it reports on a new association, which this run was not listening for",
                    f"run again with --port PORT (a port of this machine that {peer} can reach), and have {peer} "
                    f"know our AE title '{aet}' at this host and that port",
                )
            return DcmtoolsError(
                ErrorCode.COMMIT_PENDING,
                f"no report came from {peer} within {wait:g} s on the association of the request",
                f"many archives (Orthanc among them) report on a new association: add --port PORT and have {peer} "
                f"know our AE title '{aet}' at this host and that port; or give it longer with --wait",
            )
        with self._cond:
            inbound = list(self._inbound)
            unknown = list(self._unknown_reports)
            unreadable = self._unreadable_reports
        came = [r for r in inbound if r.get("event") == "accepted"]
        if unreadable:
            return DcmtoolsError(
                ErrorCode.COMMIT_PENDING,
                f"a report came but could not be read ({unreadable} unreadable report(s)); no readable report within {wait:g} s",
                "run with --trace or --debug to see it, and check the archive's configuration",
            )
        if not came:
            return DcmtoolsError(
                ErrorCode.COMMIT_PENDING,
                f"no report within {wait:g} s: none on the association of the request, and nothing connected to "
                f"port {self.listener.port} where we listened as '{aet}'",
                f"{peer} must know our AE title '{aet}' with this host's address and port {self.listener.port} "
                "(for Orthanc: an entry in DicomModalities, with AllowStorageCommitment), and a firewall must let it "
                "connect; or it needs longer: raise --wait",
            )
        senders = sorted({f"{r.get('calling_aet')}@{r.get('peer')}" for r in came})
        text = (f"no report for this transaction within {wait:g} s; association(s) came to port "
                f"{self.listener.port} from {', '.join(senders)}")
        if unknown:
            text += f" with reports for other transactions ({', '.join(unknown[:3])})"
        else:
            text += " but carried no report for it"
        return DcmtoolsError(ErrorCode.COMMIT_PENDING, text,
                             f"check {peer}'s log; it may need longer (raise --wait)")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _inbound_name(assoc: Any) -> str:
    info = assoc.requestor.address_info
    where = f"{info.address}:{info.port}" if info else "?"
    return f"new association from {assoc.requestor.ae_title}@{where}"


def _request_hint(code: int) -> str:
    if code == 0x0124:
        return "the archive does not allow us Storage Commitment: ask its administrator to allow our AE title"
    if code in (0x0112, 0x0117):
        return "the archive did not accept the well-known Storage Commitment instance; check its configuration"
    if code in (0x0114, 0x0115):
        return "the archive found the request malformed; run with --trace and check its log"
    if code == 0x0213:
        return "the archive is short of resources; try again later or with a smaller --batch"
    return "check the archive's log"


def commit(
    peer: Peer,
    items: Iterable[Any],
    options: NetOptions | None = None,
    *,
    batch: int = DEFAULT_BATCH,
    wait: float = DEFAULT_WAIT,
    port: int | None = None,
    bind: str = "",
) -> Iterator[dict[str, Any]]:
    """Ask ``peer`` to commit to keep the instances of ``items`` (paths or ``InputItem``s).

    Yields one record per input (``state``: committed, failed, pending,
    not_requested).  Raises ``DcmtoolsError`` when the association for the
    first request cannot be opened; a failure after that ends as records
    (and ``CommitmentSCU.fault``).  Use ``CommitmentSCU`` to read ``fault``.
    """
    yield from CommitmentSCU(peer, options, batch=batch, wait=wait, port=port, bind=bind).run(items)


# ====================================================================== the archive side (SCP, listen)

REPORT_MODES = ("auto", "same", "new")


@dataclass
class _Job:
    transaction_uid: str
    refs: list[tuple[str, str]]
    assoc: Any
    message_id: int
    calling_aet: str
    peer: str
    duplicate: bool
    answered: threading.Event = field(default_factory=threading.Event)


class CommitmentSCP:
    """Answers Storage Commitment requests for what a store holds.

    Plug it into a ``StorageSCP``::

        scp_commit = CommitmentSCP(StoreIndex("incoming/"), options, report="auto", on_record=print)
        scp = StorageSCP("incoming/", contexts=storage_contexts() + scp_commit.contexts(),
                         evt_handlers=scp_commit.handlers(), ...)

    ``store`` is the store's ``index.StoreIndex`` (what ``listen`` keeps up
    to date), a store folder (its index is then opened here, built from the
    files if missing, and closed by ``close``), or None (nothing is kept).
    An instance is committed when the index has its SOP Instance UID, its file
    is there, and it has the same SOP class; otherwise it fails
    with 0x0112 (no such object instance) or 0x0119 (class / instance
    conflict).  A Transaction UID seen before fails with 0x0131.  Without a
    store folder nothing is kept, so nothing is committed.

    ``report``: ``auto`` sends the report on the requester's association
    while it is open, else on a new association; ``same`` only on the
    requester's association; ``new`` always on a new association.  A new
    association goes to ``report_to`` or, without it, to the peers-file entry
    whose AE title is the requester's calling AE title; it proposes the SCP
    role for the Storage Commitment Push Model SOP class.  ``delay`` seconds
    pass between the answer to the request and the report.
    """

    def __init__(
        self,
        store: Any,
        options: NetOptions | None = None,
        *,
        report: str = "auto",
        delay: float = 0.0,
        report_to: Peer | None = None,
        peers_file: str | os.PathLike | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if report not in REPORT_MODES:
            raise ValueError(f"report must be one of {REPORT_MODES}")
        self._own_index = isinstance(store, (str, os.PathLike))
        if self._own_index:
            from .index import StoreIndex

            store = StoreIndex(store)
        self.index = store
        self.options = options or NetOptions()
        self.report = report
        self.delay = max(0.0, delay)
        self.report_to = report_to
        self.peers_file = peers_file
        self.on_record = on_record or (lambda record: None)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._jobs: dict[tuple[int, int], _Job] = {}
        self._threads: list[threading.Thread] = []
        self._message_ids = itertools.count(1)
        self._exchanges = Exchanges()

    def contexts(self) -> list[Any]:
        """The presentation context to support: Storage Commitment Push Model, explicit and implicit LE."""
        from pynetdicom.presentation import build_context

        return [build_context(STORAGE_COMMITMENT, list(SYNTAXES))]

    def handlers(self) -> list:
        from pynetdicom import evt

        return [(evt.EVT_N_ACTION, self._on_action), (evt.EVT_DIMSE_SENT, self._on_sent)]

    def close(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout`` s) for the reports still being sent; close an index opened here."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._own_index and self.index is not None:
            self.index.close()
            self.index = None

    def _emit(self, record: dict[str, Any]) -> None:
        try:
            self.on_record(record)
        except Exception as exc:  # a broken stdout must not kill the association thread
            LOGGER.debug("record callback failed: %s", exc)

    # ------------------------------------------------------------------ the request
    def _on_action(self, event: Any) -> tuple[Any, None]:
        from pydicom.dataset import Dataset

        assoc = event.assoc
        request = event.request
        info_addr = assoc.requestor.address_info
        who = {"calling_aet": assoc.requestor.ae_title,
               "peer": f"{info_addr.address}:{info_addr.port}" if info_addr else None}

        def refuse(code: int, comment: str) -> tuple[Any, None]:
            status = Dataset()
            status.Status = code
            status.ErrorComment = comment[:64]
            self._emit(error_record(
                "commitment_request",
                DcmtoolsError(ErrorCode.BAD_REQUEST, f"refused a Storage Commitment request from {who['calling_aet']}: {comment}",
                              "the requester's request does not follow PS3.4 J.3.2; check its configuration"),
                **who, **status_fields(code, "commitment")))
            return status, None

        if request.ActionTypeID != REQUEST_ACTION:
            return refuse(0x0123, f"action type {request.ActionTypeID} (only 1, Request Storage Commitment)")
        try:
            info = event.action_information
            tx_uid = str(info.TransactionUID).strip()
            refs = [(str(i.ReferencedSOPClassUID).strip(), str(i.ReferencedSOPInstanceUID).strip())
                    for i in info.ReferencedSOPSequence]
        except Exception as exc:
            text = str(exc)
            missing = ("Transaction UID" if "TransactionUID" in text
                       else "Referenced SOP Sequence" if "ReferencedSOPSequence" in text
                       else "Referenced SOP Class/Instance UID" if "Referenced" in text else None)
            return refuse(0x0115, f"no {missing}" if missing else f"unreadable action information ({type(exc).__name__})")
        if not tx_uid:
            return refuse(0x0115, "no Transaction UID")
        if not refs:
            return refuse(0x0115, "empty Referenced SOP Sequence")
        with self._lock:
            duplicate = tx_uid in self._seen
            self._seen.add(tx_uid)
            job = _Job(tx_uid, refs, assoc, int(request.MessageID), who["calling_aet"], who["peer"], duplicate)
            self._jobs[(id(assoc), job.message_id)] = job
        record: dict[str, Any] = {"type": "commitment_request", **who, "transaction_uid": tx_uid,
                                  "instances": len(refs), "status": "0x0000"}
        if str(request.RequestedSOPInstanceUID) != WELL_KNOWN_INSTANCE:
            record["warning"] = (f"requested SOP instance {request.RequestedSOPInstanceUID} is not the well-known "
                                 f"{WELL_KNOWN_INSTANCE}")
        self._emit(record)
        thread = threading.Thread(target=self._report, args=(job,), name="dcmtools-commit-report", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return 0x0000, None

    def _on_sent(self, event: Any) -> None:
        message = event.message
        if type(message).__name__ != "N_ACTION_RSP":
            return
        try:
            responded = int(message.command_set.MessageIDBeingRespondedTo)
        except Exception:
            return
        with self._lock:
            job = self._jobs.pop((id(event.assoc), responded), None)
        if job is not None:
            job.answered.set()

    # ------------------------------------------------------------------ the report
    def evaluate(self, refs: list[tuple[str, str]], duplicate: bool = False) -> tuple[list, list]:
        """(committed, failed) for the referenced (class, instance) pairs: what the store holds."""
        if duplicate:
            return [], [(c, i, 0x0131) for c, i in refs]
        committed, failed = [], []
        for sop_class, uid in refs:
            stored = self.index.instance(uid) if self.index is not None else None
            if stored is None:
                failed.append((sop_class, uid, 0x0112))
            elif stored.sop_class_uid and stored.sop_class_uid != sop_class:
                failed.append((sop_class, uid, 0x0119))
            else:
                committed.append((sop_class, uid))
        return committed, failed

    def _report(self, job: _Job) -> None:
        try:
            self._report_one(job)
        except Exception as exc:  # a bug must not pass silently in a background thread
            LOGGER.debug("reporting failed", exc_info=exc)
            self._emit(error_record(
                "commitment_report",
                DcmtoolsError(ErrorCode.INTERNAL, f"internal error while reporting: {type(exc).__name__}: {exc}",
                              "this is a bug in dcmtools; run with --debug and please report it"),
                calling_aet=job.calling_aet, transaction_uid=job.transaction_uid))

    def _report_one(self, job: _Job) -> None:
        from pydicom.dataset import Dataset

        job.answered.wait(self.options.timeout_for(None))
        if self.delay:
            time.sleep(self.delay)
        committed, failed = self.evaluate(job.refs, job.duplicate)
        info = Dataset()
        info.TransactionUID = job.transaction_uid
        info.RetrieveAETitle = self.options.calling_aet
        if committed:
            items = []
            for sop_class, uid in committed:
                item = Dataset()
                item.ReferencedSOPClassUID = sop_class
                item.ReferencedSOPInstanceUID = uid
                items.append(item)
            info.ReferencedSOPSequence = items
        if failed:
            items = []
            for sop_class, uid, reason in failed:
                item = Dataset()
                item.ReferencedSOPClassUID = sop_class
                item.ReferencedSOPInstanceUID = uid
                item.FailureReason = reason
                items.append(item)
            info.FailedSOPSequence = items
        event_type = EVENT_FAILURES if failed else EVENT_ALL_COMMITTED
        record: dict[str, Any] = {
            "type": "commitment_report",
            "calling_aet": job.calling_aet,
            "transaction_uid": job.transaction_uid,
            "committed": len(committed),
            "failed": len(failed),
        }
        if failed:
            record["failures"] = [{"sop_instance_uid": uid, "failure_reason": f"0x{reason:04X}",
                                   "failure_meaning": failure_words(reason)[0]} for _c, uid, reason in failed]
        try:
            via, code = self._deliver(job, info, event_type)
        except DcmtoolsError as exc:
            self._emit(error_record("commitment_report", exc, **record))
            return
        record["via"] = via
        record.update(status_fields(code, "commitment"))
        if describe(code, "commitment")[0] in ("success", "warning"):
            record["ok"] = True
            self._emit(record)
            return
        self._emit(error_record("commitment_report", DcmtoolsError(
            ErrorCode.DIMSE_FAILED,
            f"{job.calling_aet} refused the Storage Commitment report: {describe(code, 'commitment')[1]} (status 0x{code:04X})",
            "check the requester's log"), **record))

    def _deliver(self, job: _Job, info: Any, event_type: int) -> tuple[str, int]:
        """Send the N-EVENT-REPORT the way the requester asks; (how it went, status)."""
        if self.report in ("auto", "same") and job.assoc.is_established:
            status = self._send_same(job.assoc, info, event_type)
            if status is not None:
                return "same association", status
            if self.report == "same":
                raise DcmtoolsError(ErrorCode.ABORTED,
                                    f"the association of {job.calling_aet} ended before it answered the report",
                                    "the requester must keep its association open until the report comes")
        elif self.report == "same":
            raise DcmtoolsError(
                ErrorCode.REPORT_NOT_SENT,
                f"{job.calling_aet} closed its association before the report; with --commit-report same it cannot be sent",
                "use --commit-report auto (or new) with --commit-report-to, or have the requester wait for the report")
        target = self._target(job.calling_aet)
        from pynetdicom import build_role
        from pynetdicom.presentation import build_context

        with associate(target, [build_context(STORAGE_COMMITMENT, list(SYNTAXES))], self.options,
                       ext_neg=[build_role(STORAGE_COMMITMENT, scu_role=False, scp_role=True)]) as assoc:
            status = self._send(assoc.association, info, event_type)
            if status is None:
                raise failure_after(assoc, target, "Storage Commitment report (N-EVENT-REPORT)",
                                    self.options.timeout_for(target))
        return f"new association to {target}", status

    def _send_same(self, assoc: Any, info: Any, event_type: int) -> int | None:
        """The report on the requester's own association (see ``Exchanges``); its status, or None."""
        from . import wire

        answer = self._exchanges.send(assoc, "N-EVENT-REPORT-RQ", [
            (wire.TAG_AFFECTED_SOP_CLASS, STORAGE_COMMITMENT),
            (wire.TAG_COMMAND_FIELD, 0x0100),  # N-EVENT-REPORT-RQ
            (wire.TAG_AFFECTED_SOP_INSTANCE, WELL_KNOWN_INSTANCE),
            (wire.TAG_EVENT_TYPE_ID, event_type),
        ], info, self._exchanges.message_id(), self.options.timeout_for(None))
        if answer is None or getattr(answer, "Status", None) is None:
            return None
        return int(answer.Status)

    def _send(self, assoc: Any, info: Any, event_type: int) -> int | None:
        try:
            status, _reply = assoc.send_n_event_report(info, event_type, STORAGE_COMMITMENT, WELL_KNOWN_INSTANCE,
                                               msg_id=(next(self._message_ids) - 1) % 65535 + 1)
        except (RuntimeError, ValueError) as exc:  # released meanwhile, no context
            LOGGER.debug("sending the report failed: %s", exc)
            return None
        if not status or "Status" not in status:
            return None
        return int(status.Status)

    def _target(self, calling_aet: str) -> Peer:
        if self.report_to is not None:
            return self.report_to
        from .peer import load_peers

        peers, source = load_peers(self.peers_file)
        for peer in peers.values():
            if peer.aet == calling_aet:
                return peer
        where = f"the peers file {source}" if source else "no peers file"
        raise DcmtoolsError(
            ErrorCode.REPORT_NOT_SENT,
            f"cannot report to {calling_aet} on a new association: no address known for it ({where})",
            f"give --commit-report-to {calling_aet}@HOST:PORT, or add an entry with aet = \"{calling_aet}\" to the peers file",
        )
