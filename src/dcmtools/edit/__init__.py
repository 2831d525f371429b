"""Changing attributes of DICOM files in bulk: set, erase, a mapping table, new UIDs, UTF-8.

The library behind ``dcmtools edit`` (and, later, ``migrate --edit``):

    from dcmtools.edit import Editor, parse_assignment, load_map

    editor = Editor(sets=[parse_assignment("InstitutionName=North Clinic")],
                    erase=[parse_path("OtherPatientIDs")], new_uids="all", key="team secret")
    record = editor.edit_file("in.dcm", "out.dcm")        # a record, never raises for bad input
    data, changes = editor.edit_bytes(raw)                 # a file held in memory
    changes = editor.edit(dicomfile.read("in.dcm"))        # a DicomFile, in place

Everything the user gives (paths, values, the mapping table) is checked when
the ``Editor`` is built, so a typo is one error before any file is written
(``EditError``).  Per file, a value that its VR or character set cannot hold
is a ``bad_value`` record and the file is left alone.

Files are read with ``dcmtools.dicom.reader`` and written with
``dcmtools.dicom.writer``: elements that are not edited keep their bytes, pixel
data is copied by offset and never decoded.

New UIDs (``new_uids``) come from ``dcmtools.deid.keys.Key.uid`` (HMAC-SHA256
of the old UID under the key): the same old UID always becomes the same new
one, in every file, run and machine with the same key, so references between
files (Referenced SOP Instance UID, frames of reference) stay in step without
a table.  Which elements hold a UID of each level is in ``UID_LEVELS``.
"""

from __future__ import annotations

from .batch import edit_paths
from .editor import UTF8, Change, Editor, Outcome
from .spec import Assignment, MapTable, load_map, parse_assignment
from .values import LEVELS, UID_LEVELS, EditError, check_value, encode_value

__all__ = [
    "Assignment",
    "Change",
    "EditError",
    "Editor",
    "LEVELS",
    "MapTable",
    "Outcome",
    "UID_LEVELS",
    "UTF8",
    "check_value",
    "edit_paths",
    "encode_value",
    "load_map",
    "parse_assignment",
]
