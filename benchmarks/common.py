"""Shared by the benchmarks: test data, timing, the dcmtools command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out"
# The dcmtools measured: this checkout's, or another tree's src/ (DCMTOOLS_BENCH_SRC=/path/to/old/src, to
# compare before and after a change in the same conditions).
SRC = Path(os.environ.get("DCMTOOLS_BENCH_SRC") or REPO / "src")
# /usr/bin first, here and for every process started: the venv's pynetdicom apps carry DCMTK's names
# (storescu, findscu ...), and a benchmark against DCMTK must run DCMTK's (see shared/peers.md).
os.environ["PATH"] = os.pathsep.join(["/usr/bin", os.environ.get("PATH", "")])
ENV = {**os.environ, "PYTHONPATH": str(SRC), "TCP_NODELAY": "1"}
DCMTOOLS = [sys.executable, "-m", "dcmtools"]


def ct_series(count: int = 500, size: int = 512, folder: Path | None = None) -> list[Path]:
    """``count`` CT images of size x size, 16-bit, explicit VR little endian (built once, cached)."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = folder or OUT / f"ct{count}x{size}"
    files = sorted(folder.glob("*.dcm"))
    if len(files) == count:
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = size
    rng = np.random.default_rng(0)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    for i in range(count):
        ds.PixelData = rng.integers(0, 2000, (size, size)).astype(np.int16).tobytes()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        ds.save_as(folder / f"ct{i:04d}.dcm", enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


def timed(cmd, *, repeat: int = 3, stdin=None, env=None, check=True) -> float:
    """Best wall time of ``repeat`` runs of a command (output discarded)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=stdin, env=env or ENV)
        elapsed = time.perf_counter() - start
        if check and result.returncode not in (0,):
            raise RuntimeError(f"{cmd[:4]} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
        best = min(best, elapsed)
    return best


def row(name: str, files: int, seconds: float, reference: float | None = None, megabytes: float | None = None) -> str:
    text = f"{name:<52} {seconds:8.3f} s {files / seconds:9.1f} files/s"
    if megabytes is not None:
        text += f" {megabytes / seconds:8.1f} MB/s"
    if reference is not None:
        text += f"   x{reference / seconds:.2f} vs reference"
    return text


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"needs {', '.join(missing)} (apt-get install dcmtk libgdcm-tools)")
