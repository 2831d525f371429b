"""dcmtools edit: against DCMTK dcmodify, a 300-file mapping run, and bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from anonymize_data import ct, save, uid
from peers import dcmtools, require
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dcmtools.edit import EditError, Editor, load_map, parse_assignment

DCMODIFY = "/usr/bin/dcmodify"


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def elements(ds: Dataset) -> dict:
    """Every element, recursively, as comparable values (group lengths left out: edit drops them)."""
    out = {}
    for element in ds:
        if element.tag.element == 0:
            continue
        if element.VR == "SQ":
            out[element.tag] = ("SQ", [elements(item) for item in element.value])
        else:
            value = element.value
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).rstrip(b"\0 ")
            elif isinstance(value, pydicom.multival.MultiValue):
                value = [str(v) for v in value]
            else:
                value = str(value)
            out[element.tag] = (element.VR, value)
    return out


# (our options, dcmodify's options): the same edit.
TABLE = {
    "set_replace": (["--set", "PatientName=DOE^JANE"], ["-i", "PatientName=DOE^JANE"]),
    "set_insert": (["--set", "InstitutionName=North Clinic"], ["-i", "InstitutionName=North Clinic"]),
    "set_number": (["--set", "ExposureTime=250"], ["-i", "ExposureTime=250"]),
    "set_existing": (["--set-existing", "PatientAge=045Y"], ["-m", "PatientAge=045Y"]),
    "sequence_insert": (
        ["--set", "OtherPatientIDsSequence[0].IssuerOfPatientID=ISSUER"],
        ["-i", "OtherPatientIDsSequence[0].IssuerOfPatientID=ISSUER"],
    ),
    "sequence_new_item": (
        ["--set", "ReferencedStudySequence[0].ReferencedSOPClassUID=1.2.840.10008.3.1.2.3.1"],
        ["-i", "ReferencedStudySequence[0].ReferencedSOPClassUID=1.2.840.10008.3.1.2.3.1"],
    ),
    "sequence_every_item": (
        ["--set", "OtherPatientIDsSequence[*].TypeOfPatientID=RFID"],
        ["-i", "OtherPatientIDsSequence[*].TypeOfPatientID=RFID"],
    ),
    "erase": (["--erase", "PatientBirthDate"], ["-e", "PatientBirthDate"]),
    "erase_item": (["--erase", "OtherPatientIDsSequence[0]"], ["-e", "OtherPatientIDsSequence[0]"]),
    "erase_in_every_item": (
        ["--erase", "OtherPatientIDsSequence[*].TypeOfPatientID"],
        ["-e", "OtherPatientIDsSequence[*].TypeOfPatientID"],
    ),
    "erase_private": (["--erase-private"], ["-ep"]),
    "private_set": (["--set", "0009,1002=CT99"], ["-i", "(0009,1002)=CT99"]),
    "private_erase": (["--erase", "0019,1002"], ["-e", "(0019,1002)"]),
    "sop_instance_meta": (["--set", "SOPInstanceUID=1.2.3.4"], ["-i", "SOPInstanceUID=1.2.3.4"]),
}


@pytest.mark.peer
@pytest.mark.parametrize("case", sorted(TABLE))
def test_same_as_dcmodify(case, tmp_path):
    require(DCMODIFY)
    ours_opts, theirs_opts = TABLE[case]
    source = tmp_path / "in" / "a.dcm"
    source.parent.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), source)
    theirs = tmp_path / "theirs.dcm"
    shutil.copy(source, theirs)
    result = subprocess.run([DCMODIFY, "-nb", *theirs_opts, str(theirs)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run = dcmtools("edit", *ours_opts, "-o", str(tmp_path / "out"), str(source))
    assert run.returncode == 0, run.stderr
    ours = pydicom.dcmread(tmp_path / "out" / "a.dcm")
    expected = pydicom.dcmread(theirs)
    assert elements(ours) == elements(expected)
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID"):
        assert ours.file_meta.get(keyword) == expected.file_meta.get(keyword)
    # Elements not edited kept their bytes; the pixel data is the same bytes.
    assert ours.PixelData == pydicom.dcmread(source).PixelData


ENCODINGS_TABLE = {
    "set_replace": TABLE["set_replace"],
    "set_numbers": (
        ["--set", "AcquisitionMatrix=0\\256\\192\\0", "--set", "PixelPaddingValue=7"],
        ["-i", "AcquisitionMatrix=0\\256\\192\\0", "-i", "PixelPaddingValue=7"],
    ),
    "set_float": (["--set", "ContrastBolusTotalDose=12.5"], ["-i", "ContrastBolusTotalDose=12.5"]),
    "sequence_new_item": TABLE["sequence_new_item"],
    "erase": TABLE["erase"],
}


@pytest.mark.peer
@pytest.mark.parametrize("source_name", ["MR_small_bigendian.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm"])
@pytest.mark.parametrize("case", sorted(ENCODINGS_TABLE))
def test_same_as_dcmodify_in_other_encodings(source_name, case, tmp_path):
    """Big endian, implicit VR and encapsulated (JPEG 2000) pixel data, which is copied, not decoded."""
    require(DCMODIFY)
    ours_opts, theirs_opts = ENCODINGS_TABLE[case]
    source = tmp_path / "in" / "a.dcm"
    source.parent.mkdir()
    shutil.copy(get_testdata_file(source_name), source)
    theirs = tmp_path / "theirs.dcm"
    shutil.copy(source, theirs)
    result = subprocess.run([DCMODIFY, "-nb", *theirs_opts, str(theirs)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run = dcmtools("edit", *ours_opts, "-o", str(tmp_path / "out"), str(source))
    assert run.returncode == 0, run.stderr
    ours, expected = pydicom.dcmread(tmp_path / "out" / "a.dcm"), pydicom.dcmread(theirs)
    assert ours.file_meta.TransferSyntaxUID == expected.file_meta.TransferSyntaxUID
    assert elements(ours) == elements(expected)


def build_archive(folder: Path) -> list[Path]:
    """3 patients, one study each, 100 CT images per study, each image referencing the next."""
    paths = []
    for patient in ("1", "2", "3"):
        for number in range(1, 101):
            ds = ct(patient, 1, number)
            item = Dataset()
            item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # the study (study management class)
            item.ReferencedSOPInstanceUID = ds.StudyInstanceUID
            ds.ReferencedStudySequence = Sequence([item])
            paths.append(save(ds, folder / f"p{patient}" / f"ct{number:03d}.dcm"))
    return paths


@pytest.mark.peer
def test_map_of_three_patients_on_300_files(tmp_path):
    require("dciodvfy")
    source = tmp_path / "in"
    build_archive(source)
    table = tmp_path / "patients.csv"
    table.write_text(
        "old_id,PatientID,PatientName,PatientBirthDate,IssuerOfPatientID\n"
        "PHIID12345,NEW001,ONE^NEW,19700101,NORTH\n"
        "OTHER2,NEW002,TWO^NEW,19800202,NORTH\n"
        "OTHER3,NEW003,THREE^NEW,19900303,SOUTH\n"
    )
    common = ["--map", str(table), "--match", "PatientID=old_id", "--require-match", "--new-uids", "all", "--key", "k"]
    run = dcmtools("edit", *common, "-o", str(tmp_path / "out"), str(source), "--jobs", "2")
    assert run.returncode == 0, run.stderr
    files = [r for r in records(run.stdout) if r["type"] == "file"]
    assert len(files) == 300 and all(r["ok"] for r in files)
    expected = {"1": ("NEW001", "ONE^NEW", "19700101", "NORTH"), "2": ("NEW002", "TWO^NEW", "19800202", "NORTH"),
                "3": ("NEW003", "THREE^NEW", "19900303", "SOUTH")}  # fmt: skip
    studies: dict[str, set] = {}
    frames: dict[str, set] = {}
    new_uid_of: dict[str, str] = {}
    outputs = {}
    for patient in "123":
        for number in range(1, 101):
            original = pydicom.dcmread(source / f"p{patient}" / f"ct{number:03d}.dcm")
            ds = pydicom.dcmread(tmp_path / "out" / f"p{patient}" / f"ct{number:03d}.dcm")
            outputs[(patient, number)] = ds
            assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate, ds.IssuerOfPatientID) == expected[patient]
            assert ds.SOPInstanceUID != original.SOPInstanceUID
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
            assert ds.PixelData == original.PixelData
            new_uid_of[original.SOPInstanceUID] = ds.SOPInstanceUID
            studies.setdefault(patient, set()).add(ds.StudyInstanceUID)
            frames.setdefault(patient, set()).add(ds.FrameOfReferenceUID)
            assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
    assert all(len(s) == 1 for s in studies.values()) and len(set.union(*studies.values())) == 3
    assert all(len(f) == 1 for f in frames.values())
    # References between files still resolve: image N references image N+1 of its series.
    for (patient, number), ds in outputs.items():
        if number < 100:
            assert (
                ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == outputs[(patient, number + 1)].SOPInstanceUID
            )
    # Another run with the same key, on one study alone, gives the same UIDs.
    again = dcmtools("edit", *common, "-o", str(tmp_path / "again"), str(source / "p2"))
    assert again.returncode == 0, again.stderr
    ds = pydicom.dcmread(tmp_path / "again" / "ct007.dcm")
    assert ds.SOPInstanceUID == outputs[("2", 7)].SOPInstanceUID
    assert ds.StudyInstanceUID == outputs[("2", 7)].StudyInstanceUID
    # dciodvfy finds no new errors in any of the 300 files.
    from test_anonymize_dciodvfy import compare

    assert compare(files) == []


def test_unmatched_file_is_a_record(tmp_path):
    save(ct("9", 1, 1), tmp_path / "in" / "a.dcm")
    table = tmp_path / "m.csv"
    table.write_text("PatientID,InstitutionName\nNOBODY,X\n")
    run = dcmtools(
        "edit",
        "--map",
        str(table),
        "--match",
        "PatientID",
        "--set",
        "StationName=S1",
        "-o",
        str(tmp_path / "o"),
        str(tmp_path / "in"),
    )
    assert run.returncode == 0, run.stderr
    file = [r for r in records(run.stdout) if r["type"] == "file"][0]
    assert file["ok"] and file["unmatched"] is True
    assert pydicom.dcmread(tmp_path / "o" / "a.dcm").StationName == "S1"
    strict = dcmtools(
        "edit",
        "--map",
        str(table),
        "--match",
        "PatientID",
        "--require-match",
        "-o",
        str(tmp_path / "o2"),
        str(tmp_path / "in"),
    )
    assert strict.returncode == 1
    file = [r for r in records(strict.stdout) if r["type"] == "file"][0]
    assert file["error"]["code"] == "unmatched"
    assert not (tmp_path / "o2" / "a.dcm").exists()


BAD_TABLES = {
    "duplicate key": ("old_id,PatientID\nA,1\nB,2\nA,3\n", "key 'A' is already on line 2"),
    "missing column": ("id,PatientID\nA,1\n", "has no column 'old_id'"),
    "bad date": (
        "old_id,PatientBirthDate\nA,2024-13-45\n",
        "line 2, column PatientBirthDate: '2024-13-45' is not a date",
    ),
    "unknown keyword": ("old_id,PatientNmae\nA,X\n", "unknown keyword 'PatientNmae' (did you mean PatientName"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_stop_before_anything_is_written(case, tmp_path):
    text, message = BAD_TABLES[case]
    save(ct("1", 1, 1), tmp_path / "in" / "a.dcm")
    table = tmp_path / "m.csv"
    table.write_text(text)
    run = dcmtools(
        "edit", "--map", str(table), "--match", "PatientID=old_id", "-o", str(tmp_path / "o"), str(tmp_path / "in")
    )
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(EditError, match="."):
        load_map(str(table), "PatientID=old_id")


@pytest.mark.parametrize(
    "option, message",
    [
        (["--set", "StudyDate=2024-13-45"], "'2024-13-45' is not a date"),
        (["--set", "StudyDate=20241345"], "'20241345' is not a date"),
        (["--set", "PatientNmae=X"], "unknown keyword 'PatientNmae'"),
        (["--erase", "NoSuchKeyword"], "unknown keyword 'NoSuchKeyword'"),
        (["--set", "Rows=70000"], "out of range for US"),
        (["--set", "SOPInstanceUID=1.02.3"], "is not a UID"),
        (["--new-uids", "patient", "--key", "k"], "choose one of study, series, instance, all"),
        (["--set", "PatientName"], "has no '=VALUE'"),
    ],
)
def test_bad_options_stop_before_anything_is_written(option, message, tmp_path):
    save(ct("1", 1, 1), tmp_path / "in" / "a.dcm")
    run = dcmtools("edit", *option, "-o", str(tmp_path / "o"), str(tmp_path / "in"))
    assert run.returncode == 2, run.stdout
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o").exists()


def test_in_place_with_backup_and_dry_run(tmp_path):
    path = save(ct("1", 1, 1), tmp_path / "a.dcm")
    before = path.read_bytes()
    dry = dcmtools("edit", "--set", "PatientName=X^Y", "--erase", "PatientAge", "--dry-run", str(path))
    assert dry.returncode == 0 and path.read_bytes() == before
    changes = [r for r in records(dry.stdout) if r["type"] == "change"]
    assert {(c["element"], c["old"], c["new"]) for c in changes} == {
        ("PatientName", "DOE^JOHNNY", "X^Y"),
        ("PatientAge", "061Y", None),
    }
    run = dcmtools("edit", "--set", "PatientName=X^Y", "--in-place", str(path))
    assert run.returncode == 0, run.stderr
    assert str(pydicom.dcmread(path).PatientName) == "X^Y"
    assert (tmp_path / "a.dcm.bak").read_bytes() == before
    again = dcmtools("edit", "--set", "PatientName=Z", "--in-place", "--no-backup", str(tmp_path))
    assert [r["path"] for r in records(again.stdout) if r["type"] == "file"] == [str(path)]  # the .bak is skipped
    assert (tmp_path / "a.dcm.bak").read_bytes() == before


def test_charset_utf8(tmp_path):
    ds = ct("1", 1, 1)
    ds.PatientName = "Müller^Jürgen"  # ISO_IR 100 (latin-1)
    good = save(ds, tmp_path / "in" / "good.dcm")
    bad = tmp_path / "in" / "bad.dcm"
    raw = good.read_bytes()
    bad.write_bytes(raw.replace(b"ISO_IR 100", b"ISO_IR 6  "))  # declares ASCII, holds latin-1 bytes
    run = dcmtools("edit", "--charset", "utf8", "-o", str(tmp_path / "o"), str(tmp_path / "in"))
    assert run.returncode == 1
    by_name = {Path(r["path"]).name: r for r in records(run.stdout) if r["type"] == "file"}
    assert by_name["good.dcm"]["ok"] and by_name["bad.dcm"]["error"]["code"] == "bad_value"
    assert not (tmp_path / "o" / "bad.dcm").exists()
    out = pydicom.dcmread(tmp_path / "o" / "good.dcm")
    assert out.SpecificCharacterSet == "ISO_IR 192" and str(out.PatientName) == "Müller^Jürgen"
    assert out["PatientName"].value.original_string == "Müller^Jürgen".encode()


def test_library_per_dataset_bytes():
    editor = Editor(sets=[parse_assignment("InstitutionName=North")], new_uids="instance", key="k")
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    out, outcome = editor.edit_bytes(data)
    ds = pydicom.dcmread(__import__("io").BytesIO(out))
    assert ds.InstitutionName == "North" and ds.SOPInstanceUID.startswith("2.25.")
    assert editor.edit_bytes(data)[0] == out  # repeatable
    assert {c.path for c in outcome.changes} >= {"InstitutionName", "SOPInstanceUID", "meta.MediaStorageSOPInstanceUID"}
    with pytest.raises(EditError):
        parse_assignment("ReferencedImageSequence[0]=1")
    assert uid("x")  # the shared test data helpers are in use


def test_help_examples_run(tmp_path):
    """Every example of `dcmtools edit --help` runs (in a folder holding what they name)."""
    import os
    import re
    import sys

    help_text = dcmtools("edit", "--help").stdout
    examples = [
        line.strip() for line in help_text.split("Examples:")[1].splitlines() if line.strip().startswith("dcmtools")
    ]
    assert len(examples) == 5
    for number in range(1, 4):
        save(ct("1", 1, number), tmp_path / "study" / f"ct{number}.dcm")
    (tmp_path / "patients.csv").write_text("old_id,PatientID,PatientName\nPHIID12345,NEW001,ONE^NEW\n")
    (tmp_path / "team.key").write_text("a team secret\n")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(Path(__file__).parent.parent / "src"),
    }
    for example in examples:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", example], cwd=tmp_path, capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, (example, result.stderr)
        assert "Traceback" not in result.stderr
    assert pydicom.dcmread(tmp_path / "fixed" / "ct1.dcm").InstitutionName == "North Clinic"
    assert pydicom.dcmread(tmp_path / "mapped" / "ct2.dcm").PatientID == "NEW001"
    assert pydicom.dcmread(tmp_path / "study" / "ct3.dcm").OtherPatientIDsSequence[0].IssuerOfPatientID == "NORTH"
    assert pydicom.dcmread(tmp_path / "renumbered" / "ct1.dcm").SpecificCharacterSet == "ISO_IR 192"
    assert re.search(r"^\(0011,0010\)$", result.stdout, re.M), result.stdout  # the private creator goes


CHARSET_FILES = ["chrArab.dcm", "chrFren.dcm", "chrFrenMulti.dcm", "chrGerm.dcm", "chrGreek.dcm", "chrHbrw.dcm",
                 "chrI2.dcm", "chrKoreanMulti.dcm", "chrRuss.dcm", "chrX1.dcm", "chrX2.dcm"]  # fmt: skip
# DCMTK's iconv cannot convert these (ISO 2022 IR 87; a sequence item with its own set): pydicom decodes them.
CHARSET_FILES_NOT_DCMTK = ["chrH31.dcm", "chrH32.dcm", "chrJapMulti.dcm", "chrJapMultiExplicitIR6.dcm",
                           "chrSQEncoding.dcm", "chrSQEncoding1.dcm"]  # fmt: skip


@pytest.mark.peer
@pytest.mark.parametrize("name", CHARSET_FILES)
def test_charset_utf8_same_as_dcmconv(name, tmp_path):
    """--charset utf8 gives the values of DCMTK `dcmconv +U8` (pydicom's character set files, ISO 2022 included)."""
    require("/usr/bin/dcmconv")
    from pydicom.data import get_charset_files

    source = tmp_path / "in" / name
    source.parent.mkdir()
    shutil.copy(get_charset_files(name)[0], source)
    theirs = tmp_path / "theirs.dcm"
    result = subprocess.run(["/usr/bin/dcmconv", "+U8", str(source), str(theirs)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    run = dcmtools("edit", "--charset", "utf8", "-o", str(tmp_path / "out"), str(source))
    assert run.returncode == 0, run.stdout + run.stderr
    ours, expected = pydicom.dcmread(tmp_path / "out" / name), pydicom.dcmread(theirs)
    assert elements(ours) == elements(expected)


def decoded(ds: Dataset) -> dict:
    """Text values as pydicom decodes them (with each dataset's own character set)."""
    ds.decode()
    out = {}
    for element in ds:
        if element.VR == "SQ":
            out[element.tag] = [decoded(item) for item in element.value]
        elif element.VR in ("PN", "LO", "SH", "ST", "LT", "UC", "UT"):
            out[element.tag] = str(element.value)
    return out


@pytest.mark.parametrize("name", CHARSET_FILES_NOT_DCMTK)
def test_charset_utf8_iso2022_same_text_as_pydicom(name, tmp_path):
    from pydicom.data import get_charset_files

    source = tmp_path / "in" / name
    source.parent.mkdir()
    shutil.copy(get_charset_files(name)[0], source)
    run = dcmtools("edit", "--charset", "utf8", "-o", str(tmp_path / "out"), str(source))
    assert run.returncode == 0, run.stdout + run.stderr
    ours = pydicom.dcmread(tmp_path / "out" / name)
    assert ours.SpecificCharacterSet == "ISO_IR 192"
    assert decoded(ours) == decoded(pydicom.dcmread(source))


def test_in_place_keeps_mode_and_follows_links(tmp_path):
    import os

    real = save(ct("1", 1, 1), tmp_path / "real" / "a.dcm")
    os.chmod(real, 0o640)
    link = tmp_path / "link.dcm"
    link.symlink_to(real)
    run = dcmtools("edit", "--set", "StationName=S9", "--in-place", str(link))
    assert run.returncode == 0, run.stderr
    assert link.is_symlink() and pydicom.dcmread(real).StationName == "S9"
    assert os.stat(real).st_mode & 0o777 == 0o640
    assert (tmp_path / "real" / "a.dcm.bak").exists()
    sequence = dcmtools("edit", "--set", "ReferencedImageSequence=x", "--in-place", str(link))
    assert sequence.returncode == 2 and "is a sequence" in sequence.stderr
