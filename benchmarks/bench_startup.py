"""Start-up of a network command: ``dcmtools echo`` whole-process time against a local DCMTK storescp,
beside DCMTK's echoscu in the same run (issue 15). Prints the floor (best) and the median of many runs,
and the import time of what echo loads (python -X importtime, top entries).

    python benchmarks/bench_startup.py [--repeat 40] [--before OLD_SRC]

``--before`` names another checkout's src/ (e.g. ``git archive REV src | tar -x -C /tmp/old``):
its echo is timed in the same run, interleaved, for a before/after under the same load.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import DCMTOOLS, ENV, require


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def once(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--before", help="another src/ folder to time in the same run")
    args = parser.parse_args()
    require("/usr/bin/storescp", "/usr/bin/echoscu")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        peer = subprocess.Popen(
            ["/usr/bin/storescp", "-aet", "RECV", "-od", folder, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        try:
            time.sleep(0.3)
            echo = [*DCMTOOLS, "echo", f"RECV@127.0.0.1:{port}", "--quiet"]
            echoscu = ["/usr/bin/echoscu", "-aec", "RECV", "127.0.0.1", str(port)]
            old_env = {**ENV, "PYTHONPATH": args.before} if args.before else None
            results: dict[str, list[float]] = {"dcmtools echo (whole process)": [], "echoscu (DCMTK)": []}
            if old_env:
                results["dcmtools echo, --before src"] = []
            for _ in range(args.repeat):  # interleaved: the same load for each
                results["dcmtools echo (whole process)"].append(once(echo, ENV))
                results["echoscu (DCMTK)"].append(once(echoscu, ENV))
                if old_env:
                    results["dcmtools echo, --before src"].append(once(echo, old_env))
        finally:
            peer.terminate()
            peer.wait()
    print(f"load average {os.getloadavg()[0]:.2f} (1 min), {args.repeat} runs each")
    for name, values in results.items():
        print(f"{name:<34} floor {min(values):.3f} s  median {statistics.median(values):.3f} s")
    dcm, ref = results["dcmtools echo (whole process)"], results["echoscu (DCMTK)"]
    print(f"ratio of floors x{min(dcm) / min(ref):.1f} (dcmtools / echoscu)")
    imports = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import dcmtools.cli; from dcmtools.net import echo"],
        capture_output=True,
        text=True,
        env=ENV,
    ).stderr.splitlines()
    rows = [line.split("|") for line in imports if line.startswith("import time:") and "cumulative" not in line]
    top = sorted(((int(r[1]), r[2].rstrip()) for r in rows), reverse=True)[:8]
    print("largest cumulative imports (us):", ", ".join(f"{name.strip()} {us}" for us, name in top))


if __name__ == "__main__":
    main()
