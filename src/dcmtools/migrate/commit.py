"""Storage Commitment of a verified study at the destination (``--commit``).

Once a study's counts (or SOP Instance UIDs) match, the destination is asked
to commit to keep the instances it lists for the study (SOP Class and
Instance UIDs by an image-level C-FIND on the study's UID): one transaction
per study with ``dcmtools.net.commitment``, the report taken on the
association of the request (``dcmtools listen``) or on our ``port`` (Orthanc
reports on a new association to our AE title there).  The study is committed
only when every instance is reported committed; otherwise the result says
which were not and why (failed: the archive's failure reason; pending: no
report within ``wait``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode
from .endpoints import tag_key

DEFAULT_WAIT = 60.0


@dataclass
class _Ref:
    """One instance as ``commitment.reference_for`` takes an upstream record."""

    record: dict[str, Any]
    path: str | None = None
    error: Any = None


class Committer:
    """Asks ``peer`` to commit each study's instances; ``study()`` returns (ok, result fields)."""

    def __init__(self, peer: Any, options: Any, lister: Any, *, port: int | None, wait: float = DEFAULT_WAIT) -> None:
        self.peer = peer
        self.options = options
        self.lister = lister  # a verify.PacsCounter of the destination (its association is reused)
        self.port = port
        self.wait = wait

    def study(self, study: str, at_dest: list[str] | None = None) -> tuple[bool, dict[str, Any]]:
        """Commit ``study`` (held at the destination under ``at_dest``, its new UIDs when changed in flight)."""
        from ..net.commitment import CommitmentSCU
        from ..net.keys import first_text

        refs = []
        for uid in at_dest or [study]:
            for ds in self.lister._query("IMAGE", [f"StudyInstanceUID={uid}", "SOPClassUID", "SOPInstanceUID"]):
                sop_class = first_text(ds.get(tag_key("SOPClassUID")))
                sop_instance = first_text(ds.get(tag_key("SOPInstanceUID")))
                if sop_class and sop_instance:
                    refs.append(_Ref({"sop_class_uid": sop_class, "sop_instance_uid": sop_instance}))
        if not refs:
            error = DcmtoolsError(
                ErrorCode.NOT_COMMITTED,
                f"{self.peer.label} lists no instance of the study to commit",
                "check that the destination answers image-level C-FIND with SOPClassUID",
            )
            return False, {"commitment": {"requested": 0, "committed": 0}, "error": error.as_error()}
        scu = CommitmentSCU(self.peer, self.options, batch=len(refs), wait=self.wait, port=self.port)
        states: dict[str, int] = {}
        first_bad: dict[str, Any] | None = None
        not_committed: list[str] = []
        transaction = None
        for record in scu.run(refs):
            state = record.get("state", "failed")
            states[state] = states.get(state, 0) + 1
            transaction = record.get("transaction_uid") or transaction
            if not record.get("ok"):
                not_committed.append(record.get("sop_instance_uid", ""))
                first_bad = first_bad or record
        summary: dict[str, Any] = {"requested": len(refs), **states}
        if transaction:
            summary["transaction_uid"] = transaction
        if first_bad is None:
            return True, {"commitment": summary}
        failure = dict(first_bad.get("error") or {"code": ErrorCode.NOT_COMMITTED, "message": "not committed"})
        failure["message"] = (
            f"{len(not_committed)} of {len(refs)} instance(s) not committed by {self.peer.label}: "
            f"{failure.get('message', '')}"
        )
        if first_bad.get("failure_reason"):
            failure["failure_reason"] = first_bad["failure_reason"]  # e.g. 0x0112: the archive does not have it
        summary["not_committed"] = not_committed[:100]
        return False, {"commitment": summary, "error": failure}
