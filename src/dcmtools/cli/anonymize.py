"""dcmtools anonymize: de-identify DICOM files (PS3.15 Annex E), keyed and repeatable."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..stream.records import default_human
from .application import app
from .changeopts import AnonArgs
from .common import FileArgs, RequiredOutDirOpt, StdArgs, option_groups, with_warnings


def _human(record: dict[str, Any]) -> str | None:
    if record.get("type") != "file" or record.get("ok") is False:
        return default_human(record)
    return with_warnings(f"ok     {record.get('path')} -> {record.get('out')}", record)


@app.command("anonymize")
@option_groups
def anonymize_command(
    output: RequiredOutDirOpt,
    anon: AnonArgs = AnonArgs(),
    keep_names: Annotated[
        bool,
        typer.Option(
            "--keep-names",
            help="Name outputs as the inputs (mirrored under -o). By default they are named from the new UIDs "
            "(STUDY/SERIES/INSTANCE.dcm): input names often carry the patient's name.",
        ),
    ] = False,
    map_file: Annotated[
        Path | None,
        typer.Option(
            "--map",
            metavar="FILE",
            help="Write the original-to-new identifiers (patients, studies, UIDs) to FILE as JSON Lines, "
            "for re-identification. Keep it as safe as the originals.",
        ),
    ] = None,
    files: FileArgs = FileArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """De-identify DICOM files with the PS3.15 Basic Application Level Confidentiality Profile.

    Every attribute of Table E.1-1 is removed, emptied, replaced by a dummy or
    cleaned, at any depth (sequences, file meta, overlays, curves); private
    attributes go. UIDs become 2.25 UIDs derived from the key, so the studies,
    series and references (RT structure sets included) stay consistent across
    files and runs. Patient ID and Patient's Name become one pseudonym per
    patient. Outputs are named from their new UIDs, DIR/STUDY/SERIES/INSTANCE.dcm
    (input names often carry the patient's name; --keep-names mirrors the
    input tree instead: check those names yourself); inputs are never
    changed. Public attributes the data dictionary does not know are removed
    unless --keep-unknown. Records carry "path" and "out", so the output pipes into the next
    command. Images whose pixels may show identifying text and DICOMDIR files
    are not written: their records say why (exit status 1).

    \b
    Examples:
      dcmtools anonymize --key-file team.key -o anon/ study/    # exit status 1: the screen capture is held back (burned_in)
      dcmtools anonymize --key-file team.key --retain-longitudinal-modified-dates \\
          --map reid.jsonl -o anon-dates/ -j 0 study/1-abdomen/
      dcmtools anonymize --key-file team.key -o anon-sent/ archive/vet-dog/ | dcmtools send pacs -
      find archive/vet-dog/ -name '*.dcm' -print0 | dcmtools anonymize -0 -o anon-env/ -   # key from $DCMTOOLS_ANON_KEY
      dcmtools anonymize --key-file team.key -o anon-0/ --shard 0/4 --journal anon-0.journal archive/vet-dog/
    """
    from ..deid import Key, MapWriter, anonymize_paths, plan_jobs
    from ..stream.outputs import Mirror

    with std.run("anonymize", _human) as run:
        secret = anon.secret()
        options = anon.options()
        if secret is None:
            secret = Key.random()
            # Said even with --quiet: the outputs of this run can never be matched again.
            print(
                "dcmtools anonymize: no --key or --key-file: using a random key for this run; its UIDs, "
                "pseudonyms and dates will not match any other run (use --map to keep the way back)",
                file=sys.stderr,
                flush=True,
            )
        mapping = MapWriter(str(map_file), files.overwrite) if map_file is not None else None
        anonymizer = anon.anonymizer(secret, options, keep_map=mapping is not None)
        run.summary_extra = {"key_id": None if secret.is_random else secret.fingerprint, "options": options.enabled()}
        if mapping is not None:
            run.summary_extra["map"] = str(map_file)
        batch = files.open(run, "anonymize")
        items = batch.inputs(run.inputs(files))
        jobs_ = plan_jobs(items, Mirror(output, files.inputs), keep_names=keep_names)
        try:
            results = anonymize_paths(
                anonymizer, jobs_, jobs=files.workers(), overwrite=batch.overwrite(files.overwrite)
            )
            for record, entries in run.progress(batch.stream(results, record=lambda result: result[0])):
                if mapping is not None and entries:
                    mapping.add(entries)
                run.write(record)
        finally:
            if mapping is not None:
                mapping.close()
