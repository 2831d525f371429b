"""Every example of `dcmtools migrate --help` runs, against two Orthancs on loopback standing in for the
addresses of the examples (OLD, NEW; the peers-file names old and new)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import migrate_data as D
import pytest
from peers import REPO, dcmtools, free_port
from qrpeers import orthanc, peers_toml, records

pytestmark = pytest.mark.peer


def help_examples(help_text: str) -> list[str]:
    """The help's example lines: after "Examples:", a dcmtools command (after any VAR=value assignments)."""
    lines = (line.strip() for line in help_text.split("Examples:")[1].splitlines())
    return [line for line in lines if re.match(r"(\w+=\S+\s+)*dcmtools\b", line)]


def _window_around_now() -> str:
    now = dt.datetime.now()
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_help_examples_run(tmp_path: Path) -> None:
    help_text = dcmtools("migrate", "--help").stdout
    examples = help_examples(help_text)
    assert len(examples) >= 6
    archive = D.build(tmp_path / "archive", studies=4, compressed=False)
    D.build(tmp_path / "legacy", studies=4, compressed=False)
    (tmp_path / "team.key").write_text("a team secret\n")
    port = free_port()
    with (
        orthanc(
            tmp_path, {"me": ("DCMTOOLS", port)}, config_extra={"DicomAet": "NEW"}, commitment=["me"], dicomweb=True
        ) as new,
        orthanc(
            tmp_path,
            {"new": ("NEW", new.port), "me": ("DCMTOOLS", port)},
            D.all_files(archive),
            config_extra={"DicomAet": "OLD"},
        ) as old,
    ):
        old_peer, new_peer = f"OLD@127.0.0.1:{old.port}", f"NEW@127.0.0.1:{new.port}"
        peers = peers_toml(tmp_path / "peers.toml", {"old": ("OLD", old.port), "new": ("NEW", new.port)})
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO / "src"),
            "DCMTOOLS_PEERS": str(peers),
        }
        for example in examples:
            command = (
                example.replace("OLD@10.0.0.5:104", old_peer)
                .replace("NEW@10.0.0.6:104", new_peer)
                .replace("/archive/legacy", str(tmp_path / "legacy"))
                .replace("/archive ", f"{tmp_path / 'legacy'} ")  # the shard example: a shard of the folder
                .replace("https://pacs.example.org/dicom-web", new.extra["url"])
                .replace("--port 11113", f"--port {port}")
                .replace("--window 19:00-06:00", f"--window {_window_around_now()}")
            )
            result = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
            assert result.returncode == 0, (example, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            if "--commit" in example:  # the studies verified by the first example are committed now
                verified = [r for r in records(result.stdout) if r.get("type") == "verify"]
                assert len(verified) == 4
                assert all(r["commitment"]["committed"] == len(archive[r["study"]]) for r in verified)
        assert D.journal_counts(tmp_path / "old-new.journal") == {"verified": 4}
        assert D.journal_counts(tmp_path / "j.db") == {"verified": 4}
        assert D.journal_counts(tmp_path / "legacy.journal") == {"verified": 4}
        assert D.journal_counts(tmp_path / "research.journal") == {"verified": 4}
        assert D.journal_counts(tmp_path / "fix.journal") == {"verified": 4}
        assert D.journal_counts(tmp_path / "web.journal") == {"verified": 4}
