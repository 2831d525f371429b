"""echo, send and listen against real peers: DCMTK storescp/storescu/echoscu, Orthanc, pynetdicom."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from netpeers import (
    copies,
    dataset_bytes,
    dcmtk_reads,
    orthanc,
    orthanc_get,
    records,
    storescp,
    without_trailing_padding,
)
from peers import PEER_ENV, dcmtools, free_port, listen, require
from tlspeers import self_signed

pytestmark = pytest.mark.peer

COMPRESSED_SAMPLES = ["JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"]


def readable_images(all_test_files) -> list[Path]:
    """pydicom's bundled image files that pydicom decodes and DCMTK reads (the send test's set)."""
    from dcmtools.net.store import read_head
    from dcmtools.stream.records import DcmtoolsError

    chosen = []
    for path in all_test_files:
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                continue
            ds.pixel_array  # noqa: B018  (decodes: the file must be readable)
            read_head(str(path))
        except (DcmtoolsError, Exception):
            continue
        if dcmtk_reads(path):
            chosen.append(path)
    return chosen


def by_unique_uid(paths: list[Path]) -> list[list[Path]]:
    """Batches in which no two files share a SOP Instance UID (storescp names files by it)."""
    from dcmtools.net.store import read_head

    batches: list[list[Path]] = []
    seen: list[set[str]] = []
    for path in paths:
        uid = read_head(str(path)).sop_instance
        for batch, uids in zip(batches, seen, strict=False):
            if uid not in uids:
                batch.append(path)
                uids.add(uid)
                break
        else:
            batches.append([path])
            seen.append({uid})
    return batches


def assert_same_dataset(sent: pydicom.Dataset, received: pydicom.Dataset, where: str) -> None:
    for element in sent:
        if element.tag.group == 0x0002 or element.tag in (0x7FE00010, 0xFFFCFFFC) or element.tag.element == 0x0000:
            continue  # file meta, pixel data (compared decoded); storescp drops group lengths and padding
        assert element.tag in received, f"{where}: {element.tag} missing"
        assert received[element.tag].value == element.value, f"{where}: {element.keyword or element.tag} differs"


def test_send_to_storescp_accepting_only_uncompressed(tmp_path, all_test_files):
    files = readable_images(all_test_files)
    assert len(files) > 40
    assert {p.name for p in files} >= set(COMPRESSED_SAMPLES)
    decompressed = 0
    for n, batch in enumerate(by_unique_uid(files)):
        out = tmp_path / f"out{n}"
        with storescp(out) as peer:
            result = dcmtools("send", peer, *map(str, batch), "--json")
        got = records(result.stdout)
        assert result.returncode == 0, result.stdout + result.stderr
        items = [r for r in got if r["type"] == "file"]
        assert len(items) == len(batch) and all(r["ok"] for r in items)
        for record in items:
            sent = pydicom.dcmread(record["path"])
            (received_path,) = out.glob(f"*.{record['sop_instance_uid']}")
            received = pydicom.dcmread(received_path)
            assert record["transfer_syntax"] in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")
            assert received.file_meta.TransferSyntaxUID == record["transfer_syntax"]
            if sent.file_meta.TransferSyntaxUID.is_compressed:
                assert record["decompressed"] is True
                assert record["original_transfer_syntax"] == sent.file_meta.TransferSyntaxUID
                decompressed += 1
                expected = pydicom.dcmread(record["path"])
                expected.decompress(generate_instance_uid=False)
                assert_same_dataset(expected, received, record["path"])
            else:
                assert "decompressed" not in record
                assert_same_dataset(sent, received, record["path"])
                assert received.PixelData == sent.PixelData
            assert np.array_equal(received.pixel_array, sent.pixel_array), record["path"]
    assert decompressed >= len(COMPRESSED_SAMPLES)


def test_send_to_orthanc_one_file_refused(tmp_path, test_files_dir):
    odd = pydicom.dcmread(test_files_dir / "CT_small.dcm")
    odd.SOPClassUID = odd.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.8.498.999.1"
    odd.SOPInstanceUID = odd.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    odd_path = tmp_path / "unknown_sop_class.dcm"
    odd.save_as(odd_path, enforce_file_format=True)
    good = [test_files_dir / name for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")]
    with orthanc(tmp_path) as (peer, http):
        result = dcmtools("send", peer, str(good[0]), str(odd_path), *map(str, good[1:]), "--json")
        stored = orthanc_get(http, "/instances")
    assert result.returncode == 1, result.stdout + result.stderr
    got = [r for r in records(result.stdout) if r["type"] == "file"]
    assert [r["ok"] for r in got] == [True, False, True, True]
    assert got[1]["error"]["code"] == "no_context"
    assert "1.2.826.0.1.3680043.8.498.999.1" in got[1]["error"]["message"]
    assert got[3]["transfer_syntax"] == "1.2.840.10008.1.2.4.91"  # Orthanc takes JPEG 2000 as it is
    assert "decompressed" not in got[3]
    assert len(stored) == 3


def test_storescu_to_listen_byte_equal_and_echoscu(tmp_path, test_files_dir):
    require("storescu", "echoscu")
    # storescu proposes one family of transfer syntaxes per run: one run per family.
    runs = [
        ([], ["CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm"]),
        (["-xi"], ["rtplan.dcm", "MR_small_implicit.dcm"]),
        (["-xb"], ["MR_small_bigendian.dcm"]),
        (["-xw"], ["JPEG2000.dcm"]),
        (["-xy"], ["SC_rgb_jpeg_dcmtk.dcm"]),
        (["-xr"], ["MR_small_RLE.dcm"]),
        (["-xt"], ["MR_small_jpeg_ls_lossless.dcm"]),
    ]
    files = [test_files_dir / name for _, names in runs for name in names]
    uids = {pydicom.dcmread(f).SOPInstanceUID for f in files}
    store = tmp_path / "in"
    log = tmp_path / "listen.jsonl"
    with listen(tmp_path, "--count", str(len(files)), aet="LISTENER", store=store, log=log, allow_any=False) as server:
        echo = subprocess.run(
            ["echoscu", "-aec", "LISTENER", "127.0.0.1", str(server.port)], env=PEER_ENV, capture_output=True
        )
        assert echo.returncode == 0, echo.stderr
        for options, names in runs:
            sent = subprocess.run(
                [
                    "storescu",
                    *options,
                    "-aet",
                    "MODALITY",
                    "-aec",
                    "LISTENER",
                    "127.0.0.1",
                    str(server.port),
                    *[str(test_files_dir / n) for n in names],
                ],
                env=PEER_ENV,
                capture_output=True,
                text=True,
            )
            assert sent.returncode == 0 and "E:" not in sent.stderr, sent.stderr
        assert server.process.wait(timeout=60) == 0, log.read_text()
    got = records(log, log=True)  # the log has stderr too
    instances = [r for r in got if r["type"] == "instance"]
    assert len(instances) == len(files) and all(r["ok"] for r in instances)
    assert {r["sop_instance_uid"] for r in instances} == uids
    assert all(r["calling_aet"] == "MODALITY" and r["called_aet"] == "LISTENER" for r in instances)
    associations = [r for r in got if r["type"] == "association"]
    assert [a["event"] for a in associations] == ["accepted", "released"] * (1 + len(runs))
    assert associations[0]["calling_aet"] == "ECHOSCU"
    by_uid = defaultdict(list)  # MR_small* share one UID: the later ones are kept as -1.dcm, -2.dcm ...
    for r in instances:
        by_uid[r["sop_instance_uid"]].append(Path(r["path"]))
    for f in files:
        ds = pydicom.dcmread(f)
        stored = by_uid[ds.SOPInstanceUID]
        # The received dataset is byte-equal to what storescu sent, each in its own transfer
        # syntax. storescu sends a file as DCMTK encodes it (it reads, then writes: sequences
        # get explicit lengths, trailing padding is left out), so the bytes expected are the
        # file's own, or DCMTK's encoding of it (dcmconv with its default options).
        converted = tmp_path / f"dcmconv-{f.name}"
        subprocess.run(["dcmconv", "-q", str(f), str(converted)], check=True, env=PEER_ENV)
        expected = {without_trailing_padding(dataset_bytes(f)), without_trailing_padding(dataset_bytes(converted))}
        matches = [p for p in stored if dataset_bytes(p) in expected]
        assert matches, f"{f.name}: no byte-equal copy among {stored}"
        record = next(r for r in instances if Path(r["path"]) == matches[0])
        assert record["transfer_syntax"] == ds.file_meta.TransferSyntaxUID
        assert matches[0].parts[-4:-1] == (ds.PatientID or "UNKNOWN", ds.StudyInstanceUID, ds.SeriesInstanceUID)
        assert dcmtk_reads(matches[0])
    assert not list(store.glob(".incoming-*"))


def test_echo_failures_are_distinct(tmp_path):
    refused = dcmtools("echo", f"ANY@127.0.0.1:{free_port()}", "--json")
    with orthanc(tmp_path, check_called_aet=True) as (peer, _http):
        port = peer.rsplit(":", 1)[1]
        rejected = dcmtools("echo", f"WRONGAE@127.0.0.1:{port}", "--json")
        fine = dcmtools("echo", peer, "--count", "2", "--json")
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        timed_out = dcmtools("echo", f"SILENT@127.0.0.1:{silent.getsockname()[1]}", "--timeout", "1", "--json")
    assert fine.returncode == 0 and [r["ok"] for r in records(fine.stdout)[:2]] == [True, True]
    results = {
        "refused": (refused, 3, "connection_refused", "nothing is listening on 127.0.0.1:"),
        "rejected": (rejected, 4, "rejected", "called AE title 'WRONGAE' is not recognised"),
        "timeout": (timed_out, 6, "timeout", "did not answer the association request within 1 s"),
    }
    messages = set()
    for name, (result, status, code, words) in results.items():
        assert result.returncode == status, (name, result.stdout, result.stderr)
        (record, summary) = records(result.stdout)
        assert record["ok"] is False and record["error"]["code"] == code
        assert words in record["error"]["message"], record
        assert record["error"]["hint"]
        assert words in result.stderr and "Traceback" not in result.stderr
        messages.add(record["error"]["message"])
    assert len(messages) == 3


def test_send_survives_an_abort_mid_batch(tmp_path, test_files_dir):
    """A pynetdicom SCP aborts the first association on its 3rd C-STORE: the file is sent again."""
    from pynetdicom import AE, evt
    from pynetdicom.presentation import AllStoragePresentationContexts

    files = copies(test_files_dir / "CT_small.dcm", tmp_path / "src", 6)
    received: list[str] = []
    calls = {"n": 0}

    def on_store(event):
        calls["n"] += 1
        if calls["n"] == 3:
            event.assoc.abort()
            return 0xC000
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    ae = AE(ae_title="FLAKY")
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        result = dcmtools("send", f"FLAKY@127.0.0.1:{port}", *map(str, files), "--json")
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout + result.stderr
    got = [r for r in records(result.stdout) if r["type"] == "file"]
    assert [r["path"] for r in got] == list(map(str, files)) and all(r["ok"] for r in got)
    assert "re-opening the association" in result.stderr
    assert sorted(received) == sorted(r["sop_instance_uid"] for r in got)


def test_send_stops_when_every_association_aborts(tmp_path, test_files_dir):
    files = copies(test_files_dir / "CT_small.dcm", tmp_path / "src", 5)
    with storescp(tmp_path / "out", "--abort-after") as peer:
        result = dcmtools("send", peer, *map(str, files), "--retries", "1", "--json")
    assert result.returncode == 5, result.stdout + result.stderr
    got = records(result.stdout)
    assert not any(r.get("ok") for r in got)
    # Every input gets its record (issue 13): 3 files lost to aborts, the 2 not tried 'not_sent'.
    assert [r["type"] for r in got] == ["file"] * 5 + ["association", "summary"]
    assert [r["path"] for r in got[:5]] == list(map(str, files))
    assert [r["error"]["code"] for r in got[:6]] == ["aborted"] * 3 + ["not_sent"] * 2 + ["aborted"]
    assert "aborted" in got[3]["error"]["message"] and "aborted" in got[5]["error"]["message"]


def test_send_jobs_and_compressed_as_is_to_listen(tmp_path, test_files_dir):
    from dcmtools.net import StorageSCP

    files = copies(test_files_dir / "CT_small.dcm", tmp_path / "src", 12)
    files += [test_files_dir / n for n in COMPRESSED_SAMPLES]
    seen: list[dict] = []
    lock = threading.Lock()

    def keep(record):
        with lock:
            seen.append(record)

    with StorageSCP(tmp_path / "in", aet="DCMTOOLS", port=0, host="127.0.0.1", on_record=keep) as scp:
        result = dcmtools("send", f"DCMTOOLS@127.0.0.1:{scp.port}", *map(str, files), "--jobs", "2", "--json")
        assert scp.wait(count=len(files), timeout=10) == "count"
    assert result.returncode == 0, result.stdout + result.stderr
    got = [r for r in records(result.stdout) if r["type"] == "file"]
    assert sorted(r["path"] for r in got) == sorted(map(str, files))
    stored = defaultdict(list)  # MR_small_RLE and MR_small_jpeg_ls_lossless share their UID
    for r in seen:
        if r["type"] == "instance":
            stored[r["sop_instance_uid"]].append(dataset_bytes(Path(r["path"])))
    # One association per job that got work: the jobs share one input queue, so on a loaded machine the first
    # can drain it before the second has started (then that one never associates).
    assert 1 <= len([a for a in seen if a["type"] == "association" and a["event"] == "accepted"]) <= 2
    for record in got:
        assert record["ok"] and "decompressed" not in record
        assert dataset_bytes(Path(record["path"])) in stored[record["sop_instance_uid"]], record["path"]


def test_tls_echo_and_send(tmp_path, test_files_dir):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = self_signed(tmp_path, "server", cn="127.0.0.1")
    with listen(
        tmp_path,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--count",
        "1",
        aet=None,
        store=tmp_path / "in",
        log=tmp_path / "listen.log",
        allow_any=False,
    ) as server:
        plain = dcmtools("echo", server.peer, "--timeout", "3", "--json")
        echo = dcmtools("echo", server.peer, "--tls-ca", str(cert), "--json")
        send = dcmtools("send", server.peer, str(test_files_dir / "CT_small.dcm"), "--tls-ca", str(cert), "--json")
    assert plain.returncode in (5, 6), plain.stdout  # a TLS port does not speak plain DICOM
    assert echo.returncode == 0, echo.stdout + echo.stderr
    assert send.returncode == 0 and records(send.stdout)[0]["ok"], send.stdout + send.stderr
    assert list((tmp_path / "in").rglob("*.dcm"))


def test_trace_shows_negotiation_and_messages(tmp_path, test_files_dir):
    with storescp(tmp_path / "out") as peer:
        result = dcmtools("send", peer, str(test_files_dir / "CT_small.dcm"), "--trace", "--json")
    assert result.returncode == 0, result.stderr
    for words in (
        "-> A-ASSOCIATE-RQ  DCMTOOLS -> STORESCP",
        "context 1  CT Image Storage  [Explicit VR Little Endian]",
        "<- A-ASSOCIATE-AC  max PDU",
        "accepted  Explicit VR Little Endian",
        "-> C-STORE-RQ  id 1  context 1",
        "<- C-STORE-RSP  id 1",
        "status 0x0000",
        "-> A-RELEASE-RQ",
        "<- A-RELEASE-RP",
    ):
        assert words in result.stderr, words


def test_send_reads_records_from_stdin(tmp_path, test_files_dir):
    upstream = "\n".join(
        [
            '{"type":"file","path":"/elsewhere/x.dcm","out":"' + str(test_files_dir / "CT_small.dcm") + '","ok":true}',
            '{"type":"file","path":"'
            + str(test_files_dir / "MR_small.dcm")
            + '","ok":false,"error":{"code":"invalid","message":"bad"}}',
            '{"type":"summary","command":"anonymize"}',
        ]
    )
    with storescp(tmp_path / "out") as peer:
        result = dcmtools("send", peer, "-", "--json", input=upstream + "\n")
    got = [r for r in records(result.stdout) if r["type"] == "file"]
    assert result.returncode == 1
    assert got[0]["ok"] and got[0]["path"] == str(test_files_dir / "CT_small.dcm")
    assert not got[1]["ok"] and got[1]["error"]["code"] == "upstream_failed"
    assert len(list((tmp_path / "out").glob("CT.*"))) == 1


def test_anonymize_piped_into_send(tmp_path):
    """`dcmtools anonymize ... | dcmtools send PEER -` sends the anonymized outputs, never the originals."""
    from peers import REPO

    samples = REPO / "samples" / "vet-dog"
    anonymized = dcmtools("anonymize", str(samples), "-o", str(tmp_path / "anon"), "--key", "k", "--json")
    assert anonymized.returncode == 0, anonymized.stderr
    with storescp(tmp_path / "out") as peer:
        result = dcmtools("send", peer, "-", "--json", input=anonymized.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    got = [r for r in records(result.stdout) if r["type"] == "file"]
    assert len(got) == 2 and all(r["path"].startswith(str(tmp_path / "anon")) for r in got)
    originals = {pydicom.dcmread(p).SOPInstanceUID for p in samples.glob("*.dcm")}
    received = {pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / "out").iterdir()}
    assert len(received) == 2 and not received & originals


def test_listen_answers_a700_when_it_cannot_store(tmp_path, test_files_dir):
    """A file where the patient's folder should be: the instance cannot be stored, and both sides say so."""
    from dcmtools.net import StorageSCP

    store = tmp_path / "in"
    store.mkdir()
    (store / "1CT1").write_text("not a folder")  # CT_small's PatientID is 1CT1
    seen: list[dict] = []
    with StorageSCP(store, port=0, host="127.0.0.1", on_record=seen.append) as scp:
        result = dcmtools(
            "send",
            f"DCMTOOLS@127.0.0.1:{scp.port}",
            str(test_files_dir / "CT_small.dcm"),
            str(test_files_dir / "MR_small.dcm"),
            "--json",
        )
        scp.wait(count=2, timeout=10)
    assert result.returncode == 1, result.stdout + result.stderr
    sent = [r for r in records(result.stdout) if r["type"] == "file"]
    assert [r["ok"] for r in sent] == [False, True]
    assert sent[0]["status"] == "0xA700" and sent[0]["error"]["code"] == "dimse_failed"
    assert "Out of Resources" in sent[0]["error"]["message"]
    received = [r for r in seen if r["type"] == "instance"]
    assert [r["ok"] for r in received] == [False, True]
    assert received[0]["error"]["code"] == "write_failed" and "cannot write" in received[0]["error"]["message"]
    assert not list(store.glob(".incoming-*"))
    assert (store / "1CT1").read_text() == "not a folder"


def test_listen_keeps_nothing_of_an_instance_cut_off(tmp_path):
    """The sender's connection drops in the middle of a dataset: no file, no temporary file left."""
    import time

    from pynetdicom.presentation import build_context

    from dcmtools.net import NetOptions, StorageSCP, parse_peer, wire
    from dcmtools.net.assoc import associate

    store = tmp_path / "in"
    seen: list[dict] = []
    with StorageSCP(store, port=0, host="127.0.0.1", on_record=seen.append) as scp:
        assoc = associate(
            parse_peer(f"X@127.0.0.1:{scp.port}"),
            [build_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])],
            NetOptions(),
        )
        context_id = assoc.accepted_contexts[0].context_id
        buffers: list = []
        wire.pdata_iovecs(
            context_id, wire.store_rq(1, "1.2.840.10008.5.1.4.1.1.2", "1.2.3"), True, True, 16000, buffers
        )
        wire.pdata_iovecs(context_id, b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" * 100, False, False, 16000, buffers)
        sock = assoc.dul.socket.socket
        sock.sendall(b"".join(bytes(b) for b in buffers))
        deadline = time.monotonic() + 5
        while not list(store.glob(".incoming-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(store.glob(".incoming-*"))  # being written as it arrives
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        deadline = time.monotonic() + 5
        while list(store.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert list(store.iterdir()) == []
    assert [r["event"] for r in seen if r["type"] == "association"] == ["accepted", "aborted"]
    assert not [r for r in seen if r["type"] == "instance"]


def test_send_opens_a_new_association_past_128_contexts(tmp_path, test_files_dir):
    """70 SOP classes need 140 presentation contexts (own syntax + fallback each): two associations."""
    from pynetdicom.presentation import AllStoragePresentationContexts

    from dcmtools.net import StorageSCP

    classes = [cx.abstract_syntax for cx in AllStoragePresentationContexts][:70]
    folder = tmp_path / "src"
    folder.mkdir()
    for n, sop_class in enumerate(classes):
        ds = pydicom.dcmread(test_files_dir / "CT_small.dcm")
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"f{n:03d}.dcm", enforce_file_format=True)
    seen: list[dict] = []
    with StorageSCP(tmp_path / "in", port=0, host="127.0.0.1", on_record=seen.append) as scp:
        result = dcmtools("send", f"DCMTOOLS@127.0.0.1:{scp.port}", str(folder), "--json")
        scp.wait(count=len(classes), timeout=10)
    assert result.returncode == 0, result.stdout + result.stderr
    got = [r for r in records(result.stdout) if r["type"] == "file"]
    assert len(got) == 70 and all(r["ok"] for r in got)
    accepted = [r for r in seen if r["type"] == "association" and r["event"] == "accepted"]
    assert len(accepted) == 2 and all(a["proposed"] <= 128 for a in accepted)
    assert sum(a["proposed"] for a in accepted) == 140


def test_listen_stops_after_idle_timeout(tmp_path):
    port = free_port()
    result = dcmtools(
        "listen", "--port", str(port), "-d", str(tmp_path / "in"), "--idle-timeout", "0.5", "--json", timeout=30
    )
    assert result.returncode == 0, result.stderr
    got = records(result.stdout)
    assert [r["type"] for r in got] == ["listening", "summary"]
    assert got[0]["port"] == port and got[1]["instances"] == 0
