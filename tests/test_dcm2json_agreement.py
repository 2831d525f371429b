"""Our DICOM JSON agrees with DCMTK's dcm2json on pydicom's bundled test files.

Allowed differences (listed in docs/design/tested-against.md, each with its reason):
  * SpecificCharacterSet: dcm2json rewrites it to 'ISO_IR 192' (it converts
    the text to UTF-8); we keep what the file says.
  * FL values: dcm2json prints 9 significant digits, we print the shortest
    decimal that reads back as the same 32-bit float: compared as float32.
  * An IS/DS value that is not a number: dcm2json writes the string, we write
    an error marker (and the raw text) for that element.
  * An odd-length binary value: dcm2json pads it with a NUL byte, we write the
    bytes as they are in the file.
"""

import json
import math
import struct
import subprocess

import pytest
from peers import require

from dcmtools.dicom import jsonmodel
from dcmtools.dicom import reader as dicomfile

pytestmark = pytest.mark.peer
CHARSET = "00080005"


def float32(value):
    return struct.unpack("<f", struct.pack("<f", value))[0]


def compare(ours, theirs, vr=None, path=""):
    """Differences that are not on the allowed list."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if "error" in ours and "raw" in ours and ours.get("vr") in ("IS", "DS"):
            return []  # an invalid number: marked by us, a string for dcm2json
        problems = []
        for key in sorted(set(ours) | set(theirs)):
            if key == CHARSET:
                continue
            if key not in ours or key not in theirs:
                problems.append(f"{path}/{key}: only in {'dcm2json' if key in theirs else 'ours'}")
                continue
            if key == "InlineBinary" and len(theirs[key]) != len(ours[key]):
                import base64

                a, b = base64.b64decode(ours[key]), base64.b64decode(theirs[key])
                if len(a) % 2 and b == a + b"\0":
                    continue  # odd length padded by dcm2json
            problems += compare(
                ours[key], theirs[key], ours.get("vr", vr) if isinstance(ours, dict) else vr, f"{path}/{key}"
            )
        return problems
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return [f"{path}: {len(ours)} values, dcm2json {len(theirs)}"]
        return [
            p for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) for p in compare(a, b, vr, f"{path}[{i}]")
        ]
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and not isinstance(ours, bool):
        if vr == "FL" and float32(ours) == float32(theirs):
            return []
        if math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=0):
            return []
    if ours == theirs:
        return []
    return [f"{path}: ours {str(ours)[:60]!r}, dcm2json {str(theirs)[:60]!r}"]


def test_agrees_with_dcm2json(all_test_files):
    require("dcm2json")
    compared, problems = 0, {}
    for path in all_test_files:
        result = subprocess.run(["dcm2json", str(path)], capture_output=True)
        if result.returncode != 0:
            continue  # dcm2json cannot read it (our reader's verdict is tested elsewhere)
        try:
            theirs = json.loads(result.stdout)
        except ValueError:
            continue  # dcm2json wrote invalid JSON (e.g. undecoded bytes)
        dicom = dicomfile.read(path, bulk_threshold=1 << 40)
        ours = jsonmodel.to_json_model(dicom.dataset, jsonmodel.JsonOptions(bulk_threshold=1 << 40))
        compared += 1
        found = compare(ours, theirs)
        if found:
            problems[path.name] = found[:5]
    assert compared >= 120, f"only {compared} files compared"  # 125 with pydicom 3.0.2
    assert not problems, json.dumps(problems, indent=1)


def test_charset_files_agree_with_dcm2json():
    require("dcm2json")
    from pathlib import Path

    import pydicom.data

    folder = Path(pydicom.data.__file__).parent / "charset_files"
    compared = 0
    for path in sorted(folder.glob("*.dcm")):
        result = subprocess.run(["dcm2json", str(path)], capture_output=True)
        try:
            theirs = json.loads(result.stdout)
        except ValueError:
            continue
        dicom = dicomfile.read(path, bulk_threshold=1 << 40)
        ours = jsonmodel.to_json_model(dicom.dataset, jsonmodel.JsonOptions(bulk_threshold=1 << 40))
        assert compare(ours, theirs) == [], path.name
        compared += 1
    assert compared >= 10  # 11 with pydicom 3.0.2
