"""dcmtools anonymize: de-identify DICOM files (PS3.15 Annex E), keyed and repeatable."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..stream.records import default_human
from .application import app
from .batchopts import ClusterOpt, JournalOpt, ShardOpt, open_batch
from .changeopts import (
    AllowBurnedInOpt,
    AnonKeyFileOpt,
    AnonKeyOpt,
    CleanDescriptorsOpt,
    CleanGraphicsOpt,
    CleanStructuredContentOpt,
    KeepUnknownOpt,
    RetainDeviceIdentityOpt,
    RetainInstitutionIdentityOpt,
    RetainLongitudinalFullDatesOpt,
    RetainLongitudinalModifiedDatesOpt,
    RetainPatientCharacteristicsOpt,
    RetainSafePrivateOpt,
    RetainUidsOpt,
)
from .common import (
    CommandRun,
    DebugOpt,
    FilesFromOpt,
    InputsArg,
    JobsOpt,
    JsonOpt,
    NullOpt,
    OutDirOpt,
    OverwriteOpt,
    QuietOpt,
)


def _human(record: dict[str, Any]) -> str | None:
    if record.get("type") != "file" or record.get("ok") is False:
        return default_human(record)
    text = f"ok     {record.get('path')} -> {record.get('out')}"
    for warning in record.get("warnings") or ():
        text += f"\n       warning: {warning}"
    return text


@app.command("anonymize")
def anonymize_command(
    inputs: InputsArg = None,
    output: OutDirOpt = None,
    key: AnonKeyOpt = None,
    key_file: AnonKeyFileOpt = None,
    retain_safe_private: RetainSafePrivateOpt = False,
    retain_uids: RetainUidsOpt = False,
    retain_device_identity: RetainDeviceIdentityOpt = False,
    retain_institution_identity: RetainInstitutionIdentityOpt = False,
    retain_patient_characteristics: RetainPatientCharacteristicsOpt = False,
    retain_longitudinal_full_dates: RetainLongitudinalFullDatesOpt = False,
    retain_longitudinal_modified_dates: RetainLongitudinalModifiedDatesOpt = False,
    clean_descriptors: CleanDescriptorsOpt = False,
    clean_structured_content: CleanStructuredContentOpt = False,
    clean_graphics: CleanGraphicsOpt = False,
    allow_burned_in: AllowBurnedInOpt = False,
    keep_unknown: KeepUnknownOpt = False,
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
    overwrite: OverwriteOpt = False,
    json: JsonOpt = None,
    jobs: JobsOpt = 1,
    shard: ShardOpt = None,
    journal: JournalOpt = None,
    cluster: ClusterOpt = None,
    files_from: FilesFromOpt = None,
    null: NullOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
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
    from ..deid import Anonymizer, Key, MapWriter, Options, anonymize_paths, plan_jobs
    from ..stream.outputs import Mirror
    from ..stream.parallel import resolve_jobs

    with CommandRun("anonymize", json_mode=json, human=_human, quiet=quiet, debug=debug) as run:
        if output is None:
            raise typer.BadParameter(
                "an output folder is required (inputs are never changed)", param_hint="-o/--output"
            )
        from .changeopts import command_line_key  # the command line's --key-file wins over the env's key

        key = command_line_key(key, key_file)
        if key is not None and key_file is not None:
            raise typer.BadParameter("give --key or --key-file, not both", param_hint="--key")
        try:
            options = Options(
                retain_safe_private=retain_safe_private,
                retain_uids=retain_uids,
                retain_device_identity=retain_device_identity,
                retain_institution_identity=retain_institution_identity,
                retain_patient_characteristics=retain_patient_characteristics,
                retain_longitudinal_full_dates=retain_longitudinal_full_dates,
                retain_longitudinal_modified_dates=retain_longitudinal_modified_dates,
                clean_descriptors=clean_descriptors,
                clean_structured_content=clean_structured_content,
                clean_graphics=clean_graphics,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--retain-longitudinal-*") from None
        try:
            if key_file is not None:
                secret = Key.from_file(str(key_file))
            elif key is not None:
                secret = Key(key)
            else:
                secret = Key.random()
                # Said even with --quiet: the outputs of this run can never be matched again.
                print(
                    "dcmtools anonymize: no --key or --key-file: using a random key for this run; its UIDs, "
                    "pseudonyms and dates will not match any other run (use --map to keep the way back)",
                    file=sys.stderr,
                    flush=True,
                )
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {key_file}: {exc.strerror or exc}", param_hint="--key-file"
            ) from None
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--key/--key-file") from None
        mapping = MapWriter(str(map_file), overwrite) if map_file is not None else None
        anonymizer = Anonymizer(
            secret, options, allow_burned_in=allow_burned_in, keep_map=mapping is not None, keep_unknown=keep_unknown
        )
        run.summary_extra = {"key_id": None if secret.is_random else secret.fingerprint, "options": options.enabled()}
        if mapping is not None:
            run.summary_extra["map"] = str(map_file)
        batch = open_batch(run, "anonymize", shard, journal, cluster)
        items = batch.inputs(run.inputs(inputs, files_from, null))
        jobs_ = plan_jobs(items, Mirror(output, inputs), keep_names=keep_names)
        try:
            results = anonymize_paths(anonymizer, jobs_, jobs=resolve_jobs(jobs), overwrite=batch.overwrite(overwrite))
            for record, entries in run.progress(batch.stream(results, record=lambda result: result[0])):
                if mapping is not None and entries:
                    mapping.add(entries)
                run.write(record)
        finally:
            if mapping is not None:
                mapping.close()
