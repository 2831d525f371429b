"""The client side where a PACS and we used to disagree (issue 14), against Orthanc and DCMTK:
odd-length deflated datasets, PN values ending in "=", capped answers, other character sets."""

from __future__ import annotations

import json
import urllib.request
import zlib
from pathlib import Path

import pydicom
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from netpeers import orthanc, orthanc_get, records
from peers import dcmtools


def odd_deflated_file(source: Path, path: Path) -> Path:
    """``source`` written deflated by hand, without the pad byte, so that the deflated data has an odd length."""
    ds = pydicom.dcmread(source)
    for extra in range(64):
        ds.SOPInstanceUID = generate_uid()
        ds.ImageComments = "x" * (2 * extra)  # even lengths: only the deflated size changes
        buffer = pydicom.filebase.DicomBytesIO()
        buffer.is_little_endian, buffer.is_implicit_VR = True, False
        write_dataset(buffer, ds)
        compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflated = compressor.compress(buffer.getvalue()) + compressor.flush()
        if len(deflated) % 2:
            break
    else:  # pragma: no cover - 64 tries all even: astronomically unlikely
        raise AssertionError("could not make an odd-length deflated dataset")
    meta = pydicom.dataset.FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    head = pydicom.filebase.DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    path.write_bytes(head.getvalue() + deflated)
    assert (path.stat().st_size - len(head.getvalue())) % 2 == 1
    return path


def same_dataset(a: pydicom.Dataset, b: pydicom.Dataset) -> bool:
    return {e.tag: e.value for e in a if e.tag.group > 2} == {e.tag: e.value for e in b if e.tag.group > 2}


def orthanc_file(http: int, sop_instance_uid: str) -> pydicom.Dataset:
    """The instance Orthanc stored, read back through its REST API."""
    request = urllib.request.Request(f"http://127.0.0.1:{http}/tools/lookup", data=sop_instance_uid.encode(), method="POST")
    found = json.loads(urllib.request.urlopen(request, timeout=5).read())
    (instance,) = [f for f in found if f["Type"] == "Instance"]
    data = urllib.request.urlopen(f"http://127.0.0.1:{http}/instances/{instance['ID']}/file", timeout=5).read()
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))


def test_odd_length_deflated_files_stored_by_orthanc_and_equal(tmp_path: Path, test_files_dir: Path) -> None:
    dfl = test_files_dir / "image_dfl.dcm"
    built = odd_deflated_file(test_files_dir / "CT_small.dcm", tmp_path / "odd_deflated.dcm")
    before = {path: path.read_bytes() for path in (dfl, built)}
    for path in (dfl, built):
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert (len(dfl.read_bytes()) - _dataset_offset(dfl)) % 2 == 1  # the case that Orthanc refused
    with orthanc(tmp_path) as (peer, http):
        result = dcmtools("send", peer, str(dfl), str(built), "--json", "--timeout", "10")
        assert result.returncode == 0, result.stdout + result.stderr
        got = [r for r in records(result.stdout) if r["type"] == "file"]
        assert [r["ok"] for r in got] == [True, True]
        for path in (dfl, built):
            original = pydicom.dcmread(path)
            assert same_dataset(original, orthanc_file(http, original.SOPInstanceUID)), path.name
        assert len(orthanc_get(http, "/instances")) == 2
    assert all(path.read_bytes() == data for path, data in before.items())  # inputs never modified


def _dataset_offset(path: Path) -> int:
    data = path.read_bytes()
    return 144 + int.from_bytes(data[140:144], "little")
