"""Round trips of every pydicom image test file through every lossless target.

Each output is read back here with pydicom (not through dcmtools' own
verification) and must show the same pixels as the input; an image the
target cannot hold by PS3.5 section 8.2 must fail with ``cannot_encode``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pydicom
import pytest
from transcode_data import UNDECODABLE, data_file, image_files, pixels

from dcmtools.dicom import codecs
from dcmtools.transcode import options_for, transcode_file

LOSSLESS = ["explicit", "implicit", "deflated", "rle", "jpeg-ls", "j2k", "jpeg-lossless"]


def standard_allows(target: str, ds) -> bool:
    """Whether PS3.5 8.2 lets ``target`` hold the image (our own reading, not the code's)."""
    if target in ("explicit", "implicit", "deflated"):
        return True
    allocated = int(ds.BitsAllocated)
    stored = int(ds.BitsStored)
    pi = str(ds.PhotometricInterpretation)
    samples = int(ds.get("SamplesPerPixel", 1))
    if allocated == 1:
        return False
    if target == "j2k":
        return allocated in (8, 16, 24, 32, 40)
    if allocated not in (8, 16):
        return False
    if pi in ("YBR_FULL", "YBR_FULL_422") and samples == 3:
        # Lossy JPEG colour is decoded to RGB; other YBR_FULL stays YBR_FULL,
        # which RLE and JPEG-LS hold at 8 bits only.
        lossy_jpeg = str(ds.file_meta.TransferSyntaxUID) in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
        if not lossy_jpeg and target in ("rle", "jpeg-ls") and allocated != 8:
            return False
        if not lossy_jpeg and target == "jpeg-lossless":
            return False  # a limit of ours, see KNOWN_LIMITS
    if target == "jpeg-ls":
        return 2 <= stored <= 16
    return True


# Images the standard allows but the encoders here cannot write exactly:
# OpenJPEG handles samples of at most 24 bits, these hold 32-bit values; and
# libjpeg-turbo writes lossless JPEG colour as RGB only, so YBR_FULL images
# (not from lossy JPEG, which are decoded to RGB) are refused by jpeg-lossless.
KNOWN_LIMITS = {("j2k", "SC_rgb_rle_32bit.dcm"), ("j2k", "SC_rgb_rle_32bit_2frame.dcm")}


def test_the_bundled_images_are_many_and_varied():
    files = image_files()
    assert len(files) >= 70
    seen = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            seen.add(codecs.name_of(str(ds.file_meta.TransferSyntaxUID)))
    # Inputs in every family the issue names.
    assert {"implicit", "explicit", "big-endian", "deflated", "rle", "jpeg-ls", "j2k", "jpeg-baseline"} <= seen


@pytest.mark.parametrize("target", LOSSLESS)
def test_every_bundled_image_round_trips_losslessly(target, tmp_path):
    options = options_for(target)
    problems = []
    transcoded = 0
    for index, path in enumerate(image_files()):
        name = os.path.basename(path)
        out = str(tmp_path / f"{index}_{name}")
        record = transcode_file(path, out, options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = pydicom.dcmread(path)
        allowed = standard_allows(target, source) and (target, name) not in KNOWN_LIMITS
        if not record["ok"]:
            if allowed or record["error"]["code"] != "cannot_encode":
                problems.append(f"{name}: {record['error']}")
            assert not os.path.exists(out)
            continue
        if not allowed and record["action"] != "copied":
            problems.append(f"{name}: written although {target} cannot hold it")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pydicom.dcmread(out)
        if str(result.file_meta.TransferSyntaxUID) != codecs.resolve(target).uid:
            problems.append(f"{name}: written as {result.file_meta.TransferSyntaxUID}")
        for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation", "SamplesPerPixel"):
            if source.get(keyword) != result.get(keyword):
                problems.append(f"{name}: {keyword} {source.get(keyword)} became {result.get(keyword)}")
        if int(source.get("NumberOfFrames", 1) or 1) != int(result.get("NumberOfFrames", 1) or 1):
            problems.append(f"{name}: Number of Frames changed")
        expected, actual = pixels(source), pixels(result)
        if expected.shape != actual.shape or not np.array_equal(expected, actual):
            problems.append(f"{name}: pixels differ after {target}")
        if record["action"] == "transcoded":
            transcoded += 1
            assert record["verified"] is True
        assert record["size_out"] == os.path.getsize(out)
        assert record["path"] == path and record["out"] == out
    assert not problems, "\n".join(problems)
    assert transcoded >= 30  # most inputs were really re-encoded, not copied


@pytest.mark.parametrize("name,code", sorted(UNDECODABLE.items()))
def test_undecodable_pixel_data_gives_an_error_record_and_no_output(name, code, tmp_path):
    out = str(tmp_path / name)
    record = transcode_file(data_file(name), out, options_for("j2k"))
    assert record["ok"] is False
    assert record["error"]["code"] == code
    assert record["error"]["message"]
    assert not os.path.exists(out)


def test_a_file_already_in_the_target_syntax_is_copied_byte_for_byte(tmp_path):
    path = data_file("MR_small_RLE.dcm")
    out = str(tmp_path / "x.dcm")
    record = transcode_file(path, out, options_for("rle"))
    assert record["ok"] and record["action"] == "copied"
    assert "already rle" in record["note"]
    with open(path, "rb") as a, open(out, "rb") as b:
        assert a.read() == b.read()


@pytest.mark.peer
def test_big_endian_other_binary_values_are_swapped_too(tmp_path):
    """A big endian file made by DCMTK from a palette image: its LUT data (OW) must survive."""
    import shutil
    import subprocess

    from peers import require

    require("dcmconv")
    original = data_file("examples_palette.dcm")
    big = str(tmp_path / "big.dcm")
    subprocess.run(["dcmconv", "+tb", original, big], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pydicom.dcmread(big).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2"
    out = str(tmp_path / "little.dcm")
    record = transcode_file(big, out, options_for("explicit"))
    assert record["ok"], record
    a, b = pydicom.dcmread(original), pydicom.dcmread(out)
    assert np.array_equal(a.pixel_array, b.pixel_array)
    for keyword in ("RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData"):
        assert a[keyword].value == b[keyword].value, keyword
    assert a.RedPaletteColorLookupTableDescriptor == b.RedPaletteColorLookupTableDescriptor
    assert shutil.which("dcmconv")


def test_the_fast_writer_writes_what_pydicom_writes():
    """``_explicit_le_bytes`` must equal ``dcmwrite`` byte for byte wherever it applies."""
    import copy
    import io

    from pydicom.data import get_testdata_files

    from dcmtools.transcode.writing import _explicit_le_bytes, _prepare_meta

    compared = 0
    for path in sorted(get_testdata_files()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
            except Exception:
                continue
        if "SOPClassUID" not in ds or "SOPInstanceUID" not in ds:
            continue
        own = str(ds.file_meta.get("TransferSyntaxUID", ""))
        for uid in {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.80", own}:
            one, two = copy.deepcopy(ds), copy.deepcopy(ds)
            if "PixelData" in one and uid != own and uid != "1.2.840.10008.1.2.1":
                continue  # native pixel data under a compressed syntax is not a file
            _prepare_meta(one, uid)
            _prepare_meta(two, uid)
            fast = _explicit_le_bytes(one)
            if fast is None:
                continue
            buffer = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    pydicom.dcmwrite(buffer, two, enforce_file_format=True)
                except Exception:
                    continue
            assert fast == buffer.getvalue(), path
            compared += 1
    assert compared >= 150
