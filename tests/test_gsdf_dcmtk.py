"""Agreement with DCMTK: dcmdspfn (GSDF LUT, JND range) and dconvlum (VeriLUM files).

dcmdspfn +Im FILE +Og OUT writes the JND index range in its header and, per
driving level, CC (measured + ambient), GSDF (the target) and PSC (the
measured luminance of the DDL the calibration LUT chooses).  We compare:
JND range within 1e-4 (relative), targets within 1e-6 (relative), and the
LUT entries equal (the DDL we choose has exactly the luminance dcmdspfn
prints for its choice).
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from peers import require

from dcmtools.display.gsdf import Measurements, calibration_lut, gsdf_luminance, jnd_index, read_measurements

pytestmark = pytest.mark.peer

SAMPLE = Path("/usr/share/dcmtk/monitor.lut")
SAMPLE_SPARSE = Path("/usr/share/dcmtk/camera.lut")  # 16 readings, max 4095: spline-filled


def dcmdspfn(*args: str, tmp: Path) -> dict:
    """Run dcmdspfn +Og and parse its output file."""
    require("dcmdspfn")
    out = tmp / f"dspfn-{len(list(tmp.iterdir()))}.txt"
    proc = subprocess.run(["dcmdspfn", *args, "+Og", str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result: dict = {"rows": []}
    for line in out.read_text().splitlines():
        if line.startswith("# Barten JND index range"):
            low, high = line.split(":", 1)[1].split("(")[0].split(" - ")
            result["jnd"] = (float(low), float(high))
        elif line.startswith("# Ambient light"):
            result["ambient"] = float(line.split(":", 1)[1])
        elif line[:1].isdigit():
            result["rows"].append(line.split("\t"))
    return result


def write_lut_file(path: Path, pairs, max_ddl: int, ambient: float | None = None, order: int | None = None) -> Path:
    lines = ["# built by the dcmtools tests", f"max {max_ddl}"]
    if ambient is not None:
        lines.append(f"amb {ambient}")
    if order is not None:
        lines.append(f"ord {order}")
    lines += [f"{d} {v:.6f}" for d, v in pairs]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_agrees(ours_path: Path, theirs: dict, *, ambient: float | None = None, fmt: str | None = None) -> None:
    meas = read_measurements(str(ours_path), format=fmt)
    lut = calibration_lut(meas, ambient=ambient)
    # JND range
    assert lut.jnd_min == pytest.approx(theirs["jnd"][0], rel=1e-4)
    assert lut.jnd_max == pytest.approx(theirs["jnd"][1], rel=1e-4)
    rows = theirs["rows"]
    assert len(rows) == len(lut.ddl)
    cc = [row[1] for row in rows]
    for p, (ddl_text, cc_text, gsdf_text, psc_text) in enumerate(rows):
        assert int(ddl_text) == p
        # The measured curve (spline-filled where not measured), printed to 6 decimals.
        assert f"{lut.measured[p]:.6f}" == cc_text, f"CC at DDL {p}"
        # Target luminance: 1e-6 relative (dcmdspfn prints 6 decimals; all L' >= 0.5 here).
        assert lut.target[p] == pytest.approx(float(gsdf_text), rel=1e-6), f"GSDF at P-value {p}"
        # LUT entry: the DDL we choose has the luminance dcmdspfn prints for its choice...
        assert f"{lut.expected[p]:.6f}" == psc_text, f"PSC at P-value {p}"
        # ... and where that luminance is unique, it is the same DDL.
        if cc.count(psc_text) == 1:
            assert lut.ddl[p] == cc.index(psc_text), f"LUT entry of P-value {p}"


def test_sample_monitor_file(tmp_path):
    assert_agrees(SAMPLE, dcmdspfn("+Im", str(SAMPLE), tmp=tmp_path))


def test_sample_monitor_file_with_another_ambient(tmp_path):
    assert_agrees(SAMPLE, dcmdspfn("+Im", str(SAMPLE), "+Ca", "0.35", tmp=tmp_path), ambient=0.35)


def test_sparse_readings_filled_by_cubic_spline(tmp_path):
    # 16 readings of a 12-bit device: 4096 P-values, 4080 of them interpolated.
    assert_agrees(SAMPLE_SPARSE, dcmdspfn("+Im", str(SAMPLE_SPARSE), "+Ca", "0.5", tmp=tmp_path), ambient=0.5)


def tg18_readings(gamma: float, lmin: float, lmax: float, top: int = 255, count: int = 18):
    return [(round(k * top / (count - 1)), lmin + (lmax - lmin) * (k / (count - 1)) ** gamma) for k in range(count)]


@pytest.mark.parametrize("gamma", [1.8, 2.2, 2.6])
def test_tg18_readings_of_gamma_displays(tmp_path, gamma):
    path = write_lut_file(tmp_path / "tg18.lut", tg18_readings(gamma, 0.6, 380.0), 255, ambient=0.4)
    assert_agrees(path, dcmdspfn("+Im", str(path), tmp=tmp_path))


def test_noisy_full_readings_of_a_10_bit_display(tmp_path):
    rng = random.Random(7)
    pairs, lum = [], 0.45
    for d in range(1024):
        pairs.append((d, lum))
        lum *= 1.0 + 0.0072 * rng.uniform(0.3, 1.7)  # rising, unevenly: a real panel
    path = write_lut_file(tmp_path / "panel.lut", pairs, 1023, ambient=0.8)
    assert_agrees(path, dcmdspfn("+Im", str(path), tmp=tmp_path))


def test_readings_in_any_order_and_a_gap(tmp_path):
    rng = random.Random(3)
    pairs = [(d, 0.7 + 300 * (d / 255) ** 2.3) for d in range(256) if not 40 <= d < 90]
    rng.shuffle(pairs)
    path = write_lut_file(tmp_path / "shuffled.lut", pairs, 255, ambient=0.6)
    assert_agrees(path, dcmdspfn("+Im", str(path), tmp=tmp_path))


@pytest.mark.parametrize("order", [2, 3, 5])
def test_polynomial_fit_of_the_file(tmp_path, order):
    path = write_lut_file(tmp_path / "ord.lut", tg18_readings(2.2, 0.8, 420.0), 255, ambient=0.5, order=order)
    theirs = dcmdspfn("+Im", str(path), tmp=tmp_path)
    assert_agrees(path, theirs)


def test_verilum_file_read_as_dconvlum_reads_it(tmp_path):
    require("dconvlum", "dcmdspfn")
    rng = random.Random(11)
    lines = ["VeriLUM 4.3 luminance data, workstation RAD-2 left"]
    lum = 0.31
    for d in range(256):
        lines.append(f"{d:5d}  {lum:10.4f}")
        lum *= 1.0 + 0.029 * rng.uniform(0.6, 1.4)
    dat = tmp_path / "CC1_01.dat"
    dat.write_text("\r\n".join(lines) + "\r\n")
    converted = tmp_path / "converted.lut"
    proc = subprocess.run(["dconvlum", str(dat), str(converted), "0.45"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # Our reading of the VeriLUM file is DCMTK's.
    ours = read_measurements(str(dat))
    theirs = read_measurements(str(converted))
    assert (ours.ddl, ours.max_ddl) == (theirs.ddl, theirs.max_ddl)
    assert ours.luminance == pytest.approx(theirs.luminance, abs=5e-7)
    assert theirs.ambient == 0.45
    # And the LUT of the VeriLUM file (with the same ambient) is dcmdspfn's of the converted one.
    assert_agrees(dat, dcmdspfn("+Im", str(converted), tmp=tmp_path), ambient=0.45)


@pytest.mark.parametrize("lmin, lmax", [(0.05, 4000.0), (0.2, 170.0), (1.0, 350.0), (3.3, 1000.0), (12.0, 2500.0)])
def test_jnd_index_agrees_with_dcmtk(tmp_path, lmin, lmax):
    # With a luminance range and no ambient, dcmdspfn prints j(Lmin) - j(Lmax).
    theirs = dcmdspfn("+Il", str(lmin), str(lmax), "+Cd", "256", tmp=tmp_path)
    assert jnd_index(lmin) == pytest.approx(theirs["jnd"][0], rel=1e-5)
    assert jnd_index(lmax) == pytest.approx(theirs["jnd"][1], rel=1e-5)
    # Its GSDF column is the target of a display whose luminance rises linearly
    # from Lmin to Lmax (the ramp dcmdspfn builds, step added to step).
    step = (lmax - lmin) / 255
    ramp = [lmin]
    for _ in range(254):
        ramp.append(ramp[-1] + step)
    ramp.append(lmax)
    lut = calibration_lut(Measurements(list(range(256)), ramp, 255))
    targets = [float(row[1]) for row in theirs["rows"]]
    assert lut.target == pytest.approx(targets, rel=1e-6, abs=5e-7)  # printed with 6 decimals
    # Near j = 1 that spline of L(1..1023) is not the formula: 3.6e-4 apart at 0.05 cd/m2.
    assert gsdf_luminance(jnd_index(lmax)) == pytest.approx(targets[-1], rel=1e-5)


def test_lut_from_the_command_line_matches_dcmdspfn(tmp_path):
    from peers import dcmtools

    theirs = dcmdspfn("+Im", str(SAMPLE), tmp=tmp_path)
    out = tmp_path / "lut.csv"
    proc = dcmtools("verify-display", str(SAMPLE), "--lut", str(out), "--json")
    assert proc.returncode == 1, proc.stderr  # the sample display is not GSDF-calibrated
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    cc = [row[1] for row in theirs["rows"]]
    assert len(rows) == 256
    for (_pvalue, ddl, target, expected), (_, _, gsdf_text, psc_text) in zip(rows, theirs["rows"], strict=False):
        assert target == gsdf_text and expected == psc_text
        assert cc[int(ddl)] == psc_text


def test_measurements_from_dcmtk_match_the_library(tmp_path):
    # The readings dcmdspfn prints (CC minus ambient) are ours, before any interpolation.
    theirs = dcmdspfn("+Im", str(SAMPLE), tmp=tmp_path)
    meas = read_measurements(str(SAMPLE))
    assert isinstance(meas, Measurements)
    for d, v in zip(meas.ddl, meas.luminance, strict=False):
        assert float(theirs["rows"][d][1]) == pytest.approx(v + theirs["ambient"], abs=5e-7)
