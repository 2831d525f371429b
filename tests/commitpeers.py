"""Peers for the Storage Commitment tests: Orthanc knowing our AE title, ``dcmtools listen``, test files."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from peers import REPO, free_port, require, running


@contextlib.contextmanager
def orthanc(tmp: Path, modalities: dict | None = None) -> Iterator[tuple[str, int]]:
    """Orthanc with its Storage Commitment SCP; ``modalities`` is its DicomModalities (who it reports to).

    Yields (PEER, HTTP port).  Orthanc answers the N-ACTION at once and sends
    the report later on a NEW association to the requester's DicomModalities entry.
    """
    require("Orthanc")
    port, http = free_port(), free_port()
    storage = tmp / f"orthanc-{port}"
    storage.mkdir(parents=True)
    config = {
        "Name": "test", "StorageDirectory": str(storage), "IndexDirectory": str(storage), "Plugins": [],
        "HttpPort": http, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomAet": "ORTHANC", "DicomPort": port, "DicomCheckCalledAet": False,
        "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomCheckModalityHost": False,
        "DicomModalities": modalities or {}, "StorageCommitmentReportsSize": 100,
        "DicomScuTimeout": 10, "SaveJobs": False,
    }
    path = tmp / f"orthanc-{port}.json"
    path.write_text(json.dumps(config))
    with running(["Orthanc", str(path)], port, log=tmp / f"orthanc-{port}.log"):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http}/system", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield f"ORTHANC@127.0.0.1:{port}", http


def me(port: int, aet: str = "DCMTOOLS") -> dict:
    """A DicomModalities entry for us, allowed to ask for Storage Commitment."""
    return {"me": {"AET": aet, "Host": "127.0.0.1", "Port": port, "AllowStorageCommitment": True}}


def orthanc_instances(http: int) -> list[str]:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}/instances", timeout=5).read())


@contextlib.contextmanager
def listen(tmp: Path, *args: str, aet: str = "LISTEN") -> Iterator[tuple[str, Path, Path]]:
    """``dcmtools listen`` storing under a folder; yields (PEER, store folder, log of its stdout).

    Stopped by PID (SIGTERM to its process group) after the test.
    """
    port = free_port()
    store = tmp / f"store-{port}"
    log = tmp / f"listen-{port}.jsonl"
    cmd = [sys.executable, "-m", "dcmtools", "listen", "--port", str(port), "--aet", aet, "--store-dir", str(store),
           "--json", *args]
    if not any(arg.startswith("--allow") for arg in args):
        cmd.append("--allow-any")  # commitment requesters of several AE titles (the default is tested in test_listen_server)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with running(cmd, port, log=log, env=env):
        yield f"{aet}@127.0.0.1:{port}", store, log


def read_records(path_or_text: Path | str) -> list[dict]:
    text = path_or_text.read_text() if isinstance(path_or_text, Path) else path_or_text
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


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
    subprocess.run(["storescu", "-aec", aet, host, port, *map(str, paths)], check=True,
                   env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True)

