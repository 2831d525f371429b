"""`dcmtools listen` as a query/retrieve and worklist SCP: DCMTK findscu, movescu, getscu and
findscu -W get the same answers from it as from dcmqrscp and wlmscpfs filled with the same data;
and dcmtools find/move/worklist work against it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from peers import PEER_ENV, dcmtools, free_port, require
from qrpeers import (
    answer_set,
    build_archive,
    dcmqrscp,
    findscu,
    listen,
    peers_toml,
    records,
    same_instance,
    wlmscpfs,
    write_worklist,
)

pytestmark = pytest.mark.peer

DROP = ("00080005", "00080054")  # Specific Character Set, Retrieve AE Title (the servers' own)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qrlisten")


@pytest.fixture(scope="module")
def archive(work):
    return build_archive(work / "archive")


@pytest.fixture(scope="module")
def items(work) -> Path:
    """listen's items: the dog and the human as .wl files, the cat in the DICOM JSON model."""
    folder = work / "worklist"
    write_worklist(folder, as_json=("cat",))
    return folder


@pytest.fixture(scope="module")
def wl_items(work) -> Path:
    """The same three items as .wl files, for wlmscpfs."""
    folder = work / "worklist-wl"
    write_worklist(folder)
    return folder


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {"movescu": free_port(), "me": free_port()}


@pytest.fixture(scope="module")
def ours(work, archive, items, ports):
    peers = peers_toml(work / "peers.toml", {"movescu": ("MOVESCU", ports["movescu"]), "me": ("DCMTOOLS", ports["me"])})
    with listen(work, files=archive.files, worklist=items, peers_file=peers) as peer:
        yield peer


@pytest.fixture(scope="module")
def reference(work, archive, ports):
    with dcmqrscp(work, {"movescu": ("MOVESCU", ports["movescu"])}, archive.files) as peer:
        yield peer


@pytest.fixture(scope="module")
def worklist_reference(work, wl_items):
    with wlmscpfs(work, wl_items) as peer:
        yield peer


def _cases(archive):
    thorax = archive.study_uid("thorax")
    return [
        ("patient", ["QueryRetrieveLevel=PATIENT", "PatientName", "PatientID", "PatientBirthDate", "PatientSex"], 3),
        ("patient", ["QueryRetrieveLevel=PATIENT", "PatientName=*O*", "PatientID"], 2),
        (
            "patient",
            ["QueryRetrieveLevel=STUDY", "PatientID=H001", "StudyInstanceUID", "StudyDate", "AccessionNumber"],
            2,
        ),
        (
            "study",
            [
                "QueryRetrieveLevel=STUDY",
                "StudyDate=20240110-20240115",
                "PatientName",
                "StudyInstanceUID",
                "StudyDescription",
                "ReferringPhysicianName",
                "StudyID",
                "StudyTime",
            ],
            2,
        ),
        ("study", ["QueryRetrieveLevel=STUDY", "AccessionNumber=ACC0*", "StudyInstanceUID", "PatientID"], 2),
        (
            "study",
            [
                "QueryRetrieveLevel=SERIES",
                f"StudyInstanceUID={thorax}",
                "SeriesInstanceUID",
                "Modality",
                "SeriesNumber",
            ],
            2,
        ),
        ("study", ["QueryRetrieveLevel=SERIES", f"StudyInstanceUID={thorax}", "Modality=MR", "SeriesInstanceUID"], 1),
        (
            "patient",
            [
                "QueryRetrieveLevel=IMAGE",
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
            [
                "QueryRetrieveLevel=IMAGE",
                f"StudyInstanceUID={archive.study_uid('ct-chest')}",
                f"SeriesInstanceUID={archive.series_uid('ct-chest', 'ct')}",
                "InstanceNumber=2",
                "SOPInstanceUID",
            ],
            1,
        ),
    ]


def test_findscu_gets_the_answers_of_dcmqrscp(ours, reference, archive, work):
    for n, (model, keys, expected) in enumerate(_cases(archive)):
        theirs = findscu(reference, keys, model, work / f"ref-{n}")
        got = findscu(ours, keys, model, work / f"ours-{n}")
        assert len(theirs) == expected, keys
        assert answer_set(got, DROP, empty=False) == answer_set(theirs, DROP, empty=False), keys


def _received(folder: Path) -> dict[str, Path]:
    import pydicom

    return {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in folder.rglob("*") if p.is_file()}


def test_movescu_and_getscu_get_the_same_instances(ours, reference, archive, work, ports):
    require("movescu", "getscu")
    study = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={archive.study_uid('thorax')}"]
    got = {}
    for peer in (ours, reference):
        for tool in ("movescu", "getscu"):
            out = work / f"{tool}-{peer.port}"
            out.mkdir()
            args = [tool, "-S", "-aec", peer.aet, "-od", str(out), *study, "127.0.0.1", str(peer.port)]
            if tool == "movescu":
                args[1:1] = ["-aet", "MOVESCU", "-aem", "MOVESCU", "+P", str(ports["movescu"])]
            result = subprocess.run(args, capture_output=True, text=True, env=PEER_ENV, timeout=60)
            assert result.returncode == 0, result.stderr
            got[(peer.aet, tool)] = _received(out)
    expected = {uid for uid, path in archive.by_uid.items() if "-thorax-" in path.name}
    assert len(expected) == 3
    for key, files in got.items():
        assert set(files) == expected, key
        for uid, path in files.items():
            assert same_instance(path, archive.by_uid[uid]), (key, path)


def test_findscu_worklist_gets_the_answers_of_wlmscpfs(ours, worklist_reference, work):
    cases = [
        (
            [
                "PatientName",
                "PatientID",
                "AccessionNumber",
                "ResponsiblePerson",
                "ResponsiblePersonRole",
                "ScheduledProcedureStepSequence[0].Modality=CR",
                "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
                "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
            ],
            2,
        ),
        (
            [
                "PatientName",
                "PatientBirthDate",
                "RequestedProcedureDescription",
                "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240115",
                "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=0800-1000",
                "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
            ],
            1,
        ),
        (["PatientName=JONES*", "PatientID", "ScheduledProcedureStepSequence[0].Modality"], 1),
    ]
    for n, (keys, expected) in enumerate(cases):
        theirs = findscu(worklist_reference, keys, "worklist", work / f"wlref-{n}", worklist=True)
        got = findscu(ours, keys, "worklist", work / f"wlours-{n}", worklist=True)
        assert len(theirs) == expected, keys
        assert answer_set(got, DROP, empty=False) == answer_set(theirs, DROP, empty=False), keys


def test_worklist_from_listen_has_the_veterinary_attributes(ours):
    result = dcmtools("worklist", ours.peer, "--date", "20240115", "--flat", "--json")
    assert result.returncode == 0, result.stderr
    found = {r["dataset"]["PatientID"]: r["dataset"] for r in records(result.stdout)[:-1]}
    assert set(found) == {"VET042", "VET077"}
    cat = found["VET077"]  # the item written as DICOM JSON
    assert cat["PatientSpeciesDescription"] == "Feline"
    assert cat["PatientSpeciesCodeSequence"] == [
        {"CodeValue": "448169003", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Felis catus"}
    ]
    assert cat["PatientBreedCodeSequence"][0]["CodeMeaning"] == "Siamese cat breed"
    assert cat["BreedRegistrationSequence"][0]["BreedRegistrationNumber"] == "REG-VET077"
    assert cat["ResponsiblePerson"] == "JONES^MARY" and cat["ResponsiblePersonRole"] == "OWNER"
    assert cat["ResponsibleOrganization"] == "Happy Paws Clinic" and cat["PatientSexNeutered"] == "ALTERED"
    assert cat["ScheduledProcedureStepSequence"][0]["Modality"] == "US"
    assert found["VET042"]["PatientBreedDescription"] == "Beagle"


def test_find_move_and_get_against_listen(ours, archive, work, ports):
    found = dcmtools("find", ours.peer, "--level", "series", "--modality", "CT", "--json")
    assert found.returncode == 0, found.stderr
    assert len(records(found.stdout)) == 3
    for args in (["--port", str(ports["me"])], ["--get"]):
        out = work / f"moved-{args[0]}"
        moved = dcmtools("move", ours.peer, "-d", str(out), "--json", *args, input=found.stdout)
        assert moved.returncode == 0, moved.stdout + moved.stderr
        result = records(moved.stdout)
        assert result[-1]["received"] == 5
        for record in result[:-1]:
            for file in record["files"]:
                assert same_instance(Path(file), archive.by_uid[Path(file).stem])


def test_listen_refuses_an_unknown_move_destination(ours, archive):
    moved = dcmtools(
        "move", ours.peer, "--dest", "NOWHERE", "-k", f"StudyInstanceUID={archive.study_uid('abdomen')}", "--json"
    )
    assert moved.returncode == 1
    record = records(moved.stdout)[0]
    assert record["status"] == "0xA801" and record["error"]["code"] == "move_destination_unknown"
    log = [json.loads(line) for line in ours.extra["log"].read_text().splitlines() if line.startswith("{")]
    served = [r for r in log if r.get("type") == "move" and r.get("destination") == "NOWHERE"]
    assert served and served[-1]["ok"] is False and "peers file" in served[-1]["error"]["hint"]


def test_find_limit_against_listen(ours):
    result = dcmtools("find", ours.peer, "--level", "image", "--limit", "3", "--json")
    assert result.returncode == 0
    assert [r["type"] for r in records(result.stdout)] == ["match"] * 3 + ["summary"]


def test_index_rebuilt_from_the_files(work, archive):
    store = work / "store-rebuild"
    (store / "some" / "where").mkdir(parents=True)
    for path in archive.files[:5]:
        shutil.copy(path, store / "some" / "where" / path.name)
    with listen(work, aet="AGAIN", store=store) as peer:
        result = dcmtools("find", peer.peer, "--level", "image", "--patient-id", "H001", "--json")
        assert len(records(result.stdout)) == 6  # 5 instances and the summary
        log = [json.loads(line) for line in peer.extra["log"].read_text().splitlines() if line.startswith("{")]
        index = [r for r in log if r["type"] == "index"]
        assert len(index) == 1 and index[0]["instances"] == 5 and index[0]["rebuilt"] is True
    for path in archive.files[5:]:
        shutil.copy(path, store / path.name)
    with listen(work, aet="AGAIN", store=store) as peer:  # the index is kept: the new files are unknown
        result = dcmtools("find", peer.peer, "--level", "patient", "--json")
        assert len(records(result.stdout)) == 2
    with listen(work, aet="AGAIN", store=store, extra=("--reindex",)) as peer:
        result = dcmtools("find", peer.peer, "--level", "patient", "--json")
        assert len(records(result.stdout)) == 4


def _many_classes(folder: Path, count: int = 13) -> dict[str, Path]:
    """``count`` instances of one series, each of another storage SOP class (CT_small's content)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pynetdicom.presentation import StoragePresentationContexts
    from qrpeers import uid

    folder.mkdir(parents=True)
    from dcmtools.net.scp import storage_contexts

    served = {cx.abstract_syntax for cx in storage_contexts()}  # what listen can send back
    classes = [
        cx.abstract_syntax
        for cx in StoragePresentationContexts
        if "Image" in cx.abstract_syntax.name and cx.abstract_syntax in served
    ][:count]
    assert len(classes) == count
    out = {}
    for n, sop_class in enumerate(classes):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.PatientID = "MANY"
        ds.StudyInstanceUID = uid("many/study")
        ds.SeriesInstanceUID = uid("many/series")
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(f"many/{n}")
        ds.InstanceNumber = n + 1
        path = folder / f"many{n:02d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out[ds.SOPInstanceUID] = path
    return out


@pytest.mark.parametrize("server", ["listen", "orthanc"])
def test_get_splits_over_associations(server, work):
    """13 SOP classes need more than 128 presentation contexts (one uncompressed and ten compressed each):
    the C-GET is split over two associations, and every instance arrives."""
    from qrpeers import orthanc, uid

    files = _many_classes(work / f"many-{server}")
    store = work / f"many-store-{server}"
    if server == "listen":
        shutil.copytree(work / f"many-{server}", store)
        context = listen(work, aet="MANY", store=store)
    else:
        context = orthanc(work, {"me": ("DCMTOOLS", free_port())}, list(files.values()))
    out = work / f"many-got-{server}"
    with context as peer:
        got = dcmtools(
            "move", peer.peer, "--get", "-k", f"StudyInstanceUID={uid('many/study')}", "-d", str(out), "--json"
        )
        log = peer.extra.get("log")
        served = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")] if log else []
    assert got.returncode == 0, got.stdout + got.stderr
    record = records(got.stdout)[0]
    assert record["completed"] == 13 and record["received"] == 13
    received = _received(out)
    assert set(received) == set(files)
    for sop, path in received.items():
        assert same_instance(path, files[sop])
    if server == "listen":
        gets = [r for r in served if r.get("type") == "get"]
        associations = {r["peer"] for r in gets}
        assert len(associations) == 2 and sum(r["completed"] for r in gets) == 13
