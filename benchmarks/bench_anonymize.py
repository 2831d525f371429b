#!/usr/bin/env python3
"""Benchmark: `dcmtools anonymize` against GDCM's gdcmanon and dicognito.

    .venv/bin/python benchmarks/bench_anonymize.py [--files 500] [--keep]

Builds N CT images of 512x512 (16-bit, explicit VR little endian, 5 patients,
PHI in the places a real CT has it plus nested sequences and private tags)
under benchmarks/out/, then anonymizes the same folder with:

* dcmtools anonymize --jobs 1, and --jobs on all cores;
* gdcmanon basic mode (PS3.15 E.1 with its encrypted attributes, using a
  throw-away self-signed certificate made with openssl), and gdcmanon --dumb
  emptying/removing the patient identifiers (libgdcm-tools);
* dicognito (pip install dicognito: a benchmark-only tool, not a dependency
  of dcmtools; skipped with a message when it is not installed).

Each tool runs as a user would run it, from the command line, start-up
included, once (and once more to warm the page cache before the first).
Prints files/s and the ratios.  Timings on a shared machine vary: compare the
ratios of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"


def build(folder: Path, count: int) -> None:
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    marker = folder / f".built-{count}"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rng = np.random.default_rng(7)
    pixels = rng.integers(-1000, 2000, size=(512, 512), dtype=np.int16)
    patients = 5
    per_patient = (count + patients - 1) // patients
    n = 0
    for p in range(patients):
        study, series, frame = generate_uid(), generate_uid(), generate_uid()
        pdir = folder / f"patient{p}" / "study1" / "series1"
        pdir.mkdir(parents=True)
        for i in range(per_patient):
            if n >= count:
                break
            ds = template.copy()
            ds.file_meta = template.file_meta.copy()
            sop = generate_uid()
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.PatientName = f"DOE{p}^JOHN"
            ds.PatientID = f"PID{p:05d}"
            ds.PatientBirthDate = "19700101"
            ds.AccessionNumber = f"ACC{p:06d}"
            ds.ReferringPhysicianName = "WHO^DOCTOR"
            ds.OtherPatientIDs = f"MRN{p}"
            ds.InstanceNumber = i + 1
            ds.Rows = ds.Columns = 512
            ref = Dataset()
            ref.ReferencedSOPClassUID = ds.SOPClassUID
            ref.ReferencedSOPInstanceUID = generate_uid()
            ds.ReferencedImageSequence = Sequence([ref])
            block = ds.private_block(0x0009, "BENCH PRIVATE", create=True)
            block.add_new(0x01, "LO", f"DOE{p} JOHN")
            ds.PixelData = pixels.tobytes()
            ds["PixelData"].VR = "OW"
            ds.save_as(pdir / f"IM{i:04d}.dcm", enforce_file_format=True)
            n += 1
    marker.touch()


def timed(cmd: list[str], out: Path, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def main() -> int:
    parser = argparse.ArgumentParser(description="anonymize: dcmtools vs gdcmanon vs dicognito")
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the outputs under benchmarks/out")
    args = parser.parse_args()

    data = OUT / "anon-input"
    print(f"building {args.files} CT 512x512 files in {data} ...", file=sys.stderr)
    build(data, args.files)
    files = count_files(data)
    size_mb = sum(p.stat().st_size for p in data.rglob("*.dcm")) / 1e6
    cores = len(os.sched_getaffinity(0))
    python = sys.executable
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    results: dict[str, float] = {}

    def run(name: str, cmd: list[str], out: Path, env: dict | None = None, expect: int | None = None) -> None:
        seconds, proc = timed(cmd, out, env)
        written = count_files(out) if out.exists() else 0
        if proc.returncode != 0 or (expect is not None and written < expect):
            print(f"{name}: FAILED (exit {proc.returncode}, {written} files written)\n{proc.stderr[-2000:]}", file=sys.stderr)
            return
        results[name] = files / seconds
        print(f"{name:<34} {seconds:7.2f} s  {files / seconds:8.1f} files/s  {size_mb / seconds:7.1f} MB/s")

    print(f"{files} files, {size_mb:.0f} MB, {cores} cores (shared machine: figures vary run to run)")
    ours = [python, "-m", "dcmtools", "anonymize", str(data), "--key", "bench", "--overwrite", "-q", "--json"]
    subprocess.run(ours + ["-o", str(OUT / "warm"), "--jobs", "1"], capture_output=True, env=env)  # page cache
    run("dcmtools anonymize --jobs 1", ours + ["-o", str(OUT / "ours1"), "--jobs", "1"], OUT / "ours1", env, files)
    run(f"dcmtools anonymize --jobs {cores}", ours + ["-o", str(OUT / "oursN"), "--jobs", str(cores)], OUT / "oursN", env, files)

    if shutil.which("gdcmanon"):
        certdir = OUT / "cert"
        certdir.mkdir(parents=True, exist_ok=True)
        key, cert = certdir / "key.pem", certdir / "cert.pem"
        if not cert.exists() and shutil.which("openssl"):
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-days", "2", "-subj", "/CN=bench"],
                capture_output=True, check=True,
            )  # fmt: skip
        if cert.exists():
            run("gdcmanon (basic profile)", ["gdcmanon", "-c", str(cert), "-r", "-i", str(data), "-o", str(OUT / "gdcm")],
                OUT / "gdcm", expect=files)  # fmt: skip
        else:
            print("gdcmanon basic mode: skipped (openssl not found to make a certificate)")
        dumb = ["gdcmanon", "--dumb", "-r", "--empty", "10,10", "--empty", "10,20", "--remove", "10,30",
                "--empty", "8,50", "--empty", "8,90", "--remove", "10,1000", "-i", str(data), "-o", str(OUT / "gdcmdumb")]  # fmt: skip
        run("gdcmanon --dumb (5 tags)", dumb, OUT / "gdcmdumb", expect=files)
    else:
        print("gdcmanon: skipped (install libgdcm-tools)")

    try:
        import dicognito  # noqa: F401

        have_dicognito = True
    except ImportError:
        have_dicognito = False
    if have_dicognito:
        run("dicognito", [python, "-m", "dicognito", "-q", "--seed", "bench", "--assume-burned-in-annotation", "never",
                          "-o", str(OUT / "dicognito"), str(data)], OUT / "dicognito", expect=files)  # fmt: skip
    else:
        print("dicognito: skipped (not installed; it is a benchmark-only tool: .venv/bin/pip install dicognito)")

    print()
    one = results.get("dcmtools anonymize --jobs 1")
    many = results.get(f"dcmtools anonymize --jobs {cores}")
    for name, rate in results.items():
        if name.startswith("dcmtools"):
            continue
        if one:
            print(f"dcmtools --jobs 1 / {name}: {one / rate:.2f}x")
        if many:
            print(f"dcmtools --jobs {cores} / {name}: {many / rate:.2f}x")
    if not args.keep:
        for name in ("warm", "ours1", "oursN", "gdcm", "gdcmdumb", "dicognito"):
            shutil.rmtree(OUT / name, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
