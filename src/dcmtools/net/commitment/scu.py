"""The Storage Commitment requester (``dcmtools commit``): transactions, reports, records."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ...stream.records import DcmtoolsError, ErrorCode, error_record
from ..assoc import NetOptions, associate, close, failure_after
from ..peer import Peer
from ..status import describe, status_fields
from .common import (
    DEFAULT_BATCH,
    DEFAULT_WAIT,
    LOGGER,
    REQUEST_ACTION,
    STORAGE_COMMITMENT,
    SYNTAXES,
    WELL_KNOWN_INSTANCE,
    failure_words,
)
from .exchange import Exchanges
from .inputs import Reference, reference_for


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
                self._listen(self.port)
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
    def _listen(self, port: int) -> None:
        from pynetdicom import evt
        from pynetdicom.presentation import build_context

        from ..scp import StorageSCP

        verification = build_context("1.2.840.10008.1.1")
        commitment = build_context(STORAGE_COMMITMENT, list(SYNTAXES))
        commitment.scu_role, commitment.scp_role = True, True  # the archive proposes the SCP role
        tls = self.options.tls if self.options.tls is not None and self.options.tls.cert else None
        self.listener = StorageSCP(
            None,
            aet=self.options.calling_aet,
            port=port,
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
            evt_handlers=[
                (evt.EVT_N_EVENT_REPORT, self._on_report),
                (evt.EVT_DIMSE_SENT, self._on_sent),
                (evt.EVT_RELEASED, self._on_closed),
                (evt.EVT_ABORTED, self._on_closed),
            ],
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
        from pydicom.uid import generate_uid

        tx = Transaction(generate_uid(), [_Entry(ref) for ref in refs])
        try:
            if not self._established():
                self._open()
        except DcmtoolsError as exc:
            if self._requested == 0:
                raise
            yield from self._not_requested(tx, exc)
            return
        with self._cond:  # tracked before the request goes out: the report may come at once
            self._transactions[tx.uid] = tx
            self._order.append(tx)
        started = time.monotonic()
        status = self._send_action(tx)
        self._last_request = time.monotonic()
        self._requested += 1
        if status is None or getattr(status, "Status", None) is None:
            yield from self._no_answer(tx, timed_out=time.monotonic() - started >= self.timeout * 0.9)
            return
        code = int(status.Status)
        comment = getattr(status, "ErrorComment", None)
        category, meaning = describe(code, "commitment")
        with self._cond:
            if category in ("success", "warning"):
                return
            self._forget(tx)
        error = DcmtoolsError(
            ErrorCode.DIMSE_FAILED,
            f"{self.peer.label} refused the Storage Commitment request: {meaning} (status 0x{code:04X})"
            + (f": {comment}" if comment else ""),
            _request_hint(code),
        )
        for entry in tx.entries:
            yield error_record(
                "commitment",
                error,
                **entry.ref.fields(),
                transaction_uid=tx.uid,
                state="failed",
                **status_fields(code, "commitment"),
            )

    def _send_action(self, tx: Transaction) -> Any:
        """The N-ACTION-RQ of a transaction (its unique references); the response's status, or None."""
        from pydicom.dataset import Dataset

        from .. import wire

        info = Dataset()
        info.TransactionUID = tx.uid
        items = []
        for ref in tx.unique_refs():
            item = Dataset()
            item.ReferencedSOPClassUID = ref.sop_class_uid
            item.ReferencedSOPInstanceUID = ref.sop_instance_uid
            items.append(item)
        info.ReferencedSOPSequence = items
        return self._exchanges.send(
            self._raw_assoc,
            "N-ACTION-RQ",
            [
                (wire.TAG_REQUESTED_SOP_CLASS, STORAGE_COMMITMENT),  # even length: needs no padding
                (wire.TAG_COMMAND_FIELD, 0x0130),  # N-ACTION-RQ
                (wire.TAG_REQUESTED_SOP_INSTANCE, WELL_KNOWN_INSTANCE),
                (wire.TAG_ACTION_TYPE_ID, REQUEST_ACTION),
            ],
            info,
            self._exchanges.message_id(),
            self.timeout,
        )

    def _no_answer(self, tx: Transaction, timed_out: bool) -> Iterator[dict[str, Any]]:
        """No response to the N-ACTION: a timeout (the report may still come), or an abort (refused)."""
        error = failure_after(
            self._raw_assoc, self.peer, "Storage Commitment request (N-ACTION)", self.timeout, timed_out=timed_out
        )
        self.fault = self.fault or error
        self._close(abort=True)
        if timed_out:
            with self._cond:  # it went out: the archive may still report (on our port)
                tx.answer_lost = error
            return
        # an abort instead of an answer: the archive refused the request
        error.hint = (
            f"the archive may not allow Storage Commitment for our AE title '{self.options.calling_aet}': "
            f"ask its administrator (for Orthanc: a DicomModalities entry for '{self.options.calling_aet}' "
            'with "AllowStorageCommitment": true); its log says why'
        )
        with self._cond:
            self._forget(tx)
        for entry in tx.entries:
            yield error_record("commitment", error, **entry.ref.fields(), transaction_uid=tx.uid, state="failed")

    def _forget(self, tx: Transaction) -> None:
        """A transaction that will get no report (the caller holds ``_cond``)."""
        del self._transactions[tx.uid]
        self._order.remove(tx)

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
            committed = [
                (str(i.ReferencedSOPInstanceUID), str(i.get("ReferencedSOPClassUID", "")), i.get("RetrieveAETitle"))
                for i in info.get("ReferencedSOPSequence", [])
            ]
            failed = [
                (str(i.ReferencedSOPInstanceUID), str(i.get("ReferencedSOPClassUID", "")), i.get("FailureReason"))
                for i in info.get("FailedSOPSequence", [])
            ]
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
                LOGGER.warning(
                    "a Storage Commitment report from %s names transaction %s, which this run did not "
                    "request (an earlier run's?)",
                    via,
                    tx_uid,
                )
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
            f"{self.peer.label} did not commit to keep it: {meaning}"
            + (f" (failure reason {reason})" if reason else ""),
            hint,
        )
        return error_record(
            "commitment",
            error,
            **base,
            state="failed",
            failure_reason=reason,
            failure_meaning=meaning,
            reported_via=tx.via,
        )

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
                    f"run again with `port` PORT (a port of this machine that {peer} can reach), and have {peer} "
                    f"know our AE title '{aet}' at this host and that port",
                )
            return DcmtoolsError(
                ErrorCode.COMMIT_PENDING,
                f"no report came from {peer} within {wait:g} s on the association of the request",
                f"many archives (Orthanc among them) report on a new association: add `port` PORT and have {peer} "
                f"know our AE title '{aet}' at this host and that port; or give it longer with `wait`",
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
                "run with `trace` or `debug` to see it, and check the archive's configuration",
            )
        if not came:
            return DcmtoolsError(
                ErrorCode.COMMIT_PENDING,
                f"no report within {wait:g} s: none on the association of the request, and nothing connected to "
                f"port {self.listener.port} where we listened as '{aet}'",
                f"{peer} must know our AE title '{aet}' with this host's address and port {self.listener.port} "
                "(for Orthanc: an entry in DicomModalities, with AllowStorageCommitment), and a firewall must let it "
                "connect; or it needs longer: raise `wait`",
            )
        senders = sorted({f"{r.get('calling_aet')}@{r.get('peer')}" for r in came})
        text = (
            f"no report for this transaction within {wait:g} s; association(s) came to port "
            f"{self.listener.port} from {', '.join(senders)}"
        )
        if unknown:
            text += f" with reports for other transactions ({', '.join(unknown[:3])})"
        else:
            text += " but carried no report for it"
        return DcmtoolsError(ErrorCode.COMMIT_PENDING, text, f"check {peer}'s log; it may need longer (raise `wait`)")


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
        return "the archive found the request malformed; run with `trace` and check its log"
    if code == 0x0213:
        return "the archive is short of resources; try again later or with a smaller `batch`"
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
