"""Sending instances (C-STORE SCU): ``send`` streams files to a peer, one record per file.

    from dcmtools.net import NetOptions, parse_peer, send
    for record in send(parse_peer("PACS@10.0.0.5:104"), ["study/"], NetOptions()):
        print(record["path"], record["ok"], record.get("status"))

How it works:

* Files are read in windows of up to 256: for each, the File Meta header (or
  a bare dataset's first elements) gives the SOP class, SOP instance,
  transfer syntax and where the dataset starts; nothing else is parsed.
* One association carries many files.  For each SOP class it proposes one
  presentation context per transfer syntax the files have (so the peer can
  accept each as it is) plus the uncompressed ones.  A window that needs a
  context the open association did not propose gets a new association; so does
  one that would need more than 128 contexts (split).
* A file whose own transfer syntax was accepted goes out as it is: its
  dataset bytes are streamed from the file (``exchange.store_exchange``).
  Otherwise, when the peer accepted an uncompressed syntax for its SOP class,
  it is decoded with pydicom (+pylibjpeg for compressed pixel data) and
  re-encoded; the record then says ``"decompressed": true`` (or
  ``"converted": true``) with the ``original_transfer_syntax``.
* If the association fails in the middle (timeout, abort, dropped
  connection) the file in flight is not reported as sent: the association is
  re-opened and the file sent again, up to ``retries`` times.  A file the
  peer keeps dropping the association on is reported failed (code
  ``aborted``; ``truncated`` when the file is cut short) and the batch goes
  on; when that happens on 3 files in a row, or the association cannot be
  re-opened, the run stops with that failure's exit status.
* A peer that stops answering (``timeout``) stops the run once one file has
  timed out ``retries + 1`` times: a silent peer costs about
  ``timeout x (retries + 1)`` for the whole run, not for each file.
* When the run stops, every input not yet tried still gets its record:
  ``not_sent``, with the reason.
* A file whose UIDs cannot go on the wire (not ASCII, over 64 characters)
  fails alone with ``invalid`` before any association is opened for it.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..stream.inputs import expand_items
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus, error_record
from . import wire
from .assoc import NetOptions, associate, close, failure_after, no_context_error
from .peer import Peer
from .status import describe, status_fields, storage_hint

LOGGER = logging.getLogger("dcmtools.net")
MAX_CONTEXTS = 128
WINDOW = 256
MMAP_OVER = 16 * 1024 * 1024
MAX_FAULTY_FILES = 3  # files in a row on which the association failed -retries+1- times: stop


@dataclass
class _Entry:
    path: str
    item: Any = None
    head: wire.FileHead | None = None
    error: DcmtoolsError | None = None


def _contexts_for(heads: Iterable[wire.FileHead]) -> list[tuple[str, tuple[str, ...]]]:
    """Presentation contexts (SOP class, transfer syntaxes) for these files, in a stable order."""
    by_class: dict[str, list[str]] = {}
    for head in heads:
        syntaxes = by_class.setdefault(head.sop_class, [])
        if head.transfer_syntax not in syntaxes:
            syntaxes.append(head.transfer_syntax)
    out: list[tuple[str, tuple[str, ...]]] = []
    for sop_class, syntaxes in by_class.items():
        for ts in syntaxes:
            out.append((sop_class, (ts,)))
        fallback = tuple(ts for ts in wire.UNCOMPRESSED if ts not in syntaxes)
        if fallback:
            out.append((sop_class, fallback))
    return out


def read_head(path: str) -> wire.FileHead:
    """The head of a file to send (via ``dcmtools.dicom.reader``), or ``DcmtoolsError`` with a stable code."""
    from ..dicom import reader

    info = reader.read(path, stop_at=0x00080019, bulk_threshold=0)
    if info.is_dicomdir:
        raise DcmtoolsError(
            ErrorCode.DICOMDIR, "this is a DICOMDIR (a media index), not an instance", "send the files it lists instead"
        )
    sop_class, sop_instance = info.sop_class_uid, info.sop_instance_uid
    if not sop_class or not sop_instance:
        raise DcmtoolsError(
            ErrorCode.INVALID,
            "the file has no SOP Class UID or SOP Instance UID",
            "a peer cannot store it without them",
        )
    ts = info.transfer_syntax or wire.IMPLICIT_LE
    for name, uid in (("SOP Class UID", sop_class), ("SOP Instance UID", sop_instance), ("Transfer Syntax UID", ts)):
        problem = uid_problem(uid)
        if problem:
            raise DcmtoolsError(
                ErrorCode.INVALID, f"its {name} {problem}", "a peer cannot take it as it is; fix the file"
            )
    if ts in (wire.EXPLICIT_LE, wire.IMPLICIT_LE) and info.dataset.implicit != (ts == wire.IMPLICIT_LE):
        ts = wire.IMPLICIT_LE if info.dataset.implicit else wire.EXPLICIT_LE  # label the bytes as they are
    if info.meta:
        offset = max((e.offset or 0) + e.length for e in info.meta.values())
    elif info.has_preamble:
        offset = 132
    else:
        with open(path, "rb") as stream:
            offset = 4 if stream.read(4) == b"DICM" else 0
    return wire.FileHead(sop_class, sop_instance, ts, offset, info.size)


def uid_problem(uid: str) -> str | None:
    """Why ``uid`` cannot go in an association or a C-STORE request, or None."""
    if not uid.isascii() or not uid.isprintable():
        return "holds characters that are not printable ASCII"
    if len(uid) > 64:
        return f"is {len(uid)} characters long (64 at most)"
    return None


def truncation(path: str) -> DcmtoolsError | None:
    """The error of a file cut short (read whole: only after a peer dropped us on it)."""
    from ..dicom import reader

    try:
        reader.read(path, bulk_threshold=0)
    except reader.ReadError as exc:
        if exc.code == ErrorCode.TRUNCATED:
            return exc
    except Exception:
        return None
    return None


class Sender:
    """One association's worth of state; ``run`` sends a stream of files and yields records."""

    def __init__(
        self,
        peer: Peer,
        options: NetOptions,
        retries: int = 2,
        decompress: bool = True,
        priority: int = 0,
        move_originator: tuple[str, int] | None = None,
    ) -> None:
        self.peer = peer
        self.options = options
        self.retries = retries
        self.decompress = decompress
        self.priority = priority
        self.move_originator = move_originator
        self.timeout = options.timeout_for(peer)
        self.assoc: Any = None
        self.proposed: list[tuple[str, tuple[str, ...]]] = []
        self.accepted: dict[tuple[str, str], int] = {}
        self.message_id = 0
        self.associations = 0
        self.faults = 0  # files in a row that failed because the association did

    # ------------------------------------------------------------ association
    def _open(self, contexts: list[tuple[str, tuple[str, ...]]]) -> None:
        from pynetdicom.presentation import build_context

        self.close()
        self.proposed = contexts
        self.accepted = {}
        self.message_id = 0
        try:
            self.assoc = associate(self.peer, [build_context(s, list(ts)) for s, ts in contexts], self.options)
        except DcmtoolsError as exc:
            if exc.exit_status == ExitStatus.NO_CONTEXT:
                self.assoc = None  # nothing of this window can go: each file says so
                return
            raise
        self.associations += 1
        self.assoc.dul.own()
        # pynetdicom's association thread polls for incoming requests every 1 ms: none come
        # while we send (replies are read by store_exchange), so pause it as its own send_* do.
        from .seam import pause_reactor

        pause_reactor(self.assoc)
        for cx in self.assoc.accepted_contexts:
            self.accepted[(cx.abstract_syntax, cx.transfer_syntax[0])] = cx.context_id

    def _give_back(self) -> None:
        self.assoc.dul.own(False)
        from .seam import resume_reactor

        resume_reactor(self.assoc)

    def close(self) -> None:
        if self.assoc is not None:
            self._give_back()
            close(self.assoc)
            self.assoc = None

    def abort(self) -> None:
        if self.assoc is not None:
            self._give_back()
            close(self.assoc, abort=True)
            self.assoc = None

    # ------------------------------------------------------------ the stream
    def run(self, items: Iterable[Any]) -> Generator[dict[str, Any], None, None]:
        source = expand_items(items)
        try:
            for window in _windows(source):
                index = 0
                try:
                    heads = [e.head for e in window if e.head is not None]
                    if heads:
                        needed = _contexts_for(heads)
                        if self.assoc is None or not set(needed) <= set(self.proposed):
                            self._open(needed)
                    for index, entry in enumerate(window):  # noqa: B007 - the except below reads it
                        if entry.error is not None:
                            yield error_record("file", entry.error, path=entry.path)
                        else:
                            assert entry.head is not None  # an entry has a head or an error
                            yield self.send_one(entry.path, entry.head)
                except DcmtoolsError as exc:
                    # The run stops here: the file in flight and every input not yet
                    # tried still get their record, then the caller gets the failure.
                    self.abort()
                    yield from _not_sent(window[index:], source, exc)
                    raise
        except BaseException:
            self.abort()
            raise
        self.close()

    def send_one(self, path: str, head: wire.FileHead) -> dict[str, Any]:
        """Send one file on the open association (re-opening it after a fault); its record."""
        from .exchange import ExchangeError, store_exchange

        base = {"path": path, "sop_class_uid": head.sop_class, "sop_instance_uid": head.sop_instance}
        failures = 0
        while True:
            context_id, target = self._context_for(head)
            try:
                if context_id is None:
                    refused = [c for c in self._proposed_contexts() if c.abstract_syntax == head.sop_class]
                    error = no_context_error(self.peer, refused)
                    error.exit_status = ExitStatus.FAILED
                    raise error
                payload, extra = self._converted(path, head, target)
            except DcmtoolsError as exc:
                return error_record("file", exc, **base, transfer_syntax=head.transfer_syntax)
            self.message_id = self.message_id % 65535 + 1
            command = wire.store_rq(
                self.message_id, head.sop_class, head.sop_instance, self.priority, self.move_originator
            )
            try:
                try:
                    response = store_exchange(
                        self.assoc, context_id, command, payload.view, self.timeout, self.message_id
                    )
                finally:
                    payload.close()
            except ExchangeError as exc:
                failures += 1
                fault = self._after_fault(path, exc.kind == "timeout", failures)
                if fault is None:
                    continue
                return error_record("file", fault, **base, transfer_syntax=head.transfer_syntax)
            self.faults = 0
            return self._stored(base, target, extra, response)

    def _converted(self, path: str, head: wire.FileHead, target: str) -> tuple[Any, dict[str, Any]]:
        """``_payload``, with a bug of ours in converting one file as that file's error (not the run's end)."""
        try:
            return self._payload(path, head, target)
        except DcmtoolsError:
            raise
        except Exception as exc:
            LOGGER.debug("converting %s", path, exc_info=True)
            raise DcmtoolsError(
                ErrorCode.INTERNAL,
                f"internal error converting it: {type(exc).__name__}: {exc}",
                "this is a bug in dcmtools; please report it with `debug` output",
            ) from None

    def _after_fault(self, path: str, timed_out: bool, failures: int) -> DcmtoolsError | None:
        """The association failed during a C-STORE: the file's error, or None to send it again on a
        new association; raises when the peer, not the file, is the problem."""
        error = failure_after(
            self.assoc, self.peer, f"C-STORE of {os.path.basename(path)}", self.timeout, timed_out=timed_out
        )
        self.abort()
        cut = truncation(path)
        if cut is not None:  # the file, not the link: fail it alone and go on
            self.faults = 0
            self._open(self.proposed)
            return cut
        if failures > self.retries and timed_out:
            raise error from None  # a silent peer: waiting on each file would cost timeout x files
        if failures > self.retries:
            # This file keeps failing: report it (not sent) and go on, unless the
            # association failed on several files in a row: then the peer is the problem.
            self.faults += 1
            if self.faults >= MAX_FAULTY_FILES:
                raise error from None
            self._open(self.proposed)
            return error
        LOGGER.warning("%s; re-opening the association (try %d of %d)", error.message, failures, self.retries)
        self._open(self.proposed)
        return None

    def _stored(self, base: dict[str, Any], target: str, extra: dict[str, Any], response: Any) -> dict[str, Any]:
        """The record of a C-STORE the peer answered."""
        code = wire.command_us(response, wire.TAG_STATUS, 0xC000)
        comment = wire.command_str(response, wire.TAG_ERROR_COMMENT)
        record = {
            "type": "file",
            **base,
            "transfer_syntax": target,
            **extra,
            **status_fields(code, "storage", comment),
        }
        category, meaning = describe(code, "storage")
        record["ok"] = category in ("success", "warning")
        if not record["ok"]:
            record["error"] = {
                "code": ErrorCode.DIMSE_FAILED,
                "message": f"{self.peer.label} refused to store it: {meaning} (status 0x{code:04X})"
                + (f": {comment}" if comment else ""),
                "hint": storage_hint(code, comment),
            }
        return record

    def _proposed_contexts(self) -> list[Any]:
        from pynetdicom.presentation import build_context

        return [build_context(s, list(ts)) for s, ts in self.proposed]

    def _context_for(self, head: wire.FileHead) -> tuple[int | None, str]:
        ctx = self.accepted.get((head.sop_class, head.transfer_syntax))
        if ctx is not None:
            return ctx, head.transfer_syntax
        for ts in wire.UNCOMPRESSED:
            ctx = self.accepted.get((head.sop_class, ts))
            if ctx is not None:
                return ctx, ts
        return None, head.transfer_syntax

    def _payload(self, path: str, head: wire.FileHead, target: str) -> tuple[_Payload, dict[str, Any]]:
        if target == head.transfer_syntax:
            try:
                payload = _Payload.from_file(path, head.offset)
            except OSError as exc:
                raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read the file ({exc.strerror or exc})") from None
            if target == wire.DEFLATED_LE and len(payload.view) % 2:
                return _Payload.even_deflated(payload), {}
            return payload, {}
        compressed = head.transfer_syntax not in wire.NATIVE
        if compressed and not self.decompress:
            raise DcmtoolsError(
                ErrorCode.NO_CONTEXT,
                f"{self.peer.label} accepts this SOP class only uncompressed, and `no_decompress` was given",
                "drop `no_decompress` to decompress on the fly",
            )
        data = convert(path, target)
        extra: dict[str, Any] = {"original_transfer_syntax": head.transfer_syntax}
        extra["decompressed" if compressed else "converted"] = True
        return _Payload(memoryview(data)), extra


class _Payload:
    """The dataset bytes to send: a memoryview into the file (read or mapped) or converted bytes."""

    __slots__ = ("view", "_map")

    def __init__(self, view: memoryview, mapped: mmap.mmap | None = None) -> None:
        self.view = view
        self._map = mapped

    @classmethod
    def from_file(cls, path: str, offset: int) -> _Payload:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MMAP_OVER:
                mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
                return cls(memoryview(mapped)[offset:], mapped)
            stream.seek(offset)
            return cls(memoryview(stream.read()))

    @classmethod
    def even_deflated(cls, payload: _Payload) -> _Payload:
        """A deflated dataset of odd length with one zero byte after the deflate stream (which
        inflaters ignore, as DCMTK writes it): a PDV must have an even length (PS3.5 8.1), and some
        peers (Orthanc: "Odd Fragment Length") drop the association on an odd one."""
        data = bytes(payload.view) + b"\0"
        payload.close()
        return cls(memoryview(data))

    def close(self) -> None:
        try:
            self.view.release()
            if self._map is not None:
                self._map.close()
        except BufferError:
            pass  # slices still referenced (e.g. by a traceback): the mapping closes when they go


def convert(path: str, target: str) -> bytes:
    """The dataset of ``path`` decoded (decompressed if need be) and encoded in ``target``.

    Reading and decoding are ``transcode``'s (the same plugins, the same
    records: ``cannot_decode``, ``truncated``, ``invalid`` with the reason),
    so a file that ``dcmtools transcode`` decodes is sent decompressed.
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    from pydicom.uid import UID

    from .. import transcode as tc

    ds, _ = tc._read(path)
    source = tc.source_syntax(ds)
    if "PixelData" in ds and source not in wire.NATIVE:
        pixels, meta = tc._decode(ds, path, source)
        tc._set_native(ds, tc._native_order(pixels), meta)

    def encode() -> bytes:
        stream = DicomBytesIO()
        stream.is_little_endian, stream.is_implicit_VR = True, UID(target).is_implicit_VR
        write_dataset(stream, ds)
        return stream.getvalue()

    try:
        try:
            return encode()
        except (TypeError, ValueError, AttributeError):
            # Elements still raw as read (implicit VR data in an explicit file ...): parse them
            # all so that each is written with its VR, as transcode does.
            tc._to_little_endian(ds, source)
            return encode()
    except Exception as exc:  # pydicom cannot write some value as it is
        raise DcmtoolsError(
            ErrorCode.INVALID,
            f"the peer accepts only {target} for it, and its dataset cannot be encoded so: {codecs_first_line(exc)}",
            "check the file with 'dcmtools dump'; fix the values it cannot hold",
        ) from None


def codecs_first_line(exc: BaseException) -> str:
    from ..dicom.codecs import _first_line

    return _first_line(exc)


def _not_sent(entries: list[_Entry], rest: Iterator[Any], cause: DcmtoolsError) -> Iterator[dict[str, Any]]:
    """The records of the file in flight (``entries[0]``, failed with ``cause``) and of every input after it."""

    def record(item_path: str, error: DcmtoolsError | None, first: bool) -> dict[str, Any]:
        if error is not None:
            return error_record("file", error, path=item_path)
        if first:
            return error_record("file", cause, path=item_path)
        reason = DcmtoolsError(
            ErrorCode.NOT_SENT,
            f"not sent: the run stopped before this file ({cause.message})",
            "send it again once the peer works",
        )
        return error_record("file", reason, path=item_path)

    for n, entry in enumerate(entries):
        yield record(entry.path, entry.error, n == 0)
    for item in rest:
        path = item if isinstance(item, str) else item.path
        yield record(path, None if isinstance(item, str) else getattr(item, "error", None), False)


def _windows(items: Iterable[Any]) -> Iterator[list[_Entry]]:
    """Inputs in windows of up to WINDOW files needing at most MAX_CONTEXTS contexts."""
    window: list[_Entry] = []
    keys: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for item in expand_items(items):
        path = item if isinstance(item, str) else item.path
        error = None if isinstance(item, str) else getattr(item, "error", None)
        entry = _Entry(path, item, error=error)
        if error is None:
            try:
                entry.head = read_head(path)
            except DcmtoolsError as exc:
                entry.error = exc
        if entry.head is not None:
            key = (entry.head.sop_class, entry.head.transfer_syntax)
            if key not in keys:
                new_keys = keys | {key}
                new_classes = classes | {entry.head.sop_class}
                # each key is one context, plus at most one fallback per class
                if len(new_keys) + len(new_classes) > MAX_CONTEXTS and window:
                    yield window
                    window, new_keys, new_classes = [], {key}, {entry.head.sop_class}
                keys, classes = new_keys, new_classes
        window.append(entry)
        if len(window) >= WINDOW:
            yield window
            window, keys, classes = [], set(), set()
    if window:
        yield window


def send(
    peer: Peer,
    items: Iterable[Any],
    options: NetOptions | None = None,
    *,
    retries: int = 2,
    jobs: int = 1,
    decompress: bool = True,
    priority: int = 0,
    move_originator: tuple[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Send files to ``peer``: paths (a folder is walked, a glob expanded, as on the command
    line) or ``dcmtools.stream.inputs.InputItem``s (whose errors become records).

    Yields one record per file (in input order with ``jobs=1``; in completion
    order with ``jobs>1``, one association per job).  Raises ``DcmtoolsError``
    when the peer cannot be reached, rejects or drops the association more than
    ``retries`` times in a row (the records of files already sent were yielded).
    """
    options = options or NetOptions()
    if jobs <= 1:
        yield from Sender(peer, options, retries, decompress, priority, move_originator).run(items)
        return
    yield from _send_parallel(peer, items, options, retries, jobs, decompress, priority, move_originator)


def _send_parallel(
    peer: Peer,
    items: Iterable[Any],
    options: NetOptions,
    retries: int,
    jobs: int,
    decompress: bool,
    priority: int,
    move_originator: tuple[str, int] | None,
) -> Iterator[dict[str, Any]]:
    import queue

    source = iter(items)
    lock = threading.Lock()
    results: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=jobs * 64)
    stop = threading.Event()

    def shared() -> Iterator[Any]:
        while not stop.is_set():
            with lock:
                try:
                    item = next(source)
                except StopIteration:
                    return
            yield item

    def worker() -> None:
        try:
            for record in Sender(peer, options, retries, decompress, priority, move_originator).run(shared()):
                results.put(("record", record))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            stop.set()
            results.put(("error", exc))
        finally:
            results.put(("done", None))

    threads = [threading.Thread(target=worker, name=f"send-{n}", daemon=True) for n in range(jobs)]
    for thread in threads:
        thread.start()
    running = len(threads)
    error: BaseException | None = None
    try:
        while running:
            kind, value = results.get()
            if kind == "record":
                yield value
            elif kind == "error":
                error = error or value
            else:
                running -= 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=1)
    if error is not None:
        raise error
