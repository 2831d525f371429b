"""The TG18 luminance response evaluation of a display, and the whole check of ``verify-display``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from ...stream.records import DcmtoolsError, ErrorCode
from .criteria import (
    CLASSES,
    HINTS,
    LABELS,
    ClassCriteria,
    Criterion,
    _clean,
    number,
    percent,
)
from .curve import gsdf_luminance, gsdf_table, jnd_index
from .readings import Measurements, _bad, read_measurements


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

    def failure_message(self) -> str:
        """What fails, in words: each failed criterion with its value and limit."""
        parts = []
        for c in self.failed_criteria:
            if c.name == "contrast_response":
                iv = self.max_error_interval
                parts.append(
                    f"contrast response off by {percent(self.max_error)}% at DDL {iv.ddl_low}-{iv.ddl_high} "
                    f"(within ±{c.limit * 100:g}% required)"
                )
            elif c.name == "lmax":
                parts.append(f"L'max {number(c.value, '.1f')} cd/m2 (at least {c.limit:g} required)")
            elif c.name == "luminance_ratio":
                parts.append(f"luminance ratio {number(c.value, '.0f')} (at least {c.limit:g} required)")
            else:
                parts.append(f"ambient ratio {number(c.value, '.2f')} (at most {c.limit:.2f} allowed)")
        return (
            f"the display fails {len(parts)} of {len(self.criteria)} {self.display_class}-class criteria: "
            + "; ".join(parts)
        )

    def verdict(self) -> DcmtoolsError | None:
        """``None`` when the display passes; else the ``nonconformant`` error: what fails and what to do."""
        if self.passed:
            return None
        hints = [HINTS[c.name] for c in self.failed_criteria]
        return DcmtoolsError(ErrorCode.NONCONFORMANT, self.failure_message(), "; ".join(hints))

    def record(self, *, intervals: bool = True) -> dict[str, Any]:
        """The ``display`` record with its verdict: ``ok``, and the ``error`` when it fails."""
        rec = self.as_record(intervals=intervals)
        error = self.verdict()
        rec["ok"] = error is None
        if error is not None:
            rec["error"] = error.as_error()
        return rec

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
    warnings = list(measurements.warnings)
    amb, amb_source = _ambient(measurements, ambient, warnings)
    ddls, lums = _select_levels(measurements, levels)
    lum_p = [v + amb for v in lums]
    _check_range(path, ddls, lum_p)
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
    intervals = _intervals(ddls, lum_p, jnds, target)
    worst = max(intervals, key=lambda iv: abs(iv.error))
    ratio = lmax / lmin
    amb_ratio = amb / lums[0] if lums[0] > 0 else (0.0 if amb == 0 else math.inf)
    limits = _Limits(crit, tolerance, min_lmax, min_ratio, max_ambient_ratio)
    criteria = _criteria(limits, abs(worst.error), lmax, ratio, amb_ratio, warnings)
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


def _check_range(path: str | None, ddls: list[int], lum_p: list[float]) -> None:
    """Readings (ambient included) that the GSDF can be fitted to: above 0, rising overall."""
    if lum_p[0] <= 0:
        raise _bad(
            path,
            f"the luminance at driving level {ddls[0]} is 0 and there is no ambient light: "
            "the GSDF is not defined at 0 cd/m2",
            "give the reflected ambient luminance with `ambient` (measured with the display off)",
        )
    if lum_p[-1] <= lum_p[0]:
        raise _bad(
            path,
            f"the luminance at the highest driving level ({lum_p[-1]:.4g} cd/m2 with ambient) is not above the "
            f"lowest ({lum_p[0]:.4g} cd/m2): these do not look like readings of a display's gray scale",
        )


def _ambient(measurements: Measurements, ambient: float | None, warnings: list[str]) -> tuple[float, str]:
    """The ambient luminance and where it came from (option, file or none); warns when none."""
    if ambient is not None:
        if ambient < 0:
            raise ValueError("the ambient luminance cannot be negative")
        return float(ambient), "option"
    if measurements.ambient is not None:
        return float(measurements.ambient), "file"
    warnings.append(
        "no ambient luminance given: 0 is used, so the readings are taken to include the room's reflected light "
        "(give `ambient` L, in cd/m2, measured with the display off)"
    )
    return 0.0, "none"


def _intervals(ddls: list[int], lum_p: list[float], jnds: list[float], target: list[float]) -> list[Interval]:
    """The measured and the GSDF's contrast response of every interval between successive readings."""
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
    return intervals


@dataclass(frozen=True)
class _Limits:
    """The class's thresholds, each possibly overridden by the caller (``None``: the class's)."""

    crit: ClassCriteria
    tolerance: float | None
    min_lmax: float | None
    min_ratio: float | None
    max_ambient_ratio: float | None

    def value(self, name: str) -> float:
        given = getattr(self, name)
        return float(getattr(self.crit, name) if given is None else given)

    def source(self, criterion: str, name: str) -> str:
        overridden = " (threshold given on the command line)"
        return str(self.crit.sources[criterion]) + (overridden if getattr(self, name) is not None else "")


def _criteria(
    limits: _Limits, error: float, lmax: float, ratio: float, amb_ratio: float, warnings: list[str]
) -> list[Criterion]:
    """The four TG18 criteria, each with its verdict and source; the ambient one may add a warning."""
    tol, need_lmax, need_ratio = limits.value("tolerance"), limits.value("min_lmax"), limits.value("min_ratio")
    amb_limit = limits.value("max_ambient_ratio")
    recommended = limits.crit.recommended_ambient_ratio
    criteria = [
        Criterion(
            "contrast_response",
            LABELS["contrast_response"],
            error,
            tol,
            "<=",
            error <= tol,
            limits.source("contrast_response", "tolerance"),
        ),
        Criterion(
            "lmax",
            LABELS["lmax"],
            lmax,
            need_lmax,
            ">=",
            lmax >= need_lmax,
            limits.source("lmax", "min_lmax"),
            unit="cd/m2",
        ),
        Criterion(
            "luminance_ratio",
            LABELS["luminance_ratio"],
            ratio,
            need_ratio,
            ">=",
            ratio >= need_ratio,
            limits.source("luminance_ratio", "min_ratio"),
        ),
    ]
    amb_ok = amb_ratio <= amb_limit
    amb_crit = Criterion(
        "ambient_ratio",
        LABELS["ambient_ratio"],
        amb_ratio,
        amb_limit,
        "<=",
        amb_ok,
        limits.source("ambient_ratio", "max_ambient_ratio"),
        recommended=recommended,
    )
    if amb_ok and amb_ratio > recommended:
        amb_crit.warning = (
            f"ambient ratio {amb_ratio:.2f} is above the recommended {recommended:.2f}: "
            "dim the room or shield the display"
        )
        warnings.append(amb_crit.warning)
    criteria.append(amb_crit)
    return criteria


def _select_levels(meas: Measurements, levels: int | None) -> tuple[list[int], list[float]]:
    if levels is None:
        return list(meas.ddl), list(meas.luminance)
    if levels < 2:
        raise ValueError("at least two levels are needed")
    first, last = meas.ddl[0], meas.ddl[-1]
    wanted = [round(first + k * (last - first) / (levels - 1)) for k in range(levels)]
    table = dict(zip(meas.ddl, meas.luminance, strict=True))
    missing = [d for d in wanted if d not in table]
    if missing:
        raise _bad(
            meas.path,
            f"`levels` {levels} needs readings at driving levels {', '.join(map(str, wanted))}; "
            f"missing: {', '.join(map(str, missing[:6]))}{' ...' if len(missing) > 6 else ''}",
            "measure those levels (the TG18-LN patterns of `patterns` show them) or leave out `levels`",
        )
    return wanted, [table[d] for d in wanted]


class AnalysisOptions(TypedDict, total=False):
    """The keywords of ``analyze`` (and ``verify_display``) after the readings."""

    ambient: float | None
    display_class: str
    levels: int | None
    tolerance: float | None
    min_lmax: float | None
    min_ratio: float | None
    max_ambient_ratio: float | None


def verify_display(path: str, *, format: str | None = None, **options: Unpack[AnalysisOptions]) -> Analysis:
    """Read the photometer readings in ``path`` and evaluate them (``dcmtools verify-display``).

    ``options`` are those of ``analyze``.  Returns the ``Analysis``; ``analysis.passed`` tells whether the display
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
        return analyze(meas, **options)
    except ValueError as exc:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{path}: {exc}") from exc
