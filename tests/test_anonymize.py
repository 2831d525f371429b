"""dcmtools anonymize and dcmtools.deid: PHI removal, consistency, repeatability, options."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from anonymize_data import PHI, UID_ROOT, animal, ct, rtstruct, save, sr
from peers import REPO, dcmtools

from dcmtools.deid import Anonymizer, Key, Options
from dcmtools.deid.dates import shift_da, shift_dt
from dcmtools.deid.profile import OPTIONS, Plan, table


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def files_of(result) -> list[dict]:
    return [r for r in records(result.stdout) if r.get("type") == "file"]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_no_phi(path: Path) -> None:
    data = path.read_bytes()
    for text in PHI:
        assert text.encode() not in data, f"{text!r} survived in {path}"
    assert UID_ROOT.encode() not in data, f"an original UID survived in {path}"


@pytest.fixture
def study(tmp_path) -> Path:
    """Two CT series of three images, a structure set on the first, an SR: one patient."""
    folder = tmp_path / "in"
    images = []
    for series in (1, 2):
        for number in (1, 2, 3):
            ds = ct(series=series, number=number, implicit=series == 2)
            save(ds, folder / f"series{series}" / f"im{number}.dcm")
            images.append(ds)
    save(rtstruct(images[:3]), folder / "rt" / "rs.dcm")
    save(sr(), folder / "sr" / "report.dcm")
    return folder


# ------------------------------------------------------------------ the table
def test_vendored_table_is_the_whole_table_e11():
    rows = table()
    assert len(rows) == 621
    actions = {r["basic"] for r in rows}
    assert actions == {"D", "Z", "X", "U", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}
    assert {o for r in rows for o in r["options"]} == set(OPTIONS)
    assert {r["tag"] for r in rows} >= {"private", "50XXXXXX", "60XX3000", "60XX4000", "00020003"}


def test_vendored_table_matches_its_source():
    sources = [REPO.parent / "shared", REPO.parent.parent / "shared"]
    source = next((s / "data" / "e11_innolitics_2024b.json" for s in sources if (s / "data").exists()), None)
    if source is None or not source.exists():
        pytest.skip("../shared/data is not beside the repository")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_deid_table.py"), str(source), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_options_override_the_basic_profile():
    basic = Plan()
    assert basic.rules[0x00080018] == "U" and basic.rules[0x00081010] == "X/Z/D" and basic.private == "X"
    kept = Plan(Options(retain_uids=True, retain_device_identity=True, retain_safe_private=True))
    assert kept.rules[0x00080018] == "K" and kept.rules[0x00081010] == "K" and kept.private == "C"
    assert Plan(Options(retain_longitudinal_modified_dates=True)).rules[0x00080020] == "C"
    assert Plan(Options(clean_graphics=True)).overlay == "C"
    with pytest.raises(ValueError):
        Options(retain_longitudinal_full_dates=True, retain_longitudinal_modified_dates=True)


# ------------------------------------------------------------------ keys and dates
def test_uids_are_keyed_and_valid():
    key = Key("secret")
    new = key.uid("1.2.3.4")
    assert new == Key("secret").uid("1.2.3.4") != Key("other").uid("1.2.3.4")
    assert new.startswith("2.25.") and len(new) <= 64 and new[5:].isdigit() and not new[5:].startswith("0")
    assert key.uid("1.2.3.4\0") == new
    assert -3650 <= key.date_offset("p1") <= -365
    assert key.date_offset("p1") == Key("secret").date_offset("p1")


def test_date_shifts_keep_formats():
    assert shift_da("20230105", -5) == "20221231"
    assert shift_da("2023.01.05", -5) == "2022.12.31"
    assert shift_da("20230105-20230110", -5) == "20221231-20230105"
    assert shift_da("", -5) == ""
    assert shift_dt("20230105101500.123+0100", -5) == "20221231101500.123+0100"
    assert shift_dt("2023", -400) == "2022"
    assert shift_dt("202301", -40) == "202212"
    for bad in ("2023-01-05", "20231305", "yesterday"):
        with pytest.raises(ValueError):
            shift_da(bad, -5)
    with pytest.raises(ValueError):
        shift_dt("2023x", -5)


# ------------------------------------------------------------------ PHI
def test_no_phi_survives_anywhere(study, tmp_path):
    out = tmp_path / "out"
    result = dcmtools("anonymize", "--keep-names", "--key", "k1", "-o", str(out), str(study), "--json")
    assert result.returncode == 0, result.stderr
    files = files_of(result)
    assert len(files) == 8 and all(r["ok"] for r in files)
    for record in files:
        path = Path(record["out"])
        assert path.exists() and path.relative_to(out)
        assert_no_phi(path)
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == record["sop_instance_uid"]
        assert ds.file_meta.ImplementationVersionName == "DCMTOOLS_0.1"
        assert "SourceApplicationEntityTitle" not in ds.file_meta
        assert ds.preamble == b"\0" * 128
        assert not any(tag.group & 1 for tag in ds.keys()), "a private tag survived"
        assert "OtherPatientIDs" not in ds and "OtherPatientIDsSequence" not in ds
        assert ds.StudyDate == "" and "PatientBirthDate" in ds and ds.PatientBirthDate == ""
        if ds.Modality == "CT":
            assert not any(0x5000 <= tag.group <= 0x60FF for tag in ds.keys()), "an overlay or curve survived"
            assert ds.PixelData == bytes(range(32))
    inputs = {p.relative_to(study) for p in study.rglob("*.dcm")}
    assert {p.relative_to(out) for p in out.rglob("*.dcm")} == inputs


def test_references_stay_consistent_across_the_study(study, tmp_path):
    out = tmp_path / "out"
    result = dcmtools("anonymize", "--keep-names", "--key", "k1", "-o", str(out), str(study), "--jobs", "2")
    assert result.returncode == 0, result.stderr
    images = {p.name: pydicom.dcmread(p) for p in sorted((out / "series1").glob("*.dcm"))}
    series2 = [pydicom.dcmread(p) for p in sorted((out / "series2").glob("*.dcm"))]
    rt = pydicom.dcmread(out / "rt" / "rs.dcm")
    report = pydicom.dcmread(out / "sr" / "report.dcm")
    everything = [*images.values(), *series2, rt, report]
    assert len({ds.StudyInstanceUID for ds in everything}) == 1
    assert len({ds.PatientID for ds in everything}) == 1
    assert len({str(ds.PatientName) for ds in everything}) == 1
    assert everything[0].PatientID.startswith("ANON") and str(everything[0].PatientName).startswith("ANON^")
    assert len({ds.SeriesInstanceUID for ds in images.values()}) == 1
    assert {ds.SeriesInstanceUID for ds in series2}.isdisjoint({ds.SeriesInstanceUID for ds in images.values()})
    assert len({ds.FrameOfReferenceUID for ds in [*images.values(), *series2]}) == 1
    sop = {ds.SOPInstanceUID for ds in images.values()}
    assert len(sop) == 3
    # each image references the next one (a UID that exists in the study)
    assert images["im1.dcm"].ReferencedImageSequence[0].ReferencedSOPInstanceUID == images["im2.dcm"].SOPInstanceUID
    # the structure set points at the new UIDs of the images, at any depth
    frame = rt.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == images["im1.dcm"].FrameOfReferenceUID
    study_ref = frame.RTReferencedStudySequence[0]
    assert study_ref.ReferencedSOPInstanceUID == rt.StudyInstanceUID
    series_ref = study_ref.RTReferencedSeriesSequence[0]
    assert series_ref.SeriesInstanceUID == images["im1.dcm"].SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in series_ref.ContourImageSequence} == sop
    contour = rt.ROIContourSequence[0].ContourSequence[0]
    assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == images["im1.dcm"].SOPInstanceUID
    assert rt.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == frame.FrameOfReferenceUID
    assert rt.StructureSetROISequence[0].ROIName == ""  # Z: a name may identify
    observation = rt.RTROIObservationsSequence[0]
    assert observation.ROIInterpreter == "" and "ROIInterpreterSequence" not in observation


def test_same_key_gives_identical_output_and_another_key_does_not(study, tmp_path):
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, key in ((first, "k1"), (second, "k1"), (third, "k2")):
        result = dcmtools(
            "anonymize",
            "--keep-names",
            "--key",
            key,
            "-o",
            str(out),
            str(study),
            "--jobs",
            "2" if out == second else "1",
        )
        assert result.returncode == 0, result.stderr
    assert digest(first) == digest(second)
    a, c = pydicom.dcmread(first / "series1" / "im1.dcm"), pydicom.dcmread(third / "series1" / "im1.dcm")
    assert a.SOPInstanceUID != c.SOPInstanceUID and a.PatientID != c.PatientID


def test_key_file_and_random_key(study, tmp_path):
    key_file = tmp_path / "team.key"
    key_file.write_text("k1\n")
    by_file = dcmtools("anonymize", "--keep-names", "--key-file", str(key_file), "-o", str(tmp_path / "f"), str(study))
    by_text = dcmtools("anonymize", "--keep-names", "--key", "k1", "-o", str(tmp_path / "t"), str(study))
    assert by_file.returncode == by_text.returncode == 0
    assert digest(tmp_path / "f") == digest(tmp_path / "t")
    assert records(by_file.stdout)[-1]["key_id"] == records(by_text.stdout)[-1]["key_id"]
    random = dcmtools("anonymize", "--keep-names", "-o", str(tmp_path / "r"), str(study))
    assert random.returncode == 0 and "random key" in random.stderr
    assert records(random.stdout)[-1]["key_id"] is None
    assert digest(tmp_path / "r") != digest(tmp_path / "t")
    both = dcmtools(
        "anonymize", "--keep-names", "--key", "a", "--key-file", str(key_file), "-o", str(tmp_path / "x"), str(study)
    )
    assert both.returncode == 2


# ------------------------------------------------------------------ dates and options
def test_modified_dates_shift_per_patient(tmp_path):
    folder = tmp_path / "in"
    save(ct(patient="1", number=1), folder / "p1a.dcm")
    save(ct(patient="1", number=2), folder / "p1b.dcm")
    save(ct(patient="2", number=1), folder / "p2.dcm")
    odd = ct(patient="3")
    odd.StudyDate, odd.SeriesDate, odd.ContentDate = "", "2023", "garbage"
    odd.AcquisitionDateTime = "2023"
    save(odd, folder / "odd.dcm")
    out = tmp_path / "out"
    result = dcmtools(
        "anonymize", "--keep-names", "--key", "k", "--retain-longitudinal-modified-dates", "-o", str(out), str(folder)
    )
    assert result.returncode == 0, result.stderr
    a, b, c = (pydicom.dcmread(out / n) for n in ("p1a.dcm", "p1b.dcm", "p2.dcm"))
    assert a.StudyDate == b.StudyDate != c.StudyDate
    assert a.StudyDate < "20230105" and len(a.StudyDate) == 8
    assert a.AcquisitionDateTime.endswith("101500.123+0100") and a.AcquisitionDateTime[:8] == a.StudyDate
    assert a.StudyTime == "101500"  # dates move by whole days
    assert a.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = {i.CodeValue for i in a.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107"}
    odd_out = pydicom.dcmread(out / "odd.dcm")
    assert odd_out.StudyDate == "" and odd_out.ContentDate == ""
    assert len(odd_out.AcquisitionDateTime) == 4 and odd_out.AcquisitionDateTime < "2023"
    odd_record = next(r for r in files_of(result) if r["path"].endswith("odd.dcm"))
    # never the value itself (issue 13: warnings go to logs and terminals)
    assert any("not a valid DA" in w for w in odd_record["warnings"])
    assert not any("garbage" in w for w in odd_record["warnings"])
    assert "PatientBirthDate" in a and a.PatientBirthDate == ""  # no option keeps the birth date


def test_retain_and_clean_options(study, tmp_path):
    out = tmp_path / "out"
    flags = [
        "--retain-uids", "--retain-device-identity", "--retain-institution-identity",
        "--retain-patient-characteristics", "--retain-longitudinal-full-dates", "--clean-descriptors",
        "--clean-graphics", "--clean-structured-content",
    ]  # fmt: skip
    result = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(study), *flags)
    assert result.returncode == 0, result.stderr
    ds = pydicom.dcmread(out / "series1" / "im1.dcm")
    assert ds.SOPInstanceUID.startswith(UID_ROOT) and ds.StudyInstanceUID.startswith(UID_ROOT)
    assert ds.StationName == "PHISTATION" and ds.DeviceSerialNumber == "PHISERIAL"
    assert ds.InstitutionName == "PHIINSTITUTION"
    assert ds.PatientSex == "M" and ds.PatientAge == "061Y"
    assert ds.StudyDate == "20230105" and ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert ds.StudyDescription == "CT HEAD for"  # kept, the patient's names cleaned out
    assert ds[0x60003000].value == b"\xff\x00"  # overlays kept with Clean Graphics
    assert ds[0x60004000].value == "PHIOVERLAY"  # no identifier of this patient in it
    assert str(ds.PatientName).startswith("ANON^") and "OtherPatientIDs" not in ds
    report = pydicom.dcmread(out / "sr" / "report.dcm")
    text = report.ContentSequence[1]
    assert text.TextValue == "PHITEXTVALUE: no bleed in"
    assert text.ConceptNameCodeSequence[0].CodeMeaning == "Finding"
    codes = {i.CodeValue for i in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113110", "113109", "113112", "113108", "113106", "113105", "113103", "113104"}


def test_structured_content_without_the_option_is_dummied(study, tmp_path):
    out = tmp_path / "out"
    assert dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(study)).returncode == 0
    report = pydicom.dcmread(out / "sr" / "report.dcm")
    name, text = report.ContentSequence
    assert text.TextValue == "ANONYMIZED" and str(name.PersonName).startswith("ANON^")
    assert text.ConceptNameCodeSequence[0].CodeMeaning == "Finding"  # coded concepts stay
    verifier = report.VerifyingObserverSequence[0]
    assert str(verifier.VerifyingObserverName).startswith("ANON^") and verifier.VerificationDateTime == "19000101000000"


def test_retain_safe_private(tmp_path):
    ds = ct()
    safe = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    safe.add_new(0x27, "SH", "1.375:1")  # Scan Pitch: in Table E.3.10-1
    safe.add_new(0x28, "OB", b"PHIPRIVATE")  # not in the table
    declared = ds.private_block(0x0013, "MY SAFE BLOCK", create=True)
    declared.add_new(0x05, "LO", "fine")
    item = pydicom.Dataset()
    item.PrivateGroupReference = 0x0013
    item.PrivateCreatorReference = "MY SAFE BLOCK"
    item.BlockIdentifyingInformationStatus = "SAFE"
    ds.PrivateDataElementCharacteristicsSequence = pydicom.Sequence([item])
    save(ds, tmp_path / "in" / "a.dcm")
    out = tmp_path / "out"
    result = dcmtools(
        "anonymize", "--keep-names", "--key", "k", "--retain-safe-private", "-o", str(out), str(tmp_path / "in")
    )
    assert result.returncode == 0, result.stderr
    got = pydicom.dcmread(out / "a.dcm")
    assert got.private_block(0x0043, "GEMS_PARM_01")[0x27].value == "1.375:1"
    assert got.private_block(0x0013, "MY SAFE BLOCK")[0x05].value == "fine"
    assert_no_phi(out / "a.dcm")
    assert 0x00110010 not in got  # the unsafe creator went with its elements


# ------------------------------------------------------------------ veterinary
def test_veterinary_patient(tmp_path):
    save(animal(), tmp_path / "in" / "rex.dcm")
    out = tmp_path / "out"
    result = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert_no_phi(out / "rex.dcm")
    ds = pydicom.dcmread(out / "rex.dcm")
    assert "ResponsiblePerson" in ds and ds.ResponsiblePerson == ""  # Type 2C for animals: emptied
    assert "ResponsibleOrganization" in ds and ds.ResponsibleOrganization == ""
    assert "BreedRegistrationSequence" in ds and len(ds.BreedRegistrationSequence) == 0
    assert ds.PatientSpeciesDescription == "Canine" and ds.PatientBreedDescription == "Beagle"
    assert "ResponsiblePersonRole" not in ds  # Type 1C: only with a Responsible Person value
    assert "StrainDescription" not in ds and "OtherPatientIDs" not in ds
    assert ds.PatientSexNeutered == ""


# ------------------------------------------------------------------ refusals and records
def test_burned_in_and_dicomdir_are_refused_and_the_batch_goes_on(tmp_path, test_files_dir):
    folder = tmp_path / "in"
    us = ct()
    us.Modality = "US"
    del us.BurnedInAnnotation
    save(us, folder / "us.dcm")
    flagged = ct(number=2)
    flagged.BurnedInAnnotation = "YES"
    save(flagged, folder / "flagged.dcm")
    us_no = ct(number=3)
    us_no.Modality = "US"  # says NO: written
    save(us_no, folder / "us_no.dcm")
    (folder / "DICOMDIR").write_bytes((test_files_dir / "dicomdirtests" / "DICOMDIR").read_bytes())
    (folder / "notes.txt").write_text("not dicom")
    out = tmp_path / "out"
    result = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(folder))
    assert result.returncode == 1
    by_name = {Path(r["path"]).name: r for r in files_of(result)}
    assert by_name["us.dcm"]["error"]["code"] == "burned_in" and "US" in by_name["us.dcm"]["error"]["message"]
    assert by_name["flagged.dcm"]["error"]["code"] == "burned_in"
    assert by_name["DICOMDIR"]["error"]["code"] == "dicomdir"
    assert by_name["notes.txt"]["error"]["code"] == "not_dicom"
    assert by_name["us_no.dcm"]["ok"] is True
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["us_no.dcm"]
    assert "Traceback" not in result.stderr
    allowed = dcmtools(
        "anonymize",
        "--keep-names",
        "--key",
        "k",
        "--allow-burned-in",
        "-o",
        str(tmp_path / "o2"),
        str(folder / "us.dcm"),
    )
    assert allowed.returncode == 0 and (tmp_path / "o2" / "us.dcm").exists()


def test_map_file(study, tmp_path):
    out, mapping = tmp_path / "out", tmp_path / "reid.jsonl"
    result = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), "--map", str(mapping), str(study))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(mapping.stat().st_mode) == 0o600
    entries = records(mapping.read_text())
    patients = [e for e in entries if e["type"] == "patient"]
    assert len(patients) == 1
    assert patients[0]["original"]["PatientID"] == "PHIID12345"
    assert patients[0]["new"]["PatientID"] == pydicom.dcmread(out / "series1" / "im1.dcm").PatientID
    studies = [e for e in entries if e["type"] == "study"]
    assert len(studies) == 1 and studies[0]["original"]["AccessionNumber"] == "PHIACC777"
    uids = {e["original"]: e["new"] for e in entries if e["type"] == "uid"}
    assert len(entries) == len({json.dumps(e, sort_keys=True) for e in entries})  # each entry once
    im1 = pydicom.dcmread(study / "series1" / "im1.dcm")
    assert uids[im1.SOPInstanceUID] == pydicom.dcmread(out / "series1" / "im1.dcm").SOPInstanceUID
    # no map without --map; an existing map is not replaced without --overwrite
    again = dcmtools(
        "anonymize", "--keep-names", "--key", "k", "-o", str(tmp_path / "o2"), "--map", str(mapping), str(study)
    )
    assert again.returncode == 1 or again.returncode == 2
    assert not list((tmp_path / "o2").glob("**/*.dcm"))


def test_outputs_are_atomic_and_never_overwritten(study, tmp_path):
    before = digest(study)
    out = tmp_path / "out"
    assert dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(study)).returncode == 0
    again = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(study))
    assert again.returncode == 1
    assert {r["error"]["code"] for r in files_of(again)} == {"exists"}
    assert (
        dcmtools("anonymize", "--keep-names", "--key", "k", "--overwrite", "-o", str(out), str(study)).returncode == 0
    )
    assert digest(study) == before  # inputs untouched
    assert not [p for p in out.rglob(".*")]  # no temporary file left
    usage = dcmtools("anonymize", "--keep-names", "--key", "k", str(study))
    assert usage.returncode == 2 and "output" in usage.stderr


def test_records_pipe_into_the_next_command(study, tmp_path):
    out = tmp_path / "out"
    first = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(study / "series1"))
    assert first.returncode == 0
    dumped = dcmtools("dump", "--flat", "-t", "PatientID", "-t", "SOPInstanceUID", "-", input=first.stdout)
    assert dumped.returncode == 0, dumped.stderr
    dumps = [r for r in records(dumped.stdout) if r.get("type") == "file"]
    assert [d["path"] for d in dumps] == [r["out"] for r in files_of(first)]
    assert all(d["dataset"]["PatientID"].startswith("ANON") for d in dumps)
    # a failed upstream record is never anonymized (nor its original passed on)
    failed = json.dumps(
        {"type": "file", "path": str(study / "series1" / "im1.dcm"), "ok": False, "error": {"code": "x"}}
    )
    piped = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(tmp_path / "o3"), "-", input=failed + "\n")
    assert piped.returncode == 1 and files_of(piped)[0]["error"]["code"] == "upstream_failed"


def test_python_api(tmp_path):
    anonymizer = Anonymizer("k", Options(retain_patient_characteristics=True))
    source = save(ct(), tmp_path / "a.dcm")
    record = anonymizer.anonymize_file(str(source), str(tmp_path / "out" / "a.dcm"))
    assert record["ok"] and Path(record["out"]).exists()
    new, result = anonymizer.anonymize_pydicom(pydicom.dcmread(source))
    assert new.PatientSex == "M" and new.SOPInstanceUID == result.sop_instance_uid == record["sop_instance_uid"]
    data, _ = anonymizer.anonymize_bytes(source.read_bytes())
    assert data == (tmp_path / "out" / "a.dcm").read_bytes()
    bad = anonymizer.anonymize_file(str(tmp_path / "missing.dcm"), str(tmp_path / "out" / "m.dcm"))
    assert bad["ok"] is False and bad["error"]["code"] == "not_found"


def test_help_and_run_do_not_import_pydicom(study, tmp_path):
    code = (
        "import sys; sys.argv = ['dcmtools'] + sys.argv[1:]\n"
        "from dcmtools.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('pydicom', 'numpy') if m in sys.modules], file=sys.stderr)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for args in (["anonymize", "--help"], ["anonymize", "--key", "k", "-o", str(tmp_path / "o"), str(study)]):
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
        assert "HEAVY []" in result.stderr, result.stderr


# ------------------------------------------------------------------ pydicom's files
def test_pydicom_bundled_files_never_crash(all_test_files, tmp_path):
    out = tmp_path / "out"
    folder = all_test_files[0].parent
    result = dcmtools(
        "anonymize", "--keep-names", "--key", "k", "--allow-burned-in", "-o", str(out), str(folder), "--jobs", "2"
    )
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    files = files_of(result)
    assert len(files) == len(all_test_files)
    codes = {r["error"]["code"] for r in files if not r["ok"]}
    assert codes <= {"not_dicom", "invalid", "truncated", "dicomdir", "empty"}, [r for r in files if not r["ok"]]
    written = [r for r in files if r["ok"]]
    assert len(written) >= 70
    for record in written:
        ds = pydicom.dcmread(record["out"], force=True)
        original = pydicom.dcmread(record["path"], force=True)
        assert ds.get("PatientIdentityRemoved") == "YES"
        if "SOPInstanceUID" in original:
            assert ds.SOPInstanceUID != original.SOPInstanceUID
        if "PixelData" in original:
            assert ds.PixelData == original.PixelData, record["path"]


def replace_as_un(data: bytes, tag: int, value: bytes) -> bytes:
    """Re-encode one top-level element of an explicit VR little endian file as UN."""
    import struct

    header = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    start = data.index(header, 132)
    vr = data[start + 4 : start + 6]
    if vr in (b"SQ", b"OB", b"OW", b"UN", b"UT", b"UC", b"UR"):
        length, end_header = struct.unpack_from("<I", data, start + 8)[0], start + 12
    else:
        length, end_header = struct.unpack_from("<H", data, start + 6)[0], start + 8
    assert length != 0xFFFFFFFF
    element = header + b"UN\0\0" + struct.pack("<I", len(value)) + value
    return data[:start] + element + data[end_header + length :]


def test_sequences_and_names_stored_as_un_are_still_anonymized(tmp_path):
    """Explicit VR files where a converter wrote known elements as UN (CP-246)."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    ds = ct()
    inner = pydicom.Dataset()
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inner.ReferencedSOPInstanceUID = UID_ROOT + "555"
    inner.RequestingPhysician = "PHIREQUESTER"
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, inner)
    item = b"\xfe\xff\x00\xe0" + len(buffer.getvalue()).to_bytes(4, "little") + buffer.getvalue()
    path = save(ds, tmp_path / "in" / "un.dcm")
    data = path.read_bytes()
    for tag, value in ((0x00081140, item), (0x00100010, b"DOE^JOHNNY")):  # Referenced Image Sequence, Patient's Name
        data = replace_as_un(data, tag, value)
    path.write_bytes(data)
    assert b"\x08\x00\x40\x11UN" in data and b"\x10\x00\x10\x00UN" in data
    out = tmp_path / "out"
    result = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(tmp_path / "in"))
    assert result.returncode == 0, result.stderr
    assert_no_phi(out / "un.dcm")
    got = pydicom.dcmread(out / "un.dcm")
    assert got["ReferencedImageSequence"].VR == "SQ"
    assert got.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert str(got.PatientName).startswith("ANON^")


def test_outputs_inside_the_inputs_are_not_anonymized_again(study, tmp_path):
    out = study / "anon"
    first = dcmtools("anonymize", "--keep-names", "--key", "k", "-o", str(out), str(study))
    assert first.returncode == 0
    second = dcmtools("anonymize", "--keep-names", "--key", "k", "--overwrite", "-o", str(out), str(study))
    assert second.returncode == 1
    refused = [r for r in files_of(second) if not r["ok"]]
    assert len(refused) == 8 and all("inside the output folder" in r["error"]["message"] for r in refused)
    assert not (out / "anon").exists()
