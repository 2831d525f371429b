"""The receiving side of the storage SCP: C-STORE PDUs read off the connection (``_Receiver``) and each
instance streamed into a partial file, then moved into place (``_Incoming``)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from typing import TYPE_CHECKING, Any

from ..stream.records import ErrorCode
from . import wire
from .scp_layout import _IDS, PART_PREFIX, place_file, stored_path

if TYPE_CHECKING:
    from .scp import StorageSCP

LOGGER = logging.getLogger("dcmtools.net")

HEAD_BYTES = 65536
_SERIAL = itertools.count(1)

MAX_COMMAND_BYTES = 65536  # a DIMSE command set is a few hundred bytes
MAX_PASSED_DATASET = 16 << 20  # a C-FIND / N-ACTION ... dataset that pynetdicom decodes in memory


def _write_all(fd: int, buffers: list[bytes | bytearray | memoryview]) -> None:
    """Write every buffer (``writev``, continuing after short writes)."""
    total = sum(len(b) for b in buffers)
    written = os.writev(fd, buffers)
    if written < total:
        rest = b"".join(bytes(b) for b in buffers)[written:]
        while rest:
            n = os.write(fd, rest)
            rest = rest[n:]


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
                assert self.instance is not None  # _begin() made it with mode "store"
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
        assert instance is not None  # _finish() ends the instance of mode "store"
        status, record = instance.finish()
        if record.get("ok") and record.get("path") and self.scp.on_stored is not None:
            # Before the C-STORE-RSP: an acknowledged instance is never missing from the index.
            try:
                self.scp.on_stored(record["path"])
            except Exception as exc:  # noqa: BLE001 - the file is stored; say why it is not findable
                LOGGER.warning("could not note %s for the index: %s", record["path"], exc)
        response = wire.store_rsp(
            instance.message_id,
            instance.sop_class,
            instance.sop_instance,
            status,
            record.get("error", {}).get("message") if status else None,
        )
        buffers: list[Any] = []
        wire.pdata_iovecs(
            instance.context_id, response, True, True, wire.max_fragment(self.assoc.requestor.maximum_length), buffers
        )
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
        self.pending: list[
            bytes | bytearray | memoryview
        ] = []  # the file meta, kept to go out with the first fragment (one write)
        self.tmp: str | None = None
        if ts is None:
            self.error = f"presentation context {context_id} was not accepted"
            return
        if scp.store_dir is not None:
            self.pending.append(
                wire.file_meta_bytes(
                    self.sop_class,
                    self.sop_instance,
                    ts,
                    assoc.acceptor.implementation_class_uid,
                    assoc.acceptor.implementation_version_name,
                    assoc.requestor.ae_title,
                )
            )
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
        with contextlib.suppress(OSError):
            if self.fd is not None:
                os.close(self.fd)
        with contextlib.suppress(OSError):
            if self.tmp is not None:
                os.unlink(self.tmp)
        self.fd = self.tmp = None

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
        if fd is None:
            return
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
            record.update(
                {
                    "status": f"0x{status:04X}",
                    "ok": False,
                    "error": {
                        "code": ErrorCode.WRITE_FAILED if self.ts else ErrorCode.NO_CONTEXT,
                        "message": self.error,
                    },
                }
            )
            return status, record
        record.update({"status": "0x0000", "ok": True})
        return 0x0000, record

    def _identifiers(self) -> dict[str, str]:
        """Patient, study, series ... from the first bytes received (``wire.scan_dataset``)."""
        ts, head = self.ts, bytes(self.head)
        if ts is None:  # no accepted context: nothing was read as a dataset
            return {}
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
        store_dir, tmp = self.scp.store_dir, self.tmp
        if store_dir is None or tmp is None:  # only an instance written into the store has a place there
            raise OSError("the instance was not written to a file")
        dest = stored_path(
            store_dir,
            ids.get("patient_id"),
            ids.get("study_instance_uid"),
            ids.get("series_instance_uid"),
            self.sop_instance,
        )
        folder = os.path.dirname(dest)
        if folder not in self.scp._made:
            os.makedirs(folder, exist_ok=True)
            self.scp._made.add(folder)
        self.tmp = None
        return place_file(tmp, dest, self.scp.overwrite)
