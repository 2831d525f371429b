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

One module per concern: ``curve`` (L(j), j(L)), ``fit`` (DCMTK's spline and
polynomial), ``readings`` (the three file formats), ``criteria`` (the display
classes), ``analysis`` (TG18), ``lut`` (the calibration table).

Pure Python (``math`` only): importing it costs nothing.  The TG18-LN test
patterns are in ``dcmtools.display.tg18``, the QA plot in ``dcmtools.display.plot``.
"""

from __future__ import annotations

from .analysis import Analysis, Interval, analyze, verify_display
from .criteria import CLASSES, ClassCriteria, Criterion
from .curve import (
    GSDF_JND_MAX,
    GSDF_JND_MIN,
    gsdf_contrast,
    gsdf_luminance,
    gsdf_table,
    jnd_index,
)
from .lut import (
    CalibrationLUT,
    atomic_write,
    calibration_lut,
    characteristic_curve,
    write_lut,
)
from .readings import (
    FORMATS,
    Measurements,
    guess_format,
    parse_measurements,
    read_measurements,
)

__all__ = [
    "GSDF_JND_MIN",
    "GSDF_JND_MAX",
    "CLASSES",
    "ClassCriteria",
    "FORMATS",
    "Criterion",
    "Measurements",
    "Interval",
    "Analysis",
    "CalibrationLUT",
    "gsdf_luminance",
    "jnd_index",
    "gsdf_table",
    "gsdf_contrast",
    "guess_format",
    "atomic_write",
    "read_measurements",
    "parse_measurements",
    "analyze",
    "characteristic_curve",
    "calibration_lut",
    "write_lut",
    "verify_display",
]
