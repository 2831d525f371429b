"""Reading a file to transcode with pydicom, its failures in the user's words."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..dicom import codecs
from ..stream.records import DcmtoolsError, ErrorCode

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


def read_dataset(path: str) -> tuple[Dataset, int]:
    """The dataset in ``path``, or a DcmtoolsError in the user's words."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        size = os.path.getsize(path)
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory")
    except FileNotFoundError:
        raise DcmtoolsError(ErrorCode.NOT_FOUND, f"no such file: {path}") from None
    except OSError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise DcmtoolsError(ErrorCode.EMPTY, f"{path} is empty (0 bytes)")
    ds: Dataset
    try:
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:
            ds = _read_bare(path)
    except DcmtoolsError:
        raise
    except (EOFError, IndexError) as exc:
        raise DcmtoolsError(
            ErrorCode.TRUNCATED, f"{path} ends in the middle of an element ({exc})", hint="the file is incomplete"
        ) from None
    except PermissionError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno is None:  # pydicom's own OSError: the data, not the system ("No tag to read at ...")
            code = ErrorCode.TRUNCATED if "No tag to read" in str(exc) else ErrorCode.INVALID
            raise DcmtoolsError(code, f"{path} is not readable DICOM: {exc}") from None
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise DcmtoolsError(ErrorCode.INVALID, f"{path} is not readable DICOM: {exc}") from None
    return ds, size


def _read_bare(path: str) -> Dataset:
    """A dataset without preamble and file meta (an older way to store DICOM).

    ``dicomfile`` (the reader of ``dump``) decides whether the file holds DICOM
    data at all, so both commands call the same files DICOM.
    """
    import pydicom

    from ..dicom import reader as dicomfile

    try:
        dicomfile.read(path, stop_at=0x00100000)
    except dicomfile.ReadError as exc:
        raise DcmtoolsError(
            exc.code,
            f"{path}: {exc.message}",
            hint=exc.hint or ("only DICOM files are transcoded" if exc.code == ErrorCode.NOT_DICOM else None),
        ) from None
    return pydicom.dcmread(path, force=True)


def source_syntax(ds: Dataset) -> str:
    """The transfer syntax UID the dataset was read in."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else codecs.BIG_ENDIAN
