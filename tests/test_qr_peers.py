"""find, move (C-MOVE and C-GET) and worklist against real peers: DCMTK dcmqrscp, wlmscpfs and
storescp, and Orthanc (with its worklist plugin), each started and filled by these tests.

Results are compared with DCMTK findscu's for the same keys, and every retrieved instance with
the original file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import dcmtools, free_port
from qrpeers import (
    Archive,
    answer_set,
    build_archive,
    dcmqrscp,
    findscu,
    orthanc,
    records,
    same_instance,
    storescp,
    wlmscpfs,
    write_worklist,
)

pytestmark = pytest.mark.peer

ME = "DCMTOOLS"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qr")


@pytest.fixture(scope="module")
def archive(work) -> Archive:
    return build_archive(work / "archive")


@pytest.fixture(scope="module")
def my_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def third(work):
    with storescp(work, "THIRD") as peer:
        yield peer


@pytest.fixture(scope="module", params=["dcmqrscp", "orthanc"])
def pacs(request, work, archive, my_port, third):
    hosts = {"me": (ME, my_port), "third": ("THIRD", third.port)}
    if request.param == "dcmqrscp":
        with dcmqrscp(work, hosts, archive.files) as peer:
            peer.extra["kind"] = "dcmqrscp"
            yield peer
    else:
        with orthanc(work, hosts, archive.files) as peer:
            peer.extra["kind"] = "orthanc"
            yield peer


def _find(pacs, *args: str) -> tuple[list[dict], dict, int]:
    result = dcmtools("find", pacs.peer, "--json", *args)
    out = records(result.stdout)
    assert out and out[-1]["type"] == "summary", result.stderr
    return out[:-1], out[-1], result.returncode


def _cases(archive: Archive) -> list[tuple[str, str, list[str], int]]:
    ct_chest, thorax = archive.study_uid("ct-chest"), archive.study_uid("thorax")
    return [
        ("patient", "PATIENT", ["PatientName=S*", "PatientID", "PatientBirthDate", "PatientSex"], 1),
        ("patient", "PATIENT", ["PatientName", "PatientID"], 3),
        (
            "patient",
            "STUDY",
            ["PatientID=VET042", "StudyInstanceUID", "StudyDate", "AccessionNumber", "StudyDescription"],
            1,
        ),
        (
            "patient",
            "SERIES",
            ["PatientID=H001", f"StudyInstanceUID={ct_chest}", "SeriesInstanceUID", "Modality", "SeriesNumber"],
            1,
        ),
        (
            "patient",
            "IMAGE",
            [
                "PatientID=VET042",
                f"StudyInstanceUID={thorax}",
                f"SeriesInstanceUID={archive.series_uid('thorax', 'ct')}",
                "SOPInstanceUID",
                "InstanceNumber",
            ],
            2,
        ),
        (
            "study",
            "STUDY",
            ["PatientName=*O*", "StudyDate=20240101-20240131", "StudyInstanceUID", "AccessionNumber"],
            2,
        ),
        ("study", "STUDY", ["AccessionNumber=ACC1??", "StudyInstanceUID", "PatientID", "StudyDate"], 2),
        ("study", "STUDY", ["StudyDate=-20240115", "StudyInstanceUID", "PatientName", "StudyTime"], 2),
        ("study", "SERIES", [f"StudyInstanceUID={thorax}", "Modality=MR", "SeriesInstanceUID", "SeriesNumber"], 1),
        ("study", "SERIES", [f"StudyInstanceUID={thorax}", "Modality", "SeriesInstanceUID"], 2),
        (
            "study",
            "IMAGE",
            [
                f"StudyInstanceUID={ct_chest}",
                f"SeriesInstanceUID={archive.series_uid('ct-chest', 'ct')}",
                "SOPInstanceUID",
                "InstanceNumber",
            ],
            3,
        ),
    ]


def test_find_answers_as_findscu(pacs, archive, work):
    """All four levels, both models, keys, wildcards and ranges: the same set of answers as DCMTK findscu."""
    for n, (model, level, keys, expected) in enumerate(_cases(archive)):
        ours, summary, status = _find(
            pacs,
            "--level",
            level,
            "--model",
            model,
            "--no-defaults",
            "--no-check",
            "--no-walk",
            *[a for key in keys for a in ("-k", key)],
        )
        assert status == 0, (model, level, keys, summary)
        assert all(r["type"] == "match" and r["level"] == level for r in ours)
        theirs = findscu(pacs, [f"QueryRetrieveLevel={level}", *keys], model, work / f"findscu-{pacs.port}-{n}")
        assert len(ours) == expected, (model, level, keys, [r["dataset"] for r in ours])
        assert answer_set([r["dataset"] for r in ours]) == answer_set(theirs), (model, level, keys)


def test_find_default_table_keys(pacs, archive):
    """A bare study query gives the useful keys; --flat gives keywords."""
    ours, summary, status = _find(pacs, "--flat")
    assert status == 0 and summary["matches"] == 4
    by_accession = {r["dataset"]["AccessionNumber"]: r["dataset"] for r in ours}
    assert set(by_accession) == {"ACC100", "ACC101", "ACC042", "ACC077"}
    rex = by_accession["ACC042"]
    assert rex["PatientName"] == "SMITH^REX" and rex["PatientID"] == "VET042" and rex["StudyDate"] == "20240115"
    assert rex["StudyInstanceUID"] == archive.study_uid("thorax")


def test_find_shortcuts_and_checks(pacs, archive):
    """--patient, --date, --modality: right answers even where the peer ignores a key (dcmqrscp
    knows no ModalitiesInStudy, and ignores patient keys at the image level)."""
    ours, summary, _ = _find(pacs, "--modality", "MR", "--flat")
    assert {r["dataset"]["StudyInstanceUID"] for r in ours} == {
        archive.study_uid(s) for s in ("mr-head", "thorax", "abdomen")
    }
    assert all(
        "MR"
        in (
            r["dataset"]["ModalitiesInStudy"]
            if isinstance(r["dataset"]["ModalitiesInStudy"], list)
            else [r["dataset"]["ModalitiesInStudy"]]
        )
        for r in ours
    )
    ours, _, _ = _find(pacs, "--patient", "SMITH", "--date", "20240110-20240120", "--flat")
    assert [r["dataset"]["AccessionNumber"] for r in ours] == ["ACC042"]
    ours, _, _ = _find(pacs, "--level", "image", "--patient-id", "VET077", "--flat")
    assert [r["dataset"]["SOPInstanceUID"] for r in ours] == [
        uid for uid, path in archive.by_uid.items() if path.name.startswith("VET077")
    ]


def test_find_walks_a_hierarchical_peer(pacs, archive):
    """A series query without its study: dcmqrscp refuses it, find walks down; Orthanc answers it."""
    ours, summary, status = _find(
        pacs, "--level", "series", "--no-defaults", "-k", "Modality=CT", "-k", "SeriesInstanceUID", "--flat"
    )
    assert status == 0
    assert {r["dataset"]["SeriesInstanceUID"] for r in ours} == {
        archive.series_uid("ct-chest", "ct"),
        archive.series_uid("thorax", "ct"),
    }
    walked = pacs.extra["kind"] == "dcmqrscp"
    assert summary.get("walked", False) is walked
    if walked:  # each match carries the study it was found under
        assert all(r["walked"] and r["dataset"]["StudyInstanceUID"] for r in ours)


def test_find_failure_is_decoded(pacs):
    """--no-walk: the peer's refusal becomes a record with its status in words (Orthanc answers instead)."""
    ours, summary, status = _find(pacs, "--level", "series", "--no-defaults", "--no-walk", "-k", "Modality=CT")
    if pacs.extra["kind"] == "orthanc":
        assert status == 0 and len(ours) == 2
        return
    assert status == 1 and len(ours) == 1
    record = ours[0]
    assert record["type"] == "query" and record["ok"] is False and record["error"]["code"] == "query_failed"
    assert record["status"].startswith("0xC") and record["status_meaning"]
    assert "refused the query" in record["error"]["message"] and "StudyInstanceUID" in record["error"]["hint"]


def test_find_limit_cancels(pacs):
    ours, summary, status = _find(pacs, "--level", "patient", "--limit", "1")
    assert status == 0 and len(ours) == 1 and summary["matches"] == 1


def test_find_move_pipe_to_us(pacs, archive, my_port, work):
    """find | move to ourselves: each series retrieved at its level, every instance arrives equal."""
    out = work / f"moved-{pacs.port}"
    found = dcmtools("find", pacs.peer, "--level", "series", "-k", "Modality=CT", "--json")
    assert found.returncode == 0, found.stderr
    moved = dcmtools(
        "move", pacs.peer, "--port", str(my_port), "--store-dir", str(out), "--json", "-", input=found.stdout
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    result = records(moved.stdout)
    assert [r["type"] for r in result] == ["move", "move", "summary"]
    assert all(r["ok"] and r["level"] == "SERIES" and r["destination"] == ME for r in result[:-1])
    assert sorted(r["received"] for r in result[:-1]) == [2, 3]
    files = [Path(f) for r in result[:-1] for f in r["files"]]
    assert len(files) == 5
    for file in files:
        original = archive.by_uid[file.stem]
        assert same_instance(file, original), file
    assert result[-1]["received"] == 5 and result[-1]["completed"] == 5


def test_move_get(pacs, archive, work):
    """--get: no port, no registration; all nine instances of the four studies arrive equal."""
    out = work / f"got-{pacs.port}"
    found = dcmtools("find", pacs.peer, "--json")
    got = dcmtools("move", pacs.peer, "--get", "--store-dir", str(out), "--json", input=found.stdout)
    assert got.returncode == 0, got.stdout + got.stderr
    result = records(got.stdout)
    assert len(result) == 5 and all(r["type"] == "get" and r["ok"] for r in result[:-1])
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 9 and result[-1]["received"] == 9
    for file in files:
        assert same_instance(file, archive.by_uid[file.stem]), file


def test_move_to_a_third_node(pacs, archive, third):
    """find | move --dest THIRD: the PACS sends to DCMTK storescp."""
    for old in third.extra["out"].iterdir():  # the other PACS sent the same instance (same file name)
        old.unlink()
    found = dcmtools("find", pacs.peer, "--patient-id", "VET077", "--json")
    assert len(records(found.stdout)) == 2, found.stdout
    moved = dcmtools("move", pacs.peer, "--dest", "THIRD", "--json", "-", input=found.stdout)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    record = records(moved.stdout)[0]
    assert record["identifier"] == {"StudyInstanceUID": archive.study_uid("abdomen")}
    assert record["ok"] and record["completed"] == 1 and record["destination"] == "THIRD" and "received" not in record
    arrived = sorted(third.extra["out"].iterdir())
    assert len(arrived) == 1
    original = next(p for p in archive.files if p.name.startswith("VET077"))
    assert same_instance(arrived[0], original)


def test_move_keys_resolved_by_find(pacs, archive, my_port, work):
    """Keys that are not unique keys are resolved with a C-FIND first (PatientName=JONES*)."""
    out = work / f"resolved-{pacs.port}"
    moved = dcmtools("move", pacs.peer, "-k", "PatientName=JONES*", "--port", str(my_port), "-d", str(out), "--json")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    result = records(moved.stdout)
    assert result[0]["received"] == 1 and result[0]["identifier"] == {"StudyInstanceUID": archive.study_uid("abdomen")}


def test_move_to_unregistered_destination(pacs, archive, work):
    """The PACS does not know the destination: the record names it and says where to register it; exit 1."""
    study = archive.study_uid("abdomen")
    moved = dcmtools("move", pacs.peer, "--dest", "NOWHERE", "-k", f"StudyInstanceUID={study}", "--json")
    assert moved.returncode == 1
    record = records(moved.stdout)[0]
    assert record["ok"] is False and record["error"]["code"] == "move_destination_unknown"
    assert "NOWHERE" in record["error"]["message"] and "NOWHERE" in record["error"]["hint"]
    assert record["status"] == ("0xA801" if pacs.extra["kind"] == "dcmqrscp" else "0xC000")
    # to ourselves under an AE title the PACS does not know
    port = free_port()
    moved = dcmtools(
        "move",
        pacs.peer,
        "--aet",
        "STRANGER",
        "--port",
        str(port),
        "-d",
        str(work / "stranger"),
        "-k",
        f"StudyInstanceUID={study}",
        "--json",
    )
    assert moved.returncode == 1, moved.stdout + moved.stderr
    record = records(moved.stdout)[0]
    assert record["error"]["code"] == "move_destination_unknown"
    assert "STRANGER" in record["error"]["hint"] and f":{port}" in record["error"]["hint"]


def test_move_nothing_to_retrieve(pacs):
    moved = dcmtools("move", pacs.peer, "--get", "-k", "StudyInstanceUID=1.2.3.4.5.6.7", "--json")
    assert moved.returncode == 1
    record = records(moved.stdout)[0]
    assert record["ok"] is False and record["error"]["code"] == "move_failed"


# ------------------------------------------------------------- worklists
@pytest.fixture(scope="module")
def items(work) -> Path:
    folder = work / "worklist"
    write_worklist(folder)
    return folder


@pytest.fixture(scope="module", params=["wlmscpfs", "orthanc"])
def wl(request, work, items):
    if request.param == "wlmscpfs":
        with wlmscpfs(work, items) as peer:
            peer.extra["kind"] = "wlmscpfs"
            yield peer
    else:
        with orthanc(work, {}, worklist=items) as peer:
            peer.extra["kind"] = "orthanc"
            yield peer


def _worklist(peer, *args: str) -> list[dict]:
    result = dcmtools("worklist", peer.peer, "--json", "--flat", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return records(result.stdout)[:-1]


def test_worklist_filters(wl):
    def names(*args: str) -> list[str]:
        return sorted(r["dataset"]["PatientName"] for r in _worklist(wl, *args))

    assert names("--date", "20240115") == ["JONES^TOM", "SMITH^REX"]
    assert names("--date", "20240115", "--modality", "CR") == ["SMITH^REX"]
    assert names("--date", "20240116") == ["DOE^JOHN"]
    assert names("--date", "any", "--modality", "CR") == ["DOE^JOHN", "SMITH^REX"]
    assert names("--date", "20240115-20240116", "--station-aet", "US1") == ["JONES^TOM"]
    assert names("--date", "any", "--patient", "SMITH") == ["SMITH^REX"]
    assert names("--date", "20240201") == []


def test_worklist_veterinary_attributes(wl):
    dog = _worklist(wl, "--date", "20240115", "--modality", "CR")[0]["dataset"]
    step = dog["ScheduledProcedureStepSequence"][0]
    assert step["Modality"] == "CR" and step["ScheduledStationAETitle"] == "CR1"
    assert step["ScheduledProcedureStepStartDate"] == "20240115" and step["ScheduledProcedureStepStartTime"] == "0900"
    assert dog["AccessionNumber"] == "WL-dog" and dog["RequestedProcedureDescription"] == "Thorax 2 views"
    assert dog["ResponsiblePerson"] == "SMITH^JOHN" and dog["ResponsiblePersonRole"] == "OWNER"
    if wl.extra["kind"] == "wlmscpfs":
        # DCMTK 3.6.7's wlmscpfs supports no species, breed or registration attributes: it leaves them out.
        assert not dog.get("PatientSpeciesDescription")
        return
    assert dog["PatientSpeciesDescription"] == "Canine" and dog["PatientBreedDescription"] == "Beagle"
    assert dog["PatientSpeciesCodeSequence"][0]["CodeValue"] == "448771007"
    assert dog["PatientBreedCodeSequence"][0]["CodeMeaning"] == "Beagle dog breed"
    assert dog["BreedRegistrationSequence"][0]["BreedRegistrationNumber"] == "REG-VET042"
    assert dog["ResponsibleOrganization"] == "Happy Paws Clinic" and dog["PatientSexNeutered"] == "ALTERED"
    cat = _worklist(wl, "--date", "20240115", "--modality", "US")[0]["dataset"]
    assert cat["PatientSpeciesDescription"] == "Feline" and cat["ResponsiblePerson"] == "JONES^MARY"
    human = _worklist(wl, "--date", "20240116")[0]["dataset"]
    assert not human.get("PatientSpeciesDescription") and not human.get("ResponsiblePerson")


def test_worklist_answers_as_findscu(wl, work):
    keys = [
        "PatientName",
        "PatientID",
        "AccessionNumber",
        "ResponsiblePerson",
        "ScheduledProcedureStepSequence[0].Modality=CR",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240101-20240131",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    ]
    result = dcmtools(
        "worklist",
        wl.peer,
        "--json",
        "--no-defaults",
        "--date",
        "any",
        "--no-check",
        *[a for key in keys for a in ("-k", key)],
    )
    assert result.returncode == 0, result.stderr
    ours = [r["dataset"] for r in records(result.stdout)[:-1]]
    theirs = findscu(wl, keys, "worklist", work / f"wl-findscu-{wl.port}", worklist=True)
    assert len(ours) == 2
    assert answer_set(ours) == answer_set(theirs)
