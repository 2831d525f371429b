"""The query/retrieve and worklist SCP of ``listen``: it answers for what it has stored.

    from dcmtools.net import StorageSCP
    from dcmtools.net.index import StoreIndex
    from dcmtools.net.qrscp import QueryRetrieveSCP

    index = StoreIndex("store/")
    qr = QueryRetrieveSCP(index, aet="DCMTOOLS", worklist_dir="worklist/", on_record=print)
    scp = StorageSCP("store/", aet="DCMTOOLS", port=11112, on_record=print, on_stored=qr.stored,
                     contexts=qr.contexts(), evt_handlers=qr.handlers())
    scp.start()

Services (both the patient root and the study root model, all levels):

* C-FIND: over the store's index (``index.py``): wildcards, ranges, lists of
  UIDs, sequence keys, relational keys (a STUDY query may name a Modality),
  computed counts and lists.  C-CANCEL is honoured between matches.
* C-MOVE: to a destination AE title found in the peers file (``--peers``,
  ``$DCMTOOLS_PEERS`` or the default file: the entry whose ``aet`` is the
  Move Destination); an unknown one is refused with 0xA801 and a comment
  saying where to add it.  The sub-operations use the fast sender of
  ``send`` (the stored bytes are streamed; decompressed when the
  destination takes only uncompressed data).
* C-GET: the instances go back on the same association, on the storage
  contexts for which the requestor took the SCP role (role selection),
  streamed from the files the same way.
* Modality Worklist C-FIND: over the items of ``--worklist-dir`` (``worklist.py``).

Each request gives one record (``type`` ``find``, ``move``, ``get`` or
``worklist``) through ``on_record``: who asked, the keys, how many matches
or sub-operations, the status.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode
from . import wire
from .assoc import NetOptions
from .index import StoredInstance, StoreIndex
from .jsonwire import encode_dataset
from .keys import (
    CONTROL_TAGS,
    FIND,
    GET,
    LEVELS,
    MODEL_OF,
    MOVE,
    TAGS,
    WORKLIST_FIND,
    flat_of,
    from_bytes,
    key_text,
    sort_identifier,
)
from .matching import dataset_matches, returned
from .peer import Peer, load_peers
from .status import describe

LOGGER = logging.getLogger("dcmtools.net")
C_GET_RSP = 0x8010
C_STORE_RSP = 0x8001
C_CANCEL_RQ = 0x0FFF
FIND_CLASSES = set(FIND.values())
MOVE_CLASSES = set(MOVE.values())
GET_CLASSES = set(GET.values())


class QueryRetrieveSCP:
    """Answers C-FIND, C-MOVE, C-GET and worklist C-FIND (see the module docs)."""

    def __init__(self, index: StoreIndex | None, *, aet: str, options: NetOptions | None = None,
                 worklist_dir: str | os.PathLike | None = None, peers_file: str | None = None,
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.index = index
        self.aet = aet
        self.options = options or NetOptions(calling_aet=aet)
        self.peers_file = peers_file
        self.on_record = on_record or (lambda record: None)
        self.worklist = None
        if worklist_dir is not None:
            from .worklist import WorklistItems

            self.worklist = WorklistItems(worklist_dir, on_error=self._bad_item)

    # -- wiring into StorageSCP
    def contexts(self) -> list[Any]:
        """Every context ``listen`` supports: verification, storage (with the SCU role
        available for C-GET), and the query/retrieve and worklist models."""
        from pynetdicom.presentation import build_context

        from .scp import storage_contexts

        syntaxes = [wire.EXPLICIT_LE, wire.IMPLICIT_LE]  # what the answers are encoded in (jsonwire)
        contexts = []
        for cx in storage_contexts():
            if cx.abstract_syntax != "1.2.840.10008.1.1":
                cx.scu_role = True  # a C-GET requestor may take the SCP role (role selection)
                cx.scp_role = True
            contexts.append(cx)
        if self.index is not None:
            for uid in (*FIND.values(), *MOVE.values(), *GET.values()):
                contexts.append(build_context(uid, syntaxes))
        if self.worklist is not None:
            contexts.append(build_context(WORKLIST_FIND, syntaxes))
        return contexts

    def handlers(self) -> list[Any]:
        from pynetdicom import evt

        return [(evt.EVT_ACCEPTED, self._accepted)]

    def stored(self, path: str) -> None:
        """``StorageSCP(on_stored=...)``: each stored file goes into the index's journal before it is
        acknowledged, and into the index in the background (``StoreIndex.note_stored``)."""
        if self.index is not None:
            self.index.note_stored(path)

    def _emit(self, record: dict[str, Any]) -> None:
        try:
            self.on_record(record)
        except Exception as exc:  # noqa: BLE001
            LOGGER.debug("record callback failed: %s", exc)

    def _bad_item(self, path: str, error: DcmtoolsError) -> None:
        from ..stream.records import error_record

        self._emit(error_record("worklist_item", error, path=path))

    def _who(self, assoc: Any) -> dict[str, Any]:
        info = assoc.requestor.address_info
        return {"calling_aet": assoc.requestor.ae_title, "peer": f"{info.address}:{info.port}" if info else None}

    def _accepted(self, event: Any) -> None:
        from . import seam

        assoc = event.assoc

        def serve(original: Any, msg: Any, context_id: int) -> None:
            name = type(msg).__name__
            sop_class = str(getattr(msg, "AffectedSOPClassUID", "") or "")
            ours = name == "C_FIND" and (sop_class in FIND_CLASSES and self.index is not None
                                         or sop_class == WORKLIST_FIND and self.worklist is not None)
            ours = ours or (name == "C_MOVE" and sop_class in MOVE_CLASSES and self.index is not None)
            ours = ours or (name == "C_GET" and sop_class in GET_CLASSES and self.index is not None)
            if not ours or seam.accepted_context(assoc, context_id) is None:
                original(msg, context_id)
                return
            seam.forget_cancels(assoc)  # C-CANCELs of earlier requests
            try:
                {"C_FIND": self._find, "C_MOVE": self._move, "C_GET": self._get}[name](assoc, msg, context_id)
            except _Gone as exc:
                LOGGER.debug("the requestor went away: %s", exc)

        seam.intercept_requests(assoc, serve)

    # -- C-FIND and worklist C-FIND
    def _find(self, assoc: Any, msg: Any, context_id: int) -> None:
        sop_class = str(msg.AffectedSOPClassUID)
        ts = str(_context(assoc, context_id).transfer_syntax[0])
        worklist = sop_class == WORKLIST_FIND
        record: dict[str, Any] = {"type": "worklist" if worklist else "find", **self._who(assoc)}
        reply = _Replier(assoc, context_id, int(msg.MessageID), sop_class, C_FIND_RSP, self.options.timeout_for(None))
        try:
            identifier = from_bytes(msg.Identifier.getvalue(), ts)
        except Exception as exc:  # noqa: BLE001 - the requestor's identifier cannot be read
            reply.send(0xA900, comment="cannot read the identifier")
            self._finish(record, 0xA900, 0, f"cannot read the identifier: {exc}")
            return
        record["keys"] = _keys_text(identifier)
        if worklist:
            source = self._worklist_answers(identifier)
        else:
            level = (key_text(identifier, "QueryRetrieveLevel") or "").upper()
            record["level"] = level or None
            record["model"] = MODEL_OF.get(sop_class)
            problem = _level_problem(level, sop_class)
            if problem:
                reply.send(0xA900, comment=problem)
                self._finish(record, 0xA900, 0, problem)
                return
            source = self.index.query(level, identifier, self.aet)
        count = 0
        try:
            for answer in source:
                if reply.cancelled():
                    reply.send(0xFE00)
                    self._finish(record, 0xFE00, count, None)
                    return
                count += 1
                reply.send(0xFF00, encode_dataset(answer, ts))
        except _Gone:
            raise
        except Exception as exc:  # noqa: BLE001 - answer with a failure, say why in the record
            LOGGER.debug("query failed", exc_info=exc)
            reply.send(0xC000, comment="the query failed")
            self._finish(record, 0xC000, count, f"the query failed: {exc}")
            return
        reply.send(0x0000)
        self._finish(record, 0x0000, count, None)

    def _worklist_answers(self, identifier: dict[str, Any]):
        keys = {k: v for k, v in identifier.items() if int(k, 16) not in CONTROL_TAGS}
        for _, item in self.worklist.items():
            if dataset_matches(keys, item):
                answer = returned(keys, item)
                charset = item.get(f"{TAGS['SpecificCharacterSet']:08X}")
                if charset is not None and charset.get("Value"):
                    answer[f"{TAGS['SpecificCharacterSet']:08X}"] = charset
                yield sort_identifier(answer)

    def _finish(self, record: dict[str, Any], status: int, matches: int, problem: str | None) -> None:
        from .status import status_fields

        record["matches"] = matches
        record.update(status_fields(status, "worklist" if record["type"] == "worklist" else "find"))
        record["ok"] = describe(status, "find")[0] in ("success", "cancel")
        if problem:
            record["error"] = {"code": ErrorCode.QUERY_FAILED, "message": problem}
        self._emit(record)

    # -- C-MOVE
    def _move(self, assoc: Any, msg: Any, context_id: int) -> None:
        from . import seam

        context = _context(assoc, context_id)
        ts = str(context.transfer_syntax[0])
        destination = str(msg.MoveDestination or "").strip()
        record: dict[str, Any] = {"type": "move", **self._who(assoc), "destination": destination}
        counts = _Counts()

        def respond(status: int, comment: str | None = None, failed: list[str] | None = None) -> None:
            seam.send_dimse(assoc, _move_rsp(msg, ts, counts, status, comment, failed), context_id)

        instances, level, problem = self._instances(msg, ts, record)
        if problem:
            respond(0xA900, problem)
            self._retrieve_record(record, 0xA900, counts, problem)
            return
        peer = self._destination(destination)
        if peer is None:
            comment = f"Move destination {destination} unknown"
            respond(0xA801, comment)
            self._retrieve_record(record, 0xA801, counts, f"the move destination {destination!r} is not in the peers file",
                                  f"add an entry with aet = \"{destination}\", its host and port to the peers file of listen")
            return
        record["destination_address"] = f"{peer.host}:{peer.port}"
        counts.remaining = len(instances)
        if not instances:
            respond(0x0000)
            self._retrieve_record(record, 0x0000, counts, None)
            return
        from .store import Sender

        sender = Sender(peer, self.options, retries=1, move_originator=(assoc.requestor.ae_title, int(msg.MessageID)))
        failed: list[str] = []
        by_path = {i.path: i for i in instances}
        cancelled = False
        stream = sender.run(i.path for i in instances)
        try:
            for result in stream:
                counts.remaining -= 1
                if result.get("ok"):
                    if result.get("warning"):
                        counts.warning += 1
                    else:
                        counts.completed += 1
                else:
                    counts.failed += 1
                    stored = by_path.get(result.get("path"))
                    failed.append(stored.sop_instance_uid if stored else result.get("sop_instance_uid", ""))
                if seam.cancel_requested(assoc, int(msg.MessageID)):
                    cancelled = True
                    break
                if counts.remaining:
                    respond(0xFF00)
        except DcmtoolsError as exc:
            # The destination cannot be reached, or dropped us: the rest fails.
            counts.failed += counts.remaining
            failed += [i.sop_instance_uid for i in instances[len(instances) - counts.remaining:]]
            counts.remaining = 0
            status = 0xA702 if not counts.completed and not counts.warning else 0xB000
            respond(status, str(exc.message)[:64], failed)
            self._retrieve_record(record, status, counts, exc.message, exc.hint)
            return
        finally:
            stream.close()
        if cancelled:
            respond(0xFE00, None, failed or None)
            self._retrieve_record(record, 0xFE00, counts, None)
            return
        status = 0x0000 if not counts.failed else (0xA702 if not counts.completed and not counts.warning else 0xB000)
        respond(status, None, failed or None)
        self._retrieve_record(record, status, counts, None if not counts.failed else f"{counts.failed} sub-operation(s) failed")

    def _destination(self, aet: str) -> Peer | None:
        try:
            peers, _ = load_peers(self.peers_file)
        except DcmtoolsError as exc:
            LOGGER.warning("%s", exc)
            return None
        for peer in peers.values():
            if peer.aet == aet:
                return peer
        for peer in peers.values():
            if peer.aet.lower() == aet.lower():
                return peer
        return None

    def _instances(self, msg: Any, ts: str, record: dict[str, Any]) -> tuple[list[StoredInstance], str, str | None]:
        sop_class = str(msg.AffectedSOPClassUID)
        try:
            identifier = from_bytes(msg.Identifier.getvalue(), ts)
        except Exception as exc:  # noqa: BLE001
            return [], "", f"cannot read the identifier: {exc}"
        level = (key_text(identifier, "QueryRetrieveLevel") or "").upper()
        record.update({"level": level or None, "model": MODEL_OF.get(sop_class), "identifier": _keys_text(identifier)})
        problem = _level_problem(level, sop_class)
        if problem:
            return [], level, problem
        instances = []
        for stored in self.index.retrieve(level, identifier):
            instances.append(stored)
        return instances, level, None

    def _retrieve_record(self, record: dict[str, Any], status: int, counts: _Counts, problem: str | None,
                         hint: str | None = None) -> None:
        from .status import status_fields

        record.update(status_fields(status, record["type"]))
        record.update({"completed": counts.completed, "failed": counts.failed, "warning": counts.warning})
        if counts.remaining:
            record["remaining"] = counts.remaining
        record["ok"] = describe(status, record["type"])[0] in ("success", "cancel") and not counts.failed
        if problem:
            record["error"] = {"code": ErrorCode.MOVE_DESTINATION_UNKNOWN if status == 0xA801
                               else ErrorCode.MOVE_FAILED, "message": problem}
            if hint:
                record["error"]["hint"] = hint
        self._emit(record)

    # -- C-GET
    def _get(self, assoc: Any, msg: Any, context_id: int) -> None:
        context = _context(assoc, context_id)
        ts = str(context.transfer_syntax[0])
        record: dict[str, Any] = {"type": "get", **self._who(assoc)}
        counts = _Counts()
        get = _GetSession(assoc, msg, context_id, ts, self.options.timeout_for(None))
        instances, level, problem = self._instances(msg, ts, record)
        with get:
            if problem:
                get.respond(0xA900, counts, problem)
                self._retrieve_record(record, 0xA900, counts, problem)
                return
            counts.remaining = len(instances)
            failed: list[str] = []
            try:
                for stored in instances:
                    if get.cancelled():
                        get.respond(0xFE00, counts, None, failed or None)
                        self._retrieve_record(record, 0xFE00, counts, None)
                        return
                    outcome = get.store(stored)
                    counts.remaining -= 1
                    if outcome == "ok":
                        counts.completed += 1
                    elif outcome == "warning":
                        counts.warning += 1
                    else:
                        counts.failed += 1
                        failed.append(stored.sop_instance_uid)
                    if counts.remaining:
                        get.respond(0xFF00, counts)
            except _Gone:
                record["aborted"] = True
                self._retrieve_record(record, 0xC000, counts, "the requestor went away during the C-GET")
                return
            status = 0x0000 if not counts.failed else (0xA702 if not counts.completed and not counts.warning else 0xB000)
            get.respond(status, counts, None, failed or None)
            problem = None
            if counts.failed:
                problem = f"{counts.failed} sub-operation(s) failed" + (f": {get.last_problem}" if get.last_problem else "")
            self._retrieve_record(record, status, counts, problem)


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
        self._contexts = None
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
        if context_id is None:
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
        buffers: list = []
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

    def respond(self, status: int, counts: _Counts, comment: str | None = None, failed: list[str] | None = None) -> None:
        """A C-GET-RSP (pending with the counts, or the final one)."""
        self.reply.send(status, _failed_list(failed, self.ts) if failed else None, counts=counts, comment=comment)

    def _exchange(self, buffers: list, message_id: int) -> dict[int, bytes]:
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
                                if field == C_STORE_RSP and wire.command_us(parsed, wire.TAG_MESSAGE_ID_RESPONDED) == message_id:
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

    def __init__(self, assoc: Any, context_id: int, message_id: int, sop_class: str, field: int, timeout: float) -> None:
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

    def send(self, status: int, dataset: bytes | None = None, *, counts: _Counts | None = None,
             comment: str | None = None) -> None:
        elements: list[tuple[int, object]] = [
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
                elements += [(wire.TAG_COMPLETED, counts.completed), (wire.TAG_FAILED, counts.failed),
                             (wire.TAG_WARNING, counts.warning)]
        if comment:
            elements.append((wire.TAG_ERROR_COMMENT, comment[:64]))
        command = wire.encode_command(elements)
        buffers: list = []
        wire.pdata_iovecs(self.context_id, command, True, True, self.fragment, buffers)
        if dataset:
            wire.pdata_iovecs(self.context_id, memoryview(dataset), False, True, self.fragment, buffers)
        if self.dul.trace is not None:
            self.dul.trace.dimse_out(self.name, self.context_id, wire.parse_command(command),
                                     pdus=-(-len(dataset) // self.fragment) if dataset else 0, size=len(dataset or b""))
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
        rsp.ErrorComment = comment[:64]
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


def _level_problem(level: str, sop_class: str) -> str | None:
    if level not in LEVELS:
        return f"QueryRetrieveLevel {level or '(missing)'} is not PATIENT, STUDY, SERIES or IMAGE"
    if level == "PATIENT" and MODEL_OF.get(sop_class) == "study":
        return "the study root model has no PATIENT level"
    return None


def _keys_text(identifier: dict[str, Any]) -> dict[str, Any]:
    """The matching keys of an identifier in the flat form (for records)."""
    from .matching import is_universal

    flat = flat_of({k: v for k, v in identifier.items()
                      if int(k, 16) not in CONTROL_TAGS and not is_universal(v)})
    return flat
