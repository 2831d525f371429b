"""``dcmtools commit`` against real Storage Commitment SCPs: Orthanc and ``dcmtools listen``."""

from __future__ import annotations

import json
import re

import pytest
from commitpeers import instances, listen, me, orthanc, orthanc_instances, read_records, storescu
from peers import dcmtools, free_port
from tlspeers import self_signed

pytestmark = pytest.mark.peer


def by_uid(records: list[dict]) -> dict[str, dict]:
    return {r["sop_instance_uid"]: r for r in records if r.get("type") == "commitment" and "sop_instance_uid" in r}


def summary(records: list[dict]) -> dict:
    return [r for r in records if r.get("type") == "summary"][-1]


# ------------------------------------------------------------------ Orthanc


def test_orthanc_commits_what_it_received_and_fails_what_it_never_did(tmp_path):
    """Orthanc reports on a new association: sent instances committed, the one never sent failed 0x0112, exit 1."""
    port = free_port()
    sent = instances(tmp_path / "sent", 3)
    never = instances(tmp_path / "never", 1, "MR_small.dcm")
    with orthanc(tmp_path, me(port)) as (peer, http):
        storescu(peer, *sent)
        assert len(orthanc_instances(http)) == 3
        result = dcmtools("commit", peer, *map(str, sent + never), "--port", str(port), "--wait", "30", "--json")
    records = read_records(result.stdout)
    got = by_uid(records)
    assert result.returncode == 1, result.stderr
    assert len(got) == 4
    for path in sent:
        record = next(r for r in got.values() if r.get("path") == str(path))
        assert record["state"] == "committed" and record["ok"] is True
        assert record["reported_via"].startswith("new association from ORTHANC@127.0.0.1:")
    missing = next(r for r in got.values() if r.get("path") == str(never[0]))
    assert missing["state"] == "failed" and missing["ok"] is False
    assert missing["failure_reason"] == "0x0112"
    assert missing["error"]["code"] == "not_committed"
    assert "no such object instance" in missing["error"]["message"]
    assert len({r["transaction_uid"] for r in got.values()}) == 1
    assert summary(records)["committed"] == 3 and summary(records)["failed"] == 1


def test_orthanc_all_committed_exit_0_with_batches(tmp_path):
    """`send | commit`, --batch 2 over 5 instances: three transactions, each tracked to its own report; exit 0."""
    port = free_port()
    instances(tmp_path / "sent", 5)
    with orthanc(tmp_path, me(port)) as (peer, _http):
        send = dcmtools("send", peer, str(tmp_path / "sent"))
        assert send.returncode == 0, send.stderr
        result = dcmtools("commit", peer, "-", "--port", str(port), "--batch", "2", "--wait", "30", input=send.stdout)
    records = read_records(result.stdout)
    got = by_uid(records)
    assert result.returncode == 0, result.stderr + result.stdout
    assert all(r["state"] == "committed" for r in got.values()) and len(got) == 5
    assert len({r["transaction_uid"] for r in got.values()}) == 3


def test_orthanc_report_never_comes_without_port(tmp_path):
    """Orthanc reports on a new association; without --port nothing can receive it: pending, cause named, exit 6."""
    sent = instances(tmp_path / "sent", 2)
    with orthanc(tmp_path, me(free_port())) as (peer, _http):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, *map(str, sent), "--wait", "2")
    records = read_records(result.stdout)
    got = by_uid(records)
    assert result.returncode == 6, result.stderr
    for record in got.values():
        assert record["state"] == "pending" and record["ok"] is False
        assert record["error"]["code"] == "commit_pending"
        assert "--port" in record["error"]["hint"]
        assert "new association" in record["error"]["hint"]


def test_orthanc_does_not_know_our_port(tmp_path):
    """We listen on --port, but Orthanc's entry for us names another port: pending, and the message says so."""
    port = free_port()
    sent = instances(tmp_path / "sent", 1)
    with orthanc(tmp_path, me(free_port())) as (peer, _http):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, *map(str, sent), "--port", str(port), "--wait", "3")
    record = by_uid(read_records(result.stdout)).popitem()[1]
    assert result.returncode == 6
    assert record["state"] == "pending"
    message = record["error"]["message"]
    assert f"nothing connected to port {port}" in message
    assert "'DCMTOOLS'" in record["error"]["hint"] and "DicomModalities" in record["error"]["hint"]


def test_orthanc_unknown_calling_aet(tmp_path):
    """Orthanc does not allow our AE title Storage Commitment: it aborts; the record says what to ask for, exit 5."""
    port = free_port()
    sent = instances(tmp_path / "sent", 1)
    with orthanc(tmp_path, me(port, aet="SOMEONE")) as (peer, _http):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, *map(str, sent), "--port", str(port), "--wait", "30")
    records = read_records(result.stdout)
    record = by_uid(records).popitem()[1]
    assert result.returncode == 5
    assert record["state"] == "failed" and record["ok"] is False
    assert record["error"]["code"] == "aborted"
    assert "'DCMTOOLS'" in record["error"]["hint"] and "AllowStorageCommitment" in record["error"]["hint"]


# ------------------------------------------------------------------ dcmtools listen


def listen_records(log) -> list[dict]:
    return read_records(log)


def test_send_then_commit_against_listen_report_on_the_same_association(tmp_path):
    """`send | commit` against `dcmtools listen`: the report comes on the association of the request."""
    sent = instances(tmp_path / "sent", 3)
    never = instances(tmp_path / "never", 1, "MR_small.dcm")
    with listen(tmp_path, "--commit-report", "same") as (peer, store, log):
        send = dcmtools("send", peer, str(tmp_path / "sent"), "--json")
        assert send.returncode == 0, send.stderr
        stdin = send.stdout + "".join(json.dumps({"type": "file", "path": str(p), "ok": True}) + "\n" for p in never)
        result = dcmtools("commit", peer, "-", "--wait", "20", input=stdin)
    records = read_records(result.stdout)
    got = by_uid(records)
    assert result.returncode == 1, result.stderr
    committed = [r for r in got.values() if r["state"] == "committed"]
    assert sorted(r["path"] for r in committed) == sorted(map(str, sent))
    assert all(r["reported_via"] == "same association" and r["retrieve_aet"] == "LISTEN" for r in committed)
    (failed,) = [r for r in got.values() if r["state"] == "failed"]
    assert failed["path"] == str(never[0]) and failed["failure_reason"] == "0x0112"
    scp = listen_records(log)
    (report,) = [r for r in scp if r["type"] == "commitment_report"]
    assert report["ok"] is True and report["via"] == "same association"
    assert (report["committed"], report["failed"]) == (3, 1)


def test_commit_against_listen_report_on_a_new_association(tmp_path):
    """listen --commit-report new opens a new association to the requester's --port, proposing the SCP role."""
    port = free_port()
    sent = instances(tmp_path / "sent", 2)
    with listen(tmp_path, "--commit-report", "new", "--commit-report-to", f"DCMTOOLS@127.0.0.1:{port}") as (
        peer,
        _store,
        log,
    ):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, *map(str, sent), "--port", str(port), "--wait", "20", "--trace")
    records = read_records(result.stdout)
    got = by_uid(records)
    assert result.returncode == 0, result.stderr
    assert all(r["state"] == "committed" for r in got.values()) and len(got) == 2
    assert all(r["reported_via"].startswith("new association from LISTEN@127.0.0.1:") for r in got.values())
    # listen proposed the SCP role on the association it opened to us (as seen in our trace)
    incoming = result.stderr.split("<- A-ASSOCIATE-RQ  LISTEN -> DCMTOOLS", 1)[1].split("-> A-ASSOCIATE-AC", 1)[0]
    assert re.search(r"role\s+Storage Commitment Push Model SOP Class\s+SCU 0\s+SCP 1", incoming), result.stderr
    (report,) = [r for r in listen_records(log) if r["type"] == "commitment_report"]
    assert report["ok"] is True and report["via"] == f"new association to DCMTOOLS@127.0.0.1:{port}"


def test_listen_finds_the_requester_in_the_peers_file(tmp_path):
    """Without --commit-report-to, listen reports to the peers-file entry whose AE title is the requester's."""
    port = free_port()
    peers_file = tmp_path / "peers.toml"
    peers_file.write_text(f'[workstation]\naet = "WS1"\nhost = "127.0.0.1"\nport = {port}\n')
    sent = instances(tmp_path / "sent", 1)
    with listen(tmp_path, "--commit-report", "new", "--peers", str(peers_file)) as (peer, _store, _log):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, *map(str, sent), "--aet", "WS1", "--port", str(port), "--wait", "20")
    (record,) = by_uid(read_records(result.stdout)).values()
    assert result.returncode == 0, result.stderr
    assert record["state"] == "committed"


def test_report_that_never_comes_from_listen(tmp_path):
    """listen reports on a new association to an address where nobody listens: the requester reports pending."""
    sent = instances(tmp_path / "sent", 2)
    nobody = free_port()
    with listen(tmp_path, "--commit-report", "new", "--commit-report-to", f"DCMTOOLS@127.0.0.1:{nobody}") as (
        peer,
        _store,
        log,
    ):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, *map(str, sent), "--wait", "2", "--no-json")
    assert result.returncode == 6
    lines = result.stdout.splitlines()
    assert sum(line.startswith("PENDING ") for line in lines) == 2
    # the cause is said in full once, with what to do
    assert "no report came from LISTEN@127.0.0.1:" in result.stdout and "add --port PORT" in result.stdout
    (report,) = [r for r in listen_records(log) if r["type"] == "commitment_report"]
    assert report["ok"] is False and report["error"]["code"] == "connection_refused"


def test_listen_refuses_malformed_requests(tmp_path):
    """A requester's N-ACTION without a Transaction UID gets 0x0115 and listen says why."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE

    with listen(tmp_path) as (peer, _store, log):
        port = int(peer.rsplit(":", 1)[1])
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context("1.2.840.10008.1.20.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="LISTEN")
        assert assoc.is_established
        info = Dataset()
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = "1.2.3.4"
        info.ReferencedSOPSequence = [item]
        status, _ = assoc.send_n_action(info, 1, "1.2.840.10008.1.20.1", "1.2.840.10008.1.20.1.1")
        wrong_action, _ = assoc.send_n_action(info, 7, "1.2.840.10008.1.20.1", "1.2.840.10008.1.20.1.1")
        assoc.release()
    assert status.Status == 0x0115 and "Transaction UID" in status.ErrorComment
    assert wrong_action.Status == 0x0123
    refused = [r for r in listen_records(log) if r["type"] == "commitment_request"]
    assert [r["ok"] for r in refused] == [False, False]
    assert refused[0]["error"]["code"] == "bad_request"


def test_commit_inputs_that_fail_and_upstream_failures(tmp_path):
    """Unreadable inputs and failed upstream records become error records; the others are still asked about."""
    sent = instances(tmp_path / "sent", 1)
    (tmp_path / "junk.dcm").write_text("not DICOM" * 20)
    upstream = {
        "type": "file",
        "path": str(tmp_path / "x.dcm"),
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "sop_instance_uid": "1.2.3.4",
        "ok": False,
        "error": {"code": "dimse_failed", "message": "refused"},
    }
    with listen(tmp_path) as (peer, _store, _log):
        storescu(peer, *sent)
        stdin = "\n".join([str(sent[0]), str(tmp_path / "junk.dcm"), json.dumps(upstream)]) + "\n"
        result = dcmtools("commit", peer, "-", "--wait", "20", input=stdin)
    records = [r for r in read_records(result.stdout) if r.get("type") == "commitment"]
    assert result.returncode == 1
    codes = sorted(r["error"]["code"] for r in records if not r["ok"])
    assert codes == ["not_dicom", "upstream_failed"]
    assert [r["state"] for r in records if r["ok"]] == ["committed"]


def test_commit_to_a_peer_without_storage_commitment(tmp_path):
    """DCMTK storescp does not do Storage Commitment: exit 7 and the SOP class named."""
    from peers import storescp

    sent = instances(tmp_path / "sent", 1)
    with storescp(tmp_path / "storescp", aet="STORESCP") as port:
        result = dcmtools("commit", f"STORESCP@127.0.0.1:{port}", str(sent[0]), "--wait", "5")
    assert result.returncode == 7
    assert "Storage Commitment Push Model SOP Class" in result.stderr


def test_commit_nothing_listening(tmp_path):
    sent = instances(tmp_path / "sent", 1)
    result = dcmtools("commit", f"PACS@127.0.0.1:{free_port()}", str(sent[0]))
    assert result.returncode == 3
    assert "nothing is listening" in result.stderr


def test_commit_over_tls_with_the_report_on_a_new_association(tmp_path):
    """TLS both ways: the request to listen, and listen's report to our --port."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = self_signed(tmp_path, "server", cn="127.0.0.1")
    tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
    port = free_port()
    sent = instances(tmp_path / "sent", 1)
    # listen verifies our certificate on its report too (TLS is verified by default), so it gets the CA,
    # and then asks every client for a certificate
    with listen(
        tmp_path,
        *tls,
        "--tls-ca",
        str(cert),
        "--commit-report",
        "new",
        "--commit-report-to",
        f"DCMTOOLS@127.0.0.1:{port}",
    ) as (peer, _s, log):
        send = dcmtools("send", peer, str(sent[0]), "--tls-ca", str(cert), *tls)
        assert send.returncode == 0, send.stderr
        plain = dcmtools("commit", peer, str(sent[0]), "--wait", "2", "--timeout", "3")
        result = dcmtools(
            "commit", peer, str(sent[0]), "--tls-ca", str(cert), *tls, "--port", str(port), "--wait", "20"
        )
    assert plain.returncode in (5, 6)  # a TLS port does not speak plain DICOM
    (record,) = by_uid(read_records(result.stdout)).values()
    assert result.returncode == 0, result.stderr
    assert record["state"] == "committed" and record["reported_via"].startswith("new association from LISTEN@")


def test_same_instance_twice_is_asked_once_and_answered_twice(tmp_path):
    sent = instances(tmp_path / "sent", 1)
    with listen(tmp_path) as (peer, _store, log):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, str(sent[0]), str(sent[0]), "--wait", "20")
    records = [r for r in read_records(result.stdout) if r.get("type") == "commitment"]
    assert result.returncode == 0, result.stderr
    assert [r["state"] for r in records] == ["committed", "committed"]
    (request,) = [r for r in listen_records(log) if r["type"] == "commitment_request"]
    assert request["instances"] == 1


def test_pending_and_failed_together_exit_1(tmp_path):
    """Exit 6 is only for 'nothing failed, some pending': a failure among them makes it 1."""
    sent = instances(tmp_path / "sent", 1)
    (tmp_path / "junk.dcm").write_text("not DICOM" * 20)
    nobody = free_port()
    with listen(tmp_path, "--commit-report", "new", "--commit-report-to", f"X@127.0.0.1:{nobody}") as (
        peer,
        _store,
        _log,
    ):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, str(sent[0]), str(tmp_path / "junk.dcm"), "--wait", "1")
    records = [r for r in read_records(result.stdout) if r.get("type") == "commitment"]
    assert result.returncode == 1
    assert sorted(r["error"]["code"] for r in records) == ["commit_pending", "not_dicom"]


def test_port_in_use(tmp_path):
    import socket

    sent = instances(tmp_path / "sent", 1)
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = dcmtools("commit", f"PACS@127.0.0.1:{free_port()}", str(sent[0]), "--port", str(port))
    assert result.returncode == 3
    assert f"cannot listen on port {port}" in result.stderr


def test_many_transactions_on_one_association(tmp_path):
    """--batch 1: each report crosses the next request on the same association; all must get through."""
    sent = instances(tmp_path / "sent", 20)
    with listen(tmp_path) as (peer, _store, log):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, str(tmp_path / "sent"), "--batch", "1", "--wait", "30")
    got = by_uid(read_records(result.stdout))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert len(got) == 20 and len({r["transaction_uid"] for r in got.values()}) == 20
    assert all(r["state"] == "committed" and r["reported_via"] == "same association" for r in got.values())
    reports = [r for r in listen_records(log) if r["type"] == "commitment_report"]
    assert len(reports) == 20 and all(r["ok"] for r in reports)
