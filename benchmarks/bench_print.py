#!/usr/bin/env python3
"""Benchmark: printing CT images on films, dcmtools against DCMTK, to DCMTK's print SCP.

Builds 512x512 16-bit CT images (benchmarks/common.py), starts ``dcmprscp``
(the print SCP both sides print to, TCP_NODELAY=1), and in the same run times:

* DCMTK: ``dcmpsprt`` renders each film (one process per 16 images: it
  does not paginate; it applies the VOI and writes the Stored Print and
  Hardcopy Grayscale objects), then ``dcmprscu`` sends the films
  (one process, every Stored Print file) -- the C++ way to print;
* ``dcmtools print`` (one process: read, prepare, 12-bit P-values, send);
* ``dcmtools print --bits 8``;
* ``dcmtools print --dry-run`` (preparation and film previews, no network).

Each timed run prints to a fresh dcmprscp (its database index grows with
every film and slows it down); the runs of both sides are interleaved.

Layout 4,4 on 14INX17IN.  Prints files/s, MB/s of input and the ratio to
DCMTK (>1: dcmtools is faster).  Not a test: run it by hand,

    .venv/bin/python benchmarks/bench_print.py [--images 160 480]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DCMTOOLS, ENV, ct_series, require, row  # noqa: E402

CAPABILITIES = {
    "BorderDensity": "150\\20\\BLACK\\WHITE",
    "DisplayFormat": "1,1\\1,2\\2,2\\2,3\\3,3\\3,4\\3,5\\4,4\\4,5",
    "EmptyImageDensity": "20\\BLACK\\WHITE",
    "FilmDestination": "MAGAZINE\\PROCESSOR",
    "FilmSizeID": "8INX10IN\\10INX12IN\\11INX14IN\\14INX17IN",
    "MagnificationType": "REPLICATE\\BILINEAR\\CUBIC\\NONE",
    "MaxDensity": "320",
    "MinDensity": "20",
    "MaxPDU": "32768",
    "MediumType": "PAPER\\CLEAR FILM\\BLUE FILM",
    "PresentationLUTMatchRequired": "false",
    "PresentationLUTinFilmSession": "false",
    "Supports12Bit": "true",
    "SupportsPresentationLUT": "true",
    "ImplicitOnly": "false",
    "DisableNewVRs": "false",
}
BOXES = 16


def config(path: Path, root: Path, port: int, kind: str) -> None:
    """A dcmpstat config: LOCALPRINTER for dcmprscp (the printer), PRINTER for dcmpsprt/dcmprscu."""
    for folder in ("db", "spool"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    lines = [
        "[[GENERAL]]",
        "[PRINT]",
        "Spooler = /usr/bin/dcmprscu",
        "Server = /usr/bin/dcmprscp",
        f"Directory = {root / 'spool'}",
        "DeletePrintJobs = false",
        "AlwaysDeleteTerminateJobs = false",
        "[DATABASE]",
        f"Directory = {root / 'db'}",
        "[[COMMUNICATION]]",
        "[PRT]",
        "Aetitle = PRINTSCP",
        "Hostname = 127.0.0.1",
        f"Port = {port}",
        f"Type = {kind}",
    ]
    lines += [f"{k} = {v}" for k, v in CAPABILITIES.items()]
    path.write_text("\n".join(lines) + "\n")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({result.returncode}): {result.stderr.decode()[-400:]}")


class Printer:
    """A fresh dcmprscp (empty database) for each timed run: its index grows with every film,
    and a fuller database makes it slower, which would favour whichever side ran first."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.runs = 0

    def __enter__(self) -> Printer:
        self.runs += 1
        root = self.work / f"printer{self.runs}"
        config(root / "printer.cfg", root, self.port, "LOCALPRINTER")
        self.proc = subprocess.Popen(
            ["dcmprscp", "-c", str(root / "printer.cfg"), "-p", "PRT"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import socket

        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.work / f"printer{self.runs}", ignore_errors=True)


def best(printer: Printer, func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with printer:
            start = time.perf_counter()
            func()
            times.append(time.perf_counter() - start)
    return min(times)


def bench(files: list[Path], repeat: int, work: Path) -> None:
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    printer = Printer(work)
    client = work / "dcmtk"
    config(work / "client.cfg", client, printer.port, "PRINTER")
    peer = f"PRINTSCP@127.0.0.1:{printer.port}"

    def dcmtk() -> None:
        shutil.rmtree(client / "db")
        (client / "db").mkdir()
        for start in range(0, len(files), BOXES):
            run(
                [
                    "dcmpsprt",
                    "-c",
                    str(work / "client.cfg"),
                    "-p",
                    "PRT",
                    "-l",
                    "4",
                    "4",
                    "--filmsize",
                    "14INX17IN",
                    *map(str, files[start : start + BOXES]),
                ]
            )
        run(
            [
                "dcmprscu",
                "-c",
                str(work / "client.cfg"),
                "-p",
                "PRT",
                *map(str, sorted((client / "db").glob("SP_*.dcm"))),
            ]
        )

    common = ["print", peer, *map(str, files), "--layout", "4,4", "--film-size", "14INX17IN", "--json", "--quiet"]
    preview = work / "preview"
    results = {}
    for _ in range(repeat):  # interleaved, so that a busy moment does not hit one side only
        for name, func in (
            ("dcmtk", dcmtk),
            ("ours", lambda: run([*DCMTOOLS, *common])),
            ("ours8", lambda: run([*DCMTOOLS, *common, "--bits", "8"])),
            ("dry", lambda: run([*DCMTOOLS, *common, "--dry-run", "-o", str(preview), "--overwrite"])),
        ):
            seconds = best(printer, func, 1)
            results[name] = min(results.get(name, seconds), seconds)
    reference = results["dcmtk"]
    films = -(-len(files) // BOXES)
    print(f"\n{len(files)} CT images 512x512 16-bit ({megabytes:.0f} MB), {films} films of 4x4, best of {repeat}")
    print(row("DCMTK dcmpsprt (per film) + dcmprscu", len(files), reference, None, megabytes))
    print(row("dcmtools print (12-bit)", len(files), results["ours"], reference, megabytes))
    print(row("dcmtools print --bits 8", len(files), results["ours8"], reference, megabytes))
    print(row("dcmtools print --dry-run (no network)", len(files), results["dry"], reference, megabytes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[160, 480])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    require("dcmprscp", "dcmpsprt", "dcmprscu")
    for count in args.images:
        files = ct_series(count)
        with tempfile.TemporaryDirectory() as tmp:
            bench(files, args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
