"""Anonymized files are no less valid than their inputs, by dciodvfy (dicom3tools)."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from anonymize_data import animal, ct, rtstruct, save, sr
from peers import dcmtools, require

pytestmark = pytest.mark.peer

# dciodvfy could not read these inputs to the end: it validated less of them
# than of their (repaired) outputs, so only the number of errors is compared.
CUT_SHORT = ("Tags out of order", "Dicom dataset read failed")


def error_lines(path: str) -> list[str]:
    result = subprocess.run(["dciodvfy", path], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def kind(line: str) -> str:
    """An error line without the values that anonymization changes (UIDs, names, dates)."""
    line = re.sub(r"= <[^>]*>", "", line)
    line = re.sub(r"<[^>]*>", "<>", line)
    return re.sub(r"\b\d[\d.]*\b", "<n>", line)


def compare(records: list[dict]) -> list[str]:
    worse = []
    for record in records:
        before, after = error_lines(record["path"]), error_lines(record["out"])
        new = {kind(line) for line in after} - {kind(line) for line in before}
        if len(after) > len(before) or (new and not any(c in line for line in before for c in CUT_SHORT)):
            worse.append(f"{record['path']}: {len(before)} -> {len(after)} errors; new: {sorted(new)}")
    return worse


def anonymized(result) -> list[dict]:
    assert "Traceback" not in result.stderr, result.stderr
    return [r for r in map(json.loads, result.stdout.splitlines()) if r.get("type") == "file" and r["ok"]]


def test_pydicom_files_are_no_less_valid(test_files_dir, tmp_path):
    require("dciodvfy")
    out = tmp_path / "out"
    result = dcmtools(
        "anonymize",
        "--keep-names",
        "--key",
        "k",
        "--allow-burned-in",
        "-o",
        str(out),
        str(test_files_dir),
        "--jobs",
        "2",
    )
    records = anonymized(result)
    assert len(records) >= 70
    assert compare(records) == []


@pytest.mark.parametrize(
    "flags",
    [
        [],
        [
            "--retain-longitudinal-modified-dates",
            "--clean-descriptors",
            "--clean-structured-content",
            "--clean-graphics",
        ],
    ],
)
def test_built_files_are_no_less_valid(tmp_path, flags):
    require("dciodvfy")
    folder = tmp_path / "in"
    images = [ct(number=n) for n in (1, 2)]
    for n, ds in enumerate(images, 1):
        save(ds, folder / f"ct{n}.dcm")
    save(rtstruct(images), folder / "rs.dcm")
    save(sr(), folder / "sr.dcm")
    save(animal(), folder / "animal.dcm")
    result = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(tmp_path / "out"), str(folder), *flags)
    records = anonymized(result)
    assert len(records) == 5
    assert compare(records) == []
