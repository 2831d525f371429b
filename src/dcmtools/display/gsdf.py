"""The DICOM Grayscale Standard Display Function and display conformance checks.

Everything a person needs to show that a reading screen follows the GSDF
(DICOM PS3.14), the way medical physicists test it (AAPM TG18):

* ``gsdf_luminance(j)`` and ``jnd_index(L)``: L(j) for JND index j = 1..1023
  and its inverse j(L), with the coefficients and the evaluation order of
  PS3.14 chapter 7, in double precision (bit for bit as DCMTK computes them);
* ``read_measurements(path)``: photometer readings per digital driving level
  (DDL) from a CSV file (``ddl,luminance``), a DCMTK monitor file (``.lut``:
  ``max``, optional ``amb``/``ord``, then DDL/luminance pairs) or a VeriLUM
  characteristic curve file (``CCx_xx.dat``, as DCMTK's ``dconvlum`` reads it);
* ``analyze(measurements, ...)``: the TG18 luminance response evaluation:
  luminance with ambient added (L' = L + Lamb), L'max, L'min, luminance ratio,
  ambient ratio, JND range, the contrast response (dL/L per JND) of every
  interval against the GSDF's at the same points, its error and the largest
  error, each criterion of the display class with its source;
* ``calibration_lut(measurements)``: the table that makes the display follow
  the GSDF between its measured Lmin and Lmax, computed exactly as DCMTK's
  ``dcmdspfn`` computes it (cubic spline interpolation of the readings and of
  the GSDF, nearest measured luminance per P-value);
* ``verify_display(path, ...)``: the whole check of ``dcmtools verify-display``.

Pure Python (``math`` only): importing it costs nothing.  The TG18-LN test
patterns are in ``dcmtools.display.tg18``, the QA plot in ``dcmtools.display.plot``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..stream.records import DcmtoolsError, ErrorCode

__all__ = [
    "GSDF_JND_MIN",
    "GSDF_JND_MAX",
    "CLASSES",
    "Criterion",
    "Measurements",
    "Interval",
    "Analysis",
    "CalibrationLUT",
    "gsdf_luminance",
    "jnd_index",
    "gsdf_table",
    "read_measurements",
    "parse_measurements",
    "analyze",
    "characteristic_curve",
    "calibration_lut",
    "write_lut",
    "verify_display",
]

# ----------------------------------------------------------------------------
# PS3.14 chapter 7: the Grayscale Standard Display Function
# ----------------------------------------------------------------------------

GSDF_JND_MIN = 1
GSDF_JND_MAX = 1023

# L(j) = 10^((a + c ln j + e ln^2 j + g ln^3 j + m ln^4 j) /
#            (1 + b ln j + d ln^2 j + f ln^3 j + h ln^4 j + k ln^5 j))
_A = -1.3011877
_B = -2.5840191e-2
_C = 8.0242636e-2
_D = -1.0320229e-1
_E = 1.3646699e-1
_F = 2.8745620e-2
_G = -2.5468404e-2
_H = -3.1978977e-3
_K = 1.2992634e-4
_M = 1.3635334e-3

# j(L) = A + B log10 L + C (log10 L)^2 + ... + I (log10 L)^8
_JA = 71.498068
_JB = 94.593053
_JC = 41.912053
_JD = 9.8247004
_JE = 0.28175407
_JF = -1.1878455
_JG = -0.18014349
_JH = 0.14710899
_JI = -0.017046845


def gsdf_luminance(j: float) -> float:
    """L(j) in cd/m2 for the JND index ``j`` (PS3.14 eq. 7-1; 1 <= j <= 1023).

    Values outside 1..1023 are computed by the same formula (the standard
    defines the function only inside); ``j`` must be positive.
    """
    if not j > 0:
        raise ValueError(f"the JND index must be positive, not {j!r}")
    ln = math.log(j)
    ln2 = ln * ln
    ln3 = ln2 * ln
    ln4 = ln3 * ln
    # The same terms in the same order as DCMTK (digsdfn.cc): identical bits.
    return math.pow(
        10.0,
        (_A + _C * ln + _E * ln2 + _G * ln3 + _M * ln4) / (1 + _B * ln + _D * ln2 + _F * ln3 + _H * ln4 + _K * (ln4 * ln)),
    )


def jnd_index(luminance: float) -> float:
    """j(L): the JND index of the luminance ``luminance`` in cd/m2 (PS3.14 eq. 7-2).

    The standard's inverse is a polynomial fit: j(L(j)) differs from j by
    less than 0.1 JND over 1..1023.  Defined for 0.05 <= L <= 4000 cd/m2;
    other positive luminances are computed by the same polynomial.
    """
    if not luminance > 0:
        raise ValueError(f"the luminance must be positive, not {luminance!r}")
    lg = [math.log10(luminance)]
    for _ in range(7):  # powers by repeated multiplication, as DCMTK does
        lg.append(lg[-1] * lg[0])
    return (
        _JA
        + _JB * lg[0]
        + _JC * lg[1]
        + _JD * lg[2]
        + _JE * lg[3]
        + _JF * lg[4]
        + _JG * lg[5]
        + _JH * lg[6]
        + _JI * lg[7]
    )


def gsdf_contrast(j: float) -> float:
    """The GSDF's contrast response at ``j``: dL/L for one JND, (L(j+½) - L(j-½)) / L(j)."""
    return (gsdf_luminance(j + 0.5) - gsdf_luminance(j - 0.5)) / gsdf_luminance(j)


_GSDF_TABLE: list[float] | None = None
_GSDF_SPLINE: list[float] | None = None


def gsdf_table() -> list[float]:
    """L(j) for j = 1..1023 (index 0 is j = 1), the table of PS3.14 Annex B computed."""
    global _GSDF_TABLE
    if _GSDF_TABLE is None:
        _GSDF_TABLE = [gsdf_luminance(j) for j in range(GSDF_JND_MIN, GSDF_JND_MAX + 1)]
    return _GSDF_TABLE


def _gsdf_spline() -> list[float]:
    global _GSDF_SPLINE
    if _GSDF_SPLINE is None:
        _GSDF_SPLINE = _spline_second_derivatives(list(range(GSDF_JND_MIN, GSDF_JND_MAX + 1)), gsdf_table())
    return _GSDF_SPLINE


# ----------------------------------------------------------------------------
# DCMTK's interpolation (dcmimgle displint.h, dicrvfit.h), reproduced exactly
# ----------------------------------------------------------------------------


def _spline_second_derivatives(x: Sequence[float], y: Sequence[float]) -> list[float]:
    """Natural cubic spline: second derivatives at the knots (DiCubicSpline::Function)."""
    n = len(x)
    y2 = [0.0] * n
    u = [0.0] * n
    for i in range(1, n - 1):
        sig = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1])
        p = sig * y2[i - 1] + 2.0
        y2[i] = (sig - 1.0) / p
        u[i] = (y[i + 1] - y[i]) / (x[i + 1] - x[i]) - (y[i] - y[i - 1]) / (x[i] - x[i - 1])
        u[i] = (6.0 * u[i] / (x[i + 1] - x[i - 1]) - sig * u[i - 1]) / p
    qn = un = 0.0
    y2[n - 1] = (un - qn * u[n - 2]) / (qn * y2[n - 2] + 1.0) if n > 1 else 0.0
    for i in range(n - 1, 0, -1):
        y2[i - 1] = y2[i - 1] * y2[i] + u[i - 1]
    return y2


def _spline_interpolate(
    xa: Sequence[float], ya: Sequence[float], y2a: Sequence[float], xs: Iterable[float]
) -> list[float]:
    """Evaluate the spline at ``xs`` (DiCubicSpline::Interpolation, its search included)."""
    na = len(xa)
    out: list[float] = []
    klo, khi = 0, na - 1
    for x in xs:
        if xa[klo] > x or xa[khi] < x:
            klo, khi = 0, na - 1
        while khi - klo > 1:
            k = (khi + klo) >> 1
            if xa[k] > x:
                khi = k
            else:
                klo = k
        if xa[khi] == x:
            out.append(float(ya[khi]))
            continue
        h = float(xa[khi]) - float(xa[klo])
        if h == 0.0:
            raise ValueError("two readings at the same driving level")
        a = (float(xa[khi]) - x) / h
        b = (x - float(xa[klo])) / h
        out.append(
            a * ya[klo] + b * ya[khi] + ((a * a * a - a) * y2a[klo] + (b * b * b - b) * y2a[khi]) * (h * h) / 6.0
        )
    return out


def _polynomial_fit(x: Sequence[int], y: Sequence[float], order: int) -> list[float] | None:
    """Least-squares polynomial coefficients (DiCurveFitting::calculateCoefficients)."""
    n = len(x)
    size = order + 1
    basis = [0.0] * (size * n)
    for i in range(size):
        for j in range(n):
            k = i + j * size
            basis[k] = 1.0 if i == 0 else float(x[j]) * basis[k - 1]
    alpha = [0.0] * (size * size)
    for i in range(size):
        for j in range(i + 1):
            total = 0.0
            for k in range(n):
                total += basis[i + k * size] * basis[j + k * size]
            alpha[i + j * size] = total
            if i != j:
                alpha[j + i * size] = total
    beta = [0.0] * size
    for i in range(size):
        total = 0.0
        for j in range(n):
            total += float(y[j]) * basis[i + j * size]
        beta[i] = total
    if not _gauss_jordan(alpha, beta, size):
        return None
    return beta


def _gauss_jordan(a: list[float], b: list[float], n: int) -> bool:
    """DiCurveFitting::solve: Gauss-Jordan elimination with partial pivoting."""
    result = False
    for i in range(n):
        mag = 0.0
        pivot = -1
        for j in range(i, n):
            mag2 = abs(a[i + j * n])
            if mag2 > mag:
                mag = mag2
                pivot = j
        if pivot == -1 or mag == 0:
            break
        i_n = i * n
        if pivot != i:
            piv_n = pivot * n
            for j in range(i, n):
                a[j + i_n], a[j + piv_n] = a[j + piv_n], a[j + i_n]
            b[i], b[pivot] = b[pivot], b[i]
        mag = a[i + i_n]
        for j in range(i, n):
            a[j + i_n] /= mag
        b[i] /= mag
        for j in range(n):
            if i == j:
                continue
            j_n = j * n
            mag2 = a[i + j_n]
            for k in range(i, n):
                a[k + j_n] -= mag2 * a[k + i_n]
            b[j] -= mag2 * b[i]
        result = True
    return result


def _polynomial_values(start: int, end: int, count: int, order: int, coeff: Sequence[float]) -> list[float]:
    """DiCurveFitting::calculateValues for a double table."""
    xi = (float(end) - float(start)) / (count - 1)
    values = []
    for i in range(count):
        x = float(start) + float(i) * xi
        x2 = 1.0
        w = 0.0
        for j in range(order + 1):
            w += coeff[j] * x2
            x2 *= x
        values.append(w)
    return values


# ----------------------------------------------------------------------------
# Measurements and their file formats
# ----------------------------------------------------------------------------

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
    ) -> "Measurements":
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
        raise DcmtoolsError(ErrorCode.NOT_FOUND, f"{path}: no such file", "check the path of the measurement file")
    except IsADirectoryError:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"{path} is a folder, not a measurement file")
    except OSError as exc:
        raise DcmtoolsError(ErrorCode.UNREADABLE, f"{path}: cannot read: {exc.strerror or exc}")
    if not data.strip():
        raise DcmtoolsError(ErrorCode.EMPTY, f"{path} is empty", "it should hold one luminance reading per driving level")
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
    for no, line in lines:
        cells = [c.strip() for c in (line.split(delim) if delim else line.split())]
        rows.append([str(no)] + cells)
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
                raise _bad(path, f"line {no}: the ambient luminance is not a number", "write e.g. 'ambient,0.5'")
            continue
        try:
            ddl_text = row[ddl_col]
            lum_text = row[lum_col]
        except IndexError:
            raise _bad(path, f"line {no}: expected a driving level and a luminance", _FORMATS_HINT)
        try:
            ddl_value = _number(ddl_text, decimal_comma)
        except ValueError:
            raise _bad(path, f"line {no}: the driving level {ddl_text!r} is not a number", _FORMATS_HINT)
        try:
            lum = _number(lum_text, decimal_comma)
        except ValueError:
            raise _bad(path, f"line {no}: the luminance {lum_text!r} is not a number", _FORMATS_HINT)
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


def _from_pairs_checked(
    pairs: list[tuple[int, float]], path: str | None, fmt: str, **kw: Any
) -> Measurements:
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
                raise _bad(path, f"line {no}: '{tok} {value_text}': not a number")
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
            raise _bad(path, f"line {no}: the luminance {lum_text!r} is not a number")
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
    bad = [d for d, v in zip(meas.ddl, meas.luminance) if not math.isfinite(v) or v < 0]
    if bad:
        raise _bad(path, f"negative or invalid luminance at driving level(s) {', '.join(map(str, bad[:5]))}",
                   "luminance readings are in cd/m2 and cannot be negative")
    decreasing = [
        (a, b) for a, b, la, lb in zip(meas.ddl, meas.ddl[1:], meas.luminance, meas.luminance[1:]) if lb < la
    ]
    if decreasing:
        a, b = decreasing[0]
        meas.warnings.append(
            f"the luminance decreases from driving level {a} to {b}"
            + (f" (and {len(decreasing) - 1} more place(s))" if len(decreasing) > 1 else "")
        )


# ----------------------------------------------------------------------------
# Criteria of the display classes (AAPM TG18), with their sources
# ----------------------------------------------------------------------------

TG18 = "AAPM On-line Report No. 03 (TG18), Assessment of Display Performance for Medical Imaging Systems (2005)"
ACR = "ACR-AAPM-SIIM Technical Standard for Electronic Practice of Medical Imaging"
TG270 = "AAPM Report No. 270 (TG270), Display Quality Assurance (2019)"


@dataclass(frozen=True)
class ClassCriteria:
    """The thresholds of one display class and where each comes from."""

    name: str
    description: str
    tolerance: float  # largest |contrast response error|
    min_lmax: float  # L'max, cd/m2
    min_ratio: float  # L'max / L'min
    max_ambient_ratio: float  # Lamb / Lmin, limit
    recommended_ambient_ratio: float  # Lamb / Lmin, recommended (a warning above)
    sources: dict[str, str]


_COMMON_SOURCES = {
    "ambient_ratio": f"{TG18}, sect. 4.2 (reflection) and {TG270}: Lamb/Lmin at most 2/3, below 1/4 recommended",
}

CLASSES: dict[str, ClassCriteria] = {
    "primary": ClassCriteria(
        name="primary",
        description="displays used to interpret medical images (TG18 primary; diagnostic)",
        tolerance=0.10,
        min_lmax=170.0,
        min_ratio=250.0,
        max_ambient_ratio=2.0 / 3.0,
        recommended_ambient_ratio=0.25,
        sources={
            "contrast_response": f"{TG18}, sect. 4.3 (luminance response): within 10% of the GSDF; also {ACR}",
            "lmax": f"{TG18}, sect. 4.3: L'max at least 170 cd/m2",
            "luminance_ratio": f"{TG18}, sect. 4.3: L'max/L'min at least 250",
            **_COMMON_SOURCES,
        },
    ),
    "secondary": ClassCriteria(
        name="secondary",
        description="displays for viewing medical images, not for interpretation (TG18 secondary)",
        tolerance=0.20,
        min_lmax=100.0,
        min_ratio=100.0,
        max_ambient_ratio=2.0 / 3.0,
        recommended_ambient_ratio=0.25,
        sources={
            "contrast_response": f"{TG18}, sect. 4.3 (luminance response): within 20% of the GSDF; also {ACR}",
            "lmax": f"{TG18}, sect. 4.3: L'max at least 100 cd/m2",
            "luminance_ratio": f"{TG18}, sect. 4.3: L'max/L'min at least 100",
            **_COMMON_SOURCES,
        },
    ),
}


@dataclass
class Criterion:
    """One pass/fail check: its value, its limit, the verdict and the source."""

    name: str
    label: str
    value: float | None
    limit: float
    comparison: str  # "<=" or ">="
    ok: bool
    source: str
    unit: str = ""
    recommended: float | None = None
    warning: str | None = None

    def as_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "name": self.name,
            "value": _clean(self.value),
            "limit": self.limit,
            "comparison": self.comparison,
            "ok": self.ok,
            "source": self.source,
        }
        if self.unit:
            rec["unit"] = self.unit
        if self.recommended is not None:
            rec["recommended"] = self.recommended
        if self.warning:
            rec["warning"] = self.warning
        return rec


def _clean(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------
# The TG18 luminance response evaluation
# ----------------------------------------------------------------------------


@dataclass
class Interval:
    """One interval between two successive readings, as TG18 evaluates it.

    ``jnd_low``/``jnd_high`` are the JND indices the GSDF puts at the two
    driving levels when the display's JND range is spread evenly over its
    driving levels; ``contrast`` is the measured dL/L per JND, ``expected`` the
    GSDF's at the same points, ``error`` = contrast / expected - 1.
    """

    ddl_low: int
    ddl_high: int
    lum_low: float  # L' (ambient added)
    lum_high: float
    jnd_low: float
    jnd_high: float
    contrast: float
    expected: float
    error: float
    jnd_per_ddl: float  # measured: (j(L'high) - j(L'low)) / (ddl_high - ddl_low)

    def as_record(self) -> dict[str, Any]:
        return {
            "ddl": [self.ddl_low, self.ddl_high],
            "luminance": [self.lum_low, self.lum_high],
            "jnd": [self.jnd_low, self.jnd_high],
            "contrast": self.contrast,
            "gsdf_contrast": self.expected,
            "error": self.error,
            "jnd_per_ddl": self.jnd_per_ddl,
        }


@dataclass
class Analysis:
    """The result of ``analyze``: everything a QA report needs."""

    measurements: Measurements
    display_class: str
    ambient: float
    ambient_source: str  # file | option | none
    ddl: list[int]  # the readings evaluated
    luminance: list[float]  # L' = L + Lamb at those levels
    lmax: float  # L'max
    lmin: float  # L'min
    lmax_display: float  # Lmax, the reading without ambient
    lmin_display: float  # Lmin, the reading without ambient
    luminance_ratio: float
    ambient_ratio: float
    jnd_min: float
    jnd_max: float
    target: list[float]  # the GSDF's luminance at each evaluated level
    intervals: list[Interval]
    max_error: float  # signed, the largest in magnitude
    max_error_interval: Interval
    mean_jnd_per_ddl: float
    criteria: list[Criterion]
    warnings: list[str]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.criteria)

    @property
    def jnd_range(self) -> float:
        return self.jnd_max - self.jnd_min

    @property
    def failed_criteria(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.ok]

    def as_record(self, *, intervals: bool = True) -> dict[str, Any]:
        """The ``display`` record of the JSON stream (without ``ok``/``error``)."""
        m = self.measurements
        worst = self.max_error_interval
        rec: dict[str, Any] = {
            "type": "display",
            "path": m.path,
            "format": m.format,
            "class": self.display_class,
            "passed": self.passed,
            "readings": len(self.ddl),
            "ddl_range": [self.ddl[0], self.ddl[-1]],
            "ambient": self.ambient,
            "ambient_source": self.ambient_source,
            "lmax": self.lmax,
            "lmin": self.lmin,
            "lmax_display": self.lmax_display,
            "lmin_display": self.lmin_display,
            "luminance_ratio": _clean(self.luminance_ratio),
            "ambient_ratio": _clean(self.ambient_ratio),
            "jnd_min": self.jnd_min,
            "jnd_max": self.jnd_max,
            "jnd_range": self.jnd_range,
            "jnd_per_ddl": self.mean_jnd_per_ddl,
            "max_error": self.max_error,
            "max_error_ddl": [worst.ddl_low, worst.ddl_high],
            "criteria": [c.as_record() for c in self.criteria],
        }
        if m.description:
            rec["description"] = m.description
        if intervals:
            rec["intervals"] = [iv.as_record() for iv in self.intervals]
        if self.warnings:
            rec["warnings"] = list(self.warnings)
        return rec


def analyze(
    measurements: Measurements,
    *,
    ambient: float | None = None,
    display_class: str = "primary",
    levels: int | None = None,
    tolerance: float | None = None,
    min_lmax: float | None = None,
    min_ratio: float | None = None,
    max_ambient_ratio: float | None = None,
) -> Analysis:
    """Evaluate the luminance response of a display as AAPM TG18 does.

    ``ambient`` (cd/m2) overrides the file's; with neither, 0 is used (the
    readings are then taken to include the room's reflected light).
    ``levels`` evaluates only that many evenly spaced driving levels from the
    readings (TG18 uses 18: 0, 15, ..., 255); by default all readings are used.
    The remaining keywords override the thresholds of ``display_class``.

    For each interval between successive readings the measured contrast
    response is dL/L = 2(L'b - L'a)/(L'b + L'a) divided by the JNDs the
    interval should span if the display followed the GSDF from L'min to L'max
    (its JND range spread evenly over the driving levels); the GSDF's
    response at the same points is computed the same way from L(j); the error
    is their ratio minus one.
    """
    try:
        crit = CLASSES[display_class]
    except KeyError:
        raise ValueError(f"unknown display class {display_class!r} (one of {', '.join(CLASSES)})") from None
    path = measurements.path
    if ambient is not None:
        if ambient < 0:
            raise ValueError("the ambient luminance cannot be negative")
        amb, amb_source = float(ambient), "option"
    elif measurements.ambient is not None:
        amb, amb_source = float(measurements.ambient), "file"
    else:
        amb, amb_source = 0.0, "none"
    warnings = list(measurements.warnings)
    if amb_source == "none":
        warnings.append(
            "no ambient luminance given: 0 is used, so the readings are taken to include the room's reflected light "
            "(give --ambient L, in cd/m2, measured with the display off)"
        )

    ddls, lums = _select_levels(measurements, levels)
    lum_p = [v + amb for v in lums]
    if lum_p[0] <= 0:
        raise _bad(
            path,
            f"the luminance at driving level {ddls[0]} is 0 and there is no ambient light: "
            "the GSDF is not defined at 0 cd/m2",
            "give the reflected ambient luminance with --ambient (measured with the display off)",
        )
    if lum_p[-1] <= lum_p[0]:
        raise _bad(
            path,
            f"the luminance at the highest driving level ({lum_p[-1]:.4g} cd/m2 with ambient) is not above the "
            f"lowest ({lum_p[0]:.4g} cd/m2): these do not look like readings of a display's gray scale",
        )
    lmin, lmax = lum_p[0], lum_p[-1]
    jmin, jmax = jnd_index(lmin), jnd_index(lmax)
    if lmin < gsdf_table()[0] or lmax > gsdf_table()[-1]:
        warnings.append(
            "luminance outside the GSDF's range (0.05 to 4000 cd/m2): the check extrapolates PS3.14's formulas"
        )
    span = ddls[-1] - ddls[0]
    jnd_per_ddl = (jmax - jmin) / span
    jnds = [jmin + (d - ddls[0]) * jnd_per_ddl for d in ddls]
    jnds[-1] = jmax
    target = [gsdf_luminance(j) if j > 0 else float("nan") for j in jnds]
    intervals: list[Interval] = []
    for i in range(1, len(ddls)):
        la, lb = lum_p[i - 1], lum_p[i]
        ga, gb = target[i - 1], target[i]
        dj = jnds[i] - jnds[i - 1]
        measured = 2.0 * (lb - la) / (lb + la) / dj
        expected = 2.0 * (gb - ga) / (gb + ga) / dj
        intervals.append(
            Interval(
                ddl_low=ddls[i - 1],
                ddl_high=ddls[i],
                lum_low=la,
                lum_high=lb,
                jnd_low=jnds[i - 1],
                jnd_high=jnds[i],
                contrast=measured,
                expected=expected,
                error=measured / expected - 1.0,
                jnd_per_ddl=(jnd_index(lb) - jnd_index(la)) / (ddls[i] - ddls[i - 1]) if la > 0 and lb > 0 else 0.0,
            )
        )
    worst = max(intervals, key=lambda iv: abs(iv.error))

    tol = crit.tolerance if tolerance is None else tolerance
    need_lmax = crit.min_lmax if min_lmax is None else min_lmax
    need_ratio = crit.min_ratio if min_ratio is None else min_ratio
    amb_limit = crit.max_ambient_ratio if max_ambient_ratio is None else max_ambient_ratio
    lmin_display = lums[0]
    ratio = lmax / lmin
    amb_ratio = amb / lmin_display if lmin_display > 0 else (0.0 if amb == 0 else math.inf)
    src = crit.sources
    overridden = " (threshold given on the command line)"
    criteria = [
        Criterion(
            "contrast_response",
            "largest contrast response error",
            abs(worst.error),
            tol,
            "<=",
            abs(worst.error) <= tol,
            src["contrast_response"] + (overridden if tolerance is not None else ""),
        ),
        Criterion(
            "lmax",
            "L'max",
            lmax,
            need_lmax,
            ">=",
            lmax >= need_lmax,
            src["lmax"] + (overridden if min_lmax is not None else ""),
            unit="cd/m2",
        ),
        Criterion(
            "luminance_ratio",
            "luminance ratio L'max/L'min",
            ratio,
            need_ratio,
            ">=",
            ratio >= need_ratio,
            src["luminance_ratio"] + (overridden if min_ratio is not None else ""),
        ),
    ]
    amb_ok = amb_ratio <= amb_limit
    amb_crit = Criterion(
        "ambient_ratio",
        "ambient ratio Lamb/Lmin",
        amb_ratio,
        amb_limit,
        "<=",
        amb_ok,
        src["ambient_ratio"] + (overridden if max_ambient_ratio is not None else ""),
        recommended=crit.recommended_ambient_ratio,
    )
    if amb_ok and amb_ratio > crit.recommended_ambient_ratio:
        amb_crit.warning = (
            f"ambient ratio {amb_ratio:.2f} is above the recommended {crit.recommended_ambient_ratio:.2f}: "
            "dim the room or shield the display"
        )
        warnings.append(amb_crit.warning)
    criteria.append(amb_crit)
    return Analysis(
        measurements=measurements,
        display_class=display_class,
        ambient=amb,
        ambient_source=amb_source,
        ddl=ddls,
        luminance=lum_p,
        lmax=lmax,
        lmin=lmin,
        lmax_display=lums[-1],
        lmin_display=lums[0],
        luminance_ratio=ratio,
        ambient_ratio=amb_ratio,
        jnd_min=jmin,
        jnd_max=jmax,
        target=target,
        intervals=intervals,
        max_error=worst.error,
        max_error_interval=worst,
        mean_jnd_per_ddl=jnd_per_ddl,
        criteria=criteria,
        warnings=warnings,
    )


def _select_levels(meas: Measurements, levels: int | None) -> tuple[list[int], list[float]]:
    if levels is None:
        return list(meas.ddl), list(meas.luminance)
    if levels < 2:
        raise ValueError("at least two levels are needed")
    first, last = meas.ddl[0], meas.ddl[-1]
    wanted = [round(first + k * (last - first) / (levels - 1)) for k in range(levels)]
    table = dict(zip(meas.ddl, meas.luminance))
    missing = [d for d in wanted if d not in table]
    if missing:
        raise _bad(
            meas.path,
            f"--levels {levels} needs readings at driving levels {', '.join(map(str, wanted))}; "
            f"missing: {', '.join(map(str, missing[:6]))}{' ...' if len(missing) > 6 else ''}",
            "measure those levels (the TG18-LN patterns of --patterns show them) or leave out --levels",
        )
    return wanted, [table[d] for d in wanted]


# ----------------------------------------------------------------------------
# The calibration LUT, as DCMTK's dcmdspfn computes it
# ----------------------------------------------------------------------------


def characteristic_curve(measurements: Measurements) -> list[float]:
    """The display's luminance at every DDL 0..max_ddl, without ambient light.

    Missing driving levels are filled as DCMTK does: a natural cubic spline
    through the readings, or a least-squares polynomial of the file's ``ord``.
    Readings below 0 count as 0.
    """
    ddls = list(measurements.ddl)
    vals = [v if v > 0 else 0.0 for v in measurements.luminance]
    count = measurements.max_ddl + 1
    if len(ddls) > measurements.max_ddl:  # every level present: nothing to fill
        return vals
    if measurements.fit_order > 0:
        coeff = _polynomial_fit(ddls, vals, measurements.fit_order)
        if coeff is None:
            raise _bad(measurements.path, f"the polynomial of order {measurements.fit_order} cannot be fitted")
        return _polynomial_values(0, measurements.max_ddl, count, measurements.fit_order, coeff)
    y2 = _spline_second_derivatives([float(d) for d in ddls], vals)
    return _spline_interpolate(ddls, vals, y2, range(count))


@dataclass
class CalibrationLUT:
    """P-value -> DDL table making a display follow the GSDF (monitor, as dcmdspfn).

    ``ddl[p]`` is the driving level for P-value ``p``; ``target[p]`` is the
    GSDF luminance for ``p`` (ambient included) and ``expected[p]`` the
    measured luminance (ambient included) of the chosen driving level.
    ``measured`` is the display's characteristic curve with ambient (dcmdspfn's
    CC column); ``jnd_min``/``jnd_max`` the JND range it spans.
    """

    ddl: list[int]
    target: list[float]
    expected: list[float]
    measured: list[float]
    jnd_min: float
    jnd_max: float
    ambient: float
    lmin: float  # display only, without ambient (dcmdspfn's "Luminance w/o")
    lmax: float

    def as_record(self) -> dict[str, Any]:
        return {
            "entries": len(self.ddl),
            "jnd_min": self.jnd_min,
            "jnd_max": self.jnd_max,
            "ambient": self.ambient,
        }


def calibration_lut(
    measurements: Measurements, *, ambient: float | None = None, entries: int | None = None
) -> CalibrationLUT:
    """The GSDF calibration table of a monitor, as ``dcmdspfn +Im FILE +Og OUT`` computes it.

    ``entries`` is the number of P-values (default: one per DDL, as
    dcmdspfn writes it).  The JND range is j(Lmin + Lamb) .. j(Lmax + Lamb)
    from the smallest and largest reading; the target of P-value p is the
    GSDF, cubic-spline interpolated over its 1023 points, at
    jmin + p (jmax - jmin)/(entries - 1); its DDL is the driving level whose
    luminance is the nearest, searched upwards as DCMTK does.
    """
    amb = float(ambient if ambient is not None else (measurements.ambient or 0.0))
    if amb < 0:
        raise ValueError("the ambient luminance cannot be negative")
    raw = [v if v > 0 else 0.0 for v in measurements.luminance]
    lmin, lmax = min(raw), max(raw)
    if lmin + amb <= 0:
        raise _bad(
            measurements.path,
            "the lowest reading is 0 cd/m2 and there is no ambient light: the JND range is not defined",
            "give the reflected ambient luminance with --ambient",
        )
    jmin, jmax = jnd_index(lmin + amb), jnd_index(lmax + amb)
    if not jmin < jmax:
        raise _bad(measurements.path, f"invalid JND range {jmin:g} - {jmax:g}: the readings do not rise")
    curve = characteristic_curve(measurements)
    ddl_count = len(curve)
    count = ddl_count if entries is None else int(entries)
    if count < 2:
        raise ValueError("a LUT needs at least two entries")
    # The JND index of every P-value, accumulated step by step as DCMTK does.
    dist = (jmax - jmin) / (count - 1)
    jidx = []
    value = jmin
    for _ in range(count - 1):
        jidx.append(value)
        value += dist
    jidx.append(jmax)
    gsdf = _spline_interpolate(
        [float(j) for j in range(GSDF_JND_MIN, GSDF_JND_MAX + 1)], gsdf_table(), _gsdf_spline(), jidx
    )
    ddl_max = ddl_count - 1
    lut: list[int] = []
    j = 0
    for r in gsdf:
        while j < ddl_max and curve[j] + amb < r:
            j += 1
        if j > 0 and abs(curve[j - 1] + amb - r) < abs(curve[j] + amb - r):
            j -= 1
        lut.append(j)
    return CalibrationLUT(
        ddl=lut,
        target=gsdf,
        expected=[curve[d] + amb for d in lut],
        measured=[v + amb for v in curve],
        jnd_min=jmin,
        jnd_max=jmax,
        ambient=amb,
        lmin=lmin,
        lmax=lmax,
    )


def write_lut(lut: CalibrationLUT, path: str, *, overwrite: bool = False) -> None:
    """Write the table as CSV: ``pvalue,ddl,target_cd_m2,expected_cd_m2`` (atomically)."""
    lines = ["pvalue,ddl,target_cd_m2,expected_cd_m2"]
    for p, (d, t, e) in enumerate(zip(lut.ddl, lut.target, lut.expected)):
        lines.append(f"{p},{d},{t:.6f},{e:.6f}")
    atomic_write(path, ("\n".join(lines) + "\n").encode("ascii"), overwrite=overwrite)


def atomic_write(path: str, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    An existing ``path`` is an ``exists`` error unless ``overwrite``.
    """
    from ..stream.outputs import write_atomic

    if os.path.isdir(path):
        raise DcmtoolsError(ErrorCode.WRITE_FAILED, f"{path} is a folder", "give a file name")
    write_atomic(path, lambda stream: stream.write(data), overwrite)


# ----------------------------------------------------------------------------
# The whole check
# ----------------------------------------------------------------------------


def verify_display(
    path: str,
    *,
    format: str | None = None,
    ambient: float | None = None,
    display_class: str = "primary",
    levels: int | None = None,
    tolerance: float | None = None,
    min_lmax: float | None = None,
    min_ratio: float | None = None,
    max_ambient_ratio: float | None = None,
) -> Analysis:
    """Read the photometer readings in ``path`` and evaluate them (``dcmtools verify-display``).

    Returns the ``Analysis``; ``analysis.passed`` tells whether the display
    meets every criterion of ``display_class``.  Bad files raise
    ``DcmtoolsError``.  Write the calibration table with
    ``write_lut(calibration_lut(analysis.measurements, ambient=...), out)``
    and the QA plot with ``dcmtools.display.plot.write_plot(analysis, out)``.

    Example::

        from dcmtools.display.gsdf import verify_display
        result = verify_display("monitor.csv", ambient=0.4)
        print(result.passed, result.max_error, result.luminance_ratio)
    """
    meas = read_measurements(path, format=format)
    try:
        return analyze(
            meas,
            ambient=ambient,
            display_class=display_class,
            levels=levels,
            tolerance=tolerance,
            min_lmax=min_lmax,
            min_ratio=min_ratio,
            max_ambient_ratio=max_ambient_ratio,
        )
    except ValueError as exc:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{path}: {exc}") from exc
