"""STOW-RS: send files to a DICOMweb peer, many instances per request, one record per instance.

    from dcmtools.web import WebSession, parse_web_peer, stow
    with WebSession(parse_web_peer("http://127.0.0.1:8042/dicom-web")) as session:
        for record in stow(session, ["study/"], batch=50):
            print(record["path"], record["ok"])

* Files are grouped into requests of at most ``batch`` instances and
  ``batch_bytes`` bytes (a file larger than that goes alone).
* The body (multipart/related; type="application/dicom") is streamed: each
  part is the file's bytes as they are on disk, read in blocks while the
  request is sent (``MultipartBody``), with a Content-Length computed up
  front, so memory does not grow with the batch.  A file without a File Meta
  header is given one (in memory) first, since STOW-RS carries Part 10 files.
* An instance is reported stored only when the server's answer lists it in
  the Referenced SOP Sequence (0008,1199).  One in the Failed SOP Sequence
  (0008,1198) fails alone with the server's Failure Reason; one the answer
  does not mention fails as ``not_confirmed``.
* When the server refuses an instance's transfer syntax (Failure Reason
  0xC122, or 415 Unsupported Media Type for the request), the instance is
  decompressed to Explicit VR Little Endian through the decoder ``transcode``
  uses and sent again; its record then says ``"decompressed": true``.
* A request the server refuses whole (400, 500 ... one file it cannot
  read spoils the request for Orthanc) is split in halves and sent again
  until the instance it refuses is alone: that one fails, the others are
  stored.
* 429/503/504 and dropped connections are retried by the session (the whole
  request is sent again: storing an instance twice is harmless).  When the
  request still fails, every instance of it fails with that error; when it
  fails on ``MAX_FAILED_REQUESTS`` requests in a row, the run stops with its
  exit status.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..stream.inputs import expand_items
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus, error_record
from .session import WebSession

DEFAULT_BATCH = 50
DEFAULT_BATCH_BYTES = 64 * 1024 * 1024
MAX_FAILED_REQUESTS = 3
EXPLICIT_LE = "1.2.840.10008.1.2.1"
TS_NOT_SUPPORTED = 0xC122  # PS3.18: Referenced Transfer Syntax not supported
BLOCK = 1024 * 1024

# DICOM JSON tags of the STOW-RS answer
FAILED_SEQ, REFERENCED_SEQ = "00081198", "00081199"
REF_CLASS, REF_INSTANCE = "00081150", "00081155"
FAILURE_REASON, WARNING_REASON = "00081197", "00081196"
RETRIEVE_URL = "00081190"

FAILURE_MEANINGS = {
    0xA700: "out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "transfer syntax not supported",
    0x0110: "processing failure",
    0x0122: "SOP class not supported",
    0x0124: "not authorized",
    0xA770: "duplicate SOP instance",
    0xC123: "SOP class not supported",
}


@dataclass
class Part:
    """One instance to send: where its bytes come from and how many."""

    path: str
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    size: int
    data: bytes | None = None  # in memory (a file given a File Meta header, or decompressed)
    decompressed: bool = False
    original_transfer_syntax: str | None = None


class MultipartBody(io.RawIOBase):
    """multipart/related body over files, read lazily; ``len()`` is known before sending."""

    def __init__(self, parts: list[Part], boundary: str, media_type: str = "application/dicom") -> None:
        super().__init__()
        head = f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode()
        self._pieces: list[tuple[bytes, Part | None]] = []
        for index, part in enumerate(parts):
            self._pieces.append(((b"\r\n" if index else b"") + head, part))
        self._pieces.append((f"\r\n--{boundary}--\r\n".encode(), None))
        self._length = sum(len(h) + (p.size if p else 0) for h, p in self._pieces)
        self._index = 0
        self._pending = b""
        self._stream: Any = None
        self._position = 0

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        # requests takes len() - tell() as the Content-Length (without tell() it falls back to chunked)
        return self._position

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        out = bytearray()
        while len(out) < size:
            if self._pending:
                take = self._pending[: size - len(out)]
                self._pending = self._pending[len(take) :]
                out += take
                continue
            if self._stream is not None:
                chunk = self._stream.read(min(BLOCK, size - len(out)))
                if chunk:
                    out += chunk
                    continue
                self._stream.close()
                self._stream = None
            if self._index >= len(self._pieces):
                break
            head, part = self._pieces[self._index]
            self._index += 1
            self._pending = head
            if part is not None:
                self._stream = io.BytesIO(part.data) if part.data is not None else open(part.path, "rb")
        self._position += len(out)
        return bytes(out)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def prepare(path: str) -> Part:
    """The part for one file (its head read, not its pixels); ``DcmtoolsError`` when it cannot be sent."""
    from ..net.store import read_head

    head = read_head(path)
    part = Part(path, head.sop_class, head.sop_instance, head.transfer_syntax, head.size)
    with open(path, "rb") as stream:
        start = stream.read(132)
    if not (len(start) == 132 and start[128:132] == b"DICM" and head.offset > 132):
        part.data = _as_part10(path, head)  # a bare dataset: STOW-RS carries Part 10 files
        part.size = len(part.data)
    return part


def _as_part10(path: str, head: Any) -> bytes:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID

    try:
        ds = pydicom.dcmread(path, force=True)
        meta = FileMetaDataset(ds.file_meta) if getattr(ds, "file_meta", None) else FileMetaDataset()
        meta.TransferSyntaxUID = UID(head.transfer_syntax)  # as read_head found the bytes encoded
        meta.MediaStorageSOPClassUID = head.sop_class
        meta.MediaStorageSOPInstanceUID = head.sop_instance
        ds.file_meta = meta
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise DcmtoolsError(
            ErrorCode.INVALID, f"cannot give it a File Meta header: {exc}", "check the file with 'dcmtools dump'"
        ) from None
    return buffer.getvalue()


def decompressed(part: Part) -> Part:
    """The part decompressed to Explicit VR Little Endian (transcode's decoder), for a server that refuses its syntax."""
    import tempfile

    from ..transcode import options_for, transcode_file

    with tempfile.TemporaryDirectory(prefix="dcmtools-stow-") as folder:
        out = os.path.join(folder, "part.dcm")
        record = transcode_file(part.path, out, options_for("explicit-le"))
        if not record.get("ok"):
            error = record.get("error") or {}
            raise DcmtoolsError(
                ErrorCode.CONVERT_FAILED,
                f"the server refuses its transfer syntax, and decompressing it failed: "
                f"{error.get('message', 'unknown error')}",
                "decompress it with another tool first",
            )
        with open(out, "rb") as stream:
            data = stream.read()
    return Part(part.path, part.sop_class, part.sop_instance, EXPLICIT_LE, len(data), data, True, part.transfer_syntax)


def _batches(items: Iterable[Any], batch: int, batch_bytes: int) -> Iterator[tuple[list[Part], list[dict[str, Any]]]]:
    """(parts to send, error records of inputs that cannot be sent), bounded by count and size."""
    parts: list[Part] = []
    errors: list[dict[str, Any]] = []
    size = 0
    for item in expand_items(items):
        path = item if isinstance(item, str) else item.path
        error = None if isinstance(item, str) else getattr(item, "error", None)
        if error is not None:
            errors.append(error_record("file", error, path=path))
            continue
        try:
            part = prepare(path)
        except DcmtoolsError as exc:
            errors.append(error_record("file", exc, path=path))
            continue
        if parts and (len(parts) >= batch or size + part.size > batch_bytes):
            yield parts, errors
            parts, errors, size = [], [], 0
        parts.append(part)
        size += part.size
    if parts or errors:
        yield parts, errors


def stow(
    session: WebSession,
    items: Iterable[Any],
    *,
    batch: int | None = None,
    batch_bytes: int | None = None,
    decompress: bool = True,
) -> Iterator[dict[str, Any]]:
    """Send files (paths, folders, globs, or input items) by STOW-RS; one record per instance."""
    batch = batch or session.peer.batch or DEFAULT_BATCH
    batch_bytes = batch_bytes or session.peer.batch_bytes or DEFAULT_BATCH_BYTES
    failed_in_a_row = 0
    for parts, errors in _batches(items, batch, batch_bytes):
        yield from errors
        if not parts:
            continue
        try:
            results = _store(session, parts)
        except DcmtoolsError as exc:
            if exc.exit_status == ExitStatus.USAGE:
                raise
            failed_in_a_row += 1
            if failed_in_a_row >= MAX_FAILED_REQUESTS or exc.code in (
                ErrorCode.UNAUTHORIZED,
                ErrorCode.FORBIDDEN,
                ErrorCode.NO_SERVICE,
            ):
                raise
            for part in parts:
                yield _record(session, part, exc)
            continue
        failed_in_a_row = 0
        retry = [
            p for p, r in zip(parts, results, strict=False) if decompress and _refused_syntax(r) and _compressed(p)
        ]
        again: dict[str, dict[str, Any]] = {}
        if retry:
            converted: list[Part] = []
            for part in retry:
                try:
                    converted.append(decompressed(part))
                except DcmtoolsError as exc:
                    again[part.sop_instance] = _record(session, part, exc)
            if converted:
                try:
                    for part, result in zip(converted, _store(session, converted), strict=False):
                        again[part.sop_instance] = _record(session, part, result)
                except DcmtoolsError as exc:
                    for part in converted:
                        again[part.sop_instance] = _record(session, part, exc)
        for part, result in zip(parts, results, strict=False):
            yield (
                again[part.sop_instance]
                if part in retry and part.sop_instance in again
                else _record(session, part, result)
            )


def _store(session: WebSession, parts: list[Part]) -> list[Any]:
    """What the server said for each part; a request it refuses whole is split in halves until
    the instance it refuses is alone (that one fails, the others are stored)."""
    try:
        return store_parts(session, parts)
    except DcmtoolsError as exc:
        if exc.code not in (ErrorCode.HTTP_FAILED, ErrorCode.BAD_RESPONSE):
            raise
        if len(parts) > 1:
            middle = len(parts) // 2
            return _store(session, parts[:middle]) + _store(session, parts[middle:])
        return [
            DcmtoolsError(ErrorCode.STORE_FAILED, f"refused to store it: {exc.message}", exc.hint, ExitStatus.FAILED)
        ]


def _compressed(part: Part) -> bool:
    return part.transfer_syntax not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")


def _refused_syntax(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("reason") == TS_NOT_SUPPORTED or result.get("http") == 415
    return False


def store_parts(session: WebSession, parts: list[Part]) -> list[dict[str, Any]]:
    """One STOW-RS request; for each part what the server said: {"stored"|"reason"|"warning"...}."""
    boundary = uuid.uuid4().hex
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    response = session.request(
        "POST",
        "studies",
        what=f"STOW-RS request ({len(parts)} instances)",
        body=lambda: MultipartBody(parts, boundary),
        headers=headers,
        ok=(200, 202, 409, 415),
    )
    if response.status_code == 415:
        return [{"http": 415, "reason": TS_NOT_SUPPORTED, "message": "415 Unsupported Media Type"} for _ in parts]
    try:
        answer = response.json() if response.content else {}
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise DcmtoolsError(
            ErrorCode.BAD_RESPONSE,
            f"{session.peer.label} answered the STOW-RS request ({response.status_code}) with "
            "something that is not a DICOM JSON store response",
            "check that the URL is the DICOMweb base path",
            ExitStatus.FAILED,
        )
    referenced = {_text(item, REF_INSTANCE): item for item in _items(answer, REFERENCED_SEQ)}
    failed = {_text(item, REF_INSTANCE): item for item in _items(answer, FAILED_SEQ)}
    results: list[dict[str, Any]] = []
    for part in parts:
        if part.sop_instance in failed:
            reason = _number(failed[part.sop_instance], FAILURE_REASON)
            results.append({"reason": reason if reason is not None else 0xC000, "http": response.status_code})
        elif part.sop_instance in referenced:
            item = referenced[part.sop_instance]
            result: dict[str, Any] = {"stored": True}
            warning = _number(item, WARNING_REASON)
            if warning is not None:
                result["warning"] = warning
            url = _text(item, RETRIEVE_URL)
            if url:
                result["url"] = url
            results.append(result)
        else:
            results.append({"unconfirmed": True, "http": response.status_code})
    return results


def _record(session: WebSession, part: Part, result: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "path": part.path,
        "sop_class_uid": part.sop_class,
        "sop_instance_uid": part.sop_instance,
        "transfer_syntax": part.transfer_syntax,
    }
    if part.decompressed:
        base.update(decompressed=True, original_transfer_syntax=part.original_transfer_syntax)
    if isinstance(result, DcmtoolsError):
        return error_record("file", result, **base)
    if result.get("stored"):
        record = {"type": "file", **base, "status": "stored"}
        if "warning" in result:
            record.update(
                warning=True,
                status=f"0x{result['warning']:04X}",
                status_meaning=FAILURE_MEANINGS.get(result["warning"], "warning"),
            )
        if result.get("url"):
            record["url"] = result["url"]
        record["ok"] = True
        return record
    if result.get("unconfirmed"):
        return error_record(
            "file",
            DcmtoolsError(
                ErrorCode.NOT_CONFIRMED,
                f"{session.peer.label} did not confirm storing it (its answer lists neither it stored nor failed)",
                "send it again, and check the server's log",
            ),
            **base,
        )
    reason = result.get("reason", 0xC000)
    meaning = FAILURE_MEANINGS.get(reason) or ("cannot understand" if reason >= 0xC000 else "refused")
    message = result.get("message") or f"failure reason 0x{reason:04X}"
    return error_record(
        "file",
        DcmtoolsError(
            ErrorCode.STORE_FAILED,
            f"{session.peer.label} refused to store it: {meaning} ({message})",
            "check the server's log (a filter, or a dataset it cannot read?)",
        ),
        **base,
        status=f"0x{reason:04X}",
        status_meaning=meaning,
    )


def _items(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    element = answer.get(tag) or {}
    return [item for item in element.get("Value") or [] if isinstance(item, dict)]


def _text(item: dict[str, Any], tag: str) -> str | None:
    values = (item.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else None


def _number(item: dict[str, Any], tag: str) -> int | None:
    values = (item.get(tag) or {}).get("Value") or []
    try:
        return int(values[0]) if values else None
    except (TypeError, ValueError):
        return None
