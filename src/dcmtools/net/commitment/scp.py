"""The Storage Commitment answerer (``dcmtools listen``): N-ACTION in, N-EVENT-REPORT out."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...stream.records import DcmtoolsError, ErrorCode, error_record
from ..assoc import NetOptions, associate, failure_after
from ..peer import Peer
from ..status import describe, status_fields
from .common import (
    EVENT_ALL_COMMITTED,
    EVENT_FAILURES,
    LOGGER,
    REQUEST_ACTION,
    STORAGE_COMMITMENT,
    SYNTAXES,
    WELL_KNOWN_INSTANCE,
    failure_words,
)
from .exchange import Exchanges

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
        peers_file: str | os.PathLike[str] | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if report not in REPORT_MODES:
            raise ValueError(f"report must be one of {REPORT_MODES}")
        self._own_index = isinstance(store, (str, os.PathLike))
        if self._own_index:
            from ..index import StoreIndex

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

    def handlers(self) -> list[Any]:
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
        who = {
            "calling_aet": assoc.requestor.ae_title,
            "peer": f"{info_addr.address}:{info_addr.port}" if info_addr else None,
        }

        def refuse(code: int, comment: str) -> tuple[Any, None]:
            status = Dataset()
            status.Status = code
            status.ErrorComment = comment[:64]
            self._emit(
                error_record(
                    "commitment_request",
                    DcmtoolsError(
                        ErrorCode.BAD_REQUEST,
                        f"refused a Storage Commitment request from {who['calling_aet']}: {comment}",
                        "the requester's request does not follow PS3.4 J.3.2; check its configuration",
                    ),
                    **who,
                    **status_fields(code, "commitment"),
                )
            )
            return status, None

        if request.ActionTypeID != REQUEST_ACTION:
            return refuse(0x0123, f"action type {request.ActionTypeID} (only 1, Request Storage Commitment)")
        try:
            info = event.action_information
            tx_uid = str(info.TransactionUID).strip()
            refs = [
                (str(i.ReferencedSOPClassUID).strip(), str(i.ReferencedSOPInstanceUID).strip())
                for i in info.ReferencedSOPSequence
            ]
        except Exception as exc:
            text = str(exc)
            missing = (
                "Transaction UID"
                if "TransactionUID" in text
                else "Referenced SOP Sequence"
                if "ReferencedSOPSequence" in text
                else "Referenced SOP Class/Instance UID"
                if "Referenced" in text
                else None
            )
            return refuse(
                0x0115, f"no {missing}" if missing else f"unreadable action information ({type(exc).__name__})"
            )
        if not tx_uid:
            return refuse(0x0115, "no Transaction UID")
        if not refs:
            return refuse(0x0115, "empty Referenced SOP Sequence")
        with self._lock:
            duplicate = tx_uid in self._seen
            self._seen.add(tx_uid)
            job = _Job(tx_uid, refs, assoc, int(request.MessageID), who["calling_aet"], who["peer"], duplicate)
            self._jobs[(id(assoc), job.message_id)] = job
        record: dict[str, Any] = {
            "type": "commitment_request",
            **who,
            "transaction_uid": tx_uid,
            "instances": len(refs),
            "status": "0x0000",
        }
        if str(request.RequestedSOPInstanceUID) != WELL_KNOWN_INSTANCE:
            record["warning"] = (
                f"requested SOP instance {request.RequestedSOPInstanceUID} is not the well-known {WELL_KNOWN_INSTANCE}"
            )
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
    def evaluate(self, refs: list[tuple[str, str]], duplicate: bool = False) -> tuple[list[Any], list[Any]]:
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
            self._emit(
                error_record(
                    "commitment_report",
                    DcmtoolsError(
                        ErrorCode.INTERNAL,
                        f"internal error while reporting: {type(exc).__name__}: {exc}",
                        "this is a bug in dcmtools; run with `debug` and please report it",
                    ),
                    calling_aet=job.calling_aet,
                    transaction_uid=job.transaction_uid,
                )
            )

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
            record["failures"] = [
                {
                    "sop_instance_uid": uid,
                    "failure_reason": f"0x{reason:04X}",
                    "failure_meaning": failure_words(reason)[0],
                }
                for _c, uid, reason in failed
            ]
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
        self._emit(
            error_record(
                "commitment_report",
                DcmtoolsError(
                    ErrorCode.DIMSE_FAILED,
                    f"{job.calling_aet} refused the Storage Commitment report: {describe(code, 'commitment')[1]} (status 0x{code:04X})",
                    "check the requester's log",
                ),
                **record,
            )
        )

    def _deliver(self, job: _Job, info: Any, event_type: int) -> tuple[str, int]:
        """Send the N-EVENT-REPORT the way the requester asks; (how it went, status)."""
        if self.report in ("auto", "same") and job.assoc.is_established:
            status = self._send_same(job.assoc, info, event_type)
            if status is not None:
                return "same association", status
            if self.report == "same":
                raise DcmtoolsError(
                    ErrorCode.ABORTED,
                    f"the association of {job.calling_aet} ended before it answered the report",
                    "the requester must keep its association open until the report comes",
                )
        elif self.report == "same":
            raise DcmtoolsError(
                ErrorCode.REPORT_NOT_SENT,
                f"{job.calling_aet} closed its association before the report; with `commit_report` same it cannot be sent",
                "use `commit_report` auto (or new) with `commit_report_to`, or have the requester wait for the report",
            )
        target = self._target(job.calling_aet)
        from pynetdicom import build_role
        from pynetdicom.presentation import build_context

        with associate(
            target,
            [build_context(STORAGE_COMMITMENT, list(SYNTAXES))],
            self.options,
            ext_neg=[build_role(STORAGE_COMMITMENT, scu_role=False, scp_role=True)],
        ) as assoc:
            status = self._send(assoc.association, info, event_type)
            if status is None:
                raise failure_after(
                    assoc, target, "Storage Commitment report (N-EVENT-REPORT)", self.options.timeout_for(target)
                )
        return f"new association to {target}", status

    def _send_same(self, assoc: Any, info: Any, event_type: int) -> int | None:
        """The report on the requester's own association (see ``Exchanges``); its status, or None."""
        from .. import wire

        answer = self._exchanges.send(
            assoc,
            "N-EVENT-REPORT-RQ",
            [
                (wire.TAG_AFFECTED_SOP_CLASS, STORAGE_COMMITMENT),
                (wire.TAG_COMMAND_FIELD, 0x0100),  # N-EVENT-REPORT-RQ
                (wire.TAG_AFFECTED_SOP_INSTANCE, WELL_KNOWN_INSTANCE),
                (wire.TAG_EVENT_TYPE_ID, event_type),
            ],
            info,
            self._exchanges.message_id(),
            self.options.timeout_for(None),
        )
        if answer is None or getattr(answer, "Status", None) is None:
            return None
        return int(answer.Status)

    def _send(self, assoc: Any, info: Any, event_type: int) -> int | None:
        try:
            status, _reply = assoc.send_n_event_report(
                info,
                event_type,
                STORAGE_COMMITMENT,
                WELL_KNOWN_INSTANCE,
                msg_id=(next(self._message_ids) - 1) % 65535 + 1,
            )
        except (RuntimeError, ValueError) as exc:  # released meanwhile, no context
            LOGGER.debug("sending the report failed: %s", exc)
            return None
        if not status or "Status" not in status:
            return None
        return int(status.Status)

    def _target(self, calling_aet: str) -> Peer:
        if self.report_to is not None:
            return self.report_to
        from ..peer import load_peers

        peers, source = load_peers(self.peers_file)
        for peer in peers.values():
            if peer.aet == calling_aet:
                return peer
        where = f"the peers file {source}" if source else "no peers file"
        raise DcmtoolsError(
            ErrorCode.REPORT_NOT_SENT,
            f"cannot report to {calling_aet} on a new association: no address known for it ({where})",
            f'give `commit_report_to` {calling_aet}@HOST:PORT, or add an entry with aet = "{calling_aet}" to the peers file',
        )
