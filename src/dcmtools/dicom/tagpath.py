"""Element paths as users write them (the DCMTK/pynetdicom ``-k`` syntax).

    PatientName                         a keyword
    0010,0010   (0010,0010)   00100010  a tag
    ReferencedImageSequence[0].ReferencedSOPInstanceUID
    ReferencedImageSequence.ReferencedSOPInstanceUID     every item
    ScheduledProcedureStepSequence[0].Modality=CT        with a value (-k)

``parse_path`` gives the steps; ``parse_key`` splits off ``=VALUE``;
``select`` keeps only the chosen elements of a dataset read by
``dcmtools.dicom.reader`` (with their enclosing sequences and items).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import dictionary
from .reader import Dataset, Element

_STEP = re.compile(
    r"""^\s*(?:
        \(?(?P<group>[0-9A-Fa-f]{4}),(?P<element>[0-9A-Fa-f]{4})\)?   # 0010,0010 or (0010,0010)
      | (?P<hex>[0-9A-Fa-f]{8})                                    # 00100010
      | (?P<keyword>[A-Za-z][A-Za-z0-9]*)                          # PatientName
    )(?:\[(?P<index>\d+|\*)\])?\s*$""",
    re.VERBOSE,
)


class PathError(ValueError):
    """A path that names no element; the message says why, for the user."""


@dataclass(frozen=True)
class Step:
    tag: int
    index: int | None = None  # item number (0-based) in a sequence; None = every item

    def __str__(self) -> str:
        name = dictionary.keyword_of(self.tag) or f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"
        return name + ("" if self.index is None else f"[{self.index}]")


def _split_steps(text: str) -> list[str]:
    # Dots separate steps; a tag like 0010,0010 contains no dot, so a plain split works.
    return text.split(".")


def parse_path(text: str) -> tuple[Step, ...]:
    """``'Seq[0].Keyword'`` -> steps; ``PathError`` with a helpful message if invalid."""
    if not text.strip():
        raise PathError("empty element path")
    steps = []
    for part in _split_steps(text):
        match = _STEP.match(part)
        if not match:
            raise PathError(f"{part!r} in {text!r} is neither a keyword nor a tag like 0010,0010")
        if match["keyword"]:
            tag = dictionary.tag_of(match["keyword"])
            if tag is None:
                raise PathError(f"unknown keyword {match['keyword']!r}{_suggest(match['keyword'])}")
        elif match["hex"]:
            tag = int(match["hex"], 16)
        else:
            tag = int(match["group"], 16) << 16 | int(match["element"], 16)
        index = match["index"]
        steps.append(Step(tag, None if index in (None, "*") else int(index)))
    return tuple(steps)


def parse_key(text: str) -> tuple[tuple[Step, ...], str | None]:
    """``'PatientName=DOE*'`` -> (steps, 'DOE*'); ``'PatientName'`` -> (steps, None)."""
    path, sep, value = text.partition("=")
    return parse_path(path), (value if sep else None)


def _suggest(keyword: str) -> str:
    import difflib

    close = difflib.get_close_matches(keyword, list(dictionary._keywords()), n=3, cutoff=0.75)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def select(ds: Dataset, paths: list[tuple[Step, ...]]) -> Dataset:
    """A copy of ``ds`` holding only the elements the paths name (in file order)."""
    out = Dataset(ds.little, ds.implicit)
    wanted: dict[int, list[tuple[Step, ...]]] = {}
    for path in paths:
        wanted.setdefault(path[0].tag, []).append(path)
    for tag, element in ds.items():
        chosen = wanted.get(tag)
        if not chosen:
            continue
        if any(len(p) == 1 and p[0].index is None for p in chosen) or element.items is None:
            out[tag] = element
            continue
        items = []
        for number, item in enumerate(element.items):
            rests = [p[1:] for p in chosen if p[0].index in (None, number)]
            if not rests:
                continue
            if any(not rest for rest in rests):
                items.append(item)
            else:
                items.append(select(item, rests))
        out[tag] = Element(tag, element.vr, element.length, element.value, element.offset, items)
    return out
