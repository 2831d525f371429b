"""The verify-display command: exit status, records, report, LUT, plot, TG18-LN patterns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from peers import REPO, dcmtools, require

from dcmtools.display.gsdf import gsdf_luminance, jnd_index

TG18_DDL = [15 * k for k in range(18)]


def write_csv(path: Path, pairs, header: str | None = "ddl,luminance") -> Path:
    lines = [header] if header else []
    lines += [f"{d},{v:.5f}" for d, v in pairs]
    path.write_text("\n".join(lines) + "\n")
    return path


def gsdf_pairs(lmin: float, lmax: float, ambient: float):
    jmin, jmax = jnd_index(lmin + ambient), jnd_index(lmax + ambient)
    return [(d, gsdf_luminance(jmin + (jmax - jmin) * d / 255) - ambient) for d in TG18_DDL]


def gamma_pairs(lmin: float = 0.8, lmax: float = 420.0, gamma: float = 2.2):
    return [(d, lmin + (lmax - lmin) * (d / 255) ** gamma) for d in TG18_DDL]


def records(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture
def good(tmp_path) -> Path:
    return write_csv(tmp_path / "good.csv", gsdf_pairs(0.9, 400.0, 0.2))


@pytest.fixture
def bad(tmp_path) -> Path:
    return write_csv(tmp_path / "gamma.csv", gamma_pairs())


def test_a_conformant_display_exits_0(good):
    proc = dcmtools("verify-display", str(good), "--ambient", "0.2")
    assert proc.returncode == 0, proc.stderr
    display, summary = records(proc)
    assert display["type"] == "display" and display["ok"] is True and display["passed"] is True
    assert display["path"] == str(good) and display["class"] == "primary" and display["format"] == "csv"
    assert display["ambient"] == 0.2 and display["ambient_source"] == "option"
    assert abs(display["max_error"]) < 1e-3 and len(display["intervals"]) == 17
    assert [c["name"] for c in display["criteria"]] == ["contrast_response", "lmax", "luminance_ratio", "ambient_ratio"]
    assert all(c["ok"] and c["source"] for c in display["criteria"])
    assert summary == {**summary, "type": "summary", "total": 1, "ok": 1, "failed": 0, "exit_status": 0}


def test_a_gamma_display_exits_1_and_says_why(bad):
    proc = dcmtools("verify-display", str(bad))
    assert proc.returncode == 1
    display, summary = records(proc)
    assert display["ok"] is False and display["passed"] is False
    assert display["error"]["code"] == "nonconformant"
    assert "contrast response off by +56.1% at DDL 15-30" in display["error"]["message"]
    assert "--lut" in display["error"]["hint"]
    assert display["max_error_ddl"] == [15, 30]
    assert summary["errors"] == {"nonconformant": 1} and summary["exit_status"] == 1
    assert "Traceback" not in proc.stderr


def test_the_terminal_report(bad, good):
    proc = dcmtools("verify-display", "--no-json", str(good), str(bad), "--ambient", "0.2")
    assert proc.returncode == 1
    out = proc.stdout
    assert f"{good}: PASS" in out and f"{bad}: FAIL" in out
    assert "largest contrast response error" in out and "% at DDL 15-30" in out
    assert "within ±10%" in out and ">= 170 cd/m2" in out
    assert "1 ok, 1 failed" in proc.stderr


def test_class_and_threshold_options(tmp_path):
    # 15% off at one place: a fail for a primary display, a pass for a secondary one.
    pairs = gsdf_pairs(1.0, 300.0, 0.0)
    pairs[9] = (pairs[9][0], pairs[9][1] * 1.045)
    path = write_csv(tmp_path / "r.csv", pairs)
    assert dcmtools("verify-display", str(path), "--ambient", "0").returncode == 1
    assert dcmtools("verify-display", str(path), "--ambient", "0", "--class", "secondary").returncode == 0
    assert dcmtools("verify-display", str(path), "--ambient", "0", "--tolerance", "20").returncode == 0
    proc = dcmtools("verify-display", str(path), "--ambient", "0", "--class", "secondary", "--min-lmax", "350")
    assert proc.returncode == 1
    crit = {c["name"]: c for c in records(proc)[0]["criteria"]}
    assert not crit["lmax"]["ok"] and crit["lmax"]["limit"] == 350 and "command line" in crit["lmax"]["source"]


def test_bad_inputs_become_error_records_and_the_batch_goes_on(tmp_path, good):
    broken = tmp_path / "broken.csv"
    broken.write_text("ddl,luminance\n0,0.5\n255,lots\n")
    before = broken.read_bytes()
    proc = dcmtools("verify-display", str(broken), str(tmp_path / "missing.csv"), str(good), "--ambient", "0.2")
    assert proc.returncode == 1
    first, second, third, summary = records(proc)
    assert first["error"]["code"] == "bad_measurements" and "line 3" in first["error"]["message"]
    assert second["error"]["code"] == "not_found"
    assert third["ok"] is True
    assert summary["errors"] == {"bad_measurements": 1, "not_found": 1}
    assert "Traceback" not in proc.stderr and broken.read_bytes() == before


def test_usage_errors_exit_2(tmp_path, good):
    assert dcmtools("verify-display", str(good), "--class", "tertiary").returncode == 2
    assert dcmtools("verify-display", str(good), "--format", "xls").returncode == 2
    assert dcmtools("verify-display", str(good), "--ambient", "-1").returncode == 2
    assert dcmtools("verify-display", str(good), "--plot", str(tmp_path / "p.gif")).returncode == 2
    assert dcmtools("verify-display", str(good), str(good), "--lut", str(tmp_path / "l.csv")).returncode == 2
    proc = dcmtools("verify-display")
    assert proc.returncode == 2 and "MEASUREMENTS" in proc.stderr


def test_lut_written_and_never_overwritten_silently(tmp_path, bad):
    out = tmp_path / "lut.csv"
    proc = dcmtools("verify-display", str(bad), "--lut", str(out), "--lut-entries", "1024")
    assert proc.returncode == 1  # the display fails; the table is still written
    lut = records(proc)[1]
    assert lut == {**lut, "type": "lut", "out": str(out), "ok": True, "entries": 1024}
    rows = out.read_text().splitlines()
    assert rows[0] == "pvalue,ddl,target_cd_m2,expected_cd_m2" and len(rows) == 1025
    ddls = [int(row.split(",")[1]) for row in rows[1:]]
    assert ddls[0] == 0 and ddls[-1] == 255 and ddls == sorted(ddls)
    before = out.read_bytes()
    proc = dcmtools("verify-display", str(bad), "--lut", str(out))
    lut = records(proc)[1]
    assert lut["ok"] is False and lut["error"]["code"] == "exists" and out.read_bytes() == before
    proc = dcmtools("verify-display", str(bad), "--lut", str(out), "--overwrite")
    assert records(proc)[1]["ok"] is True and len(out.read_text().splitlines()) == 257


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("fixture", ["good", "bad"])
def test_plot_is_a_sensible_picture(tmp_path, request, fixture):
    from PIL import Image  # matplotlib's own dependency

    source = request.getfixturevalue(fixture)
    out = tmp_path / "qa.png"
    proc = dcmtools("verify-display", str(source), "--ambient", "0.2", "--plot", str(out))
    assert records(proc)[1] == {"type": "plot", "path": str(source), "out": str(out), "ok": True}
    width, height = png_size(out.read_bytes())
    assert (width, height) == (1200, 500)
    with Image.open(out) as image:
        image.load()
        gray = image.convert("L")
        histogram = gray.histogram()
    # Mostly white paper, but curves, text and a tolerance band drawn on it.
    assert histogram[255] / (width * height) > 0.5
    assert sum(histogram[:128]) > 2000
    colours = {c for _, c in image.convert("RGB").getcolors(1 << 20)}
    assert any(g > r + 40 and g > b + 20 for r, g, b in colours)  # the green GSDF curve
    assert any(b > r + 60 for r, g, b in colours)  # the blue measured points


def test_plot_without_matplotlib_says_what_to_install(tmp_path, bad):
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # as if it were not installed\n"
        "from dcmtools.cli import main\n"
        f"sys.argv = ['dcmtools', 'verify-display', {str(bad)!r}, '--plot', {str(tmp_path / 'qa.png')!r}]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=60,
    )
    assert proc.returncode == 2
    assert "pip install 'dcmtools[plot]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "qa.png").exists()


def test_plot_as_svg(tmp_path, bad):
    out = tmp_path / "qa.svg"
    proc = dcmtools("verify-display", str(bad), "--plot", str(out))
    assert proc.returncode == 1 and records(proc)[1]["ok"] is True
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "</svg>" in text


def test_patterns_are_tg18_ln_dicom_images(tmp_path):
    import pydicom

    folder = tmp_path / "tg18"
    proc = dcmtools("verify-display", "--patterns", str(folder), "--pattern-size", "256")
    assert proc.returncode == 0, proc.stderr
    recs = records(proc)
    files = [r for r in recs if r["type"] == "file"]
    assert [r["pattern"] for r in files] == [f"TG18-LN8-{i:02d}" for i in range(1, 19)]
    assert [r["level"] for r in files] == TG18_DDL
    assert recs[-1]["ok"] == 18
    for rec in files:
        ds = pydicom.dcmread(rec["out"])
        pixels = ds.pixel_array
        assert pixels.shape == (256, 256) and ds.BitsStored == 8
        assert pixels[128, 128] == rec["level"]  # the square measured
        assert pixels[5, 5] == 51  # the background: 20% of 255
        square = (pixels == rec["level"]).sum() if rec["level"] != 51 else None
        if square is not None:
            assert abs(square / 256**2 - 0.10) < 0.005  # 10% of the area
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.PresentationLUTShape == "IDENTITY"
    assert len({pydicom.dcmread(r["out"]).SeriesInstanceUID for r in files}) == 1
    # Again, without --overwrite: nothing replaced, 18 errors, exit 1.
    stamp = os.stat(files[0]["out"]).st_mtime_ns
    proc = dcmtools("verify-display", "--patterns", str(folder), "--pattern-size", "256")
    assert proc.returncode == 1
    assert {r["error"]["code"] for r in records(proc) if r["type"] == "file"} == {"exists"}
    assert os.stat(files[0]["out"]).st_mtime_ns == stamp


def test_12_bit_patterns(tmp_path):
    import pydicom

    proc = dcmtools("verify-display", "--patterns", str(tmp_path), "--pattern-bits", "12", "--pattern-size", "128")
    assert proc.returncode == 0
    last = pydicom.dcmread(tmp_path / "TG18-LN12-18.dcm")
    assert last.BitsStored == 12 and last.pixel_array.max() == 4095 and last.pixel_array[2, 2] == 819
    assert (last.WindowCenter, last.WindowWidth) == (2048, 4096)


@pytest.mark.peer
def test_patterns_are_valid_for_dciodvfy_and_dcmtk(tmp_path):
    require("dciodvfy", "dcm2pnm")
    dcmtools("verify-display", "--patterns", str(tmp_path), "--pattern-size", "128")
    for name, level in (("TG18-LN8-01.dcm", 0), ("TG18-LN8-09.dcm", 120), ("TG18-LN8-18.dcm", 255)):
        path = tmp_path / name
        check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
        assert errors == [], errors
        # DCMTK renders it with the pattern's own window: the levels come out as stored.
        out = tmp_path / (name + ".pgm")
        render = subprocess.run(
            ["dcm2pnm", "+Wi", "1", "+op", str(path), str(out)], capture_output=True, text=True, timeout=60
        )
        assert render.returncode == 0, render.stderr
        data = out.read_bytes()
        assert data.startswith(b"P5\n128 128\n255\n")
        pixels = data[len(b"P5\n128 128\n255\n") :]
        assert pixels[64 * 128 + 64] == level and pixels[2 * 128 + 2] == 51


def test_measure_the_patterns_then_verify(tmp_path):
    # The whole round: write the patterns, "measure" each square, verify.
    import pydicom

    dcmtools("verify-display", "--patterns", str(tmp_path / "p"), "--pattern-size", "64")
    jmin, jmax = jnd_index(0.7), jnd_index(350.0)
    lines = ["ddl,luminance"]
    for path in sorted((tmp_path / "p").iterdir()):
        level = int(pydicom.dcmread(path).pixel_array[32, 32])
        lines.append(f"{level},{gsdf_luminance(jmin + (jmax - jmin) * level / 255):.4f}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    proc = dcmtools("verify-display", str(tmp_path / "m.csv"), "--ambient", "0")
    assert proc.returncode == 0 and records(proc)[0]["readings"] == 18


def test_library_hints_are_spelled_as_options(tmp_path):
    # No light at DDL 0 and no ambient: the library's hint names `ambient`, the command says --ambient.
    path = write_csv(tmp_path / "dark.csv", [(0, 0.0), (255, 300.0)])
    proc = dcmtools("verify-display", str(path))
    assert proc.returncode == 1
    display = records(proc)[0]
    assert display["error"]["code"] == "bad_measurements" and "--ambient" in display["error"]["hint"]
    assert "`" not in display["error"]["hint"]
    # The warning of a run without any ambient, and the hint of a failing display, are spelled too.
    good = write_csv(tmp_path / "g.csv", gsdf_pairs(0.8, 400.0, 0.0))
    display = records(dcmtools("verify-display", str(good)))[0]
    assert any("give --ambient L" in w for w in display["warnings"])


def test_the_verdict_is_decided_by_the_library(tmp_path):
    from dcmtools.cli.spelling import spell, spell_record
    from dcmtools.display.gsdf import Measurements, analyze

    gamma = Measurements.from_pairs([(d, 0.5 + 350.0 * (d / 255) ** 2.2) for d in TG18_DDL])
    result = analyze(gamma, ambient=0.2)
    error = result.verdict()
    assert error is not None and error.code == "nonconformant"
    assert error.message == result.failure_message() and "`lut` writes the table" in error.hint
    record = result.record()
    assert record["ok"] is False and record["error"]["hint"] == error.hint
    assert "--lut writes the table" in spell_record(record)["error"]["hint"]
    assert spell("use `min_lmax` or `lut`", {"lut": "-L"}) == "use --min-lmax or -L"
    assert spell_record({"path": "`a`", "warnings": ["`b`"]}) == {"path": "`a`", "warnings": ["--b"]}
    passing = analyze(Measurements.from_pairs(gsdf_pairs(0.8, 400.0, 0.15)), ambient=0.15)
    assert passing.verdict() is None and passing.record()["ok"] is True


def test_help_has_examples_and_the_criteria_without_importing_numpy_or_pydicom():
    proc = dcmtools("verify-display", "--help")
    assert proc.returncode == 0
    for words in (
        "Examples:",
        "dcmtools verify-display --patterns",
        "within 10%",
        ">= 170 cd/m2",
        "TG18",
        "ACR-AAPM-SIIM",
    ):
        assert words in proc.stdout, words
    code = (
        "import sys\n"
        "from dcmtools.cli import app\n"
        "try:\n"
        "    app(['verify-display', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('numpy', 'pydicom', 'matplotlib', 'dcmtools.display.gsdf') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=60,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_cli_names_agree_with_the_library():
    from dcmtools.cli import verify_display
    from dcmtools.display import gsdf

    assert verify_display._CLASSES == tuple(gsdf.CLASSES) and verify_display._FORMATS == gsdf.FORMATS


def test_python_api(good):
    from dcmtools.display.gsdf import calibration_lut, verify_display

    result = verify_display(str(good), ambient=0.2)
    assert result.passed and result.as_record()["type"] == "display"
    assert len(calibration_lut(result.measurements, ambient=0.2).ddl) == 256
