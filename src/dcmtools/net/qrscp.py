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
from collections.abc import Callable, Generator, Iterator
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode
from . import wire
from .assoc import NetOptions
from .identifiers import flat_of, from_bytes
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
    key_text,
    sort_identifier,
)
from .matching import dataset_matches, returned
from .peer import Peer, load_peers, peer_with_aet
from .qrscp_replies import C_FIND_RSP, _context, _Counts, _GetSession, _Gone, _move_rsp, _Replier
from .status import describe

LOGGER = logging.getLogger("dcmtools.net")
FIND_CLASSES = set(FIND.values())
MOVE_CLASSES = set(MOVE.values())
GET_CLASSES = set(GET.values())


class QueryRetrieveSCP:
    """Answers C-FIND, C-MOVE, C-GET and worklist C-FIND (see the module docs)."""

    def __init__(
        self,
        index: StoreIndex | None,
        *,
        aet: str,
        options: NetOptions | None = None,
        worklist_dir: str | os.PathLike[str] | None = None,
        peers_file: str | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
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
            ours = name == "C_FIND" and (
                sop_class in FIND_CLASSES
                and self.index is not None
                or sop_class == WORKLIST_FIND
                and self.worklist is not None
            )
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
            assert self.index is not None  # serve() hands us a C-FIND of a store only when there is an index
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

    def _worklist_answers(self, identifier: dict[str, Any]) -> Iterator[dict[str, Any]]:
        assert self.worklist is not None  # serve() hands us a worklist C-FIND only when there are items
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
            self._retrieve_record(
                record,
                0xA801,
                counts,
                f"the move destination {destination!r} is not in the peers file",
                f'add an entry with aet = "{destination}", its host and port to the peers file of listen',
            )
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
                    stored = by_path.get(result.get("path", ""))
                    failed.append(stored.sop_instance_uid if stored else result.get("sop_instance_uid", ""))
                if seam.cancel_requested(assoc, int(msg.MessageID)):
                    cancelled = True
                    break
                if counts.remaining:
                    respond(0xFF00)
        except DcmtoolsError as exc:
            # The destination cannot be reached, or dropped us: the rest fails.
            counts.failed += counts.remaining
            failed += [i.sop_instance_uid for i in instances[len(instances) - counts.remaining :]]
            counts.remaining = 0
            status = 0xA702 if not counts.completed and not counts.warning else 0xB000
            respond(status, str(exc.message)[:64], failed)
            self._retrieve_record(record, status, counts, exc.message, exc.hint)
            return
        finally:
            if isinstance(stream, Generator):
                stream.close()  # the sender's association ends now, not when the generator is collected
        if cancelled:
            respond(0xFE00, None, failed or None)
            self._retrieve_record(record, 0xFE00, counts, None)
            return
        status = 0x0000 if not counts.failed else (0xA702 if not counts.completed and not counts.warning else 0xB000)
        respond(status, None, failed or None)
        self._retrieve_record(
            record, status, counts, None if not counts.failed else f"{counts.failed} sub-operation(s) failed"
        )

    def _destination(self, aet: str) -> Peer | None:
        try:
            peers, _ = load_peers(self.peers_file)
        except DcmtoolsError as exc:
            LOGGER.warning("%s", exc)
            return None
        return peer_with_aet(aet, peers)

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
        assert self.index is not None  # serve() hands us a C-MOVE or C-GET only when there is an index
        instances = []
        for stored in self.index.retrieve(level, identifier):
            instances.append(stored)
        return instances, level, None

    def _retrieve_record(
        self, record: dict[str, Any], status: int, counts: _Counts, problem: str | None, hint: str | None = None
    ) -> None:
        from .status import status_fields

        record.update(status_fields(status, record["type"]))
        record.update({"completed": counts.completed, "failed": counts.failed, "warning": counts.warning})
        if counts.remaining:
            record["remaining"] = counts.remaining
        record["ok"] = describe(status, record["type"])[0] in ("success", "cancel") and not counts.failed
        if problem:
            record["error"] = {
                "code": ErrorCode.MOVE_DESTINATION_UNKNOWN if status == 0xA801 else ErrorCode.MOVE_FAILED,
                "message": problem,
            }
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
            status = (
                0x0000 if not counts.failed else (0xA702 if not counts.completed and not counts.warning else 0xB000)
            )
            get.respond(status, counts, None, failed or None)
            problem = None
            if counts.failed:
                problem = f"{counts.failed} sub-operation(s) failed" + (
                    f": {get.last_problem}" if get.last_problem else ""
                )
            self._retrieve_record(record, status, counts, problem)


def _level_problem(level: str, sop_class: str) -> str | None:
    if level not in LEVELS:
        return f"QueryRetrieveLevel {level or '(missing)'} is not PATIENT, STUDY, SERIES or IMAGE"
    if level == "PATIENT" and MODEL_OF.get(sop_class) == "study":
        return "the study root model has no PATIENT level"
    return None


def _keys_text(identifier: dict[str, Any]) -> dict[str, Any]:
    """The matching keys of an identifier in the flat form (for records)."""
    from .matching import is_universal

    flat = flat_of({k: v for k, v in identifier.items() if int(k, 16) not in CONTROL_TAGS and not is_universal(v)})
    return flat
