"""``dcmtools print``: lay images out on films and print them on a DICOM grayscale printer."""

import dataclasses
from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .common import CommandRun, FileArgs, StdArgs
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, client_options, fatal_as_record
from .spelling import spell, spell_error, spell_record, spelled_errors

_EPILOG = """\b
Images, as a viewer shows them: the modality LUT (rescale), then the window
given with --window, else the file's first window (or VOI LUT), else an
8-bit image's whole range or another image's minimum to maximum; MONOCHROME1
inverted after the window; colour images in grayscale (luma), with a warning.
They go to the printer as P-values with an IDENTITY Presentation LUT (when
the printer supports one): 12 bits when the printer takes them (--bits auto
tries 12 and falls back to 8 when the printer refuses), else 8.

\b
The printer assigns every film session, film box and image box UID. When it
refuses a setting without saying which (e.g. 0x0106 invalid attribute
value), dcmtools tries the settings one at a time to name it ("film size A3
is not supported by this printer"); no further film is tried then, since
each would be refused the same way. Options not given are not sent: the
printer uses its defaults, and each film record says what it used.

\b
Records: 'printer' (its status, asked first), one 'film' per film (settings,
images with path/frame/position/window/bits, UIDs, ok), 'file' for an input
that cannot be printed. --dry-run writes each film as it would be laid out
to DIR/film-0001.dcm ... (Secondary Capture; -o DIR, default '.') and does
not contact the printer, so PEER may be left out: with --dry-run a first
argument that is a file, folder, glob or '-' (or not a peer) is an input.
"""


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "summary":
        return None
    if record.get("ok") is False:
        subject = f"film {record['film']}" if kind == "film" else (record.get("path") or record.get("peer") or kind)
        text = human_failure(record, subject)
        if record.get("remaining_not_printed"):
            text += "\n       no further film was tried"
        return text
    if kind == "printer":
        text = f"printer {record.get('peer', '')}  {record.get('printer_status', '?')}"
        if record.get("meaning"):
            text += f" ({record['meaning']})"
        info = record.get("printer_status_info")
        if info and info != "NORMAL":
            text += f"  {info}: {record.get('printer_status_info_meaning', '')}"
        for key in ("printer_name", "manufacturer", "model"):
            if record.get(key):
                text += f"  {key.replace('_', ' ')} {record[key]}"
        return text
    if kind == "film":
        images = record.get("images") or []
        names = ", ".join(
            f"{image['path']}" + (f"[{image['frame']}]" if image.get("frame") else "") for image in images[:4]
        )
        if len(images) > 4:
            names += f", +{len(images) - 4} more"
        settings = " ".join(str(record[k]) for k in ("layout", "film_size", "orientation") if record.get(k))
        verb = f"written {record['out']}" if record.get("dry_run") else "printed"
        return f"film {record['film']}  {verb}  {settings}  {len(images)} image(s), {record.get('bits', '?')} bits: {names}"
    from ..stream.records import default_human

    return default_human(record)


def _is_input(argument: str, net: NetArgs, options: Any) -> bool:
    """With --dry-run, whether the first argument is an input rather than a printer: '-', a path
    that exists, a glob, or anything that is not a peer (so a missing file gets its not_found record)."""
    import os

    from ..stream.records import DcmtoolsError

    if argument == "-" or os.path.exists(argument) or any(c in argument for c in "*?["):
        return True
    try:
        net.peer(argument, options)
    except DcmtoolsError:
        return True
    return False


def _warn(run: CommandRun, record: dict[str, Any], seen: set) -> None:
    """Warnings on stderr: a film's own, and each image's once per file (not per frame)."""
    subject = f"film {record['film']}" if record.get("type") == "film" else record.get("type", "")
    for warning in record.get("warnings") or []:
        run.warn(f"{subject}: {warning}")
    for image in record.get("images") or []:
        for warning in image.get("warnings") or []:
            if (image["path"], warning) not in seen:
                seen.add((image["path"], warning))
                run.warn(f"{image['path']}: {warning}")


@app.command("print", epilog=_EPILOG + "\n" + PEERS_EPILOG + "\n\n" + EXIT_STATUS_EPILOG)
@client_options
def print_command(
    peer: Annotated[
        str | None,
        typer.Argument(
            metavar="PEER",
            help="The printer: AET@HOST:PORT or a name from the peers file. Not needed with --dry-run "
            "(an argument there that is a file, folder, glob or '-', or no peer, is an input).",
            show_default=False,
        ),
    ] = None,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            "-l",
            metavar="C,R",
            help="Images per film: C columns by R rows (STANDARD\\C,R); also ROW\\a,b,.. or COL\\a,b,..",
        ),
    ] = "1,1",
    film_size: Annotated[
        str | None,
        typer.Option(
            "--film-size",
            metavar="SIZE",
            help="8INX10IN, 10INX12IN, 11INX14IN, 14INX14IN, 14INX17IN, "
            "24CMX24CM, 24CMX30CM, A4, A3 ... (14x17, 24x30cm, a4 also)",
            show_default=False,
        ),
    ] = None,
    orientation: Annotated[
        str | None,
        typer.Option("--orientation", metavar="PORTRAIT|LANDSCAPE", help="Film orientation.", show_default=False),
    ] = None,
    copies: Annotated[
        int | None, typer.Option("--copies", metavar="N", help="Copies of each film (1-99).", show_default=False)
    ] = None,
    priority: Annotated[
        str | None, typer.Option("--priority", metavar="HIGH|MED|LOW", help="Print priority.", show_default=False)
    ] = None,
    medium: Annotated[
        str | None,
        typer.Option(
            "--medium", metavar="MEDIUM", help="PAPER, 'CLEAR FILM', 'BLUE FILM' (or MAMMO ...).", show_default=False
        ),
    ] = None,
    destination: Annotated[
        str | None,
        typer.Option("--destination", metavar="DEST", help="MAGAZINE, PROCESSOR or BIN_i.", show_default=False),
    ] = None,
    magnification: Annotated[
        str | None,
        typer.Option("--magnification", metavar="TYPE", help="REPLICATE, BILINEAR, CUBIC or NONE.", show_default=False),
    ] = None,
    polarity: Annotated[
        str | None,
        typer.Option(
            "--polarity", metavar="NORMAL|REVERSE", help="REVERSE prints the images inverted.", show_default=False
        ),
    ] = None,
    border_density: Annotated[
        str | None,
        typer.Option(
            "--border-density", metavar="D", help="BLACK, WHITE or hundredths of OD (150 = 1.5 OD).", show_default=False
        ),
    ] = None,
    empty_density: Annotated[
        str | None,
        typer.Option(
            "--empty-density",
            metavar="D",
            help="Density of empty image boxes (as --border-density).",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", metavar="TEXT", help="Film session label.", show_default=False)
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            "-w",
            metavar="C,W",
            help="Window center,width for every grayscale image "
            "(e.g. 40,400 or -600,1500), or 'minmax' [default: the file's].",
            show_default=False,
        ),
    ] = None,
    frames: Annotated[
        str | None,
        typer.Option(
            "--frames",
            metavar="LIST",
            help="Frames of multi-frame images: 1,3,5-9 or 10- [default: all].",
            show_default=False,
        ),
    ] = None,
    bits: Annotated[
        str,
        typer.Option(
            "--bits", metavar="auto|8|12", help="Image depth sent: 12 when the printer takes it, else 8 (auto)."
        ),
    ] = "auto",
    no_presentation_lut: Annotated[
        bool, typer.Option("--no-presentation-lut", help="Do not send an IDENTITY Presentation LUT.")
    ] = False,
    status: Annotated[bool, typer.Option("--status", help="Only ask the printer's status (no INPUTS).")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Write the films as DICOM images to -o DIR instead of printing (no PEER needed)."
        ),
    ] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", metavar="DIR", help="Folder for --dry-run films [default: .].", show_default=False
        ),
    ] = None,
    files: FileArgs.only("overwrite", "inputs", "files_from", "null") = FileArgs(),  # type: ignore[valid-type]
    net: NetArgs = NetArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Print images on a DICOM film or paper printer (Basic Grayscale Print).

    Images are laid out on films by --layout (as many films as needed), in
    the order given; the frames of multi-frame images each take a box. One
    record per film; exit status 1 if any film or input failed.

    \b
    Examples:
      dcmtools print printer --status
      dcmtools print printer ct.dcm
      dcmtools print printer study/ --layout 4,5 --film-size 14INX17IN --window 40,400
      dcmtools print printer us.dcm --frames 1-12 --layout 3,4 --medium PAPER --copies 2
      dcmtools print --dry-run study/ --layout 2,3 -o preview/   # no printer needed
      find study/ -name "*.dcm" | sort | dcmtools print printer - --layout 3,4
    """
    with std.run("print", _human) as run, spelled_errors():
        options = net.options(run.debug)
        if dry_run and peer is not None and _is_input(peer, net, options):
            # --dry-run needs no printer: the first argument is an input
            files, peer = dataclasses.replace(files, inputs=[peer, *(files.inputs or [])]), None
        if peer is None and not dry_run:
            raise typer.BadParameter(
                "which printer? (AET@HOST:PORT or a peers-file name; none with --dry-run)", param_hint="PEER"
            )
        remote = net.peer(peer, options) if peer is not None else None
        where = {"peer": str(remote)} if remote is not None else {}
        if status:
            if files.inputs or files.files_from:
                raise typer.BadParameter("--status takes no INPUTS", param_hint="--status")
            from ..printing import printer_status

            with fatal_as_record(run, "printer", adapt=spell_error, **where):
                run.write(spell_record(printer_status(remote, options)))
            return

        from ..printing import FilmOptions, fatal_record_type, preview_files, print_files

        film = FilmOptions.from_strings(
            layout=layout,
            film_size=film_size,
            orientation=orientation,
            copies=copies,
            priority=priority,
            medium=medium,
            destination=destination,
            magnification=magnification,
            polarity=polarity,
            border_density=border_density,
            empty_density=empty_density,
            label=label,
            bits=bits,
            window=window,
            frames=frames,
            presentation_lut=not no_presentation_lut,
        )
        for warning in film.warnings:
            run.warn(spell(warning))
        items = run.inputs(files)
        if dry_run:
            records = preview_files(items, film, output or ".", overwrite=files.overwrite)
        else:
            if output:
                raise typer.BadParameter("-o/--output is for --dry-run", param_hint="--output")
            records = print_files(remote, items, film, options)
        seen: set = set()
        with fatal_as_record(run, fatal_record_type, adapt=spell_error, **where):
            for record in map(spell_record, records):
                run.write(record)
                _warn(run, record, seen)
