"""Changes made to each instance in flight (``--anonymize``, ``--edit``).

The instance is retrieved to us, changed (first de-identified with
``dcmtools.deid``, then edited with ``dcmtools.edit``: an edit can so set
what the destination should show, e.g. a research PatientName), and sent.
``apply`` also says what the destination will hold: the new Patient ID and
Study, Series and SOP Instance UIDs.  The migration keeps that mapping in
the journal (per study), so that reconciliation looks for the study under
its new UID, and ``describe`` is kept in the journal's meta so that a run
resumed with other changes is refused (it would split the studies).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

# Tags read after the change.
PATIENT_ID, STUDY_UID, SERIES_UID, SOP_UID = 0x00100020, 0x0020000D, 0x0020000E, 0x00080018


@dataclass
class Changed:
    """What one instance became."""

    data: bytes
    patient: str
    study: str
    series: str
    sop: str
    original_sop: str
    warnings: list[str] = field(default_factory=list)


class Changes:
    """An ``deid.Anonymizer`` and/or an ``edit.Editor``, applied in that order to each instance."""

    def __init__(self, anonymizer: Any = None, editor: Any = None) -> None:
        if anonymizer is None and editor is None:
            raise ValueError("no change: give an anonymizer or an editor")
        self.anonymizer = anonymizer
        self.editor = editor

    def describe(self) -> dict[str, Any]:
        """What is changed, for the journal (the keys by their public fingerprints only)."""
        out: dict[str, Any] = {}
        if self.anonymizer is not None:
            key = self.anonymizer.key
            out["anonymize"] = {
                "options": self.anonymizer.options.enabled(),
                "key_id": None if key.is_random else key.fingerprint,
                "allow_burned_in": self.anonymizer.allow_burned_in,
                "keep_unknown": self.anonymizer.plan.keep_unknown,
            }
        if self.editor is not None:
            e = self.editor
            out["edit"] = {
                "set": [a.text for a in e.sets],
                "set_existing": [a.text for a in e.set_existing],
                "erase": [a.text for a in e.erase],
                "erase_private": e.erase_private,
                "map": getattr(e.mapping, "path", None),
                "new_uids": e.new_uids,
                "key_id": e.key.fingerprint if e.key is not None and not e.key.is_random else None,
                "charset": e.charset,
            }
        return out

    def apply(self, data: bytes) -> Changed:
        """The changed instance.  Raises ``DcmtoolsError`` (not DICOM, burned_in, bad_value, unmatched ...)."""
        from ..dicom.reader import read_bytes
        from ..dicom.writer import Bulk, write

        dicom = read_bytes(data)
        if dicom.deflated:
            dicom = read_bytes(data, bulk_threshold=1 << 62)
        original_sop = dicom.dataset.text(SOP_UID) or ""
        warnings: list[str] = []
        if self.anonymizer is not None:
            warnings += self.anonymizer.anonymize(dicom).warnings
        if self.editor is not None:
            warnings += self.editor.edit(dicom).warnings
        out = io.BytesIO()
        write(out, dicom.meta or None, dicom.dataset, Bulk(buffer=data), deflated=dicom.deflated)
        ds = dicom.dataset
        return Changed(
            out.getvalue(),
            ds.text(PATIENT_ID) or "",
            ds.text(STUDY_UID) or "",
            ds.text(SERIES_UID) or "",
            ds.text(SOP_UID) or "",
            original_sop,
            warnings,
        )
