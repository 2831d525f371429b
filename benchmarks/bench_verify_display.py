#!/usr/bin/env python3
"""Benchmark: the GSDF calibration table, dcmtools against DCMTK's dcmdspfn.

Builds measurement files (DCMTK .lut monitor files), then in the same run:

* dcmdspfn +Im FILE +Og OUT, one process per file (the C++ peer);
* dcmtools' library: read + calibration_lut + write CSV, all files in one process;
* dcmtools verify-display FILE --lut OUT, one process per file (a shell loop);
* dcmtools verify-display FILES... (the TG18 check only), all files in one process.

Three kinds of file: 8-bit full (256 readings), TG18 (18 readings of an 8-bit
display: 238 levels spline-filled), 12-bit sparse (33 readings, 4096 levels).
Prints files/s and the ratio to dcmdspfn.  Not a test: run it by hand,

    .venv/bin/python benchmarks/bench_verify_display.py [--files N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from dcmtools.display.gsdf import calibration_lut, read_measurements, write_lut  # noqa: E402


def build(folder: Path, kind: str, count: int) -> list[Path]:
    rng = random.Random(kind)
    files = []
    for n in range(count):
        gamma = rng.uniform(1.8, 2.6)
        lmin, lmax = rng.uniform(0.3, 1.2), rng.uniform(150, 600)
        if kind == "full-8bit":
            top, ddls = 255, range(256)
        elif kind == "tg18-8bit":
            top, ddls = 255, range(0, 256, 15)
        else:
            top, ddls = 4095, sorted({0, 4095, *(round(4095 * (k / 32) ** 1.5) for k in range(33))})
        lines = [f"max {top}", f"amb {rng.uniform(0.05, 0.4):.3f}"]
        # A gamma curve with photometer noise, kept rising (as a display's readings are).
        values = sorted((lmin + (lmax - lmin) * (d / top) ** gamma) * (1 + rng.uniform(-0.002, 0.002)) for d in ddls)
        lines += [f"{d} {v:.6f}" for d, v in zip(ddls, values, strict=False)]
        path = folder / f"{kind}-{n:04d}.lut"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    return files


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40, help="files of each kind (default 40)")
    args = parser.parse_args()
    if shutil.which("dcmdspfn") is None:
        sys.exit("dcmdspfn (DCMTK) is not installed: apt-get install dcmtk")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    cli = [sys.executable, "-m", "dcmtools", "verify-display"]
    with tempfile.TemporaryDirectory(prefix="bench-gsdf-") as tmp:
        root = Path(tmp)
        print(f"{'kind':<14}{'tool':<44}{'files/s':>10}{'vs dcmdspfn':>13}")
        for kind in ("full-8bit", "tg18-8bit", "sparse-12bit"):
            folder = root / kind
            folder.mkdir()
            files = build(folder, kind, args.files)
            out = root / f"out-{kind}"
            out.mkdir()

            # Defaults bind this iteration's files and folder (each function runs within it).
            def peer(files: list[Path] = files, out: Path = out) -> None:
                for f in files:
                    subprocess.run(["dcmdspfn", "+Im", str(f), "+Og", str(out / (f.stem + ".txt"))], check=True)

            def library(files: list[Path] = files, out: Path = out) -> None:
                for f in files:
                    write_lut(calibration_lut(read_measurements(str(f))), str(out / (f.stem + ".csv")), overwrite=True)

            def cli_loop(files: list[Path] = files, out: Path = out) -> None:
                for f in files:
                    subprocess.run(
                        [*cli, str(f), "--lut", str(out / (f.stem + ".cli.csv")), "--overwrite"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        check=False,
                    )

            def cli_batch(files: list[Path] = files) -> None:
                subprocess.run([*cli, *map(str, files)], env=env, stdout=subprocess.DEVNULL, check=False)

            base = len(files) / timed(peer)
            rows = [
                ("dcmdspfn +Im F +Og OUT (process per file)", base),
                ("dcmtools library: LUT, one process", len(files) / timed(library)),
                ("dcmtools verify-display F --lut (per file)", len(files) / timed(cli_loop)),
                ("dcmtools verify-display F... (TG18 check)", len(files) / timed(cli_batch)),
            ]
            for name, rate in rows:
                print(f"{kind:<14}{name:<44}{rate:>10.1f}{rate / base:>12.2f}x")
            # Same tables as the peer's, or the figures mean nothing.
            sample = files[0]
            theirs = [
                line.split("\t")[3]
                for line in (out / (sample.stem + ".txt")).read_text().splitlines()
                if line[:1].isdigit()
            ]
            ours = [row.split(",")[3] for row in (out / (sample.stem + ".csv")).read_text().splitlines()[1:]]
            assert ours == theirs, f"{sample.name}: our LUT differs from dcmdspfn's"


if __name__ == "__main__":
    main()
