#!/usr/bin/env python3
"""Past one machine: -j 2, --cluster on 2 local Dask workers, 2 shards side by side.

    python benchmarks/bench_scale.py --count 10000 [--rss 10000,100000]

Inputs: COUNT small files, hard links of 100 CT images (pydicom's CT_small.dcm,
128x128, 100 studies, so that 2 shards have work each), 1000 per folder.
Through `dump -t PatientID`, `anonymize --keep-names` and `transcode --to rle`:
files/s with -j 2, with --cluster (a real `dask scheduler` and 2 `dask worker`
processes of 1 thread, started here and stopped by PID), and as 2 shards
(--shard 0/2 and 1/2, -j 1 each) side by side.  Then: the driver's peak RSS
(sampled every 20 ms) at the --rss input counts, and the cost of --journal
(anonymize -j 2 with and without).  References from DCMTK in the same run:
`dcmdump +P PatientID` over all files in one process, `gdcmanon --dumb` over a
folder of 1000 files, `dcmcrle` one process per file (over 1000 files).  One run each (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, require, row

BIN = Path(sys.executable).parent


def tree(count: int) -> Path:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian

    root = OUT / f"scale{count}"
    done = root / ".complete"
    if done.exists():
        return root / "in"
    shutil.rmtree(root, ignore_errors=True)
    seeds = root / "seeds"
    seeds.mkdir(parents=True)
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for s in range(100):
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1019.9.{s}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1019.9.{s}.1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1019.9.{s}.1.1"
        ds.PatientID = f"P{s}"
        ds.save_as(seeds / f"{s:03d}.dcm", enforce_file_format=True)
    for n in range(count):
        folder = root / "in" / f"d{n // 1000:04d}"
        if n % 1000 == 0:
            folder.mkdir(parents=True)
        os.link(seeds / f"{n % 100:03d}.dcm", folder / f"f{n:07d}.dcm")
    done.touch()
    return root / "in"


def run(cmd: list[str], *, sample: bool = False) -> tuple[float, float]:
    """Wall time and, with ``sample``, the peak RSS (MB) of the process itself (not its workers)."""
    import psutil

    start = time.perf_counter()
    log = open(OUT / "scale-last.jsonl", "w")
    proc = subprocess.Popen([*cmd[:4], "--json", *cmd[4:]], stdout=log, stderr=subprocess.PIPE, env=ENV)
    peak = 0
    if sample:
        handle = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, handle.memory_info().rss)
            except psutil.Error:
                break
            time.sleep(0.02)
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    log.close()
    if proc.returncode != 0:
        failed = [line for line in open(OUT / "scale-last.jsonl") if '"ok":false' in line][:3]
        raise RuntimeError(f"{cmd[3:6]} failed ({proc.returncode}): {err.decode()[-800:]} {failed}")
    return elapsed, peak / 2**20


def side_by_side(cmds: list[list[str]]) -> float:
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV) for c in cmds]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(err.decode()[-800:])
    return time.perf_counter() - start


class Dask:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        self.procs = [
            subprocess.Popen(
                [
                    str(BIN / "dask"),
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--dashboard-address",
                    ":0",
                    "--no-show",
                ],
                **quiet,
            )
        ]
        for _n in range(2):
            self.procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        self.address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--dashboard-address",
                        ":0",
                        "--no-nanny",
                    ],
                    **quiet,
                )
            )
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--rss", default="10000,100000", help="input counts for the driver's peak RSS")
    args = parser.parse_args()
    require("dcmdump", "dcmcrle", "gdcmanon")
    n = args.count
    inputs = tree(n)
    work = OUT / "scale-work"
    load = os.getloadavg()
    print(
        f"{n} files (hard links of 100 CT_small 128x128), {len(os.sched_getaffinity(0))} cores, "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start\n"
    )

    commands = {
        "dump -t PatientID": lambda out: ["dump", "--json", "-q", "-t", "PatientID"],
        "anonymize": lambda out: ["anonymize", "-q", "--key", "bench", "--keep-names", "-o", str(out)],
        "transcode --to rle": lambda out: ["transcode", "-q", "--to", "rle", "-o", str(out)],
    }
    dask = Dask()
    try:
        for name, make in commands.items():
            if name.startswith("dump"):
                subprocess.run(["bash", "-c", f"find {inputs} -name '*.dcm' | sort > {OUT}/scale-list"])
                start = time.perf_counter()
                subprocess.run(
                    ["bash", "-c", f"xargs dcmdump -q +P PatientID < {OUT}/scale-list"],
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
                ref = time.perf_counter() - start
                print(row("dcmdump +P PatientID, one process (reference)", n, ref))
            elif name.startswith("transcode"):
                files = sorted(inputs.glob("d0000/*.dcm"))[:1000]
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                start = time.perf_counter()
                for i, f in enumerate(files):
                    subprocess.run(["dcmcrle", str(f), str(work / f"{i}.dcm")], check=True)
                ref = time.perf_counter() - start
                print(row("dcmcrle, one process per file (reference, 1000 files)", len(files), ref))
                ref = ref * n / len(files)
            else:
                # GDCM's anonymizer in its "dumb" mode (2 attributes emptied, far less than the PS3.15
                # profile), one process over a folder of 1000 files.
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir(parents=True)
                start = time.perf_counter()
                subprocess.run(
                    [
                        "gdcmanon",
                        "--dumb",
                        "--empty",
                        "10,10",
                        "--empty",
                        "10,20",
                        "-i",
                        str(inputs / "d0000"),
                        "-o",
                        str(work),
                        "--recursive",
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                ref = time.perf_counter() - start
                print(row("gdcmanon --dumb, one process (reference, 1000 files)", 1000, ref))
                ref = ref * n / 1000
            for label, extra in (("-j 2", ["-j", "2"]), ("--cluster (2 Dask workers)", ["--cluster", dask.address])):
                shutil.rmtree(work, ignore_errors=True)
                seconds, _ = run([*DCMTOOLS, *make(work), *extra, str(inputs)])
                print(row(f"dcmtools {name} {label}", n, seconds, ref))
            shutil.rmtree(work, ignore_errors=True)
            seconds = side_by_side(
                [[*DCMTOOLS, *make(work / str(k)), "-j", "1", "--shard", f"{k}/2", str(inputs)] for k in range(2)]
            )
            print(row(f"dcmtools {name} 2 shards side by side", n, seconds, ref))
            print()
        # The journal's cost: anonymize -j 2 with and without.
        shutil.rmtree(work, ignore_errors=True)
        plain, _ = run([*DCMTOOLS, *commands["anonymize"](work), "-j", "2", str(inputs)])
        shutil.rmtree(work, ignore_errors=True)
        journal = OUT / "scale.journal"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{journal}{suffix}").unlink(missing_ok=True)
        journaled, _ = run([*DCMTOOLS, *commands["anonymize"](work), "-j", "2", "--journal", str(journal), str(inputs)])
        print(row("anonymize -j 2", n, plain))
        print(row("anonymize -j 2 --journal", n, journaled))
        print(f"journal cost: {100 * (journaled - plain) / plain:+.1f}% of the run")
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
        from dcmtools.stream.batch import Batch

        with Batch("anonymize", journal=str(OUT / "scale-micro.journal")) as batch:
            start = time.perf_counter()
            for i in range(n):
                batch.done({"type": "file", "path": f"/archive/f{i:08d}.dcm", "out": f"/anon/f{i}.dcm", "ok": True})
            per_file = (time.perf_counter() - start) / n
        for suffix in ("", "-wal", "-shm"):
            Path(f"{OUT}/scale-micro.journal{suffix}").unlink(missing_ok=True)
        print(
            f"journal in the driver: {per_file * 1e6:.0f} us per file = {100 * per_file * n / plain:.1f}% of "
            f"anonymize -j 2\n"
        )
        # The driver's peak RSS, flat in the number of inputs.
        for count in [int(c) for c in args.rss.split(",")]:
            folder = tree(count)
            for label, extra in (("-j 2", ["-j", "2"]), ("--cluster", ["--cluster", dask.address])):
                seconds, peak = run(
                    [*DCMTOOLS, "dump", "--json", "-q", "-t", "PatientID", *extra, str(folder)], sample=True
                )
                print(
                    f"driver peak RSS, dump -t PatientID {label}, {count} inputs: {peak:6.1f} MB "
                    f"({count / seconds:.0f} files/s)"
                )
    finally:
        dask.stop()
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nload {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")


if __name__ == "__main__":
    main()
