"""What dcmtools transcode writes, decoded by DCMTK and GDCM, and checked by dciodvfy.

DCMTK (dcmdjpls, dcmdrle, dcmdjpeg) and GDCM (gdcmconv --raw) decode our
outputs to uncompressed files; pydicom reads those and their pixels must be
the input's.  dciodvfy must find no error in an output that it did not find
in the input.
"""

from __future__ import annotations

import collections
import os
import subprocess
import warnings

import numpy as np
import pydicom
import pytest
from peers import require
from transcode_data import data_file, pixels

from dcmtools.transcode import options_for, transcode_file

pytestmark = pytest.mark.peer

# A spread of what archives hold: signed 16-bit CT, big endian MR, 12-bit
# MONOCHROME1 CR, 14-bit signed, RGB 8 and 16 bits, palette colour,
# multi-frame, a 3x3 image, a YCbCr JPEG baseline multi-frame (decoded to
# RGB), deflated input.
SAMPLES = [
    "CT_small.dcm",
    "MR_small_bigendian.dcm",
    "dicomdirtests/77654033/CR1/6154",
    "693_J2KI.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm",
    "examples_palette.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_ybr_color.dcm",
    "examples_overlay.dcm",
    "image_dfl.dcm",
]

DCMTK = {"jpeg-ls": "dcmdjpls", "rle": "dcmdrle", "jpeg-lossless": "dcmdjpeg"}


def _path(name: str) -> str:
    if "/" not in name:
        return data_file(name)
    from pydicom.data import get_testdata_files

    matches = [p for p in get_testdata_files() if p.endswith(name)]
    assert matches, name
    return matches[0]


def _transcode(name: str, target: str, tmp_path) -> str:
    """Our ``target`` output of the sample (made from an explicit copy when it already is ``target``)."""
    source = _path(name)
    out = str(tmp_path / f"{target}_{os.path.basename(name)}")
    record = transcode_file(source, out, options_for(target))
    if record.get("action") == "copied":
        plain = str(tmp_path / f"explicit_{os.path.basename(name)}")
        assert transcode_file(source, plain, options_for("explicit"))["ok"]
        os.unlink(out)
        record = transcode_file(plain, out, options_for(target))
    assert record["ok"], record
    assert record["action"] == "transcoded"
    return out


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


@pytest.mark.parametrize("target", sorted(DCMTK))
@pytest.mark.parametrize("name", SAMPLES)
def test_dcmtk_decodes_what_we_write_to_the_same_pixels(name, target, tmp_path):
    tool = DCMTK[target]
    require(tool)
    ours = _transcode(name, target, tmp_path)
    decoded = str(tmp_path / "dcmtk.dcm")
    run = subprocess.run([tool, ours, decoded], capture_output=True, text=True)  # DCMTK's default options
    assert run.returncode == 0, run.stderr
    result = _read(decoded)
    assert str(result.file_meta.TransferSyntaxUID) in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
    expected, actual = pixels(_path(name)), pixels(result)
    assert expected.shape == actual.shape
    assert np.array_equal(expected, actual), f"{tool} decodes {target} of {name} to other pixels"


@pytest.mark.parametrize("name", SAMPLES)
def test_gdcm_decodes_our_jpeg2000_to_the_same_pixels(name, tmp_path):
    require("gdcmconv")
    ours = _transcode(name, "j2k", tmp_path)
    decoded = str(tmp_path / "gdcm.dcm")
    run = subprocess.run(["gdcmconv", "--raw", ours, decoded], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = _read(decoded)
    assert str(result.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1"
    expected, actual = pixels(_path(name)), pixels(result)
    assert expected.shape == actual.shape
    assert np.array_equal(expected, actual), f"gdcmconv decodes our j2k of {name} to other pixels"


def _errors(path: str) -> collections.Counter:
    run = subprocess.run(["dciodvfy", path], capture_output=True, text=True)
    lines = (run.stdout + run.stderr).splitlines()
    return collections.Counter(line.strip() for line in lines if line.startswith("Error"))


# Not "deflated": dciodvfy cannot read deflated files at all (not even
# DCMTK's own 'dcmconv +td' output); DCMTK reads ours in the test below.
DCIODVFY_TARGETS = [
    "explicit",
    "implicit",
    "rle",
    "jpeg-ls",
    "j2k",
    "jpeg-lossless",
    "j2k-lossy",
    "jpeg-ls-near",
    "jpeg-baseline",
]


@pytest.mark.parametrize("target", DCIODVFY_TARGETS)
def test_dciodvfy_finds_no_new_error_in_our_outputs(target, tmp_path):
    require("dciodvfy")
    checked = 0
    new_errors = {}
    for name in [
        "CT_small.dcm",
        "MR_small_bigendian.dcm",
        "SC_rgb_rle.dcm",
        "examples_palette.dcm",
        "examples_ybr_color.dcm",
        "examples_overlay.dcm",
        "examples_rgb_color.dcm",
        "JPEG2000.dcm",
        "examples_jpeg2k.dcm",
    ]:
        out = str(tmp_path / f"{target}_{name}")
        record = transcode_file(_path(name), out, options_for(target))
        if not record["ok"]:
            assert record["error"]["code"] == "cannot_encode", record  # e.g. palette to a lossy syntax
            continue
        before, after = _errors(_path(name)), _errors(out)
        extra = after - before
        if extra:
            new_errors[name] = sorted(extra)
        checked += 1
    assert checked >= 4
    assert not new_errors, new_errors


@pytest.mark.parametrize("name", ["CT_small.dcm", "examples_palette.dcm", "SC_rgb_rle_2frame.dcm"])
def test_dcmtk_reads_our_deflated_files(name, tmp_path):
    require("dcmconv")
    ours = _transcode(name, "deflated", tmp_path)
    plain = str(tmp_path / "dcmtk.dcm")
    run = subprocess.run(["dcmconv", "+te", ours, plain], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    result = _read(plain)
    assert str(result.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1"
    assert np.array_equal(pixels(_path(name)), pixels(result))
    assert result.SOPInstanceUID == _read(_path(name)).SOPInstanceUID
