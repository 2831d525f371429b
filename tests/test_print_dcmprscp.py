"""dcmtools print against DCMTK's print SCP (dcmprscp), started here on a free port.

Each test prints, then reads back what dcmprscp stored: the Stored Print
object of each film (display format, film size, orientation ...) and its
Hardcopy Grayscale images, whose pixels must be exactly the P-values we
prepared -- and those are checked against the grayscale pipeline written
out independently in print_data.py.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
from peers import dcmtools, free_port
from print_data import (
    expected_pvalues,
    linear_window,
    make_ct,
    make_gray8,
    make_mono1,
    make_not_an_image,
    printscp,
    stored_films,
)
from pydicom.data import get_testdata_file

pytestmark = pytest.mark.peer


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def films_of(result) -> list[dict]:
    return [r for r in records(result.stdout) if r["type"] == "film"]


def hg_pixels(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.int64)


def test_single_image_12_bit_pixels_and_film_settings(tmp_path):
    ct = tmp_path / "ct.dcm"
    stored = make_ct(ct, center=40, width=400)
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, str(ct), "--film-size", "14x17", "--orientation", "LANDSCAPE", "--json")
        assert result.returncode == 0, result.stderr
        (film,) = films_of(result)
        assert film["ok"] and film["bits"] == 12 and film["film_size"] == "14INX17IN"
        assert film["presentation_lut"] == "IDENTITY"
        assert film["images"][0]["window"] == [40, 400] and film["images"][0]["voi"] == "window"
        ((sp, (hg,)),) = stored_films(scp.db)
    box = sp.FilmBoxContentSequence[0]
    assert (box.ImageDisplayFormat, box.FilmSizeID, box.FilmOrientation) == ("STANDARD\\1,1", "14INX17IN", "LANDSCAPE")
    assert (hg.BitsAllocated, hg.BitsStored, hg.HighBit, hg.PhotometricInterpretation) == (16, 12, 11, "MONOCHROME2")
    expected = expected_pvalues(linear_window(stored - 1024.0, 40, 400), 12)
    assert np.array_equal(hg_pixels(hg), expected)
    assert film["film_box_uid"] and film["film_session_uid"]  # assigned by the printer


def test_two_by_two_layout_of_four_images(tmp_path):
    from dcmtools.printing import read_images

    paths = [tmp_path / name for name in ("a.dcm", "b.dcm", "c.dcm")]
    make_ct(paths[0])
    make_mono1(paths[1])
    make_gray8(paths[2])
    mr = get_testdata_file("MR_small.dcm")
    inputs = [str(paths[0]), mr, str(paths[1]), str(paths[2])]
    with printscp(tmp_path) as scp:
        result = dcmtools(
            "print",
            scp.peer,
            *inputs,
            "--layout",
            "2,2",
            "--film-size",
            "8INX10IN",
            "--orientation",
            "PORTRAIT",
            "--magnification",
            "BILINEAR",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        (film,) = films_of(result)
        assert [image["position"] for image in film["images"]] == [1, 2, 3, 4]
        assert film["empty_boxes"] == 0
        ((sp, hardcopy),) = stored_films(scp.db)
    box = sp.FilmBoxContentSequence[0]
    assert (box.ImageDisplayFormat, box.FilmSizeID, box.FilmOrientation, box.MagnificationType) == (
        "STANDARD\\2,2",
        "8INX10IN",
        "PORTRAIT",
        "BILINEAR",
    )
    assert len(hardcopy) == 4
    for path, hg in zip(inputs, hardcopy, strict=False):
        (ours,) = read_images(path)
        assert np.array_equal(hg_pixels(hg), ours.pixels(12).astype(np.int64)), path


def test_eight_bit_when_asked(tmp_path):
    ct = tmp_path / "ct.dcm"
    stored = make_ct(ct, center=100, width=1000)
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, str(ct), "--bits", "8", "--json")
        assert result.returncode == 0, result.stderr
        ((_, (hg,)),) = stored_films(scp.db)
    assert (hg.BitsAllocated, hg.BitsStored) == (8, 8)
    assert np.array_equal(hg_pixels(hg), expected_pvalues(linear_window(stored - 1024.0, 100, 1000), 8))
    assert films_of(result)[0]["bits"] == 8


def test_falls_back_to_8_bit_when_the_printer_refuses_12(tmp_path):
    ct = tmp_path / "ct.dcm"
    stored = make_ct(ct)
    with printscp(tmp_path, Supports12Bit="false") as scp:
        result = dcmtools("print", scp.peer, str(ct), str(ct), "--layout", "2,1", "--json")
        assert result.returncode == 0, result.stderr
        (film,) = films_of(result)
        ((_, hardcopy),) = stored_films(scp.db)
    assert film["bits"] == 8 and [image["bits"] for image in film["images"]] == [8, 8]
    assert any("refused 12-bit" in warning for warning in film["warnings"])
    assert "refused 12-bit" in result.stderr
    for hg in hardcopy:
        assert hg.BitsStored == 8
        assert np.array_equal(hg_pixels(hg), expected_pvalues(linear_window(stored - 1024.0, 40, 400), 8))


def test_twelve_bit_refused_when_forced(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path, Supports12Bit="false") as scp:
        result = dcmtools("print", scp.peer, str(ct), "--bits", "12", "--json")
        assert stored_films(scp.db) == []
    assert result.returncode == 1
    (film,) = films_of(result)
    assert film["ok"] is False and film["error"]["status"] == "0x0106"
    assert "12 bits" in film["error"]["message"] and "--bits 8" in film["error"]["hint"]


def test_monochrome1_is_inverted_after_the_window(tmp_path):
    cr = tmp_path / "cr.dcm"
    stored = make_mono1(cr)
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, str(cr), "--json")
        assert result.returncode == 0, result.stderr
        ((_, (hg,)),) = stored_films(scp.db)
    expected = expected_pvalues(1.0 - linear_window(stored.astype(float), 400, 600), 12)
    assert hg.PhotometricInterpretation == "MONOCHROME2"
    assert np.array_equal(hg_pixels(hg), expected)
    # MONOCHROME1: the lowest stored values are white, the highest black.
    assert hg_pixels(hg)[:, 0].min() == 4095 and hg_pixels(hg)[:, -1].max() == 0


def test_ct_with_window_from_the_command_line(tmp_path):
    ct = tmp_path / "ct.dcm"
    stored = make_ct(ct)  # the file says 40/400
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, str(ct), "--window", "-600,1500", "--json")
        assert result.returncode == 0, result.stderr
        ((_, (hg,)),) = stored_films(scp.db)
    assert films_of(result)[0]["images"][0]["window"] == [-600, 1500]
    assert np.array_equal(hg_pixels(hg), expected_pvalues(linear_window(stored - 1024.0, -600, 1500), 12))


def test_rgb_input_is_printed_as_luma_with_a_warning(tmp_path):
    rgb_path = get_testdata_file("examples_rgb_color.dcm")
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, rgb_path, "--json")
        assert result.returncode == 0, result.stderr
        ((_, (hg,)),) = stored_films(scp.db)
    rgb = pydicom.dcmread(rgb_path).pixel_array.astype(float)
    luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    assert np.array_equal(hg_pixels(hg), expected_pvalues(luma, 12))
    image = films_of(result)[0]["images"][0]
    assert image["voi"] == "colour" and "grayscale" in image["warnings"][0]
    assert "colour image (RGB) printed in grayscale" in result.stderr


def test_multiframe_frames_and_several_films(tmp_path):
    path = get_testdata_file("examples_ybr_color.dcm")  # 30 frames
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, path, "--frames", "2-4,7", "--layout", "1,2", "--quiet", "--json")
        assert result.returncode == 0, result.stderr
        stored = stored_films(scp.db)
    films = films_of(result)
    assert [[image["frame"] for image in film["images"]] for film in films] == [[2, 3], [4, 7]]
    assert len(stored) == 2 and all(
        sp.FilmBoxContentSequence[0].ImageDisplayFormat == "STANDARD\\1,2" for sp, _ in stored
    )
    assert result.stderr.count("printed in grayscale") == 0  # --quiet


def test_last_film_keeps_its_empty_boxes(tmp_path):
    paths = []
    for index in range(3):
        path = tmp_path / f"us{index}.dcm"
        make_gray8(path, patient="Rex^Dog")
        paths.append(str(path))
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, *paths, "--layout", "2,1", "--json")
        assert result.returncode == 0, result.stderr
        stored = stored_films(scp.db)
    films = films_of(result)
    assert [film["empty_boxes"] for film in films] == [0, 1]
    assert [len(images) for _, images in stored] == [2, 1]
    assert records(result.stdout)[-1]["ok"] == 2


def test_unsupported_film_size_is_named(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, str(ct), str(ct), "--film-size", "A3", "--layout", "1,1", "--no-json")
        assert stored_films(scp.db) == []
    assert result.returncode == 1
    assert "film size A3 is not supported by this printer" in result.stdout
    assert "--film-size" in result.stdout  # what to do
    assert "no further film was tried" in result.stdout  # two images, one film refused


def test_unsupported_layout_is_named(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path, DisplayFormat="1,1\\2,2") as scp:
        result = dcmtools("print", scp.peer, str(ct), "--layout", "3,4", "--json")
        assert stored_films(scp.db) == []
    assert result.returncode == 1
    (film,) = films_of(result)
    error = film["error"]
    assert error["code"] == "print_refused" and error["status"] == "0x0106"
    assert error["operation"] == "Film Box N-CREATE" and error["attributes"] == ["ImageDisplayFormat"]
    assert error["message"] == "the printer refused the film box: layout STANDARD\\3,4 is not supported by this printer"
    assert "--layout" in error["hint"]


def test_film_session_settings_reach_the_printer(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path) as scp:
        result = dcmtools(
            "print",
            scp.peer,
            str(ct),
            "--copies",
            "2",
            "--medium",
            "blue film",
            "--priority",
            "HIGH",
            "--destination",
            "PROCESSOR",
            "--label",
            "Rex the dog",
            "--polarity",
            "REVERSE",
            "--border-density",
            "BLACK",
            "--empty-density",
            "WHITE",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        ((sp, _),) = stored_films(scp.db)
        log = scp.log.read_text(errors="replace")
    film = films_of(result)[0]
    assert (film["copies"], film["medium"], film["priority"], film["destination"], film["label"]) == (
        2,
        "BLUE FILM",
        "HIGH",
        "PROCESSOR",
        "Rex the dog",
    )
    # dcmprscp keeps film session attributes only in its log (-d): the N-CREATE we sent.
    for line in ("NumberOfCopies", "[BLUE FILM]", "[HIGH]", "[PROCESSOR]", "[Rex the dog]"):
        assert line in log, line
    box = sp.FilmBoxContentSequence[0]
    assert (box.BorderDensity, box.EmptyImageDensity) == ("BLACK", "WHITE")
    assert sp.ImageBoxContentSequence[0].Polarity == "REVERSE"


def test_bad_inputs_are_records_and_the_rest_prints(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    sr = tmp_path / "sr.dcm"
    make_not_an_image(sr)
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, str(text), str(ct), str(sr), str(tmp_path / "missing.dcm"), "--json")
        assert len(stored_films(scp.db)) == 1
    assert result.returncode == 1
    out = records(result.stdout)
    errors = {r["path"]: r["error"]["code"] for r in out if r["type"] == "file"}
    assert errors == {str(text): "not_dicom", str(sr): "no_image", str(tmp_path / "missing.dcm"): "not_found"}
    assert [f["ok"] for f in films_of(result)] == [True]


def test_status(tmp_path):
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, "--status", "--json")
    assert result.returncode == 0, result.stderr
    (record,) = [r for r in records(result.stdout) if r["type"] == "printer"]
    assert record["ok"] and record["printer_status"] == "NORMAL" and record["printer_status_info"] == "NORMAL"
    assert record["meaning"] == "the printer is ready"


def test_status_readable_form(tmp_path):
    with printscp(tmp_path) as scp:
        result = dcmtools("print", scp.peer, "--status", "--no-json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"printer {scp.peer}  NORMAL (the printer is ready)")


def test_nothing_listening(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    result = dcmtools("print", f"PRINTSCP@127.0.0.1:{free_port()}", str(ct), "--json")
    assert result.returncode == 3
    assert "nothing is listening" in result.stderr


def test_library_use(tmp_path):
    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.printing import FilmOptions, print_files, printer_status

    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path) as scp:
        peer = parse_peer(scp.peer)
        status = printer_status(peer, NetOptions(timeout=10))
        film = FilmOptions.from_strings(layout="1,1", film_size="24x30", window="0,100")
        out = list(print_files(peer, [str(ct)], film, NetOptions(timeout=10)))
        ((sp, _),) = stored_films(scp.db)
    assert status["printer_status"] == "NORMAL"
    assert [r["type"] for r in out] == ["printer", "film"] and out[1]["ok"]
    assert sp.FilmBoxContentSequence[0].FilmSizeID == "24CMX30CM"


def test_refused_film_session_is_named_and_ends_the_run(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path, MediumType="PAPER") as scp:
        result = dcmtools("print", scp.peer, str(ct), "--medium", "CLEAR FILM", "--copies", "2", "--json")
        assert stored_films(scp.db) == []
    assert result.returncode == 1
    (record,) = [r for r in records(result.stdout) if r["type"] == "film_session"]
    assert record["error"]["message"] == (
        "the printer refused the film session: medium CLEAR FILM is not supported by this printer"
    )
    assert record["error"]["attributes"] == ["MediumType"] and "--medium" in record["error"]["hint"]
    assert "medium CLEAR FILM is not supported" in result.stderr


def test_several_refused_settings_are_all_named(tmp_path):
    ct = tmp_path / "ct.dcm"
    make_ct(ct)
    with printscp(tmp_path, MagnificationType="REPLICATE", FilmSizeID="8INX10IN") as scp:
        result = dcmtools(
            "print",
            scp.peer,
            str(ct),
            "--magnification",
            "CUBIC",
            "--film-size",
            "14x17",
            "--orientation",
            "LANDSCAPE",
            "--json",
        )
    (film,) = films_of(result)
    assert result.returncode == 1
    assert film["error"]["attributes"] == ["FilmSizeID", "MagnificationType"]  # LANDSCAPE is fine
    assert "film size 14INX17IN is not supported" in film["error"]["message"]
    assert "magnification CUBIC is not supported" in film["error"]["message"]


def test_printer_gone_mid_run_ends_it_plainly(tmp_path):
    import subprocess
    import sys

    from peers import REPO, stop

    ct = tmp_path / "ct.dcm"
    make_ct(ct, rows=512, columns=512)
    with printscp(tmp_path) as scp:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dcmtools", "print", scp.peer, *[str(ct)] * 60, "--json", "--timeout", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines = []
        for line in proc.stdout:
            lines.append(json.loads(line))
            if lines[-1]["type"] == "film":
                break
        stop(scp.process)  # the printer goes away after the first film
        rest, err = proc.communicate(timeout=60)
    lines += records(rest)
    films = [r for r in lines if r["type"] == "film"]
    assert proc.returncode == 5, (proc.returncode, err)  # the connection dropped
    assert 1 <= len(films) < 60 and all(f["ok"] for f in films)
    assert "Traceback" not in err and lines[-1]["type"] == "summary"
