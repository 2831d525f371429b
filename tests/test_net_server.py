"""dcmtools.net.server.Listener started in-process (no CLI), against DCMTK storescu and findscu."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from commitpeers import instances
from qrpeers import Peer, findscu, storescu

pytestmark = pytest.mark.peer


def _node(tmp_path: Path, records: list[dict], **kw):
    from dcmtools.net import NetOptions
    from dcmtools.net.access import Access
    from dcmtools.net.server import Listener

    return Listener(
        NetOptions(calling_aet="LISTEN"),
        port=0,
        bind="127.0.0.1",
        store_dir=tmp_path / "store",
        access=Access(None, allow_any=True),
        on_record=records.append,
        **kw,
    )


def test_listener_stores_and_answers_queries_in_process(tmp_path):
    sent = instances(tmp_path / "sent", 2)
    records: list[dict] = []
    with _node(tmp_path, records) as node:
        assert node.port > 0 and node.listening_record()["port"] == node.port
        storescu(node.port, "LISTEN", sent)
        assert node.serve_forever(count=2) == "count"
        matches = findscu(
            Peer(f"LISTEN@127.0.0.1:{node.port}", node.port, "LISTEN"),
            ["QueryRetrieveLevel=IMAGE", "SOPInstanceUID"],
            "study",
            tmp_path / "found",
        )
    stored = [r for r in records if r["type"] == "instance"]
    assert len(stored) == 2 and all(r["ok"] and Path(r["path"]).is_file() for r in stored)
    assert node.instances == 2
    assert len(matches) == 2
    assert any(r["type"] == "find" and r.get("ok") is not False for r in records)


def test_listener_stop_soon_from_another_thread_and_idle(tmp_path):
    records: list[dict] = []
    node = _node(tmp_path, records).start()
    try:
        threading.Timer(0.3, node.stop_soon).start()
        started = time.monotonic()
        assert node.serve_forever() == "stopped"
        assert time.monotonic() - started < 10
    finally:
        node.stop()
    with _node(tmp_path, records) as again:  # the same store opens again once the first has stopped
        assert again.serve_forever(idle_timeout=0.2) == "idle"
