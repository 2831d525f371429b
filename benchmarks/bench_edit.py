#!/usr/bin/env python3
"""edit vs DCMTK dcmodify: 1,000 CT images of 512x512 (built here), the same edits.

    python benchmarks/bench_edit.py [--count 1000]

The edits: replace Patient's Name, insert Institution Name, create a
sequence with an item (Referenced Study Sequence[0]), erase Patient's Birth
Date. dcmodify runs as
one process over all the files (`-nb`, in place); dcmtools edit runs in
place (`--in-place --no-backup`, same work: read, change, write each file)
with --jobs 1 (one process, the target: at least dcmodify's rate) and on
all cores, and into an output folder (-o). A fresh copy of the images is
made before every run (not timed). Best of 3. Ratios above 1: dcmtools is
faster. The machine may be shared: compare the ratios of one run, not
seconds; the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, ct_series, require, row

EDITS = [
    ("PatientName=EDITED^NAME", "PatientName=EDITED^NAME"),
    ("InstitutionName=North Clinic", "InstitutionName=North Clinic"),
    ("ReferencedStudySequence[0].ReferencedSOPClassUID=1.2.840.10008.3.1.2.3.1",) * 2,
]
ERASE = "PatientBirthDate"


def fresh(files: list[Path], folder: Path) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    copies = []
    for f in files:
        shutil.copyfile(f, folder / f.name)
        copies.append(folder / f.name)
    return copies


def best_of(files: list[Path], make_cmd, repeat: int = 3) -> float:
    best = float("inf")
    work = OUT / "edit-work"
    out = OUT / "edit-out"
    for _ in range(repeat):
        copies = fresh(files, work)
        shutil.rmtree(out, ignore_errors=True)
        cmd = make_cmd(work, copies, out)
        start = time.perf_counter()
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
        best = min(best, elapsed)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return best


def main() -> None:
    require("/usr/bin/dcmodify")
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    files = ct_series(args.count)
    n = len(files)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    cores = len(os.sched_getaffinity(0))
    print(f"{n} CT images 512x512 ({megabytes:.0f} MB), {cores} cores, load average {os.getloadavg()[0]:.2f}\n")

    ours_edits = [x for pair in EDITS for x in ("--set", pair[0])] + ["--erase", ERASE]
    theirs_edits = [x for pair in EDITS for x in ("-i", pair[1])] + ["-e", ERASE]
    dcmodify = best_of(files, lambda work, copies, out: ["/usr/bin/dcmodify", "-nb", *theirs_edits, *map(str, copies)])
    base = [*DCMTOOLS, "edit", *ours_edits, "-q", "--json"]
    in_place1 = best_of(files, lambda work, copies, out: [*base, "--in-place", "--no-backup", "--jobs", "1", str(work)])
    in_placej = best_of(
        files, lambda work, copies, out: [*base, "--in-place", "--no-backup", "--jobs", str(cores), str(work)]
    )
    to_folder = best_of(files, lambda work, copies, out: [*base, "-o", str(out), "--jobs", "1", str(work)])
    print(row("dcmodify -nb (one process, in place)", n, dcmodify, megabytes=megabytes))
    print(row("dcmtools edit --in-place --jobs 1", n, in_place1, dcmodify, megabytes=megabytes))
    print(row(f"dcmtools edit --in-place --jobs {cores}", n, in_placej, dcmodify, megabytes=megabytes))
    print(row("dcmtools edit -o DIR --jobs 1", n, to_folder, dcmodify, megabytes=megabytes))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
