"""What to edit: ``PATH=VALUE`` assignments and the mapping table."""

from __future__ import annotations

import csv
from dataclasses import dataclass

from ..dicom import dictionary as datadict
from ..dicom.tagpath import PathError, Step, parse_path
from .values import EditError, check_value


@dataclass(frozen=True)
class Assignment:
    """One ``PATH=VALUE`` (or a bare PATH for erase), parsed and checked."""

    text: str
    steps: tuple[Step, ...]
    value: str | None = None
    vr: str | None = None  # from the dictionary; None for private and unknown tags (taken from the file)


def _dictionary_vr(tag: int) -> str | None:
    if tag >> 16 & 1:
        return None  # private: the VR is the file's
    entry = datadict.lookup(tag)
    if entry is None:
        return None
    vr = entry.vr
    return vr.split(" or ")[0] if " or " in vr else vr


def parse_assignment(text: str, *, erase: bool = False) -> Assignment:
    """``'Seq[*].Keyword=VALUE'`` -> ``Assignment``; ``EditError`` for a bad path or value."""
    if erase:
        path, value = text, None
    else:
        path, sep, value = text.partition("=")
        if not sep:
            raise EditError(f"{text!r} has no '=VALUE' (write PATH=VALUE; PATH= sets an empty value)")
    try:
        steps = parse_path(path)
    except PathError as exc:
        raise EditError(str(exc)) from None
    for step in steps[:-1]:
        if _dictionary_vr(step.tag) not in ("SQ", None):
            raise EditError(f"{path!r}: {step} is not a sequence")
    vr = _dictionary_vr(steps[-1].tag)
    if not erase:
        if vr == "SQ":
            raise EditError(f"{path!r} is a sequence: set an element inside its items (e.g. {path}[0].Keyword=...)")
        if steps[-1].index is not None:
            raise EditError(f"{path!r}: a value cannot be set on a sequence item (name an element inside it)")
        if vr is not None:
            try:
                check_value(value or "", vr)
            except ValueError as exc:
                raise EditError(f"{path}: {exc}") from None
    return Assignment(text, steps, value, vr)


def _step_text(step: Step, index: int | None = None) -> str:
    name = datadict.keyword_of(step.tag) or datadict.format_tag(step.tag)
    return name if index is None else f"{name}[{index}]"


@dataclass
class MapTable:
    """The rows of a ``--map`` CSV by the value of its key column."""

    path: str
    match: int  # the tag matched in each file
    column: str  # the CSV column holding the key
    columns: list[tuple[str, Assignment]]  # column -> what it sets (value filled per row)
    rows: dict[str, dict[str, str]]

    def assignments(self, key: str) -> list[Assignment] | None:
        row = self.rows.get(key)
        if row is None:
            return None
        # An empty cell leaves the attribute as it is (spreadsheets leave gaps).
        return [Assignment(a.text, a.steps, row[c], a.vr) for c, a in self.columns if row.get(c, "") != ""]


def load_map(path: str, match: str) -> MapTable:
    """Read and check a mapping CSV: ``match`` is ``KEYWORD`` (the column of that name) or ``KEYWORD=COLUMN``.

    Every other column names an attribute to set (a PATH). ``EditError`` for
    a missing key column, an unknown column name, a duplicate key or a value
    its VR cannot hold, with the line and column.
    """
    keyword, _, column = match.partition("=")
    column = column or keyword
    try:
        steps = parse_path(keyword)
    except PathError as exc:
        raise EditError(f"`match`: {exc}") from None
    if len(steps) != 1:
        raise EditError(f"`match` {keyword!r}: name one top-level attribute (e.g. PatientID)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(4096)
            f.seek(0)
            try:
                dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(f, dialect)
            header = next(reader, None)
            if not header:
                raise EditError(f"{path} is empty: it needs a header line naming {column!r} and the attributes to set")
            header = [h.strip() for h in header]
            if column not in header:
                raise EditError(f"{path} has no column {column!r} (its columns: {', '.join(header)}); "
                                "name the key column with `match` KEYWORD=COLUMN")  # fmt: skip
            columns: list[tuple[str, Assignment]] = []
            for name in header:
                if name == column:
                    continue
                if name in [c for c, _ in columns]:
                    raise EditError(f"{path}: column {name!r} appears twice")
                try:
                    columns.append((name, parse_assignment(name + "=")))
                except EditError as exc:
                    raise EditError(f"{path}: column {name!r}: {exc}") from None
            if not columns:
                raise EditError(f"{path} has no column to set besides {column!r}")
            rows: dict[str, dict[str, str]] = {}
            lines: dict[str, int] = {}
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise EditError(f"{path} line {line}: {len(row)} cells, the header has {len(header)}")
                cells = dict(zip(header, (cell.strip() for cell in row), strict=True))
                key = cells[column]
                if key == "":
                    raise EditError(f"{path} line {line}: the key column {column!r} is empty")
                if key in rows:
                    raise EditError(f"{path} line {line}: key {key!r} is already on line {lines[key]} "
                                    "(one row per key)")  # fmt: skip
                for name, assignment in columns:
                    if assignment.vr is not None and cells[name] != "":
                        try:
                            check_value(cells[name], assignment.vr)
                        except ValueError as exc:
                            raise EditError(f"{path} line {line}, column {name}: {exc}") from None
                rows[key] = cells
                lines[key] = line
    except OSError as exc:
        raise EditError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EditError(f"{path} is not a UTF-8 CSV file: {exc}") from None
    return MapTable(path, steps[0].tag, column, columns, rows)
