"""Helpers for tests that talk to real peers (DCMTK, Orthanc, GDCM, dicom3tools).

Peers are started on 127.0.0.1 with a free port and stopped by PID, even when
the test fails.  A missing peer fails the test in CI (``CI`` set) and skips it
on a developer machine.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# DCMTK stalls on delayed ACKs without it (see shared/peers.md).
# /usr/bin first: the venv's pynetdicom apps carry DCMTK's names (storescu, findscu ...); a peer launched
# or looked up by bare name must be DCMTK's (see shared/peers.md).
PEER_ENV = {**os.environ, "TCP_NODELAY": "1", "PATH": os.pathsep.join(["/usr/bin", os.environ.get("PATH", "")])}


def dcmtools_env() -> dict[str, str]:
    """The environment of dcmtools run from this checkout's source (the CLI, and listen as a peer), read when
    the process starts (a test may have changed os.environ)."""
    return {**os.environ, "PYTHONPATH": str(REPO / "src")}


# The test being set up or run (conftest.py sets it): starting a peer from a test without
# pytest.mark.peer fails that test, so ``-m "not peer"`` really runs without peers.
current_test: pytest.Item | None = None


def check_marked(what: str) -> None:
    """Fail the current test unless it carries pytest.mark.peer (it is about to use ``what``)."""
    if current_test is not None and current_test.get_closest_marker("peer") is None:
        pytest.fail(f"{current_test.nodeid} uses a real peer ({what}) without pytest.mark.peer", pytrace=False)


def require(*tools: str) -> None:
    """Fail (in CI) or skip (elsewhere) unless every tool is on PATH; the test must be marked peer."""
    check_marked(", ".join(tools))
    missing = [tool for tool in tools if shutil.which(tool, path=PEER_ENV["PATH"]) is None]
    if missing:
        message = f"peer tool(s) not installed: {', '.join(missing)} (./scripts/test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"peer exited with status {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Stop a peer by its PID (and its process group, for forking servers)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(
    cmd: Sequence[str],
    port: int | None = None,
    *,
    cwd: str | os.PathLike | None = None,
    log: str | os.PathLike | None = None,
    env: dict | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group, wait for ``port``, stop it after (a peer: marked tests only)."""
    check_marked(Path(cmd[0]).name if cmd[0] != sys.executable else " ".join(cmd[1:4]))
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env or PEER_ENV,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if port is not None:
            wait_for_port(port, proc)
        yield proc
    finally:
        stop(proc)
        if log:
            out.close()


def dcmtools(*args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 600, **kw):
    """Run the dcmtools CLI in a subprocess; returns CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "dcmtools", *args],
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env or dcmtools_env(),
        timeout=timeout,
        **kw,
    )


# ---------------------------------------------------------------- one records parser
def records(source: str | Path, *, log: bool = False) -> list[dict]:
    """The JSON records of a command's stdout (every non-blank line must be one), or with ``log`` of a
    log (a file or text) where only the lines starting with "{" are records."""
    text = source.read_text() if isinstance(source, Path) else source
    if log:
        return [json.loads(line) for line in (line.strip() for line in text.splitlines()) if line.startswith("{")]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------- DCMTK
def dcmtk(tool: str, *args: str, port: int, log: str | os.PathLike, cwd: str | os.PathLike | None = None):
    """Run a DCMTK server (storescp, dcmqrscp, wlmscpfs, dcmprscp...) listening on ``port``, by its absolute
    path (a venv's bin/ may shadow the name: see shared/peers.md), with TCP_NODELAY; a context manager."""
    require(tool)
    return running([f"/usr/bin/{tool}", *args], port, log=log, cwd=cwd)


@contextlib.contextmanager
def storescp(
    out_dir: Path, *args: str, aet: str = "STORESCP", log: Path | None = None, port: int | None = None
) -> Iterator[int]:
    """DCMTK storescp writing into ``out_dir`` (made), with options ``args``, on ``port`` (default: a free
    one); yields its port."""
    out_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with dcmtk(
        "storescp",
        "-aet",
        aet,
        "-od",
        str(out_dir),
        *args,
        str(port),
        port=port,
        log=log or out_dir.parent / f"storescp-{port}.log",
    ):
        yield port


# ---------------------------------------------------------------- Orthanc
@dataclass
class Orthanc:
    peer: str  # ORTHANC@127.0.0.1:PORT
    port: int
    http: int
    aet: str = "ORTHANC"
    process: subprocess.Popen | None = None
    config: Path | None = None  # its configuration file
    url: str | None = None  # the DICOMweb base URL, with dicomweb=True


def orthanc_modalities(entries: dict[str, tuple[str, int]], commitment: Sequence[str] = ()) -> dict[str, dict]:
    """Orthanc's DicomModalities for {name: (AET, port)} on 127.0.0.1; those named in ``commitment`` may ask
    for Storage Commitment (Orthanc reports to them on a new association)."""
    return {
        name: {
            "AET": aet,
            "Host": "127.0.0.1",
            "Port": port,
            **({"AllowStorageCommitment": True} if name in commitment else {}),
        }
        for name, (aet, port) in entries.items()
    }


@contextlib.contextmanager
def orthanc(
    tmp: Path,
    config: dict | None = None,
    *,
    files: Sequence[Path] = (),
    worklist: Path | None = None,
    wait: float = 30,
    dicomweb: bool = False,
    users: dict[str, str] | None = None,
    lua: str | None = None,
) -> Iterator[Orthanc]:
    """Orthanc on free DICOM and HTTP ports, storing under ``tmp``; ``config`` is merged into its configuration
    (DicomModalities, DicomCheckCalledAet...); ``worklist``: a folder served by its ModalityWorklists plugin;
    ``files`` are uploaded through its REST API before it is yielded.  ``dicomweb``: with its DICOMweb plugin
    (base URL in ``.url``); ``users`` ({user: password}): HTTP basic auth required; ``lua``: a Lua script
    (e.g. a ReceivedInstanceFilter that refuses some instances)."""
    require("Orthanc")
    port, http = free_port(), free_port()
    storage = tmp / f"orthanc-{port}"
    storage.mkdir(parents=True)
    settings: dict = {
        "Name": "test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomAet": "ORTHANC",
        "DicomPort": port,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomCheckModalityHost": False,
        "Plugins": [],
        "SaveJobs": False,
    }
    if worklist is not None:
        plugin = "/usr/share/orthanc/plugins/libModalityWorklists.so"
        if not os.path.exists(plugin):
            message = f"Orthanc's worklist plugin is missing ({plugin})"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        settings["Plugins"] = [plugin]
        settings["Worklists"] = {"Enable": True, "Database": str(worklist)}
    settings.update(config or {})
    if dicomweb:
        plugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
        if not os.path.exists(plugin):
            (pytest.fail if os.environ.get("CI") else pytest.skip)(f"Orthanc's DICOMweb plugin is missing ({plugin})")
        settings["Plugins"] = [*settings["Plugins"], plugin]
        settings["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    auth: dict[str, str] = {}
    if users:
        settings["AuthenticationEnabled"] = True
        settings["RegisteredUsers"] = users
        user, password = next(iter(users.items()))
        auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    if lua is not None:
        script = tmp / f"orthanc-{port}.lua"
        script.write_text(lua)
        settings["LuaScripts"] = [str(script)]
    path = tmp / f"orthanc-{port}.json"
    path.write_text(json.dumps(settings))
    with _orthanc_process(path, port, http, tmp / f"orthanc-{port}.log", auth, wait) as process:
        for file in files:
            request = urllib.request.Request(
                f"http://127.0.0.1:{http}/instances", data=Path(file).read_bytes(), method="POST", headers=auth
            )
            urllib.request.urlopen(request, timeout=30).read()
        url = f"http://127.0.0.1:{http}/dicom-web" if dicomweb else None
        yield Orthanc(f"{settings['DicomAet']}@127.0.0.1:{port}", port, http, settings["DicomAet"], process, path, url)


@contextlib.contextmanager
def _orthanc_process(
    config: Path, port: int, http: int, log: Path, auth: dict[str, str], wait: float
) -> Iterator[subprocess.Popen]:
    """Orthanc started on ``config``, once its DICOM port and its REST API answer."""
    with running(["Orthanc", str(config)], port, log=log) as process:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{http}/system", headers=auth)
                urllib.request.urlopen(request, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield process


@contextlib.contextmanager
def orthanc_again(config: Path, log: Path, wait: float = 30) -> Iterator[subprocess.Popen]:
    """The Orthanc of ``config`` (``Orthanc.config``; the test stopped or killed it) started again: the same
    ports, storage and index (a PACS that comes back)."""
    settings = json.loads(config.read_text())
    auth: dict[str, str] = {}
    if settings.get("AuthenticationEnabled") and settings.get("RegisteredUsers"):
        user, password = next(iter(settings["RegisteredUsers"].items()))
        auth = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    with _orthanc_process(config, settings["DicomPort"], settings["HttpPort"], log, auth, wait) as process:
        yield process


# ---------------------------------------------------------------- dcmtools listen
@dataclass
class Listen:
    peer: str  # AET@127.0.0.1:PORT
    port: int
    aet: str
    store: Path
    log: Path  # its stdout and stderr (the --json records are the lines starting with "{")
    process: subprocess.Popen


@contextlib.contextmanager
def listen(
    tmp: Path,
    *args: str,
    aet: str | None = "LISTEN",
    store: Path | None = None,
    port: int | None = None,
    log: Path | None = None,
    allow_any: bool = True,
    keep: bool = True,
) -> Iterator[Listen]:
    """``dcmtools listen --json`` on ``port`` (default: a free one) storing under ``store`` (default: a folder
    of ``tmp``), with options ``args``, its output in ``log`` (default: a file of ``tmp``); stopped by PID after
    the test (a test may stop it first: kill -9, or ``--count`` and ``.process.wait()``).

    ``aet`` None: listen's own default AE title (DCMTOOLS).  ``allow_any`` (unless ``args`` has an --allow
    option): any caller may query and retrieve, for tests whose requesters have several AE titles; False keeps
    listen's default access (the peers file's callers only), as test_listen_server tests it.  ``keep`` False:
    no --store-dir (a listen that keeps nothing and answers no query/retrieve)."""
    port = port or free_port()
    store = store or tmp / f"listen-{port}"
    log = log or tmp / f"listen-{port}.jsonl"
    cmd = [sys.executable, "-m", "dcmtools", "listen", "--port", str(port), "--json"]
    if keep:
        cmd += ["--store-dir", str(store)]
    if aet is not None:
        cmd += ["--aet", aet]
    cmd += args
    if allow_any and not any(arg.startswith("--allow") for arg in args):
        cmd.append("--allow-any")
    with running(cmd, port, log=log, env=dcmtools_env()) as process:
        yield Listen(f"{aet or 'DCMTOOLS'}@127.0.0.1:{port}", port, aet or "DCMTOOLS", store, log, process)
