"""The calibration LUT of a display, as DCMTK's ``dcmdspfn`` computes it, and its CSV file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO

from ...stream.records import DcmtoolsError, ErrorCode
from .curve import GSDF_JND_MAX, GSDF_JND_MIN, gsdf_table, jnd_index
from .fit import (
    _polynomial_fit,
    _polynomial_values,
    _spline_interpolate,
    _spline_second_derivatives,
)
from .readings import Measurements, _bad

_GSDF_SPLINE: list[float] | None = None


def _gsdf_spline() -> list[float]:
    """The second derivatives of the GSDF table's natural cubic spline (computed once)."""
    global _GSDF_SPLINE
    if _GSDF_SPLINE is None:
        _GSDF_SPLINE = _spline_second_derivatives(list(range(GSDF_JND_MIN, GSDF_JND_MAX + 1)), gsdf_table())
    return _GSDF_SPLINE


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
            "give the reflected ambient luminance with `ambient`",
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
    for p, (d, t, e) in enumerate(zip(lut.ddl, lut.target, lut.expected, strict=True)):
        lines.append(f"{p},{d},{t:.6f},{e:.6f}")
    atomic_write(path, ("\n".join(lines) + "\n").encode("ascii"), overwrite=overwrite)


def atomic_write(path: str, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    An existing ``path`` is an ``exists`` error unless ``overwrite``.
    """
    from ...stream.outputs import write_atomic

    if os.path.isdir(path):
        raise DcmtoolsError(ErrorCode.WRITE_FAILED, f"{path} is a folder", "give a file name")

    def write(stream: BinaryIO) -> None:
        stream.write(data)

    write_atomic(path, write, overwrite)
