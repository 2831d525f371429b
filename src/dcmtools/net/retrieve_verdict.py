"""The verdict on one C-MOVE or C-GET: its record from the ``Outcome`` and the instances that arrived,
and, when it went wrong, the error that says what happened and what to do."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..stream.records import ErrorCode
from .retrieve_outcome import Outcome
from .status import describe, status_fields


@dataclass(frozen=True)
class Side:
    """Who retrieves and how: what the verdict's messages need to name."""

    peer: str  # the peer's label
    calling_aet: str
    get: bool  # C-GET (else C-MOVE)
    dest_is_us: bool  # no other move destination was given: the instances come to our storage SCP
    address: str | None  # our host:port as the peer sees it, when known
    port: int
    store_dir: str | None

    @property
    def kind(self) -> str:
        return "get" if self.get else "move"

    @property
    def service(self) -> str:
        return "C-GET" if self.get else "C-MOVE"


def retrieve_record(
    side: Side, base: dict[str, Any], outcome: Outcome, received: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The record of one retrieve: ``base`` with the counts, the files received, ``ok`` and the error."""
    record = dict(base)
    record.update(status_fields(outcome.status, side.kind, outcome.error_comment) if outcome.status is not None else {})
    record.update({"completed": outcome.completed, "failed": outcome.failed, "warning": outcome.warning})
    if outcome.remaining:
        record["remaining"] = outcome.remaining
    stored_failed = 0
    if received is not None:
        stored = [r for r in received if r.get("ok")]
        stored_failed = len(received) - len(stored)
        files = [r["path"] for r in stored if r.get("path")]
        record["received"] = len(stored)
        if files:
            record["out"] = _common_folder(files) if len(files) > 1 else files[0]
            record["files"] = files
    if outcome.failed_uids:
        record["failed_sop_instance_uids"] = outcome.failed_uids
    error = judge(side, record, outcome, received is not None, stored_failed)
    if outcome.cancelled:
        record["cancelled"] = True
    record["ok"] = error is None
    if error is not None:
        record["error"] = error
    return record


def judge(
    side: Side, record: dict[str, Any], outcome: Outcome, received_here: bool, stored_failed: int
) -> dict[str, Any] | None:
    """None when the retrieve went well, else the error of its record."""
    if outcome.refused is not None:
        return _association_dropped(side, record.get("destination"), outcome)
    code = outcome.status
    if code is None:
        return {"code": ErrorCode.MOVE_FAILED, "message": f"{side.peer} gave no final answer"}
    category, meaning = describe(code, side.kind)
    suboperations = outcome.completed + outcome.failed + outcome.warning
    if code == 0xA801 or (code == 0xC000 and not side.get and suboperations == 0):
        return _destination_unknown(side, record.get("destination"), outcome, code, meaning)
    if category == "cancel":
        return {
            "code": ErrorCode.CANCELLED,
            "message": f"the retrieve was cancelled ({outcome.remaining or 0} not retrieved)",
        }
    comment = f": {outcome.error_comment}" if outcome.error_comment else ""
    if category == "failure" and suboperations == 0 and not (received_here and record.get("received")):
        return _refused(side, record.get("destination"), code, f"{meaning} (status 0x{code:04X}){comment}")
    if outcome.failed or category == "failure":
        return {
            "code": ErrorCode.MOVE_FAILED,
            "message": f"{outcome.failed} of {suboperations} sub-operations failed ({meaning}, status 0x{code:04X}){comment}",
            "hint": "see failed_sop_instance_uids, and the log of the peer"
            + ("" if not received_here else " (and the records of the instances it sent)"),
        }
    if received_here:
        return _arrivals(side, record, outcome, stored_failed, suboperations)
    if suboperations == 0:
        return _failed("nothing was sent: {peer} found no instances for this identifier", side)
    return None


def _association_dropped(side: Side, dest: Any, outcome: Outcome) -> dict[str, Any]:
    """The peer dropped the association instead of answering the C-MOVE."""
    assert outcome.refused is not None
    ours = side.calling_aet
    return {
        "code": ErrorCode.MOVE_DESTINATION_UNKNOWN,
        "message": (
            f"{side.peer} dropped the association instead of answering the C-MOVE to {dest!r}: it "
            f"probably does not know the AE title {ours!r} (we asked) "
            + (f"or {dest!r} (the destination)" if dest != ours else "")
        ).rstrip()
        + f" ({outcome.refused.message})",
        "hint": (
            f"register AE title {ours} on the PACS"
            + (f" with this host and port ({side.address})" if side.dest_is_us and side.address else "")
            + " (Orthanc: DicomModalities, or DicomAlwaysAllowMove); check the PACS log"
        ),
    }


def _destination_unknown(side: Side, dest: Any, outcome: Outcome, code: int, meaning: str) -> dict[str, Any]:
    """0xA801, or the 0xC000 that Orthanc answers for a destination it does not know."""
    probably = "" if code == 0xA801 else "probably "
    return {
        "code": ErrorCode.MOVE_DESTINATION_UNKNOWN,
        "message": (
            f"{side.peer} refused the C-MOVE: the move destination {dest!r} is {probably}unknown to it "
            f"({meaning}, status 0x{code:04X}"
            + (f": {outcome.error_comment}" if outcome.error_comment else "")
            + (", which is what Orthanc answers for an unknown destination" if code == 0xC000 else "")
            + ")"
        ),
        "hint": (
            f"add AE title {dest} to the archive's known nodes with "
            + (f"this host and port ({side.address})" if side.address and side.dest_is_us else "its host and port")
            + " (Orthanc: DicomModalities; DCMTK dcmqrscp: HostTable; a dcmtools listen: the line "
            + f"{_entry_example(dest, side.address if side.dest_is_us else None)} in its `peers` file)"
            + ("; or use `get`, which needs no registration" if side.dest_is_us else "")
        ),
    }


def _refused(side: Side, dest: Any, code: int, why: str) -> dict[str, Any]:
    """A failure status before any sub-operation."""
    hint = "check the identifier and the peer's log"
    if code in (0xA701, 0xA702) and not side.get and side.dest_is_us:
        hint = (
            f"the peer could not send to {dest}: check that it can reach {side.address or 'this host'} "
            f"and that {dest} is registered there with the right port"
        )
    return {"code": ErrorCode.MOVE_FAILED, "message": f"{side.peer} refused the {side.service}: {why}", "hint": hint}


def _arrivals(
    side: Side, record: dict[str, Any], outcome: Outcome, stored_failed: int, suboperations: int
) -> dict[str, Any] | None:
    """What the peer says it sent against what arrived at our storage SCP."""
    received = record.get("received", 0)
    dest = record.get("destination")
    if stored_failed:
        return {
            "code": ErrorCode.MOVE_FAILED,
            "message": f"{stored_failed} instance(s) arrived but could not be stored under {side.store_dir}",
            "hint": "check the space and permissions of `store_dir`",
        }
    if received == 0 and suboperations == 0:
        return _failed("nothing arrived: {peer} found no instances for this identifier", side)
    if received == 0 and not side.get:
        return {
            "code": ErrorCode.MOVE_FAILED,
            "message": (
                f"{side.peer} says it sent {outcome.completed} instance(s) to {dest}, but none arrived "
                f"here (port {side.port})"
            ),
            "hint": (
                f"the PACS has AE title {dest} registered with another host or port; "
                f"register it with {side.address or 'this host'}"
            ),
        }
    if received < outcome.completed + outcome.warning:
        return {
            "code": ErrorCode.MOVE_FAILED,
            "message": f"{side.peer} says it sent {outcome.completed + outcome.warning} instance(s), {received} arrived",
            "hint": "some went elsewhere or are still on the way; check the peer's log",
        }
    return None


def _failed(message: str, side: Side) -> dict[str, Any]:
    return {
        "code": ErrorCode.MOVE_FAILED,
        "message": message.format(peer=side.peer),
        "hint": "check the identifier with 'dcmtools find'",
    }


def _common_folder(paths: list[str]) -> str:
    try:
        return os.path.commonpath([os.path.dirname(p) for p in paths])
    except ValueError:
        return os.path.dirname(paths[0])


def _entry_example(aet: Any, where: str | None) -> str:
    """A peers-file entry (one TOML line) for ``aet``, as a dcmtools listen archive needs it to move there."""
    host, _, port = where.rpartition(":") if where else ("HOST", "", "PORT")
    name = re.sub(r"[^a-z0-9_-]", "_", str(aet).lower()) or "me"
    return f'{name} = {{aet = "{aet}", host = "{host}", port = {port}}}'
