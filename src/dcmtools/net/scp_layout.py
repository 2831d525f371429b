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


def make_store_dir(store_dir: str) -> None:
    """The folder received instances go under, created when missing; a usage error when it cannot be."""
    from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus

    try:
        os.makedirs(store_dir, exist_ok=True)
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED,
            f"cannot create {store_dir!r}: {exc.strerror or exc}",
            "choose a folder you can write to with `store_dir`",
            ExitStatus.USAGE,
        ) from None


def place_file(tmp: str, dest: str, overwrite: bool) -> str:
    """Move the received file ``tmp`` to ``dest`` (its folder exists) and return where it went: with
    ``overwrite`` over what is there, else beside it as ``NAME-1.dcm``, ``NAME-2.dcm``... (atomic
    either way: a hard link where the file system has them, else a rename)."""
    if overwrite:
        os.replace(tmp, dest)
        return dest
    stem = dest[:-4]
    for n in range(10000):
        candidate = dest if n == 0 else f"{stem}-{n}.dcm"
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError:
            if os.path.exists(candidate):
                continue
            os.replace(tmp, candidate)  # no hard links here: rename (still atomic)
            return candidate
        os.unlink(tmp)
        return candidate
    raise OSError(f"too many copies of {dest}")
