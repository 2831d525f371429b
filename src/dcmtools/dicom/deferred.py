"""Defer what importing pydicom loads but most commands never use (issue 15: start-up).

Every network command imports pynetdicom, which imports pydicom, and importing pydicom 3.0 builds its
whole pixel machinery: ``pydicom.config`` imports the six legacy ``pixel_data_handlers``, and
``pydicom.pixels.decoders.base`` / ``encoders.base`` register every codec plugin at import, each
registration importing the plugin's library and asking it whether it works (numpy, pylibjpeg and its
entry points, libjpeg, openjpeg, rle, jpeg_ls, Pillow's features); ``pydicom.pixels.processing``
imports Pillow's ImageCms and ``pydicom.data``, whose downloader imports requests, urllib.request and
tqdm.  About 0.15 s of CPU before ``dcmtools echo`` sends a byte, in a command that decodes no pixel.

``install()`` (called by ``dcmtools/__init__.py``, so before anything of dcmtools imports pydicom)
moves that work to its first use, without changing what pydicom ends up with:

* ``defer(name)``: a later ``import name`` binds a module whose code runs at the first access to one
  of its attributes or submodules (``np.ndarray``, ``from numpy import x``, ``import numpy.linalg``),
  so ``try: import numpy`` in pydicom costs nothing until an array is made.  Only pure-Python modules
  of installed dependencies are deferred: an import error would surface at first use, not at import.
* Plugin registration at first use: while pydicom's two registries import, their ``add_plugin``
  calls are queued; the first read of any coder's plugins (``_available`` / ``_unavailable``, which
  every decode, encode and ``available_plugins`` goes through) runs the queue, in pydicom's order,
  so each coder holds what eager registration would have given it.
* ``isinstance(value, numpy.ndarray)``, which pydicom asks of every element it writes, answers False
  without loading numpy while numpy has not loaded (no value can be an array then): ``_NumpyGuard``.
* The cyclic garbage collector rests while pydicom and pynetdicom import (``_without_gc``).

The second and third reach into pydicom 3.0 privates: they are applied only to pydicom 3.0.x (pinned
in pyproject.toml; another version is left to import eagerly), and tests/test_pydicom_contract.py
checks every name used here and compares the deferred state with the eager one, so that an upgrade
fails there first.  What stays is pydicom's and pynetdicom's own modules: docs/design/startup.md.
"""

from __future__ import annotations

import gc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any, cast

_HANDLERS = "pydicom.pixel_data_handlers"

# Imported by pydicom (or pynetdicom) at import time, used only when pixels are decoded or encoded,
# an ICC profile applied, a test file downloaded or a documentation example loaded.
DEFERRED = (
    "numpy",
    "PIL.Image",
    "PIL.ImageCms",
    "requests",
    "tqdm",
    "urllib.request",
    "pydicom.examples",
    *(f"{_HANDLERS}.{name}_handler" for name in ("numpy", "rle", "pillow", "jpeg_ls", "gdcm", "pylibjpeg")),
)

# pydicom 3.0's pixel plugin registries, and the module defining the class they register with.
CODERS_MODULE = "pydicom.pixels.common"
REGISTRIES = {
    "pydicom.pixels.decoders.base": "_build_decoder_docstrings",
    "pydicom.pixels.encoders.base": "_build_encoder_docstrings",
}
PYDICOM_SERIES = ("3", "0")
# pydicom modules whose only use of numpy, until a value is an array, is ``isinstance(value, numpy.ndarray)``
# (on every element written, on every Pixel Data set): see _NumpyGuard.
NUMPY_CHECKERS = ("pydicom.filewriter", "pydicom.dataelem")

# Imports that allocate ~90,000 objects (data dictionaries, SOP classes, presentation contexts): with the
# cyclic garbage collector on, it scans them over and over while they import (a fifth of their CPU time).
BIG_IMPORTS = ("pydicom", "pynetdicom")

_LOCK = threading.RLock()
_PENDING: list[tuple[Any, str, tuple[str, str]]] = []  # (coder, label, import path), pydicom's order


class _State:
    registries_importing = 0  # > 0 while pydicom's registries import: add_plugin queues
    registering = False  # the queue is being run (by the thread holding _LOCK)
    freeze = False  # freeze_after_imports() was called


_REGISTER: list[Callable[..., None]] = []  # pydicom's own add_plugin, once patched


class _DeferredModule(types.ModuleType):
    """A module whose code runs at the first access to an attribute it does not have yet."""

    def __getattribute__(self, attr: str) -> Any:
        namespace = object.__getattribute__(self, "__dict__")
        # The import system reads __spec__, __name__... of a module in sys.modules at every import
        # statement: those must not load it.  __path__ must: it is read to import a submodule, whose
        # package has to be initialised first (numpy's C extensions import numpy._core...).
        if attr != "__path__" and attr.startswith("__") and attr.endswith("__") and attr in namespace:
            return namespace[attr]
        with _LOCK:
            if type(self) is _DeferredModule:
                if "__dcmtools_loading__" in namespace:  # this thread is running the module's code
                    return types.ModuleType.__getattribute__(self, attr)
                # The class changes only once the code has run: another thread must wait on the lock
                # for the whole module, never see it half loaded (a migrate worker once read
                # requests.Session before requests had defined it).
                namespace["__dcmtools_loading__"] = True
                try:
                    namespace["__spec__"].loader.exec_module(self)
                finally:
                    del namespace["__dcmtools_loading__"]
                object.__setattr__(self, "__class__", types.ModuleType)
        return getattr(self, attr)


class _DeferringLoader:
    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object: only source modules are deferred

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.real  # type: ignore[union-attr]
        module.__class__ = _DeferredModule


class _HookedLoader:
    """Runs a module as usual, inside ``around(module, run)``."""

    def __init__(self, real: Any, around: Callable[[types.ModuleType, Callable[[], None]], None]) -> None:
        self.real, self.around = real, around

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = module.__loader__ = self.real  # type: ignore[union-attr]
        self.around(module, lambda: self.real.exec_module(module))


class _Finder:
    """A meta path finder that defers or hooks a module the first time it is imported, then steps aside."""

    def __init__(self) -> None:
        self.deferred: set[str] = set()
        self.hooks: dict[str, Callable[[types.ModuleType, Callable[[], None]], None]] = {}

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        if name not in self.deferred and name not in self.hooks:
            return None
        with _LOCK:
            deferred, hook = name in self.deferred, self.hooks.pop(name, None)
            self.deferred.discard(name)
        spec = self._others_spec(name, path, target)
        if spec is None or spec.loader is None:
            return spec
        # Duck-typed loaders: subclassing importlib.abc.Loader would import importlib.abc (and
        # importlib.resources) in every command, the very thing this module is here to avoid.
        if hook is not None:
            spec.loader = cast(Any, _HookedLoader(spec.loader, hook))
        elif deferred and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = cast(Any, _DeferringLoader(spec.loader))
        return spec

    def _others_spec(self, name: str, path: Sequence[str] | None, target: Any) -> Any:
        """The spec the import system would find without this finder (site-packages, an editable install...)."""
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None:
                spec = find(name, path, target)
                if spec is not None:
                    return spec
        return None


_FINDER = _Finder()


def _activate() -> None:
    if (_FINDER.deferred or _FINDER.hooks) and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def defer(*names: str) -> None:
    """Defer these modules if they are not imported yet (no effect on those already imported)."""
    with _LOCK:
        _FINDER.deferred.update(name for name in names if name not in sys.modules)
        _activate()


def is_deferred(module: types.ModuleType) -> bool:
    """True while ``module``'s code has not run yet."""
    return type(module) is _DeferredModule


def install() -> None:
    """Defer ``DEFERRED`` and pydicom's plugin registration; nothing when pydicom is already imported."""
    if "pydicom" in sys.modules:
        return
    with _LOCK:
        for package in BIG_IMPORTS:
            if package not in sys.modules:
                _FINDER.hooks[package] = _without_gc
        _FINDER.hooks[CODERS_MODULE] = _patch_coders
        for registry in REGISTRIES:
            _FINDER.hooks[registry] = _while_registries_import
        for checker in NUMPY_CHECKERS:
            _FINDER.hooks[checker] = _guard_numpy
    defer(*DEFERRED)


# ---------------------------------------------------------------- pydicom's plugin registration
def _pydicom_supported() -> bool:
    from pydicom._version import __version_info__  # pydicom's package is initialising: its own submodule

    return tuple(__version_info__[:2]) == PYDICOM_SERIES


def _patch_coders(module: types.ModuleType, run: Callable[[], None]) -> None:
    """Run pydicom.pixels.common, then make its CoderBase queue the registries' add_plugin calls."""
    run()
    coder = getattr(module, "CoderBase", None)
    register = getattr(coder, "add_plugin", None)
    if coder is None or register is None or "_available" in vars(coder) or not _pydicom_supported():
        return  # not the pydicom this was written for: it registers its plugins at import, as usual

    def add_plugin(self: Any, label: str, import_path: tuple[str, str]) -> None:
        if _State.registries_importing:
            _PENDING.append((self, label, import_path))
            return
        register_pending()  # a caller's own plugin comes after pydicom's
        register(self, label, import_path)

    add_plugin.__doc__ = register.__doc__
    _REGISTER.append(register)
    coder.add_plugin = add_plugin
    coder._available = _plugins_property("_available")
    coder._unavailable = _plugins_property("_unavailable")


def _plugins_property(name: str) -> property:
    def get(self: Any) -> Any:
        register_pending()
        return self.__dict__[name]

    def set_(self: Any, value: Any) -> None:
        self.__dict__[name] = value

    return property(get, set_)


def _while_registries_import(module: types.ModuleType, run: Callable[[], None]) -> None:
    with _LOCK:
        _State.registries_importing += 1
    try:
        run()
    finally:
        with _LOCK:
            _State.registries_importing -= 1


def register_pending() -> None:
    """Register pydicom's queued plugins now (what a first decode or encode does); idempotent."""
    if not _PENDING or _State.registries_importing:
        return
    with _LOCK:
        if not _PENDING or _State.registering:
            return  # done by another thread meanwhile, or this very registration reading its coder
        _State.registering = True
        failures: list[BaseException] = []
        try:
            for coder, label, import_path in _PENDING:
                try:
                    _REGISTER[0](coder, label, import_path)
                except Exception as exc:  # eager pydicom would have failed its import: fail the first use
                    failures.append(exc)
        finally:
            _PENDING.clear()
            _State.registering = False
        for registry, build_docstrings in REGISTRIES.items():  # as pydicom builds them after registering
            getattr(sys.modules.get(registry), build_docstrings, lambda: None)()
        if failures:
            raise failures[0]


# ---------------------------------------------------------------- isinstance(value, numpy.ndarray)
class _NumpyGuard:
    """Stands for numpy in a module that asks ``isinstance(value, numpy.ndarray)`` of every value:
    while numpy's code has not run, no value can be an array, so ``ndarray`` is ``()`` (an isinstance
    that is always False) without loading it.  Any other attribute, or ``ndarray`` once numpy is
    loaded, is numpy's own."""

    def __getattr__(self, name: str) -> Any:
        numpy = sys.modules["numpy"]
        if name == "ndarray" and is_deferred(numpy):
            return ()
        return getattr(numpy, name)


def _guard_numpy(module: types.ModuleType, run: Callable[[], None]) -> None:
    run()
    numpy = sys.modules.get("numpy")
    if numpy is not None and is_deferred(numpy) and vars(module).get("numpy") is numpy and _pydicom_supported():
        module.numpy = _NumpyGuard()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the garbage collector
def freeze_after_imports() -> None:
    """Once pydicom or pynetdicom has imported, move every object alive to the collector's permanent
    generation (``gc.freeze``), so that no later collection scans them again.  For a command line, whose
    objects at that point (modules, classes, dictionaries, the command's own) live until it exits: the
    price is that those that would have become cyclic garbage never are collected."""
    _State.freeze = True


def _without_gc(module: types.ModuleType, run: Callable[[], None]) -> None:
    """Import with the cyclic collector off (reference counting still frees what is dropped); it is on
    again, as it was, when the import ends, and finds then any cycle the import left."""
    if not gc.isenabled():
        run()  # off already: an outer import (pynetdicom importing pydicom) or the program's choice
        return
    gc.disable()
    try:
        run()
    finally:
        if _State.freeze:
            gc.freeze()
        gc.enable()
