"""dcmtools edit: change attributes in bulk, from the command line or a mapping table."""

from typing import Annotated, Any

import typer

from ..stream.records import default_human
from .application import app
from .changeopts import CharsetOpt, EditArgs, EditKeyFileOpt, EditKeyOpt
from .common import FileArgs, StdArgs, option_groups, out_dir_option, with_warnings


def _human(record: dict[str, Any]) -> str | None:
    if record.get("type") == "change":
        return f"change {record['path']}: {record['element']} {record['old']!r} -> {record['new']!r}"
    if record.get("type") != "file" or record.get("ok") is False:
        return default_human(record)
    where = "(dry run)" if record.get("dry_run") else f"-> {record.get('out')}"
    return with_warnings(f"ok     {record.get('path')} {where} {record.get('changes', 0)} changes", record)


@app.command("edit")
@option_groups
def edit_command(
    output: out_dir_option("--in-place or --dry-run") = None,  # type: ignore[valid-type]
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Change the files themselves (each atomically, by a rename).")
    ] = False,
    no_backup: Annotated[
        bool, typer.Option("--no-backup", help="With --in-place: keep no FILE.bak copy of the original.")
    ] = False,
    edits: EditArgs = EditArgs(),
    key: EditKeyOpt = None,
    key_file: EditKeyFileOpt = None,
    charset: CharsetOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write nothing: a record per change (element, old, new).")
    ] = False,
    files: FileArgs.without("shard", "journal", "cluster") = FileArgs(),  # type: ignore[valid-type]
    std: StdArgs = StdArgs(),
) -> None:
    """Change attributes of DICOM files: set, erase, from a mapping CSV, new UIDs, UTF-8.

    Everything given is checked before any file is written: an unknown
    keyword, a value its VR cannot hold (a DA of 2024-13-45), a CSV with a
    missing key column or a duplicate key stop the run with status 2. Per
    file, a value that the file cannot hold is an error record (bad_value),
    and that file is not written. Elements not edited keep their bytes;
    pixel data is copied, never decoded. SOP Class and Instance UIDs in the
    file meta follow the dataset. Order: --charset, --new-uids,
    --erase-private, --erase, --set, --set-existing, the --map row.

    \b
    Examples:
      dcmtools edit --set InstitutionName="North Clinic" --erase OtherPatientIDs -o fixed/ study/
      dcmtools edit --set 'OtherPatientIDsSequence[*].IssuerOfPatientID=NORTH' --in-place study/
      printf 'old_id,PatientID\\nPAT001,CLINIC-0001\\n' > patients.csv
      dcmtools edit --map patients.csv --match PatientID=old_id --require-match -o mapped/ study/
      dcmtools edit --new-uids all --key-file team.key --charset utf8 -o renumbered/ study/
      dcmtools edit --erase-private --dry-run study/ | jq -r 'select(.type=="change") | .element'
    """
    from ..deid import plan_jobs
    from ..edit import edit_paths
    from ..stream.outputs import Mirror

    with std.run("edit", _human) as run:
        _check_where(dry_run, in_place, output)
        edits.check()
        editor = _editor(run, edits, key, key_file, charset)
        if editor.key is not None and not editor.key.is_random:
            run.summary_extra["key_id"] = editor.key.fingerprint
        items = run.inputs(files)
        if output is not None:
            jobs_ = plan_jobs(items, Mirror(output, files.inputs), keep_names=True)  # edit mirrors the input names
        else:
            jobs_ = (
                (item.path, None, None) if item.error is None else (item.path, None, _input_error(item))
                for item in items
                if not item.path.endswith(".bak")  # our own backups of an earlier run
            )
        results = edit_paths(
            editor, jobs_, jobs=files.workers(), in_place=in_place, backup=not no_backup,
            overwrite=files.overwrite, dry_run=dry_run,
        )  # fmt: skip
        for records in run.progress(results):
            run.write_all(records)


def _check_where(dry_run: bool, in_place: bool, output: Any) -> None:
    """Usage errors in where the changes go: -o DIR, --in-place or --dry-run, one of them."""
    if dry_run:
        if in_place or output is not None:
            raise typer.BadParameter("--dry-run writes nothing: give no -o and no --in-place", param_hint="--dry-run")
    elif (output is None) == (not in_place):
        raise typer.BadParameter(
            "give an output folder (-o DIR) or --in-place, one of them", param_hint="-o/--in-place"
        )


def _editor(run: Any, edits: EditArgs, key: str | None, key_file: Any, charset: str | None) -> Any:
    """The ``Editor`` of the options, with the key of --new-uids (a str, or the ``Key`` of --key-file)."""
    from .changeopts import command_line_key, from_environment  # an exported key is only a default

    key = command_line_key(key, key_file)
    if key is not None and key_file is not None:
        raise typer.BadParameter("give --key or --key-file, not both", param_hint="--key")
    if ((key is not None and not from_environment(key)) or key_file is not None) and edits.new_uids is None:
        raise typer.BadParameter("--key is the key of --new-uids", param_hint="--key")
    secret: Any = key
    if key_file is not None:
        from ..deid.keys import Key

        try:
            secret = Key.from_file(str(key_file))
        except OSError as exc:
            raise typer.BadParameter(
                f"cannot read {key_file}: {exc.strerror or exc}", param_hint="--key-file"
            ) from None
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--key") from None
    elif key is None and edits.new_uids is not None:
        run.warn("no --key or --key-file: new UIDs from a random key, which no other run will repeat")
    try:
        return edits.editor(secret, charset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--key") from None


def _input_error(item: Any) -> dict[str, Any]:
    from ..stream.records import error_record

    return error_record("file", item.error, path=item.path)
