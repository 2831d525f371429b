"""dcmtools dump from the command line, as a user runs it."""

import json
import os
import subprocess
import sys

from peers import REPO, dcmtools


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_dump_all_bundled_files_json(test_files_dir, all_test_files):
    result = dcmtools("dump", "--json", str(test_files_dir))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = records(result.stdout)  # every line is valid JSON
    files, summary = lines[:-1], lines[-1]
    assert [r["path"] for r in files] == [str(p) for p in all_test_files]  # one record per file, in order
    assert summary["type"] == "summary" and summary["total"] == len(all_test_files)
    by_name = {os.path.basename(r["path"]): r for r in files}
    assert by_name["MR_truncated.dcm"]["error"]["code"] == "truncated"
    assert by_name["README.txt"]["error"]["code"] == "not_dicom"
    assert by_name["CT_small.dcm"]["ok"] and by_name["CT_small.dcm"]["dataset"]["00100010"]["Value"] == [
        {"Alphabetic": "CompressedSamples^CT1"}
    ]
    assert by_name["CT_small.dcm"]["dataset"]["7FE00010"]["BulkDataURI"].startswith("file://")
    assert summary["failed"] == sum(not r["ok"] for r in files) > 0


def test_dump_jobs_gives_the_same_records(test_files_dir):
    one = records(dcmtools("dump", "--json", str(test_files_dir)).stdout)[:-1]
    two = records(dcmtools("dump", "--json", "-j", "2", str(test_files_dir)).stdout)[:-1]
    assert one == two


def test_dump_tags_flat_meta(test_files_dir):
    ct = str(test_files_dir / "CT_small.dcm")
    result = dcmtools("dump", "--flat", "--meta", "-t", "PatientName", "-t", "0028,0010", ct)
    assert result.returncode == 0
    record = records(result.stdout)[0]
    assert record["dataset"] == {"PatientName": "CompressedSamples^CT1", "Rows": 128}
    assert record["meta"]["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    result = dcmtools("dump", "-t", "NoSuchKeyword", ct)
    assert result.returncode == 2 and "unknown keyword" in result.stderr


def test_dump_nested_path(test_files_dir):
    path = str(test_files_dir / "rtplan.dcm")
    result = dcmtools("dump", "--flat", "-t", "BeamSequence[0].BeamName", path)
    dataset = records(result.stdout)[0]["dataset"]
    assert list(dataset) == ["BeamSequence"] and len(dataset["BeamSequence"]) == 1
    assert set(dataset["BeamSequence"][0]) == {"BeamName"}


def test_no_pixels_leaves_bulk_out(test_files_dir):
    result = dcmtools("dump", "--json", "--no-pixels", str(test_files_dir / "CT_small.dcm"))
    assert "7FE00010" not in records(result.stdout)[0]["dataset"]


def test_text_tree(test_files_dir):
    result = dcmtools("dump", "--no-json", str(test_files_dir / "rtplan.dcm"), str(test_files_dir / "MR_truncated.dcm"))
    assert result.returncode == 1
    out = result.stdout
    assert "(300A,00B0) SQ BeamSequence" in out and "\n  item 1\n" in out
    assert "    (300A,00C2) LO BeamName" in out  # nested, indented
    assert "SOPClassUID" in out and "= RT Plan Storage" in out
    assert "# FAILED (truncated)" in out
    assert "1 failed" in result.stderr


def test_private_tags_show_their_creator(test_files_dir):
    out = dcmtools("dump", "--no-json", str(test_files_dir / "CT_small.dcm")).stdout
    assert "(0009,1001) LO [GEMS_IDEN_01] Full fidelity" in out


def test_stdin_paths_and_records(test_files_dir):
    ct = str(test_files_dir / "CT_small.dcm")
    upstream = json.dumps({"type": "file", "path": "x", "out": ct, "ok": True})
    result = dcmtools("dump", "--json", "-t", "Rows", "-", input=f"{ct}\n{upstream}\n")
    lines = records(result.stdout)
    assert [r["path"] for r in lines[:-1]] == [ct, ct]


def test_no_inputs_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "dcmtools", "dump"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    # stdin is not a terminal here, so it is read (and is empty): nothing to do.
    assert result.returncode == 0 and records(result.stdout)[-1]["total"] == 0


def test_help_does_not_import_the_heavy_libraries():
    code = (
        "import sys; sys.argv = ['dcmtools', '--help']\n"
        "from dcmtools.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pydicom', 'pynetdicom', 'numpy', 'pydantic') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    for command in ("dump",):
        code_cmd = code.replace("['dcmtools', '--help']", f"['dcmtools', '{command}', '--help']")
        result = subprocess.run(
            [sys.executable, "-c", code_cmd],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_dump_does_not_import_pydicom(test_files_dir):
    code = (
        "import sys; sys.argv = ['dcmtools', 'dump', '--json', sys.argv[1]]\n"
        "from dcmtools.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('pydicom', 'numpy', 'pydantic') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(test_files_dir / "CT_small.dcm")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert "HEAVY []" in result.stdout


def test_version():
    result = dcmtools("--version")
    assert result.returncode == 0 and result.stdout.startswith("dcmtools ")
