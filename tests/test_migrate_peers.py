"""dcmtools migrate against real peers: DCMTK dcmqrscp and Orthanc as sources, Orthanc and dcmtools listen
as destinations; the journal across kill -9, a source that dies, a destination that refuses, a capped source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import migrate_data as D
import pytest
from peers import REPO, dcmtk, dcmtools, free_port
from qrpeers import dcmqrscp_to_orthanc, orthanc, orthanc_to_listen, records

pytestmark = pytest.mark.peer

ME = {"me": ("DCMTOOLS", free_port())}  # Orthanc answers C-FIND only to the AE titles it knows
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TCP_NODELAY": "1"}


def summary(out: str) -> dict:
    return D.by_type(out, "summary")[-1]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> dict[str, list[Path]]:
    """21 studies, 3 patients, CT and MR, explicit and implicit VR (what dcmqrscp accepts)."""
    return D.build(tmp_path_factory.mktemp("mig-archive"), compressed=False)


def test_dcmqrscp_to_orthanc_straight_then_verify_only(tmp_path: Path, archive) -> None:
    with dcmqrscp_to_orthanc(tmp_path, D.all_files(archive), ME) as (source, dest):
        journal = tmp_path / "run.journal"
        result = dcmtools("migrate", source.peer, dest.peer, "--journal", str(journal), "--associations", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        studies = D.by_type(result.stdout, "study")
        assert len(studies) == 21 and all(r["ok"] and r["mode"] == "move" for r in studies)
        verified = D.by_type(result.stdout, "verify")
        assert len(verified) == 21 and all(r["result"] == "matched" for r in verified)
        assert summary(result.stdout)["states"] == {"verified": 21}
        D.assert_same(archive, D.orthanc_files(dest.extra["http"], tmp_path / "got"))
        # again, reconciling only
        again = dcmtools("migrate", source.peer, dest.peer, "--journal", str(journal), "--verify-only", "--uids")
        assert again.returncode == 0, again.stdout + again.stderr
        assert not D.by_type(again.stdout, "study")
        assert [r["result"] for r in D.by_type(again.stdout, "verify")] == ["matched"] * 21
        status = dcmtools("migrate", "--journal", str(journal), "--status")
        assert status.returncode == 0
        record = D.by_type(status.stdout, "status")[0]
        assert record["states"]["verified"] == 21 and record["left"] == 0 and record["source"] == source.peer


def test_orthanc_to_listen_through_us(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", compressed=True)  # with RLE Lossless
    with orthanc_to_listen(tmp_path, D.all_files(archive)) as (source, dest, port):
        journal = tmp_path / "run.journal"
        args = ["migrate", source.peer, dest.peer, "--journal", str(journal), "--through-us", "--port", str(port)]
        result = dcmtools(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(r["mode"] == "through" for r in D.by_type(result.stdout, "study"))
        assert summary(result.stdout)["states"] == {"verified": 21}
        D.assert_same(archive, D.folder_files(dest.extra["store"]))
        assert not any((tmp_path / "run.journal.staging").rglob("*.dcm"))  # staged files sent, then removed
        again = dcmtools("migrate", source.peer, dest.peer, "--journal", str(journal), "--verify-only")
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(D.by_type(again.stdout, "verify")) == 21


def test_capped_source_still_fully_inventoried(tmp_path: Path) -> None:
    # A patient has 7 studies: under the cap; the whole archive (21) and its first halves are over it.
    archive = D.build(tmp_path / "archive", compressed=False, dateless=2)
    with orthanc(tmp_path, ME, D.all_files(archive), config_extra={"LimitFindResults": 8}) as source:
        journal = tmp_path / "run.journal"
        out = tmp_path / "out"
        result = dcmtools("migrate", source.peer, str(out) + "/", "--journal", str(journal), "--get")
        assert result.returncode == 0, result.stdout + result.stderr
        inventory = D.by_type(result.stdout, "inventory")
        assert any(r.get("split") for r in inventory)  # the cap was seen and worked around
        assert all(r["studies"] <= 8 for r in inventory)
        assert summary(result.stdout)["states"] == {"verified": 21}
        D.assert_same(archive, D.folder_files(out))


def _wait_sent(journal: Path, proc: subprocess.Popen, at_least: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "migrate ended before it could be interrupted"
        if journal.exists():
            try:
                counts = D.journal_counts(journal)
            except Exception:  # noqa: BLE001 - the file is being created
                counts = {}
            if counts.get("sent", 0) + counts.get("verified", 0) >= at_least:
                return counts
        time.sleep(0.05)
    raise AssertionError("migrate did not get far enough")


def test_kill_9_mid_transfer_then_resume(tmp_path: Path, archive) -> None:
    with dcmqrscp_to_orthanc(tmp_path, D.all_files(archive), ME) as (source, dest):
        journal = tmp_path / "run.journal"
        args = [
            sys.executable,
            "-m",
            "dcmtools",
            "migrate",
            source.peer,
            dest.peer,
            "--journal",
            str(journal),
            "--rate",
            "8",
        ]
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True
        )
        try:
            _wait_sent(journal, proc, 6, timeout=120)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        before = D.journal_counts(journal)
        attempts_before = D.journal_attempts(journal)
        assert sum(before.values()) == 21 and before.get("sent", 0) >= 6
        with __import__("sqlite3").connect(journal) as db:
            sent_before = {row[0] for row in db.execute("SELECT id FROM items WHERE state = 'sent'")}
        result = dcmtools(*args[3:])
        assert result.returncode == 0, result.stdout + result.stderr
        moved_again = {r["study"] for r in D.by_type(result.stdout, "study")}
        assert not moved_again & sent_before  # what was sent before the kill is not sent again
        assert len(moved_again) == 21 - len(sent_before)
        assert D.journal_counts(journal) == {"verified": 21}
        attempts = D.journal_attempts(journal)
        assert all(attempts[s] == attempts_before[s] for s in sent_before)
        assert all(n <= 2 for n in attempts.values())  # at most the studies in flight had a second try
        D.assert_same(archive, D.orthanc_files(dest.extra["http"], tmp_path / "got"))


def test_source_killed_mid_run_and_restarted(tmp_path: Path, archive) -> None:
    with dcmqrscp_to_orthanc(tmp_path, D.all_files(archive), ME) as (source, dest):
        journal = tmp_path / "run.journal"
        args = ["migrate", source.peer, dest.peer, "--journal", str(journal), "--rate", "8"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "dcmtools", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        config = tmp_path / f"qrscp-{source.port}" / "dcmqrscp.cfg"
        try:
            _wait_sent(journal, proc, 5, timeout=120)
            first_pid = _pid_listening(source.port)
            os.killpg(first_pid, signal.SIGKILL)  # the PACS dies (kill -9), in the middle of the run
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode in (3, 5, 6), out + err  # could not connect / aborted / timed out: it stopped
        failure = [r for r in records(out) if r.get("type") == "migrate"]
        assert failure and failure[0]["ok"] is False
        counts = D.journal_counts(journal)
        assert counts.get("failed", 0) == 0  # the peer failed, not the studies
        with dcmtk("dcmqrscp", "-c", str(config), port=source.port, log=tmp_path / "dcmqrscp-again.log"):
            result = dcmtools(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert D.journal_counts(journal) == {"verified": 21}
        D.assert_same(archive, D.orthanc_files(dest.extra["http"], tmp_path / "got"))


def _pid_listening(port: int) -> int:
    """The process group of the dcmqrscp listening on ``port`` (started by the fixture in its own session)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    pid = int(out.split("pid=")[1].split(",")[0])
    return os.getpgid(pid)


def test_destination_refuses_a_study(tmp_path: Path) -> None:
    """listen cannot store one study (a file stands where its folder must go): it answers the C-STOREs of
    that study with a failure status; the study fails with that reason, the others go on."""
    archive = D.build(tmp_path / "archive", compressed=True)
    refused = D.uid("mig/study/4")
    store = tmp_path / "store"
    (store / "VET042").mkdir(parents=True)
    (store / "VET042" / refused).write_text("in the way")
    with orthanc_to_listen(tmp_path, D.all_files(archive), store=store) as (source, dest, _port):
        journal = tmp_path / "run.journal"
        result = dcmtools("migrate", source.peer, dest.peer, "--journal", str(journal), "--get", "--max-attempts", "2")
        assert result.returncode == 1, result.stdout + result.stderr
        failed = [r for r in D.by_type(result.stdout, "study") if not r["ok"]]
        assert {r["study"] for r in failed} == {refused} and len(failed) == 2  # tried twice, then left failed
        message = failed[0]["error"]["message"]
        assert "not stored" in message and "0xA700" in message  # the destination's own status
        verify = {r["study"]: r for r in D.by_type(result.stdout, "verify")}
        assert verify[refused]["ok"] is False and verify[refused]["result"] == "missing"
        assert verify[refused]["error"]["transfer_error"] == failed[-1]["error"]["message"]
        assert sum(1 for r in verify.values() if r["ok"]) == 20
        assert D.journal_counts(journal) == {"verified": 20, "failed": 1}
        assert D.journal_attempts(journal)[refused] == 2
        D.assert_same(archive, D.folder_files(store), skip_studies={refused})
        # The next run does not try it again (no attempts left) and still says it is not verified.
        again = dcmtools("migrate", source.peer, dest.peer, "--journal", str(journal), "--get", "--max-attempts", "2")
        assert again.returncode == 1 and not D.by_type(again.stdout, "study")
        assert [r["study"] for r in D.by_type(again.stdout, "verify") if not r["ok"]] == [refused]


def test_legacy_folder_to_orthanc(tmp_path: Path) -> None:
    """A folder tree (a legacy archive on disk) into a PACS by C-STORE, verified by C-FIND."""
    archive = D.build(tmp_path / "legacy" / "nested", studies=8, compressed=True)
    (tmp_path / "legacy" / "README.txt").write_text("not an image")
    with orthanc(tmp_path, ME) as dest:
        journal = tmp_path / "run.journal"
        result = dcmtools("migrate", str(tmp_path / "legacy"), dest.peer, "--journal", str(journal), "-n", "2")
        assert result.returncode == 1  # README.txt is not DICOM: said, and the rest went on
        assert [r["path"] for r in D.by_type(result.stdout, "file")] == [str(tmp_path / "legacy" / "README.txt")]
        assert all(r["mode"] == "send" for r in D.by_type(result.stdout, "study"))
        assert summary(result.stdout)["states"] == {"verified": 8}
        D.assert_same(archive, D.orthanc_files(dest.extra["http"], tmp_path / "got"))
        again = dcmtools(
            "migrate", str(tmp_path / "legacy"), dest.peer, "--journal", str(journal), "--verify-only", "--uids"
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert [r["result"] for r in D.by_type(again.stdout, "verify")] == ["matched"] * 8
