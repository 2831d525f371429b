#!/usr/bin/env python3
"""Storage Commitment: `dcmtools commit` against Orthanc (C++) and against `dcmtools listen`.

    python benchmarks/bench_commit.py [--count 1000] [--batch 500] [--rounds 3]

Data (built once under benchmarks/out/): --count copies of pydicom's CT_small,
each with its own SOP Instance UID. Both archives receive them first (DCMTK
storescu, one association each). Then, best of --rounds:

* `dcmtools commit ORTHANC files/ --port P`: Orthanc answers each N-ACTION and
  reports later on a new association to our port (its Storage Commitment SCP
  looks every instance up in its SQLite index) — the C++ reference archive;
* `dcmtools commit LISTEN files/`: `dcmtools listen` looks the instances up in
  its store folder and reports on the same association;
* the same from `send` records on stdin (no file is opened: the UIDs are in
  the records).

Times are the whole `dcmtools commit` process (start-up included), so the
archive's share is the difference between rows. There is no C++ Storage
Commitment SCU to compare the requester with (DCMTK 3.6.7 has none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, require

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from peers import free_port, running  # noqa: E402  (the tests' peer runner: start, wait for the port, stop by PID)


def small_series(count: int) -> list[Path]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder = OUT / f"commit{count}"
    files = sorted(folder.glob("*.dcm"))
    if len(files) == count:
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"s{i:05d}.dcm", enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


def send_records(files: list[Path]) -> str:
    """What `dcmtools send` prints for these files (path and UIDs), to pipe into commit."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from dcmtools.dicom import reader

    lines = []
    for path in files:
        info = reader.read(path, stop_at=0x00080019, bulk_threshold=0)
        lines.append(
            json.dumps(
                {
                    "type": "file",
                    "path": str(path),
                    "sop_class_uid": info.sop_class_uid,
                    "sop_instance_uid": info.sop_instance_uid,
                    "status": "0x0000",
                    "ok": True,
                }
            )
        )
    return "\n".join(lines) + "\n"


def best(cmd: list[str], rounds: int, stdin_text: str | None = None) -> tuple[float, dict]:
    """Best wall time of ``rounds`` runs; checks that every instance was committed."""
    times, last = [], {}
    for _ in range(rounds):
        start = time.perf_counter()
        result = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True, env=ENV)
        times.append(time.perf_counter() - start)
        last = json.loads(result.stdout.strip().splitlines()[-1])
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[2:5])} failed ({result.returncode}): {result.stderr[-800:]}")
    return min(times), last


def row(name: str, count: int, seconds: float, reference: float | None = None) -> str:
    text = f"{name:<58} {seconds:7.3f} s {count / seconds:9.0f} instances/s"
    if reference is not None:
        text += f"   time x{seconds / reference:.2f} of Orthanc's"
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require("Orthanc", "storescu")
    files = small_series(args.count)
    folder = str(files[0].parent)
    n = len(files)
    work = Path(tempfile.mkdtemp(prefix="bench-commit-"))
    try:
        oport, http, lport, myport = free_port(), free_port(), free_port(), free_port()
        config = {
            "Name": "bench",
            "StorageDirectory": str(work / "orthanc"),
            "IndexDirectory": str(work / "orthanc"),
            "Plugins": [],
            "HttpPort": http,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAet": "ORTHANC",
            "DicomPort": oport,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomCheckModalityHost": False,
            "SaveJobs": False,
            "DicomScuTimeout": 10,
            "DicomModalities": {
                "me": {"AET": "DCMTOOLS", "Host": "127.0.0.1", "Port": myport, "AllowStorageCommitment": True}
            },
        }
        (work / "orthanc.json").write_text(json.dumps(config))
        listen_cmd = [
            *DCMTOOLS,
            "listen",
            "--port",
            str(lport),
            "--aet",
            "LISTEN",
            "--store-dir",
            str(work / "store"),
            "--quiet",
            "--json",
        ]
        with (
            running(["Orthanc", str(work / "orthanc.json")], oport, log=work / "orthanc.log"),
            running(listen_cmd, lport, log=work / "listen.jsonl", env=ENV),
        ):
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{http}/system", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            for aet, port in (("ORTHANC", oport), ("LISTEN", lport)):
                subprocess.run(
                    ["storescu", "-aec", aet, "127.0.0.1", str(port), "+sd", folder],
                    check=True,
                    env=ENV,
                    capture_output=True,
                )
            records = send_records(files)
            cores = len(os.sched_getaffinity(0))
            print(
                f"{n} instances (CT_small copies), --batch {args.batch} ({-(-n // args.batch)} transactions), "
                f"{cores} cores, best of {args.rounds}\n"
            )
            orthanc, summary = best(
                [
                    *DCMTOOLS,
                    "commit",
                    f"ORTHANC@127.0.0.1:{oport}",
                    folder,
                    "--port",
                    str(myport),
                    "--batch",
                    str(args.batch),
                    "--wait",
                    "120",
                ],
                args.rounds,
            )
            assert summary["committed"] == n, summary
            print(row("commit -> Orthanc, report on a new association (reference)", n, orthanc))
            listen, summary = best(
                [*DCMTOOLS, "commit", f"LISTEN@127.0.0.1:{lport}", folder, "--batch", str(args.batch), "--wait", "120"],
                args.rounds,
            )
            assert summary["committed"] == n, summary
            print(row("commit -> dcmtools listen, report on the same association", n, listen, orthanc))
            piped, summary = best(
                [*DCMTOOLS, "commit", f"LISTEN@127.0.0.1:{lport}", "-", "--batch", str(args.batch), "--wait", "120"],
                args.rounds,
                records,
            )
            assert summary["committed"] == n, summary
            print(row("commit -> dcmtools listen, UIDs from records on stdin", n, piped, orthanc))
            start = time.perf_counter()
            subprocess.run([*DCMTOOLS, "--help"], capture_output=True, env=ENV)
            print(f"\n(`dcmtools --help` alone: {time.perf_counter() - start:.3f} s of Python start-up)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
