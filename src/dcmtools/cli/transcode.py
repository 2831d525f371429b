"""``dcmtools transcode``: rewrite DICOM files in another transfer syntax."""

from typing import Annotated, Any

import typer

from ..dicom import codecs
from ..stream.records import DcmtoolsError, RecordWriter, human_failure
from .application import app
from .common import CommandRun, FileArgs, StdArgs, option_groups, out_dir_option, with_warnings
from .spelling import spell, spell_record

_TARGETS = ", ".join(codecs.target_names())


@app.command("transcode")
@option_groups
def transcode_command(
    to: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="SYNTAX", help=f"Target transfer syntax: {_TARGETS}, or a UID [required unless --list]."
        ),
    ] = None,
    # -t is dump's --tag in every other command: kept here, hidden, for the scripts that spell --to so.
    to_t: Annotated[str | None, typer.Option("-t", metavar="SYNTAX", hidden=True)] = None,
    output: out_dir_option("--list") = None,  # type: ignore[valid-type]
    error: Annotated[
        int | None,
        typer.Option("--error", metavar="N", help="jpeg-ls-near: largest difference allowed per sample [default: 2]."),
    ] = None,
    ratio: Annotated[
        float | None,
        typer.Option("--ratio", metavar="R", help="j2k-lossy: compression ratio, e.g. 10 for 10:1 [default: 10]."),
    ] = None,
    quality: Annotated[
        float | None,
        typer.Option(
            "--quality",
            metavar="Q",
            help="j2k-lossy: target PSNR in dB (instead of --ratio); jpeg-baseline/jpeg-extended: 1-100 [default: 90].",
        ),
    ] = None,
    verify: Annotated[
        bool | None,
        typer.Option(
            "--verify/--no-verify",
            help="Decode each output again and compare it with the input's pixels. On by default for lossless "
            "targets (a difference fails the file); for lossy ones it reports max_error and psnr.",
            show_default=False,
        ),
    ] = None,
    keep_uid: Annotated[
        bool, typer.Option("--keep-uid", help="Lossy targets keep the SOP Instance UID (a new one by default).")
    ] = False,
    list_syntaxes: Annotated[
        bool, typer.Option("--list", help="Show the transfer syntaxes this installation can decode and encode.")
    ] = False,
    files: FileArgs = FileArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Rewrite DICOM files in another transfer syntax, lossless proven.

    Every input is written under -o DIR (the input tree mirrored) in the
    target syntax: images are decoded and encoded again, a file already in
    the target syntax is copied as it is, objects without pixel data (SR, RT
    plan) are written uncompressed. Lossless outputs are decoded again and
    compared with the input's pixels before they are written. Lossy outputs
    get Lossy Image Compression, Ratio and Method and a new SOP Instance UID.
    Each record has path, out, size_in, size_out and ratio, so the output
    pipes into 'dcmtools send'.

    \b
    Examples:
      dcmtools transcode --list
      dcmtools transcode study/ --to jpeg-ls -o compressed/
      dcmtools transcode 'archive/**/*.dcm' --to explicit -o plain/ --jobs 4
      dcmtools transcode study/ --to j2k-lossy --ratio 20 -o lossy/
      dcmtools transcode us.dcm --to jpeg-baseline --quality 85 -o web/
      find archive/ -name '*.dcm' | dcmtools transcode --to rle -o rle/
      dcmtools transcode study/ --to explicit -o explicit/ | dcmtools send pacs
      dcmtools transcode archive/ --to rle -o rle-journal/ --journal rle.journal
    """
    to = to or to_t
    if list_syntaxes:
        _list(std.json)
        return
    if not to:
        raise typer.BadParameter("--to SYNTAX is required (one of: " + _TARGETS + ")", param_hint="--to")
    if output is None:
        raise typer.BadParameter("-o DIR is required: inputs are never modified", param_hint="-o/--output")
    from ..transcode import options_for

    try:
        options = options_for(
            to, error=error, ratio=ratio, quality=quality, verify=verify, keep_uid=keep_uid, overwrite=files.overwrite
        )
    except DcmtoolsError as exc:
        # A message that names its option (`error`, `ratio` ...) needs no --to hint.
        raise typer.BadParameter(spell(str(exc)), param_hint="--to" if "`" not in exc.message else None) from None

    with std.run("transcode", _human) as run:
        _run(run, files, output, options, files.open(run, "transcode"))


def _run(run: CommandRun, files: FileArgs, output, options, batch) -> None:
    # Import pydicom, numpy and the codec now, so forked workers start warm.
    import numpy  # noqa: F401
    import pydicom  # noqa: F401

    from ..transcode import OutputPlan, run_plan

    codecs.encoder_for(options.target)
    from dataclasses import replace

    plan = OutputPlan(batch.inputs(run.inputs(files)), output, files.inputs)
    options = replace(options, overwrite=batch.overwrite(options.overwrite))
    size_in = size_out = 0
    for record in run.progress(batch.stream(run_plan(plan, options, files.workers()))):
        if record.get("ok"):
            size_in += record.get("size_in", 0)
            size_out += record.get("size_out", 0)
        run.write(spell_record(record))
    run.summary_extra.update(size_in=size_in, size_out=size_out)
    if size_out:
        run.summary_extra["ratio"] = round(size_in / size_out, 3)
    if plan.skipped_inside_output:
        run.summary_extra["skipped_inside_output"] = plan.skipped_inside_output
        run.warn(f"skipped {plan.skipped_inside_output} file(s) inside the output folder {output}")


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "summary":
        return None
    if record.get("ok") is False:
        return human_failure(record, record.get("path", ""))
    action = record.get("action", "")
    sizes = f"{_size(record.get('size_in'))} -> {_size(record.get('size_out'))}"
    if record.get("ratio"):
        sizes += f" ({record['ratio']:.2f}x)"
    head = f"{'copied' if action == 'copied' else 'ok':6s} {record.get('path')} -> {record.get('out')}"
    detail = f"{record.get('from')} -> {record.get('to')}, {sizes}"
    if record.get("verified"):
        detail += ", verified"
        if record.get("max_error") is not None:
            detail += f" (max error {record['max_error']}"
            detail += f", PSNR {record['psnr']} dB)" if record.get("psnr") is not None else ")"
    if record.get("note"):
        detail += f"; {record['note']}"
    return with_warnings(f"{head}  {detail}", record)


def _list(json_mode: bool | None) -> None:
    writer = RecordWriter("transcode", json_mode=json_mode)
    rows = codecs.capabilities()
    if writer.json_mode:
        for row in rows:
            writer.write(row)
        return
    lines = [f"{'NAME':18s} {'UID':24s} {'DECODE':7s} {'ENCODE':7s} {'LOSSY':6s} ENCODER / DECODERS"]
    for row in rows:
        encoder = row.get("encoder") or row.get("encode_hint", "")
        decoders = ", ".join(row["decoders"]) if row["decoders"] else "-"
        lines.append(
            f"{row['name']:18s} {row['uid']:24s} {'yes' if row['decode'] else 'no':7s} "
            f"{'yes' if row['encode'] else 'no':7s} {'yes' if row['lossy'] else 'no':6s} "
            f"{encoder} / {decoders}"
        )
    typer.echo("\n".join(lines))
