"""``dcmtools transcode`` on the command line: records, mirroring, failures, options."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pydicom
import pytest
from peers import REPO, dcmtools
from transcode_data import data_file, pixels

from dcmtools.transcode import transcode


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def digest(folder) -> dict[str, str]:
    result = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as stream:
                result[os.path.relpath(path, folder)] = hashlib.sha256(stream.read()).hexdigest()
    return result


@pytest.fixture
def tree(tmp_path):
    """in/a/b/ct.dcm, in/a/mr_be.dcm, in/c/rgb.dcm, in/c/plan.dcm, in/junk.txt, in/empty.dcm."""
    root = tmp_path / "in"
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    shutil.copy(data_file("CT_small.dcm"), root / "a" / "b" / "ct.dcm")
    shutil.copy(data_file("MR_small_bigendian.dcm"), root / "a" / "mr_be.dcm")
    shutil.copy(data_file("SC_rgb_rle_2frame.dcm"), root / "c" / "rgb.dcm")
    shutil.copy(data_file("rtplan.dcm"), root / "c" / "plan.dcm")
    (root / "junk.txt").write_text("not dicom\n")
    (root / "empty.dcm").write_bytes(b"")
    return root


def test_help_shows_examples_and_the_cli_imports_no_pydicom():
    run = dcmtools("transcode", "--help")
    assert run.returncode == 0
    assert "dcmtools transcode study/ --to jpeg-ls -o compressed/" in run.stdout
    assert "jpeg-ls-near" in run.stdout and "--keep-uid" in run.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, dcmtools.cli; print(sorted(m for m in ('pydicom','numpy','imagecodecs') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert probe.stdout.strip() == "[]", probe.stderr


def test_list_shows_what_decodes_and_encodes():
    run = dcmtools("transcode", "--list", "--json")
    assert run.returncode == 0
    rows = {row["name"]: row for row in records(run.stdout)}
    assert rows["rle"]["encoder"].startswith("pylibjpeg-rle")
    assert rows["jpeg-ls"]["encoder"].startswith("pyjpegls")
    assert rows["j2k"]["encoder"].startswith("pylibjpeg-openjpeg")
    assert rows["jpeg-lossless"]["encoder"].startswith("imagecodecs")
    assert rows["jpeg-lossless"]["uid"] == "1.2.840.10008.1.2.4.70"
    assert rows["big-endian"]["decode"] is True and rows["big-endian"]["encode"] is False
    assert rows["deflated"]["decode"] and rows["deflated"]["encode"]
    assert all(rows[name]["decode"] for name in rows)
    human = dcmtools("transcode", "--list", "--no-json")
    assert "jpeg-ls-near" in human.stdout and "1.2.840.10008.1.2.4.81" in human.stdout


@pytest.mark.parametrize(
    "args,text",
    [
        (["x", "-o", "out"], "--to"),
        (["x", "--to", "jpeg-xl", "-o", "out"], "unknown transfer syntax"),
        (["x", "--to", "rle"], "-o DIR is required"),
        (["x", "--to", "jpeg-ls", "--error", "2", "-o", "out"], "--error applies"),
        (["x", "--to", "j2k-lossy", "--ratio", "10", "--quality", "40", "-o", "out"], "not both"),
        (["x", "--to", "big-endian", "-o", "out"], "cannot write"),
    ],
)
def test_usage_errors_exit_2(args, text, tmp_path):
    run = dcmtools("transcode", *args, cwd=tmp_path)
    assert run.returncode == 2
    assert text in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_folder_is_mirrored_and_bad_files_are_error_records(tree, tmp_path):
    before = digest(tree)
    out = tmp_path / "out"
    run = dcmtools("transcode", str(tree), "--to", "jpeg-ls", "-o", str(out), "--jobs", "2")
    assert run.returncode == 1, run.stderr
    recs = records(run.stdout)
    by_path = {os.path.relpath(r["path"], tree): r for r in recs if r["type"] == "file"}
    assert set(by_path) == {"a/b/ct.dcm", "a/mr_be.dcm", "c/rgb.dcm", "c/plan.dcm", "junk.txt", "empty.dcm"}
    assert by_path["junk.txt"]["error"]["code"] == "not_dicom"
    assert by_path["empty.dcm"]["error"]["code"] == "empty"
    for rel in ("a/b/ct.dcm", "a/mr_be.dcm", "c/rgb.dcm"):
        record = by_path[rel]
        assert record["ok"] and record["action"] == "transcoded" and record["verified"] is True
        assert record["out"] == str(out / rel)
        assert record["size_in"] > record["size_out"] > 0 and record["ratio"] > 1
        written = pydicom.dcmread(record["out"])
        assert written.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
        assert np.array_equal(pixels(written), pixels(str(tree / rel)))
    plan = by_path["c/plan.dcm"]
    assert plan["ok"] and plan["action"] in ("rewritten", "copied")
    assert "no pixel data" in plan["note"]
    assert pydicom.dcmread(plan["out"]).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["total"] == 6 and summary["failed"] == 2
    assert summary["errors"] == {"empty": 1, "not_dicom": 1} and summary["exit_status"] == 1
    assert "Traceback" not in run.stderr
    assert digest(tree) == before  # inputs never modified
    assert not (out / "junk.txt").exists() and not (out / "empty.dcm").exists()


def test_existing_outputs_are_kept_without_overwrite(tree, tmp_path):
    out = tmp_path / "out"
    first = dcmtools("transcode", str(tree / "a"), "--to", "rle", "-o", str(out))
    assert first.returncode == 0, first.stdout
    written = digest(out)
    again = dcmtools("transcode", str(tree / "a"), "--to", "j2k", "-o", str(out))
    assert again.returncode == 1
    codes = [r["error"]["code"] for r in records(again.stdout) if r["type"] == "file"]
    assert codes == ["exists", "exists"]
    assert digest(out) == written
    assert not [name for name in os.listdir(out / "b") if name.startswith(".")]  # no temporary left
    forced = dcmtools("transcode", str(tree / "a"), "--to", "j2k", "-o", str(out), "--overwrite")
    assert forced.returncode == 0
    assert pydicom.dcmread(out / "b" / "ct.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"


def test_records_pipe_into_the_next_command(tree, tmp_path):
    first = dcmtools("transcode", "in", "--to", "explicit", "-o", "plain", "--jobs", "1", cwd=tmp_path)
    assert first.returncode == 1  # the two bad inputs
    second = dcmtools("transcode", "--to", "rle", "-o", "rle", input=first.stdout, cwd=tmp_path)
    recs = [r for r in records(second.stdout) if r["type"] == "file"]
    ok = [r for r in recs if r["ok"]]
    failed = [r for r in recs if not r["ok"]]
    assert len(ok) == 4 and len(failed) == 2
    assert {r["error"]["code"] for r in failed} == {"upstream_failed"}
    assert (tmp_path / "rle" / "plain" / "a" / "b" / "ct.dcm").exists()
    assert {r["from"] for r in ok if r["action"] == "transcoded"} == {"explicit"}
    big = pydicom.dcmread(tmp_path / "rle" / "plain" / "a" / "mr_be.dcm")
    assert np.array_equal(pixels(big), pixels(data_file("MR_small_bigendian.dcm")))


def test_jobs_do_not_change_the_records_or_their_order(tree, tmp_path):
    one = dcmtools("transcode", str(tree), "--to", "j2k", "-o", str(tmp_path / "o1"), "--jobs", "1")
    two = dcmtools("transcode", str(tree), "--to", "j2k", "-o", str(tmp_path / "o2"), "--jobs", "2")

    def strip(stdout):
        out = []
        for r in records(stdout):
            r.pop("seconds", None)
            r.pop("out", None)
            if r.get("error", {}).get("message"):
                r["error"].pop("message")
            out.append(r)
        return out

    assert strip(one.stdout) == strip(two.stdout)


def test_lossy_targets_mark_the_image_and_change_its_uid(tmp_path):
    source = data_file("CT_small.dcm")
    original = pydicom.dcmread(source)
    run = dcmtools("transcode", source, "--to", "j2k-lossy", "--ratio", "20", "-o", str(tmp_path / "a"), "--verify")
    assert run.returncode == 0, run.stderr
    record = records(run.stdout)[0]
    assert record["lossy"] is True and record["verified"] is True and record["max_error"] > 0
    assert record["sop_instance_uid"] != original.SOPInstanceUID
    assert record["previous_sop_instance_uid"] == original.SOPInstanceUID
    ds = pydicom.dcmread(record["out"])
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_15444_1"
    assert 10 < float(ds.LossyImageCompressionRatio) < 40
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == record["sop_instance_uid"]
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"
    kept = dcmtools("transcode", source, "--to", "j2k-lossy", "--keep-uid", "-o", str(tmp_path / "b"))
    assert pydicom.dcmread(records(kept.stdout)[0]["out"]).SOPInstanceUID == original.SOPInstanceUID


def test_near_lossless_stays_within_its_error(tmp_path):
    source = data_file("CT_small.dcm")
    run = dcmtools("transcode", source, "--to", "jpeg-ls-near", "--error", "3", "--verify", "-o", str(tmp_path))
    assert run.returncode == 0, run.stderr
    record = records(run.stdout)[0]
    assert record["verified"] is True and 0 < record["max_error"] <= 3
    ds = pydicom.dcmread(record["out"])
    assert ds.LossyImageCompressionMethod == "ISO_14495_1"
    diff = np.abs(pixels(ds).astype(int) - pixels(source).astype(int))
    assert diff.max() <= 3


def test_jpeg_baseline_colour_is_ybr_full_422(tmp_path):
    source = data_file("examples_rgb_color.dcm")
    run = dcmtools("transcode", source, "--to", "jpeg-baseline", "--quality", "95", "--verify", "-o", str(tmp_path))
    assert run.returncode == 0, run.stderr
    record = records(run.stdout)[0]
    ds = pydicom.dcmread(record["out"])
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert record["psnr"] > 30
    palette = dcmtools("transcode", data_file("examples_palette.dcm"), "--to", "jpeg-baseline", "-o", str(tmp_path))
    assert palette.returncode == 1
    error = records(palette.stdout)[0]["error"]
    assert error["code"] == "cannot_encode" and "losslessly" in error["hint"]


def test_an_output_folder_inside_the_input_is_not_read_again(tree):
    out = tree / "compressed"
    first = dcmtools("transcode", str(tree), "--to", "rle", "-o", str(out))
    second = dcmtools("transcode", str(tree), "--to", "rle", "-o", str(out), "--overwrite")
    assert records(first.stdout)[-1]["total"] == records(second.stdout)[-1]["total"] == 6
    assert records(second.stdout)[-1]["skipped_inside_output"] == 4
    assert "skipped 4 file(s) inside the output folder" in second.stderr


def test_human_form_on_request(tree, tmp_path):
    run = dcmtools("transcode", str(tree / "a"), "--to", "rle", "-o", str(tmp_path / "o"), "--no-json")
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("ok ") for line in lines)
    assert "explicit -> rle" in run.stdout and "verified" in run.stdout
    assert "transcode: 2 item(s), 2 ok, 0 failed" in run.stderr


def test_python_api(tree, tmp_path):
    out = tmp_path / "api"
    got = list(transcode([str(tree / "a")], "jpeg-lossless", out, jobs=2))
    assert [os.path.relpath(r["out"], out) for r in got] == ["b/ct.dcm", "mr_be.dcm"]  # path order
    assert all(r["ok"] and r["verified"] for r in got)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pydicom.dcmread(out / "mr_be.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"


def test_a_lossy_input_stays_marked_lossy(tmp_path):
    source = data_file("SC_rgb_jls_lossy_sample.dcm")  # JPEG-LS near-lossless without Lossy Image Compression
    original = pydicom.dcmread(source)
    assert "LossyImageCompression" not in original
    run = dcmtools("transcode", source, "--to", "explicit", "-o", str(tmp_path / "a"))
    record = records(run.stdout)[0]
    assert record["ok"] and "Lossy Image Compression set to 01" in record["note"]
    ds = pydicom.dcmread(record["out"])
    assert ds.LossyImageCompression == "01"
    assert ds.SOPInstanceUID == original.SOPInstanceUID
    jpeg = dcmtools("transcode", data_file("SC_rgb_jpeg_dcmtk.dcm"), "--to", "rle", "-o", str(tmp_path / "b"))
    ds = pydicom.dcmread(records(jpeg.stdout)[0]["out"])
    assert ds.PhotometricInterpretation == "RGB"  # lossy JPEG colour is decoded to RGB
    assert ds.LossyImageCompression == "01"


def test_reading_warnings_belong_to_their_record(tmp_path):
    run = dcmtools("transcode", data_file("MR_small_padded.dcm"), "--to", "rle", "-o", str(tmp_path))
    assert run.returncode == 0
    record = records(run.stdout)[0]
    assert any("padding" in w for w in record["warnings"])
    assert "padding" not in run.stderr


def test_library_messages_name_options_by_keyword_and_the_command_spells_them():
    from dcmtools.cli.spelling import spell
    from dcmtools.render import RenderOptions
    from dcmtools.stream.records import DcmtoolsError
    from dcmtools.transcode import options_for

    with pytest.raises(DcmtoolsError) as info:
        options_for("jpeg-ls", error=2)
    assert info.value.message == "`error` applies to `to` jpeg-ls-near only"
    assert spell(info.value.message) == "--error applies to --to jpeg-ls-near only"
    with pytest.raises(DcmtoolsError) as info:
        RenderOptions(format="jpeg", bits=16)
    assert spell(info.value.hint or "") == "use --format png with --bits 16"
