#!/usr/bin/env python3
"""find, move and move --get vs DCMTK findscu, movescu and getscu; and listen as a Q/R SCP vs dcmqrscp.

    python benchmarks/bench_qr.py [--rounds 3] [--count 500]

Data (built once under benchmarks/out/): 500 CT images 512x512 16-bit
(254 MB) in one study, stored by DCMTK storescu into DCMTK dcmqrscp (fork
mode) and into `dcmtools listen`.

SCU side, against dcmqrscp (the same server for both tools):
  find   an IMAGE-level query returning every instance (SOPInstanceUID):
         findscu vs `dcmtools find`
  move   the study moved to the tool itself (dcmqrscp sends, the tool
         receives and writes): movescu +P vs `dcmtools move --port`
  get    the study by C-GET: getscu vs `dcmtools move --get` (which makes an
         IMAGE-level C-FIND first to learn the SOP classes)

SCP side, the same DCMTK client against dcmqrscp and against `dcmtools listen`:
  findscu (IMAGE level), movescu (to movescu's own storage SCP), getscu.

Each figure is the best of --rounds runs of the whole command (start-up
included: about 0.3 s of Python imports for dcmtools, 10 ms for DCMTK).
Ratios are time(dcmtools) / time(DCMTK).
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

from common import DCMTOOLS, ENV, ct_series, require


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process on a port, stopped by PID."""

    def __init__(self, cmd: list[str], port: int, log: Path) -> None:
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=ENV, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited ({self.proc.returncode}); see {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{cmd[0]} did not start")

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def run(cmd: list[str], stdin: bytes | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd[:8]))} failed ({result.returncode}): {result.stderr.decode()[-600:]}"
        )
    return elapsed


def best(cmd_or_fn, rounds: int, before=None) -> float:
    times = []
    for _ in range(rounds):
        if before:
            before()
        times.append(cmd_or_fn() if callable(cmd_or_fn) else run(cmd_or_fn))
    return min(times)


def line(name: str, count: int, megabytes: float | None, seconds: float, reference: float | None = None) -> str:
    text = f"  {name:<46} {seconds:7.3f} s {count / seconds:8.0f} /s"
    if megabytes is not None:
        text += f" {megabytes / seconds:7.0f} MB/s"
    if reference is not None:
        text += f"   time x{seconds / reference:.2f} of DCMTK's"
    return text


IN_PROCESS_FIND = r"""
import sys, time
import pynetdicom  # noqa: F401  (imports paid before the clock starts)
from dcmtools.net import NetOptions, parse_peer
from dcmtools.net.query import Finder, find_identifier
from dcmtools.net import responses, transport  # noqa: F401
identifier = find_identifier("IMAGE", [f"StudyInstanceUID={sys.argv[2]}", "SeriesInstanceUID", "SOPInstanceUID"],
                             defaults=False)
start = time.perf_counter()
found = list(Finder(parse_peer(sys.argv[1]), identifier, NetOptions(), "IMAGE", "study").run())
print(time.perf_counter() - start)
assert len(found) > 1
"""


def in_process(peer: str, study: str) -> float:
    """Seconds a find takes once Python and its imports are up (DCMTK starts in about 10 ms)."""
    result = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_FIND, peer, study], capture_output=True, text=True, env=ENV
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-400:])
    return float(result.stdout.strip())


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    require("dcmqrscp", "storescu", "findscu", "movescu", "getscu")
    files = ct_series(args.count)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    import pydicom

    study = pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    print(f"{args.count} CT images 512x512 16-bit ({megabytes:.0f} MB) in one study; best of {args.rounds}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-qr-"))
    servers: list[Server] = []
    try:
        qr_port, my_port, mover_port, listen_port = free_port(), free_port(), free_port(), free_port()
        db = tmp / "db"
        (db / "QRSCP").mkdir(parents=True)
        config = tmp / "dcmqrscp.cfg"
        config.write_text(f"""NetworkTCPPort = {qr_port}
MaxPDUSize = 131072
MaxAssociations = 16
HostTable BEGIN
me = (DCMTOOLS, 127.0.0.1, {my_port})
mover = (MOVESCU, 127.0.0.1, {mover_port})
HostTable END
AETable BEGIN
QRSCP {db / "QRSCP"} RW (2000, 4096mb) ANY
AETable END
""")
        servers.append(Server(["dcmqrscp", "-c", str(config)], qr_port, tmp / "dcmqrscp.log"))
        peers = tmp / "peers.toml"
        # listen serves queries only to the callers its peers file names (DCMTK's clients' default AE titles)
        peers.write_text(
            f'[mover]\naet = "MOVESCU"\nhost = "127.0.0.1"\nport = {mover_port}\n'
            '[findscu]\naet = "FINDSCU"\nhost = "127.0.0.1"\nport = 104\n'
            '[getscu]\naet = "GETSCU"\nhost = "127.0.0.1"\nport = 104\n'
        )
        store = tmp / "listen-store"
        servers.append(
            Server(
                [
                    *DCMTOOLS,
                    "listen",
                    "--port",
                    str(listen_port),
                    "--aet",
                    "LISTEN",
                    "-d",
                    str(store),
                    "--peers",
                    str(peers),
                    "--json",
                    "-q",
                ],
                listen_port,
                tmp / "listen.jsonl",
            )
        )
        folder = str(files[0].parent)
        run(["storescu", "-aec", "QRSCP", "+sd", "127.0.0.1", str(qr_port), folder])
        run(["storescu", "-aec", "LISTEN", "+sd", "127.0.0.1", str(listen_port), folder])

        out = tmp / "out"

        def clean() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()

        n, rounds = args.count, args.rounds
        print("\nSCU side, against DCMTK dcmqrscp:")
        image_keys = [
            "-k",
            "QueryRetrieveLevel=IMAGE",
            "-k",
            f"StudyInstanceUID={study}",
            "-k",
            "SeriesInstanceUID",
            "-k",
            "SOPInstanceUID",
        ]
        t_ref = best(["findscu", "-S", "-aec", "QRSCP", *image_keys, "127.0.0.1", str(qr_port)], rounds)
        t_ours = best(
            [
                *DCMTOOLS,
                "find",
                f"QRSCP@127.0.0.1:{qr_port}",
                "--level",
                "image",
                "--no-defaults",
                "-k",
                f"StudyInstanceUID={study}",
                "-k",
                "SeriesInstanceUID",
                "-k",
                "SOPInstanceUID",
                "--json",
            ],
            rounds,
        )
        t_lib = min(in_process(f"QRSCP@127.0.0.1:{qr_port}", study) for _ in range(rounds))
        print(line("findscu, IMAGE level (matches)", n, None, t_ref))
        print(line("dcmtools find, IMAGE level (matches)", n, None, t_ours, t_ref))
        print(line("  of which the query (start-up excluded)", n, None, t_lib, t_ref))
        ratios = {"find": t_ours / t_ref}

        study_keys = ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
        t_ref = best(
            [
                "movescu",
                "-S",
                "-aet",
                "MOVESCU",
                "-aec",
                "QRSCP",
                "-aem",
                "MOVESCU",
                "+P",
                str(mover_port),
                "-od",
                str(out),
                *study_keys,
                "127.0.0.1",
                str(qr_port),
            ],
            rounds,
            clean,
        )
        assert count_files(out) == n, count_files(out)
        t_ours = best(
            [
                *DCMTOOLS,
                "move",
                f"QRSCP@127.0.0.1:{qr_port}",
                "-k",
                f"StudyInstanceUID={study}",
                "--port",
                str(my_port),
                "-d",
                str(out),
                "--json",
                "-q",
            ],
            rounds,
            clean,
        )
        assert count_files(out) == n, count_files(out)
        print(line("movescu, the study to itself", n, megabytes, t_ref))
        print(line("dcmtools move, the study to itself", n, megabytes, t_ours, t_ref))
        ratios["move"] = t_ours / t_ref

        t_ref = best(
            ["getscu", "-S", "-aec", "QRSCP", "-od", str(out), *study_keys, "127.0.0.1", str(qr_port)], rounds, clean
        )
        assert count_files(out) == n, count_files(out)
        t_ours = best(
            [
                *DCMTOOLS,
                "move",
                f"QRSCP@127.0.0.1:{qr_port}",
                "--get",
                "-k",
                f"StudyInstanceUID={study}",
                "-d",
                str(out),
                "--json",
                "-q",
            ],
            rounds,
            clean,
        )
        assert count_files(out) == n, count_files(out)
        print(line("getscu, the study", n, megabytes, t_ref))
        print(line("dcmtools move --get, the study", n, megabytes, t_ours, t_ref))
        ratios["get"] = t_ours / t_ref

        print("\nSCP side, DCMTK clients against dcmqrscp (reference) and dcmtools listen:")
        for name, cmd in (
            (
                "findscu, IMAGE level",
                lambda port, aec: ["findscu", "-S", "-aec", aec, *image_keys, "127.0.0.1", str(port)],
            ),
            (
                "movescu to its own SCP",
                lambda port, aec: [
                    "movescu",
                    "-S",
                    "-aet",
                    "MOVESCU",
                    "-aec",
                    aec,
                    "-aem",
                    "MOVESCU",
                    "+P",
                    str(mover_port),
                    "-od",
                    str(out),
                    *study_keys,
                    "127.0.0.1",
                    str(port),
                ],
            ),
            (
                "getscu",
                lambda port, aec: ["getscu", "-S", "-aec", aec, "-od", str(out), *study_keys, "127.0.0.1", str(port)],
            ),
        ):
            t_ref = best(cmd(qr_port, "QRSCP"), rounds, clean)
            t_ours = best(cmd(listen_port, "LISTEN"), rounds, clean)
            if not name.startswith("find"):
                assert count_files(out) == n, (name, count_files(out))
            size = None if name.startswith("find") else megabytes
            print(line(f"{name}: dcmqrscp", n, size, t_ref))
            print(line(f"{name}: dcmtools listen", n, size, t_ours, t_ref))
            ratios[f"listen {name.split(',')[0].split(' ')[0]}"] = t_ours / t_ref
        print("\nratios (time dcmtools / time DCMTK): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
