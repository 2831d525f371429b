"""Where a migration reads from and writes to: a PACS (a peer), a folder, or (as a destination) a
DICOMweb service (a base URL, or a peers-file entry with ``url``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus


@dataclass
class Endpoint:
    """A PACS (``peer``), a folder (``folder``) or a DICOMweb service (``web``, a ``web.WebPeer``);
    ``text`` is what the user wrote."""

    text: str
    peer: Any = None
    folder: str | None = None
    web: Any = None

    @property
    def is_folder(self) -> bool:
        return self.folder is not None

    @property
    def is_web(self) -> bool:
        return self.web is not None

    def __str__(self) -> str:
        if self.web is not None:
            return str(self.web)
        return str(self.peer) if self.peer is not None else f"folder:{self.folder}"


def parse_endpoint(
    text: str, peers_file: str | None = None, options: Any = None, *, must_exist: bool = False
) -> Endpoint:
    """``AET@HOST:PORT`` or a peers-file name: a PACS; a path (an existing folder, or one with a
    slash): a folder; a URL (http://, https://) or a peers-file entry with ``url``: a DICOMweb
    service (its authentication from the peers file or the environment, as for send).
    ``must_exist`` for a source folder."""
    from ..net import parse_peer
    from ..web.session import is_web_peer

    if is_web_peer(text, peers_file):
        from ..web import parse_web_peer

        return Endpoint(text, web=parse_web_peer(text, peers_file))

    looks_like_path = os.sep in text or text.startswith(".") or os.path.isdir(text)
    if "@" not in text and looks_like_path:
        folder = os.path.abspath(text)
        if must_exist and not os.path.isdir(folder):
            raise DcmtoolsError(
                ErrorCode.NOT_FOUND,
                f"no folder {text!r} to migrate from",
                "give an existing folder, or a PACS as AET@HOST:PORT",
                ExitStatus.USAGE,
            )
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{text!r} is a file, not a folder", None, ExitStatus.USAGE)
        return Endpoint(text, folder=folder)
    peer = parse_peer(text, peers_file)
    if options is not None and peer.tls is None and getattr(options, "tls", None) is not None:
        peer = peer.with_tls(options.tls)
    return Endpoint(text, peer=peer)


# Tags by keyword (net.keys.T does not hold every one we ask for).
TAGS = {
    "StudyInstanceUID": 0x0020000D,
    "SOPClassUID": 0x00080016,
    "SeriesInstanceUID": 0x0020000E,
    "SOPInstanceUID": 0x00080018,
    "PatientID": 0x00100020,
    "StudyDate": 0x00080020,
    "AccessionNumber": 0x00080050,
    "ModalitiesInStudy": 0x00080061,
    "NumberOfStudyRelatedSeries": 0x00201206,
    "NumberOfStudyRelatedInstances": 0x00201208,
}


def tag_key(name: str) -> str:
    """The JSON-model key of a tag (8 hex digits)."""
    return f"{TAGS[name]:08X}"
