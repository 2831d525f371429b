"""Helpers for tests that talk to real peers (DCMTK, Orthanc, GDCM, dicom3tools).

Peers are started on 127.0.0.1 with a free port and stopped by PID, even when
the test fails.  A missing peer fails the test in CI (``CI`` set) and skips it
on a developer machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

import pytest

REPO = Path(__file__).resolve().parent.parent

# DCMTK stalls on delayed ACKs without it (see shared/peers.md).
PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}


def require(*tools: str) -> None:
    """Fail (in CI) or skip (elsewhere) unless every tool is on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
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
    """Start ``cmd`` in its own process group, wait for ``port``, stop it after."""
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
        env=env or {**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=timeout,
        **kw,
    )
