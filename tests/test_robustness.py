"""Issue 13: no input can stop a batch, hang it, or leak through it — one test per failure found.

Network cases go to DCMTK's storescp (uncompressed only by default) or to
``dcmtools listen``; special files are made here (FIFO, socket, names that are
not UTF-8).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from netpeers import dcmtk_reads, records, storescp
from peers import REPO, dcmtools
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def files_of(result) -> list[dict]:
    assert "Traceback" not in result.stderr, result.stderr
    return [r for r in records(result.stdout) if r["type"] == "file"]


def ct_copy(path: Path, **changes) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    uid = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    for key, value in changes.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def patch_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new))


# ------------------------------------------------------------------ send
@pytest.mark.peer
def test_send_bad_uids_fail_alone_and_the_batch_goes_on(tmp_path):
    """A non-ASCII SOP Class UID once killed pynetdicom's reactor (no record, exit 6); a UID over 64
    characters gave `internal`.  Now each fails alone with `invalid` and the others are stored."""
    good = [ct_copy(tmp_path / f"good{n}.dcm") for n in range(2)]
    accented = ct_copy(tmp_path / "accented.dcm")
    patch_bytes(accented, b"1.2.840.10008.5.1.4.1.1.2\x00", b"1.2.840.10008.5.1.4.1.1.\xe9\x00")
    long_uid = ct_copy(tmp_path / "long.dcm")
    uid = "1.2.3." + "4" * 70
    ds = pydicom.dcmread(long_uid)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.save_as(long_uid, enforce_file_format=True)
    inputs = [good[0], accented, long_uid, good[1]]
    with storescp(tmp_path / "out") as peer:
        result = dcmtools("send", peer, *map(str, inputs), "--json", "--timeout", "20")
    got = files_of(result)
    assert [r["path"] for r in got] == list(map(str, inputs))
    assert [r["ok"] for r in got] == [True, False, False, True]
    assert got[1]["error"]["code"] == got[2]["error"]["code"] == "invalid"
    assert "ASCII" in got[1]["error"]["message"] and "64" in got[2]["error"]["message"]
    assert result.returncode == 1
    assert len(list((tmp_path / "out").iterdir())) == 2


@pytest.mark.peer
def test_send_silent_peer_stops_the_run_every_input_gets_a_record(tmp_path):
    """storescp frozen (SIGSTOP) mid-batch: the connection stays open and nothing answers.  The file in
    flight times out (retries included) and every file after it is `not_sent`: the run waits about
    timeout x (retries + 1) once, not for each file."""
    files = [ct_copy(tmp_path / "src" / f"f{n:02d}.dcm") for n in range(30)]
    with storescp(tmp_path / "out") as peer:
        port = int(peer.rsplit(":", 1)[1])
        storescp_pid = _listener_pid(port)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dcmtools",
                "send",
                peer,
                *map(str, files),
                "--json",
                "--timeout",
                "2",
                "--retries",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=ENV,
        )
        # Unbuffered: a buffered readline could read ahead lines that communicate() (which reads the
        # file descriptors directly) would then never see.
        first = proc.stdout.readline().decode()
        os.kill(storescp_pid, signal.SIGSTOP)
        try:
            rest_bytes, err_bytes = proc.communicate(timeout=60)
        finally:
            os.kill(storescp_pid, signal.SIGCONT)
        rest, err = rest_bytes.decode(), err_bytes.decode()
    assert "Traceback" not in err
    got = [json.loads(line) for line in (first + rest).splitlines()]
    items = [r for r in got if r["type"] == "file"]
    assert [r["path"] for r in items] == list(map(str, files))  # one record each, in order
    codes = [r.get("error", {}).get("code", "ok") for r in items]
    n_ok = codes.index("timeout")
    assert n_ok >= 1 and codes[:n_ok] == ["ok"] * n_ok
    assert codes[n_ok + 1 :] == ["not_sent"] * (len(files) - n_ok - 1)
    assert "timed out" in items[-1]["error"]["message"] or "not sent" in items[-1]["error"]["message"]
    assert proc.returncode == 6


def _listener_pid(port: int) -> int:
    """The PID of the process listening on ``port`` (storescp itself), from /proc."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as stream:
            for line in stream.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inode = fields[9]
    assert inode
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    raise AssertionError("no process listens on the port")


@pytest.mark.peer
def test_send_decompresses_what_transcode_decodes(tmp_path, all_test_files):
    """send's on-the-fly decompression is transcode's decoder: every compressed file that
    `transcode --to explicit` decodes goes to an uncompressed-only storescp."""
    compressed = []
    for path in all_test_files:
        try:
            meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
            if meta.TransferSyntaxUID.is_compressed and meta.TransferSyntaxUID != "1.2.840.10008.1.2.1.99":
                compressed.append(path)
        except Exception:
            continue
    decoded = files_of(dcmtools("transcode", "--to", "explicit", "-o", str(tmp_path / "tx"), *map(str, compressed)))
    decodable = {r["path"] for r in decoded if r["ok"] and r.get("frames")}  # images (UN_sequence.dcm has none)
    assert len(decodable) > 20
    uids: set[str] = set()
    batch = []
    for path in sorted(decodable):  # storescp names files by SOP Instance UID: one of each
        uid = str(pydicom.dcmread(path, stop_before_pixels=True).get("SOPInstanceUID", path))
        if uid not in uids:
            uids.add(uid)
            batch.append(path)
    with storescp(tmp_path / "out") as peer:
        result = dcmtools("send", peer, *batch, "--json")
    got = files_of(result)
    assert len(got) == len(batch)
    # Our side never fails on them; storescp may refuse what DCMTK itself cannot read (rtdose_rle.dcm
    # holds its SOP Instance UID as UN).
    failed = [
        (r["path"], r["error"])
        for r in got
        if not r["ok"] and not (r["error"]["code"] == "dimse_failed" and not dcmtk_reads(Path(r["path"])))
    ]
    assert not failed
    assert all(r["decompressed"] for r in got)
    # The case: a JPEG baseline file that transcode decodes once gave convert_failed, no reason.
    (jpeg,) = [r for r in got if r["path"].endswith("/SC_rgb_jpeg.dcm")]
    assert jpeg["ok"]


# ------------------------------------------------------------------ transcode: panics, dead workers, malformed
def corrupt_rle(path: Path) -> Path:
    """MR_small_RLE with a run that overflows its segment: the Rust RLE decoder panics."""
    data = bytearray(Path(get_testdata_file("MR_small_RLE.dcm")).read_bytes())
    pixel = data.find(b"\xe0\x7f\x10\x00")
    first = data.find(b"\xfe\xff\x00\xe0", data.find(b"\xfe\xff\x00\xe0", pixel) + 8)  # after the offset table
    start = first + 8
    data[start + 64 : start + 200] = b"\x81" * 136
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_transcode_codec_panic_is_cannot_decode_and_the_batch_goes_on(tmp_path, jobs):
    (tmp_path / "in").mkdir()
    bad = corrupt_rle(tmp_path / "in" / "a-bad.dcm")
    later = ct_copy(tmp_path / "in" / "b-later.dcm")
    result = dcmtools(
        "transcode", "--to", "explicit", "-j", jobs, "-o", str(tmp_path / "out"), str(tmp_path / "in"), timeout=120
    )
    got = files_of(result)
    assert [r["path"] for r in got] == [str(bad), str(later)]
    assert got[0]["error"]["code"] == "cannot_decode" and got[1]["ok"]
    assert result.returncode == 1


def test_pool_replaces_a_dead_worker_and_loses_no_item():
    """A worker killed in the middle (os._exit, SIGKILL): that item's result says so, the pool is
    replaced, every other item gets its own result, in order, and the run ends."""
    from dcmtools.stream.parallel import map_ordered

    items = list(range(40))
    got = list(map_ordered(_dies_on_7_and_23, items, jobs=2, chunksize=4, lost=lambda item, why: ("lost", item, why)))
    assert [g if isinstance(g, int) else g[1] for g in got] == [i * 10 if i not in (7, 23) else i for i in items]
    assert [g[0] for g in got if isinstance(g, tuple)] == ["lost", "lost"]


def _dies_on_7_and_23(item: int) -> int:
    if item == 7:
        os._exit(3)
    if item == 23:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * 10


def test_transcode_unknown_vr_is_invalid_not_internal(tmp_path):
    path = ct_copy(tmp_path / "zz.dcm")
    data = path.read_bytes()
    at = data.find(b"\x28\x00\x10\x00US")  # Rows: read to decode the pixels
    path.write_bytes(data[: at + 4] + b"ZZ" + data[at + 6 :])
    got = files_of(dcmtools("transcode", "--to", "rle", "-o", str(tmp_path / "out"), str(path)))
    assert got[0]["error"]["code"] == "invalid" and "ZZ" in got[0]["error"]["message"]


# ------------------------------------------------------------------ special files
@pytest.mark.peer
def test_special_files_and_empty_folders_are_records_never_read(tmp_path):
    folder = tmp_path / "in"
    good = ct_copy(folder / "a.dcm")
    os.mkfifo(folder / "b-fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "c-socket"))
    os.symlink("/dev/null", folder / "d-device")
    os.mkfifo(tmp_path / "given-fifo")
    (tmp_path / "empty").mkdir()
    args = [str(folder), str(tmp_path / "given-fifo"), str(tmp_path / "empty")]
    expected = [
        str(good),
        str(folder / "b-fifo"),
        str(folder / "c-socket"),
        str(folder / "d-device"),
        str(tmp_path / "given-fifo"),
        str(tmp_path / "empty"),
    ]
    codes = ["ok", "special_file", "special_file", "special_file", "special_file", "no_files"]
    runs = {
        "dump": dcmtools("dump", "--json", *args, timeout=60),
        "anonymize": dcmtools("anonymize", "--key", "k", "-o", str(tmp_path / "anon"), *args, timeout=60),
        "transcode": dcmtools("transcode", "--to", "explicit", "-o", str(tmp_path / "tx"), *args, timeout=60),
    }
    with storescp(tmp_path / "out") as peer:
        runs["send"] = dcmtools("send", peer, "--json", *args, timeout=60)
    for name, result in runs.items():
        got = files_of(result)
        assert [r["path"] for r in got] == expected, name
        assert [r.get("error", {}).get("code", "ok") for r in got] == codes, name
        assert result.returncode == 1, name


def test_names_that_are_not_utf8_are_written_losslessly(tmp_path):
    folder = tmp_path / "in"
    good = ct_copy(folder / "x.dcm")
    raw = os.fsencode(str(folder)) + b"/caf\xe9-\xff.dcm"
    os.rename(good, raw)
    result = subprocess.run(
        [sys.executable, "-m", "dcmtools", "dump", "--json", str(folder)], capture_output=True, env=ENV, timeout=60
    )
    line = result.stdout.split(b"\n")[0]
    line.decode("utf-8")  # valid UTF-8
    record = json.loads(line)
    assert record["ok"] and record["path"].endswith("caf\\xe9-\\xff.dcm")
    assert base64.b64decode(record["path_bytes"]) == raw
    # The record read back (a pipe) names the same file.
    again = subprocess.run(
        [sys.executable, "-m", "dcmtools", "dump", "--json", "-"],
        input=line + b"\n",
        capture_output=True,
        env=ENV,
        timeout=60,
    )
    back = json.loads(again.stdout.split(b"\n")[0])
    assert back["ok"] and base64.b64decode(back["path_bytes"]) == raw


def test_text_dump_escapes_control_characters(tmp_path):
    path = ct_copy(tmp_path / "ctl.dcm", StudyDescription="A\x1b[2Jcleared\rB\x07", InstitutionName="X\x1b]0;t\x07")
    result = subprocess.run(
        [sys.executable, "-m", "dcmtools", "dump", "--no-json", str(path)], capture_output=True, env=ENV, timeout=60
    )
    text = result.stdout.decode("utf-8")
    assert not any(c in text for c in "\x1b\r\x07")
    assert "A\\x1b[2Jcleared\\x0dB\\x07" in text


# ------------------------------------------------------------------ anonymize
def test_anonymize_removes_unknown_public_attributes_unless_keep_unknown(tmp_path):
    """A bit flip turned (0010,0020) into (0010,4B20): it once went through verbatim with ok: true."""
    path = ct_copy(tmp_path / "in" / "flip.dcm", PatientID="SECRET-ID-77")
    patch_bytes(path, b"\x10\x00\x20\x00LO", b"\x10\x00\x20\x4bLO")
    for flags, kept in (([], False), (["--keep-unknown"], True)):
        out = tmp_path / f"out{len(flags)}"
        result = dcmtools("anonymize", "--key", "k", "--keep-names", "-o", str(out), str(path), *flags)
        (record,) = files_of(result)
        assert record["ok"]
        assert (b"SECRET-ID-77" in Path(record["out"]).read_bytes()) is kept
        if not kept:
            assert any("(0010,4B20)" in w and "dictionary" in w for w in record["warnings"])


def test_anonymize_warnings_never_quote_values(tmp_path):
    path = ct_copy(tmp_path / "in" / "d.dcm")
    data = path.read_bytes()
    # A surname where a date should be: a Study Date 'SMITHSON' (8 bytes, like YYYYMMDD).
    at = data.find(b"\x08\x00\x20\x00DA\x08\x00") + 8
    path.write_bytes(data[:at] + b"SMITHSON" + data[at + 8 :])
    result = dcmtools(
        "anonymize", "--key", "k", "--retain-longitudinal-modified-dates", "-o", str(tmp_path / "o"), str(path)
    )
    (record,) = files_of(result)
    assert record["ok"] and record["warnings"]
    assert "SMITHSON" not in result.stdout and "SMITHSON" not in result.stderr


def test_anonymize_names_outputs_from_the_new_uids_keep_names_mirrors(tmp_path):
    source = ct_copy(tmp_path / "in" / "DOE_JOHN" / "DOE_JOHN_ct.dcm")
    result = dcmtools("anonymize", "--key", "k", "-o", str(tmp_path / "uid"), str(tmp_path / "in"))
    (record,) = files_of(result)
    out = Path(record["out"])
    ds = pydicom.dcmread(out)
    assert out.relative_to(tmp_path / "uid").parts == (
        ds.StudyInstanceUID,
        ds.SeriesInstanceUID,
        f"{ds.SOPInstanceUID}.dcm",
    )
    assert "DOE" not in str(out)
    result = dcmtools("anonymize", "--key", "k", "--keep-names", "-o", str(tmp_path / "kept"), str(tmp_path / "in"))
    (record,) = files_of(result)
    assert Path(record["out"]) == tmp_path / "kept" / "DOE_JOHN" / "DOE_JOHN_ct.dcm" and source.exists()


def test_anonymize_research_animal_attributes(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientSpeciesDescription = "Mus musculus"
    ds.StrainNomenclature = "C57BL/6J-ACMEBREEDER"
    ds.StrainStockNumber = "ACME-000664"
    ds.StrainSource = "ACME BREEDER KENNELS"
    ds.GeneticModificationsSequence = Sequence([Dataset()])
    ds.GeneticModificationsSequence[0].GeneticModificationsDescription = "ACME knock-out"
    ds.GeneticModificationsSequence[0].GeneticModificationsNomenclature = "ACME-Tg(1)"
    path = tmp_path / "in" / "mouse.dcm"
    path.parent.mkdir()
    ds.save_as(path, enforce_file_format=True)
    result = dcmtools("anonymize", "--key", "k", "-o", str(tmp_path / "out"), str(path))
    (record,) = files_of(result)
    assert record["ok"]
    out = pydicom.dcmread(record["out"])
    assert b"ACME" not in Path(record["out"]).read_bytes()
    for keyword in ("StrainNomenclature", "StrainStockNumber", "StrainSource", "GeneticModificationsSequence"):
        assert keyword not in out
    assert out.PatientSpeciesDescription == "Mus musculus"
