"""DICOMweb peers (STOW-RS, QIDO-RS, WADO-RS) for echo, send, find and move --get, against Orthanc with
its DICOMweb plugin, started by these tests on 127.0.0.1.

Instances sent by STOW-RS come back by WADO-RS equal element by element; QIDO-RS answers equal the
DIMSE find answers of the same Orthanc for the same keys; failures have their own message and status.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pydicom
import pytest
from peers import dcmtools, free_port
from pydicom.data import get_testdata_file
from qrpeers import answer_set, build_archive, orthanc, records, same_instance

pytestmark = pytest.mark.peer

ME = "DCMTOOLS"
SKIP = ("truncated", "no_meta", "NoMeta", "badVR", "meta_missing", "UN_sequence", "pixelrep_mismatch", "empty_charset")


def bundled() -> list[str]:
    """pydicom's bundled images (never its downloadable ones), one file per SOP Instance UID."""
    import pydicom.data

    folder = Path(pydicom.data.__file__).parent / "test_files"
    files, seen = [], set()
    for path in sorted(folder.glob("*.dcm")):
        if any(word in path.name for word in SKIP) or path.read_bytes()[128:132] != b"DICM":
            continue
        uid = pydicom.dcmread(path, stop_before_pixels=True).get("SOPInstanceUID")
        if uid and uid not in seen:
            seen.add(uid)
            files.append(str(path))
    return files


USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("web")


@pytest.fixture(scope="module")
def archive(work):
    return build_archive(work / "archive")


@pytest.fixture(scope="module")
def web(work, archive):
    """Orthanc with DICOMweb, filled with the test archive; basic auth on."""
    with orthanc(work, {"me": (ME, free_port())}, archive.files, dicomweb=True, users={USER: PASSWORD}) as peer:
        yield peer


@pytest.fixture(scope="module")
def fresh(work):
    """Orthanc with DICOMweb, empty, for what the tests send (the archive's answers stay as they are)."""
    with orthanc(work / "fresh", {}, dicomweb=True, users={USER: PASSWORD}) as peer:
        yield peer


def _env(**extra: str) -> dict[str, str]:
    from peers import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **extra}
    env.pop("DCMTOOLS_TOKEN", None)
    return env


AUTH = {"DCMTOOLS_PASSWORD": PASSWORD}


def run(*args: str, input: str | None = None, env: dict | None = None):
    result = dcmtools(*args, input=input, env=env or _env(**AUTH))
    out = records(result.stdout)
    return result, out


def _count(peer) -> int:
    import base64

    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{peer.extra['http']}/statistics", headers={"Authorization": f"Basic {auth}"}
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())["CountInstances"]


def test_echo_url_and_its_failures(web, work):
    url = web.extra["url"]
    result, out = run("echo", url, "--user", USER, "--json", "--count", "2")
    assert result.returncode == 0, result.stderr
    assert [r["seq"] for r in out if r["type"] == "echo"] == [1, 2] and all(r["ok"] for r in out[:-1])

    # 401: wrong password
    result, out = run("echo", url, "--user", USER, "--json", env=_env(DCMTOOLS_PASSWORD="wrong"))
    assert result.returncode == 4, result.stderr
    assert out[0]["error"]["code"] == "unauthorized" and "wrong credentials" in out[0]["error"]["message"]
    # 401: no credentials at all
    result, out = run("echo", url, "--json", env=_env())
    assert result.returncode == 4 and "wants credentials" in out[0]["error"]["message"]
    # 404: wrong base path
    result, out = run("echo", url.replace("/dicom-web", "/dicomweb"), "--user", USER, "--json")
    assert result.returncode == 7, result.stderr
    assert out[0]["error"]["code"] == "no_service" and "no DICOMweb service at /dicomweb" in out[0]["error"]["message"]
    # closed port
    closed = f"http://127.0.0.1:{free_port()}/dicom-web"
    result, out = run("echo", closed, "--json")
    assert result.returncode == 3, result.stderr
    assert out[0]["error"]["code"] == "connection_refused" and "nothing is listening" in out[0]["error"]["message"]
    # name not resolved (.invalid never resolves: RFC 2606), no traffic leaves the machine
    result, out = run("echo", "http://pacs.invalid/dicom-web", "--json", "--timeout", "5")
    assert result.returncode == 3 and out[0]["error"]["code"] == "name_not_resolved", result.stdout + result.stderr
    # TLS: Orthanc speaks plain HTTP on this port
    result, out = run("echo", url.replace("http://", "https://"), "--json", "--user", USER)
    assert result.returncode == 3 and out[0]["error"]["code"] == "tls_failed", result.stdout + result.stderr
    # a password is never taken from the command line: without env or file it is a usage error
    result, _ = run("echo", url, "--user", USER, env=_env())
    assert result.returncode == 2 and "DCMTOOLS_PASSWORD" in result.stderr
    # human form on a terminal-less run without --json still says it in words on stderr
    result, _ = run("echo", url, "--user", USER, "--json", env=_env(DCMTOOLS_PASSWORD="wrong"))
    assert "wrong credentials" in result.stderr


def test_peers_file_entry_with_url(web, work):
    password = work / "password"
    password.write_text(PASSWORD + "\n")
    peers = work / "peers.toml"
    peers.write_text(
        f'[web]\nurl = "{web.extra["url"]}"\nuser = "{USER}"\npassword_file = "password"\n\n'
        f'[dimse]\naet = "ORTHANC"\nhost = "127.0.0.1"\nport = {web.port}\n'
    )
    result, out = run("echo", "web", "--peers", str(peers), "--json", env=_env())
    assert result.returncode == 0 and out[0]["peer"] == web.extra["url"], result.stderr
    result, out = run("echo", "dimse", "--peers", str(peers), "--json", env=_env())
    assert result.returncode == 0 and out[0]["status"] == "0x0000", result.stderr


def test_stow_then_wado_equal_element_by_element(fresh, work):
    url = fresh.extra["url"]
    files = bundled()
    result, out = run("send", url, *files, "--user", USER, "--batch", "4", "--json")
    sent = [r for r in out if r["type"] == "file"]
    assert len(sent) == len(files)
    # Orthanc (DCMTK's parser) cannot read some of pydicom's files (JPEG-LS near-lossless ...): those
    # fail alone, with the server's refusal, and the exit status says so; all others are stored.
    refused = [r for r in sent if not r["ok"]]
    assert all(r["error"]["code"] == "store_failed" for r in refused), refused
    assert len(refused) <= 6 and result.returncode == (1 if refused else 0), result.stderr
    stored = {r["sop_instance_uid"]: r["path"] for r in sent if r["ok"]}
    assert all(r["status"] == "stored" for r in sent if r["ok"])

    # read back: every image of Orthanc by WADO-RS (find | move --get), into listen's layout
    env = _env(**AUTH)
    found = dcmtools("find", url, "--user", USER, "--level", "image", "--json", env=env)
    store = work / "wado"
    moved = dcmtools("move", url, "--get", "--user", USER, "-d", str(store), "--json", "-", input=found.stdout, env=env)
    assert moved.returncode == 0, moved.stdout[-2000:] + moved.stderr
    received = {}
    for record in records(moved.stdout):
        for file in record.get("files", []):
            received[pydicom.dcmread(file, stop_before_pixels=True).SOPInstanceUID] = Path(file)
    assert set(stored) <= set(received)
    for uid, path in stored.items():
        file = received[uid]
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        # PatientID/StudyInstanceUID/SeriesInstanceUID/SOPInstanceUID.dcm
        assert file.name == f"{uid}.dcm" and file.parent.name == ds.SeriesInstanceUID
        assert file.parent.parent.name == ds.StudyInstanceUID
        assert same_instance(file, Path(path)), path


def test_find_url_equals_dimse_find(web, archive):
    url = web.extra["url"]
    thorax, ct_chest = archive.study_uid("thorax"), archive.study_uid("ct-chest")
    cases = [
        ("STUDY", ["PatientID=VET042", "StudyInstanceUID", "StudyDate", "AccessionNumber", "StudyDescription"], 1),
        ("STUDY", ["PatientName=*O*", "StudyDate=20240101-20240131", "StudyInstanceUID", "AccessionNumber"], 2),
        ("STUDY", ["StudyDate=-20240115", "StudyInstanceUID", "PatientName", "StudyTime"], 2),
        ("STUDY", ["StudyInstanceUID", "PatientID", "ModalitiesInStudy"], 4),
        ("SERIES", [f"StudyInstanceUID={thorax}", "Modality=MR", "SeriesInstanceUID", "SeriesNumber"], 1),
        ("SERIES", [f"StudyInstanceUID={thorax}", "Modality", "SeriesInstanceUID"], 2),
        (
            "IMAGE",
            [
                f"StudyInstanceUID={ct_chest}",
                f"SeriesInstanceUID={archive.series_uid('ct-chest', 'ct')}",
                "SOPInstanceUID",
                "InstanceNumber",
            ],
            3,
        ),
    ]
    for level, keys, expected in cases:
        args = [
            "--level",
            level,
            "--no-defaults",
            "--no-check",
            "--no-walk",
            "--json",
            *[a for key in keys for a in ("-k", key)],
        ]
        dimse, theirs = run("find", web.peer, "--aet", ME, *args)
        web_result, ours = run("find", url, "--user", USER, *args)
        assert dimse.returncode == 0 and web_result.returncode == 0, dimse.stderr + web_result.stderr
        theirs, ours = theirs[:-1], ours[:-1]
        assert len(ours) == len(theirs) == expected, (level, keys, ours)
        assert all(r["type"] == "match" and r["level"] == level and r["model"] == "study" for r in ours)
        drop = ("00080005", "00080054", "00080056")  # character set, retrieve AE title / availability: DIMSE only
        assert answer_set([r["dataset"] for r in ours], drop, empty=False) == answer_set(
            [r["dataset"] for r in theirs], drop, empty=False
        ), (level, keys)
    # the default keys and the shortcuts, and paging beyond one page (--limit caps)
    _, ours = run("find", url, "--user", USER, "--json", "--level", "image")
    assert len(ours) - 1 == len(archive.files)
    _, ours = run("find", url, "--user", USER, "--json", "--level", "image", "--limit", "4")
    assert len(ours) - 1 == 4
    result, _ = run("find", url, "--user", USER, "--json", "--level", "patient")
    assert result.returncode == 2 and "no patient level" in result.stderr


def test_qido_pages_until_done(web, archive):
    """The library asks page after page (limit/offset) until a page comes back short."""
    from dcmtools.net import keys as K
    from dcmtools.web import WebSession, parse_web_peer, qido

    identifier = K.identifier_from(K.parse_keys(["SOPInstanceUID"]), (), "IMAGE")
    with WebSession(parse_web_peer(web.extra["url"], user=USER, password=PASSWORD)) as session:
        paged = [r["dataset"]["00080018"]["Value"][0] for r in qido(session, identifier, "IMAGE", page=2)]
    assert sorted(paged) == sorted(archive.by_uid) and len(set(paged)) == len(paged)


def test_refused_instance_fails_alone(fresh, work):
    """A file the server cannot read spoils Orthanc's whole request (400): it is split until that one is alone."""
    url = fresh.extra["url"]
    good = []
    for n in range(3):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.10.1420.18.{n}"
        path = work / f"good-{n}.dcm"
        ds.save_as(path)
        good.append(path)
    data = good[0].read_bytes()
    bad = work / "cut.dcm"
    bad.write_bytes(data[: len(data) // 2].replace(b".18.0", b".18.9"))  # cut in the pixel data; its own UID
    before = _count(fresh)
    result, out = run("send", url, str(good[0]), str(bad), str(good[1]), str(good[2]), "--user", USER, "--json")
    assert result.returncode == 1, result.stderr
    files = {Path(r["path"]).name: r for r in out if r["type"] == "file"}
    assert not files["cut.dcm"]["ok"] and files["cut.dcm"]["error"]["code"] == "store_failed"
    assert all(files[f"good-{n}.dcm"]["ok"] for n in range(3))
    assert _count(fresh) >= before + 2  # (good-0 may already be there from another test: same UID)
    assert out[-1]["type"] == "summary" and out[-1]["failed"] == 1


def test_pipes_find_move_and_anonymize_send(web, work, archive):
    url = web.extra["url"]
    env = _env(**AUTH)
    found = dcmtools("find", url, "--user", USER, "--level", "series", "-k", "PatientID=VET042", "--json", env=env)
    assert found.returncode == 0, found.stderr
    store = work / "piped"
    moved = dcmtools("move", url, "--get", "--user", USER, "-d", str(store), "--json", "-", input=found.stdout, env=env)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    gets = [r for r in records(moved.stdout) if r["type"] == "get"]
    assert len(gets) == 2 and sum(r["received"] for r in gets) == 3
    for record in gets:
        for file in record["files"]:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
            assert same_instance(Path(file), archive.by_uid[ds.SOPInstanceUID])

    samples = work / "to-anonymize"
    samples.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (samples / name).write_bytes(Path(get_testdata_file(name)).read_bytes())
    anonymized = dcmtools("anonymize", str(samples), "-o", str(work / "anon"), "--key", "k", "--json")
    assert anonymized.returncode == 0, anonymized.stderr
    sent = dcmtools("send", url, "--user", USER, "--json", "-", input=anonymized.stdout, env=env)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    files = [r for r in records(sent.stdout) if r["type"] == "file"]
    assert len(files) == 2 and all(r["ok"] and str(work / "anon") in r["path"] for r in files)


def test_help_examples_run_against_orthanc(fresh, work):
    """The DICOMweb examples of --help (those naming the peer `web`), run as they are written, with `web` a
    peers-file entry for the test's Orthanc, which asks for a password (tests/test_examples.py runs them all
    in its sandbox, against an Orthanc without one)."""
    import re
    import shutil
    import subprocess
    import sys

    from peers import REPO

    examples = work / "web-examples"
    shutil.copytree(REPO / "samples" / "human-ct", examples / "study")  # the study the examples send and find
    peers_file = work / "web-peers.toml"
    peers_file.write_text(f'[web]\nurl = "{fresh.extra["url"]}"\nuser = "{USER}"\n')
    bindir = work / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "dcmtools").write_text(f'#!/bin/sh\nexec {sys.executable} -m dcmtools "$@"\n')
    (bindir / "dcmtools").chmod(0o755)
    env = _env(DCMTOOLS_PEERS=str(peers_file), DCMTOOLS_PASSWORD=PASSWORD, PATH=f"{bindir}:{os.environ['PATH']}")
    ran = 0
    for command in ("echo", "send", "find", "move"):
        text = dcmtools(command, "--help", env=env).stdout
        for line in text.split("Examples:")[1].splitlines():
            line = line.split("  #")[0].strip()
            if not re.match(rf"^dcmtools {command} web\b", line) and "| dcmtools move web" not in line:
                continue
            result = subprocess.run(
                ["bash", "-c", f"set -o pipefail; {line} --json"],
                cwd=examples,
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
            assert result.returncode == 0, (line, result.stdout[-1000:], result.stderr)
            last = records(result.stdout)[-1]
            assert last["type"] == "summary" and last["exit_status"] == 0, line
            ran += 1
    assert ran == 4  # echo, send, find, find | move --get
    assert len(list((examples / "from-web").rglob("*.dcm"))) >= 7  # move --get wrote the study back


def test_dropped_connection_is_retried_and_nothing_unconfirmed(work):
    """Orthanc killed in the middle of a STOW-RS request and started again: the request is sent again
    after a pause, and every instance is reported stored only once the new Orthanc confirmed it."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np
    from peers import orthanc_again
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = work / "big"
    folder.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows = ds.Columns = 512
    ds.PixelData = np.zeros((512, 512), np.int16).tobytes()
    for n in range(120):  # 63 MB in one request
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"{n:03d}.dcm", enforce_file_format=True)
    with orthanc(work / "drop", {}, dicomweb=True) as peer:
        client = subprocess.Popen(
            [sys.executable, "-m", "dcmtools", "send", peer.extra["url"], str(folder), "--batch", "200", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        # wait until the client is in the middle of the body (it has read 10 MB of the files), then kill Orthanc
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client.poll() is None:
            io = dict(line.split(": ") for line in Path(f"/proc/{client.pid}/io").read_text().splitlines())
            if int(io["rchar"]) > 10_000_000:
                break
            time.sleep(0.005)
        assert client.poll() is None, "the client ended before it could be interrupted"
        os.kill(peer.extra["process"].pid, signal.SIGKILL)
        peer.extra["process"].wait()
        with orthanc_again(peer.extra["config"], log=work / "drop" / "restarted.log"):
            stdout, stderr = client.communicate(timeout=120)
            out = records(stdout)
            assert client.returncode == 0, stdout[-2000:] + stderr
            assert "dropped the connection" in stderr and "trying again" in stderr, stderr
            files = [r for r in out if r["type"] == "file"]
            assert len(files) == 120 and all(r["ok"] and r["status"] == "stored" for r in files)
            stats = json.loads(
                urllib.request.urlopen(f"http://127.0.0.1:{peer.extra['http']}/statistics", timeout=10).read()
            )
            assert stats["CountInstances"] == 120
