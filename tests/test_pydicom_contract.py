"""What dcmtools.dicom.deferred relies on in pydicom, and that deferring changes nothing pydicom ends up with.

An upgrade of pydicom that moves plugin registration, renames a handler module or starts using
numpy at import fails here first, with the name in the message.  Each comparison runs two fresh
interpreters: one importing pydicom first (eager, as pydicom does it), one importing dcmtools first
(deferred).  No timing is asserted (benchmarks/bench_startup.py measures).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pydicom

from dcmtools.dicom import deferred

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
PYDICOM = Path(pydicom.__file__).parent


def _run(code: str, *, first: str) -> object:
    """The JSON printed by ``code`` in a fresh interpreter that imports ``first`` before anything else."""
    script = f"import {first}\n{code}"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _both(code: str) -> tuple[object, object]:
    return _run(code, first="pydicom"), _run(code, first="dcmtools")


# Every coder's plugins, in registration order (the order pydicom tries them), and the docstrings
# pydicom builds from them.
CODERS = """
import json
from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS
from pydicom.pixels.encoders.base import _PIXEL_DATA_ENCODERS
out = {}
for kind, table in (("decoder", _PIXEL_DATA_DECODERS), ("encoder", _PIXEL_DATA_ENCODERS)):
    for uid, (coder, _) in table.items():
        out[f"{kind} {uid}"] = [
            [[label, f"{func.__module__}.{func.__name__}"] for label, func in coder._available.items()],
            {label: list(deps) for label, deps in coder._unavailable.items()},
            coder.__doc__,
        ]
print(json.dumps(out))
"""


def test_pinned_range_is_the_installed_one() -> None:
    assert tuple(pydicom.__version_info__[:2]) == deferred.PYDICOM_SERIES, pydicom.__version__
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'"pydicom>=3\.0\.\d+,<3\.1"', pyproject), "pyproject.toml must pin pydicom to 3.0.x"


def test_the_names_deferred_py_uses_exist() -> None:
    from pydicom.pixels import common

    assert callable(common.CoderBase.add_plugin)
    assert list(_params(common.CoderBase.add_plugin)) == ["self", "label", "import_path"]
    import importlib

    for registry, build_docstrings in deferred.REGISTRIES.items():
        assert callable(getattr(importlib.import_module(registry), build_docstrings)), (registry, build_docstrings)
    for name in deferred.DEFERRED:
        if name.startswith("pydicom."):
            importlib.import_module(name)  # a module pydicom no longer has would be deferred in vain


def _params(func: object) -> list[str]:
    import inspect

    return list(inspect.signature(func).parameters)  # type: ignore[arg-type]


def test_coders_keep_their_plugins_in_dicts_set_in_init() -> None:
    """Every read of a coder's plugins goes through these two attributes: the properties that register
    the queued plugins intercept them, so nothing may read plugins another way."""
    source = (PYDICOM / "pixels" / "common.py").read_text()
    assert "self._available: dict[str, Callable] = {}" in source
    assert "self._unavailable: dict[str, tuple[str, ...]] = {}" in source
    coder_sources = "".join(
        p.read_text() for p in (PYDICOM / "pixels").rglob("*.py") if p.name in ("common.py", "base.py")
    )
    attributes = set(re.findall(r"\._(?:un)?available\w*", coder_sources))
    assert attributes == {"._available", "._unavailable"}, attributes


def test_numpy_checkers_use_numpy_only_for_ndarray_checks() -> None:
    """deferred._NumpyGuard answers ``numpy.ndarray`` with () in these modules while numpy is not loaded:
    correct only where it is the second argument of isinstance (any other numpy.X loads numpy)."""
    for module in deferred.NUMPY_CHECKERS:
        path = PYDICOM / (module.split(".", 1)[1].replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        checks = {
            id(node.args[1])
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2
        }
        uses = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "numpy"
            and node.attr == "ndarray"
        ]
        assert uses, f"{module} no longer checks numpy.ndarray: drop it from NUMPY_CHECKERS"
        assert all(id(node) in checks for node in uses), f"{module} uses numpy.ndarray outside isinstance()"


def test_deferred_coders_end_as_eager_ones() -> None:
    eager, lazy = _both(CODERS)
    assert lazy == eager
    assert any(available for available, _, _ in eager.values())  # type: ignore[union-attr]


def test_importing_pynetdicom_after_dcmtools_loads_no_pixel_machinery() -> None:
    code = """
import json, sys, pynetdicom
from dcmtools.dicom.deferred import is_deferred, _PENDING
heavy = ("numpy", "PIL.Image", "PIL.ImageCms", "pylibjpeg", "libjpeg", "openjpeg", "rle", "jpeg_ls",
         "requests", "tqdm", "urllib.request", "pydicom.examples")
print(json.dumps([[n, n in sys.modules and not is_deferred(sys.modules[n])] for n in heavy] + [len(_PENDING)]))
"""
    *loaded, pending = _run(code, first="dcmtools")  # type: ignore[misc]
    assert [name for name, is_loaded in loaded if is_loaded] == []
    assert pending > 20  # pydicom's own plugins, queued


def test_datasets_encode_and_decode_without_numpy() -> None:
    """What a C-ECHO, C-FIND or C-STORE does with pydicom loads no numpy: the guard answers."""
    code = """
import json, sys
from io import BytesIO
from pydicom import Dataset, dcmread
from pydicom.filewriter import write_dataset
from pydicom.filebase import DicomBytesIO
from pydicom.data import get_testdata_file
ds = Dataset()
ds.PatientName = "DOE^JOHN"
ds.ImageType = ["ORIGINAL", "PRIMARY"]
ds.PixelData = b"\\0\\0"
ds.BitsAllocated = 8
out = DicomBytesIO(); out.is_little_endian = True; out.is_implicit_VR = True
write_dataset(out, ds)
read = dcmread(get_testdata_file("CT_small.dcm"))
same = read == dcmread(get_testdata_file("CT_small.dcm"))
print(json.dumps(["numpy" in sys.modules and type(sys.modules["numpy"]).__name__, len(out.getvalue()), same]))
"""
    state, size, same = _run(code, first="dcmtools")  # type: ignore[misc]
    assert state == "_DeferredModule" and size > 0 and same


def test_an_ndarray_is_still_refused_as_pixel_data_and_compared_as_one() -> None:
    code = """
import json, numpy as np
from pydicom import Dataset
from pydicom.dataelem import DataElement
ds = Dataset()
try:
    ds.PixelData = np.zeros(4, dtype="u1")
    refused = False
except TypeError:
    refused = True
a = DataElement(0x00181310, "FD", np.array([1.0, 2.0]))
b = DataElement(0x00181310, "FD", np.array([1.0, 2.0 + 1e-12]))
print(json.dumps([refused, a == b]))
"""
    eager, lazy = _both(code)
    assert lazy == eager == [True, True]


def test_pixels_decode_and_encode_as_eagerly() -> None:
    """A first decode registers the plugins; every compressed sample decodes to the same pixels, and an
    encode round-trips, with and without the deferral."""
    code = """
import hashlib, json
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, JPEGLSLossless
out = {}
for name in ("JPEG2000.dcm", "SC_rgb_jpeg_gdcm.dcm", "JPEGLSNearLossless_16.dcm", "SC_rgb_rle.dcm",
             "MR_small_jpeg_ls_lossless.dcm", "CT_small.dcm", "JPGExtended.dcm", "MR_small_RLE.dcm"):
    ds = pydicom.dcmread(get_testdata_file(name))
    out[name] = hashlib.sha256(ds.pixel_array.tobytes()).hexdigest()
ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
before = ds.pixel_array.copy()
for syntax in (RLELossless, JPEGLSLossless):
    copy = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    copy.compress(syntax)
    out[str(syntax)] = bool((copy.pixel_array == before).all())
print(json.dumps(out))
"""
    eager, lazy = _both(code)
    assert lazy == eager
    assert all(v for k, v in eager.items() if k.startswith("1.2"))  # type: ignore[union-attr]


def test_first_use_from_two_threads_at_once() -> None:
    """Two threads decoding first at the same moment: the queue runs once, both get pixels."""
    code = """
import json, threading
import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from pydicom.uid import JPEGBaseline8Bit
path = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")
results, start = [], threading.Barrier(2)
def work():
    start.wait()
    results.append(int(pydicom.dcmread(path).pixel_array.sum()))
threads = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps([results, list(get_decoder(JPEGBaseline8Bit)._available)]))
"""
    eager, lazy = _both(code)
    assert lazy == eager and len(eager[0]) == 2 and eager[0][0] == eager[0][1]  # type: ignore[index]


def test_a_plugin_added_later_comes_after_pydicoms() -> None:
    code = """
import json
from pydicom.pixels import get_decoder
from pydicom.uid import RLELossless
decoder = get_decoder(RLELossless)
decoder.remove_plugin("pydicom")
decoder.add_plugin("pydicom", ("pydicom.pixels.decoders.rle", "_decode_frame"))
try:
    decoder.add_plugin("pydicom", ("pydicom.pixels.decoders.rle", "_decode_frame"))
    twice = "accepted"
except ValueError:
    twice = "refused"
print(json.dumps([list(decoder._available), twice]))
"""
    eager, lazy = _both(code)
    assert lazy == eager and eager[1] == "refused"  # type: ignore[index]


def test_legacy_handlers_are_deferred_yet_usable() -> None:
    code = """
import json
from pydicom import config
print(json.dumps([[h.__name__, h.is_available()] for h in config.pixel_data_handlers]))
"""
    eager, lazy = _both(code)
    assert lazy == eager and ["pydicom.pixel_data_handlers.numpy_handler", True] in eager  # type: ignore[operator]


def test_examples_and_the_downloader_still_work() -> None:
    code = """
import json
import pydicom.examples as ex
from pydicom.data import get_testdata_file
print(json.dumps([str(ex.ct.PatientName), bool(get_testdata_file("CT_small.dcm"))]))
"""
    eager, lazy = _both(code)
    assert lazy == eager == ["CompressedSamples^CT1", True]


def test_threads_never_see_a_deferred_module_half_loaded() -> None:
    """The first use of a deferred module from several threads at once: every thread waits for the whole
    module (a migrate worker once read requests.Session while requests was still running its code)."""
    script = """
import json, threading
import numpy, requests
from dcmtools.dicom.deferred import is_deferred
assert is_deferred(requests) and is_deferred(numpy), "not deferred: this test would prove nothing"
errors, start = [], threading.Barrier(8)
def use():
    start.wait()
    try:
        requests.Session, numpy.ndarray
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=use) for _ in range(8)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps(errors))
"""
    assert _run(script, first="dcmtools") == []
