"""What a ``listen`` store folder holds, by SOP Instance UID (for Storage Commitment).

    from dcmtools.net.stored import StoreLookup

    found = StoreLookup("incoming/").find(["1.2.3.4", "1.2.3.5"])
    found["1.2.3.4"].path, found["1.2.3.4"].sop_class_uid

The store layout is the one ``StorageSCP`` writes (``stored_path`` in
``scp.py``)::

    DIR/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm

``find`` walks the three folder levels once per call looking only for the
file names it was asked about, then reads each match's File Meta Information
(not its dataset) to confirm the SOP Instance UID and learn the SOP Class UID
it was stored as.  A copy kept beside an earlier one (``<uid>-1.dcm``) counts
too.  Files still being received (``.incoming-*.part``) are not instances.

This is the one place that knows how to look up a stored instance: when an
index of the store exists (an SQLite index of what ``listen`` stored), swap
the body of ``find`` for a query and keep the interface.
Importable without pydicom.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable

from .scp import stored_path

_COPY = re.compile(r"^(?P<stem>.+?)(?:-\d+)?\.dcm$")


@dataclass(frozen=True)
class StoredInstance:
    """One stored file: where it is and what the file says it is."""

    path: str
    sop_instance_uid: str
    sop_class_uid: str | None


class StoreLookup:
    """Looks SOP instances up in a ``listen`` store folder (see the module docs)."""

    def __init__(self, store_dir: str | os.PathLike) -> None:
        self.store_dir = os.fspath(store_dir)

    @staticmethod
    def file_stem(sop_instance_uid: str) -> str:
        """The file name stem an instance is stored under (as ``stored_path`` makes it)."""
        return os.path.basename(stored_path("", None, None, None, sop_instance_uid))[:-4]

    def find(self, sop_instance_uids: Iterable[str]) -> dict[str, StoredInstance]:
        """The stored instances among ``sop_instance_uids`` (absent ones are not in the result)."""
        wanted: dict[str, set[str]] = {}
        for uid in sop_instance_uids:
            wanted.setdefault(self.file_stem(uid), set()).add(uid)
        if not wanted or not os.path.isdir(self.store_dir):
            return {}
        candidates: dict[str, list[str]] = {}
        for path in self._files(self.store_dir, 3):
            match = _COPY.match(os.path.basename(path))
            if match and match["stem"] in wanted:
                candidates.setdefault(match["stem"], []).append(path)
        found: dict[str, StoredInstance] = {}
        for stem, paths in candidates.items():
            for path in sorted(paths, key=_copy_number):
                instance = _read_ids(path)
                if instance is None or instance.sop_instance_uid not in wanted[stem]:
                    continue
                found.setdefault(instance.sop_instance_uid, instance)
        return found

    def _files(self, folder: str, depth: int) -> Iterable[str]:
        try:
            with os.scandir(folder) as entries:
                listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        except OSError:
            return
        for name, is_dir in listed:
            if name.startswith("."):
                continue  # .incoming-*.part: still being received
            path = os.path.join(folder, name)
            if depth and is_dir:
                yield from self._files(path, depth - 1)
            elif not depth and not is_dir and name.endswith(".dcm"):
                yield path


def _copy_number(path: str) -> int:
    """``uid.dcm`` first, then ``uid-1.dcm``, ``uid-2.dcm`` ..."""
    stem = os.path.basename(path)[:-4]
    head, _, tail = stem.rpartition("-")
    return int(tail) if head and tail.isdigit() else 0


def _read_ids(path: str) -> StoredInstance | None:
    from .. import dicomfile

    try:
        info = dicomfile.read(path, stop_at=0x00080019, bulk_threshold=0)
    except dicomfile.ReadError:
        return None
    uid = info.sop_instance_uid
    if not uid:
        return None
    return StoredInstance(path, uid, info.sop_class_uid)
