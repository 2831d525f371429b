"""WADO-RS: ``move --get`` from a DICOMweb peer, into the layout ``listen`` uses.

    from dcmtools.net.retrieve import request_from_keys
    from dcmtools.web import WebSession, parse_web_peer, wado

    request = request_from_keys("STUDY", ["StudyInstanceUID=1.2.3"])
    with WebSession(parse_web_peer("http://127.0.0.1:8042/dicom-web")) as session:
        for record in wado(session, [request], "received/"):
            print(record["received"], record["out"])

Each request (a find record or ``-k`` keys, as ``move`` takes them) names a
study, a series or an instance.  When its unique keys do not give the whole
path (``-k SOPInstanceUID=...`` alone, or keys that are not unique), a QIDO-RS
query finds what they match first.  The answer, multipart/related of
application/dicom parts in the server's own transfer syntax
(``transfer-syntax=*``), is read as it arrives: each part is written to a
temporary file in ``store_dir`` and renamed to
PatientID/StudyInstanceUID/SeriesInstanceUID/SOPInstanceUID.dcm (``listen``'s
layout; an existing file is kept and the new one gets ``-1.dcm`` unless
``overwrite``).  One record per request, the ``get`` record of ``move``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from ..net.keys import TAGS, key_text, level_index
from ..net.scp_layout import place_file, stored_path
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .qido import qido
from .session import WebSession

CHUNK = 1024 * 1024
ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _uids(identifier: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    return (
        key_text(identifier, "StudyInstanceUID"),
        key_text(identifier, "SeriesInstanceUID"),
        key_text(identifier, "SOPInstanceUID"),
    )


def _paths(session: WebSession, request: Any) -> list[str]:
    """The WADO-RS resources a request names (a QIDO-RS query first when its UIDs do not say)."""
    level = request.level
    study, series, instance = _uids(request.identifier)
    whole = {"STUDY": bool(study), "SERIES": bool(study and series), "IMAGE": bool(study and series and instance)}
    if level in whole and whole[level] and request.keys_only:
        return [_path(level, study, series, instance)]
    if level == "PATIENT":
        query_level = "STUDY"
    else:
        query_level = level
    identifier = {
        tag: element for tag, element in request.identifier.items() if tag != f"{TAGS['QueryRetrieveLevel']:08X}"
    }
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")[: level_index(query_level)]:
        identifier.setdefault(f"{TAGS[name]:08X}", {"vr": "UI"})
    paths = []
    for match in qido(session, identifier, query_level):
        paths.append(_path(query_level, *_uids(match["dataset"])))
    return paths


def _path(level: str, study: str | None, series: str | None, instance: str | None) -> str:
    if level in ("STUDY", "PATIENT"):
        return f"studies/{study}"
    if level == "SERIES":
        return f"studies/{study}/series/{series}"
    return f"studies/{study}/series/{series}/instances/{instance}"


def wado(
    session: WebSession,
    requests: Iterable[Any],
    store_dir: str = ".",
    *,
    overwrite: bool = False,
    totals: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Retrieve each request into ``store_dir``; one ``get`` record per request."""
    from ..stream.records import error_record

    totals = totals if totals is not None else {}
    for request in requests:
        base = {"type": "get", **request.source}
        if request.error is not None:
            yield error_record("get", request.error, **request.source)
            continue
        base.update(level=request.level, identifier=request.label())
        try:
            paths = _paths(session, request)
            files: list[str] = []
            for path in paths:
                files += retrieve(session, path, store_dir, overwrite=overwrite)
        except DcmtoolsError as exc:
            if not _is_item(exc):  # the server or the connection, not this identifier: the run ends
                raise
            yield error_record("get", exc, **{k: v for k, v in base.items() if k != "type"})
            continue
        totals["received"] = totals.get("received", 0) + len(files)
        record = {
            **base,
            "destination": str(session.peer),
            "status": "200",
            "completed": len(files),
            "failed": 0,
            "warning": 0,
            "received": len(files),
        }
        if files:
            record["out"] = os.path.commonpath(files) if len(files) > 1 else files[0]
            record["files"] = files
            record["ok"] = True
        else:
            record["ok"] = False
            record["error"] = {
                "code": ErrorCode.NOT_FOUND,
                "message": f"{session.peer.label} has nothing that matches",
                "hint": "check the keys with 'dcmtools find URL'",
            }
        yield record


def _is_item(exc: DcmtoolsError) -> bool:
    return getattr(exc, "item", False)


def retrieve(session: WebSession, path: str, store_dir: str, *, overwrite: bool = False) -> list[str]:
    """GET one WADO-RS resource; the files written (in ``listen``'s layout)."""
    response = session.request(
        "GET", path, what="WADO-RS retrieve", headers={"Accept": ACCEPT}, stream=True, ok=(200, 206, 404)
    )
    if response.status_code == 404:
        # The base path answered (the caller checked it or a QIDO did): this resource is not there.
        error = DcmtoolsError(
            ErrorCode.NOT_FOUND,
            f"{session.peer.label} has no {path} (404 Not Found)",
            "check the UIDs with 'dcmtools find URL'",
            ExitStatus.FAILED,
        )
        error.item = True  # type: ignore[attr-defined]
        raise error
    kind = response.headers.get("Content-Type", "")
    boundary = _boundary(kind)
    if not kind.lower().startswith("multipart/related") or not boundary:
        raise DcmtoolsError(
            ErrorCode.BAD_RESPONSE,
            f"{session.peer.label} answered the WADO-RS retrieve with {kind or 'no content type'}, "
            "not multipart/related",
            None,
            ExitStatus.FAILED,
        )
    os.makedirs(store_dir, exist_ok=True)
    files: list[str] = []
    try:
        for tmp in _parts(response, boundary.encode("latin-1"), store_dir):
            files.append(_place(tmp, store_dir, overwrite))
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED, f"cannot write into {store_dir}: {exc.strerror or exc}", None, ExitStatus.FAILED
        ) from None
    finally:
        response.close()
    return files


def _boundary(content_type: str) -> str | None:
    for piece in content_type.split(";")[1:]:
        name, _, value = piece.strip().partition("=")
        if name.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


def _parts(response: Any, boundary: bytes, folder: str) -> Iterator[str]:
    """Each part's body written to a temporary file, streamed (a part is never held whole in memory)."""
    import requests

    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"  # so that the first boundary line matches the delimiter too
    stream = None
    tmp: str | None = None
    in_headers = False
    started = False
    try:
        chunks = response.iter_content(CHUNK)
        ended = False
        while True:
            if not ended:
                try:
                    chunk = next(chunks)
                    buffer += chunk
                except StopIteration:
                    ended = True
                except requests.exceptions.RequestException as exc:
                    raise DcmtoolsError(
                        ErrorCode.ABORTED, f"the WADO-RS answer was cut short: {exc}", "try again", ExitStatus.ABORTED
                    ) from None
            while True:
                if in_headers:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    buffer = buffer[end + 4 :]
                    in_headers = False
                    fd, tmp = tempfile.mkstemp(prefix=".wado-", suffix=".part", dir=folder)
                    stream = os.fdopen(fd, "wb")
                    continue
                at = buffer.find(delimiter)
                if at < 0:
                    keep = len(delimiter) + 2
                    if stream is not None and len(buffer) > keep:
                        stream.write(buffer[:-keep])
                        buffer = buffer[-keep:]
                    break
                if stream is not None:
                    stream.write(buffer[:at])
                    stream.close()
                    stream = None
                    done, tmp = tmp, None
                    assert done is not None  # made with the stream it names
                    yield done
                rest = buffer[at + len(delimiter) :]
                if len(rest) < 2:
                    break  # wait for the two bytes after the delimiter
                if rest.startswith(b"--"):
                    return
                started = True
                in_headers = True
                buffer = rest
            if ended:
                if started or stream is not None:
                    raise DcmtoolsError(
                        ErrorCode.ABORTED,
                        "the WADO-RS answer ended in the middle of an instance",
                        "try again",
                        ExitStatus.ABORTED,
                    )
                return
    finally:
        if stream is not None:
            stream.close()
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _place(tmp: str, store_dir: str, overwrite: bool) -> str:
    from ..dicom import reader

    tags = {"PatientID": 0x00100020, "StudyInstanceUID": 0x0020000D, "SeriesInstanceUID": 0x0020000E}
    try:
        info = reader.read(tmp, stop_at=0x0020000F, bulk_threshold=0)
        ids = {name: info.dataset.text(tag) or None for name, tag in tags.items()}
        sop = info.sop_instance_uid or os.path.basename(tmp)
    except Exception:  # not DICOM: kept, under UNKNOWN, for the user to look at
        ids, sop = {}, os.path.basename(tmp)
    dest = stored_path(store_dir, ids.get("PatientID"), ids.get("StudyInstanceUID"), ids.get("SeriesInstanceUID"), sop)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    return place_file(tmp, dest, overwrite)
