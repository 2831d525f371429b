#!/usr/bin/env python3
"""anonymize vs GDCM gdcmanon and dicognito: 500 CT images of 512x512 (built here).

    python benchmarks/bench_anonymize.py [--count 500]

Each tool de-identifies the same folder from its command line, start-up
included; the output folder is removed before each run (not timed). Best of
3 runs each. dcmtools runs with --jobs 1 and with --jobs on all cores.
gdcmanon runs its basic profile (PS3.15 E.1 with encrypted attributes, using
a throw-away self-signed certificate made with openssl) and --dumb (emptying
and removing a few patient attributes). dicognito is a benchmark-only tool,
not a dependency of dcmtools: `.venv/bin/pip install dicognito`; without it
that row is skipped with a message. Ratios above 1: dcmtools is faster.
The machine may be shared: compare the ratios of one run, not seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, ct_series, row


def best_of(cmd: list[str], out: Path, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
        best = min(best, elapsed)
    shutil.rmtree(out, ignore_errors=True)
    return best


def certificate() -> Path | None:
    folder = OUT / "anon-cert"
    cert = folder / "cert.pem"
    if not cert.exists() and shutil.which("openssl"):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / "key.pem"),
             "-out", str(cert), "-days", "2", "-subj", "/CN=dcmtools-bench"],
            capture_output=True, check=True,
        )  # fmt: skip
    return cert if cert.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    files = ct_series(args.count)
    folder = files[0].parent
    n = len(files)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    cores = len(os.sched_getaffinity(0))
    out = OUT / "anon-out"
    print(f"{n} CT images 512x512 ({megabytes:.0f} MB), {cores} cores\n")

    ours = [*DCMTOOLS, "anonymize", "--key", "bench", "-q", "--json", "-o", str(out), str(folder)]
    ours1 = best_of([*ours, "--jobs", "1"], out)
    oursj = best_of([*ours, "--jobs", str(cores)], out)
    print(row("dcmtools anonymize --jobs 1", n, ours1, megabytes=megabytes))
    print(row(f"dcmtools anonymize --jobs {cores}", n, oursj, megabytes=megabytes))

    references: list[tuple[str, float]] = []
    if shutil.which("gdcmanon"):
        cert = certificate()
        if cert is not None:
            seconds = best_of(["gdcmanon", "-c", str(cert), "-r", "-i", str(folder), "-o", str(out)], out)
            references.append(("gdcmanon (basic profile)", seconds))
        else:
            print("gdcmanon basic profile: skipped (no openssl to make its certificate)")
        dumb = ["gdcmanon", "--dumb", "-r", "--empty", "10,10", "--empty", "10,20", "--remove", "10,30",
                "--empty", "8,50", "--empty", "8,90", "--remove", "10,1000", "-i", str(folder), "-o", str(out)]  # fmt: skip
        references.append(("gdcmanon --dumb (6 attributes)", best_of(dumb, out)))
    else:
        print("gdcmanon: skipped (apt-get install libgdcm-tools)")
    if importlib.util.find_spec("dicognito") is not None:
        cmd = [sys.executable, "-m", "dicognito", "-q", "--seed", "bench", "--assume-burned-in-annotation", "never",
               "-o", str(out), str(folder)]  # fmt: skip
        references.append(("dicognito", best_of(cmd, out)))
    else:
        print("dicognito: skipped (not installed; benchmark only: .venv/bin/pip install dicognito)")
    for name, seconds in references:
        print(row(name, n, seconds, megabytes=megabytes))
    print()
    for name, seconds in references:
        print(f"dcmtools --jobs 1 vs {name}: x{seconds / ours1:.2f}   --jobs {cores}: x{seconds / oursj:.2f}")


if __name__ == "__main__":
    main()
