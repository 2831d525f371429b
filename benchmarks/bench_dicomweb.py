#!/usr/bin/env python3
"""send to a DICOMweb peer: STOW-RS, many instances per request, vs one request per instance vs C-STORE.

    python benchmarks/bench_dicomweb.py [--rounds 2] [--batch 50] [--no-small]

Data (built once under benchmarks/out/): 500 CT images 512x512 16-bit (265 MB),
and 1000 small images (pydicom's CT_small, 39 kB each, own UIDs), where the cost
per request weighs more than the server's cost of storing the bytes.
Peer: Orthanc with its DICOMweb plugin on 127.0.0.1, a fresh one (empty storage,
in /dev/shm unless --storage DIR) for every run, started by tests/qrpeers.py's
launcher and stopped by PID.

Runs, each sending the same 500 files to the same kind of Orthanc:
  stow       `dcmtools send URL folder --batch N` (the whole process, start-up included)
  stow-lib   dcmtools.web.stow() in a Python process whose imports are done
  per-file   dicomweb-client's store_instances called once per file, in one Python
             process whose imports are done (the clock starts after them)
  c-store    `dcmtools send ORTHANC@127.0.0.1:PORT folder` (DIMSE, the whole process)
  storescu   DCMTK storescu to the same Orthanc (the C++ DIMSE reference)

Runs alternate and the best of --rounds is kept for each. Ratios are files/s
against the per-file run; the target is stow >= 3x per-file.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DCMTOOLS, ENV, REPO, ct_series

sys.path.insert(0, str(REPO / "tests"))

IN_PROCESS_STOW = r"""
import sys, time
import requests, pydicom  # noqa: F401  (imports paid before the clock starts, as for the per-file run)
from dcmtools.web import WebSession, parse_web_peer, stow
start = time.perf_counter()
with WebSession(parse_web_peer(sys.argv[1])) as session:
    records = list(stow(session, [sys.argv[2]], batch=int(sys.argv[3])))
elapsed = time.perf_counter() - start
assert records and all(r["ok"] for r in records), [r for r in records if not r["ok"]][:1]
print(elapsed)
"""

PER_FILE = r"""
import sys, time
from pathlib import Path
import pydicom
from dicomweb_client.api import DICOMwebClient
files = sorted(Path(sys.argv[2]).glob("*.dcm"))
client = DICOMwebClient(sys.argv[1])
start = time.perf_counter()
for f in files:
    answer = client.store_instances([pydicom.dcmread(f)])
    assert len(answer.get("ReferencedSOPSequence", [])) == 1 and not answer.get("FailedSOPSequence"), answer
print(time.perf_counter() - start)
"""


def run_timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, env=ENV, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:5]} failed ({result.returncode}): {result.stderr[-600:]}")
    return elapsed, result.stdout


def count(http: int) -> int:
    import json
    import urllib.request

    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http}/statistics", timeout=30).read())[
        "CountInstances"
    ]


def one(kind: str, folder: Path, files: int, batch: int, tmp: Path) -> float:
    from qrpeers import orthanc

    with orthanc(tmp, {}, dicomweb=True) as peer:
        url = peer.extra["url"]
        if kind == "stow":
            seconds, _ = run_timed([*DCMTOOLS, "send", url, str(folder), "--batch", str(batch), "--json", "--quiet"])
        elif kind == "stow-lib":
            _, out = run_timed([sys.executable, "-c", IN_PROCESS_STOW, url, str(folder), str(batch)])
            seconds = float(out.strip())
        elif kind == "per-file":
            _, out = run_timed([sys.executable, "-c", PER_FILE, url, str(folder)])
            seconds = float(out.strip())
        elif kind == "c-store":
            seconds, _ = run_timed([*DCMTOOLS, "send", peer.peer, str(folder), "--json", "--quiet"])
        else:
            seconds, _ = run_timed(
                ["/usr/bin/storescu", "-aec", "ORTHANC", "127.0.0.1", str(peer.port), "+sd", str(folder)]
            )
        stored = count(peer.extra["http"])
        assert stored == files, f"{kind}: Orthanc holds {stored} of {files}"
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # 265 MB per run
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--no-small", action="store_true", help="only the 500 CT 512x512")
    parser.add_argument(
        "--storage",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where Orthanc stores (default /dev/shm: a disk's fsyncs would hide the client's cost)",
    )
    args = parser.parse_args()
    measure("CT 512x512", ct_series(args.count), args)
    if not args.no_small:
        from bench_send import small_series

        measure("CT_small 39 kB", small_series(1000), args)


def measure(name: str, files: list[Path], args) -> None:
    folder = files[0].parent
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    kinds = ["stow", "stow-lib", "per-file", "c-store", "storescu"]
    best = {k: float("inf") for k in kinds}
    print(f"\n{len(files)} {name} ({megabytes:.0f} MB) to Orthanc, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-dicomweb-", dir=args.storage) as tmp:
        for round_ in range(args.rounds):
            for kind in kinds:
                seconds = one(kind, folder, len(files), args.batch, Path(tmp) / f"{kind}-{round_}")
                best[kind] = min(best[kind], seconds)
                print(f"  round {round_ + 1} {kind:<9} {seconds:7.2f} s", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    reference = best["per-file"]
    for kind, label in (
        ("stow", f"STOW-RS dcmtools send URL --batch {args.batch}"),
        ("stow-lib", "STOW-RS dcmtools.web.stow, in process"),
        ("per-file", "dicomweb-client store_instances per file"),
        ("c-store", "C-STORE dcmtools send AET@HOST:PORT"),
        ("storescu", "C-STORE DCMTK storescu"),
    ):
        seconds = best[kind]
        print(
            f"{label:<46} {seconds:7.2f} s {len(files) / seconds:8.1f} files/s {megabytes / seconds:7.1f} MB/s"
            f"   x{reference / seconds:.2f} vs per-file"
        )


if __name__ == "__main__":
    main()
