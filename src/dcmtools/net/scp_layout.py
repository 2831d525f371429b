"""Where the storage SCP puts what it receives: the folder layout and names (``stored_path``), the
partial files of a receive and clearing the ones a stopped process left behind."""

from __future__ import annotations

import os
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_^]")
_IDS = {
    0x00080018: "sop_instance_uid",
    0x00080060: "modality",
    0x00100020: "patient_id",
    0x0020000D: "study_instance_uid",
    0x0020000E: "series_instance_uid",
}

PART_PREFIX = ".incoming-"


def _component(value: str | None) -> str:
    value = (value or "").strip()
    if not value:
        return "UNKNOWN"
    cleaned = _UNSAFE.sub("_", value)
    if cleaned.startswith("."):
        # Never hidden, never "." or "..", never one of listen's own (dot) files such as the index.
        cleaned = "_" + cleaned[1:]
    return cleaned[:128]


def stored_path(
    store_dir: str, patient_id: str | None, study: str | None, series: str | None, sop_instance: str
) -> str:
    """Where an instance is written (the layout documented above)."""
    return os.path.join(
        store_dir, _component(patient_id), _component(study), _component(series), _component(sop_instance) + ".dcm"
    )


def remove_leftover_parts(store_dir: str) -> int:
    """Delete the unfinished ``.incoming-PID-N.part`` files of listen processes that are gone
    (killed in the middle of an instance: never acknowledged); returns how many."""
    removed = 0
    try:
        names = os.listdir(store_dir)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(PART_PREFIX) and name.endswith(".part")):
            continue
        pid_text = name[len(PART_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and _alive(int(pid_text)):
            continue  # another listen on the same folder is writing it
        try:
            os.unlink(os.path.join(store_dir, name))
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
