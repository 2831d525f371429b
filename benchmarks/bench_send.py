#!/usr/bin/env python3
"""send and listen vs DCMTK storescu/storescp (and pynetdicom's own), over loopback.

    python benchmarks/bench_send.py [--rounds 5] [--only send|listen] [--no-pynetdicom]

Data (built once under benchmarks/out/): 500 CT images 512x512 16-bit
(254 MB) and 1000 small images (pydicom's CT_small, 39 kB each, own UIDs).

send: one association each, to DCMTK storescp (TCP_NODELAY=1) that discards
(--ignore) and that writes (-od): DCMTK storescu vs `dcmtools send` (the whole
process, start-up included) vs a pynetdicom script sending the same files on
one association (the stock pynetdicom path, second reference).

listen: DCMTK storescu sends to DCMTK storescp vs to `dcmtools listen` vs to
pynetdicom's storescp app, each writing the files (and discarding, for
storescp --ignore vs `dcmtools listen` without --store-dir); the time is
storescu's.

Runs of the tools alternate, and the best of --rounds is kept for each, so
that a busy machine penalises them alike. Ratios are time(dcmtools) /
time(DCMTK): the targets are at most 1.5. For send, "of which the transfer"
is `dcmtools.net.send()` timed inside a Python process whose imports are done
(pynetdicom, pydicom and numpy take about 0.3 s to import; DCMTK starts in
about 10 ms).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DCMTOOLS, ENV, OUT, ct_series, require

PYNETDICOM_SEND = r"""
import socket, sys
from pathlib import Path
from pynetdicom import AE, evt
from pynetdicom.presentation import build_context
files = sorted(Path(sys.argv[2]).glob("*.dcm"))
def nodelay(event):
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
ae = AE(ae_title="PYNETDICOM")
cx = [build_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])]
assoc = ae.associate("127.0.0.1", int(sys.argv[1]), contexts=cx, ae_title="RECV", evt_handlers=[(evt.EVT_CONN_OPEN, nodelay)])
for f in files:
    status = assoc.send_c_store(f)
    assert status and status.Status == 0, status
assoc.release()
"""


IN_PROCESS_SEND = r"""
import sys, time
import pynetdicom  # noqa: F401  (start-up paid before the clock starts)
from dcmtools.net import NetOptions, parse_peer, send
from dcmtools.net import transport  # noqa: F401
start = time.perf_counter()
records = list(send(parse_peer(sys.argv[1]), [sys.argv[2]], NetOptions()))
elapsed = time.perf_counter() - start
assert all(r["ok"] for r in records) and records, records[:1]
print(elapsed)
"""


def in_process(peer: str, folder: Path) -> float:
    """Seconds ``dcmtools.net.send`` takes once Python and its imports are up."""
    result = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_SEND, peer, str(folder)], capture_output=True, text=True, env=ENV
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-400:])
    return float(result.stdout.strip())


def small_series(count: int = 1000) -> list[Path]:
    """``count`` copies of pydicom's CT_small, each with its own SOP Instance UID (cached)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder = OUT / f"small{count}"
    files = sorted(folder.glob("*.dcm"))
    if len(files) == count:
        return files
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / f"s{i:04d}.dcm", enforce_file_format=True)
    return sorted(folder.glob("*.dcm"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited ({proc.returncode}) before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not start")


class Receiver:
    """A receiver process on a free port, stopped by PID."""

    def __init__(self, cmd_for_port, out: Path | None) -> None:
        self.port = free_port()
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
        self.proc = subprocess.Popen(
            cmd_for_port(self.port),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port, self.proc)
        time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed ({result.returncode}): {result.stderr.decode()[-400:]}")
    return elapsed


def line(name: str, files: int, megabytes: float, seconds: float, reference: float | None = None) -> str:
    text = f"  {name:<44} {seconds:7.3f} s {files / seconds:8.0f} files/s {megabytes / seconds:7.0f} MB/s"
    if reference is not None:
        text += f"   time x{seconds / reference:.2f} of DCMTK's"
    return text


def storescu(port: int, folder: Path) -> list[str]:
    return ["storescu", "-aet", "BENCH", "-aec", "RECV", "127.0.0.1", str(port), "+sd", str(folder)]


def bench_send(
    name: str, folder: Path, count: int, megabytes: float, rounds: int, pynetdicom: bool, tmp: Path
) -> list[float]:
    ratios = []
    for mode, extra in (("discards", ["--ignore"]), ("writes", None)):
        out = tmp / "storescp"
        args = extra or ["-od", str(out)]
        receiver = Receiver(
            lambda port, args=args: ["storescp", "-aet", "RECV", *args, str(port)], out if extra is None else None
        )
        try:
            peer = f"RECV@127.0.0.1:{receiver.port}"
            best = {"dcmtk": float("inf"), "ours": float("inf"), "library": float("inf")}
            for _ in range(rounds):
                best["dcmtk"] = min(best["dcmtk"], run(storescu(receiver.port, folder)))
                best["ours"] = min(best["ours"], run([*DCMTOOLS, "send", peer, str(folder), "--json", "-q"]))
                best["library"] = min(best["library"], in_process(peer, folder))
            stock = None
            if pynetdicom:
                try:
                    stock = run([sys.executable, "-c", PYNETDICOM_SEND, str(receiver.port), str(folder)])
                except RuntimeError as exc:
                    print(f"  (pynetdicom reference failed: {str(exc).splitlines()[-1]})")
        finally:
            receiver.stop()
        print(f" send {name} to storescp that {mode}:")
        print(line("DCMTK storescu (reference)", count, megabytes, best["dcmtk"]))
        print(line("dcmtools send", count, megabytes, best["ours"], best["dcmtk"]))
        print(line("  of which the transfer (start-up excluded)", count, megabytes, best["library"], best["dcmtk"]))
        if stock is not None:
            print(line("pynetdicom, one association (1 run)", count, megabytes, stock, best["dcmtk"]))
        ratios.append(best["ours"] / best["dcmtk"])
    return ratios


def bench_listen(
    name: str, folder: Path, count: int, megabytes: float, rounds: int, pynetdicom: bool, tmp: Path
) -> list[float]:
    ratios = []
    out = tmp / "received"
    receivers = {
        "writes": {
            "dcmtk": lambda port: ["storescp", "-aet", "RECV", "-od", str(out), str(port)],
            "ours": lambda port: [
                *DCMTOOLS,
                "listen",
                "--port",
                str(port),
                "--aet",
                "RECV",
                "-d",
                str(out),
                "--json",
                "-q",
            ],
            "pynetdicom": lambda port: [
                sys.executable,
                "-m",
                "pynetdicom",
                "storescp",
                str(port),
                "-aet",
                "RECV",
                "-od",
                str(out),
            ],
        },
        "discards": {
            "dcmtk": lambda port: ["storescp", "-aet", "RECV", "--ignore", str(port)],
            "ours": lambda port: [*DCMTOOLS, "listen", "--port", str(port), "--aet", "RECV", "--json", "-q"],
            "pynetdicom": lambda port: [
                sys.executable,
                "-m",
                "pynetdicom",
                "storescp",
                str(port),
                "-aet",
                "RECV",
                "--ignore",
            ],
        },
    }
    for mode, cmds in receivers.items():
        best = {"dcmtk": float("inf"), "ours": float("inf"), "pynetdicom": float("inf")}
        kinds = ["dcmtk", "ours"] + (["pynetdicom"] if pynetdicom else [])
        for n in range(rounds):
            for kind in kinds:
                if kind == "pynetdicom" and n:
                    continue  # one run is enough to show the gap
                receiver = Receiver(cmds[kind], out if mode == "writes" else None)
                try:
                    best[kind] = min(best[kind], run(storescu(receiver.port, folder)))
                finally:
                    receiver.stop()
        print(f" storescu sends {name}; the receiver {mode}:")
        print(line("to DCMTK storescp (reference)", count, megabytes, best["dcmtk"]))
        print(line("to dcmtools listen", count, megabytes, best["ours"], best["dcmtk"]))
        if pynetdicom:
            print(line("to pynetdicom storescp (1 run)", count, megabytes, best["pynetdicom"], best["dcmtk"]))
        ratios.append(best["ours"] / best["dcmtk"])
    shutil.rmtree(out, ignore_errors=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("send", "listen"))
    parser.add_argument("--no-pynetdicom", action="store_true", help="skip the (slow) pynetdicom references")
    args = parser.parse_args()
    require("storescu", "storescp")
    sets = []
    ct = ct_series(500)
    sets.append(("500 CT 512x512", ct[0].parent, len(ct), sum(p.stat().st_size for p in ct) / 1e6))
    small = small_series(1000)
    sets.append(("1000 CT_small", small[0].parent, len(small), sum(p.stat().st_size for p in small) / 1e6))
    with open("/proc/loadavg") as stream:
        load = stream.read().split()[:3]
    print(
        f"loopback, TCP_NODELAY=1, {len(__import__('os').sched_getaffinity(0))} cores, load {' '.join(load)}; "
        f"best of {args.rounds} alternating runs\n"
    )
    summary = []
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp:
        for name, folder, count, megabytes in sets:
            print(f"{name} ({megabytes:.0f} MB)")
            if args.only in (None, "send"):
                r = bench_send(name, folder, count, megabytes, args.rounds, not args.no_pynetdicom, Path(tmp))
                summary.append(f"send {name}: x{r[0]:.2f} (storescp discards), x{r[1]:.2f} (writes)")
            if args.only in (None, "listen"):
                r = bench_listen(name, folder, count, megabytes, args.rounds, not args.no_pynetdicom, Path(tmp))
                summary.append(f"listen {name}: x{r[1]:.2f} (discards), x{r[0]:.2f} (writes)")
            print()
    print("Time of dcmtools / time of DCMTK (target <= 1.5):")
    for text in summary:
        print("  " + text)


if __name__ == "__main__":
    main()
