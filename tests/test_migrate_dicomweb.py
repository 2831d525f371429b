"""migrate to a DICOMweb destination: Orthanc (DIMSE) as the source, Orthanc with its DICOMweb plugin as
the destination (STOW-RS through us, reconciliation by QIDO-RS)."""

from __future__ import annotations

from pathlib import Path

import migrate_data as D
import pytest
from peers import dcmtools, free_port
from qrpeers import orthanc

pytestmark = pytest.mark.peer


def test_orthanc_to_orthanc_dicomweb(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=8, compressed=True)
    port = free_port()
    with (
        orthanc(tmp_path, {"me": ("DCMTOOLS", port)}, D.all_files(archive)) as source,
        orthanc(tmp_path, {}, dicomweb=True) as dest,
    ):
        url = dest.extra["url"]
        journal = tmp_path / "run.journal"
        result = dcmtools("migrate", source.peer, url, "--journal", str(journal), "--port", str(port), "-n", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        studies = D.by_type(result.stdout, "study")
        assert len(studies) == 8 and all(r["ok"] and r["mode"] == "through" for r in studies)
        verified = D.by_type(result.stdout, "verify")
        assert len(verified) == 8 and all(r["result"] == "matched" for r in verified)
        assert all(r["destination"]["instances"] == len(archive[r["study"]]) for r in verified)
        assert D.by_type(result.stdout, "summary")[-1]["destination"] == url
        D.assert_same(archive, D.orthanc_files(dest.extra["http"], tmp_path / "got"))
        again = dcmtools(
            "migrate", source.peer, url, "--journal", str(journal), "--port", str(port), "--verify-only", "--uids"
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert [r["result"] for r in D.by_type(again.stdout, "verify")] == ["matched"] * 8
        # A study lost at the destination is found missing by QIDO-RS, and sent again by the next run.
        lost = sorted(archive)[0]
        import json
        import urllib.request

        base = f"http://127.0.0.1:{dest.extra['http']}"
        found = json.loads(
            urllib.request.urlopen(
                urllib.request.Request(f"{base}/tools/lookup", data=lost.encode(), method="POST"), timeout=10
            ).read()
        )
        urllib.request.urlopen(urllib.request.Request(f"{base}{found[0]['Path']}", method="DELETE"), timeout=10).read()
        check = dcmtools("migrate", source.peer, url, "--journal", str(journal), "--port", str(port), "--verify-only")
        assert check.returncode == 1
        assert [r["study"] for r in D.by_type(check.stdout, "verify") if not r["ok"]] == [lost]
        resume = dcmtools("migrate", source.peer, url, "--journal", str(journal), "--port", str(port))
        assert resume.returncode == 0, resume.stdout + resume.stderr
        assert [r["study"] for r in D.by_type(resume.stdout, "study")] == [lost]
        assert D.journal_counts(journal) == {"verified": 8}
        D.assert_same(archive, D.orthanc_files(dest.extra["http"], tmp_path / "got2"))


def test_commit_and_dicomweb_source_are_usage_errors(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/dicom-web"
    result = dcmtools("migrate", "OLD@127.0.0.1:9", url, "--journal", str(tmp_path / "j"), "--commit")
    assert result.returncode == 2 and "Storage Commitment" in result.stderr
    result = dcmtools("migrate", url, str(tmp_path / "out") + "/", "--journal", str(tmp_path / "j2"))
    assert result.returncode == 2 and "DICOMweb source" in result.stdout + result.stderr
    assert not (tmp_path / "j2").exists()
