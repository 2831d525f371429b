"""Real peers for the network tests: DCMTK storescp, Orthanc, and file helpers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import peers
import pydicom
from peers import PEER_ENV
from pydicom.uid import generate_uid


@contextlib.contextmanager
def storescp(out_dir: Path, *args: str, aet: str = "STORESCP") -> Iterator[str]:
    """DCMTK storescp (default config: uncompressed only) writing into ``out_dir``; yields the PEER."""
    with peers.storescp(out_dir, *args, aet=aet) as port:
        yield f"{aet}@127.0.0.1:{port}"


@contextlib.contextmanager
def orthanc(tmp: Path, check_called_aet: bool = False) -> Iterator[tuple[str, int]]:
    """Orthanc with its DICOM port; yields (PEER, HTTP port)."""
    with peers.orthanc(tmp, {"DicomCheckCalledAet": check_called_aet}) as server:
        yield server.peer, server.http


def orthanc_get(http: int, path: str):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}{path}", timeout=5).read())


def dataset_bytes(path: Path) -> bytes:
    """The bytes after the File Meta Information group."""
    data = Path(path).read_bytes()
    assert data[128:132] == b"DICM"
    meta_length = int.from_bytes(data[140:144], "little")
    return data[144 + meta_length :]


def copies(source: Path, out_dir: Path, count: int) -> list[Path]:
    """``count`` copies of a file, each with its own SOP Instance UID."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        ds = pydicom.dcmread(source)
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        path = out_dir / f"copy{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def dcmtk_reads(path: Path) -> bool:
    """DCMTK reads the file without complaint and finds its SOP Instance UID as a UI element."""
    result = subprocess.run(
        ["dcmdump", "-q", "+P", "0008,0018", str(path)], capture_output=True, text=True, env=PEER_ENV
    )
    return result.returncode == 0 and not result.stderr.strip() and "(0008,0018) UI" in result.stdout


def without_trailing_padding(data: bytes) -> bytes:
    """Dataset bytes without a final Data Set Trailing Padding element (storescu drops it)."""
    pos = data.rfind(b"\xfc\xff\xfc\xff")
    if (
        pos > 0
        and data[pos + 4 : pos + 8] == b"OB\x00\x00"
        and pos + 12 + int.from_bytes(data[pos + 8 : pos + 12], "little") == len(data)
    ):
        return data[:pos]
    if pos > 0 and pos + 8 + int.from_bytes(data[pos + 4 : pos + 8], "little") == len(data):
        return data[:pos]  # implicit VR
    return data


records = peers.records


def env_without_config(tmp: Path) -> dict:
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src"),
    }
    env.pop("DCMTOOLS_PEERS", None)
    return env
