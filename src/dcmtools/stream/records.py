"""The JSON Lines stream every command writes, its error records and exit status.

stdout carries results only: one JSON object per line (UTF-8, flushed per line)
when piped or with ``--json``, or a human-readable form on a terminal.  Every
record has a ``type`` and, for items, an ``ok`` flag; a failed item carries
``error: {"code": ..., "message": ...}`` with a stable code from ``ErrorCode``.
The last record is ``{"type": "summary", ...}``.

Importable without typer, pydicom or numpy.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Protocol, TextIO


class ExitStatus(IntEnum):
    """Exit statuses shared by all commands (documented in dcmtools(1))."""

    OK = 0  # every item succeeded
    FAILED = 1  # one or more items failed; the batch went on
    USAGE = 2  # bad command line
    CONNECT = 3  # could not connect: name not resolved, connection refused
    REJECTED = 4  # association rejected by the peer
    ABORTED = 5  # association aborted (A-ABORT, or the connection dropped)
    TIMEOUT = 6  # connect, association or DIMSE reply timed out
    NO_CONTEXT = 7  # the peer accepted none of the presentation contexts needed
    INTERRUPTED = 130  # Ctrl-C


class ErrorCode:
    """Stable error codes of item records.  Add new ones here, never rename."""

    NOT_FOUND = "not_found"  # no such file, or a glob matched nothing
    NOT_DICOM = "not_dicom"  # no DICOM preamble/prefix and not a bare dataset
    EMPTY = "empty"  # zero-length file
    TRUNCATED = "truncated"  # the file ends inside an element
    UNREADABLE = "unreadable"  # permission denied, I/O error, a directory ...
    INVALID = "invalid"  # DICOM but malformed beyond reading (bad lengths ...)
    DICOMDIR = "dicomdir"  # a media directory index where an instance was expected
    BAD_RECORD = "bad_record"  # a stdin line that is neither a path nor a usable record
    UPSTREAM_FAILED = "upstream_failed"  # a piped record that was itself a failure
    EXISTS = "exists"  # the output exists and --overwrite was not given
    WRITE_FAILED = "write_failed"  # the output could not be written
    BAD_VALUE = "bad_value"  # one element's value could not be converted
    BAD_MEASUREMENTS = "bad_measurements"  # photometer readings that cannot be read or used
    NONCONFORMANT = "nonconformant"  # a display that fails the GSDF conformance criteria
    BURNED_IN = "burned_in"  # anonymize: pixels may carry burned-in text (see --allow-burned-in)
    # network (dcmtools.net; the exit status of each is in docs/reference/network.md)
    BAD_PEER = "bad_peer"  # the PEER argument or the peers file is wrong
    BAD_TLS = "bad_tls"  # TLS certificate/key files missing or invalid
    NAME_NOT_RESOLVED = "name_not_resolved"  # the peer's host name does not resolve
    CONNECTION_REFUSED = "connection_refused"  # nothing listens on the peer's port
    UNREACHABLE = "unreachable"  # no route to the peer
    CONNECT_FAILED = "connect_failed"  # any other error while connecting
    TLS_FAILED = "tls_failed"  # the TLS handshake failed (none of the cases below)
    TLS_UNTRUSTED = "tls_untrusted"  # the peer's certificate does not chain to --tls-ca / the system store
    TLS_NAME_MISMATCH = "tls_name_mismatch"  # the peer's certificate is issued to another name
    TLS_CLIENT_CERT_REQUIRED = "tls_client_cert_required"  # the peer wants (another) client certificate
    TLS_PROTOCOL_MISMATCH = "tls_protocol_mismatch"  # no common TLS version/cipher, or no TLS on the port
    TIMEOUT = "timeout"  # connect, association or reply timed out
    REJECTED = "rejected"  # the peer rejected the association (A-ASSOCIATE-RJ)
    ABORTED = "aborted"  # the association was aborted, or the connection dropped
    NO_CONTEXT = "no_context"  # no presentation context accepted for what was needed
    DIMSE_FAILED = "dimse_failed"  # the peer answered with a failure status
    CONVERT_FAILED = "convert_failed"  # decompressing/re-encoding for the peer failed
    # query/retrieve (dcmtools.net.query, retrieve, qrscp)
    BAD_KEY = "bad_key"  # a -k key that names no element, or a bad value
    QUERY_FAILED = "query_failed"  # the peer answered the C-FIND with a failure status
    MOVE_FAILED = "move_failed"  # the C-MOVE/C-GET ended with failures, or nothing arrived
    MOVE_DESTINATION_UNKNOWN = "move_destination_unknown"  # 0xA801 (and Orthanc's 0xC000)
    NOT_RETRIEVABLE = "not_retrievable"  # a piped record without the identifiers a retrieve needs
    CANCELLED = "cancelled"  # the query or retrieve was cancelled (C-CANCEL)
    # print (dcmtools.printing)
    NO_IMAGE = "no_image"  # the file has no pixel data (or no frame was selected)
    PRINT_REFUSED = "print_refused"  # the printer answered a failure status
    PRINTER_FAILURE = "printer_failure"  # the printer reports FAILURE: nothing was sent
    BAD_RESPONSE = "bad_response"  # a response without the UIDs it must carry
    INCOMPLETE = "incomplete"  # find/move: the peer cut its answer (Cancel status, or a result cap)
    # DICOMweb (dcmtools.web)
    UNAUTHORIZED = "unauthorized"  # 401: no or wrong credentials
    FORBIDDEN = "forbidden"  # 403: credentials accepted, access refused
    NO_SERVICE = "no_service"  # 404 (or no DICOMweb answer) on the base path
    HTTP_FAILED = "http_failed"  # any other HTTP error status
    STORE_FAILED = "store_failed"  # STOW-RS: the server listed the instance as failed
    NOT_CONFIRMED = "not_confirmed"  # STOW-RS: the server's answer does not say the instance was stored
    # commit, listen (dcmtools.net.commitment)
    NOT_COMMITTED = "not_committed"  # commit: the archive reported it will not keep the instance
    COMMIT_PENDING = "commit_pending"  # commit: no Storage Commitment report came within --wait
    BAD_REQUEST = "bad_request"  # listen: a peer's request we had to refuse (malformed, unsupported)
    REPORT_NOT_SENT = "report_not_sent"  # listen: a Storage Commitment report could not be delivered
    UNMATCHED = "unmatched"  # edit --require-match: no row of the --map table matches the file
    INTERNAL = "internal"  # a bug: please report it
    WORKER_DIED = "worker_died"  # --jobs: the worker process died on this item (a crash in a codec, the OOM killer)
    SPECIAL_FILE = "special_file"  # a FIFO, socket or device: never opened
    NO_FILES = "no_files"  # an input folder with no files in it
    NOT_SENT = "not_sent"  # send: the run stopped (peer gone, silent or aborting) before this file was tried
    CANNOT_DECODE = "cannot_decode"  # the pixel data cannot be decoded here (syntax, plugin, corrupt data)
    CANNOT_ENCODE = "cannot_encode"  # the target transfer syntax cannot hold this image, or its encoder refused it
    VERIFY_FAILED = "verify_failed"  # a lossless output did not decode back to the input's pixels


class DcmtoolsError(Exception):
    """A failure with a stable code, a message in the user's words and a hint.

    Raised by the library for one item (a file, a query ...); commands turn it
    into an error record.  ``exit_status`` is used when it ends the whole run
    (e.g. could not connect).
    """

    def __init__(
        self,
        code: str,
        message: str,
        hint: str | None = None,
        exit_status: ExitStatus = ExitStatus.FAILED,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.exit_status = exit_status
        self.details = details

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def as_error(self) -> dict[str, Any]:
        """The ``error`` object of a record."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            error["hint"] = self.hint
        if self.details:
            error.update(self.details)
        return error


def internal_error(path: str, exc: BaseException) -> DcmtoolsError:
    """A bug met on ``path`` (an exception nobody expected): the ``internal`` error, asking for a report."""
    return DcmtoolsError(
        ErrorCode.INTERNAL,
        f"internal error on {path}: {type(exc).__name__}: {exc}",
        hint="this is a bug in dcmtools; please report it with `debug` output",
    )


def error_record(type_: str, error: DcmtoolsError | dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An item record for a failure: ``{"type":..., <fields>, "ok": false, "error": {...}}``."""
    record: dict[str, Any] = {"type": type_, **fields, "ok": False}
    record["error"] = error.as_error() if isinstance(error, DcmtoolsError) else error
    return record


def dumps(record: dict[str, Any]) -> str:
    """One record as one compact JSON line (no newline); UTF-8 text, not escaped.

    A string holding bytes that are not UTF-8 (a file name read with
    ``surrogateescape``) is written with each such byte as ``\\xNN`` text, and
    its exact bytes, base64-encoded, go in a sibling ``<key>_bytes`` field
    (``path_bytes``, ``out_bytes``): valid JSON, and nothing lost.
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(_lossless(record), ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return text


def printable_name(name: str) -> str:
    """A name as valid text: bytes that are not UTF-8 written as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _lossless(value: Any) -> Any:
    import base64

    if isinstance(value, str):
        return printable_name(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[printable_name(str(key))] = _lossless(item)
            if isinstance(item, str) and printable_name(item) is not item:
                raw = item.encode("utf-8", "surrogateescape")
                out[f"{key}_bytes"] = base64.b64encode(raw).decode("ascii")
        return out
    if isinstance(value, (list, tuple)):
        return [_lossless(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    # Paths, bytes and sets reach records from library code; never fail the stream.
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


HumanFormatter = Callable[[dict[str, Any]], "str | None"]


class RowSink(Protocol):
    """Where ``--csv``/``--tsv`` rows go (``dcmtools.stream.tables.TableWriter``)."""

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def human_failure(record: dict[str, Any], subject: str | None = None, default_message: str = "failed") -> str:
    """The readable form of a failed record: 'FAILED subject: message', the hint below."""
    error = record.get("error") or {}
    if subject is None:
        subject = record.get("path") or record.get("peer") or record.get("type", "")
    text = f"FAILED {subject}: {error.get('message', default_message)}"
    if error.get("hint"):
        text += f"\n       {error['hint']}"
    return text


def default_human(record: dict[str, Any]) -> str | None:
    """A plain one-line rendering for terminals, used when a command has none."""
    if record.get("type") == "summary":
        return None
    subject = record.get("path") or record.get("peer") or record.get("type", "")
    if record.get("ok") is False:
        return human_failure(record, subject)
    fields = " ".join(
        f"{k}={v}" for k, v in record.items() if k not in ("type", "path", "ok") and not isinstance(v, (dict, list))
    )
    return f"ok     {subject} {fields}".rstrip()


class RecordWriter:
    """Writes records to stdout and keeps the counts for the summary and exit status.

    ``json_mode=None`` chooses JSON Lines when the stream is not a terminal.
    In human mode each record goes through ``human`` (a function returning the
    text to print, or None to print nothing) and the summary goes to stderr.
    """

    def __init__(
        self,
        command: str,
        stream: TextIO | None = None,
        json_mode: bool | None = None,
        human: HumanFormatter | None = None,
        err: TextIO | None = None,
        quiet: bool = False,
    ) -> None:
        self.command = command
        self.stream = stream if stream is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        if json_mode is None:
            json_mode = not _isatty(self.stream)
        self.json_mode = json_mode
        self.human = human or default_human
        self.quiet = quiet  # no summary line on stderr in the readable form
        self.total = 0
        self.ok = 0
        self.failed = 0
        self.error_codes: dict[str, int] = {}
        self.status = ExitStatus.OK
        self.lines = 0  # lines written to stdout, the summary aside
        self.started = time.monotonic()
        self.table: RowSink | None = None

    def use_table(self, table: RowSink) -> None:
        """Rows instead of records (--csv, --tsv); the summary goes to stderr as in the readable form.

        ``json_mode`` turns on: what the command produces is records, the table takes them.
        """
        self.table = table
        self.json_mode = True

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (counting it when it has an ``ok`` flag)."""
        self._count(record)
        if self.table is not None:
            self.table.write(record)
            self.lines += 1
            return
        if self.json_mode:
            self.stream.write(dumps(record) + "\n")
        else:
            text = self.human(record)
            if text is None:
                return
            self.stream.write(printable_name(text) + "\n")
        self.lines += 1
        self.stream.flush()

    def write_line(self, line: str, ok: bool | None, code: str | None = None) -> None:
        """Write a record already encoded by ``dumps`` (as workers return them)."""
        if ok is not None:
            self._count({"ok": ok, "error": {"code": code}} if not ok else {"ok": True})
        if self.table is not None:
            self.table.write(json.loads(line))
            self.lines += 1
            return
        self.stream.write(printable_name(line) + "\n")
        self.lines += 1
        self.stream.flush()

    def _count(self, record: dict[str, Any]) -> None:
        ok = record.get("ok")
        if ok is None:
            return
        self.total += 1
        if ok:
            self.ok += 1
        else:
            self.failed += 1
            code = (record.get("error") or {}).get("code", "error")
            self.error_codes[code] = self.error_codes.get(code, 0) + 1
            self.fail(ExitStatus.FAILED)

    def fail(self, status: ExitStatus) -> None:
        """Raise the run's exit status (a more specific failure wins over FAILED)."""
        if status == ExitStatus.OK:
            return
        if self.status in (ExitStatus.OK, ExitStatus.FAILED):
            self.status = status

    def summary(self, **extra: Any) -> int:
        """Write the summary record and return the exit status."""
        record: dict[str, Any] = {
            "type": "summary",
            "command": self.command,
            "total": self.total,
            "ok": self.ok,
            "failed": self.failed,
        }
        if self.error_codes:
            record["errors"] = dict(sorted(self.error_codes.items()))
        record.update(extra)
        record["seconds"] = round(time.monotonic() - self.started, 3)
        record["exit_status"] = int(self.status)
        finish = getattr(self.human, "finish", None)  # a formatter holding rows (a table) prints them now
        if not self.json_mode and finish is not None:
            for line in finish():
                self.stream.write(printable_name(line) + "\n")
            self.stream.flush()
        if self.table is not None:
            self.table.close()
        if self.json_mode and self.table is None:
            self.stream.write(dumps(record) + "\n")
            self.stream.flush()
        elif not self.quiet:
            self.err.write(printable_name(human_summary(record)) + "\n")
            self.err.flush()
        return int(self.status)


def human_summary(record: dict[str, Any]) -> str:
    text = f"{record['command']}: {record['total']} item(s), {record['ok']} ok, {record['failed']} failed"
    if record.get("errors"):
        text += " (" + ", ".join(f"{k}: {v}" for k, v in record["errors"].items()) + ")"
    return text + f" in {record['seconds']:.2f} s"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
