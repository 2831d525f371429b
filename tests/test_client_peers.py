"""The client side where a PACS and we used to disagree (issue 14), against Orthanc and DCMTK:
odd-length deflated datasets, PN values ending in "=", capped answers, other character sets."""

from __future__ import annotations

import json
import urllib.request
import zlib
from pathlib import Path

import pydicom
import pytest
from netpeers import orthanc, orthanc_get, records
from peers import dcmtools
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

pytestmark = pytest.mark.peer


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
    request = urllib.request.Request(
        f"http://127.0.0.1:{http}/tools/lookup", data=sop_instance_uid.encode(), method="POST"
    )
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


# ------------------------------------------------------------- queries
NAME = "Wang^XiaoDong=王^小東="
ME = {"me": ("DCMTOOLS", 4000)}  # Orthanc answers C-FIND only to the AE titles it knows


def three_studies(folder: Path) -> list[Path]:
    """Three studies of three patients, one named in Latin and Chinese characters (UTF-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for n, (name, charset) in enumerate([(NAME, "ISO_IR 192"), ("DOE^JOHN", None), ("MÜLLER^HANS", "ISO_IR 100")]):
        ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
        for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence"):
            if keyword in ds:
                delattr(ds, keyword)
        if charset:
            ds.SpecificCharacterSet = charset
        elif "SpecificCharacterSet" in ds:
            del ds.SpecificCharacterSet
        # bytes: pydicom would drop the trailing "=" of a str (PS3.5 H.3 writes it)
        ds.PatientName = name.encode("utf-8" if charset == "ISO_IR 192" else "latin-1")
        ds.PatientID = f"PID{n}"
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.AccessionNumber = f"ACC{n}"
        path = folder / f"study{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def find_records(peer: str, *args: str):
    result = dcmtools("find", peer, "--json", "--timeout", "10", *args)
    return result, records(result.stdout)


def test_exact_name_with_trailing_equals_found_as_findscu_finds_it(tmp_path: Path) -> None:
    from qrpeers import dcmqrscp, findscu
    from qrpeers import orthanc as qr_orthanc

    files = three_studies(tmp_path / "in")
    keys = ["SpecificCharacterSet=ISO_IR 192", f"PatientName={NAME}", "PatientID", "StudyInstanceUID"]
    with (
        dcmqrscp(tmp_path, {"me": ("DCMTOOLS", 4000)}, files) as qr,
        qr_orthanc(tmp_path, {"me": ("DCMTOOLS", 4000)}, files) as pacs,
    ):
        for peer in (qr, pacs):
            theirs = findscu(peer, ["QueryRetrieveLevel=STUDY", *keys], "study", tmp_path / f"findscu-{peer.port}")
            assert [t["00100020"]["Value"] for t in theirs] == [["PID0"]], peer.peer  # findscu finds it
            result, got = find_records(peer.peer, "-k", f"PatientName={NAME}", "--no-defaults", "-k", "PatientID")
            assert result.returncode == 0, result.stdout + result.stderr
            matches = [r for r in got if r["type"] == "match"]
            assert [m["dataset"]["00100020"]["Value"] for m in matches] == [["PID0"]], (peer.peer, result.stderr)
            summary = got[-1]
            assert not summary.get("dropped") and summary["matches"] == 1


def test_orthanc_capped_answer_is_incomplete_exit_1(tmp_path: Path) -> None:
    from qrpeers import orthanc as qr_orthanc

    files = three_studies(tmp_path / "in")
    with qr_orthanc(tmp_path, ME, files, config_extra={"LimitFindResults": 2}) as pacs:
        result, got = find_records(pacs.peer)
        # the library says it too (the manual's Python example, docs/reference/python.md)
        from dcmtools.net import NetOptions, parse_peer
        from dcmtools.net.query import Finder, find_identifier

        finder = Finder(parse_peer(pacs.peer), find_identifier("STUDY", ["PatientName=*"]), NetOptions())
        found = [r for r in finder.run() if r["type"] == "match"]
        assert len(found) == 2 and finder.incomplete and "Cancel" in finder.incomplete_reason
    assert result.returncode == 1, result.stdout + result.stderr
    matches = [r for r in got if r["type"] == "match"]
    assert len(matches) == 2
    (last,) = [r for r in got if r["type"] == "query"]
    assert last["incomplete"] is True and last["ok"] is False and last["error"]["code"] == "incomplete"
    assert last["status"] == "0xFE00" and "incomplete" in last["error"]["message"]
    assert got[-1]["type"] == "summary" and got[-1]["incomplete"] is True and got[-1]["exit_status"] == 1
    with qr_orthanc(tmp_path, ME, files) as pacs:
        result, got = find_records(pacs.peer)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len([r for r in got if r["type"] == "match"]) == 3
    assert not [r for r in got if r["type"] == "query"]


def test_a_cap_from_the_peers_file_makes_a_full_answer_incomplete(tmp_path: Path) -> None:
    from qrpeers import orthanc as qr_orthanc

    files = three_studies(tmp_path / "in")
    with qr_orthanc(tmp_path, ME, files) as pacs:
        peers = tmp_path / "peers.toml"
        for cap, code in ((3, 1), (4, 0)):
            peers.write_text(f'[pacs]\naet = "ORTHANC"\nhost = "127.0.0.1"\nport = {pacs.port}\nmax_results = {cap}\n')
            result, got = find_records("pacs", "--peers", str(peers))
            assert result.returncode == code, result.stdout + result.stderr
            assert len([r for r in got if r["type"] == "match"]) == 3
            assert bool([r for r in got if r.get("incomplete")]) == (code == 1)


def test_non_latin_name_query_against_orthanc_not_dropped_silently(tmp_path: Path) -> None:
    from qrpeers import orthanc as qr_orthanc

    files = three_studies(tmp_path / "in")
    with qr_orthanc(tmp_path, ME, files) as pacs:
        for key in (f"PatientName={NAME}", "PatientName=*小東*", "PatientName=MÜLLER*"):
            result, got = find_records(pacs.peer, "-k", key)
            assert result.returncode == 0, result.stdout + result.stderr
            matches = [r for r in got if r["type"] == "match"]
            assert len(matches) == 1, (key, got, result.stderr)
            assert not got[-1].get("dropped"), (key, result.stderr)
            record = matches[0]
            assert record["dataset"]["00100020"]["Value"] == ["PID0" if "MÜLLER" not in key else "PID2"]
            if "MÜLLER" in key:  # Latin-1 holds it: checked as usual
                assert "unchecked_keys" not in record and "could not be checked" not in result.stderr
                continue
            # Orthanc answers in Latin-1, which cannot hold the Chinese characters: kept, and said so
            assert record["dataset"]["00080005"]["Value"] == ["ISO_IR 100"]
            assert record["unchecked_keys"] == ["PatientName"] and "ISO_IR 100" in record["note"]
            assert "cannot represent" in record["note"] and "could not be checked" in result.stderr


def test_orthanc_refusal_of_a_dataset_without_a_uid_is_not_hinted_as_disk_full(
    tmp_path: Path, test_files_dir: Path
) -> None:
    ds = pydicom.dcmread(test_files_dir / "CT_small.dcm")
    del ds.SeriesInstanceUID
    path = tmp_path / "no_series_uid.dcm"
    ds.save_as(path, enforce_file_format=True)
    with orthanc(tmp_path) as (peer, _http):
        result = dcmtools("send", peer, str(path), "--json", "--timeout", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    (record,) = [r for r in records(result.stdout) if r["type"] == "file"]
    assert record["status"] == "0xA700" and not record["ok"]
    hint = record["error"]["hint"]
    assert "disk full" not in hint and "without saying why" in hint and "log" in hint
