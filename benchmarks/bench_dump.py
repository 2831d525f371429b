#!/usr/bin/env python3
"""dump vs DCMTK: 500 CT images of 512x512 (built here), JSON Lines and text.

    python benchmarks/bench_dump.py [--count 500]

JSON: `dcmtools dump --json` in one process vs `dcm2json` one process per file
(how dcm2json is used on many files). Text: `dcmtools dump --no-json` with
--jobs on all cores vs one `dcmdump` process over all files. Prints files/s and
ratios (above 1: dcmtools is faster). Best of 3 runs each.
"""

from __future__ import annotations

import argparse
import os

from common import DCMTOOLS, ct_series, require, row, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    require("dcm2json", "dcmdump")
    files = ct_series(args.count)
    folder = str(files[0].parent)
    n = len(files)
    cores = len(os.sched_getaffinity(0))
    print(f"{n} CT images 512x512, {cores} cores\n")

    script = "for f in " + folder + '/*.dcm; do dcm2json "$f"; done'
    dcm2json = timed(["bash", "-c", script], repeat=1)
    print(row("dcm2json, one process per file (reference)", n, dcm2json))
    ours1 = timed([*DCMTOOLS, "dump", "--json", "-q", folder])
    print(row("dcmtools dump --json, one process", n, ours1, dcm2json))
    oursj = timed([*DCMTOOLS, "dump", "--json", "-q", "-j", "0", folder])
    print(row(f"dcmtools dump --json -j 0 ({cores} workers)", n, oursj, dcm2json))
    print()
    dcmdump = timed(["bash", "-c", f"dcmdump {folder}/*.dcm"])
    print(row("dcmdump, one process over all files (reference)", n, dcmdump))
    text1 = timed([*DCMTOOLS, "dump", "--no-json", "-q", folder])
    print(row("dcmtools dump (text), one process", n, text1, dcmdump))
    textj = timed([*DCMTOOLS, "dump", "--no-json", "-q", "-j", "0", folder])
    print(row(f"dcmtools dump (text) -j 0 ({cores} workers)", n, textj, dcmdump))
    print(
        f"\nJSON Lines: {dcm2json / ours1:.1f}x dcm2json's files/s in one process, "
        f"{dcm2json / oursj:.1f}x with -j 0 (target 5x)."
        f"\nText: {dcmdump / textj:.2f}x dcmdump's speed with -j 0 (target: at least 1.0x)."
    )


if __name__ == "__main__":
    main()
