"""The verdict on a C-MOVE / C-GET (net.retrieve_verdict), case by case, without a peer."""

from __future__ import annotations

from dcmtools.cli.spelling import spell
from dcmtools.net.retrieve_outcome import Outcome
from dcmtools.net.retrieve_verdict import Side, judge, retrieve_record
from dcmtools.stream.records import DcmtoolsError, ErrorCode, ExitStatus


def side(**changes) -> Side:
    values = dict(
        peer="PACS@127.0.0.1:4242",
        calling_aet="ME",
        get=False,
        dest_is_us=True,
        address="127.0.0.1:11112",
        port=11112,
        store_dir="in",
    )
    values.update(changes)
    return Side(**values)


def test_unknown_destination_names_the_registration_and_get():
    outcome = Outcome(status=0xA801)
    error = judge(side(), {"destination": "ME"}, outcome, True, 0)
    assert error is not None and error["code"] == ErrorCode.MOVE_DESTINATION_UNKNOWN
    assert "the move destination 'ME' is unknown to it" in error["message"]
    assert "this host and port (127.0.0.1:11112)" in error["hint"]
    assert spell(error["hint"]).endswith("; or use --get, which needs no registration")
    # To another destination: no --get (it would not go there), and its own host and port.
    error = judge(side(dest_is_us=False), {"destination": "OTHER"}, outcome, False, 0)
    assert error is not None and "get" not in error["hint"] and "its host and port" in error["hint"]


def test_orthanc_0xC000_without_suboperations_is_probably_an_unknown_destination():
    error = judge(side(), {"destination": "ME"}, Outcome(status=0xC000), True, 0)
    assert error is not None and error["code"] == ErrorCode.MOVE_DESTINATION_UNKNOWN
    assert "probably unknown" in error["message"] and "Orthanc answers" in error["message"]


def test_dropped_association_instead_of_an_answer():
    refused = DcmtoolsError(ErrorCode.ABORTED, "the peer aborted", None, ExitStatus.ABORTED)
    error = judge(side(), {"destination": "ME"}, Outcome(refused=refused), True, 0)
    assert error is not None and "dropped the association" in error["message"]
    assert error["message"].endswith("(the peer aborted)")


def test_arrivals_against_what_the_peer_says():
    done = Outcome(status=0x0000, completed=2)
    assert judge(side(), {"destination": "ME", "received": 2}, done, True, 0) is None
    short = judge(side(), {"destination": "ME", "received": 1}, done, True, 0)
    assert short is not None and "says it sent 2 instance(s), 1 arrived" in short["message"]
    none = judge(side(), {"destination": "ME", "received": 0}, done, True, 0)
    assert none is not None and "none arrived here (port 11112)" in none["message"]
    unstored = judge(side(), {"destination": "ME", "received": 1}, done, True, 1)
    assert unstored is not None and spell(unstored["hint"]) == "check the space and permissions of --store-dir"


def test_record_of_a_c_get_with_its_files():
    outcome = Outcome(status=0x0000, completed=2)
    received = [
        {"type": "instance", "ok": True, "path": "in/P/S/a.dcm"},
        {"type": "instance", "ok": True, "path": "in/P/S/b.dcm"},
    ]
    record = retrieve_record(side(get=True), {"type": "get"}, outcome, received)
    assert record["ok"] is True and record["received"] == 2 and record["out"] == "in/P/S"
    assert record["files"] == ["in/P/S/a.dcm", "in/P/S/b.dcm"] and record["completed"] == 2
    failed = retrieve_record(side(get=True), {"type": "get"}, Outcome(status=0xA701), [])
    assert failed["ok"] is False and failed["error"]["message"].startswith("PACS@127.0.0.1:4242 refused the C-GET")
