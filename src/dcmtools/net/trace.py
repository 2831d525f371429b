"""``--trace``: the association negotiation and the DIMSE messages, on stderr.

    -> A-ASSOCIATE-RQ  DCMTOOLS -> STORESCP  max PDU 262144  impl PYNETDICOM_304
         context 1  CT Image Storage  [JPEG Baseline (Process 1)]
    <- A-ASSOCIATE-AC  max PDU 16384  impl OFFIS_DCMTK_367
         context 1  accepted  JPEG Baseline (Process 1)  (CT Image Storage)
    -> C-STORE-RQ  id 1  context 1  CT Image Storage  1.2.3.4  (524,288 bytes in 33 PDUs)
    <- C-STORE-RSP  id 1  context 1  status 0x0000

Works for pynetdicom's own messages (through its events) and for the fast
paths of ``transport.py`` and ``scp.py`` (which call ``dimse_out``/``dimse_in``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from . import wire

_RESULTS = {
    0: "accepted",
    1: "user rejection",
    2: "no reason",
    3: "abstract syntax not supported",
    4: "transfer syntaxes not supported",
}
_COMMANDS = {
    0x0001: "C-STORE-RQ",
    0x8001: "C-STORE-RSP",
    0x0020: "C-FIND-RQ",
    0x8020: "C-FIND-RSP",
    0x0010: "C-GET-RQ",
    0x8010: "C-GET-RSP",
    0x0021: "C-MOVE-RQ",
    0x8021: "C-MOVE-RSP",
    0x0030: "C-ECHO-RQ",
    0x8030: "C-ECHO-RSP",
    0x0FFF: "C-CANCEL-RQ",
    0x0100: "N-EVENT-REPORT-RQ",
    0x8100: "N-EVENT-REPORT-RSP",
    0x0110: "N-GET-RQ",
    0x8110: "N-GET-RSP",
    0x0120: "N-SET-RQ",
    0x8120: "N-SET-RSP",
    0x0130: "N-ACTION-RQ",
    0x8130: "N-ACTION-RSP",
    0x0140: "N-CREATE-RQ",
    0x8140: "N-CREATE-RSP",
    0x0150: "N-DELETE-RQ",
    0x8150: "N-DELETE-RSP",
}


def _name(uid: Any) -> str:
    try:
        from pydicom.uid import UID

        text = str(uid)
        name = UID(text).name
        return name if name and name != text else text
    except Exception:
        return str(uid)


class Tracer:
    """Writes trace lines to ``stream`` (stderr by default); thread-safe."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def line(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"{time.monotonic() - self._t0:8.3f} {text}\n")
            self.stream.flush()

    # -- pynetdicom events
    def handlers(self) -> list[Any]:
        from pynetdicom import evt

        return [
            (evt.EVT_PDU_SENT, self._pdu, ["->"]),
            (evt.EVT_PDU_RECV, self._pdu, ["<-"]),
            (evt.EVT_DIMSE_SENT, self._dimse, ["->"]),
            (evt.EVT_DIMSE_RECV, self._dimse, ["<-"]),
        ]

    def _pdu(self, event: Any, direction: str) -> None:
        pdu = event.pdu
        kind = type(pdu).__name__
        if kind == "P_DATA_TF":
            return  # DIMSE messages are traced whole
        if kind == "A_ASSOCIATE_RQ":
            self._associate_rq(pdu, direction)
        elif kind == "A_ASSOCIATE_AC":
            self._associate_ac(pdu, direction, event.assoc)
        elif kind == "A_ASSOCIATE_RJ":
            self.line(
                f"{direction} A-ASSOCIATE-RJ  result {pdu.result}  source {pdu.source}  reason {pdu.reason_diagnostic}"
                f"  ({pdu.reason_str})"
            )
        elif kind == "A_ABORT_RQ":
            self.line(f"{direction} A-ABORT  source {pdu.source}  reason {pdu.reason_diagnostic}")
        else:
            self.line(f"{direction} {kind.replace('_', '-')}")

    def _associate_rq(self, pdu: Any, direction: str) -> None:
        ui = pdu.user_information
        impl = getattr(ui, "implementation_version_name", None) or ""
        self.line(
            f"{direction} A-ASSOCIATE-RQ  {pdu.calling_ae_title} -> {pdu.called_ae_title}"
            f"  max PDU {ui.maximum_length}  impl {impl}"
        )
        for item in pdu.presentation_context:
            syntaxes = ", ".join(_name(ts) for ts in item.transfer_syntax)
            self.line(f"     context {item.context_id}  {_name(item.abstract_syntax)}  [{syntaxes}]")
        self._roles(ui)

    def _roles(self, ui: Any) -> None:
        roles = getattr(ui, "role_selection", None)
        for item in roles.values() if isinstance(roles, dict) else []:
            self.line(f"     role  {_name(item.sop_class_uid)}  SCU {item.scu_role}  SCP {item.scp_role}")

    def _associate_ac(self, pdu: Any, direction: str, assoc: Any) -> None:
        ui = pdu.user_information
        impl = getattr(ui, "implementation_version_name", None) or ""
        self.line(f"{direction} A-ASSOCIATE-AC  max PDU {ui.maximum_length}  impl {impl}")
        proposed = {}
        try:
            source = assoc.requestor.requested_contexts if assoc.is_requestor else []
            proposed = {cx.context_id: cx.abstract_syntax for cx in source}
        except Exception:
            pass
        for item in pdu.presentation_context:
            result = _RESULTS.get(item.result, f"result {item.result}")
            ts = _name(item.transfer_syntax) if item.result == 0 and item.transfer_syntax else ""
            what = f"  ({_name(proposed[item.context_id])})" if item.context_id in proposed else ""
            self.line(f"     context {item.context_id}  {result}  {ts}{what}")
        self._roles(ui)

    def _dimse(self, event: Any, direction: str) -> None:
        message = event.message
        try:
            cs = message.command_set
            fields = {wire.TAG_COMMAND_FIELD: int(cs.CommandField).to_bytes(2, "little")}
            for tag, keyword in (
                (wire.TAG_MESSAGE_ID, "MessageID"),
                (wire.TAG_MESSAGE_ID_RESPONDED, "MessageIDBeingRespondedTo"),
                (wire.TAG_STATUS, "Status"),
            ):
                if keyword in cs:
                    fields[tag] = int(cs[keyword].value).to_bytes(2, "little")
            for tag, keyword in (
                (wire.TAG_AFFECTED_SOP_CLASS, "AffectedSOPClassUID"),
                (wire.TAG_REQUESTED_SOP_CLASS, "RequestedSOPClassUID"),
                (wire.TAG_AFFECTED_SOP_INSTANCE, "AffectedSOPInstanceUID"),
            ):
                if keyword in cs:
                    fields[tag] = str(cs[keyword].value).encode()
        except Exception:
            return
        name = _COMMANDS.get(int(cs.CommandField), f"command 0x{int(cs.CommandField):04X}")
        self._dimse_line(direction, name, message.context_id, fields)

    # -- fast paths
    def dimse_out(self, name: str, context_id: int, command: dict[int, bytes], pdus: int = 0, size: int = 0) -> None:
        self._dimse_line("->", name, context_id, command, pdus, size)

    def dimse_in(self, name: str, context_id: int, command: dict[int, bytes], pdus: int = 0, size: int = 0) -> None:
        self._dimse_line("<-", name, context_id, command, pdus, size)

    def _dimse_line(
        self, direction: str, name: str, context_id: Any, command: dict[int, bytes], pdus: int = 0, size: int = 0
    ) -> None:
        parts = [f"{direction} {name}"]
        mid = wire.command_us(command, wire.TAG_MESSAGE_ID)
        rid = wire.command_us(command, wire.TAG_MESSAGE_ID_RESPONDED)
        if mid is not None:
            parts.append(f"id {mid}")
        if rid is not None:
            parts.append(f"id {rid}")
        parts.append(f"context {context_id}")
        sop = wire.command_str(command, wire.TAG_AFFECTED_SOP_CLASS) or wire.command_str(
            command, wire.TAG_REQUESTED_SOP_CLASS
        )
        if sop:
            parts.append(_name(sop))
        inst = wire.command_str(command, wire.TAG_AFFECTED_SOP_INSTANCE)
        if inst:
            parts.append(inst)
        status = wire.command_us(command, wire.TAG_STATUS)
        if status is not None:
            parts.append(f"status 0x{status:04X}")
        if size:
            parts.append(f"({size:,} bytes in {pdus} PDUs)")
        self.line("  ".join(parts))
