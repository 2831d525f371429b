"""``dcmtools commit`` against real Storage Commitment SCPs: Orthanc and ``dcmtools listen``."""

from __future__ import annotations

import json

import pytest

from commitpeers import instances, me, orthanc, orthanc_instances, read_records, storescu
from peers import dcmtools, free_port



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
    """--batch 2 over 5 instances: three transactions, each tracked to its own report; exit 0."""
    port = free_port()
    sent = instances(tmp_path / "sent", 5)
    with orthanc(tmp_path, me(port)) as (peer, _http):
        storescu(peer, *sent)
        result = dcmtools("commit", peer, str(tmp_path / "sent"), "--port", str(port), "--batch", "2", "--wait", "30")
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
