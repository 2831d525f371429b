"""C-CANCEL: after --limit, and on Ctrl-C (exit 130), against a pynetdicom Q/R SCP that answers slowly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from peers import REPO, free_port
from pydicom.dataset import Dataset
from qrpeers import records


@pytest.fixture()
def slow_scp():
    """A pynetdicom Study Root C-FIND SCP that sends one match every 0.2 s (up to 200) and notes a C-CANCEL."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    seen = {"cancelled": threading.Event(), "sent": 0}

    def on_find(event):
        for n in range(200):
            if event.is_cancelled:
                seen["cancelled"].set()
                yield 0xFE00, None
                return
            ds = Dataset()
            ds.QueryRetrieveLevel = "STUDY"
            ds.StudyInstanceUID = f"1.2.3.{n + 1}"
            ds.PatientName = f"PATIENT^{n + 1}"
            seen["sent"] += 1
            yield 0xFF00, ds
            time.sleep(0.2)
        yield 0x0000, None

    ae = AE(ae_title="SLOW")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find)])
    try:
        yield f"SLOW@127.0.0.1:{port}", seen
    finally:
        server.shutdown()


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dcmtools", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


def test_limit_sends_c_cancel(slow_scp):
    peer, seen = slow_scp
    proc = _run("find", peer, "--json", "--limit", "2", "--no-defaults", "-k", "PatientName")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = records(out)
    assert [r["type"] for r in result] == ["match", "match", "summary"]
    assert result[-1]["cancelled"] is True and result[-1]["matches"] == 2
    assert seen["cancelled"].wait(5)
    assert seen["sent"] < 10


def test_ctrl_c_cancels_and_exits_130(slow_scp):
    peer, seen = slow_scp
    proc = _run("find", peer, "--json", "--no-defaults", "-k", "PatientName")
    first = proc.stdout.readline()
    assert '"type":"match"' in first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert seen["cancelled"].wait(5), "the SCP saw no C-CANCEL"
    assert seen["sent"] < 50
