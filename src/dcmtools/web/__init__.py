"""DICOMweb peers: STOW-RS (send), QIDO-RS (find), WADO-RS (move --get) and echo.

Usable from Python without the CLI::

    from dcmtools.web import WebSession, echo, parse_web_peer, qido, stow, wado

    peer = parse_web_peer("https://pacs.example.org/dicom-web", token_file="~/.pacs-token")
    with WebSession(peer) as session:
        print(echo(session))                          # {"type": "echo", "ok": true, "rtt_ms": ...}
        for record in stow(session, ["study/"]):      # one record per instance
            print(record["sop_instance_uid"], record["ok"])

The records are those of the DIMSE commands (``dcmtools.net``): ``file``
records for send, ``match`` records for find, ``get`` records for move.
Failures that end a run raise ``DcmtoolsError`` whose ``exit_status`` is
documented in ``session.EXIT_STATUSES``.

Library choice: requests for the session (auth, TLS, retries, streamed bodies).
dicomweb-client 0.61 encodes a STOW-RS body whole in memory (BytesIO) from
pydicom datasets it re-encodes, so STOW-RS here streams the files' bytes as
they are through requests directly (``stow.MultipartBody``); QIDO-RS and
WADO-RS go through the same session so that every request has the same
retries and diagnosis (dicomweb-client's retrieve also decodes every instance
into pydicom, where WADO-RS here writes the bytes as they arrive).
"""

from __future__ import annotations

import time
from typing import Any

from ..stream.records import ErrorCode
from .qido import qido
from .session import EXIT_STATUSES, WebPeer, WebSession, is_url, is_web_peer, parse_web_peer
from .stow import stow
from .wado import wado

__all__ = [
    "EXIT_STATUSES",
    "WebPeer",
    "WebSession",
    "echo",
    "is_url",
    "is_web_peer",
    "parse_web_peer",
    "qido",
    "stow",
    "wado",
]


def echo(session: WebSession, seq: int = 1) -> dict[str, Any]:
    """A minimal QIDO-RS request (one study); its record, or ``DcmtoolsError`` saying why it failed."""
    start = time.perf_counter()
    response = session.request(
        "GET",
        "studies",
        what="QIDO-RS request",
        params={"limit": "1"},
        headers={"Accept": "application/dicom+json"},
        ok=(200, 204),
    )
    rtt = (time.perf_counter() - start) * 1000
    if response.status_code == 200 and response.content:
        try:
            valid = isinstance(response.json(), list)
        except ValueError:
            valid = False
        if not valid:
            from ..stream.records import DcmtoolsError, ExitStatus

            raise DcmtoolsError(
                ErrorCode.NO_SERVICE,
                f"{session.peer.label} answered, but not as a DICOMweb service "
                f"({response.headers.get('Content-Type') or 'no content type'})",
                "check the base path of the URL (e.g. /dicom-web)",
                ExitStatus.NO_CONTEXT,
            )
    return {
        "type": "echo",
        "peer": str(session.peer),
        "seq": seq,
        "rtt_ms": round(rtt, 3),
        "status": str(response.status_code),
        "status_meaning": "success",
        "server": response.headers.get("Server"),
        "ok": True,
    }
