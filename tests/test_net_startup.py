"""What ``dcmtools echo`` imports before its first byte (issue 15: start-up).

Each check runs in a fresh interpreter; no timing is asserted (see benchmarks/bench_startup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from netpeers import storescp

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules_after(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    return dict.fromkeys(json.loads(out.splitlines()[-1]))


def test_echo_import_path_leaves_out_the_scps_and_the_sender() -> None:
    loaded = _modules_after("from dcmtools.net import echo, NetOptions, parse_peer")
    for name in ("dcmtools.net.commitment", "dcmtools.net.scp", "dcmtools.net.store", "dcmtools.net.qrscp"):
        assert name not in loaded, name
    assert "dcmtools.net.assoc" in loaded


HEAVY = ("numpy", "PIL.Image", "pylibjpeg", "libjpeg", "openjpeg", "jpeg_ls", "requests", "tqdm", "dcmtools.web")


def _run_cli_then_list_modules(*argv: str) -> tuple[str, list[str]]:
    """Run ``dcmtools ARGV`` in a fresh interpreter; its stdout, and the modules whose code ran."""
    code = (
        "import io, json, sys, contextlib\n"
        "from dcmtools.cli import main\n"
        f"sys.argv = ['dcmtools', *{list(argv)!r}]\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "from dcmtools.dicom.deferred import is_deferred\n"
        "print(json.dumps([out.getvalue(), sorted(m for m in sys.modules if not is_deferred(sys.modules[m]))]))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "TCP_NODELAY": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    stdout, loaded = json.loads(done.stdout.splitlines()[-1])
    return stdout, loaded


@pytest.mark.peer
def test_echo_and_send_to_storescp_load_no_pixel_machinery_nor_dicomweb(tmp_path, test_files_dir) -> None:
    """A whole ``dcmtools echo`` (and a ``send`` of an uncompressed file the peer accepts as it is) ends
    without numpy, the codec plugins, Pillow, requests or dcmtools.web having run (dicom/deferred.py)."""
    with storescp(tmp_path / "out") as peer:
        echoed, echo_loaded = _run_cli_then_list_modules("echo", peer, "--json")
        sent, send_loaded = _run_cli_then_list_modules("send", peer, str(test_files_dir / "CT_small.dcm"), "--json")
    assert '"ok":true' in echoed.replace(" ", "") and '"ok":true' in sent.replace(" ", ""), echoed + sent
    assert "pynetdicom" in echo_loaded and "pydicom" in echo_loaded
    assert [name for name in HEAVY if name in echo_loaded] == []
    assert [name for name in HEAVY if name in send_loaded] == []


def test_lazy_names_still_import() -> None:
    import dcmtools.net as net
    from dcmtools.net.scp import StorageSCP

    assert net.StorageSCP is StorageSCP
    assert callable(net.send) and callable(net.commit) and net.CommitmentSCP.__name__ == "CommitmentSCP"
    try:
        net.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_pydicom_examples_is_deferred_yet_usable() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = (
        "import dcmtools.net, pynetdicom, pydicom.examples as ex\n"
        "from dcmtools.dicom.deferred import is_deferred\n"
        "before = is_deferred(ex)\n"
        "name = str(ex.ct.PatientName)\n"
        "print(before, is_deferred(ex), name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["True", "False", "CompressedSamples^CT1"]


def test_defer_has_no_effect_on_a_module_already_imported() -> None:
    import json as already

    from dcmtools.dicom.deferred import defer, is_deferred

    defer("json")
    import json as again

    assert again is already and not is_deferred(again)


def test_version_registers_no_command() -> None:
    """``dcmtools --version`` prints and exits before any command runs: none is imported."""
    stdout, loaded = _run_cli_then_list_modules("--version")
    assert stdout.startswith("dcmtools ")
    from dcmtools.cli import COMMANDS

    assert [m for m in loaded if m.startswith("dcmtools.cli.") and m.rpartition(".")[2] in COMMANDS.values()] == []
    stdout, loaded = _run_cli_then_list_modules("--help", "--version")  # --help first: every command listed
    assert "echo" in stdout and "dcmtools.cli.echo" in loaded


def _collections_during_import(first: str) -> list:
    code = (
        "import gc, json\n"
        f"import {first}\n"
        "runs = []\n"
        "gc.callbacks.append(lambda phase, info: runs.append(phase))\n"
        "import pynetdicom\n"
        "during = len(runs)\n"
        "print(json.dumps([during, gc.isenabled(), gc.get_freeze_count()]))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_the_collector_rests_while_pydicom_and_pynetdicom_import() -> None:
    """dicom/deferred.py turns the cyclic GC off while pydicom and pynetdicom import, and on again after;
    a library user's objects are never frozen (only the command line asks for that)."""
    during, enabled, frozen = _collections_during_import("dcmtools")
    assert during <= 2 and enabled and frozen == 0  # at most one collection (start, stop): when it is on again
    during, enabled, frozen = _collections_during_import("sys")  # without dcmtools: pydicom's own import
    assert during > 20 and enabled and frozen == 0


def test_the_command_line_freezes_what_start_up_made() -> None:
    code = (
        "import gc, sys, io, contextlib\n"
        "from dcmtools.cli import main\n"
        "sys.argv = ['dcmtools', 'echo', 'NOBODY@127.0.0.1:1', '--json', '--timeout', '1']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10000)"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["True", "True"]
