"""Query keys, C-FIND matching, the store index and worklist items (no network)."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from qrpeers import build_archive, write_worklist

from dcmtools.dicom import dictionary
from dcmtools.net import identifiers
from dcmtools.net import keys as K
from dcmtools.net.index import INDEX_NAME, StoreIndex, lookup_instance, lookup_instances
from dcmtools.net.matching import dataset_matches, element_matches, returned
from dcmtools.net.retrieve import request_from_keys, request_from_record, requests_from_lines
from dcmtools.net.worklist import WorklistItems, read_items, worklist_identifier
from dcmtools.stream.records import DcmtoolsError


def ident(level, *texts, defaults=()):
    return K.identifier_from(K.parse_keys(texts), defaults, level)


# ------------------------------------------------------------- keys
def test_level_tables_name_real_keywords():
    assert K.level_of(dictionary.tag_of("PatientSpeciesDescription")) == "PATIENT"
    assert K.level_of(dictionary.tag_of("AccessionNumber")) == "STUDY"
    assert K.level_of(dictionary.tag_of("Modality")) == "SERIES"
    assert K.level_of(dictionary.tag_of("InstanceNumber")) == "IMAGE"
    for level, names in K.DEFAULT_KEYS.items():
        assert all(dictionary.tag_of(name) for name in names), level


def test_identifier_from_keys():
    identifier = ident(
        "STUDY",
        "PatientName=DOE*",
        "0010,0020=PAT1",
        "StudyDate=20240101-20240131",
        "SeriesInstanceUID=1.2\\1.3",
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "StudyDescription",
    )
    assert identifier["00080052"] == {"vr": "CS", "Value": ["STUDY"]}
    assert identifier["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "DOE*"}]}
    assert identifier["00100020"] == {"vr": "LO", "Value": ["PAT1"]}
    assert identifier["0020000E"]["Value"] == ["1.2", "1.3"]
    assert identifier["00081030"] == {"vr": "LO"}
    assert identifier["00400100"] == {"vr": "SQ", "Value": [{"00080060": {"vr": "CS", "Value": ["CT"]}}]}
    assert list(identifier) == sorted(identifier)
    # -k keys win over the defaults
    identifier = ident("STUDY", "PatientName=X", defaults=K.DEFAULT_KEYS["STUDY"])
    assert identifier["00100010"]["Value"] == [{"Alphabetic": "X"}]
    assert "00201208" in identifier


@pytest.mark.parametrize(
    "text", ["NoSuchKeyword=1", "PatientName.PatientID=1", "ScheduledProcedureStepSequence=CT", "Rows=many"]
)
def test_bad_keys_are_usage_errors(text):
    with pytest.raises(DcmtoolsError) as info:
        ident("STUDY", text)
    assert info.value.exit_status == 2 and info.value.code == "bad_key"


def test_dates():
    today = dt.date(2024, 3, 1)
    assert K.date_key("today", today) == "20240301"
    assert K.date_key("yesterday", today) == "20240229"
    assert K.date_key("2024-01-15", today) == "20240115"
    assert K.date_key("20240101-20240131", today) == "20240101-20240131"
    assert K.date_key("2024-01-01..today", today) == "20240101-20240301"
    assert K.date_key("20240101-", today) == "20240101-"
    assert K.date_key("..20240101", today) == "-20240101"
    assert K.date_key("7 days ago-today", today) == "20240223-20240301"
    for bad in ("20241301", "soon", "20240201-20240101", "-"):
        with pytest.raises(DcmtoolsError):
            K.date_key(bad, today)


def test_shortcuts():
    assert K.shortcut_keys("STUDY", patient="doe", modality="ct", accession="A1") == [
        "PatientName=doe*",
        "ModalitiesInStudy=CT",
        "AccessionNumber=A1",
    ]
    assert K.shortcut_keys("SERIES", patient="DOE^J*", modality="MR") == ["PatientName=DOE^J*", "Modality=MR"]


def test_models():
    assert K.choose_model("PATIENT", None) == "patient"
    assert K.choose_model("SERIES", None) == "study"
    with pytest.raises(DcmtoolsError):
        K.choose_model("PATIENT", "study")


def test_flat_round_trip():
    identifier = ident(
        "IMAGE",
        "PatientName=DOE^JOHN",
        "SOPInstanceUID=1.2.3",
        "InstanceNumber=4",
        "ScheduledProcedureStepSequence[0].Modality=CT",
    )
    flat = identifiers.flat_of(identifier)
    assert flat["PatientName"] == "DOE^JOHN" and flat["ScheduledProcedureStepSequence"] == [{"Modality": "CT"}]
    back = identifiers.json_from_flat(flat)
    assert back["00080018"] == {"vr": "UI", "Value": ["1.2.3"]}
    assert back["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "DOE^JOHN"}]}


def test_identifier_bytes_round_trip():
    from dcmtools.net.query import encode_identifier

    identifier = ident("STUDY", "PatientName=MÜLLER^JÖRG", "StudyDate=20240101-", "NumberOfStudyRelatedInstances")
    for ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
        back = identifiers.from_bytes(encode_identifier(identifier, ts), ts)
        assert back["00100010"]["Value"] == [{"Alphabetic": "MÜLLER^JÖRG"}]
        assert back["00080005"]["Value"] == ["ISO_IR 192"]
        assert back["00080020"]["Value"] == ["20240101-"]


def test_jsonwire_encodes_what_dicomfile_reads():
    from dcmtools.net.jsonwire import encode_dataset

    answer = {
        "00080052": {"vr": "CS", "Value": ["STUDY"]},
        "00080061": {"vr": "CS", "Value": ["CT", "MR"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "MÜLLER^JÖRG"}]},
        "00100020": {"vr": "LO", "Value": ["P1"]},
        "00101030": {"vr": "DS", "Value": [72.5]},
        "00201208": {"vr": "IS", "Value": [12]},
        "00280010": {"vr": "US", "Value": [512]},
        "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
        "00081030": {"vr": "LO"},
        "00400100": {"vr": "SQ", "Value": [{"00080060": {"vr": "CS", "Value": ["CR"]}}, {}]},
    }
    for ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
        back = identifiers.from_bytes(encode_dataset(answer, ts), ts)
        assert back.pop("00080005") == {"vr": "CS", "Value": ["ISO_IR 192"]}
        assert back == answer


# ------------------------------------------------------------- matching
def el(vr, *values):
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": v} for v in values]}
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


@pytest.mark.parametrize(
    "key, stored, expected",
    [
        (el("PN", "DOE*"), el("PN", "DOE^JOHN"), True),
        (el("PN", "doe*"), el("PN", "DOE^JOHN"), True),  # names match without regard to case
        (el("PN", "D?E^J*"), el("PN", "DOE^JOHN"), True),
        (el("PN", "SMITH*"), el("PN", "DOE^JOHN"), False),
        (el("LO", "pat1"), el("LO", "PAT1"), False),  # other VRs are case-sensitive
        (el("LO", "PAT1"), el("LO", "PAT1"), True),
        (el("CS", "CT", "MR"), el("CS", "MR"), True),
        (el("CS", "CT"), el("CS", "OT", "CT"), True),  # multi-valued stored attribute
        (el("DA", "20240101-20240131"), el("DA", "20240115"), True),
        (el("DA", "20240101-20240131"), el("DA", "20240201"), False),
        (el("DA", "-20240101"), el("DA", "20231231"), True),
        (el("DA", "20240101-"), el("DA", "20231231"), False),
        (el("TM", "0900-1000"), el("TM", "093000.5"), True),
        (el("TM", "0900-1000"), el("TM", "100001"), False),
        (el("DT", "2024-2025"), el("DT", "20240315120000"), True),
        (el("UI", "1.2", "1.3"), el("UI", "1.3"), True),
        (el("UI", "1.*"), el("UI", "1.3"), False),  # no wildcards in UIDs
        (el("IS", "5"), el("IS", 5), True),
        (el("LO", "*"), None, True),
        (el("LO"), None, True),
        (el("LO", "X"), None, False),
        (el("LO", "X"), el("LO"), False),
    ],
)
def test_element_matching(key, stored, expected):
    assert element_matches(key, stored) is expected


def test_sequence_matching_and_answers():
    item = {
        "00400100": {
            "vr": "SQ",
            "Value": [
                {"00080060": el("CS", "CR"), "00400002": el("DA", "20240115"), "00400001": el("AE", "CR1")},
                {"00080060": el("CS", "US"), "00400002": el("DA", "20240116"), "00400001": el("AE", "US1")},
            ],
        },
        "00100010": el("PN", "SMITH^REX"),
    }
    keys = {
        "00400100": {"vr": "SQ", "Value": [{"00080060": el("CS", "US"), "00400002": el("DA")}]},
        "00100010": el("PN"),
    }
    assert dataset_matches(keys, item)
    answer = returned(keys, item)
    assert answer["00400100"]["Value"] == [{"00080060": el("CS", "US"), "00400002": el("DA", "20240116")}]
    assert answer["00100010"] == el("PN", "SMITH^REX")
    keys["00400100"]["Value"][0]["00400001"] = el("AE", "CR1")
    assert not dataset_matches(keys, item)  # one item must match every key
    assert dataset_matches({"00400100": {"vr": "SQ"}}, item)  # an empty sequence key is universal


# ------------------------------------------------------------- index
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    archive = build_archive(folder / "files")
    (folder / "files" / "notes.txt").write_text("not DICOM")
    (folder / "files" / ".hidden.dcm").write_bytes(archive.files[0].read_bytes())
    return folder, archive


def test_index_rebuilt_when_missing(store, tmp_path):
    folder, archive = store
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with StoreIndex(copy) as index:
        assert index.rebuilt == 9 and index.count() == 9
    with StoreIndex(copy) as index:
        assert index.rebuilt is None and index.count() == 9  # kept
    (copy / INDEX_NAME).unlink()
    with StoreIndex(copy) as index:
        assert index.rebuilt == 9


def test_index_rebuilt_in_the_background(store, tmp_path):
    folder, archive = store
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    reports = []
    with StoreIndex(copy, background=True, on_rebuilt=lambda n, s: reports.append(n)) as index:
        assert index.needs_rebuild
        assert index.count() == 9  # waits for the rebuild
        assert reports == [9]
    with StoreIndex(copy, background=True, on_rebuilt=lambda n, s: reports.append(n)) as index:
        assert not index.needs_rebuild and index.count() == 9 and reports == [9]


def _answers(index, level, *texts, defaults=()):
    return [identifiers.flat_of(a) for a in index.query(level, ident(level, *texts, defaults=defaults), "ME")]


def test_index_queries(store, tmp_path):
    folder, archive = store
    with StoreIndex(folder) as index:
        patients = _answers(
            index,
            "PATIENT",
            "PatientID",
            "PatientName",
            "NumberOfPatientRelatedStudies",
            "NumberOfPatientRelatedInstances",
        )
        assert {
            p["PatientID"]: (p["NumberOfPatientRelatedStudies"], p["NumberOfPatientRelatedInstances"]) for p in patients
        } == {"H001": (2, 5), "VET042": (1, 3), "VET077": (1, 1)}
        studies = _answers(
            index, "STUDY", "ModalitiesInStudy=MR", "AccessionNumber", "NumberOfStudyRelatedSeries", "SOPClassesInStudy"
        )
        assert sorted(s["AccessionNumber"] for s in studies) == ["ACC042", "ACC077", "ACC101"]
        thorax = next(s for s in studies if s["AccessionNumber"] == "ACC042")
        assert thorax["ModalitiesInStudy"] == ["CT", "MR"] and thorax["NumberOfStudyRelatedSeries"] == 2
        assert thorax["QueryRetrieveLevel"] == "STUDY" and thorax["RetrieveAETitle"] == "ME"
        # relational: a series key in a study query
        assert [
            s["AccessionNumber"]
            for s in _answers(index, "STUDY", "Modality=CT", "AccessionNumber", "PatientName=smith*")
        ] == ["ACC042"]
        # keys of a lower level are returned empty at a higher one
        assert _answers(index, "STUDY", "AccessionNumber=ACC077", "Modality")[0]["Modality"] is None
        images = _answers(
            index,
            "IMAGE",
            f"SeriesInstanceUID={archive.series_uid('ct-chest', 'ct')}",
            "InstanceNumber=2",
            "SOPInstanceUID",
            "PatientName",
        )
        assert len(images) == 1 and images[0]["PatientName"] == "DOE^JOHN"
        assert _answers(index, "STUDY", "StudyDate=20240301-", "AccessionNumber") == [
            {
                "AccessionNumber": "ACC101",
                "QueryRetrieveLevel": "STUDY",
                "RetrieveAETitle": "ME",
                "StudyDate": "20240301",
            }
        ]


def test_index_retrieve_and_lookup(store):
    folder, archive = store
    with StoreIndex(folder) as index:
        found = index.retrieve("STUDY", ident("STUDY", f"StudyInstanceUID={archive.study_uid('thorax')}"))
        assert len(found) == 3 and {f.series_instance_uid for f in found} == {
            archive.series_uid("thorax", "ct"),
            archive.series_uid("thorax", "mr"),
        }
        assert len(index.retrieve("PATIENT", ident("PATIENT", "PatientID=H001"))) == 5
        assert index.retrieve("IMAGE", ident("IMAGE", "SOPInstanceUID=1.2.3")) == []
    sop, path = next(iter(archive.by_uid.items()))
    stored = lookup_instance(folder, sop)
    assert stored is not None and stored.path == str(path) and stored.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert lookup_instance(folder, "1.2.3") is None
    assert lookup_instances(folder, [sop, "1.2.3"]) == {sop: stored, "1.2.3": None}


def test_index_add_and_remove(store, tmp_path):
    folder, archive = store
    copy = tmp_path / "store"
    (copy / "a").mkdir(parents=True)
    with StoreIndex(copy) as index:
        assert index.rebuilt == 0
        target = copy / "a" / "one.dcm"
        shutil.copy(archive.files[0], target)
        sop = next(uid for uid, p in archive.by_uid.items() if p == archive.files[0])
        added = index.add(str(target))
        assert added is not None and added.sop_instance_uid == sop
        assert index.count() == 1
        assert index.instance(sop).path == str(target)
        target.unlink()
        assert index.instance(sop) is None  # the file is gone
        index.remove(sop)
        assert index.count() == 0 and _answers(index, "PATIENT", "PatientID") == []
        assert index.add(str(copy / "a")) is None  # not a file
        for n, path in enumerate(archive.files):  # as listen does: in the background, queries wait for it
            shutil.copy(path, copy / "a" / f"{n}.dcm")
            index.add_later(str(copy / "a" / f"{n}.dcm"))
        assert index.count() == 9
        assert len(index.retrieve("PATIENT", ident("PATIENT", "PatientID=VET042"))) == 3


# ------------------------------------------------------------- retrieve requests
def test_requests_from_find_records():
    study = {
        "type": "match",
        "level": "STUDY",
        "model": "study",
        "n": 1,
        "dataset": {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00100020": {"vr": "LO", "Value": ["P1"]}},
        "ok": True,
    }
    flat_series = {
        "type": "match",
        "level": "SERIES",
        "model": "patient",
        "n": 2,
        "ok": True,
        "dataset": {"PatientID": "P1", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4"},
    }
    lines = [
        json.dumps(study),
        json.dumps(flat_series),
        "not json",
        json.dumps({"type": "summary"}),
        json.dumps({**study, "ok": False, "error": {"code": "x", "message": "broken"}}),
        json.dumps({"type": "match", "level": "SERIES", "dataset": {"SeriesInstanceUID": "9"}, "ok": True}),
        json.dumps({"type": "match", "model": "worklist", "dataset": {}, "ok": True}),
    ]
    requests = list(requests_from_lines(lines))
    assert len(requests) == 6
    assert requests[0].identifier == {
        "00080052": {"vr": "CS", "Value": ["STUDY"]},
        "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
    }
    assert requests[1].model == "patient" and identifiers.flat_of(requests[1].identifier) == {
        "QueryRetrieveLevel": "SERIES",
        "PatientID": "P1",
        "StudyInstanceUID": "1.2.3",
        "SeriesInstanceUID": "1.2.3.4",
    }
    assert requests[2].error.code == "bad_record"
    assert requests[3].error.code == "upstream_failed"
    assert requests[4].error.code == "not_retrievable" and "StudyInstanceUID" in requests[4].error.message
    assert requests[5].error.code == "not_retrievable"
    assert request_from_record(study, level="IMAGE").error.code == "not_retrievable"


def test_requests_from_keys():
    assert request_from_keys("study", ["StudyInstanceUID=1.2"]).keys_only
    assert not request_from_keys("study", ["PatientName=DOE*"]).keys_only
    assert not request_from_keys("series", ["StudyInstanceUID=1.2"]).keys_only  # no series named


# ------------------------------------------------------------- worklist
def test_worklist_identifier():
    identifier = worklist_identifier(date="20240115", modality="cr", station_aet="CR1", patient="smith")
    step = identifier["00400100"]["Value"][0]
    assert step["00400002"]["Value"] == ["20240115"] and step["00080060"]["Value"] == ["CR"]
    assert step["00400001"]["Value"] == ["CR1"] and "00321070" not in step
    assert identifier["00100010"]["Value"] == [{"Alphabetic": "smith*"}]
    assert "00102201" in identifier and "00102202" in identifier and "00080005" in identifier
    assert worklist_identifier(date="any")["00400100"]["Value"][0]["00400002"] == {"vr": "DA"}  # a return key


def test_worklist_items(tmp_path):
    folder = tmp_path / "wl"
    write_worklist(folder, as_json=("cat",))
    (folder / "broken.json").write_text("{not json")
    (folder / "readme.txt").write_text("ignored")
    errors = []
    items = WorklistItems(folder, on_error=lambda path, exc: errors.append((path, exc.code)))
    found = items.items()
    assert sorted(p.rsplit("/", 1)[1] for p, _ in found) == ["cat.json", "dog.wl", "human.wl"]
    assert errors == [(str(folder / "broken.json"), "invalid")]
    cat = next(item for path, item in found if path.endswith("cat.json"))
    assert cat["00102201"]["Value"] == ["Feline"] and cat["00100010"]["Value"] == [{"Alphabetic": "JONES^TOM"}]
    keys = worklist_identifier(date="20240115", modality="US")
    assert [
        path.rsplit("/", 1)[1]
        for path, item in found
        if dataset_matches({k: v for k, v in keys.items() if k != "00080005"}, item)
    ] == ["cat.json"]
    with pytest.raises(DcmtoolsError):
        read_items(str(folder / "broken.json"))
    with pytest.raises(DcmtoolsError):
        WorklistItems(tmp_path / "missing")
