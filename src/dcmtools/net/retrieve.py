"""Retrieve (C-MOVE and C-GET SCU): ``move`` brings studies, series or images back.

    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.net.retrieve import Retriever, request_from_keys

    retriever = Retriever(parse_peer("PACS@10.0.0.5:104"), NetOptions(), store_dir="in/", port=11112)
    for record in retriever.run([request_from_keys("STUDY", ["StudyInstanceUID=1.2.3"])]):
        print(record["completed"], record["received"], record["ok"])

What to retrieve is a stream of ``RetrieveRequest`` (a level and an
identifier of unique keys): built from ``-k`` keys (``request_from_keys``) or
from the records of ``find`` (``requests_from_lines``), each at its own level.
Keys that are not unique keys (``PatientName=DOE*``) are first resolved with a
C-FIND at that level, and each match is retrieved.

Where to:

* ``dest=None`` (default): to ourselves.  A storage SCP (``StorageSCP``, the
  ``listen`` machinery) runs on ``port`` with our AE title and stores under
  ``store_dir`` (``PatientID/StudyUID/SeriesUID/SOPInstanceUID.dcm``); the
  C-MOVE names our AE title as destination, so the peer must know that AE
  title with this host and port.
* ``dest="AET"``: a C-MOVE to a third node the peer knows.
* ``get=True``: C-GET, the instances come back on the same association (no
  port to open).  We propose the storage SOP classes with the SCP role (SCP/SCU
  role selection): the ones an IMAGE-level C-FIND says are there, each with
  a context for the uncompressed syntaxes and one per compressed syntax (so
  that files come as they are stored), else the 120 most common ones,
  uncompressed.  More SOP classes than one association can hold (128
  contexts: 11 classes) are split: each association retrieves the instances
  of its SOP classes, series by series, with a list of SOP Instance UIDs.

One record per request (``type`` ``move`` or ``get``) with the sub-operation
counts (``completed``, ``failed``, ``warning``), the instances ``received``
and their ``files`` (and ``out``, the folder that holds them all, so that the
record can be piped into ``dump`` or ``send``).  ``ok`` is false when a
sub-operation failed, when nothing arrived, or when the peer refused.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .assoc import NetOptions, associate, close, no_context_error
from .finder import Finder
from .keys import (
    GET,
    LEVELS,
    MOVE,
    TAGS,
    UNIQUE_KEY,
    choose_model,
    first_text,
    identifier_from,
    level_index,
    parse_keys,
    sort_identifier,
)
from .peer import Peer, check_aet
from .qrexchange import UNCOMPRESSED, Exchange, MessageIDs, context_for, encode_identifier, query_contexts
from .query import FindAssociation
from .retrieve_outcome import Outcome
from .retrieve_requests import RetrieveRequest as RetrieveRequest
from .retrieve_requests import request_from_keys as request_from_keys
from .retrieve_requests import request_from_record as request_from_record
from .retrieve_requests import requests_from_lines as requests_from_lines
from .retrieve_requests import unique_identifier as unique_identifier
from .retrieve_verdict import Side, retrieve_record

LOGGER = logging.getLogger("dcmtools.net")
MAX_CONTEXTS = 128
ARRIVAL_WAIT = 5.0  # seconds to wait for the last instances after the final C-MOVE response
COMPRESSED = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
    "1.2.840.10008.1.2.1.99",
]
CONTEXTS_PER_CLASS = 1 + len(COMPRESSED)  # uncompressed, then each compressed syntax


# ------------------------------------------------------------- the retriever
class _Bucket:
    """Instances that arrive during one retrieve."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def add(self, record: dict[str, Any]) -> None:
        with self.cond:
            self.records.append(record)
            self.cond.notify_all()

    def wait_for(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self.cond:
            while len(self.records) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)


class Retriever:
    """Runs retrieve requests against one peer (see the module docs)."""

    def __init__(
        self,
        peer: Peer,
        options: NetOptions,
        *,
        dest: str | None = None,
        store_dir: str | None = ".",
        port: int = 11112,
        bind: str = "",
        get: bool = False,
        model: str | None = None,
        overwrite: bool = False,
        priority: int = 0,
        on_instance: Any = None,
    ) -> None:
        self.peer = peer
        self.options = options
        self.dest = check_aet(dest, "move destination (`dest`)") if dest else None
        if self.dest == options.calling_aet:
            self.dest = None  # that is us: receive
        self.store_dir = os.fspath(store_dir) if store_dir is not None else None
        self.port = port
        self.bind = bind
        self.get = get
        self.model = model
        self.overwrite = overwrite
        self.priority = priority
        self.on_instance = on_instance
        self.scp: Any = None
        self._bucket: _Bucket | None = None
        self._lock = threading.Lock()
        self._assoc: Any = None
        self._proposed: set[str] = set()
        self._finds = FindAssociation(peer, options)
        self._ids = MessageIDs()
        self.received = 0

    # -- lifecycle
    def close(self) -> None:
        self._finds.close()
        if self._assoc is not None:
            close(self._assoc)
            self._assoc = None
        if self.scp is not None:
            self.scp.stop(*((2.0,) if _stop_takes_grace(self.scp) else ()))
            self.scp = None

    def abort(self) -> None:
        self._finds.close(abort=True)
        if self._assoc is not None:
            close(self._assoc, abort=True)
            self._assoc = None
        if self.scp is not None:
            self.scp.stop()
            self.scp = None

    def _instance(self, record: dict[str, Any]) -> None:
        if record.get("type") != "instance":
            return
        with self._lock:
            bucket = self._bucket
        if bucket is not None:
            bucket.add(record)
        if self.on_instance is not None:
            try:
                self.on_instance(record)
            except Exception as exc:  # noqa: BLE001 - a progress callback must not break a transfer
                LOGGER.debug("instance callback failed: %s", exc)

    def _storage(self) -> Any:
        """Our storage SCP (started on first use), for C-MOVE to ourselves and C-GET."""
        if self.scp is None:
            from .scp import StorageSCP
            from .scp_layout import make_store_dir

            tls = self.options.tls if self.options.tls is not None and self.options.tls.cert else None
            self.scp = StorageSCP(
                self.store_dir,
                aet=self.options.calling_aet,
                port=self.port,
                host=self.bind,
                options=self.options,
                on_record=self._instance,
                overwrite=self.overwrite,
                tls=tls,
            )
            if not self.get:
                self.scp.start()
            elif self.store_dir is not None:
                make_store_dir(self.store_dir)
        return self.scp

    # -- the stream
    def run(self, requests: Iterable[RetrieveRequest]) -> Iterator[dict[str, Any]]:
        try:
            for request in requests:
                if request.error is not None:
                    from ..stream.records import error_record

                    yield error_record(self.kind, request.error, peer=str(self.peer), **request.source)
                    continue
                if request.keys_only:
                    yield self._retrieve(request)
                    continue
                yield from self._resolve_and_retrieve(request)
        except BaseException:
            self.abort()
            raise
        self.close()

    @property
    def kind(self) -> str:
        return "get" if self.get else "move"

    def _resolve_and_retrieve(self, request: RetrieveRequest) -> Iterator[dict[str, Any]]:
        """Keys that are not unique: find the matches at the request's level, retrieve each."""
        model = request.model or choose_model(request.level, self.model)
        identifier = dict(request.identifier)
        for name in ([("PatientID")] if model == "patient" else []) + [
            UNIQUE_KEY[lvl] for lvl in LEVELS[1 : level_index(request.level) + 1]
        ]:
            identifier.setdefault(f"{TAGS[name]:08X}", {"vr": "LO" if name == "PatientID" else "UI"})
        if request.level == "PATIENT":
            identifier.setdefault(f"{TAGS['PatientID']:08X}", {"vr": "LO"})
        finder = Finder(
            self.peer,
            sort_identifier(identifier),
            self.options,
            request.level,
            model,
            assoc=self._finds.get(),
        )
        # The whole answer first: the find association is used again while retrieving.
        matches = list(finder.run())
        found = 0
        for record in matches:
            if not record.get("ok"):
                from ..stream.records import error_record

                yield error_record(
                    self.kind, record["error"], peer=str(self.peer), level=request.level, identifier=request.label()
                )
                return
            found += 1
            try:
                identifier = unique_identifier(request.level, record["dataset"], model)
            except DcmtoolsError as exc:
                from ..stream.records import error_record

                yield error_record(self.kind, exc, peer=str(self.peer), n=found, level=request.level)
                continue
            yield self._retrieve(RetrieveRequest(request.level, identifier, model, source={"n": found}))
        if not found:
            from ..stream.records import error_record

            yield error_record(
                self.kind,
                DcmtoolsError(
                    ErrorCode.MOVE_FAILED,
                    f"nothing on {self.peer.label} matches these keys at the {request.level.lower()} level",
                    "check the keys with 'dcmtools find' first",
                ),
                peer=str(self.peer),
                level=request.level,
                identifier=request.label(),
            )

    # -- one retrieve
    def _retrieve(self, request: RetrieveRequest) -> dict[str, Any]:
        model = request.model or choose_model(request.level, self.model)
        base: dict[str, Any] = {
            "type": self.kind,
            "peer": str(self.peer),
            **request.source,
            "level": request.level,
            "model": model,
            "identifier": request.label(),
        }
        to_us = self.get or self.dest is None
        if to_us:
            self._storage()
        if not self.get:
            base["destination"] = self.dest or self.options.calling_aet
        bucket = _Bucket()
        with self._lock:
            self._bucket = bucket
        try:
            if self.get:
                outcome = self._get(request, model)
            else:
                outcome = self._move(request, model)
            if to_us:
                expected = outcome.completed + outcome.warning
                bucket.wait_for(expected, ARRIVAL_WAIT if expected else 0.2)
        finally:
            with self._lock:
                self._bucket = None
        return self._record(base, outcome, bucket.records if to_us else None)

    def _move(self, request: RetrieveRequest, model: str) -> Outcome:
        from io import BytesIO

        from pynetdicom.dimse_primitives import C_MOVE

        sop_class = MOVE[model]
        assoc = self._association([sop_class], [])
        context = context_for(assoc, sop_class)
        if context is None:
            raise no_context_error(self.peer, query_contexts([sop_class]), assoc)
        primitive = C_MOVE()
        primitive.MessageID = self._ids.next()
        primitive.AffectedSOPClassUID = sop_class
        primitive.Priority = self.priority
        primitive.MoveDestination = self.dest or self.options.calling_aet
        primitive.Identifier = BytesIO(encode_identifier(request.identifier, str(context.transfer_syntax[0])))
        return self._exchange(assoc, primitive, context, "move", "C-MOVE")

    def _exchange(self, assoc: Any, primitive: Any, context: Any, service: str, what: str) -> Outcome:
        outcome = Outcome()
        exchange = Exchange(assoc, self.peer, self.options, primitive, context, service, what)
        try:
            ts = str(context.transfer_syntax[0])
            for response in exchange.responses():
                outcome.update(response, ts)
        except KeyboardInterrupt:
            outcome.cancelled = True
            raise
        except DcmtoolsError as exc:
            # A peer that drops the association at once instead of answering a C-MOVE
            # is refusing it (Orthanc does so for an AE title it does not know): that
            # request fails, the next one gets a new association.
            if service == "move" and not outcome.responses and exc.exit_status == ExitStatus.ABORTED:
                outcome.refused = exc
                return outcome
            raise
        return outcome

    # -- C-GET
    def _get(self, request: RetrieveRequest, model: str) -> Outcome:
        sop_class = GET[model]
        plan = self._get_plan(request, model)
        total = Outcome()
        for classes, identifiers in plan:
            contexts, roles = _get_contexts(classes)
            assoc = self._association([sop_class], contexts, roles)
            context = context_for(assoc, sop_class)
            if context is None:
                raise no_context_error(self.peer, query_contexts([sop_class]), assoc)
            for identifier in identifiers or [request.identifier]:
                from io import BytesIO

                from pynetdicom.dimse_primitives import C_GET

                primitive = C_GET()
                primitive.MessageID = self._ids.next()
                primitive.AffectedSOPClassUID = sop_class
                primitive.Priority = self.priority
                primitive.Identifier = BytesIO(encode_identifier(identifier, str(context.transfer_syntax[0])))
                total.add(self._exchange(assoc, primitive, context, "get", "C-GET"))
        return total

    def _get_plan(
        self, request: RetrieveRequest, model: str
    ) -> list[tuple[list[str] | None, list[dict[str, Any]] | None]]:
        """[(storage SOP classes to propose, identifiers to C-GET with them)].

        ``(None, None)``: the common SOP classes, the request's own identifier.
        """
        found = self._instances_of(request, model)
        classes = sorted({sop_class for sop_class, *_ in found})
        if not found or not all(classes):
            return [(None, None)]
        per_association = (MAX_CONTEXTS - 1) // CONTEXTS_PER_CLASS  # and one context for the C-GET itself
        if len(classes) <= per_association:
            return [(classes, None)]
        plan: list[tuple[list[str] | None, list[dict[str, Any]] | None]] = []
        for start in range(0, len(classes), per_association):
            group = set(classes[start : start + per_association])
            series: dict[tuple[str, str, str], list[str]] = {}
            for sop_class, sop_instance, study, series_uid, patient in found:
                if sop_class in group:
                    series.setdefault((patient, study, series_uid), []).append(sop_instance)
            identifiers = []
            for (patient, study, series_uid), instances in series.items():
                keys = [
                    f"StudyInstanceUID={study}",
                    f"SeriesInstanceUID={series_uid}",
                    "SOPInstanceUID=" + "\\".join(instances),
                ]
                if model == "patient":
                    keys.insert(0, f"PatientID={patient}")
                identifiers.append(identifier_from(parse_keys(keys), (), "IMAGE"))
            plan.append((sorted(group), identifiers))
        return plan

    def _instances_of(self, request: RetrieveRequest, model: str) -> list[tuple[str, ...]]:
        """(SOP class, SOP instance, study, series, patient) of what the request covers, by an IMAGE-level C-FIND."""
        identifier = dict(request.identifier)
        identifier[f"{TAGS['QueryRetrieveLevel']:08X}"] = {"vr": "CS", "Value": ["IMAGE"]}
        for name in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
            identifier.setdefault(f"{TAGS[name]:08X}", {"vr": "LO" if name == "PatientID" else "UI"})
        if model == "study":
            # PatientID is a return key here; a study-root peer may refuse it as a matching key.
            patient = identifier.get(f"{TAGS['PatientID']:08X}")
            if patient is not None and first_text(patient):
                identifier[f"{TAGS['PatientID']:08X}"] = {"vr": "LO"}
        try:
            finder = Finder(
                self.peer,
                sort_identifier(identifier),
                self.options,
                "IMAGE",
                model,
                assoc=self._finds.get(),
                check=False,
            )
            out = []
            for record in finder.run():
                if not record.get("ok"):
                    return []
                ds = record["dataset"]
                out.append(
                    tuple(
                        first_text(ds.get(f"{TAGS[name]:08X}")) or ""
                        for name in (
                            "SOPClassUID",
                            "SOPInstanceUID",
                            "StudyInstanceUID",
                            "SeriesInstanceUID",
                            "PatientID",
                        )
                    )
                )
            return out
        except DcmtoolsError as exc:
            if exc.exit_status in (ExitStatus.NO_CONTEXT,):
                return []
            raise

    # -- associations
    def _association(self, sop_classes: list[str], storage: list[Any], roles: list[Any] | None = None) -> Any:
        wanted = set(sop_classes) | {f"{cx.abstract_syntax}|{','.join(cx.transfer_syntax)}" for cx in storage}
        if self._assoc is not None and (not self._assoc.is_established or not wanted <= self._proposed):
            close(self._assoc)
            self._assoc = None
        if self._assoc is None:
            contexts = query_contexts(sop_classes) + list(storage)
            self._assoc = associate(self.peer, contexts, self.options, ext_neg=roles or None)
            self._proposed = wanted
            from .responses import install

            if self.get:
                from .scp_receive import _Receiver

                receiver = _Receiver(self._storage(), self._assoc.association)
                install(self._assoc, then=receiver.feed)
            else:
                install(self._assoc)
        return self._assoc

    def _record(self, base: dict[str, Any], outcome: Outcome, received: list[dict[str, Any]] | None) -> dict[str, Any]:
        side = Side(
            peer=self.peer.label,
            calling_aet=self.options.calling_aet,
            get=self.get,
            dest_is_us=self.dest is None,
            address=self._our_address(),
            port=self.port,
            store_dir=self.store_dir,
        )
        record = retrieve_record(side, base, outcome, received)
        self.received += record.get("received", 0)
        return record

    def _our_address(self) -> str | None:
        assoc = self._assoc.association if self._assoc is not None else None
        try:
            host = assoc.requestor.address_info.address if assoc is not None else None
        except AttributeError:
            host = None
        if host is None:
            return None
        return f"{host}:{self.scp.port if self.scp is not None and not self.get else self.port}"


def _stop_takes_grace(scp: Any) -> bool:
    import inspect

    try:
        return "grace" in inspect.signature(scp.stop).parameters
    except (TypeError, ValueError):
        return False


def _get_contexts(classes: list[str] | None) -> tuple[list[Any], list[Any]]:
    """Storage contexts (SCP role) for a C-GET association: for each SOP class one
    context for the uncompressed syntaxes and one for the compressed ones; without
    known classes, the common ones, uncompressed."""
    from pynetdicom.presentation import StoragePresentationContexts, build_context, build_role

    compressed = classes is not None
    if classes is None:
        classes = cast(list[str], [cx.abstract_syntax for cx in StoragePresentationContexts][: MAX_CONTEXTS - 1])
    contexts = []
    roles = []
    for sop_class in classes:
        contexts.append(build_context(sop_class, UNCOMPRESSED))
        if compressed:
            # One context per compressed syntax: the peer can then send a file as it is stored.
            contexts.extend(build_context(sop_class, [ts]) for ts in COMPRESSED)
        roles.append(build_role(sop_class, scp_role=True))
    return contexts, roles
