#!/usr/bin/env python3
"""render vs DCMTK dcmj2pnm: 500 CT images of 512x512, 16 bits, to 8-bit PNG.

    python benchmarks/bench_render.py [--count 500] [--jobs 0] [--repeat 1]

The images are the synthetic CT slices of bench_transcode (built once under
benchmarks/out). Both tools apply the same window (40,400) and write 8-bit
greyscale PNG:

* DCMTK dcmj2pnm +on +Ww 40 400, one process per file, as it is used in a
  shell loop; and the same spread over all cores with xargs -P;
* dcmtools render --window 40,400 -o DIR, one process, with --jobs.

Printed: seconds, files/s, and how many times faster dcmtools is than each
way of running dcmj2pnm, with the load average of the machine. A few of the
outputs are compared (within 1 grey level) so a wrong image cannot win.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from bench_transcode import ct_phantom_series
from common import DCMTOOLS, OUT, require, row, timed

DCMJ2PNM = "/usr/bin/dcmj2pnm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=0, help="dcmtools --jobs (0 = all cores)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    require(DCMJ2PNM)
    files = ct_phantom_series(args.count)
    cores = len(os.sched_getaffinity(0))
    work = OUT / "render"
    shutil.rmtree(work, ignore_errors=True)
    (work / "dcmtk").mkdir(parents=True)
    (work / "dcmtk_p").mkdir(parents=True)
    print(f"{len(files)} CT 512x512 -> 8-bit PNG, window 40,400; {cores} cores; load {os.getloadavg()[0]:.2f}")

    loop = f'for f in "$@"; do {DCMJ2PNM} +on +Ww 40 400 "$f" "{work}/dcmtk/$(basename "$f" .dcm).png" || exit 1; done'
    dcmtk = timed(["bash", "-c", loop, "loop", *map(str, files)], repeat=args.repeat)
    print(row("dcmj2pnm, one process per file", len(files), dcmtk))
    par = (
        f'printf "%s\\0" "$@" | xargs -0 -P {cores} -I{{}} sh -c '
        f'\'{DCMJ2PNM} +on +Ww 40 400 "$1" "{work}/dcmtk_p/$(basename "$1" .dcm).png"\' _ {{}}'
    )
    dcmtk_p = timed(["bash", "-c", par, "par", *map(str, files)], repeat=args.repeat)
    print(row(f"dcmj2pnm, one process per file, xargs -P {cores}", len(files), dcmtk_p))

    def ours() -> float:
        shutil.rmtree(work / "ours", ignore_errors=True)
        return timed(
            [
                *DCMTOOLS,
                "render",
                str(files[0].parent),
                "-o",
                str(work / "ours"),
                "--window",
                "40,400",
                "--jobs",
                str(args.jobs),
                "--json",
                "--quiet",
            ],
            repeat=1,
        )

    seconds = min(ours() for _ in range(args.repeat))
    print(row(f"dcmtools render, one process, --jobs {args.jobs or cores}", len(files), seconds))
    print(
        f"dcmtools render: x{dcmtk / seconds:.2f} vs dcmj2pnm per file, x{dcmtk_p / seconds:.2f} vs dcmj2pnm "
        f"with xargs -P {cores}; load after: {os.getloadavg()[0]:.2f}"
    )

    import numpy as np
    from PIL import Image

    for f in files[:: max(1, len(files) // 5)]:
        name = f.with_suffix(".png").name
        a = np.asarray(Image.open(work / "dcmtk" / name)).astype(int)
        b = np.asarray(Image.open(work / "ours" / name)).astype(int)
        if a.shape != b.shape or np.abs(a - b).max() > 1:
            sys.exit(f"{name}: the images differ (max {np.abs(a - b).max()})")
    print("checked: the outputs agree within 1 grey level")


if __name__ == "__main__":
    main()
