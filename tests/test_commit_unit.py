"""Storage Commitment library: inputs, the store lookup, what the SCP commits to (no network)."""

from __future__ import annotations

import json
import os

import pydicom
import pytest
from commitpeers import instances
from pydicom.data import get_testdata_file

from dcmtools.net.commitment import CommitmentSCP, failure_words, reference_for
from dcmtools.net.scp import stored_path
from dcmtools.stream.inputs import iter_stream
from dcmtools.stream.records import DcmtoolsError

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


def items_from(lines: list[str]):
    import io

    return list(iter_stream(io.StringIO("\n".join(lines) + "\n")))


# ------------------------------------------------------------------ inputs


def test_reference_from_a_file_reads_its_uids(tmp_path):
    path = instances(tmp_path, 1)[0]
    ds = pydicom.dcmread(path)
    ref = reference_for(str(path))
    assert (ref.sop_class_uid, ref.sop_instance_uid, ref.path) == (CT, ds.SOPInstanceUID, str(path))


def test_reference_from_send_records_takes_their_uids(tmp_path):
    """A send record names the instance: its UIDs are used as they are (the file is not read)."""
    path = tmp_path / "gone.dcm"
    path.write_bytes(b"not even DICOM")  # proves the file is not read
    record = {
        "type": "file",
        "path": str(path),
        "sop_class_uid": CT,
        "sop_instance_uid": "1.2.3.4",
        "transfer_syntax": "1.2.840.10008.1.2.1",
        "status": "0x0000",
        "ok": True,
    }
    (item,) = items_from([json.dumps(record)])
    ref = reference_for(item)
    assert (ref.sop_class_uid, ref.sop_instance_uid, ref.path) == (CT, "1.2.3.4", str(path))


def test_reference_from_query_matches_without_path():
    """Records naming no file but carrying the dataset (DICOM JSON or flat) still give the UIDs."""
    model = {
        "type": "match",
        "dataset": {"00080016": {"vr": "UI", "Value": [MR]}, "00080018": {"vr": "UI", "Value": ["1.2.3.5"]}},
    }
    flat = {"type": "match", "dataset": {"SOPClassUID": CT, "SOPInstanceUID": "1.2.3.6"}}
    refs = [reference_for(item) for item in items_from([json.dumps(model), json.dumps(flat)])]
    assert [(r.sop_class_uid, r.sop_instance_uid, r.path) for r in refs] == [
        (MR, "1.2.3.5", None),
        (CT, "1.2.3.6", None),
    ]


def test_failed_upstream_records_are_never_asked_about():
    """A send record that failed must not become a commitment request (the instance was never stored)."""
    record = {
        "type": "file",
        "path": "a.dcm",
        "sop_class_uid": CT,
        "sop_instance_uid": "1.2.3.4",
        "ok": False,
        "error": {"code": "dimse_failed", "message": "refused"},
    }
    (item,) = items_from([json.dumps(record)])
    with pytest.raises(DcmtoolsError) as info:
        reference_for(item)
    assert info.value.code == "upstream_failed"


def test_record_naming_nothing_usable_is_a_bad_record():
    (item,) = items_from([json.dumps({"type": "match", "dataset": {"PatientName": "X"}})])
    with pytest.raises(DcmtoolsError) as info:
        reference_for(item)
    assert info.value.code == "bad_record"
    assert "SOP Instance UID" in info.value.message


def test_record_naming_a_folder_gives_each_file_its_own_uids(tmp_path):
    paths = instances(tmp_path / "study", 2)
    record = {"type": "x", "path": str(tmp_path / "study"), "sop_class_uid": MR, "sop_instance_uid": "9.9"}
    refs = [reference_for(item) for item in items_from([json.dumps(record)])]
    assert sorted(r.sop_instance_uid for r in refs) == sorted(pydicom.dcmread(p).SOPInstanceUID for p in paths)
    assert {r.sop_class_uid for r in refs} == {CT}


def test_bad_files_are_errors_with_stable_codes(tmp_path):
    (tmp_path / "text.dcm").write_text("hello, not DICOM at all" * 10)
    (tmp_path / "empty.dcm").write_bytes(b"")
    codes = {}
    for name in ("text.dcm", "empty.dcm", "missing.dcm"):
        with pytest.raises(DcmtoolsError) as info:
            reference_for(str(tmp_path / name))
        codes[name] = info.value.code
    assert codes == {"text.dcm": "not_dicom", "empty.dcm": "empty", "missing.dcm": "not_found"}


def test_dicomdir_is_refused():
    with pytest.raises(DcmtoolsError) as info:
        reference_for(get_testdata_file("DICOMDIR"))
    assert info.value.code == "dicomdir"


# ------------------------------------------------------------------ the store


def store_file(store, path, patient="P1", study="1.2.9", series="1.2.9.1", copy=0, sop_class=None):
    ds = pydicom.dcmread(path)
    if sop_class:
        ds.SOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPClassUID = sop_class
    dest = stored_path(str(store), patient, study, series, ds.SOPInstanceUID)
    if copy:
        dest = dest[:-4] + f"-{copy}.dcm"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    ds.save_as(dest, enforce_file_format=True)
    return ds.SOPInstanceUID, dest


def test_scp_looks_instances_up_in_the_store_index(tmp_path):
    """Files in the listen layout (a later copy too) are found through the store's index; a file
    still being received (hidden) and a file gone since it was indexed are not committed."""
    files = instances(tmp_path / "src", 5)
    store = tmp_path / "store"
    a, _ = store_file(store, files[0])
    b, _ = store_file(store, files[1], patient="P2", study="1.3", series="1.3.1")
    c, _ = store_file(store, files[2], copy=1)  # only a later copy of it is there
    d = pydicom.dcmread(files[3]).SOPInstanceUID
    gone, gone_path = store_file(store, files[4])
    part = os.path.join(str(store), f".incoming-{d}.part")
    with open(part, "wb") as out:
        out.write(open(files[3], "rb").read())
    scp = CommitmentSCP(store)  # opens (here: builds) the index of the folder
    try:
        os.unlink(gone_path)
        committed, failed = scp.evaluate([(CT, a), (CT, b), (CT, c), (CT, d), (CT, gone), (CT, "1.2.3.999")])
    finally:
        scp.close()
    assert committed == [(CT, a), (CT, b), (CT, c)]
    assert failed == [(CT, d, 0x0112), (CT, gone, 0x0112), (CT, "1.2.3.999", 0x0112)]


def test_scp_commits_only_what_it_keeps_with_the_right_class(tmp_path):
    files = instances(tmp_path / "src", 3)
    store = tmp_path / "store"
    kept, _ = store_file(store, files[0])
    other_class, _ = store_file(store, files[1], sop_class=MR)
    never = pydicom.dcmread(files[2]).SOPInstanceUID
    scp = CommitmentSCP(store)
    try:
        committed, failed = scp.evaluate([(CT, kept), (CT, other_class), (CT, never)])
        assert committed == [(CT, kept)]
        assert failed == [(CT, other_class, 0x0119), (CT, never, 0x0112)]
        # the same Transaction UID twice: every instance fails with 0x0131
        committed, failed = scp.evaluate([(CT, kept)], duplicate=True)
    finally:
        scp.close()
    assert committed == [] and failed == [(CT, kept, 0x0131)]


def test_scp_without_a_store_commits_nothing():
    committed, failed = CommitmentSCP(None).evaluate([(CT, "1.2.3")])
    assert committed == [] and failed == [(CT, "1.2.3", 0x0112)]


def test_failure_reasons_in_words():
    assert failure_words(0x0112)[0] == "no such object instance"
    assert failure_words(0x0119)[0] == "class / instance conflict"
    assert failure_words(0x0213)[0] == "resource limitation"
    assert "send it" in failure_words(0x0112)[1]
    assert failure_words(None)[0] == "no failure reason given"
    assert failure_words(0x0999)[0] == "unknown failure reason"
