"""``dcmtools render`` on the command line: outputs, failures, options, thumbnails, contact sheets."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
from peers import REPO, dcmtools
from PIL import Image
from transcode_data import UNDECODABLE, data_file

from dcmtools.render import RenderOptions, render


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.fixture
def tree(tmp_path):
    """in/a/ct.dcm, in/a/mr_be.dcm, in/b/ybr.dcm (30 frames), in/b/plan.dcm, in/junk.txt, in/empty.dcm, in/bad.dcm."""
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    shutil.copy(data_file("CT_small.dcm"), root / "a" / "ct.dcm")
    shutil.copy(data_file("MR_small_bigendian.dcm"), root / "a" / "mr_be.dcm")
    shutil.copy(data_file("examples_ybr_color.dcm"), root / "b" / "ybr.dcm")
    shutil.copy(data_file("rtplan.dcm"), root / "b" / "plan.dcm")
    shutil.copy(data_file("JPEG2000-embedded-sequence-delimiter.dcm"), root / "bad.dcm")
    (root / "junk.txt").write_text("not dicom\n")
    (root / "empty.dcm").write_bytes(b"")
    return root


def test_render_mirrors_names_frames_and_records_failures(tree, tmp_path):
    out = tmp_path / "out"
    run = dcmtools("render", str(tree), "-o", str(out), "--jobs", "2")
    assert run.returncode == 1, run.stderr  # some inputs failed: never 0
    assert "Traceback" not in run.stderr
    by_name = {os.path.basename(r["path"]): r for r in records(run.stdout) if r["type"] == "file"}
    assert by_name["ct.dcm"]["ok"] and by_name["ct.dcm"]["out"] == str(out / "a" / "ct.png")
    assert by_name["ct.dcm"]["voi"] == "minmax"  # CT_small has no window
    assert by_name["mr_be.dcm"]["voi"] == "file" and by_name["mr_be.dcm"]["window"] == [600, 1600]
    ybr = by_name["ybr.dcm"]
    assert ybr["ok"] and ybr["frames"] == 30 and len(ybr["outs"]) == 30
    assert ybr["outs"][2] == str(out / "b" / "ybr.f0003.png")
    assert Image.open(ybr["outs"][2]).mode == "RGB"
    assert by_name["plan.dcm"]["error"]["code"] == "no_image"
    assert by_name["empty.dcm"]["error"]["code"] == "empty"
    assert by_name["junk.txt"]["error"]["code"] == "not_dicom"
    assert by_name["bad.dcm"]["error"]["code"] == "cannot_decode"
    summary = records(run.stdout)[-1]
    assert summary["type"] == "summary" and summary["ok"] == 3 and summary["failed"] == 4
    assert sorted(p.name for p in (out / "a").iterdir()) == ["ct.png", "mr_be.png"]
    # An output that exists is not replaced without --overwrite.
    first = dcmtools("render", str(tree / "a" / "ct.dcm"), "-o", str(tmp_path / "one"))
    assert first.returncode == 0 and (tmp_path / "one" / "ct.png").exists()  # a file argument: its name only
    again = dcmtools("render", str(tree / "a" / "ct.dcm"), "-o", str(tmp_path / "one"))
    assert again.returncode == 1 and records(again.stdout)[0]["error"]["code"] == "exists"
    forced = dcmtools("render", str(tree / "a" / "ct.dcm"), "-o", str(tmp_path / "one"), "--overwrite")
    assert forced.returncode == 0, forced.stdout


def test_every_undecodable_bundled_file_is_a_record(tmp_path):
    paths = [data_file(name) for name in UNDECODABLE]
    got = list(render(paths, tmp_path, RenderOptions(), jobs=1))
    assert [r["ok"] for r in got] == [False] * len(paths)
    assert not list(tmp_path.rglob("*.png"))


def test_jobs_give_the_same_images(tree, tmp_path):
    one = dcmtools("render", str(tree / "a"), "-o", str(tmp_path / "o1"), "--jobs", "1")
    two = dcmtools("render", str(tree / "a"), "-o", str(tmp_path / "o2"), "--jobs", "2")
    assert one.returncode == two.returncode == 0
    for name in ("ct.png", "mr_be.png"):
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / "o1" / name)), np.asarray(Image.open(tmp_path / "o2" / name))
        )


def test_bits_format_frame_size_window(tree, tmp_path):
    mr = str(tree / "a" / "mr_be.dcm")
    run = dcmtools("render", mr, "-o", str(tmp_path / "16"), "--bits", "16", "--minmax")
    img = Image.open(tmp_path / "16" / "mr_be.png")
    assert img.mode == "I;16" and np.asarray(img).max() == 65535 and np.asarray(img).min() == 0, run.stdout
    run = dcmtools(
        "render",
        str(tree / "b" / "ybr.dcm"),
        "-o",
        str(tmp_path / "j"),
        "--frame",
        "3",
        "--format",
        "jpeg",
        "--quality",
        "80",
        "--size",
        "100x100",
    )
    record = records(run.stdout)[0]
    assert record["ok"] and record["out"] == str(tmp_path / "j" / "ybr.f0003.jpg")
    img = Image.open(record["out"])
    assert img.format == "JPEG" and max(img.size) == 100 and img.size[0] <= 100
    run = dcmtools("render", mr, "-o", str(tmp_path / "w"), "--window", "600,10")
    shown = np.asarray(Image.open(tmp_path / "w" / "mr_be.png"))
    assert (
        set(np.unique(shown)) - set(range(256)) == set() and (shown == 0).mean() > 0.1 and (shown == 255).mean() > 0.1
    )
    hist = list(render([mr], tmp_path / "h", RenderOptions(histogram=True)))[0]
    mm = list(render([mr], tmp_path / "m", RenderOptions(minmax=True)))[0]
    assert hist["voi"] == "histogram" and hist["window"][1] < mm["window"][1]
    # The file has no VOI LUT: a record that says so.
    bad = list(render([mr], tmp_path / "v", RenderOptions(voi_lut=1)))[0]
    assert bad["ok"] is False and "VOI LUT" in bad["error"]["message"]


def test_voi_lut_is_applied(tmp_path):
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    item = pydicom.Dataset()
    # An inverted ramp over the stored values 0..4095 (CT_small's are 128..2191): high values dark.
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", [65535 - v * 16 for v in range(4096)])  # LUT Data
    ds.VOILUTSequence = [item]
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in ds:
            delattr(ds, keyword)
    path = tmp_path / "ct_voilut.dcm"
    ds.save_as(path)
    record = list(render([str(path)], tmp_path / "o", RenderOptions(voi_lut=1)))[0]
    assert record["ok"] and record["voi_lut"] == 1
    shown = np.asarray(Image.open(record["out"])).astype(int)
    expected = (65535 - ds.pixel_array.astype(int) * 16) * 255 / 65535
    assert np.abs(shown - expected).max() <= 1
    default = list(render([str(path)], tmp_path / "d", RenderOptions()))[0]
    assert default["voi"] == "file_voi_lut"


def test_overlays_are_burned_in(tmp_path):
    path = data_file("examples_overlay.dcm")
    plain = list(render([path], tmp_path / "p", RenderOptions()))[0]
    burned = list(render([path], tmp_path / "o", RenderOptions(overlays=True)))[0]
    assert burned["overlays"] == 1
    a, b = np.asarray(Image.open(plain["out"])), np.asarray(Image.open(burned["out"]))
    ds = pydicom.dcmread(path)
    mask = ds.overlay_array(0x6000).astype(bool)
    assert (b[mask] == 255).all() and np.array_equal(a[~mask], b[~mask]) and not (a[mask] == 255).all()


def test_usage_errors():
    assert dcmtools("render", "x.dcm").returncode == 2  # no -o
    assert dcmtools("render", "x.dcm", "-o", "o", "--window", "40,400", "--minmax").returncode == 2
    assert dcmtools("render", "x.dcm", "-o", "o", "--window", "forty").returncode == 2
    assert dcmtools("render", "x.dcm", "-o", "o", "--bits", "16", "--format", "jpeg").returncode == 2


def test_thumbnails_one_per_series(tmp_path):
    run = dcmtools("render", str(REPO / "samples"), "-o", str(tmp_path), "--thumbnails")
    assert run.returncode == 0, run.stderr
    got = [r for r in records(run.stdout) if r["type"] == "series"]
    series = {}
    for path in (REPO / "samples").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        series.setdefault(ds.SeriesInstanceUID, []).append((int(ds.InstanceNumber or 0), str(path)))
    assert {r["series_uid"] for r in got} == set(series)
    for record in got:
        members = sorted(series[record["series_uid"]])
        assert record["instances"] == len(members)
        assert os.path.samefile(record["path"], members[(len(members) - 1) // 2][1])  # the middle instance
        assert max(Image.open(record["out"]).size) == 256


def test_contact_sheet_of_the_samples(tmp_path):
    sheet = tmp_path / "sheet.png"
    run = dcmtools(
        "render",
        str(REPO / "samples"),
        "--sheet",
        str(sheet),
        "--label",
        "Modality,SeriesDescription",
        "--size",
        "128x128",
    )
    assert run.returncode == 0, run.stderr
    tiles = [r for r in records(run.stdout) if r["type"] == "file"]
    summary = records(run.stdout)[-1]
    n = len(list((REPO / "samples").rglob("*.dcm")))
    assert len(tiles) == n == summary["tiles"]
    cols = 4  # ceil(sqrt(11))
    img = Image.open(sheet)
    cell_w, cell_h = 128 + 4, 128 + 2 * 14 + 4 + 4
    assert img.size == (cols * cell_w, -(-n // cols) * cell_h)
    pixels = np.asarray(img.convert("L"))
    for record in tiles:
        x, y, w, h = record["tile"]
        tile = pixels[y : y + h, x : x + w]
        assert tile.std() > 5, f"{record['path']} tile is blank"
        label = pixels[y + h : y + h + 28, x : x + w]
        assert label.max() > 100, f"{record['path']} has no label"
        assert record["labels"][0] in {"CT", "MR", "CR", "NM", "OT"}


def test_help_examples_run(tmp_path):
    run = dcmtools("render", "--help")
    assert run.returncode == 0
    examples = [
        line.strip() for line in run.stdout.split("Examples:")[1].splitlines() if line.strip().startswith("dcmtools ")
    ]
    assert len(examples) >= 6
    # The folders and files the examples name.
    shutil.copytree(REPO / "samples", tmp_path / "study")
    shutil.copytree(REPO / "samples" / "human-ct", tmp_path / "ct")
    shutil.copytree(REPO / "samples", tmp_path / "archive")
    shutil.copy(data_file("examples_ybr_color.dcm"), tmp_path / "us.dcm")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for example in examples:
        args = shlex.split(example)[1:]
        done = subprocess.run(
            [sys.executable, "-m", "dcmtools", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        assert done.returncode == 0, (example, done.stdout[-2000:], done.stderr[-2000:])
        assert records(done.stdout)[-1]["failed"] == 0, example
    assert (tmp_path / "sheet.png").exists() and (tmp_path / "out" / "us.f0003.jpg").exists()
    assert len(list((tmp_path / "thumbs").rglob("*.png"))) == 6
    assert re.search(r"I;16", Image.open(next((tmp_path / "png16").rglob("*.png"))).mode)
