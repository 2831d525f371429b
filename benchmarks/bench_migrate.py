#!/usr/bin/env python3
"""dcmtools migrate vs the script a user writes today; and the journal at 10^4 and 10^6 entries.

    python benchmarks/bench_migrate.py [--count 2000] [--studies 100] [--rounds 1] [--journal-sizes 10000,1000000]

PACS to PACS on loopback: --count CT images 512x512 16-bit (0.5 MB each,
built once under benchmarks/out/) in --studies studies, stored by DCMTK
storescu into a DCMTK dcmqrscp (the source), moved to a second dcmqrscp
(the destination, emptied before every run):

  script    findscu for the study list (-X: one answer file per study, its
            UID read back), then one `movescu -aem DEST` per study: what
            people write today
  migrate   `dcmtools migrate SRC DEST --journal J` (inventory, straight
            C-MOVE per study, then verification of every study by C-FIND
            on both sides: work the script does not do)

(No run with --associations 2 here: two dcmqrscp children storing at once
name files alike and overwrite one another, a dcmqrscp limit.)

The synthetic journal: N studies written by the library as an inventory
does (plan units of 1000 studies), then `dcmtools migrate --journal J
--status` (a new process, as a user runs it), then the resume scan (the
studies left to transfer, half of them, iterated as a run does), each in its
own process with its peak memory (ru_maxrss).

Ratios: time(dcmtools) / time(script).  The machine's load average is
printed before and after (2 cores shared with other engineers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, REPO, require

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_qr import Server, free_port  # noqa: E402


def archive(count: int, studies: int) -> list[Path]:
    """``count`` CT images 512x512 in ``studies`` studies (built once, cached)."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian

    folder = OUT / f"migrate-{count}x{studies}"
    files = sorted(folder.glob("*.dcm"))
    if len(files) == count:
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = 512
    rng = np.random.default_rng(0)
    root = "1.2.826.0.1.3680043.10.1420.77."
    pixels = [rng.integers(0, 2000, (512, 512)).astype(np.int16).tobytes() for _ in range(8)]
    for i in range(count):
        study = i % studies
        ds.PatientID = f"P{study % 37:03d}"
        ds.StudyInstanceUID = f"{root}1.{study}"
        ds.StudyDate = f"2023{1 + study % 12:02d}{1 + study % 28:02d}"
        ds.AccessionNumber = f"B{study:05d}"
        ds.SeriesInstanceUID = f"{root}2.{study}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{root}3.{i}"
        ds.InstanceNumber = i // studies + 1
        ds.PixelData = pixels[i % 8]
        ds.save_as(folder / f"ct{i:05d}.dcm", enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


def dcmqrscp(work: Path, name: str, hosts: dict[str, tuple[str, int]], port: int | None = None) -> tuple[Server, int]:
    """A dcmqrscp with an empty database (on ``port``, or a free one)."""
    port = port or free_port()
    db = work / name
    shutil.rmtree(db, ignore_errors=True)
    (db / "DB").mkdir(parents=True)
    table = "\n".join(f"{n} = ({aet}, 127.0.0.1, {p})" for n, (aet, p) in hosts.items())
    (db / "cfg").write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        f"HostTable BEGIN\n{table}\nHostTable END\n"
        f"AETable BEGIN\n{name} {db / 'DB'} RW (10000, 4096mb) ANY\nAETable END\n"
    )
    return Server(["/usr/bin/dcmqrscp", "-c", str(db / "cfg")], port, db / "log"), port


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} failed ({result.returncode}): {result.stderr[-800:]}")
    return result


def user_script(src_port: int, dest_aet: str, work: Path) -> tuple[float, int]:
    """findscu for the study list, then one movescu per study (what people script today)."""
    out = work / "findscu"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    start = time.perf_counter()
    run(
        [
            "/usr/bin/findscu",
            "-S",
            "-X",
            "-od",
            str(out),
            "-aec",
            "SRC",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID",
            "127.0.0.1",
            str(src_port),
        ]
    )
    from dcmtools.dicom import reader

    uids = [reader.read(p).dataset.text(0x0020000D) for p in sorted(out.glob("rsp*.dcm"))]
    for uid in uids:
        run(
            [
                "/usr/bin/movescu",
                "-S",
                "-aec",
                "SRC",
                "-aem",
                dest_aet,
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={uid}",
                "127.0.0.1",
                str(src_port),
            ]
        )
    return time.perf_counter() - start, len(uids)


def migrate(src_port: int, dest_port: int, work: Path, associations: int) -> tuple[float, dict]:
    journal = work / f"bench-{time.time_ns()}.journal"
    start = time.perf_counter()
    result = run(
        [
            *DCMTOOLS,
            "migrate",
            f"SRC@127.0.0.1:{src_port}",
            f"DEST@127.0.0.1:{dest_port}",
            "--journal",
            str(journal),
            "--associations",
            str(associations),
        ],
        check=False,
    )
    elapsed = time.perf_counter() - start
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed ({result.returncode}): {result.stderr[-800:]} {summary}")
    return elapsed, summary


def count_files(folder: Path) -> int:
    return sum(
        1 for p in folder.rglob("*") if p.is_file() and p.name not in ("index.dat",) and not p.name.startswith(".")
    )


# ------------------------------------------------------------- the journal at scale
JOURNAL_PHASE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from dcmtools.stream.journal import Journal
phase, path, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
start = time.perf_counter()
if phase == "inventory":
    with Journal(path, kind="migrate") as j:
        j.set_meta(source="SRC@127.0.0.1:1", dest="DEST@127.0.0.1:2")
        root = "1.2.826.0.1.3680043.10.1420.88."
        for unit in range(0, n, 1000):
            j.plan_done(f"window-{unit}", ((f"{root}{k}", {"patient": f"P{k % 9973}", "date": "20230101",
                                             "modalities": ["CT"], "series": 2, "instances": 40})
                                           for k in range(unit, min(unit + 1000, n))))
        # half of them done, as in the middle of a migration
        with j.transaction():
            j._db.execute("UPDATE items SET state = 'verified' WHERE seq % 2 = 0")
elif phase == "resume":
    with Journal(path, kind="migrate") as j:
        left = sum(1 for _ in j.items(states=("planned", "retrieved", "failed"), max_attempts=3))
        assert left == n // 2, left
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def journal_phase(phase: str, path: Path, n: int) -> dict:
    result = run([sys.executable, "-c", JOURNAL_PHASE, str(REPO / "src"), phase, str(path), str(n)])
    return json.loads(result.stdout)


def status_phase(path: Path) -> dict:
    """`dcmtools migrate --journal J --status` as a user runs it: wall time and peak memory of the process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    result = run([*DCMTOOLS, "migrate", "--journal", str(path), "--status"])
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    record = json.loads(result.stdout.splitlines()[0])
    in_process = run(
        [
            sys.executable,
            "-c",
            "import sys,time; sys.path.insert(0, sys.argv[1]);"
            "from dcmtools.migrate import status; t=time.perf_counter(); status(sys.argv[2]);"
            "print(time.perf_counter()-t)",
            str(REPO / "src"),
            str(path),
        ]
    )
    return {
        "seconds": elapsed,
        "library_seconds": float(in_process.stdout),
        "peak_mb": max(peak, before) / 1024,
        "studies": record["studies"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--journal-sizes", default="10000,1000000")
    parser.add_argument("--skip-pacs", action="store_true")
    args = parser.parse_args()
    require("dcmqrscp", "storescu", "findscu", "movescu")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (cores: {os.cpu_count()})")
    work = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        if not args.skip_pacs:
            pacs(args, work)
        for n in (int(x) for x in args.journal_sizes.split(",")):
            path = work / f"synthetic-{n}.journal"
            inventory = journal_phase("inventory", path, n)
            status = status_phase(path)
            resume = journal_phase("resume", path, n)
            print(
                f"journal {n:>9,} studies ({path.stat().st_size / 1e6:6.1f} MB): "
                f"inventory {inventory['seconds']:6.2f} s (peak {inventory['peak_mb']:5.0f} MB), "
                f"--status {status['seconds']:5.2f} s as a command, {status['library_seconds']:5.2f} s in the library "
                f"(peak {status['peak_mb']:4.0f} MB), resume scan of {n // 2:,} {resume['seconds']:5.2f} s "
                f"(peak {resume['peak_mb']:4.0f} MB)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end:   {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def pacs(args: argparse.Namespace, work: Path) -> None:
    files = archive(args.count, args.studies)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    print(f"{len(files)} CT 512x512 in {args.studies} studies, {megabytes:.0f} MB; dcmqrscp -> dcmqrscp, loopback")
    me_port = free_port()
    source_server = None
    dest_server, dest_port = dcmqrscp(work, "DEST", {})
    try:
        source_server, src_port = dcmqrscp(work, "SRC", {"dest": ("DEST", dest_port), "me": ("DCMTOOLS", me_port)})
        start = time.perf_counter()
        run(["/usr/bin/storescu", "-aec", "SRC", "127.0.0.1", str(src_port), *map(str, files)])
        print(f"  (source filled by storescu in {time.perf_counter() - start:.1f} s)")
        results: dict[str, list[float]] = {"script": [], "migrate": []}
        for _ in range(args.rounds):
            for name in results:
                dest_server.stop()  # an empty destination on the same port for each run
                dest_server, _ = dcmqrscp(work, "DEST", {}, dest_port)
                if name == "script":
                    seconds, studies = user_script(src_port, "DEST", work)
                    assert studies == args.studies, studies
                else:
                    seconds, summary = migrate(src_port, dest_port, work, 1)
                    assert summary["states"] == {"verified": args.studies}, summary
                arrived = count_files(work / "DEST" / "DB")
                assert arrived == len(files), f"{name}: {arrived} of {len(files)} at the destination"
                results[name].append(seconds)
        script = min(results["script"])
        print(
            f"  {'script: findscu + one movescu per study':<46} {script:7.2f} s {len(files) / script:7.0f} inst/s "
            f"{megabytes / script:6.0f} MB/s"
        )
        for name, label in (("migrate", "dcmtools migrate"),):
            best = min(results[name])
            print(
                f"  {label:<46} {best:7.2f} s {len(files) / best:7.0f} inst/s {megabytes / best:6.0f} MB/s"
                f"   time x{best / script:.2f} of the script's (with verification)"
            )
    finally:
        dest_server.stop()
        if source_server is not None:
            source_server.stop()


if __name__ == "__main__":
    main()
