"""dcmtools journal: the state of one or several batch journals (shards), and merging them."""

from pathlib import Path
from typing import Annotated

import typer

from ..stream.records import default_human
from .application import app
from .common import StdArgs, option_groups

journal_app = typer.Typer(
    name="journal",
    help="Look at the journals of --journal runs (one per shard) and merge them.\n\n"
    "\b\nExamples:\n"
    "  dcmtools anonymize -o anon/ --shard 0/2 --journal anon-0.journal archive/vet-dog/\n"
    "  dcmtools anonymize -o anon/ --shard 1/2 --journal anon-1.journal archive/vet-dog/\n"
    "  dcmtools journal status anon-*.journal\n"
    "  dcmtools journal merge anon-*.journal -o anon.journal",
    no_args_is_help=True,
)
app.add_typer(journal_app, name="journal")


def _human(record):
    if record.get("type") != "journal" or record.get("ok") is False:
        return default_human(record)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(record.get("counts", {}).items())) or "empty"
    if "merged" in record:
        return f"merged {len(record['merged'])} journal(s) into {record['path']}: {counts}"
    shard = f" shard {record['shard']}" if record.get("shard") else ""
    return f"{record['path']}: {record.get('command') or '?'}{shard}: {counts} ({record.get('rate', 0)} items/s)"


FilesArg = Annotated[list[Path], typer.Argument(help="Journal files (e.g. one per shard).", show_default=False)]


@journal_app.command("status")
@option_groups
def status_command(files: FilesArg, std: StdArgs = StdArgs()) -> None:
    """One record per journal: its command, shard, items per state, rate and ETA; then the total.

    \b
    Examples:
      dcmtools anonymize -o anon/ --shard 0/2 --journal anon-0.journal archive/vet-dog/
      dcmtools anonymize -o anon/ --shard 1/2 --journal anon-1.journal archive/vet-dog/
      dcmtools journal status anon-0.journal anon-1.journal
      dcmtools journal status *.journal --json | jq -c 'select(.type=="journal") | .counts'
    """
    from ..stream.journal import Journal, JournalError
    from ..stream.records import DcmtoolsError, ErrorCode, error_record

    with std.run("journal", _human) as run:
        total: dict[str, int] = {}
        for path in files:
            try:
                with Journal(path, create=False) as journal:
                    state = journal.status()
                    record = {
                        "type": "journal",
                        "path": str(path),
                        "ok": True,
                        "command": journal.meta("kind"),
                        "shard": journal.meta("shard"),
                        "total": state["total"],
                        "counts": state["counts"],
                        "rate": state["rate"],
                        "eta_seconds": state["eta_seconds"],
                    }
            except JournalError as exc:
                error = DcmtoolsError(ErrorCode.UNREADABLE, str(exc))
                run.write(error_record("journal", error, path=str(path)))
                run.writer.fail(error.exit_status)
                continue
            for name, n in state["counts"].items():
                total[name] = total.get(name, 0) + n
            run.write(record)
        run.summary_extra["counts"] = total


@journal_app.command("merge")
@option_groups
def merge_command(
    files: FilesArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The merged journal (created or added to).")
    ],
    std: StdArgs = StdArgs(),
) -> None:
    """Gather shard journals into one: every item once (a done item wins over a failed one).

    \b
    Examples:
      dcmtools anonymize -o anon/ --shard 0/2 --journal anon-0.journal archive/vet-dog/
      dcmtools anonymize -o anon/ --shard 1/2 --journal anon-1.journal archive/vet-dog/
      dcmtools journal merge anon-*.journal -o anon.journal
    """
    from ..stream.journal import JournalError
    from ..stream.journal_merge import merge

    with std.run("journal", _human) as run:
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise typer.BadParameter(f"no journal at {', '.join(missing)}", param_hint="FILES")
        try:
            counts = merge(output, files, rank=("planned", "failed", "done"))
        except JournalError as exc:
            raise typer.BadParameter(str(exc), param_hint="FILES") from None
        run.write(
            {"type": "journal", "path": str(output), "ok": True, "merged": [str(f) for f in files], "counts": counts}
        )
