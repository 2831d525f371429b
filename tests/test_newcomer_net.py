"""Issue 21: the network fixes a newcomer needed, against real peers (DCMTK dcmqrscp and storescp,
and dcmtools listen as the archive the examples use)."""

import os
from pathlib import Path

import peers
import pytest
from peers import REPO, dcmtools, free_port, records
from qrpeers import build_archive, dcmqrscp, listen, peers_toml, storescp, write_worklist

pytestmark = pytest.mark.peer
SAMPLES = REPO / "samples" / "human-ct"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("newcomer-net")


@pytest.fixture(scope="module")
def archive(work):
    return build_archive(work / "archive")


def _env(peers_file: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "DCMTOOLS_PEERS": str(peers_file)}


# ------------------------------------------------------------- move: our own port from the peers file
def test_move_takes_our_port_from_the_peers_file(work, archive):
    me = free_port()
    with dcmqrscp(work, {"me": ("DCMTOOLS", me)}, archive.files) as pacs:
        peers = peers_toml(work / "peers-move.toml", {"pacs": ("QRSCP", pacs.port), "me": ("DCMTOOLS", me)})
        out = work / "moved"
        moved = dcmtools(
            "move", "pacs", "-k", f"StudyInstanceUID={archive.study_uid('abdomen')}", "-d", str(out), "--json",
            env=_env(peers),
        )  # fmt: skip
    assert moved.returncode == 0, moved.stdout + moved.stderr
    record = records(moved.stdout)[0]
    assert record["ok"] and record["received"] == record["completed"] > 0
    assert len(list(out.rglob("*.dcm"))) == record["received"]


def test_move_destination_unknown_hint_names_listen_peers(work, archive):
    # A dcmtools listen as the archive, which does not know us: 0xA801, and the hint says how to list us.
    with listen(work, aet="ARCHIVE", files=archive.files) as pacs:
        port = free_port()
        moved = dcmtools(
            "move", pacs.peer, "-k", f"StudyInstanceUID={archive.study_uid('abdomen')}", "-p", str(port), "--json"
        )
    assert moved.returncode == 1
    record = records(moved.stdout)[0]
    assert record["status"] == "0xA801" and record["error"]["code"] == "move_destination_unknown"
    hint = record["error"]["hint"]
    assert "--peers" in hint and "known nodes" in hint and "--get" in hint
    assert f'aet = "DCMTOOLS", host = "127.0.0.1", port = {port}' in hint  # the entry to add, ready to paste


def test_move_destination_unknown_hint_from_dcmqrscp(work, archive):
    with dcmqrscp(work, {}, archive.files) as pacs:
        moved = dcmtools(
            "move", pacs.peer, "-k", f"StudyInstanceUID={archive.study_uid('abdomen')}", "-p", "0", "--json"
        )
    record = records(moved.stdout)[0]
    assert record["status"] == "0xA801", record
    assert "HostTable" in record["error"]["hint"] and "--peers" in record["error"]["hint"]


# ------------------------------------------------------------- worklist against a peer without it
def test_worklist_against_listen_without_worklist_dir(work):
    with listen(work, aet="NOWL") as pacs:
        result = dcmtools("worklist", pacs.peer, "--json")
        readable = dcmtools("worklist", pacs.peer, "--no-json")
    assert result.returncode == 7, result.stdout + result.stderr
    error = records(result.stdout)[0]["error"]
    assert error["code"] == "no_context"
    assert "does not offer the Modality Worklist service" in error["message"]
    assert "dcmtools listen" in error["hint"] and "--worklist-dir" in error["hint"]
    assert "--worklist-dir" in readable.stdout and "Traceback" not in readable.stderr


def test_worklist_against_a_peer_without_it_is_named_not_blamed_on_listen(work):
    with storescp(work, aet="STORE") as peer:  # DCMTK storescp: storage only
        result = dcmtools("worklist", peer.peer, "--json")
    error = records(result.stdout)[0]["error"]
    assert result.returncode == 7 and "does not offer the Modality Worklist service" in error["message"]
    assert "listen" not in error["hint"]


def test_find_against_listen_without_store_names_the_option(work):
    # A listen that only serves a worklist: a C-FIND of the archive says to start it with --store-dir.
    items = work / "wl-only"
    write_worklist(items)
    with peers.listen(work, "--worklist-dir", str(items), aet="WLONLY", keep=False) as pacs:
        assert dcmtools("worklist", pacs.peer, "--json").returncode == 0
        found = dcmtools("find", pacs.peer, "--json")
    assert found.returncode == 7, found.stdout + found.stderr
    error = records(found.stdout)[0]["error"]
    assert "does not offer the query/retrieve service" in error["message"] and "--store-dir" in error["hint"]


# ------------------------------------------------------------- send to a closed port
@pytest.mark.parametrize("how", ["-j1", "-j2", "peers-name"])
def test_send_to_a_closed_port_gives_every_file_a_record(how, tmp_path):
    port = free_port()  # nothing listens there
    files = sorted(SAMPLES.rglob("*.dcm"))
    peers = peers_toml(tmp_path / "peers.toml", {"closed": ("NOBODY", port)})
    peer = "closed" if how == "peers-name" else f"NOBODY@127.0.0.1:{port}"
    jobs = "2" if how == "-j2" else "1"
    result = dcmtools("send", peer, "-j", jobs, str(SAMPLES), "--json", env=_env(peers))
    assert result.returncode == 3, result.stdout + result.stderr  # could not connect
    out = records(result.stdout)
    by_path = {r["path"]: r for r in out if r["type"] == "file"}
    assert sorted(by_path) == [str(f) for f in files]  # one record per file, none left out
    codes = {r["error"]["code"] for r in by_path.values()}
    assert codes <= {"connection_refused", "not_sent"} and not any(r["ok"] for r in by_path.values())
    for record in by_path.values():
        assert "connection refused" in record["error"]["message"]  # each says why
    assert out[-1]["type"] == "summary" and "Traceback" not in result.stderr


# ------------------------------------------------------------- find's table
def _series_study(folder: Path) -> list[Path]:
    """One study, series numbered 10, 2, 1 (sent in that order, UIDs in that order too), a long
    patient ID and a long description."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, number in enumerate((10, 2, 1)):
        for instance in (3, 1, 2):
            ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
            ds.PatientID = "VET-2024-000000123456"  # longer than any old column
            ds.PatientName = "TABLE^TEST"
            ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.1420.21.1"
            ds.StudyDescription = "A description far longer than the thirty-two characters shown"
            ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1420.21.2.{i}"
            ds.SeriesNumber = number
            ds.SeriesDescription = f"series {number}"
            ds.InstanceNumber = instance
            ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1420.21.3.{i}.{instance}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            path = folder / f"s{number}-{instance}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def _table(stdout: str) -> list[dict[str, str]]:
    """The rows of a table as {title: cell}, cut at the header's column starts."""
    import re

    header, *lines = stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=  ))\S", header)]
    titles = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {t: line[a:b].strip() for t, a, b in zip(titles, starts, [*starts[1:], None], strict=True)} for line in lines
    ]


@pytest.mark.parametrize("server", ["dcmqrscp", "listen"])
def test_find_table_sorted_labelled_ids_whole(server, work):
    files = _series_study(work / f"table-{server}")
    import contextlib

    with contextlib.ExitStack() as stack:
        if server == "dcmqrscp":
            pacs = stack.enter_context(dcmqrscp(work, {}, files))
        else:
            pacs = stack.enter_context(listen(work, aet="TABLE", files=files))
        study = ["-k", "StudyInstanceUID=1.2.826.0.1.3680043.10.1420.21.1"]
        as_json = dcmtools("find", pacs.peer, "-L", "series", *study, "--json")
        series = dcmtools("find", pacs.peer, "-L", "series", *study, "-k", "SeriesTime", "--no-json")
        images = dcmtools(
            "find", pacs.peer, "-L", "image", *study, "-k", "SeriesInstanceUID=1.2.826.0.1.3680043.10.1420.21.2.0",
            "--no-json",
        )  # fmt: skip
        studies = dcmtools("find", pacs.peer, *study, "--no-json")
    peer_order = [r["dataset"]["00200011"]["Value"][0] for r in records(as_json.stdout)[:-1]]
    assert sorted(peer_order) == [1, 2, 10] and peer_order != [1, 2, 10]  # the peer does not sort them
    assert series.returncode == 0, series.stderr
    rows = _table(series.stdout)
    if server == "listen":  # (dcmqrscp does not return SeriesTime)
        assert list(rows[0])[-1] == "SeriesTime"  # a key beyond the columns gets a labelled column
    assert "=" not in series.stdout  # no untitled KEY=VALUE tail
    assert [row["no"] for row in rows] == ["1", "2", "10"]
    if server == "listen":  # (dcmqrscp returns no PatientID below the study)
        assert all(row["patient id"] == "VET-2024-000000123456" for row in rows)  # IDs whole
    assert [row["no"] for row in _table(images.stdout)] == ["1", "2", "3"]
    assert "A description far longer than t\u2026" in studies.stdout  # cut visibly
    assert "VET-2024-000000123456" in studies.stdout and "1.2.826.0.1.3680043.10.1420.21.1" in studies.stdout
