"""``dcmtools verify-display``: GSDF conformance of a display from photometer readings."""

import os
from typing import Annotated, Any

import typer

from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .application import app
from .common import CommandRun, OverwriteOpt, StdArgs, option_groups
from .spelling import spell_record

# dcmtools.display.gsdf.CLASSES and FORMATS, not imported here so that every other command starts
# without the library (a test checks they agree).
_CLASSES = ("primary", "secondary")
_FORMATS = ("csv", "dcmtk", "verilum")

_EPILOG = """\b
Criteria (all luminances with the ambient added, L' = L + Lamb):
                        primary        secondary
  contrast response     within 10%     within 20%   of the GSDF's, every interval
  L'max                 >= 170 cd/m2   >= 100 cd/m2
  L'max/L'min           >= 250         >= 100
  Lamb/Lmin             <= 2/3 (1/4 recommended: a warning above)

\b
Sources: AAPM On-line Report No. 03 (TG18, 2005), sect. 4.3 luminance
response (contrast response, L'max, luminance ratio) and sect. 4.2
reflection (ambient); ACR-AAPM-SIIM Technical Standard for Electronic
Practice of Medical Imaging (10%/20% contrast response); AAPM Report 270
(2019; ambient ratio). ACR-AAPM-SIIM and Report 270 ask more of diagnostic
displays (L'max and L'max/L'min of 350): use --min-lmax 350 --min-ratio 350.

\b
Contrast response (TG18): for each interval between successive readings,
dL/L = 2(L'b - L'a)/(L'b + L'a) per JND, where the interval spans the JNDs
it would span if the display followed the GSDF from L'min to L'max (the
JND range spread evenly over the driving levels); compared with the GSDF's
dL/L per JND at the same points; error = measured/GSDF - 1.

\b
Measurement files (readings without ambient light, cd/m2):
  CSV      ddl,luminance (header optional; ';' or tab, decimal comma ok;
           a row 'ambient,L' gives the ambient)
  DCMTK    .lut monitor file: 'max N', optional 'amb L' and 'ord N',
           then 'DDL luminance' pairs (as dcmdspfn reads it)
  VeriLUM  CCx_xx.dat: a title line, then DDL/luminance pairs
           (as DCMTK's dconvlum reads it)

\b
--lut FILE writes CSV 'pvalue,ddl,target_cd_m2,expected_cd_m2': for each
P-value the driving level whose measured luminance is nearest the GSDF
target, between the measured Lmin and Lmax (missing levels cubic-spline
interpolated), exactly as DCMTK's dcmdspfn computes it.

\b
Exit status: 0 the display passes, 1 it fails (or a file could not be
read or written), 2 usage error.
"""


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "summary":
        return None
    if record.get("ok") is False and not (kind == "display" and "passed" in record):
        error = record.get("error") or {}
        subject = record.get("out") or record.get("path") or kind
        message = error.get("message", "failed")
        if message.startswith(f"{subject}: "):  # the library names the file too
            message = message[len(subject) + 2 :]
        text = f"FAILED {subject}: {message}"
        if error.get("hint"):
            text += f"\n       {error['hint']}"
        return text
    if kind == "display":
        return _human_display(record)
    if kind == "file":
        return f"wrote  {record['out']}  ({record['pattern']}: square at {record['level']})"
    if kind == "lut":
        return (
            f"wrote  {record['out']}  (calibration LUT, {record['entries']} P-values, "
            f"JND {record['jnd_min']:.2f}-{record['jnd_max']:.2f})"
        )
    if kind == "plot":
        return f"wrote  {record['out']}  (QA plot)"
    return None


def _human_display(r: dict[str, Any]) -> str:
    from ..display.gsdf.criteria import LABELS, number, percent

    lines = []
    verdict = "PASS" if r["passed"] else "FAIL"
    lines.append(
        f"{r['path']}: {verdict}  ({r['class']} display, {r['readings']} readings, DDL "
        f"{r['ddl_range'][0]}-{r['ddl_range'][1]}, {r['format']} file)"
    )
    source = {"file": "from the file", "option": "from --ambient", "none": "not given"}[r["ambient_source"]]
    lines.append(f"  ambient Lamb        {r['ambient']:.4g} cd/m2 ({source})")
    lines.append(f"  L'min               {r['lmin']:.4g} cd/m2")
    lines.append(
        f"  JND range           {r['jnd_min']:.2f} - {r['jnd_max']:.2f} ({r['jnd_range']:.1f} JNDs, "
        f"{r['jnd_per_ddl']:.3f} per DDL)"
    )
    lines.append("  criteria:")
    for c in r["criteria"]:
        mark = "ok  " if c["ok"] else "FAIL"
        if c["name"] == "contrast_response":
            value = f"{percent(r['max_error'])}% at DDL {r['max_error_ddl'][0]}-{r['max_error_ddl'][1]}"
            limit = f"within ±{c['limit'] * 100:g}%"
        elif c["name"] == "lmax":
            value, limit = f"{c['value']:.1f} cd/m2", f">= {c['limit']:g} cd/m2"
        elif c["name"] == "luminance_ratio":
            value, limit = number(c["value"], ".0f"), f">= {c['limit']:g}"
        else:
            value = number(c["value"], ".2f")
            limit = f"<= {c['limit']:.2f}" + (f" ({c['recommended']:.2f} recommended)" if "recommended" in c else "")
        lines.append(f"    {mark} {LABELS.get(c['name'], c['name']):<32} {value:<24} {limit}")
    if r.get("intervals"):
        lines.append("  contrast response per interval (dL/L per JND):")
        lines.append("       DDL       L' cd/m2     measured       GSDF     error")
        limit = next(c["limit"] for c in r["criteria"] if c["name"] == "contrast_response")
        for iv in r["intervals"]:
            flag = "  <" if abs(iv["error"]) > limit else ""
            lines.append(
                f"    {iv['ddl'][0]:>4}-{iv['ddl'][1]:<4} {iv['luminance'][1]:>11.4g}  {iv['contrast']:>11.5f}"
                f" {iv['gsdf_contrast']:>10.5f}  {percent(iv['error']):>7}%{flag}"
            )
    for warning in r.get("warnings", []):
        lines.append(f"  warning: {warning}")
    if r.get("ok") is False and r.get("error", {}).get("code") != ErrorCode.NONCONFORMANT:
        lines.append(f"  FAILED: {r['error']['message']}")
    return "\n".join(lines)


@app.command("verify-display", epilog=_EPILOG)
@option_groups
def verify_display_command(
    measurements: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MEASUREMENTS",
            help="Photometer readings per driving level: CSV (ddl,luminance), DCMTK .lut or VeriLUM .dat.",
            show_default=False,
        ),
    ] = None,
    ambient: Annotated[
        float | None,
        typer.Option(
            "--ambient",
            metavar="L",
            min=0.0,
            help="Reflected ambient luminance in cd/m2 (photometer on the screen, display off); "
            "replaces the file's. Without it and without one in the file, 0.",
        ),
    ] = None,
    display_class: Annotated[
        str,
        typer.Option(
            "--class",
            metavar="CLASS",
            help="primary (displays for interpretation) or secondary (for viewing): the criteria below.",
        ),
    ] = "primary",
    fmt: Annotated[
        str,
        typer.Option(
            "--format", metavar="FORMAT", help="auto (from the extension, else the content), csv, dcmtk or verilum."
        ),
    ] = "auto",
    levels: Annotated[
        int | None,
        typer.Option(
            "--levels",
            metavar="N",
            min=2,
            help="Evaluate N evenly spaced driving levels of the readings (TG18: 18) instead of all of them.",
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            metavar="PCT",
            min=0.0,
            help="Contrast response tolerance in percent, instead of the class's (10 or 20).",
        ),
    ] = None,
    min_lmax: Annotated[
        float | None,
        typer.Option("--min-lmax", metavar="L", min=0.0, help="Smallest L'max in cd/m2, instead of the class's."),
    ] = None,
    min_ratio: Annotated[
        float | None,
        typer.Option("--min-ratio", metavar="R", min=0.0, help="Smallest L'max/L'min, instead of the class's."),
    ] = None,
    max_ambient_ratio: Annotated[
        float | None,
        typer.Option("--max-ambient-ratio", metavar="R", min=0.0, help="Largest Lamb/Lmin, instead of 2/3."),
    ] = None,
    lut: Annotated[
        str | None,
        typer.Option(
            "--lut",
            metavar="FILE",
            help="Write the GSDF calibration table (CSV, P-value to DDL) as DCMTK's dcmdspfn computes it.",
        ),
    ] = None,
    lut_entries: Annotated[
        int | None,
        typer.Option("--lut-entries", metavar="N", min=2, help="P-values in the table [default: one per DDL]."),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            help="Draw the contrast response and luminance plots (.png, .svg or .pdf; needs dcmtools[plot]).",
        ),
    ] = None,
    patterns: Annotated[
        str | None,
        typer.Option(
            "--patterns",
            metavar="DIR",
            help="Write the 18 TG18-LN test patterns as DICOM files into DIR (no MEASUREMENTS needed).",
        ),
    ] = None,
    pattern_bits: Annotated[
        int, typer.Option("--pattern-bits", metavar="BITS", help="Bits of the patterns: 8, 10, 12 or 16.")
    ] = 8,
    pattern_size: Annotated[
        int, typer.Option("--pattern-size", metavar="PIXELS", min=64, help="Width and height of the patterns.")
    ] = 1024,
    overwrite: OverwriteOpt = False,
    std: StdArgs = StdArgs(),
) -> None:
    """Check that a display follows the DICOM GSDF, from photometer readings.

    Reads luminance readings per digital driving level (DDL), adds the
    ambient luminance, and evaluates them as AAPM TG18 does: L'max, L'min,
    luminance ratio, ambient ratio, JND range and the contrast response of
    every interval against the GSDF's. The display passes when every
    criterion of its class holds (exit status 0), else it fails (1).
    On a terminal a report is printed; piped, one JSON record per display.

    Measure with the TG18-LN patterns (--patterns DIR writes them): show
    each, read the luminance of its central square with the room lit as for
    reading (or with the room dark, and give --ambient), and write the 18
    readings into a CSV file.

    \b
    Examples:
      dcmtools verify-display --patterns tg18/             # the 18 patterns to show
      dcmtools verify-display readings.csv --ambient 0.3   # check a primary display
      dcmtools verify-display /usr/share/dcmtk/monitor.lut --class secondary --plot qa.png  # exit status 1: uncalibrated
      dcmtools verify-display readings.csv --lut gsdf-lut.csv
      dcmtools verify-display readings.csv --json | jq 'select(.type=="display") | .max_error'
    """
    if display_class not in _CLASSES:
        raise typer.BadParameter(f"{display_class!r}: one of {', '.join(_CLASSES)}", param_hint="--class")
    if fmt not in ("auto",) + _FORMATS:
        raise typer.BadParameter(f"{fmt!r}: one of auto, {', '.join(_FORMATS)}", param_hint="--format")
    if pattern_bits not in (8, 10, 12, 16):
        raise typer.BadParameter(f"{pattern_bits}: one of 8, 10, 12, 16", param_hint="--pattern-bits")
    if plot is not None:
        from ..display.plot import INSTALL_HINT, PLOT_FORMATS, matplotlib_available

        if os.path.splitext(plot)[1].lower() not in PLOT_FORMATS:
            raise typer.BadParameter(f"{plot!r}: name the picture .png, .svg or .pdf", param_hint="--plot")
        if not matplotlib_available():
            raise typer.BadParameter(f"matplotlib is not installed: {INSTALL_HINT}", param_hint="--plot")
    if measurements and len(measurements) > 1 and (lut or plot):
        raise typer.BadParameter("--lut and --plot take one MEASUREMENTS file at a time", param_hint="--lut/--plot")

    with std.run("verify-display", _human) as run:
        if patterns is not None:
            from ..display.tg18 import write_ln_patterns

            for record in write_ln_patterns(patterns, bits=pattern_bits, size=pattern_size, overwrite=overwrite):
                run.write(record)
            if not measurements:
                return
        if not measurements and patterns is None and not _stdin_piped():
            raise typer.BadParameter(
                "no MEASUREMENTS given (a CSV, DCMTK .lut or VeriLUM file), and no --patterns DIR",
                param_hint="MEASUREMENTS",
            )
        items = list(run.inputs(measurements))
        if not items:
            raise typer.BadParameter("no MEASUREMENTS given", param_hint="MEASUREMENTS")
        if len(items) > 1 and (lut or plot):
            raise typer.BadParameter("--lut and --plot take one MEASUREMENTS file at a time", param_hint="--lut/--plot")
        for item in items:
            if item.error is not None:
                run.write(error_record("display", item.error, path=item.path))
                continue
            _check_one(
                run,
                item.path,
                format=None if fmt == "auto" else fmt,
                ambient=ambient,
                display_class=display_class,
                levels=levels,
                tolerance=None if tolerance is None else tolerance / 100.0,
                min_lmax=min_lmax,
                min_ratio=min_ratio,
                max_ambient_ratio=max_ambient_ratio,
                lut=lut,
                lut_entries=lut_entries,
                plot=plot,
                overwrite=overwrite,
            )


def _stdin_piped() -> bool:
    import sys

    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _check_one(
    run: CommandRun,
    path: str,
    *,
    lut: str | None,
    lut_entries: int | None,
    plot: str | None,
    overwrite: bool,
    **options: Any,
) -> None:
    from ..display import gsdf

    try:
        analysis = gsdf.verify_display(path, **options)
    except DcmtoolsError as exc:
        run.write(spell_record(error_record("display", exc, path=path)))
        return
    run.write(spell_record(analysis.record()))
    if lut is not None:
        try:
            table = gsdf.calibration_lut(analysis.measurements, ambient=analysis.ambient, entries=lut_entries)
            gsdf.write_lut(table, lut, overwrite=overwrite)
            run.write({"type": "lut", "path": path, "out": lut, "ok": True, **table.as_record()})
        except DcmtoolsError as exc:
            run.write(spell_record(error_record("lut", exc, path=path, out=lut)))
    if plot is not None:
        from ..display.plot import write_plot

        try:
            write_plot(analysis, plot, overwrite=overwrite)
            run.write({"type": "plot", "path": path, "out": plot, "ok": True})
        except DcmtoolsError as exc:
            run.write(spell_record(error_record("plot", exc, path=path, out=plot)))
