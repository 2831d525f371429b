"""What ``dcmtools echo`` imports before its first byte (issue 15: start-up).

Each check runs in a fresh interpreter; no timing is asserted (see benchmarks/bench_startup.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
        "from dcmtools.net.deferred import is_deferred\n"
        "before = is_deferred(ex)\n"
        "name = str(ex.ct.PatientName)\n"
        "print(before, is_deferred(ex), name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["True", "False", "CompressedSamples^CT1"]


def test_defer_has_no_effect_on_a_module_already_imported() -> None:
    import json as already

    from dcmtools.net.deferred import defer, is_deferred

    defer("json")
    import json as again

    assert again is already and not is_deferred(again)
