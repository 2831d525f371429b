"""The criteria of the display classes (AAPM TG18), with their sources, and one checked criterion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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


def _tg18_class(name: str, description: str, tolerance: float, min_lmax: float, min_ratio: float) -> ClassCriteria:
    """A TG18 display class: its thresholds, the ambient limits they share, and the sources of each."""
    return ClassCriteria(
        name=name,
        description=description,
        tolerance=tolerance,
        min_lmax=min_lmax,
        min_ratio=min_ratio,
        max_ambient_ratio=2.0 / 3.0,
        recommended_ambient_ratio=0.25,
        sources={
            "contrast_response": f"{TG18}, sect. 4.3 (luminance response): within {tolerance * 100:g}% of the GSDF; "
            f"also {ACR}",
            "lmax": f"{TG18}, sect. 4.3: L'max at least {min_lmax:g} cd/m2",
            "luminance_ratio": f"{TG18}, sect. 4.3: L'max/L'min at least {min_ratio:g}",
            "ambient_ratio": f"{TG18}, sect. 4.2 (reflection) and {TG270}: Lamb/Lmin at most 2/3, below 1/4 recommended",
        },
    )


CLASSES: dict[str, ClassCriteria] = {
    "primary": _tg18_class(
        "primary", "displays used to interpret medical images (TG18 primary; diagnostic)", 0.10, 170.0, 250.0
    ),
    "secondary": _tg18_class(
        "secondary", "displays for viewing medical images, not for interpretation (TG18 secondary)", 0.20, 100.0, 100.0
    ),
}


# What each criterion is called in a report, and what to do when a display fails it.
# Options are named by their keyword in backquotes (`lut`); a command spells them its way.
LABELS = {
    "contrast_response": "largest contrast response error",
    "lmax": "L'max",
    "luminance_ratio": "luminance ratio L'max/L'min",
    "ambient_ratio": "ambient ratio Lamb/Lmin",
}
HINTS = {
    "contrast_response": "calibrate the display to the GSDF (`lut` writes the table) and measure again",
    "lmax": "raise the backlight/brightness, or replace an ageing display",
    "luminance_ratio": "lower the black level or the room light, or raise the maximum luminance",
    "ambient_ratio": "dim the room light or move the display away from lights and windows",
}


def percent(error: float) -> str:
    """An error as a signed percentage, without a '-0.0'."""
    return f"{round(error * 100, 1) + 0.0:+.1f}"


def number(value: float | None, spec: str = ".3g") -> str:
    """A value of a record; ``None`` (not finite) is infinite."""
    return "inf" if value is None else format(value, spec)


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
