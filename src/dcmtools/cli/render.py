"""``dcmtools render``: DICOM images to PNG or JPEG, thumbnails and contact sheets."""

from typing import Annotated, Any

import typer

from ..stream.records import DcmtoolsError, human_failure
from .application import app
from .common import FileArgs, StdArgs, option_groups, out_dir_option
from .spelling import spell, spell_record


@app.command("render")
@option_groups
def render_command(
    output: out_dir_option("--sheet") = None,  # type: ignore[valid-type]
    format: Annotated[
        str, typer.Option("--format", "-f", metavar="png|jpeg", help="Image format.", show_default=True)
    ] = "png",
    quality: Annotated[int, typer.Option("--quality", metavar="Q", help="JPEG quality 1-100.", show_default=True)] = 90,
    bits: Annotated[
        int, typer.Option("--bits", metavar="8|16", help="PNG bits per grey sample (colour is 8).", show_default=True)
    ] = 8,
    frame: Annotated[
        int | None, typer.Option("--frame", metavar="N", help="Only frame N (from 1) [default: every frame].")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option("--window", "-w", metavar="C,W", help="Window center and width (e.g. 40,400 for CT soft tissue)."),
    ] = None,
    minmax: Annotated[bool, typer.Option("--minmax", help="Window from the lowest to the highest value.")] = False,
    voi_lut: Annotated[
        int | None, typer.Option("--voi-lut", metavar="N", help="The file's N-th VOI LUT (from 1).")
    ] = None,
    histogram: Annotated[
        bool, typer.Option("--histogram", help="Window over the values, the 5% most extreme left out.")
    ] = False,
    size: Annotated[
        str | None, typer.Option("--size", metavar="WxH", help="Scale to fit this box, aspect kept (e.g. 512x512).")
    ] = None,
    overlays: Annotated[bool, typer.Option("--overlays", help="Burn the overlay planes (60xx) in, in white.")] = False,
    thumbnails: Annotated[
        bool,
        typer.Option("--thumbnails", help="One image per series (its middle instance), 256 px unless --size."),
    ] = False,
    sheet: Annotated[
        str | None,
        typer.Option("--sheet", metavar="FILE", help="Write one PNG contact sheet of the inputs (no -o needed)."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option("--label", metavar="KEYWORDS", help="Sheet tiles: attributes written under each tile."),
    ] = None,
    columns: Annotated[
        int | None, typer.Option("--columns", metavar="N", help="Sheet: tiles per row [default: a square grid].")
    ] = None,
    files: FileArgs.without("shard", "journal", "cluster") = FileArgs(),  # type: ignore[valid-type]
    std: StdArgs = StdArgs(),
) -> None:
    """Render DICOM images as PNG or JPEG, as a viewer shows them.

    The display pipeline of PS3.4: modality LUT or rescale; the VOI (the
    file's first window by default, else its VOI LUT, else min-max);
    MONOCHROME1 and INVERSE shown inverted; palette colour and YBR converted
    to RGB; --size; --overlays burned in. The output names mirror the inputs
    under -o DIR: name.png, or name.f0001.png ... for each frame of a
    multi-frame image. A file without pixel data, or whose pixel data cannot
    be decoded, is a failed record and the batch goes on. Windows are those
    of DCMTK's dcmj2pnm (PS3.3 C.11.2.1.2).

    \b
    Examples:
      dcmtools render study/ -o png/
      dcmtools render study/ -o soft-tissue/ --window 40,400 --size 512x512
      dcmtools render us.dcm -o out/ --frame 3 --format jpeg --quality 85
      dcmtools render study/ -o png16/ --bits 16 --minmax
      dcmtools render archive/ -o thumbs/ --thumbnails
      dcmtools render study/ --sheet sheet.png --label Modality,SeriesDescription
    """
    from ..render import RenderOptions, parse_size, parse_window

    if sheet is None and output is None:
        raise typer.BadParameter("-o DIR is required (or --sheet FILE)", param_hint="-o/--output")
    if sheet is not None and thumbnails:
        raise typer.BadParameter("choose one of --sheet and --thumbnails", param_hint="--sheet")
    try:
        options = RenderOptions(
            format=format.lower(),
            quality=quality,
            bits=bits,
            frame=frame,
            window=parse_window(window) if window else None,
            minmax=minmax,
            voi_lut=voi_lut,
            histogram=histogram,
            size=parse_size(size) if size else None,
            overlays=overlays,
            overwrite=files.overwrite,
            labels=tuple(k.strip() for k in (label or "").split(",") if k.strip()),
        )
    except DcmtoolsError as exc:
        raise typer.BadParameter(spell(str(exc))) from None
    if sheet is not None and options.format != "png":
        raise typer.BadParameter("a contact sheet is a PNG", param_hint="--format")

    with std.run("render", _human) as run:
        # Import the pixel stack now, so forked workers start warm.
        import numpy  # noqa: F401
        import PIL.Image  # noqa: F401
        import pydicom  # noqa: F401

        from .. import render as lib

        items = run.inputs(files)
        n = files.workers()
        if sheet is not None:
            records = lib.contact_sheet(items, sheet, options, jobs=n, columns=columns)
        elif thumbnails:
            records = lib.thumbnails(items, str(output), files.inputs, options, n)
        else:
            records = lib.run_render(items, str(output), files.inputs, options, n)
        for record in run.progress(records):
            if record.get("type") == "sheet":
                run.summary_extra.update(sheet=record["out"], tiles=record["tiles"])
                continue
            run.write(spell_record(record))


def _human(record: dict[str, Any]) -> str | None:
    if record.get("type") == "summary":
        return None
    if record.get("ok") is False:
        return human_failure(record, record.get("path", ""))
    if record.get("tile"):
        return f"ok     {record.get('path')} -> tile {record['tile'][0]},{record['tile'][1]}"
    outs = record.get("outs") or [record.get("out")]
    more = f" (+{len(outs) - 1} frames)" if len(outs) > 1 else ""
    how = ""
    if record.get("window"):
        how = f"window {record['window'][0]:g},{record['window'][1]:g} ({record.get('voi')})"
    elif record.get("voi_lut"):
        how = f"VOI LUT {record['voi_lut']}"
    elif record.get("photometric"):
        how = record["photometric"]
    return f"ok     {record.get('path')} -> {outs[0]}{more}  {record.get('width')}x{record.get('height')} {how}"
