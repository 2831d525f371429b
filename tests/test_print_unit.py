"""dcmtools print without a printer: settings, image preparation, words, --dry-run previews."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from peers import REPO, dcmtools
from print_data import expected_pvalues, linear_window, make_ct, make_gray8, make_mono1
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from dcmtools.cli.spelling import spell
from dcmtools.printing import options as po
from dcmtools.printing import preview, words
from dcmtools.printing.prepare import prepare_frame, read_images, to_pvalues, window_linear
from dcmtools.stream.records import DcmtoolsError, ExitStatus


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "text, value, boxes",
    [
        ("1,1", "STANDARD\\1,1", 1),
        ("2,3", "STANDARD\\2,3", 6),
        ("4x5", "STANDARD\\4,5", 20),
        ("standard\\3,3", "STANDARD\\3,3", 9),
        ("ROW\\2,1", "ROW\\2,1", 3),
        ("COL/1,3", "COL\\1,3", 4),
    ],
)
def test_layouts(text, value, boxes):
    layout = po.parse_layout(text)
    assert (layout.value, layout.boxes, len(layout.cells())) == (value, boxes, boxes)


def test_layout_cells_are_in_image_box_position_order():
    assert po.parse_layout("2,2").cells() == [(0, 0, 2, 2), (0, 1, 2, 2), (1, 0, 2, 2), (1, 1, 2, 2)]
    assert po.parse_layout("ROW\\1,2").cells() == [(0, 0, 2, 1), (1, 0, 2, 2), (1, 1, 2, 2)]


@pytest.mark.parametrize("text", ["0,2", "2", "a,b", "2,2,2", "SLIDE\\1", "CUSTOM\\1", "100,1", ""])
def test_bad_layouts_are_usage_errors(text):
    with pytest.raises(DcmtoolsError) as info:
        po.parse_layout(text)
    assert info.value.exit_status == ExitStatus.USAGE


@pytest.mark.parametrize(
    "text, value, warned",
    [
        ("14INX17IN", "14INX17IN", False),
        ("14x17", "14INX17IN", False),
        ("14x17in", "14INX17IN", False),
        ("8.5x11", "8_5INX11IN", False),
        ("24x30", "24CMX30CM", False),
        ("24x24cm", "24CMX24CM", False),
        ("a4", "A4", False),
        ("current", "CURRENT", True),
        ("13x18cm", "13CMX18CM", True),
    ],
)
def test_film_sizes(text, value, warned):
    normalized, warning = po.normalize_film_size(text)
    assert normalized == value and bool(warning) == warned


def test_window_and_frames():
    assert po.parse_window("-600,1500") == (-600.0, 1500.0)
    assert po.parse_window("minmax") == "minmax" and po.parse_window(None) is None
    for bad in ("40", "40,0", "a,b"):
        with pytest.raises(DcmtoolsError):
            po.parse_window(bad)
    assert po.select_frames(po.parse_frames("2-4,7,3,40-"), 10) == [1, 2, 3, 6]
    assert po.select_frames(po.parse_frames("8-"), 10) == [7, 8, 9]
    assert po.select_frames(po.parse_frames("all"), 3) == [0, 1, 2]
    assert po.select_frames(po.parse_frames("12"), 3) == []
    for bad in ("0", "3-1", "x"):
        with pytest.raises(DcmtoolsError):
            po.parse_frames(bad)


def test_film_options_send_only_what_was_given():
    film = po.FilmOptions.from_strings(
        layout="2,2", film_size="14x17", priority="normal", medium="blue film", destination="bin_2", copies=2
    )
    assert film.session_attributes() == {
        "NumberOfCopies": "2",
        "PrintPriority": "MED",
        "MediumType": "BLUE FILM",
        "FilmDestination": "BIN_2",
    }
    assert film.film_box_attributes() == {"ImageDisplayFormat": "STANDARD\\2,2", "FilmSizeID": "14INX17IN"}
    assert film.image_box_attributes() == {} and film.warnings == []
    odd = po.FilmOptions.from_strings(medium="GLOSSY", magnification="SHARP")
    assert len(odd.warnings) == 2 and odd.medium == "GLOSSY"
    for kwargs in (
        {"orientation": "sideways"},
        {"polarity": "inverse"},
        {"copies": 0},
        {"bits": "16"},
        {"border_density": "grey"},
        {"priority": "urgent"},
    ):
        with pytest.raises(DcmtoolsError) as info:
            po.FilmOptions.from_strings(**kwargs)
        assert info.value.exit_status == ExitStatus.USAGE


@pytest.mark.parametrize(
    "args, words_expected",
    [
        (["--layout", "0,2"], "layout '0,2' is not valid"),
        (["--orientation", "up"], "--orientation 'up' is not valid"),
        (["--window", "40"], "--window '40' is not valid"),
        (["--frames", "2-1"], "backwards"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path, args, words_expected):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    result = dcmtools("print", "P@127.0.0.1:9", str(ct), *args, "--json")
    assert result.returncode == 2 and words_expected in result.stderr, result.stderr


def test_status_takes_no_inputs(tmp_path):
    result = dcmtools("print", "P@127.0.0.1:9", "--status", str(tmp_path))
    assert result.returncode == 2 and "--status takes no INPUTS" in result.stderr


def test_help_does_not_import_the_heavy_libraries():
    code = (
        "import sys; sys.argv = ['dcmtools', 'print', '--help']\n"
        "from dcmtools.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('pydicom', 'pynetdicom', 'numpy') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert "HEAVY []" in result.stdout and "Examples" in result.stdout, result.stdout + result.stderr


# ------------------------------------------------------------------ words


def test_status_words():
    assert (
        words.explain(0x0106, "film box", attribute="FilmSizeID", value="A3")[1]
        == "film size A3 is not supported by this printer"
    )
    category, message, hint = words.explain(0x0105, "film box", attribute="BorderDensity", value="150")
    # The library names the option by its keyword; the command spells it as its flag.
    assert (
        category == "failure"
        and "does not support setting the border density" in message
        and "`border_density`" in hint
    )
    assert "--border-density" in spell(hint)
    assert (
        words.explain(0xC603)[1] == "an image is larger than its image box" and "`layout`" in words.explain(0xC603)[2]
    )
    assert "--layout" in spell(words.explain(0xC603)[2]) and "--film-size" in spell(words.explain(0xC603)[2])
    assert words.explain(0xB604)[0] == "warning" and words.is_ok(0xB604) and not words.is_ok(0xC605)
    assert words.explain(0xC7FF)[0] == "failure"


def test_printer_status_info_words():
    assert words.status_info_words("EMPTY 14X17 BLUE") == "the 14x17 inch blue film supply is empty"
    assert words.status_info_words("LOW 24X30 PAPR") == "the 24x30 cm paper supply is low"
    assert words.status_info_words("film jam") == "a film is jammed in the printer or processor"
    assert words.status_info_words("VENDOR 42") == "the printer's own code (see its manual)"


# ------------------------------------------------------------------ image preparation


def test_window_matches_the_standard_formula():
    x = np.arange(-300, 300, dtype=float)
    for center, width in ((40, 400), (0, 2), (10.5, 99), (-600, 1500)):
        assert np.allclose(window_linear(x, center, width), linear_window(x, center, width), atol=1e-6)
    assert np.array_equal(window_linear(np.array([0.0, 1.0]), 0.5, 1), [0.0, 1.0])


def test_ct_file_window_and_minmax(tmp_path):
    ct = tmp_path / "ct.dcm"
    stored = make_ct(ct, center=40, width=400)
    (image,) = read_images(str(ct))
    assert np.array_equal(image.pixels(12), expected_pvalues(linear_window(stored - 1024.0, 40, 400), 12))
    assert (image.voi, image.window, image.aspect) == ("window", (40.0, 400.0), None)
    (image,) = read_images(str(ct), window="minmax")
    hu = stored - 1024.0
    assert np.array_equal(image.pixels(8), expected_pvalues((hu - hu.min()) / (hu.max() - hu.min()), 8))
    make_ct(ct, center=None)
    (image,) = read_images(str(ct))
    assert image.voi == "minmax" and image.pixels(12).min() == 0 and image.pixels(12).max() == 4095


def test_monochrome1_and_8_bit_range(tmp_path):
    cr = tmp_path / "cr.dcm"
    stored = make_mono1(cr)
    (image,) = read_images(str(cr))
    assert np.array_equal(image.pixels(12), expected_pvalues(1 - linear_window(stored.astype(float), 400, 600), 12))
    us = tmp_path / "us.dcm"
    stored = make_gray8(us)
    (image,) = read_images(str(us))
    assert image.voi == "range"  # an 8-bit image shows its stored range as it was made
    assert np.array_equal(image.pixels(8), stored.astype(np.uint8))


def test_pixel_padding_is_left_out_of_the_range():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # rescale 1, -1024
    arr = ds.pixel_array.astype(np.int64)
    arr[:4, :4] = -2000
    ds.PixelData = arr.astype("<i2").tobytes()
    ds.PixelPaddingValue = -2000
    image = prepare_frame(ds, window="minmax")
    hu = arr - 1024.0
    inside = hu[arr != -2000]
    expected = expected_pvalues((hu - inside.min()) / (inside.max() - inside.min()), 12)
    assert np.array_equal(image.pixels(12), expected)
    assert image.pixels(12)[:4, :4].max() == 0 and image.pixels(12)[4:, 4:].min() == 0


def test_voi_lut_sequence_and_sigmoid():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    del ds.WindowCenter, ds.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.LUTData = list(range(255, -1, -1))
    ds.VOILUTSequence = [item]
    image = prepare_frame(ds)
    stored = ds.pixel_array.astype(int)
    assert image.voi == "lut"
    assert np.array_equal(image.pixels(8), (255 - np.clip(stored, 0, 255)).astype(np.uint8))
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.VOILUTFunction = "SIGMOID"
    image = prepare_frame(ds)
    x = ds.pixel_array.astype(float)
    assert np.array_equal(image.pixels(12), expected_pvalues(1 / (1 + np.exp(-4 * (x - 600) / 1600)), 12))


def test_enhanced_multiframe_per_frame_window_and_rescale():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    arr = ds.pixel_array
    ds.NumberOfFrames = 2
    ds.PixelData = np.stack([arr, arr]).astype("<i2").tobytes()
    del ds.WindowCenter, ds.WindowWidth
    frames = []
    for center, slope in ((300, 1), (900, 2)):
        frame = Dataset()
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = center, 800
        frame.FrameVOILUTSequence = [voi]
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, 0, "US"
        frame.PixelValueTransformationSequence = [pvt]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    first, second = (prepare_frame(ds, i, 2) for i in range(2))
    assert (first.window, second.window, first.frame, second.frame) == ((300, 800), (900, 800), 1, 2)
    assert np.array_equal(second.pixels(12), expected_pvalues(linear_window(arr * 2.0, 900, 800), 12))


def test_colour_images_become_luma_with_a_warning():
    palette = get_testdata_file("examples_palette.dcm")
    (image,) = read_images(palette)
    assert image.voi == "colour" and "PALETTE COLOR" in image.warnings[0]
    assert 0 <= image.values.min() and image.values.max() <= 1 and image.values.std() > 0
    ybr = get_testdata_file("SC_ybr_full_422_uncompressed.dcm")
    rgb = get_testdata_file("SC_rgb_dcmtk_+eb+cr.dcm")  # the same picture as RGB
    (a,) = read_images(ybr)
    (b,) = read_images(rgb)
    assert np.abs(a.pixels(8).astype(int) - b.pixels(8).astype(int)).max() <= 3


def test_not_images_and_frames_out_of_range(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("hello")
    with pytest.raises(DcmtoolsError) as info:
        list(read_images(str(text)))
    assert info.value.code == "not_dicom"
    with pytest.raises(DcmtoolsError) as info:
        list(read_images(get_testdata_file("examples_ybr_color.dcm"), frames=po.parse_frames("31-")))
    assert info.value.code == "no_image" and "30 frames" in info.value.message
    # --frames applies to multi-frame images: a single-frame image prints its frame
    assert len(list(read_images(get_testdata_file("CT_small.dcm"), frames=po.parse_frames("5")))) == 1


def test_pixel_aspect_ratio_from_spacing():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PixelSpacing = [0.5, 0.25]
    assert prepare_frame(ds).aspect == (2, 1)
    ds.PixelSpacing = [0.3, 0.3]
    assert prepare_frame(ds).aspect is None


def test_pvalue_rounding():
    values = np.array([[0.0, 0.5, 1.0, 1.2, -0.1]], dtype=np.float32)
    assert to_pvalues(values, 8).tolist() == [[0, 128, 255, 255, 0]]
    assert to_pvalues(values, 12).tolist() == [[0, 2048, 4095, 4095, 0]]


# ------------------------------------------------------------------ previews (--dry-run)


def test_densities():
    assert preview.density_level("BLACK", 0.5) == 0.0 and preview.density_level("WHITE", 0.5) == 1.0
    levels = [preview.density_level(str(d), 0.5) for d in (20, 50, 100, 200, 320)]
    assert levels[0] == pytest.approx(1.0) and levels[-1] == pytest.approx(0.0)
    assert all(a > b for a, b in zip(levels, levels[1:], strict=False))
    assert preview.density_level(None, 0.25) == 0.25


def test_compose_places_images_in_their_boxes():
    from dcmtools.printing.prepare import PreparedImage

    film = po.FilmOptions.from_strings(
        layout="2,1", film_size="8x10", orientation="LANDSCAPE", border_density="BLACK", empty_density="WHITE"
    )
    square = PreparedImage.from_values(np.full((50, 50), 0.5), path="a")
    canvas = preview.compose_film([square], film)
    width, height = preview.film_shape(film)
    assert canvas.shape == (height, width) and width > height  # landscape
    (x0, y0, w0, h0), (x1, y1, w1, h1) = preview.box_rectangles(film, width, height)
    side = min(w0, h0)
    grey = square.values[0, 0]
    assert canvas[y0 + h0 // 2, x0 + w0 // 2] == pytest.approx(grey, abs=1e-6)
    assert np.count_nonzero(np.isclose(canvas[y0 : y0 + h0, x0 : x0 + w0], grey, atol=1e-6)) == side * side
    assert np.all(canvas[y1 : y1 + h1, x1 : x1 + w1] == 1.0)  # the empty box
    assert canvas[0, 0] == 0.0  # border
    reverse = po.FilmOptions.from_strings(layout="1,1", polarity="REVERSE")
    dark = PreparedImage.from_values(np.zeros((10, 20)), path="b")
    canvas = preview.compose_film([dark], reverse)
    ((x, y, w, h),) = preview.box_rectangles(reverse, canvas.shape[1], canvas.shape[0])
    assert canvas[y + h // 2, x + w // 2] == 1.0


def test_resize_methods():
    values = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    nearest = preview.resize(values, 4, 4, "REPLICATE")
    assert nearest.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    smooth = preview.resize(values, 4, 4, "BILINEAR")
    assert smooth[0, 0] == 0.0 and 0 < smooth[1, 1] < 1


def test_dry_run_writes_films(tmp_path):
    paths = []
    for index in range(3):
        path = tmp_path / f"ct{index}.dcm"
        make_ct(path, patient="Rex^Dog")
        paths.append(str(path))
    out = tmp_path / "preview"
    result = dcmtools(
        "print",
        "PRINTER@127.0.0.1:9",
        *paths,
        "--layout",
        "2,1",
        "--film-size",
        "14x17",
        "--dry-run",
        "-o",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    films = [r for r in records(result.stdout) if r["type"] == "film"]
    assert [f["out"] for f in films] == [str(out / "film-0001.dcm"), str(out / "film-0002.dcm")]
    assert [f["empty_boxes"] for f in films] == [0, 1] and all(f["dry_run"] and f["bits"] == 12 for f in films)
    ds = pydicom.dcmread(out / "film-0001.dcm")
    assert (ds.BitsStored, ds.PhotometricInterpretation, ds.PatientName) == (12, "MONOCHROME2", "Rex^Dog")
    assert (ds.Columns, ds.Rows) == (films[0]["preview_columns"], films[0]["preview_rows"])
    assert str(paths[1]) in ds.ImageComments
    # no overwrite without --overwrite; nothing contacted the (absent) printer
    again = dcmtools("print", "PRINTER@127.0.0.1:9", *paths, "--layout", "2,1", "--dry-run", "-o", str(out), "--json")
    assert again.returncode == 1 and {r["error"]["code"] for r in records(again.stdout) if r["type"] == "film"} == {
        "exists"
    }
    forced = dcmtools(
        "print",
        "PRINTER@127.0.0.1:9",
        *paths,
        "--layout",
        "2,1",
        "--dry-run",
        "-o",
        str(out),
        "--overwrite",
        "--bits",
        "8",
        "--json",
    )
    assert forced.returncode == 0 and pydicom.dcmread(out / "film-0001.dcm").BitsStored == 8


def test_dry_run_output_is_valid_secondary_capture(tmp_path):
    if shutil.which("dciodvfy") is None:
        from peers import require

        require("dciodvfy")
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    result = dcmtools("print", "PRINTER@127.0.0.1:9", str(ct), "--dry-run", "-o", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    check = subprocess.run(["dciodvfy", str(tmp_path / "film-0001.dcm")], capture_output=True, text=True)
    errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
    assert errors == [], errors


def test_what_a_fatal_print_failure_is_about_is_decided_by_the_library():
    from dcmtools.printing import fatal_record_type
    from dcmtools.stream.records import ErrorCode

    assert fatal_record_type(DcmtoolsError(ErrorCode.PRINTER_FAILURE, "the printer is in FAILURE")) == "printer"
    refused = DcmtoolsError(ErrorCode.PRINT_REFUSED, "refused", operation="Film Session N-CREATE", status="0x0106")
    assert fatal_record_type(refused) == "film_session"
    assert fatal_record_type(DcmtoolsError(ErrorCode.REJECTED, "rejected")) == "association"
    assert fatal_record_type(DcmtoolsError(ErrorCode.PRINT_REFUSED, "refused", operation="Film Box N-CREATE")) == (
        "association"
    )
