"""migrate --commit: Storage Commitment of every verified study at the destination, against Orthanc's
Storage Commitment SCP (report on a new association to our --port) and dcmtools listen (report on the
association of the request); a destination that does not commit leaves the study not verified."""

from __future__ import annotations

from pathlib import Path

import migrate_data as D
import pytest
from peers import dcmtools, free_port
from qrpeers import dcmqrscp_to_orthanc, orthanc, orthanc_to_listen

pytestmark = pytest.mark.peer


def test_dcmqrscp_to_orthanc_committed(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=6, compressed=False)
    port = free_port()
    with dcmqrscp_to_orthanc(tmp_path, D.all_files(archive), {"me": ("DCMTOOLS", port)}, ["me"]) as (source, dest):
        journal = tmp_path / "run.journal"
        result = dcmtools(
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--commit",
            "--port",
            str(port),
            "--commit-wait",
            "30",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        verified = D.by_type(result.stdout, "verify")
        assert len(verified) == 6 and all(r["result"] == "matched" and r["ok"] for r in verified)
        for r in verified:
            expected = len(archive[r["study"]])
            assert r["commitment"]["requested"] == expected and r["commitment"]["committed"] == expected
        data = D.journal_data(journal)
        assert all(d["committed"] is True and d["commitment"]["committed"] == len(archive[s]) for s, d in data.items())
        assert D.journal_counts(journal) == {"verified": 6}
        # Verified and committed: the next run neither moves nor asks again.
        again = dcmtools("migrate", source.peer, dest.peer, "--journal", str(journal), "--commit", "--port", str(port))
        assert again.returncode == 0, again.stdout + again.stderr
        assert not D.by_type(again.stdout, "study") and not D.by_type(again.stdout, "verify")


def test_no_report_leaves_studies_sent_not_verified(tmp_path: Path) -> None:
    """The counts match but no report comes (Orthanc reports to a port where nobody listens): no study is
    verified, the records and the journal say why (commit_pending, state sent: nothing is moved again),
    exit status 1; a run without --commit then verifies them."""
    archive = D.build(tmp_path / "archive", studies=3, compressed=False)
    port, nobody = free_port(), free_port()
    us = {"me": ("DCMTOOLS", nobody), "mover": ("DCMTOOLS", port)}
    with dcmqrscp_to_orthanc(tmp_path, D.all_files(archive), us, ["me"]) as (source, dest):
        journal = tmp_path / "run.journal"
        args = ["migrate", source.peer, dest.peer, "--journal", str(journal), "--port", str(port)]
        result = dcmtools(*args, "--commit", "--commit-wait", "3")
        assert result.returncode == 1, result.stdout + result.stderr
        verified = D.by_type(result.stdout, "verify")
        assert len(verified) == 3
        for r in verified:
            assert r["ok"] is False and r["result"] == "not_committed" and r["counted"] == "matched"
            assert r["state"] == "sent" and r["error"]["code"] == "commit_pending"
            assert "not committed" in r["error"]["message"]
            assert r["commitment"]["requested"] == r["commitment"]["pending"] == len(archive[r["study"]])
        assert D.journal_counts(journal) == {"sent": 3}
        assert all(d["committed"] is False for d in D.journal_data(journal).values())
        summary = D.by_type(result.stdout, "summary")[-1]
        assert summary["verification"]["not_committed"] == 3
        plain = dcmtools(*args)
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert not D.by_type(plain.stdout, "study")  # sent and counted before: not moved again
        assert D.journal_counts(journal) == {"verified": 3}


def test_orthanc_to_listen_committed_through_us(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=4, compressed=True)
    with orthanc_to_listen(tmp_path, D.all_files(archive)) as (source, dest, port):
        journal = tmp_path / "run.journal"
        result = dcmtools(
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--get",
            "--commit",
            "--port",
            str(port),
            "--commit-wait",
            "30",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        verified = D.by_type(result.stdout, "verify")
        assert len(verified) == 4
        assert all(r["commitment"]["committed"] == len(archive[r["study"]]) for r in verified)
        assert D.journal_counts(journal) == {"verified": 4}
        D.assert_same(archive, D.folder_files(dest.extra["store"]))
        # A file lost from the destination's disk: its index still counts it, the commitment does not.
        lost_study = sorted(archive)[1]
        lost = next(p for p in Path(dest.extra["store"]).rglob("*.dcm") if lost_study in str(p))
        lost.unlink()
        again = dcmtools(
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--get",
            "--commit",
            "--port",
            str(port),
            "--verify-only",
        )
        assert again.returncode == 1, again.stdout + again.stderr
        verify = {r["study"]: r for r in D.by_type(again.stdout, "verify")}
        assert verify[lost_study]["result"] == "not_committed" and verify[lost_study]["state"] == "failed"
        assert verify[lost_study]["error"]["failure_reason"] == "0x0112"
        assert verify[lost_study]["commitment"]["not_committed"] == [lost.stem]
        assert all(r["ok"] for s, r in verify.items() if s != lost_study)
        assert D.journal_counts(journal) == {"verified": 3, "failed": 1}


def test_anonymized_then_committed_under_the_new_uids(tmp_path: Path) -> None:
    """--anonymize --commit, Orthanc to Orthanc through us: the commitment asks for the new instances."""
    archive = D.build(tmp_path / "archive", studies=3, compressed=False)
    port = free_port()
    with (
        orthanc(tmp_path, {"me": ("DCMTOOLS", port)}, D.all_files(archive)) as source,
        orthanc(tmp_path, {"me": ("DCMTOOLS", port)}, commitment=["me"]) as dest,
    ):
        journal = tmp_path / "run.journal"
        result = dcmtools(
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--port",
            str(port),
            "--anonymize",
            "--key",
            "k",
            "--commit",
            "--commit-wait",
            "30",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        data = D.journal_data(journal)
        for r in D.by_type(result.stdout, "verify"):
            assert r["commitment"]["committed"] == len(archive[r["study"]])
            assert r["destination_studies"] == data[r["study"]]["changed"]["studies"] != [r["study"]]
        assert D.journal_counts(journal) == {"verified": 3}
