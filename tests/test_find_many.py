"""find --queries-from: many queries over one association, each match tagged with its query (Orthanc)."""

from __future__ import annotations

import json
from pathlib import Path

import migrate_data as D
import pytest
from peers import dcmtools, free_port
from qrpeers import orthanc, records

pytestmark = pytest.mark.peer

ME = {"me": ("DCMTOOLS", free_port())}


def test_500_accession_numbers_one_association(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=21, compressed=False)
    numbers = [f"MIG{n:03d}" for n in range(500)]  # 21 of them are in the archive
    csv = tmp_path / "accessions.csv"
    csv.write_text("AccessionNumber\n" + "\n".join(numbers) + "\n")
    with orthanc(tmp_path, ME, D.all_files(archive)) as pacs:
        result = dcmtools("find", pacs.peer, "--queries-from", str(csv), "-k", "StudyDescription", "--trace")
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stderr.count("A-ASSOCIATE-RQ") == 1  # one association for the 500 queries
        assert result.stderr.count("C-FIND-RQ") >= 500
        out = records(result.stdout)
        matches = [r for r in out if r["type"] == "match"]
        assert len(matches) == 21
        for match in matches:
            accession = match["dataset"]["00080050"]["Value"][0]
            assert match["query"] == {"AccessionNumber": accession}  # tagged with its own query
            assert match["q"] == int(accession[3:]) + 1
            assert match["dataset"]["00081030"]["Value"][0] == f"study {int(accession[3:])}"
        assert out[-1]["queries"] == 500 and out[-1]["matches"] == 21


def test_json_lines_on_stdin_and_a_bad_row(tmp_path: Path) -> None:
    archive = D.build(tmp_path / "archive", studies=6, compressed=False)
    lines = [
        json.dumps({"PatientID": "H001"}),
        "not json",
        json.dumps({"NoSuchKeyword": "x"}),
        json.dumps({"PatientID": "VET042", "AccessionNumber": ["MIG001", "MIG004"]}),
    ]
    with orthanc(tmp_path, ME, D.all_files(archive)) as pacs:
        result = dcmtools("find", pacs.peer, "--queries-from", "-", "--flat", input="\n".join(lines) + "\n")
        assert result.returncode == 1  # two rows could not be queries; the others ran
        out = records(result.stdout)
        bad = [r for r in out if r["type"] == "query" and not r["ok"]]
        assert [r["q"] for r in bad] == [2, 3]
        by_query = {}
        for r in out:
            if r["type"] == "match":
                by_query.setdefault(r["q"], []).append(r["dataset"]["AccessionNumber"])
        assert sorted(by_query[1]) == ["MIG000", "MIG003"]  # H001's studies
        assert sorted(by_query[4]) == ["MIG001", "MIG004"]
