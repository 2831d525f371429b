"""Peers for the Storage Commitment tests: Orthanc knowing our AE title, ``dcmtools listen``, test files."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import peers
import pydicom
from peers import PEER_ENV, require
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


@contextlib.contextmanager
def orthanc(tmp: Path, modalities: dict | None = None) -> Iterator[tuple[str, int]]:
    """Orthanc with its Storage Commitment SCP; ``modalities`` is its DicomModalities (who it reports to).

    Yields (PEER, HTTP port).  Orthanc answers the N-ACTION at once and sends
    the report later on a NEW association to the requester's DicomModalities entry.
    """
    config = {"DicomModalities": modalities or {}, "StorageCommitmentReportsSize": 100, "DicomScuTimeout": 10}
    with peers.orthanc(tmp, config) as server:
        yield server.peer, server.http


def me(port: int, aet: str = "DCMTOOLS") -> dict:
    """A DicomModalities entry for us, allowed to ask for Storage Commitment."""
    return peers.orthanc_modalities({"me": (aet, port)}, commitment=["me"])


def orthanc_instances(http: int) -> list[str]:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}/instances", timeout=5).read())


@contextlib.contextmanager
def listen(tmp: Path, *args: str, aet: str = "LISTEN") -> Iterator[tuple[str, Path, Path]]:
    """``dcmtools listen`` storing under a folder; yields (PEER, store folder, log of its stdout).

    Stopped by PID (SIGTERM to its process group) after the test.
    """
    with peers.listen(tmp, *args, aet=aet, store=None) as server:
        yield server.peer, server.store, server.log


def read_records(path_or_text: Path | str) -> list[dict]:
    return peers.records(path_or_text, log=True)


def instances(out_dir: Path, count: int, source: str = "CT_small.dcm") -> list[Path]:
    """``count`` copies of a pydicom test file, each with its own SOP Instance UID."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        ds = pydicom.dcmread(get_testdata_file(source))
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        path = out_dir / f"{Path(source).stem}-{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def storescu(peer: str, *paths: Path) -> None:
    """Send with DCMTK storescu (a real C-STORE SCU nobody here wrote)."""
    require("storescu")
    aet, _, where = peer.partition("@")
    host, _, port = where.rpartition(":")
    subprocess.run(
        ["storescu", "-aec", aet, host, port, *map(str, paths)],
        check=True,
        env=PEER_ENV,
        capture_output=True,
    )
