"""Photometer readings per driving level and the three file formats that hold them:
CSV (``ddl,luminance``), DCMTK monitor files (``.lut``) and VeriLUM characteristic
curve files (``CCx_xx.dat``)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...stream.records import DcmtoolsError, ErrorCode

FORMATS = ("csv", "dcmtk", "verilum")


@dataclass
class Measurements:
    """Photometer readings: luminance (cd/m2, without ambient light) per DDL.

    ``ddl`` is sorted ascending, without duplicates.  ``max_ddl`` is the
    display's largest driving level (the ``max`` of a DCMTK file; else the
    largest DDL read).  ``ambient`` is the reflected ambient luminance given
    in the file, if any.  ``fit_order`` is DCMTK's ``ord`` (polynomial
    interpolation of missing DDLs instead of a cubic spline).
    """

    ddl: list[int]
    luminance: list[float]
    max_ddl: int
    ambient: float | None = None
    fit_order: int = 0
    format: str = "csv"
    path: str | None = None
    description: str | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.ddl) != len(self.luminance):
            raise ValueError("ddl and luminance differ in length")

    @classmethod
    def from_pairs(
        cls, pairs: Iterable[tuple[int, float]], *, max_ddl: int | None = None, ambient: float | None = None, **kw: Any
    ) -> Measurements:
        """Readings from (DDL, luminance) pairs in any order; the last reading of a DDL wins."""
        table: dict[int, float] = {}
        for ddl, lum in pairs:
            table[int(ddl)] = float(lum)
        ddls = sorted(table)
        if max_ddl is None:
            max_ddl = ddls[-1] if ddls else 0
        return cls(ddls, [table[d] for d in ddls], max_ddl, ambient=ambient, **kw)


def _bad(path: str | None, message: str, hint: str | None = None) -> DcmtoolsError:
    where = f"{path}: " if path else ""
    return DcmtoolsError(ErrorCode.BAD_MEASUREMENTS, where + message, hint)


def read_measurements(path: str, format: str | None = None) -> Measurements:
    """Read a measurement file; ``format`` is csv, dcmtk or verilum (default: guessed).

    Raises ``DcmtoolsError`` (``not_found``, ``unreadable``, ``empty``,
    ``bad_measurements``) with a message in the user's words.
    """
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise DcmtoolsError(
            ErrorCode.NOT_FOUND, f"{path}: no such file", "check the path of the measurement file"
        ) from None
    except IsADirectoryError:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"{path} is a folder, not a measurement file") from None
    except OSError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise DcmtoolsError(
            ErrorCode.EMPTY, f"{path} is empty", "it should hold one luminance reading per driving level"
        )
    if b"\0" in data[:4096]:
        raise _bad(path, "this is a binary file, not photometer readings", _FORMATS_HINT)
    text = data.decode("utf-8-sig", errors="replace")
    return parse_measurements(text, format=format or guess_format(path, text), path=path)


_FORMATS_HINT = (
    "give a CSV file 'ddl,luminance', a DCMTK monitor file (.lut: 'max N', then 'DDL luminance' pairs) "
    "or a VeriLUM file (CCx_xx.dat)"
)


def guess_format(path: str | None, text: str) -> str:
    """The format of a measurement file, from its extension, else its content."""
    ext = os.path.splitext(path or "")[1].lower()
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext == ".lut":
        return "dcmtk"
    if ext == ".dat":
        return "verilum"
    lines = [ln.strip() for ln in text.splitlines()]
    content = [ln for ln in lines if ln and not ln.startswith("#")]
    if not content:
        return "csv"
    first = content[0]
    if re.match(r"max\b", first, re.IGNORECASE):
        return "dcmtk"
    if "verilum" in first.lower():
        return "verilum"
    if _CSV_HEADER.search(first):
        return "csv"
    tokens = [t for t in re.split(r"[\s,;]+", first) if t]
    if tokens and not _NUMBER.fullmatch(tokens[0]):
        # A title line, then numbers: VeriLUM's characteristic curve file.
        return "verilum"
    return "csv"


def parse_measurements(text: str, format: str = "csv", path: str | None = None) -> Measurements:
    """Parse the text of a measurement file in ``format`` (csv, dcmtk, verilum)."""
    if format == "csv":
        meas = _parse_csv(text, path)
    elif format == "dcmtk":
        meas = _parse_dcmtk(text, path)
    elif format == "verilum":
        meas = _parse_verilum(text, path)
    else:
        raise ValueError(f"unknown measurement format {format!r} (one of {', '.join(FORMATS)})")
    meas.path = path
    _check_readings(meas, path)
    return meas


_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?")
_CSV_HEADER = re.compile(r"\b(ddl|level|gray|grey|pvalue|p-value|lum|luminance|cd/m)", re.IGNORECASE)
_DDL_NAMES = ("ddl", "level", "gray", "grey", "graylevel", "greylevel", "pvalue", "p-value", "p_value", "dv", "value")
_LUM_NAMES = ("luminance", "lum", "l", "cd/m2", "cd/m^2", "cd/m²", "luminance_cd_m2", "luminance (cd/m2)")


def _number(token: str, decimal_comma: bool) -> float:
    token = token.strip().strip('"').strip("'")
    if decimal_comma:
        token = token.replace(",", ".")
    return float(token)


def _parse_csv(text: str, path: str | None) -> Measurements:
    rows: list[list[str]] = []
    lines = [(no, ln.strip()) for no, ln in enumerate(text.splitlines(), 1)]
    lines = [(no, ln) for no, ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise _bad(path, "no readings found", _FORMATS_HINT)
    sample = lines[0][1] if len(lines) == 1 else lines[1][1]
    if "\t" in sample:
        delim = "\t"
    elif ";" in sample:
        delim = ";"
    elif "," in sample:
        delim = ","
    else:
        delim = None  # whitespace
    decimal_comma = delim in (";", "\t", None) and bool(re.search(r"\d,\d", text))
    for line_no, line in lines:
        cells = [c.strip() for c in (line.split(delim) if delim else line.split())]
        rows.append([str(line_no)] + cells)
    ddl_col, lum_col = 1, 2
    header = rows[0]
    if not all(_is_number(c, decimal_comma) for c in header[1:3] if c != ""):
        names = [c.strip().strip('"').lower() for c in header[1:]]
        ddl_col = _column(names, _DDL_NAMES, 0) + 1
        lum_col = _column(names, _LUM_NAMES, 1 if ddl_col != 2 else 0) + 1
        rows = rows[1:]
    ambient = None
    pairs: list[tuple[int, float]] = []
    for row in rows:
        no = row[0]
        first = row[1].strip('"').lower() if len(row) > 1 else ""
        if first in ("amb", "ambient", "lamb"):
            try:
                ambient = _number(row[2], decimal_comma)
            except (IndexError, ValueError):
                raise _bad(
                    path, f"line {no}: the ambient luminance is not a number", "write e.g. 'ambient,0.5'"
                ) from None
            continue
        try:
            ddl_text = row[ddl_col]
            lum_text = row[lum_col]
        except IndexError:
            raise _bad(path, f"line {no}: expected a driving level and a luminance", _FORMATS_HINT) from None
        try:
            ddl_value = _number(ddl_text, decimal_comma)
        except ValueError:
            raise _bad(path, f"line {no}: the driving level {ddl_text!r} is not a number", _FORMATS_HINT) from None
        try:
            lum = _number(lum_text, decimal_comma)
        except ValueError:
            raise _bad(path, f"line {no}: the luminance {lum_text!r} is not a number", _FORMATS_HINT) from None
        if ddl_value != int(ddl_value) or ddl_value < 0:
            raise _bad(path, f"line {no}: the driving level {ddl_text} is not a whole number >= 0")
        pairs.append((int(ddl_value), lum))
    return _from_pairs_checked(pairs, path, "csv", ambient=ambient)


def _is_number(text: str, decimal_comma: bool) -> bool:
    try:
        _number(text, decimal_comma)
        return True
    except ValueError:
        return False


def _column(names: list[str], wanted: Sequence[str], default: int) -> int:
    for i, name in enumerate(names):
        simple = re.sub(r"\s*[\[(].*$", "", name).strip()
        if name in wanted or simple in wanted:
            return i
    for i, name in enumerate(names):
        if any(name.startswith(w) for w in wanted if len(w) > 2):
            return i
    return default


def _from_pairs_checked(pairs: list[tuple[int, float]], path: str | None, fmt: str, **kw: Any) -> Measurements:
    seen: set[int] = set()
    warnings = []
    for ddl, _ in pairs:
        if ddl in seen:
            warnings.append(f"driving level {ddl} was read more than once; the last reading is used")
        seen.add(ddl)
    meas = Measurements.from_pairs(pairs, format=fmt, **kw)
    meas.warnings.extend(warnings)
    return meas


def _parse_dcmtk(text: str, path: str | None) -> Measurements:
    """DCMTK's monitor characteristic file, read as DiDisplayFunction::readConfigFile does."""
    tokens: list[tuple[int, str]] = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        tokens.extend((no, tok) for tok in line.split())
    if not tokens or tokens[0][1] != "max":
        raise _bad(path, "a DCMTK monitor file must start with 'max N' (the largest driving level)", _FORMATS_HINT)
    if len(tokens) < 2 or not re.fullmatch(r"\d+", tokens[1][1]) or int(tokens[1][1]) <= 0:
        raise _bad(path, f"line {tokens[0][0]}: 'max' must be followed by the largest driving level (e.g. 255)")
    max_ddl = int(tokens[1][1])
    ambient = None
    order = 0
    warnings: list[str] = []
    pairs: list[tuple[int, float]] = []
    i = 2
    while i < len(tokens):
        no, tok = tokens[i]
        if tok in ("amb", "lum", "ord"):
            if i + 1 >= len(tokens):
                raise _bad(path, f"line {no}: '{tok}' must be followed by a value")
            value_text = tokens[i + 1][1]
            try:
                value = float(value_text)
            except ValueError:
                raise _bad(path, f"line {no}: '{tok} {value_text}': not a number") from None
            if tok == "amb":
                if value < 0:
                    warnings.append("negative ambient light in the file ignored")
                    value = 0.0
                ambient = value
            elif tok == "ord":
                if value < 0 or value != int(value):
                    warnings.append("invalid polynomial order in the file ignored")
                else:
                    order = int(value)
            # 'lum' (illumination) only matters for printers and scanners.
            i += 2
            continue
        if i + 1 >= len(tokens):
            raise _bad(path, f"line {no}: the driving level {tok} has no luminance")
        lum_text = tokens[i + 1][1]
        if not re.fullmatch(r"\d+", tok):
            raise _bad(path, f"line {no}: {tok!r} is not a driving level (a whole number)", _FORMATS_HINT)
        try:
            lum = float(lum_text)
        except ValueError:
            raise _bad(path, f"line {no}: the luminance {lum_text!r} is not a number") from None
        ddl = int(tok)
        i += 2
        if ddl > max_ddl:
            warnings.append(f"driving level {ddl} exceeds 'max {max_ddl}': reading ignored (as DCMTK does)")
            continue
        if len(pairs) > max_ddl:
            warnings.append("more readings than driving levels: the last lines were ignored (as DCMTK does)")
            break
        pairs.append((ddl, lum))
    meas = _from_pairs_checked(pairs, path, "dcmtk", max_ddl=max_ddl, ambient=ambient)
    meas.fit_order = order
    meas.warnings[:0] = warnings
    return meas


_VERILUM_LEVELS = 256  # VeriLUM measures 8-bit displays: DDL 0..255
_VERILUM_NUMBER = re.compile(r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def _parse_verilum(text: str, path: str | None) -> Measurements:
    """VeriLUM's characteristic curve file (CCx_xx.dat), read as DCMTK's dconvlum does.

    The first line is a description; then 256 pairs of driving level and
    luminance, separated by anything that is not a digit.
    """
    first, rest = (re.split(r"\r\n|\r|\n", text, maxsplit=1) + [""])[:2]
    numbers = _VERILUM_NUMBER.findall(rest)
    if len(numbers) < 4:
        raise _bad(path, "no readings found after the title line", _FORMATS_HINT)
    warnings = []
    if len(numbers) > 2 * _VERILUM_LEVELS:
        warnings.append(f"more than {_VERILUM_LEVELS} readings: the rest was ignored (as DCMTK's dconvlum does)")
        numbers = numbers[: 2 * _VERILUM_LEVELS]
    if len(numbers) % 2:
        warnings.append("an odd count of numbers: the last one was ignored")
        numbers = numbers[:-1]
    pairs = []
    for k in range(0, len(numbers), 2):
        ddl_text = numbers[k]
        if not ddl_text.isdigit():
            raise _bad(path, f"reading {k // 2 + 1}: the driving level {ddl_text} is not a whole number")
        pairs.append((int(ddl_text), float(numbers[k + 1])))
    max_ddl = max(255, max(d for d, _ in pairs))
    meas = _from_pairs_checked(pairs, path, "verilum", max_ddl=max_ddl)
    meas.description = first.strip() or None
    meas.warnings[:0] = warnings
    return meas


def _check_readings(meas: Measurements, path: str | None) -> None:
    if len(meas.ddl) < 2:
        raise _bad(path, f"{len(meas.ddl)} reading(s): at least two driving levels are needed (TG18 uses 18)")
    bad = [d for d, v in zip(meas.ddl, meas.luminance, strict=True) if not math.isfinite(v) or v < 0]
    if bad:
        raise _bad(
            path,
            f"negative or invalid luminance at driving level(s) {', '.join(map(str, bad[:5]))}",
            "luminance readings are in cd/m2 and cannot be negative",
        )
    decreasing = [
        (a, b)
        for a, b, la, lb in zip(meas.ddl, meas.ddl[1:], meas.luminance, meas.luminance[1:], strict=False)
        if lb < la
    ]
    if decreasing:
        a, b = decreasing[0]
        meas.warnings.append(
            f"the luminance decreases from driving level {a} to {b}"
            + (f" (and {len(decreasing) - 1} more place(s))" if len(decreasing) > 1 else "")
        )
