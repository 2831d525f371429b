"""C-FIND attribute matching (PS3.4 C.2.2.2) on DICOM JSON model datasets.

Used by ``listen`` to answer queries over its store and its worklist items,
and by ``find`` to check the answers of a peer that ignored a key.

* A key without a value is a return key: it matches anything (universal).
* ``*`` and ``?`` are wildcards (not in dates, times, UIDs or numbers).
* Dates, times and date-times take ranges: ``A-B``, ``A-``, ``-B``.
* Several values (``CT\\MR``; a list of UIDs) match when any of them does.
* A sequence key holds one item of keys: some stored item must match them
  all; an empty item (or no item) matches anything.
* Person names match without regard to case (PS3.4 allows it and users
  type names in any case); everything else is case-sensitive, trailing
  spaces ignored.  A name key without "=" matches any one group of a
  name (or the whole value); a
  key with component groups (``Wang^XiaoDong=王^小東=``) matches each of its
  non-empty groups against the same group of the stored name.
* A stored element that is missing or empty matches only a universal key.

Importable without pydicom.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

RANGE_VRS = frozenset(("DA", "TM", "DT"))
NO_WILDCARD_VRS = frozenset(("DA", "TM", "DT", "UI", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV", "AT"))
NUMBER_VRS = frozenset(("IS", "DS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV"))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        # all component groups: "Wang^XiaoDong=王^小東" (see _pn_one)
        return "=".join(value.get(k) or "" for k in ("Alphabetic", "Ideographic", "Phonetic")).rstrip("=") or None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _values(element: dict[str, Any] | None) -> list[str]:
    if not element:
        return []
    values = element.get("Value")
    if values is None:
        raw = element.get("raw")
        if isinstance(raw, str) and raw.strip():
            return [v.strip() for v in raw.split("\\") if v.strip()]
        return []
    out = []
    for value in values:
        text = _text(value)
        if text:
            out.append(text)
    return out


def is_universal(key: dict[str, Any] | None) -> bool:
    """A key that matches anything: no value (or only ``*``), or an empty sequence item."""
    if not key:
        return True
    if key.get("vr") == "SQ":
        items = key.get("Value") or []
        return not items or all(all(is_universal(sub) for sub in item.values()) for item in items)
    values = _values(key)
    return not values or all(v == "*" for v in values)


@lru_cache(maxsize=512)
def _wildcard(pattern: str, fold: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex + r"\Z", re.DOTALL | (re.IGNORECASE if fold else 0))


def _time(text: str) -> str:
    """A TM value as HHMMSS.ffffff (padded), for comparisons."""
    text = text.replace(":", "").strip()
    whole, _, fraction = text.partition(".")
    whole = (whole + "000000")[:6]
    return whole + "." + (fraction + "000000")[:6]


def _in_range(vr: str, key: str, stored: str) -> bool:
    low, _, high = key.partition("-")
    low, high, value = low.strip(), high.strip(), stored.strip()
    if vr == "TM":
        value = _time(value)
        low = _time(low) if low else ""
        high = _time(high) if high else ""
        return (not low or value >= low) and (not high or value <= high)
    if vr == "DT":
        # A bound of lower precision covers everything it is a prefix of.
        return (not low or value[: len(low)] >= low) and (not high or value[: len(high)] <= high)
    return (not low or value >= low) and (not high or value <= high)


def _pn_one(key: str, stored: str, fold: bool) -> bool:
    """A person name, group by group: a key without "=" matches any one group (or all); a key with
    groups ("Wang^XiaoDong=王^小東=") matches each of its non-empty groups against the same group."""
    stored_groups = stored.split("=")
    key_groups = key.split("=")
    if len(key_groups) == 1:  # any one group, or the whole value ("*小東*", as peers match it)
        return any(_one("LO", key, text, fold) for text in (*stored_groups, stored) if text)
    for n, group in enumerate(key_groups):
        if group in ("", "*"):
            continue
        if not _one("LO", group, stored_groups[n] if n < len(stored_groups) else "", fold):
            return False
    return True


def _one(vr: str, key: str, stored: str, fold: bool) -> bool:
    if vr == "PN":
        return _pn_one(key, stored, fold)
    if vr in RANGE_VRS and "-" in key:
        return _in_range(vr, key, stored)
    if vr not in NO_WILDCARD_VRS and ("*" in key or "?" in key):
        return _wildcard(key, fold).match(stored) is not None
    if vr == "TM":
        return _time(key) == _time(stored)
    if vr in NUMBER_VRS:
        try:
            return float(key) == float(stored)
        except ValueError:
            return key == stored
    if fold:
        return key.casefold() == stored.casefold()
    return key == stored


def element_matches(key: dict[str, Any], stored: dict[str, Any] | None, *, lenient: bool = False) -> bool:
    """Whether one stored element matches one key element (see the module docs).

    ``lenient`` folds case for every text VR: for checking a peer's answers,
    which may match more loosely than we do.
    """
    if is_universal(key):
        return True
    vr = key.get("vr") or (stored or {}).get("vr") or "UN"
    if vr == "SQ":
        items = (stored or {}).get("Value") or []
        wanted = [item for item in key.get("Value") or [] if not all(is_universal(sub) for sub in item.values())]
        return all(any(dataset_matches(keys, item, lenient=lenient) for item in items) for keys in wanted)
    stored_values = _values(stored)
    if not stored_values:
        return False
    fold = vr == "PN" or (lenient and vr not in NO_WILDCARD_VRS)
    for key_value in _values(key):
        if key_value == "*":
            return True
        for value in stored_values:
            if _one(vr, key_value, value, fold):
                return True
    return False


def dataset_matches(
    keys: dict[str, Any],
    stored: dict[str, Any],
    *,
    skip: frozenset[int] | set[int] = frozenset(),
    lenient: bool = False,
) -> bool:
    """Whether a stored dataset matches every key of an identifier (``skip``: tags not to match)."""
    for tag_key, key in keys.items():
        if skip and int(tag_key, 16) in skip:
            continue
        if not element_matches(key, stored.get(tag_key), lenient=lenient):
            return False
    return True


def returned(keys: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """The response to an identifier: each key with the stored value (empty when there is none).

    Sequence keys with an item of sub-keys get each stored item reduced to
    those sub-keys (items that do not match them are left out); an empty
    sequence key gets the stored items whole.
    """
    out: dict[str, Any] = {}
    for tag_key, key in keys.items():
        element = stored.get(tag_key)
        if key.get("vr") == "SQ":
            items = (element or {}).get("Value") or []
            wanted = [item for item in key.get("Value") or [] if item]
            if not wanted:
                out[tag_key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
                continue
            reduced = [returned(wanted[0], item) for item in items if dataset_matches(wanted[0], item)]
            out[tag_key] = {"vr": "SQ", "Value": reduced} if reduced else {"vr": "SQ"}
            continue
        if element is None:
            out[tag_key] = {"vr": key.get("vr", "UN")}
        else:
            out[tag_key] = element
    return out
