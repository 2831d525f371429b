"""migrate --anonymize / --edit: changes in flight, Orthanc as the source and dcmtools listen as the
destination (through us); reconciliation under the new UIDs the journal keeps."""

from __future__ import annotations

from pathlib import Path

import migrate_data as D
import pydicom
import pytest
from peers import dcmtools
from qrpeers import PATIENTS, orthanc_to_listen

pytestmark = pytest.mark.peer


def test_anonymize_in_flight_orthanc_to_listen(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=6, compressed=True)
    (tmp_path / "team.key").write_text("a migration secret\n")
    with orthanc_to_listen(tmp_path, D.all_files(archive)) as (source, dest, port):
        journal = tmp_path / "run.journal"
        args = [
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--port",
            str(port),
            "--anonymize",
            "--key-file",
            str(tmp_path / "team.key"),
        ]
        result = dcmtools(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(r["mode"] == "through" for r in D.by_type(result.stdout, "study"))  # forced through us
        verified = D.by_type(result.stdout, "verify")
        assert len(verified) == 6 and all(r["result"] == "matched" for r in verified)
        data = D.journal_data(journal)
        received = list(Path(dest.extra["store"]).rglob("*.dcm"))
        assert len(received) == len(D.all_files(archive))
        originals = {name["PatientName"] for name in PATIENTS.values()}
        original_sops = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in D.all_files(archive)}
        new_studies = set()
        for path in received:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert str(ds.PatientName) not in originals and ds.PatientID not in PATIENTS
            assert ds.StudyInstanceUID not in archive and ds.SOPInstanceUID not in original_sops
            assert ds.PatientIdentityRemoved == "YES"
            new_studies.add(str(ds.StudyInstanceUID))
        for r in verified:  # counted under the new Study UID the journal keeps
            changed = data[r["study"]]["changed"]
            assert r["destination_studies"] == changed["studies"] and len(changed["studies"]) == 1
            assert r["destination"]["instances"] == len(archive[r["study"]])
            assert set(changed["sop"]) <= original_sops and len(changed["sop"]) == len(archive[r["study"]])
        assert new_studies == {s for d in data.values() for s in d["changed"]["studies"]}
        assert not any((tmp_path / "run.journal.staging").rglob("*.dcm"))
        # Reconciled again with SOP Instance UIDs, through the journal's mapping.
        again = dcmtools(*args, "--verify-only", "--uids")
        assert again.returncode == 0, again.stdout + again.stderr
        assert [r["result"] for r in D.by_type(again.stdout, "verify")] == ["matched"] * 6
        # Another key would give other UIDs: the journal refuses it.
        (tmp_path / "other.key").write_text("another secret\n")
        other = dcmtools(*args[:-1], str(tmp_path / "other.key"))
        assert other.returncode == 2 and "other changes in flight" in other.stderr


def test_edit_in_flight_orthanc_to_listen(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=4, compressed=True)
    with orthanc_to_listen(tmp_path, D.all_files(archive)) as (source, dest, port):
        journal = tmp_path / "run.journal"
        result = dcmtools(
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--port",
            str(port),
            "--edit",
            "--set",
            "InstitutionName=X",
            "--erase",
            "StudyDescription",
            "--uids",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert [r["result"] for r in D.by_type(result.stdout, "verify")] == ["matched"] * 4
        received = D.folder_files(dest.extra["store"])
        assert len(received) == len(D.all_files(archive))
        for path in D.all_files(archive):
            original = pydicom.dcmread(path)
            got = pydicom.dcmread(received[str(original.SOPInstanceUID)])
            assert got.InstitutionName == "X" and "StudyDescription" not in got
            assert got.StudyInstanceUID == original.StudyInstanceUID and got.PatientName == original.PatientName
            assert got.PixelData == original.PixelData


def test_edit_new_uids_and_a_file_that_cannot_be_changed(tmp_path: Path) -> None:
    """--new-uids: counted under the new UIDs; --map with --require-match: the study whose PatientID has no
    row fails with the edit's reason, the others are verified (exit 1)."""
    archive = D.build(tmp_path / "archive", studies=3, compressed=False)
    (tmp_path / "ids.csv").write_text("PatientID,OtherPatientIDs\nH001,NEW-H001\nVET042,NEW-VET042\n")
    with orthanc_to_listen(tmp_path, D.all_files(archive)) as (source, dest, port):
        journal = tmp_path / "run.journal"
        result = dcmtools(
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--port",
            str(port),
            "--max-attempts",
            "1",
            "--edit",
            "--new-uids",
            "all",
            "--key",
            "k1",
            "--map",
            str(tmp_path / "ids.csv"),
            "--match",
            "PatientID",
            "--require-match",
        )
        assert result.returncode == 1, result.stdout + result.stderr
        failed = [r for r in D.by_type(result.stdout, "study") if not r["ok"]]
        assert len(failed) == 1 and failed[0]["patient"] == "VET077"
        assert failed[0]["error"]["code"] == "unmatched" and "cannot be changed" in failed[0]["error"]["message"]
        verify = {r["study"]: r for r in D.by_type(result.stdout, "verify")}
        assert sum(r["ok"] for r in verify.values()) == 2
        data = D.journal_data(journal)
        for study, r in verify.items():
            if r["ok"]:
                assert data[study]["changed"]["studies"] != [study]
                assert r["destination"]["instances"] == len(archive[study])
        assert D.journal_counts(journal) == {"verified": 2, "failed": 1}
        for path in Path(dest.extra["store"]).rglob("*.dcm"):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert ds.OtherPatientIDs == f"NEW-{ds.PatientID}" and ds.StudyInstanceUID not in archive


def test_anonymize_folder_to_folder(tmp_path: Path) -> None:
    """No peer: a legacy folder anonymized into a folder (the listen layout under the new identifiers)."""
    archive = D.build(tmp_path / "legacy", studies=3, compressed=True)
    out = tmp_path / "out"
    journal = tmp_path / "run.journal"
    args = [
        "migrate",
        str(tmp_path / "legacy"),
        str(out) + "/",
        "--journal",
        str(journal),
        "--anonymize",
        "--key",
        "k",
        "--retain-institution-identity",
    ]
    result = dcmtools(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["result"] for r in D.by_type(result.stdout, "verify")] == ["matched"] * 3
    received = list(out.rglob("*.dcm"))
    assert len(received) == len(D.all_files(archive))
    for path in received:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientID not in PATIENTS and ds.StudyInstanceUID not in archive
        assert path.parent.parent.name == ds.StudyInstanceUID and path.parent.parent.parent.name == ds.PatientID
    again = dcmtools(*args, "--verify-only", "--uids")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [r["result"] for r in D.by_type(again.stdout, "verify")] == ["matched"] * 3
    assert not any((tmp_path / "run.journal.staging").rglob("*.dcm"))
