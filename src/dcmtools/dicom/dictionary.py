"""The DICOM data dictionary: VR, keyword and name of every public tag.

The dictionary is pydicom's own (``pydicom/_dicom_dict.py`` and
``_private_dict.py``), loaded from the installed pydicom *without importing
the pydicom package*: importing pydicom costs ~160 ms (it pulls in numpy),
loading its dictionary module ~9 ms.  If the file cannot be found this way,
pydicom is imported after all.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import os
import re
from types import ModuleType
from typing import NamedTuple


class Entry(NamedTuple):
    vr: str  # may be ambiguous: 'US or SS', 'OB or OW', ...
    vm: str
    name: str
    retired: bool
    keyword: str


def _load_pydicom_module(name: str) -> ModuleType:
    spec = importlib.util.find_spec("pydicom")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = os.path.join(folder, f"{name}.py")
        if os.path.exists(path):
            loader = importlib.machinery.SourceFileLoader(f"dcmtools._pydicom{name}", path)
            module_spec = importlib.util.spec_from_loader(loader.name, loader)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]  # a loader gives a spec
            loader.exec_module(module)
            return module
    return importlib.import_module(f"pydicom.{name}")  # pragma: no cover


@functools.cache
def _public() -> tuple[dict[int, tuple[str, ...]], list[tuple[int, int, tuple[str, ...]]]]:
    module = _load_pydicom_module("_dicom_dict")
    repeaters: list[tuple[int, int, tuple[str, ...]]] = []
    for key, entry in module.RepeatersDictionary.items():
        mask = int("".join("0" if c == "x" else "F" for c in key), 16)
        repeaters.append((mask, int(key.replace("x", "0"), 16), entry))
    public: dict[int, tuple[str, ...]] = module.DicomDictionary  # (VR, VM, name, retired, keyword)
    return public, repeaters


@functools.cache
def _private() -> dict[str, dict[str, tuple[str, ...]]]:
    tables: dict[str, dict[str, tuple[str, ...]]] = _load_pydicom_module("_private_dict").private_dictionaries
    return tables


def lookup(tag: int) -> Entry | None:
    """The dictionary entry of a public tag (repeating groups included)."""
    public, repeaters = _public()
    raw = public.get(tag)
    if raw is None:
        for mask, value, entry in repeaters:
            if tag & mask == value:
                raw = entry
                break
        else:
            return None
    return Entry(raw[0], raw[1], raw[2], raw[3] == "Retired", raw[4])


def vr_of(tag: int) -> str:
    """The dictionary VR of a tag as read from implicit VR data ('UN' if unknown)."""
    public, _ = _public()
    raw = public.get(tag)
    if raw is not None:
        return raw[0]
    if tag & 0xFFFF == 0:
        return "UL"  # group length
    if tag >> 16 & 1:
        # Private: creator elements are LO; the rest is unknown without its creator.
        return "LO" if 0x10 <= tag & 0xFFFF <= 0xFF else "UN"
    entry = lookup(tag)
    return entry.vr if entry else "UN"


def keyword_of(tag: int) -> str:
    """The keyword of a public tag, '' when unknown or private."""
    public, _ = _public()
    raw = public.get(tag)
    if raw is not None:
        return raw[4]
    if tag & 0xFFFF == 0:
        return "GroupLength"
    if tag >> 16 & 1:
        return "PrivateCreator" if 0x10 <= tag & 0xFFFF <= 0xFF else ""
    entry = lookup(tag)
    return entry.keyword if entry else ""


@functools.cache
def _keywords() -> dict[str, int]:
    public, _ = _public()
    return {entry[4]: tag for tag, entry in public.items() if entry[4]}


def tag_of(keyword: str) -> int | None:
    """The tag of a keyword (e.g. 'PatientName' -> 0x00100010), None if unknown."""
    return _keywords().get(keyword)


_PRIVATE_KEY = re.compile(r"^[0-9A-Fa-fx]{8}$")


def private_entry(creator: str, tag: int) -> tuple[str, ...] | None:
    """(VR, VM, name, retired) of a private tag under ``creator``, if pydicom knows it."""
    table = _private().get(creator)
    if not table:
        return None
    group, element = tag >> 16, tag & 0xFF
    entry = table.get(f"{group:04X}xx{element:02X}")
    if entry is None:  # a few creators span groups ('60xxxx10') or fix elements
        for key, candidate in table.items():
            if "x" in key and _PRIVATE_KEY.match(key):
                mask = int("".join("0" if c == "x" else "F" for c in key), 16) & 0xFFFF00FF
                if tag & mask == int(key.replace("x", "0"), 16) & mask:
                    return candidate
    return entry


def format_tag(tag: int) -> str:
    """'(0010,0010)' as dcmdump writes tags."""
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
