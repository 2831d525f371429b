"""The GSDF library: L(j), j(L), measurement files, the TG18 evaluation, the LUT."""

from __future__ import annotations

import math

import pytest

from dcmtools.display import gsdf
from dcmtools.display.gsdf import (
    Measurements,
    analyze,
    calibration_lut,
    gsdf_luminance,
    jnd_index,
    parse_measurements,
    read_measurements,
)
from dcmtools.stream.records import DcmtoolsError, ErrorCode

TG18_DDL = [15 * k for k in range(18)]  # the TG18-LN levels of an 8-bit display


def gsdf_display(lmin: float, lmax: float, ambient: float = 0.0, ddls=TG18_DDL, top: int = 255) -> Measurements:
    """Readings of a display that follows the GSDF exactly from L'min to L'max."""
    jmin, jmax = jnd_index(lmin + ambient), jnd_index(lmax + ambient)
    pairs = [(d, gsdf_luminance(jmin + (jmax - jmin) * d / top) - ambient) for d in ddls]
    return Measurements.from_pairs(pairs, max_ddl=top, ambient=ambient)


def gamma_display(lmin: float, lmax: float, gamma: float = 2.2, ddls=TG18_DDL, top: int = 255) -> Measurements:
    return Measurements.from_pairs([(d, lmin + (lmax - lmin) * (d / top) ** gamma) for d in ddls], max_ddl=top)


# ------------------------------------------------------------------ L(j), j(L)


def test_reference_luminances_of_ps3_14():
    # PS3.14 Annex B: L(512) = 130.07, L(1023) = 3993.40 cd/m2.
    assert gsdf_luminance(512) == pytest.approx(130.07, rel=1e-4)
    assert gsdf_luminance(1023) == pytest.approx(3993.4, rel=1e-4)
    # Annex B prints L(1) as 0.0500 (4 decimals): the formula gives 0.049982,
    # which is 0.0500 at that precision but 3.6e-4 away relatively.
    assert round(gsdf_luminance(1), 4) == 0.0500
    assert gsdf_luminance(1) == pytest.approx(0.049982, rel=1e-4)


def test_reference_jnd_indices():
    assert jnd_index(130.07) == pytest.approx(512, rel=1e-4)
    assert jnd_index(3993.4) == pytest.approx(1023, rel=1e-4)
    assert jnd_index(0.05) == pytest.approx(1.03, abs=0.01)  # the inverse is a fit: 0.03 JND off at j = 1


def test_j_of_L_inverts_L_of_j_to_a_tenth_of_a_jnd():
    worst = max(abs(jnd_index(gsdf_luminance(j)) - j) for j in range(1, 1024))
    assert worst < 0.1
    assert worst > 0.05  # it is a fit, not an exact inverse: the test can fail


def test_gsdf_rises_everywhere():
    table = gsdf.gsdf_table()
    assert len(table) == 1023
    assert all(b > a for a, b in zip(table, table[1:], strict=False))
    assert table[0] == gsdf_luminance(1) and table[-1] == gsdf_luminance(1023)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        gsdf_luminance(0)
    with pytest.raises(ValueError):
        jnd_index(0.0)
    with pytest.raises(ValueError):
        jnd_index(-1.0)


# ------------------------------------------------------------------ the TG18 evaluation


def test_a_perfect_gsdf_display_passes_with_no_error():
    result = analyze(gsdf_display(0.8, 400.0, ambient=0.15), display_class="primary")
    assert result.passed, [c for c in result.criteria if not c.ok]
    # Not exactly 0: PS3.14's j(L) is a fit of the inverse of L(j) (up to 0.09 JND
    # off), so the JND range found from L'min and L'max is a hair off the display's.
    assert abs(result.max_error) < 1e-4
    assert len(result.intervals) == 17
    assert result.lmax == pytest.approx(400.15, rel=1e-3)
    assert result.lmin == pytest.approx(0.95, rel=1e-3)
    assert result.luminance_ratio == pytest.approx(result.lmax / result.lmin)
    assert result.ambient_ratio == pytest.approx(0.15 / result.lmin_display)
    assert result.jnd_min == jnd_index(result.lmin)
    assert result.jnd_range == pytest.approx(jnd_index(400.15) - jnd_index(0.95), rel=1e-3)
    for iv, target in zip(result.intervals, result.target[1:], strict=False):
        assert iv.lum_high == pytest.approx(target, rel=2e-3)


def test_a_gamma_22_display_fails_the_contrast_response():
    result = analyze(gamma_display(0.8, 420.0), display_class="primary")
    verdict = {c.name: c.ok for c in result.criteria}
    assert verdict == {"contrast_response": False, "lmax": True, "luminance_ratio": True, "ambient_ratio": True}
    assert not result.passed
    # Against the GSDF a gamma 2.2 curve has too much contrast in the shadows
    # and too little in the highlights: +56% at DDL 15-30, -46% at the top.
    errors = [iv.error for iv in result.intervals]
    assert (result.max_error_interval.ddl_low, result.max_error_interval.ddl_high) == (15, 30)
    assert result.max_error == pytest.approx(0.561, abs=0.001)
    assert errors[-1] == pytest.approx(-0.458, abs=0.001)
    # Even a secondary display may not be this far off.
    assert not analyze(gamma_display(0.8, 420.0), display_class="secondary").passed


@pytest.mark.parametrize("level", [1, 4, 8, 12, 16])
def test_a_5_percent_bump_is_found_at_its_level(level):
    meas = gsdf_display(0.5, 350.0, ambient=0.1)
    bumped = list(meas.luminance)
    bumped[level] = (bumped[level] + 0.1) * 1.05 - 0.1  # L' 5% too bright at one level
    meas = Measurements(meas.ddl, bumped, meas.max_ddl, ambient=0.1)
    result = analyze(meas)
    worst = result.max_error_interval
    assert TG18_DDL[level] in (worst.ddl_low, worst.ddl_high)
    # Only the two intervals touching the level are off; the rest are as good as exact.
    off = [iv for iv in result.intervals if abs(iv.error) > 1e-3]
    assert {(iv.ddl_low, iv.ddl_high) for iv in off} == {
        (TG18_DDL[level - 1], TG18_DDL[level]),
        (TG18_DDL[level], TG18_DDL[level + 1]),
    }
    # A 5% step against the dL/L of an interval: 5-7% where the intervals' dL/L
    # is large (the dark end), some 15% higher up, where a primary display fails.
    assert 0.04 < abs(result.max_error) < 0.3
    assert result.passed == (abs(result.max_error) <= 0.10)
    assert level == 1 or not result.passed


def test_the_class_sets_the_thresholds():
    # A display 15% off in places: fails as primary (10%), passes as secondary (20%).
    meas = gsdf_display(1.0, 300.0)
    lums = list(meas.luminance)
    lums[9] *= 1.045
    meas = Measurements(meas.ddl, lums, 255)
    primary, secondary = analyze(meas, display_class="primary"), analyze(meas, display_class="secondary")
    assert 0.1 < abs(primary.max_error) < 0.2
    assert [c.name for c in primary.failed_criteria] == ["contrast_response"]
    assert secondary.passed
    assert analyze(meas, display_class="primary", tolerance=0.2).passed
    assert not analyze(meas, display_class="secondary", min_lmax=350).passed


def test_luminance_and_ambient_criteria():
    dim = analyze(gsdf_display(0.5, 150.0))  # L'max 150 < 170, ratio 300
    assert [c.name for c in dim.failed_criteria] == ["lmax"]
    flat = analyze(gsdf_display(1.0, 200.0))  # ratio 200 < 250
    assert [c.name for c in flat.failed_criteria] == ["luminance_ratio"]
    assert analyze(gsdf_display(1.0, 200.0), display_class="secondary").passed
    bright_room = analyze(gsdf_display(0.6, 300.0, ambient=0.5))  # Lamb/Lmin = 0.83 > 2/3
    assert "ambient_ratio" in [c.name for c in bright_room.failed_criteria]
    lit_room = analyze(gsdf_display(0.6, 300.0, ambient=0.3))  # 0.5: allowed, above the 1/4 recommended
    amb = next(c for c in lit_room.criteria if c.name == "ambient_ratio")
    assert amb.ok and amb.warning and "recommended" in amb.warning
    assert lit_room.passed


def test_every_criterion_names_its_source():
    for name in gsdf.CLASSES:
        result = analyze(gsdf_display(1.0, 400.0), display_class=name)
        assert [c.name for c in result.criteria] == ["contrast_response", "lmax", "luminance_ratio", "ambient_ratio"]
        for criterion in result.criteria:
            assert "TG18" in criterion.source
            record = criterion.as_record()
            assert record["source"] and record["limit"] > 0


def test_ambient_option_overrides_the_file():
    meas = gsdf_display(1.0, 400.0, ambient=0.2)
    assert analyze(meas).ambient_source == "file"
    result = analyze(meas, ambient=0.0)
    assert (result.ambient, result.ambient_source) == (0.0, "option")
    assert result.lmin == pytest.approx(1.0, rel=1e-3)
    plain = Measurements.from_pairs([(0, 1.0), (255, 400.0)])
    result = analyze(plain)
    assert result.ambient_source == "none" and any("no ambient" in w for w in result.warnings)


def test_levels_picks_the_tg18_levels_from_a_full_reading():
    full = gsdf_display(1.0, 400.0, ddls=range(256))
    result = analyze(full, levels=18)
    assert result.ddl == TG18_DDL
    with pytest.raises(DcmtoolsError) as info:
        analyze(Measurements.from_pairs([(0, 1.0), (100, 50.0), (255, 300.0)]), levels=18)
    assert info.value.code == ErrorCode.BAD_MEASUREMENTS and "15" in info.value.message


def test_unusable_readings_are_errors_in_the_users_words():
    with pytest.raises(DcmtoolsError) as info:
        analyze(Measurements.from_pairs([(0, 0.0), (255, 300.0)]))
    # The library names the option by its keyword; the command spells it (--ambient: test_cli_verify_display).
    assert info.value.code == ErrorCode.BAD_MEASUREMENTS and "`ambient`" in info.value.hint
    assert analyze(Measurements.from_pairs([(0, 0.0), (255, 300.0)]), ambient=0.5).lmin == 0.5
    with pytest.raises(DcmtoolsError):
        analyze(Measurements.from_pairs([(0, 300.0), (255, 1.0)]))


def test_a_reading_that_drops_fails_and_is_named():
    meas = gsdf_display(1.0, 400.0)
    lums = list(meas.luminance)
    lums[5] = lums[4] * 0.98
    meas = parse_measurements("\n".join(f"{d},{v}" for d, v in zip(meas.ddl, lums, strict=False)), "csv")
    result = analyze(meas)
    assert not result.passed
    dropped = next(iv for iv in result.intervals if iv.ddl_high == 75)
    assert dropped.contrast < 0 and dropped.error < -1
    assert any("decreases from driving level 60 to 75" in w for w in result.warnings)


# ------------------------------------------------------------------ measurement files


def test_csv_with_and_without_header(tmp_path):
    plain = tmp_path / "a.csv"
    plain.write_text("0,0.5\n128,40.1\n255,300\n")
    headed = tmp_path / "b.csv"
    headed.write_text("# photometer LS-100\nDDL,Luminance (cd/m2)\n0,0.5\n128,40.1\n255,300\n")
    swapped = tmp_path / "c.csv"
    swapped.write_text("luminance,ddl\n0.5,0\n40.1,128\n300,255\n")
    for path in (plain, headed, swapped):
        meas = read_measurements(str(path))
        assert (meas.ddl, meas.luminance, meas.max_ddl, meas.format) == ([0, 128, 255], [0.5, 40.1, 300.0], 255, "csv")


def test_csv_european_and_tab_and_ambient_row(tmp_path):
    euro = tmp_path / "euro.csv"
    euro.write_text("DDL;Leuchtdichte\n0;0,52\n255;310,5\n")
    meas = read_measurements(str(euro))
    assert meas.luminance == [0.52, 310.5]
    tabbed = tmp_path / "t.txt"
    tabbed.write_text("ddl\tluminance\nambient\t0.25\n255\t300\n0\t0.5\n")
    meas = read_measurements(str(tabbed))
    assert (meas.ddl, meas.ambient) == ([0, 255], 0.25)
    spaced = parse_measurements("0 0.5\n255 300\n", "csv")
    assert spaced.luminance == [0.5, 300.0]


def test_dcmtk_monitor_file(tmp_path):
    path = tmp_path / "m.lut"
    path.write_text(
        "# monitor\n\n  max 1023\n  amb 0.7 # lux->cd/m2 done\n  ord 3\n"
        "0 0.4\n512 80.5\n1023 410\n1023 411 # again: the last wins\n1500 9\n"
    )
    meas = read_measurements(str(path))
    assert meas.format == "dcmtk"
    assert (meas.ddl, meas.luminance) == ([0, 512, 1023], [0.4, 80.5, 411.0])
    assert (meas.max_ddl, meas.ambient, meas.fit_order) == (1023, 0.7, 3)
    assert any("1500" in w for w in meas.warnings) and any("more than once" in w for w in meas.warnings)
    sample = read_measurements("/usr/share/dcmtk/monitor.lut") if _exists("/usr/share/dcmtk/monitor.lut") else None
    if sample is not None:
        assert (len(sample.ddl), sample.max_ddl, sample.ambient) == (256, 255, 1.0)


def test_verilum_file(tmp_path):
    path = tmp_path / "CC1_01.dat"
    lines = ["VeriLUM 5.2 characteristic curve, display 1"] + [f"{d:3d}, {0.4 + d * 1.2:9.4f}" for d in range(256)]
    path.write_text("\r\n".join(lines) + "\r\n")
    meas = read_measurements(str(path))
    assert meas.format == "verilum" and meas.description.startswith("VeriLUM 5.2")
    assert len(meas.ddl) == 256 and meas.luminance[255] == pytest.approx(0.4 + 255 * 1.2)
    assert meas.max_ddl == 255
    # No extension: recognised by its title line.
    other = tmp_path / "curve"
    other.write_text("\n".join(lines))
    assert read_measurements(str(other)).format == "verilum"


@pytest.mark.parametrize(
    "text, words",
    [
        ("0,0.5\n255,abc\n", "line 2: the luminance 'abc' is not a number"),
        ("0,0.5\n255\n", "line 2: expected a driving level and a luminance"),
        ("0,0.5\n", "at least two driving levels"),
        ("0,0.5\n12.5,3\n255,9\n", "line 2: the driving level 12.5 is not a whole number"),
        ("0,-0.5\n255,300\n", "negative"),
        ("# nothing\n", "no readings"),
    ],
)
def test_bad_csv_files(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DcmtoolsError) as info:
        read_measurements(str(path))
    assert info.value.code == ErrorCode.BAD_MEASUREMENTS
    assert words in info.value.message and str(path) in info.value.message


def test_bad_dcmtk_files():
    with pytest.raises(DcmtoolsError, match="must start with 'max N'"):
        parse_measurements("0 0.5\n255 300\n", "dcmtk")
    with pytest.raises(DcmtoolsError, match="'max' must be followed"):
        parse_measurements("max\n0 0.5\n", "dcmtk")
    with pytest.raises(DcmtoolsError, match="has no luminance"):
        parse_measurements("max 255\n0 0.5\n255\n", "dcmtk")


def test_files_that_are_not_measurements(tmp_path):
    with pytest.raises(DcmtoolsError) as info:
        read_measurements(str(tmp_path / "missing.csv"))
    assert info.value.code == ErrorCode.NOT_FOUND
    empty = tmp_path / "empty.csv"
    empty.write_text("  \n")
    with pytest.raises(DcmtoolsError) as info:
        read_measurements(str(empty))
    assert info.value.code == ErrorCode.EMPTY
    binary = tmp_path / "image.dcm"
    binary.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 50)
    with pytest.raises(DcmtoolsError) as info:
        read_measurements(str(binary))
    assert info.value.code == ErrorCode.BAD_MEASUREMENTS and "binary" in info.value.message
    with pytest.raises(DcmtoolsError) as info:
        read_measurements(str(tmp_path))
    assert info.value.code == ErrorCode.UNREADABLE


# ------------------------------------------------------------------ the calibration LUT


def test_lut_of_a_gsdf_display_is_the_identity():
    meas = gsdf_display(0.5, 350.0, ambient=0.2, ddls=range(256))
    lut = calibration_lut(meas)
    assert lut.ddl == list(range(256))
    # Within the accuracy of PS3.14's j(L), as dcmdspfn's own GSDF column.
    assert lut.target[0] == pytest.approx(0.7, rel=2e-3) and lut.target[-1] == pytest.approx(350.2, rel=2e-3)


def test_lut_of_a_gamma_display_rises_and_spans_the_range():
    meas = gamma_display(0.8, 420.0, ddls=TG18_DDL)
    lut = calibration_lut(meas, entries=1024)
    assert len(lut.ddl) == 1024
    assert lut.ddl[0] == 0 and lut.ddl[-1] == 255
    assert all(b >= a for a, b in zip(lut.ddl, lut.ddl[1:], strict=False))
    # The GSDF's mid-gray is darker than a gamma 2.2 display's: the table lowers it.
    assert 80 < lut.ddl[512] < 110
    for target, expected in zip(lut.target, lut.expected, strict=False):
        assert expected == pytest.approx(target, rel=0.05)


def test_write_lut_is_atomic_and_refuses_to_overwrite(tmp_path):
    lut = calibration_lut(gsdf_display(0.5, 350.0, ddls=range(256)))
    out = tmp_path / "lut.csv"
    gsdf.write_lut(lut, str(out))
    rows = out.read_text().splitlines()
    assert rows[0] == "pvalue,ddl,target_cd_m2,expected_cd_m2" and len(rows) == 257
    assert rows[1].startswith("0,0,0.5")
    with pytest.raises(DcmtoolsError) as info:
        gsdf.write_lut(lut, str(out))
    assert info.value.code == ErrorCode.EXISTS
    gsdf.write_lut(lut, str(out), overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["lut.csv"]  # no temporary file left


def test_spline_fills_missing_levels_through_the_readings():
    meas = gamma_display(0.8, 420.0)
    curve = gsdf.characteristic_curve(meas)
    assert len(curve) == 256
    for d, v in zip(meas.ddl, meas.luminance, strict=False):
        assert curve[d] == v
    # Between the readings a natural spline through a smooth curve stays close to it.
    assert curve[100] == pytest.approx(0.8 + 419.2 * (100 / 255) ** 2.2, rel=0.01)


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


def test_math_is_double_precision():
    # The GSDF is computed in binary64, the same operations as DCMTK: no numpy, no float32.
    value = gsdf_luminance(512)
    assert isinstance(value, float) and math.isclose(value, 130.0652840121598, rel_tol=0, abs_tol=1e-12)
