"""The QA plot of a display check: the pictures a physicist puts in the QA file.

Left: the measured contrast response (dL/L per JND) of every interval
against the GSDF's, with the tolerance band of the display class, over the
JND index.  Right: luminance (ambient included) against driving level, the
readings and the GSDF target between L'min and L'max, on a log scale.

Needs matplotlib (``pip install 'dcmtools[plot]'``); it is imported when a
plot is drawn, with the non-interactive Agg backend.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from ..stream.records import DcmtoolsError, ErrorCode
from .gsdf import atomic_write, gsdf_luminance
from .gsdf.criteria import percent

if TYPE_CHECKING:  # pragma: no cover
    from .gsdf import Analysis

__all__ = ["PLOT_FORMATS", "matplotlib_available", "plot_figure", "write_plot"]

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
# Both spellings: the PyPI one, and the one for a checkout (where ./scripts/test made .venv).
INSTALL_HINT = (
    "install the plotting extra (it adds matplotlib): pip install 'dcmtools[plot]', "
    "or in a checkout of dcmtools: .venv/bin/pip install -e '.[plot]'"
)


def matplotlib_available() -> bool:
    """Whether ``--plot`` can work here."""
    import importlib.util

    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def plot_figure(analysis: Analysis) -> Any:
    """The matplotlib ``Figure`` of the check (two panels)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    a = analysis
    fig = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    _contrast_panel(left, a)
    _luminance_panel(right, a)
    verdict = "PASS" if a.passed else "FAIL"
    name = os.path.basename(a.measurements.path or "") or "display"
    fig.suptitle(
        f"{name}: {verdict} ({a.display_class})   L'max {a.lmax:.1f} cd/m²   L'min {a.lmin:.3g} cd/m²   "
        f"LR {a.luminance_ratio:.0f}   Lamb {a.ambient:g} cd/m²   {a.jnd_range:.0f} JNDs",
        fontsize=11,
        color="tab:green" if a.passed else "tab:red",
    )
    return fig


def _contrast_panel(ax: Any, a: Analysis) -> None:
    """Contrast response against the GSDF's, with the tolerance band."""
    tol = next(c.limit for c in a.criteria if c.name == "contrast_response")
    mids = [(iv.jnd_low + iv.jnd_high) / 2 for iv in a.intervals]
    steps = 200
    lo, hi = a.jnd_min, a.jnd_max
    grid = [lo + (hi - lo) * k / steps for k in range(steps + 1)]
    # The GSDF's response over intervals as wide as the measured ones, so the
    # curve passes through the expected points (they differ from the
    # derivative by a fraction of a percent).
    width = sorted(iv.jnd_high - iv.jnd_low for iv in a.intervals)[len(a.intervals) // 2]
    half = width / 2
    curve = []
    for j in grid:
        la, lb = gsdf_luminance(max(j - half, 1e-6)), gsdf_luminance(j + half)
        curve.append(2 * (lb - la) / (lb + la) / width)
    ax.fill_between(
        grid,
        [c * (1 - tol) for c in curve],
        [c * (1 + tol) for c in curve],
        color="tab:green",
        alpha=0.18,
        linewidth=0,
        label=f"GSDF ±{tol * 100:g}% ({a.display_class})",
    )
    ax.plot(grid, curve, color="tab:green", linewidth=1.5, label="GSDF (DICOM PS3.14)")
    inside = [abs(iv.error) <= tol for iv in a.intervals]
    ax.plot(mids, [iv.contrast for iv in a.intervals], color="tab:blue", linewidth=0.8, alpha=0.6)
    styles = {
        True: {"color": "tab:blue", "s": 22, "zorder": 3, "label": "measured"},
        False: {"color": "tab:red", "marker": "x", "s": 40, "zorder": 4, "label": "outside tolerance"},
    }
    for within, style in styles.items():
        if within or not all(inside):
            chosen = [(m, iv.contrast) for m, iv, ok in zip(mids, a.intervals, inside, strict=True) if ok == within]
            ax.scatter([m for m, _ in chosen], [c for _, c in chosen], **style)
    worst = a.max_error_interval
    ax.annotate(
        f"largest error {percent(a.max_error)}%\nDDL {worst.ddl_low}–{worst.ddl_high}",
        xy=((worst.jnd_low + worst.jnd_high) / 2, worst.contrast),
        xytext=(0.55, 0.8),
        textcoords="axes fraction",
        arrowprops={"arrowstyle": "->", "color": "0.3"},
        fontsize=9,
    )
    _finish(ax, "JND index", "contrast response dL/L per JND", "Contrast response", "lower left")


def _luminance_panel(ax: Any, a: Analysis) -> None:
    """Luminance against driving level, measured and the GSDF's target."""
    ax.plot(a.ddl, a.target, color="tab:green", linewidth=4, alpha=0.45, label="GSDF target")
    ax.plot(a.ddl, a.luminance, "o-", color="tab:blue", markersize=4, linewidth=0.8, label="measured L' = L + Lamb")
    if a.ambient > 0:
        ax.axhline(a.ambient, color="0.5", linestyle=":", linewidth=1, label=f"ambient {a.ambient:g} cd/m²")
    _finish(ax, "digital driving level (DDL)", "luminance (cd/m²)", "Luminance response", "upper left")


def _finish(ax: Any, xlabel: str, ylabel: str, title: str, legend: str) -> None:
    """A log-scale panel's labels, grid and legend."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc=legend, fontsize=8)


def write_plot(analysis: Analysis, path: str, *, overwrite: bool = False) -> None:
    """Draw the plot into ``path`` (.png, .svg or .pdf), written atomically."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in PLOT_FORMATS:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE, f"cannot plot to {path}: unknown picture type", "name the file .png, .svg or .pdf"
        )
    if not matplotlib_available():
        raise DcmtoolsError(ErrorCode.WRITE_FAILED, f"cannot draw {path}: matplotlib is not installed", INSTALL_HINT)
    if os.path.exists(path) and not overwrite:
        raise DcmtoolsError(ErrorCode.EXISTS, f"{path} exists", "use `overwrite` to replace it")
    fig = plot_figure(analysis)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=PLOT_FORMATS[ext], dpi=100)
    atomic_write(path, buffer.getvalue(), overwrite=overwrite)
