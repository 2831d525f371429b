#!/usr/bin/env python3
"""transcode vs DCMTK and GDCM: 500 CT images of 512x512, 16 bits (built here).

    python benchmarks/bench_transcode.py [--count 500] [--jobs 0] [--repeat 1]

The images are synthetic CT slices (a body outline, soft tissue, organs, bone,
air, and noise; 16 bits allocated, 12 stored, unsigned with a rescale of
-1024, as many CT scanners write them), so their compression ratios are those
of real CT rather than of random noise.  From Explicit VR Little Endian they
are compressed to JPEG-LS lossless, RLE and JPEG 2000 lossless, and those
files are decompressed back to Explicit VR Little Endian, by:

* dcmtools transcode, one process, with --jobs on all cores (verification of
  every lossless output on, as by default; also shown with --no-verify);
* DCMTK dcmcjpls, dcmcrle, dcmdjpls, dcmdrle (DCMTK has no JPEG 2000 codec),
  one process per file as they are used, and also spread on all cores with
  xargs -P;
* GDCM gdcmconv --jpegls / --rle / --j2k / --raw, the same two ways.

Decompression runs over the same input files for every tool (the ones
dcmtools wrote).  Printed: seconds, MB/s of pixel data (uncompressed size /
time), the compression ratio of the files written (input bytes / output
bytes), and how many times faster dcmtools (all cores, verifying) is than each
peer.  A few outputs of every tool are decoded with pydicom and compared with
the source pixels, so a lossy or broken output cannot win.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, require


def ct_phantom_series(count: int, size: int = 512) -> list[Path]:
    """``count`` synthetic CT slices (built once, cached under benchmarks/out)."""
    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = OUT / f"ct_phantom{count}x{size}"
    files = sorted(folder.glob("*.dcm"))
    if len(files) == count:
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    template.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    template.Rows = template.Columns = size
    template.BitsAllocated, template.BitsStored, template.HighBit = 16, 12, 11
    template.PixelRepresentation = 0
    template.RescaleIntercept, template.RescaleSlope = -1024, 1
    template.StudyInstanceUID, template.SeriesInstanceUID = generate_uid(), generate_uid()
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    rng = np.random.default_rng(0)
    for i in range(count):
        z = i / max(1, count - 1)
        hu = np.full((size, size), -1000.0, dtype=np.float32)  # air
        body = (x / (0.42 - 0.04 * z)) ** 2 + (y / (0.32 - 0.03 * z)) ** 2 < 1
        hu[body] = -80  # fat
        inner = (x / (0.36 - 0.04 * z)) ** 2 + (y / (0.26 - 0.03 * z)) ** 2 < 1
        hu[inner] = 40  # soft tissue
        for cx, cy, r, value in ((-0.15, 0.0, 0.09, -850), (0.15, 0.0, 0.09, -850), (0.05, 0.08, 0.07, 60)):
            hu[(x - cx) ** 2 + (y - cy - 0.05 * z) ** 2 < r * r] = value  # lungs, an organ
        spine = (x / 0.05) ** 2 + ((y - 0.2) / 0.045) ** 2 < 1
        hu[spine] = 700 + 300 * rng.random()
        ribs = inner & ~((x / (0.34 - 0.04 * z)) ** 2 + (y / (0.24 - 0.03 * z)) ** 2 < 1)
        hu[ribs & (np.sin(np.arctan2(y, x) * 9) > 0.6)] = 900  # bone
        hu += rng.normal(0, 12, hu.shape).astype(np.float32) * (hu > -950)  # noise inside the body
        stored = np.clip(np.rint(hu + 1024), 0, 4095).astype(np.uint16)
        template.PixelData = stored.tobytes()
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        template.InstanceNumber = i + 1
        template.SliceLocation = template.ImagePositionPatient[2] = float(i)
        template.save_as(folder / f"ct{i:04d}.dcm", enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_timed(cmd: list[str] | str, out: Path, repeat: int) -> float:
    """Best wall time of ``repeat`` runs, each into an empty ``out``."""
    best = float("inf")
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        start = time.perf_counter()
        result = subprocess.run(
            cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV
        )
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(
                f"{cmd if isinstance(cmd, str) else ' '.join(cmd[:5])} failed: {result.stderr.decode()[-800:]}"
            )
        best = min(best, elapsed)
    return best


def per_file(tool: str, source: Path, out: Path, jobs: int = 1) -> str:
    """A shell command running ``tool IN OUT`` once per file, ``jobs`` at a time."""
    if jobs <= 1:
        return f'for f in "{source}"/*.dcm; do {tool} "$f" "{out}/$(basename "$f")" || exit 1; done'
    return f'cd "{source}" && ls *.dcm | xargs -P {jobs} -I{{}} sh -c \'{tool} "$1" "{out}/$1"\' _ {{}}'


def check_lossless(source: Path, out: Path, syntax_uid: str | None, sample: int = 3) -> None:
    """A few outputs decode to the source pixels (and carry the expected syntax)."""
    import warnings

    import numpy as np
    import pydicom

    written = sorted(out.rglob("*.dcm"))
    sources = sorted(source.glob("*.dcm"))
    if len(written) != len(sources):
        raise RuntimeError(f"{out}: {len(written)} files written for {len(sources)} inputs")
    step = max(1, len(sources) // sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for src in sources[::step][:sample]:
            a = pydicom.dcmread(src)
            b = pydicom.dcmread(out / src.name)
            if syntax_uid and b.file_meta.TransferSyntaxUID != syntax_uid:
                raise RuntimeError(f"{out / src.name} is {b.file_meta.TransferSyntaxUID}, not {syntax_uid}")
            if not np.array_equal(a.pixel_array, b.pixel_array):
                raise RuntimeError(f"{out / src.name} does not decode to the source pixels")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=0, help="dcmtools --jobs and xargs -P (0 = all cores)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs")
    args = parser.parse_args()
    require("dcmcjpls", "dcmcrle", "dcmdjpls", "dcmdrle", "gdcmconv")
    cores = len(os.sched_getaffinity(0))
    jobs = args.jobs or cores
    files = ct_phantom_series(args.count)
    source = files[0].parent
    n = len(files)
    pixel_mb = n * 512 * 512 * 2 / 1e6
    work = OUT / "transcode"
    load = os.getloadavg()[0]
    print(
        f"{n} CT images 512x512, 16 bits allocated (12 stored), {pixel_mb:.1f} MB of pixels; "
        f"{cores} cores, load average {load:.2f} before the run\n"
    )
    header = f"{'':58} {'seconds':>8} {'MB/s':>8} {'ratio':>6} {'dcmtools x':>11}"

    syntaxes = [
        ("JPEG-LS lossless", "jpeg-ls", "1.2.840.10008.1.2.4.80", "dcmcjpls", "dcmdjpls", "--jpegls"),
        ("RLE lossless", "rle", "1.2.840.10008.1.2.5", "dcmcrle", "dcmdrle", "--rle"),
        ("JPEG 2000 lossless", "j2k", "1.2.840.10008.1.2.4.90", None, None, "--j2k"),
    ]
    summary = []
    for title, name, uid, dcmtk_enc, dcmtk_dec, gdcm_flag in syntaxes:
        for direction in ("compress", "decompress"):
            if direction == "compress":
                src = source
                label = f"Explicit VR Little Endian -> {title}"
                target, target_uid = name, uid
                dcmtk = dcmtk_enc
                gdcm = f"gdcmconv {gdcm_flag}"
            else:
                src = work / f"ours_{name}"
                label = f"{title} -> Explicit VR Little Endian (same input files for all)"
                target, target_uid = "explicit", "1.2.840.10008.1.2.1"
                dcmtk = dcmtk_dec
                gdcm = "gdcmconv --raw"
            in_bytes = folder_bytes(src)
            print(label)
            print(header)
            results: list[tuple[str, float, float]] = []

            # Defaults bind this iteration's values (the function is only called within it).
            def measure(
                tool_label: str,
                cmd,
                out: Path,
                check_uid: str | None,
                in_bytes: int = in_bytes,
                direction: str = direction,
                results: list[tuple[str, float, float]] = results,
            ) -> float:
                seconds = run_timed(cmd, out, args.repeat)
                check_lossless(source, out, check_uid)
                ratio = in_bytes / folder_bytes(out) if direction == "compress" else float("nan")
                results.append((tool_label, seconds, ratio))
                return seconds

            ours_out = work / f"ours_{name}" if direction == "compress" else work / f"ours_{name}_explicit"
            ours = measure(
                f"dcmtools transcode --jobs {jobs} (verifying)",
                [*DCMTOOLS, "transcode", str(src), "--to", target, "-o", str(ours_out), "-q", "--jobs", str(jobs)],
                ours_out,
                target_uid,
            )
            measure(
                f"dcmtools transcode --jobs {jobs} --no-verify",
                [
                    *DCMTOOLS,
                    "transcode",
                    str(src),
                    "--to",
                    target,
                    "-o",
                    str(work / "tmp_nv"),
                    "-q",
                    "--jobs",
                    str(jobs),
                    "--no-verify",
                ],
                work / "tmp_nv",
                target_uid,
            )
            measure(
                "dcmtools transcode --jobs 1 (verifying)",
                [*DCMTOOLS, "transcode", str(src), "--to", target, "-o", str(work / "tmp_1"), "-q", "--jobs", "1"],
                work / "tmp_1",
                target_uid,
            )
            if dcmtk:
                measure(
                    f"{dcmtk}, one process per file", per_file(dcmtk, src, work / "dcmtk"), work / "dcmtk", target_uid
                )
                measure(
                    f"{dcmtk}, one process per file, xargs -P {jobs}",
                    per_file(dcmtk, src, work / "dcmtk", jobs),
                    work / "dcmtk",
                    target_uid,
                )
            measure(f"{gdcm}, one process per file", per_file(gdcm, src, work / "gdcm"), work / "gdcm", target_uid)
            measure(
                f"{gdcm}, one process per file, xargs -P {jobs}",
                per_file(gdcm, src, work / "gdcm", jobs),
                work / "gdcm",
                target_uid,
            )
            for tool_label, seconds, ratio in results:
                shown = f"{ratio:6.2f}" if ratio == ratio else f"{'-':>6}"
                print(f"  {tool_label:56} {seconds:8.2f} {pixel_mb / seconds:8.1f} {shown} {seconds / ours:10.2f}x")
            peers = [(t, s) for t, s, _ in results if not t.startswith("dcmtools")]
            slowest_margin = min(s / ours for _, s in peers)
            summary.append((label, pixel_mb / ours, slowest_margin))
            print()
    print("dcmtools (all cores, verifying) against the fastest peer run of each row:")
    for label, speed, margin in summary:
        verdict = "faster" if margin > 1 else "SLOWER"
        print(f"  {label:70} {speed:7.1f} MB/s  {margin:5.2f}x  {verdict}")
    shutil.rmtree(work / "tmp_nv", ignore_errors=True)
    shutil.rmtree(work / "tmp_1", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
