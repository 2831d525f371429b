"""Print management over DIMSE-N on one association: the SOP classes and contexts, the ``PrintSCU``
that sends N-GET/N-CREATE/N-SET/N-ACTION/N-DELETE and reads each answer (``Answer``), and the
printer's status record.  The films themselves are ``scu.FilmPrinter``'s."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from . import words

META_GRAYSCALE = "1.2.840.10008.5.1.1.9"
META_COLOR = "1.2.840.10008.5.1.1.18"
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GRAYSCALE_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]  # explicit, implicit VR little endian

PROBED = (0x0105, 0x0106, 0x0107, 0x0116, 0x0120, 0x0121)  # statuses about one attribute


class PrintErrorCode:
    """Stable error codes of print records (defined in ``records.ErrorCode``)."""

    REFUSED = ErrorCode.PRINT_REFUSED  # the printer answered a failure status
    PRINTER_FAILURE = ErrorCode.PRINTER_FAILURE  # the printer reports FAILURE: nothing was sent
    BAD_RESPONSE = ErrorCode.BAD_RESPONSE  # a response without the UIDs it must carry


PRINTER_ATTRIBUTES = {  # N-GET of the Printer SOP Instance: tag -> record field
    0x21100010: "printer_status",
    0x21100020: "printer_status_info",
    0x21100030: "printer_name",
    0x00080070: "manufacturer",
    0x00081090: "model",
    0x00181000: "serial_number",
    0x00181020: "software_versions",
    0x00181200: "calibration_date",
    0x00181201: "calibration_time",
}


def print_contexts(presentation_lut: bool = True) -> list[Any]:
    from pynetdicom.presentation import build_context

    contexts = [build_context(META_GRAYSCALE, TRANSFER_SYNTAXES)]
    if presentation_lut:
        contexts.append(build_context(PRESENTATION_LUT, TRANSFER_SYNTAXES))
    return contexts


def status_contexts() -> list[Any]:
    """For a status check: the Printer SOP Class on its own, or within either Meta SOP Class."""
    from pynetdicom.presentation import build_context

    return [build_context(uid, TRANSFER_SYNTAXES) for uid in (PRINTER, META_GRAYSCALE, META_COLOR)]


class ResponseLog:
    """Keeps the command set of the last DIMSE message received (an ``EVT_DIMSE_RECV`` handler)."""

    def __init__(self) -> None:
        self.last: Any = None

    def handler(self) -> tuple[Any, Any]:
        from pynetdicom import evt

        return (evt.EVT_DIMSE_RECV, self._received)

    def _received(self, event: Any) -> None:
        self.last = event.message.command_set

    def take(self) -> Any:
        last, self.last = self.last, None
        return last


@dataclass
class Answer:
    """A printer's response: status code, its attribute list, and its command set."""

    code: int
    attributes: Any = None
    command: Any = None

    @property
    def ok(self) -> bool:
        return words.is_ok(self.code)

    @property
    def warning(self) -> bool:
        return self.code != 0 and self.ok

    @property
    def instance_uid(self) -> str | None:
        uid = self.command.get("AffectedSOPInstanceUID") if self.command is not None else None
        return str(uid) if uid else None

    @property
    def error_comment(self) -> str | None:
        comment = self.command.get("ErrorComment") if self.command is not None else None
        return str(comment).strip() or None if comment else None

    @property
    def attribute_keywords(self) -> list[str]:
        """The attributes the printer named (Attribute Identifier List), as keywords."""
        if self.command is None or "AttributeIdentifierList" not in self.command:
            return []
        value = self.command.AttributeIdentifierList
        tags = (
            value
            if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") and not isinstance(value, (str, bytes))
            else [value]
        )
        from pydicom.datadict import keyword_for_tag

        return [
            words.TAG_KEYWORDS.get(int(tag))
            or keyword_for_tag(int(tag))
            or f"({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})"
            for tag in tags
        ]


class PrintRefused(DcmtoolsError):
    """The printer answered a failure status to one operation."""

    def __init__(
        self, message: str, hint: str | None, answer: Answer, operation: str, attributes: list[str] | None = None
    ):
        details: dict[str, Any] = {"status": f"0x{answer.code:04X}", "operation": operation}
        if attributes:
            details["attributes"] = attributes
        if answer.error_comment:
            details["error_comment"] = answer.error_comment
        super().__init__(PrintErrorCode.REFUSED, message, hint, ExitStatus.FAILED, **details)
        self.answer = answer
        self.attributes = attributes or []


def _dataset(attributes: dict[str, Any]) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def reference(sop_class: str, uid: str) -> list[Any]:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    return [item]


class PrintSCU:
    """The DIMSE-N operations of print management on an established association."""

    def __init__(self, assoc: Any, peer: Any, timeout: float, log: ResponseLog) -> None:
        self.assoc = assoc
        self.peer = peer
        self.timeout = timeout
        self.log = log
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        self.meta = META_GRAYSCALE if META_GRAYSCALE in accepted else (META_COLOR if META_COLOR in accepted else None)
        self.printer_direct = PRINTER in accepted
        self.presentation_lut = PRESENTATION_LUT in accepted
        self.message_id = 0

    def _call(self, what: str, send: Any, *args: Any, **kwargs: Any) -> Answer:
        from ..net import failure_after

        self.log.take()
        self.message_id = self.message_id % 0xFFFF + 1
        started = time.monotonic()
        if not self.assoc.is_established:
            raise failure_after(self.assoc, self.peer, what, self.timeout)
        try:
            result = send(*args, msg_id=self.message_id, **kwargs)
        except RuntimeError:  # the association ended between the check and the send
            if self.assoc.is_established:
                raise
            raise failure_after(self.assoc, self.peer, what, self.timeout) from None
        status, attributes = result if isinstance(result, tuple) else (result, None)
        if not status or "Status" not in status:
            elapsed = time.monotonic() - started
            raise failure_after(self.assoc, self.peer, what, self.timeout, timed_out=elapsed >= self.timeout * 0.9)
        return Answer(int(status.Status), attributes, self.log.take())

    def get_printer(self, tags: Iterable[int] = ()) -> Answer:
        meta = None if self.printer_direct else self.meta
        return self._call("Printer N-GET", self.assoc.send_n_get, list(tags), PRINTER, PRINTER_INSTANCE, meta_uid=meta)

    def create(self, sop_class: str, attributes: dict[str, Any] | None, what: str) -> Answer:
        meta = None if sop_class == PRESENTATION_LUT else self.meta
        ds = _dataset(attributes) if attributes else None  # an empty attribute list is left out
        return self._call(f"{what} N-CREATE", self.assoc.send_n_create, ds, sop_class, None, meta_uid=meta)

    def set(self, sop_class: str, uid: str, ds: Any, what: str) -> Answer:
        return self._call(f"{what} N-SET", self.assoc.send_n_set, ds, sop_class, uid, meta_uid=self.meta)

    def action(self, sop_class: str, uid: str, what: str, action_type: int = 1) -> Answer:
        return self._call(
            f"{what} N-ACTION", self.assoc.send_n_action, None, action_type, sop_class, uid, meta_uid=self.meta
        )

    def delete(self, sop_class: str, uid: str, what: str) -> Answer:
        meta = None if sop_class == PRESENTATION_LUT else self.meta
        return self._call(f"{what} N-DELETE", self.assoc.send_n_delete, sop_class, uid, meta_uid=meta)


# ------------------------------------------------------------------ printer status


def printer_record(scu: PrintSCU, peer: Any) -> tuple[dict[str, Any], Answer]:
    """N-GET of the printer's status (all attributes; the two status attributes if that is refused)."""
    answer = scu.get_printer()
    if not answer.ok:
        answer = scu.get_printer([0x21100010, 0x21100020])
    record: dict[str, Any] = {"type": "printer", "peer": str(peer)}
    if not answer.ok:
        category, message, _ = words.explain(answer.code, "printer")
        record.update(status=f"0x{answer.code:04X}", status_meaning=message)
        return record, answer
    attrs = answer.attributes
    for tag, field_name in PRINTER_ATTRIBUTES.items():
        if attrs is not None and tag in attrs and attrs[tag].value not in (None, ""):
            value = attrs[tag].value
            record[field_name] = (
                str(value).strip() if not isinstance(value, (list, tuple)) else "\\".join(map(str, value))
            )
    status = str(record.get("printer_status", "")).upper()
    if status:
        record["printer_status"] = status
        record["meaning"] = words.PRINTER_STATUS.get(status, "unknown printer status")
    info = record.get("printer_status_info")
    if info:
        record["printer_status_info_meaning"] = words.status_info_words(info)
    return record, answer


def printer_failure(record: dict[str, Any]) -> DcmtoolsError:
    info = record.get("printer_status_info")
    detail = f": {info} ({record.get('printer_status_info_meaning')})" if info else ""
    return DcmtoolsError(
        PrintErrorCode.PRINTER_FAILURE,
        f"the printer reports FAILURE{detail}; nothing was sent",
        "fix the printer (see its display or log), then print again; 'dcmtools print PEER `status`' shows its state",
        ExitStatus.FAILED,
    )


# ------------------------------------------------------------------ films
