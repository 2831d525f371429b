"""Start-up: whole-process time of short dcmtools commands beside the C++ tool doing the same, in one run
(issue 15).  Every command is run N times, interleaved (each round runs them all, so load spikes hit all
alike); printed: the median and the floor (best) wall time, the median CPU time (user + system, which a
loaded machine inflates less than wall time), and ratios of medians.

    python benchmarks/bench_startup.py [--repeat 20] [--before OLD_SRC]

* ``dcmtools echo`` vs DCMTK ``echoscu``, against the same DCMTK storescp on 127.0.0.1;
* ``dcmtools --version`` (the CLI alone) beside ``python -c pass`` (the interpreter alone);
* ``dcmtools dump --no-json ct.dcm`` vs ``dcmdump ct.dcm`` (one CT slice of samples/human-ct);
* what the floor is made of: ``python -c "import ..."`` of each layer ``dcmtools echo`` imports, in turn
  (typer, the CLI, pydicom, pynetdicom, dcmtools.net), and pydicom and pynetdicom imported eagerly.

``--before`` names another checkout's src/ (e.g. ``git archive REV src | tar -x -C /tmp/old``): its
dcmtools commands are timed in the same rounds, for a before/after under the same load.  The load average
is printed before and after.  Ends with the largest imports of ``dcmtools echo`` (python -X importtime).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import DCMTOOLS, REPO, require
from common import ENV as COMMON_ENV

# Bytecode caches as an installed dcmtools has them (pip compiles on install): with PYTHONDONTWRITEBYTECODE
# set (some shells and CI set it) every run would compile dcmtools' sources again, ~50 ms of each start.
# The warm-up round writes them.
ENV = {k: v for k, v in COMMON_ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}

CT = REPO / "samples" / "human-ct" / "1-abdomen" / "ct1.dcm"
# As the command line does (dicom/deferred.py: GC off while pydicom and pynetdicom import, then frozen).
_CLI = "import dcmtools.dicom.deferred as d; d.freeze_after_imports(); "
LAYERS = {
    "  import typer": "import typer",
    "  import the CLI (dcmtools.cli.common)": _CLI + "import dcmtools.cli.common",
    "  + pydicom (after dcmtools: deferred)": _CLI + "import dcmtools.cli.common, pydicom",
    "  + pynetdicom": _CLI + "import dcmtools.cli.common, pynetdicom",
    "  + dcmtools.net, cli.echo": _CLI + "import dcmtools.cli.echo, dcmtools.net, pynetdicom",
    "  pydicom alone, eager (as pydicom does)": "import pydicom",
    "  pynetdicom alone, eager": "import pynetdicom",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min), on {os.cpu_count()} cores"


def largest_imports(env: dict[str, str], port: int, count: int = 10) -> str:
    done = subprocess.run(
        [*DCMTOOLS[:1], "-X", "importtime", *DCMTOOLS[1:], "echo", f"RECV@127.0.0.1:{port}", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
    top = sorted(((int(r[1]), r[2].strip()) for r in rows if "cumulative" not in r[1]), reverse=True)[:count]
    return ", ".join(f"{name} {us / 1000:.0f}" for us, name in top)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--before", help="another src/ folder to time in the same rounds")
    args = parser.parse_args()
    require("/usr/bin/storescp", "/usr/bin/echoscu", "/usr/bin/dcmdump")
    port = free_port()
    old_env = {**ENV, "PYTHONPATH": args.before} if args.before else None
    echo = [*DCMTOOLS, "echo", f"RECV@127.0.0.1:{port}", "--quiet"]
    dump = [*DCMTOOLS, "dump", "--no-json", str(CT)]
    # name -> (command, environment, the reference it is compared with)
    commands: dict[str, tuple[list[str], dict[str, str], str | None]] = {
        "echoscu (DCMTK)": (["/usr/bin/echoscu", "-aec", "RECV", "127.0.0.1", str(port)], ENV, None),
        "dcmtools echo": (echo, ENV, "echoscu (DCMTK)"),
        "python -c pass": ([sys.executable, "-c", "pass"], ENV, None),
        "dcmtools --version": ([*DCMTOOLS, "--version"], ENV, "python -c pass"),
        "dcmdump ct.dcm (DCMTK)": (["/usr/bin/dcmdump", str(CT)], ENV, None),
        "dcmtools dump --no-json ct.dcm": (dump, ENV, "dcmdump ct.dcm (DCMTK)"),
    }
    # What the floor is made of: each line imports one more layer of what `dcmtools echo` imports.
    below = "python -c pass"
    for name, code in LAYERS.items():
        alone = "alone" in name
        commands[name] = ([sys.executable, "-c", code], ENV, "python -c pass" if alone else below)
        below = below if alone else name
    if old_env:
        for name in ("dcmtools echo", "dcmtools --version", "dcmtools dump --no-json ct.dcm"):
            command, _, _ = commands[name]
            commands[f"{name}, before"] = (command, old_env, name)
    print(f"load average before: {load()}; {args.repeat} runs of each, interleaved")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as folder:
        peer = subprocess.Popen(
            ["/usr/bin/storescp", "-aet", "RECV", "-od", folder, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
        )
        try:
            time.sleep(0.3)
            for command, env, _ in commands.values():  # warm-up: .pyc files, page cache
                once(command, env)
            for _ in range(args.repeat):
                for name, (command, env, _) in commands.items():
                    times[name].append(once(command, env))
            imports = largest_imports(ENV, port)
        finally:
            peer.terminate()
            peer.wait()
    print(f"load average after:  {load()}\n")
    print(f"{'':<46} {'median':>8} {'floor':>8} {'CPU':>8}   ratio of medians (wall, CPU)")
    median = {name: statistics.median(w for w, _ in values) for name, values in times.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in times.items()}
    for name, (_, _, reference) in commands.items():
        floor = min(w for w, _ in times[name])
        text = f"{name:<46} {median[name]:7.3f}s {floor:7.3f}s {cpu[name]:7.3f}s"
        if reference and name in LAYERS:  # a layer: what it adds to the one below
            added = (median[name] - median[reference]) * 1000, (cpu[name] - cpu[reference]) * 1000
            text += f"   +{added[0]:.0f} ms, +{added[1]:.0f} ms CPU over {reference.strip()}"
        elif reference:
            ratio_cpu = cpu[name] / cpu[reference] if cpu[reference] else float("inf")
            text += f"   x{median[name] / median[reference]:.2f}, x{ratio_cpu:.2f} vs {reference}"
        print(text)
    print(f"\nlargest cumulative imports of dcmtools echo (ms, -X importtime): {imports}")


if __name__ == "__main__":
    main()
