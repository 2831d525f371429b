"""Defer modules that importing pynetdicom loads but a network command never uses.

pynetdicom imports pydicom, whose ``__init__`` runs ``import pydicom.examples``
(a helper for the documentation's sample datasets), which imports
``pydicom.data`` and its downloader: ``urllib.request``, ``http``, ``email``,
``tqdm``... about 10-15 ms of a ~0.25 s ``dcmtools echo``.  ``defer()``
registers such a module so that the import statement binds a module object
whose code runs at its first attribute access (so ``pydicom.examples.ct``
still works, just later).  Only plain ``import x.y`` statements can be
deferred this way: ``from x import name`` reads an attribute at once.

What cannot be deferred (measured, pydicom 3.0): ``pydicom.dataset`` runs
``from pydicom.pixels import ...``, and importing ``pydicom.pixels`` registers
every pixel decoder plugin, calling each plugin's ``is_available()``, which
imports numpy, pylibjpeg, PIL and jpeg_ls (~0.1 s): that is the floor while
pynetdicom (hence pydicom) is imported at all.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

# The modules deferred when dcmtools.net is imported (see the docstring for why these).
UNUSED_BY_NETWORK = ("pydicom.examples",)

_LOCK = threading.RLock()


class _DeferredModule(types.ModuleType):
    """A module whose code runs at the first access to an attribute it does not have yet."""

    def __getattribute__(self, attr: str) -> Any:
        namespace = object.__getattribute__(self, "__dict__")
        # the import system reads __spec__, __name__, __path__ ...: those must not load it
        if attr.startswith("__") and attr.endswith("__") and attr in namespace:
            return namespace[attr]
        with _LOCK:
            if type(self) is _DeferredModule:
                spec = namespace["__spec__"]
                object.__setattr__(self, "__class__", types.ModuleType)
                spec.loader.exec_module(self)
        return getattr(self, attr)


class _DeferringLoader(importlib.abc.Loader):
    def __init__(self, real: Any) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__.loader = self.real  # type: ignore[union-attr]
        module.__loader__ = self.real
        module.__class__ = _DeferredModule


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        if name not in self.names:
            return None
        self.names.discard(name)  # one deferral per module: later imports are ordinary
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _DeferringLoader(spec.loader)
        return spec


_FINDER = _Finder()


def defer(*names: str) -> None:
    """Defer these modules if they are not imported yet (no effect on those already imported)."""
    with _LOCK:
        _FINDER.names.update(name for name in names if name not in sys.modules)
        if _FINDER.names and _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def is_deferred(module: types.ModuleType) -> bool:
    """True while ``module``'s code has not run yet."""
    return type(module) is _DeferredModule
