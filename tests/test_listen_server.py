"""`dcmtools listen` as a server on a shared network, attacked from test code on 127.0.0.1 while real
DCMTK tools (storescu, findscu, getscu, echoscu) use it: bounded memory, access control, slots and
deadlines, crash consistency of its index, names inside the store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from commitpeers import instances
from peers import PEER_ENV, dcmtools, dcmtools_env, free_port, listen, require
from tlspeers import self_signed

pytestmark = pytest.mark.peer


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _wait_records(log: Path, predicate, count: int = 1, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in _records(log) if predicate(r)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _storescu(port: int, files: list[Path], aet: str = "STORESCU", *extra: str) -> subprocess.CompletedProcess:
    require("storescu")
    return subprocess.run(
        ["/usr/bin/storescu", *extra, "-aet", aet, "-aec", "LISTEN", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True,
        text=True,
        env=PEER_ENV,
        timeout=300,
    )


def _findscu_images(port: int, aet: str, study: str, series: str, out: Path) -> subprocess.CompletedProcess:
    require("findscu")
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            "/usr/bin/findscu",
            "-S",
            "-aet",
            aet,
            "-aec",
            "LISTEN",
            "-X",
            "-od",
            str(out),
            "-k",
            "QueryRetrieveLevel=IMAGE",
            "-k",
            f"StudyInstanceUID={study}",
            "-k",
            f"SeriesInstanceUID={series}",
            "-k",
            "SOPInstanceUID",
            "127.0.0.1",
            str(port),
        ],
        capture_output=True,
        text=True,
        env=PEER_ENV,
        timeout=300,
    )


def _found_uids(out: Path) -> set[str]:
    import pydicom

    return {str(pydicom.dcmread(p).SOPInstanceUID) for p in out.glob("rsp*.dcm")}


def _ids(path: Path) -> tuple[str, str, str]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak resident set size
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _peers_file(path: Path, aet: str = "FRIEND") -> Path:
    path.write_text(f'[friend]\naet = "{aet}"\nhost = "127.0.0.1"\nport = 1\n')
    return path


def _associate_raw(port: int, aet: str = "ATTACKER") -> tuple[object, socket.socket]:
    """A real association (pynetdicom requestor) whose socket the test then abuses."""
    from pynetdicom import AE

    ae = AE(ae_title=aet)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="LISTEN")
    assert assoc.is_established
    return assoc, assoc.dul.socket.socket


# ------------------------------------------------------------------ memory
def test_pdu_length_attack_ten_connections_bounded_rss_and_storescu_still_served(tmp_path):
    port = free_port()
    store, log = tmp_path / "store", tmp_path / "listen.jsonl"
    files = instances(tmp_path / "src", 20)
    huge = 0x38000000
    with listen(tmp_path, store=store, port=port, log=log, allow_any=False) as server:
        attackers: list[socket.socket] = []
        assocs = []
        for n in range(10):
            if n % 2 == 0:  # before any association: an A-ASSOCIATE-RQ "of" 896 MiB
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(struct.pack(">BBL", 1, 0, huge) + b"\0" * 1000)
            else:  # inside an association: a P-DATA-TF "of" 896 MiB
                assoc, sock = _associate_raw(port)
                assocs.append(assoc)
                sock.sendall(struct.pack(">BBL", 4, 0, huge) + b"\0" * 1000)
            attackers.append(sock)
        result = _storescu(port, files)
        assert result.returncode == 0, result.stderr
        dropped = _wait_records(
            log, lambda r: r.get("type") == "connection" and r["error"]["code"] == "pdu_too_long", 10
        )
        peak = _peak_rss_mb(server.process.pid)
        for sock in attackers[::2]:
            sock.settimeout(10)
            assert sock.recv(100) == b""  # closed on them, nothing read for the announced length
        for assoc in assocs:
            assoc.abort()
    print(f"listen peak RSS {peak:.1f} MB")
    assert peak < 200, f"listen peak RSS was {peak:.0f} MB"
    assert len(dropped) == 10, dropped
    assert all("we accept at most" in r["error"]["message"] for r in dropped)
    stored = [r for r in _records(log) if r.get("type") == "instance" and r["ok"]]
    assert len(stored) == len(files)


# ------------------------------------------------------------------ access control
def test_default_access_stranger_refused_query_and_retrieve_peers_file_caller_served(tmp_path):
    require("findscu", "getscu", "echoscu")
    port = free_port()
    store, log = tmp_path / "store", tmp_path / "listen.jsonl"
    files = instances(tmp_path / "src", 3)
    study, series, _ = _ids(files[0])
    peers = _peers_file(tmp_path / "peers.toml")
    with listen(tmp_path, "--peers", str(peers), store=store, port=port, log=log, allow_any=False):
        # C-ECHO and C-STORE stay open to anyone (the troubleshooting use).
        echo = subprocess.run(
            ["/usr/bin/echoscu", "-aet", "STRANGER", "-aec", "LISTEN", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            env=PEER_ENV,
            timeout=60,
        )
        assert echo.returncode == 0, echo.stderr
        assert _storescu(port, files, "STRANGER").returncode == 0
        find = _findscu_images(port, "STRANGER", study, series, tmp_path / "stranger")
        (tmp_path / "got").mkdir()
        get = subprocess.run(
            [
                "/usr/bin/getscu",
                "-S",
                "-aet",
                "STRANGER",
                "-aec",
                "LISTEN",
                "-od",
                str(tmp_path / "got"),
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={study}",
                "127.0.0.1",
                str(port),
            ],
            capture_output=True,
            text=True,
            env=PEER_ENV,
            timeout=60,
        )
        friend = _findscu_images(port, "FRIEND", study, series, tmp_path / "friend")
        refusals = _wait_records(log, lambda r: r.get("type") == "association" and r.get("event") == "rejected", 1)
    assert find.returncode != 0 and not list((tmp_path / "stranger").glob("rsp*.dcm"))
    assert (
        "Calling AE Title Not Recognized" in find.stderr + find.stdout
        or "rejected" in (find.stderr + find.stdout).lower()
    )
    # getscu also proposes storage contexts (for its SCP role): associated, but its C-GET contexts refused.
    assert not list((tmp_path / "got").glob("*"))
    assert get.returncode != 0, get.stderr
    get_assoc = [
        r
        for r in _records(log)
        if r.get("type") == "association"
        and r.get("event") == "accepted"
        and any(cx["sop_class_uid"] == "1.2.840.10008.5.1.4.1.2.2.3" for cx in r["rejected"])
    ]
    assert get_assoc and get_assoc[0]["calling_aet"] == "STRANGER"
    assert {
        cx["result"] for cx in get_assoc[0]["rejected"] if cx["sop_class_uid"] == "1.2.840.10008.5.1.4.1.2.2.3"
    } == {"user rejection"}
    assert not [r for r in _records(log) if r.get("type") == "get"]  # nothing was served
    assert friend.returncode == 0, friend.stderr
    assert _found_uids(tmp_path / "friend") == {_ids(f)[2] for f in files}
    assert len(refusals) == 1 and all(
        r["calling_aet"] == "STRANGER" and r["error"]["code"] == "caller_refused" for r in refusals
    )
    listening = next(r for r in _records(log) if r.get("type") == "listening")
    assert "peers file" in listening["access"]


def test_allow_and_allow_any(tmp_path):
    require("findscu", "echoscu")
    files = instances(tmp_path / "src", 2)
    study, series, _ = _ids(files[0])
    # --allow: only that caller may associate at all (even C-ECHO and C-STORE), to every service.
    port = free_port()
    log = tmp_path / "allow.jsonl"
    # The --help example: --bind 127.0.0.1 --allow WORKSTATION@127.0.0.1
    with listen(
        tmp_path,
        "--bind",
        "127.0.0.1",
        "--allow",
        "WORKSTATION@127.0.0.1",
        store=tmp_path / "a",
        port=port,
        log=log,
        allow_any=False,
    ):
        stranger_store = _storescu(port, files, "STRANGER")
        stranger_echo = subprocess.run(
            ["/usr/bin/echoscu", "-aet", "STRANGER", "-aec", "LISTEN", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            env=PEER_ENV,
            timeout=60,
        )
        assert _storescu(port, files, "WORKSTATION").returncode == 0
        allowed = _findscu_images(port, "WORKSTATION", study, series, tmp_path / "allowed")
        _wait_records(log, lambda r: r.get("event") == "rejected", 2)
    assert stranger_store.returncode != 0 and stranger_echo.returncode != 0
    assert allowed.returncode == 0 and len(_found_uids(tmp_path / "allowed")) == 2
    assert not [r for r in _records(log) if r.get("type") == "instance" and r.get("calling_aet") == "STRANGER"]
    # --allow-any: a stranger queries too, and listen warns when it starts.
    port = free_port()
    log = tmp_path / "any.jsonl"
    with listen(tmp_path, "--allow-any", store=tmp_path / "b", port=port, log=log, allow_any=False):
        assert _storescu(port, files, "STRANGER").returncode == 0
        anyone = _findscu_images(port, "STRANGER", study, series, tmp_path / "anyone")
    assert anyone.returncode == 0 and len(_found_uids(tmp_path / "anyone")) == 2
    assert "--allow-any" in log.read_text()  # the warning on stderr (the log has both streams)


def test_allow_and_allow_any_together_is_a_usage_error(tmp_path):
    result = dcmtools("listen", "--port", str(free_port()), "--allow", "X", "--allow-any")
    assert result.returncode == 2


# ------------------------------------------------------------------ slots and deadlines
def test_idle_and_trickling_connections_do_not_block_a_real_storescu(tmp_path):
    port = free_port()
    store, log = tmp_path / "store", tmp_path / "listen.jsonl"
    files = instances(tmp_path / "src", 5)
    assoc_timeout = 2
    stop = threading.Event()
    with listen(tmp_path, "--assoc-timeout", str(assoc_timeout), store=store, port=port, log=log, allow_any=False):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]
        trickle = [socket.create_connection(("127.0.0.1", port)) for _ in range(30)]

        def drip() -> None:  # one byte of an A-ASSOCIATE-RQ every 0.5 s on each
            request = struct.pack(">BBL", 1, 0, 200) + b"\0" * 200
            for byte in range(len(request)):
                for sock in trickle:
                    try:
                        sock.sendall(request[byte : byte + 1])
                    except OSError:
                        pass
                if stop.wait(0.5):
                    return

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        try:
            # storescu gives up itself (-to/-ta) unless served within --assoc-timeout + 1 s.
            result = _storescu(port, files, "STORESCU", "-to", str(assoc_timeout + 1), "-ta", str(assoc_timeout + 1))
            assert result.returncode == 0, result.stderr
            dropped = _wait_records(
                log,
                lambda r: r.get("type") == "connection" and r["error"]["code"] == "assoc_timeout",
                60,
                timeout=assoc_timeout + 20,
            )
            for sock in idle + trickle:
                sock.settimeout(5)
                try:
                    assert sock.recv(10) == b""
                except ConnectionResetError:
                    pass
        finally:
            stop.set()
            for sock in idle + trickle:
                sock.close()
    assert len(dropped) == 60
    assert len([r for r in _records(log) if r.get("type") == "instance" and r["ok"]]) == len(files)


def test_pdu_timeout_drops_an_association_that_trickles(tmp_path):
    port = free_port()
    log = tmp_path / "listen.jsonl"
    with listen(tmp_path, "--pdu-timeout", "1.5", store=tmp_path / "store", port=port, log=log, allow_any=False):
        assoc, sock = _associate_raw(port, "TRICKLER")
        try:
            for byte in struct.pack(">BBL", 4, 0, 100) + b"\0" * 20:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break  # listen aborted the association, pynetdicom closed its socket
                time.sleep(0.4)
            dropped = _wait_records(log, lambda r: r.get("type") == "connection", 1, timeout=10)
        finally:
            assoc.abort()
    assert dropped and dropped[0]["error"]["code"] == "pdu_timeout" and dropped[0]["calling_aet"] == "TRICKLER"
    assert any(r.get("type") == "association" and r.get("event") == "aborted" for r in _records(log))


def test_max_associations_and_waiting_connections_are_bounded(tmp_path):
    require("echoscu")
    port = free_port()
    log = tmp_path / "listen.jsonl"

    def echoscu() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["/usr/bin/echoscu", "-aet", "TECH", "-aec", "LISTEN", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            env=PEER_ENV,
            timeout=60,
        )

    with listen(
        tmp_path,
        "--max-associations",
        "2",
        "--assoc-timeout",
        "20",
        store=tmp_path / "store",
        port=port,
        log=log,
        allow_any=False,
    ):
        held = [_associate_raw(port, f"HOLDER{n}")[0] for n in range(2)]
        busy = echoscu()  # a third association: rejected, local limit exceeded
        held.pop().release()
        time.sleep(0.5)
        served = echoscu()
        # Connections that never associate: at most max(64, 4 x 2) may wait; the others are refused at once.
        waiting = [socket.create_connection(("127.0.0.1", port)) for _ in range(70)]
        refused = _wait_records(
            log, lambda r: r.get("type") == "connection" and r.get("event") == "refused", 6, timeout=20
        )
        for sock in waiting:
            sock.close()
        for assoc in held:
            assoc.release()
    assert busy.returncode != 0
    assert served.returncode == 0, served.stderr
    rejected = [r for r in _records(log) if r.get("type") == "association" and r.get("event") == "rejected"]
    assert [r["error"]["code"] for r in rejected] == ["too_many_associations"]
    assert len(refused) >= 6 and all(r["error"]["code"] == "too_many_connections" for r in refused)


def test_twenty_concurrent_storescu_all_stored_acknowledged_queryable(tmp_path):
    port = free_port()
    store, log = tmp_path / "store", tmp_path / "listen.jsonl"
    batches = [instances(tmp_path / f"src{n}", 50) for n in range(20)]
    peers = _peers_file(tmp_path / "peers.toml")
    with listen(tmp_path, "--peers", str(peers), store=store, port=port, log=log, allow_any=False):
        procs = [
            subprocess.Popen(
                ["/usr/bin/storescu", "-aet", f"SENDER{n}", "-aec", "LISTEN", "127.0.0.1", str(port), *map(str, files)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=PEER_ENV,
            )
            for n, files in enumerate(batches)
        ]
        outputs = [(p.wait(timeout=600), p.stdout.read().decode()) for p in procs]
        study, series, _ = _ids(batches[0][0])
        found = _findscu_images(port, "FRIEND", study, series, tmp_path / "found")
    assert all(code == 0 for code, _ in outputs), [out for code, out in outputs if code]
    sent = {_ids(f)[2] for files in batches for f in files}
    assert len(sent) == 1000
    stored = [r for r in _records(log) if r.get("type") == "instance" and r["ok"]]
    assert {r["sop_instance_uid"] for r in stored} == sent
    assert found.returncode == 0, found.stderr
    assert _found_uids(tmp_path / "found") == sent


# ------------------------------------------------------------------ crash consistency
def test_kill_9_right_after_a_batch_then_restart_finds_and_commits_every_acknowledged_instance(tmp_path):
    port = free_port()
    store, log = tmp_path / "store", tmp_path / "listen.jsonl"
    files = instances(tmp_path / "src", 60)
    study, series, _ = _ids(files[0])
    peers = _peers_file(tmp_path / "peers.toml", aet="DCMTOOLS")
    with listen(tmp_path, "--peers", str(peers), store=store, port=port, log=log, allow_any=False) as server:
        result = _storescu(port, files)
        os.kill(
            server.process.pid, signal.SIGKILL
        )  # right after the last C-STORE answer: the index had no quiet moment
        server.process.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    acknowledged = {r["sop_instance_uid"] for r in _records(log) if r.get("type") == "instance" and r["ok"]}
    assert acknowledged == {_ids(f)[2] for f in files}
    # What a kill in the middle of an instance leaves: the .part of a process that is gone.
    leftover = store / ".incoming-999999999-1.part"
    leftover.write_bytes(b"half an instance")
    port = free_port()
    log2 = tmp_path / "listen2.jsonl"
    with listen(tmp_path, "--peers", str(peers), store=store, port=port, log=log2, allow_any=False):
        found = _findscu_images(port, "DCMTOOLS", study, series, tmp_path / "found")
        commit = dcmtools(
            "commit",
            f"LISTEN@127.0.0.1:{port}",
            *map(str, files),
            "--wait",
            "30",
            "--json",
            "--port",
            str(free_port()),
            env={**dcmtools_env(), "DCMTOOLS_PEERS": str(peers)},
        )
    assert found.returncode == 0, found.stderr
    assert _found_uids(tmp_path / "found") == acknowledged
    committed = [json.loads(line) for line in commit.stdout.splitlines() if line.startswith("{")]
    assert commit.returncode == 0, commit.stdout + commit.stderr
    states = [r for r in committed if r.get("state")]
    assert len(states) == len(files) and all(r["state"] == "committed" and r["ok"] for r in states), states[:3]
    assert not list(store.rglob("*.part"))
    restarted = _records(log2)
    assert next(r for r in restarted if r.get("type") == "listening")["removed_part_files"] == 1
    assert next(r for r in restarted if r.get("type") == "index")["journaled"] == len(
        files
    )  # not indexed before the kill
    assert not (store / ".dcmtools-index.pending").read_bytes()  # caught up, emptied


# ------------------------------------------------------------------ names, reindex, TLS (library level)
def test_names_inside_the_store_never_start_with_a_dot():
    from dcmtools.net.scp import stored_path

    path = stored_path("/s", ".dcmtools-index.sqlite", ".hidden", "..", ".")
    parts = Path(path).relative_to("/s").parts
    assert parts == ("_dcmtools-index.sqlite", "_hidden", "_.", "_.dcm")
    assert not any(p.startswith(".") for p in parts)


def test_stored_instance_with_dot_uid_and_index_named_patient(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    from dcmtools.net import StorageSCP
    from dcmtools.net.index import StoreIndex
    from dcmtools.net.qrscp import QueryRetrieveSCP

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = ".dcmtools-index.sqlite"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = ".hidden"
    source = tmp_path / "odd.dcm"
    ds.save_as(source, enforce_file_format=True)
    store = tmp_path / "store"
    seen = []
    index = StoreIndex(store)
    qr = QueryRetrieveSCP(index, aet="DCMTOOLS", on_record=seen.append)
    with StorageSCP(
        store,
        port=0,
        host="127.0.0.1",
        on_record=seen.append,
        on_stored=qr.stored,
        contexts=qr.contexts(),
        evt_handlers=qr.handlers(),
    ) as scp:
        result = _storescu(scp.port, [source])
        assert result.returncode == 0, result.stderr
        scp.wait(count=1, timeout=10)
    stored = [r for r in seen if r.get("type") == "instance"]
    assert stored and stored[0]["ok"], stored
    rel = Path(stored[0]["path"]).relative_to(store)
    assert rel.parts[0] == "_dcmtools-index.sqlite" and rel.name == "_hidden.dcm"
    assert index.instance(".hidden") is not None
    index.close()


def test_reindex_gives_the_same_index_as_the_live_one_and_skips_listen_files(tmp_path):
    import sqlite3

    from dcmtools.net.index import StoreIndex

    files = instances(tmp_path / "src", 5)
    store = tmp_path / "store"
    (store / "P").mkdir(parents=True)
    with StoreIndex(store) as index:
        for f in files:
            target = store / "P" / f.name
            shutil.copy(f, target)
            index.note_stored(str(target))
    (store / ".incoming-1-1.part").write_bytes(b"junk")

    def rows() -> list:
        conn = sqlite3.connect(store / ".dcmtools-index.sqlite")
        try:
            return [
                conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("patients", "studies", "series", "instances")
            ]
        finally:
            conn.close()

    live = rows()
    with StoreIndex(store, rebuild=True) as index:
        assert index.rebuilt == 5
    assert rows() == live


def test_pdu_limit_is_the_announced_max_pdu():
    from dcmtools.net.transport import MAX_ASSOCIATE_RQ, UNLIMITED_PDU_CAP, pdu_limit

    assert pdu_limit(4, 16384) == 16384
    assert pdu_limit(1, 16384) == MAX_ASSOCIATE_RQ
    assert pdu_limit(5, 16384) < 100 and pdu_limit(7, 0) < 100
    assert pdu_limit(4, 0) == UNLIMITED_PDU_CAP


def test_refused_tls_handshake_is_a_record(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = self_signed(tmp_path, "server", cn="127.0.0.1")
    port = free_port()
    log = tmp_path / "listen.jsonl"
    with listen(
        tmp_path,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        store=tmp_path / "in",
        port=port,
        log=log,
        allow_any=False,
    ):
        plain = socket.create_connection(("127.0.0.1", port))
        plain.sendall(struct.pack(">BBL", 1, 0, 68) + b"\0" * 68)  # DICOM in the clear to a TLS port
        refused = _wait_records(log, lambda r: r.get("type") == "connection" and r.get("event") == "tls_refused", 1)
        plain.close()
        echo = dcmtools("echo", f"LISTEN@127.0.0.1:{port}", "--tls-ca", str(cert), "--json")
    assert refused and refused[0]["error"]["code"] == "tls_failed" and "TLS" in refused[0]["error"]["message"]
    assert echo.returncode == 0, echo.stdout + echo.stderr  # and it still serves
