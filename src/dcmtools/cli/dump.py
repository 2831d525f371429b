"""dcmtools dump: read DICOM files as a text tree or as JSON Lines."""

from typing import Annotated

import typer

from ..stream.tables import DUMP_COLUMNS
from .application import app
from .common import FileArgs, FlatOpt, StdArgs, TableArgs, csv_epilog, option_groups
from .spelling import spell


@app.command("dump", epilog=csv_epilog("-t", " ".join(DUMP_COLUMNS), lead="path, then "))
@option_groups
def dump_command(
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            metavar="PATH",
            help="Only this element: a keyword, gggg,eeee, or a path like "
            "ReferencedImageSequence[0].ReferencedSOPInstanceUID (repeatable).",
        ),
    ] = None,
    meta: Annotated[bool, typer.Option("--meta", help="Include the file meta group (0002,xxxx).")] = False,
    no_pixels: Annotated[
        bool,
        typer.Option(
            "--no-pixels", help="Leave out bulk data that is not shown (pixel data ...) instead of noting it."
        ),
    ] = False,
    bulk_threshold: Annotated[
        int,
        typer.Option(
            "--bulk-threshold",
            metavar="BYTES",
            help="Binary values up to this size are written (InlineBinary); larger ones are not read.",
        ),
    ] = 1024,
    full: Annotated[bool, typer.Option("--full", help="Text: never cut long values.")] = False,
    flat: FlatOpt = False,
    table: TableArgs = TableArgs(),
    files: FileArgs.without("overwrite", "journal") = FileArgs(),  # type: ignore[valid-type]
    std: StdArgs = StdArgs(),
) -> None:
    """Read DICOM files: a readable tree on a terminal, one JSON record per file when piped.

    Records are {"type": "file", "path", "ok", "transfer_syntax", "sop_class_uid",
    "sop_instance_uid", "dataset": {DICOM JSON model}}; with --flat the dataset is
    {"PatientName": "DOE^JOHN", ...}. Pixel data is never read: it is noted as a
    BulkDataURI (file://PATH?offset=N&length=M), or left out with --no-pixels.
    Files that cannot be read (not DICOM, empty, truncated, unreadable) give an
    error record and exit status 1; the other files are still dumped.

    \b
    Examples:
      dcmtools dump ct.dcm                         # a tree like dcmdump's on a terminal, JSON when piped
      dcmtools dump --no-json ct.dcm | head -20    # the tree, even through a pipe
      dcmtools dump --json study/ > study.jsonl    # one DICOM JSON record per file
      dcmtools dump --flat -t PatientName -t Modality 'study/**/*.dcm' | jq -c 'select(.type=="file") | .dataset'
      dcmtools dump -t 'ReferencedImageSequence[0].ReferencedSOPInstanceUID' ct.dcm
      find archive/ -name '*.dcm' -print0 | dcmtools dump -0 -j 0 - > all.jsonl
      dcmtools dump -t PatientID --shard 1/4 archive/ > ids-1.jsonl
      dcmtools dump --csv -t PatientName -t StudyDate -t Modality archive/ > archive.csv
    """
    from .. import dump as library
    from ..dicom.tagpath import PathError
    from ..stream.parallel import map_ordered

    with std.run("dump") as run:
        if table.csv or table.tsv:
            tag = tag or list(DUMP_COLUMNS)  # the columns are the -t tags
            table.use(run, tag, std, flat=flat, lead=["path"], column_option="--tag")
        try:
            tags = library.parse_tags(tag or [])
        except PathError as exc:
            raise typer.BadParameter(str(exc), param_hint="--tag") from None
        options = library.DumpOptions(
            flat=flat,
            meta=meta,
            tags=tags,
            bulk_threshold=bulk_threshold,
            bulk=not no_pixels,
            width=None if full else 64,
        )
        worker = library.json_line if run.json_mode else library.text_block
        workers = files.workers()
        if workers > 1:
            library.warm_up(text=not run.json_mode)
        batch = files.open(run, "dump")
        jobs_ = library.jobs_for(batch.inputs(run.inputs(files)), options)
        lost = library.lost_line if run.json_mode else library.lost_text
        results = map_ordered(
            library.RecordsPassThrough(worker, encode=True, text=not run.json_mode),
            jobs_,
            workers,
            chunksize=16,
            lost=lost,
        )
        first = True
        for ok, code, text in run.progress(batch.stream(results, record=lambda result: {})):
            if not run.json_mode:
                if not first:
                    text = "\n" + text
                first = False
            # Lines come encoded from the workers (for speed): only a failure's words are spelled here.
            run.writer.write_line(text if ok else spell(text), ok, code or None)
