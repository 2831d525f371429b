"""What every command shares: its common options and the run around its body.

A command body runs inside ``CommandRun``, which owns the record writer, reads
the inputs, turns exceptions into messages and exit statuses, and writes the
summary.  The options every command has (--json, --quiet, --debug) are one
group, ``StdArgs``, and so are the options of the commands that work file by
file (``FileArgs``: --jobs, INPUTS, --files-from, -0 ...); see ``groups.option_groups``:

    @app.command("dump")
    @option_groups
    def dump_command(..., files: FileArgs = FileArgs(), std: StdArgs = StdArgs()):
        with std.run("dump") as run:
            for item in run.inputs(files):
                run.write(record)

Exit statuses are those of ``dcmtools.stream.records.ExitStatus``.
"""

import logging
import os
import sys
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..stream.inputs import InputItem, iter_inputs
from ..stream.records import DcmtoolsError, ExitStatus, HumanFormatter, RecordWriter, error_record
from .batchopts import ClusterOpt, JournalOpt, ShardOpt, open_batch
from .groups import OptionGroup, option_groups
from .spelling import spell, spell_fields

__all__ = ["CommandRun", "FileArgs", "StdArgs", "TableArgs", "option_groups"]

# ---------------------------------------------------------------- options
# Reusable option types: a command declares ``json: JsonOpt = None``.
InputsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Files, folders (walked recursively) or globs ('**/*.dcm', quoted). "
        "'-' reads paths or JSON records (another command's output) from stdin; "
        "with no INPUTS a piped stdin is read.",
        show_default=False,
    ),
]
FilesFromOpt = Annotated[
    str | None,
    typer.Option("--files-from", metavar="FILE", help="Read inputs from FILE ('-' for stdin), one per line."),
]
NullOpt = Annotated[
    bool, typer.Option("--null", "-0", help="Inputs read from stdin or --files-from are NUL-separated paths.")
]
JsonOpt = Annotated[
    bool | None,
    typer.Option(
        "--json/--no-json",
        help="JSON Lines on stdout (the default when stdout is not a terminal); --no-json forces the readable form.",
        show_default=False,
    ),
]
FlatOpt = Annotated[
    bool,
    typer.Option("--flat", help='Datasets as {"PatientName": "DOE^JOHN", ...} instead of the DICOM JSON model.'),
]
# --jobs defaults to 1 in every command (docs/design/cli-conventions.md): one process unless asked.
JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", metavar="N", help="Worker processes (0 = all cores).", show_default=True)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no warnings on stderr.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs on stderr.")]
_OUT_DIR_HELP = "Output folder; the input tree is mirrored under it."
OutDirOpt = Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help=_OUT_DIR_HELP)]
# For a command that cannot run without it: typer then says [required] in --help.
RequiredOutDirOpt = Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help=_OUT_DIR_HELP)]


def out_dir_option(unless: str) -> Any:
    """-o DIR of a command that needs it unless ``unless`` (e.g. "--sheet") is given: its --help says so."""
    help_ = f"{_OUT_DIR_HELP} [required unless {unless}]"
    return Annotated[Path | None, typer.Option("--output", "-o", metavar="DIR", help=help_, show_default=False)]


CsvOpt = Annotated[
    bool,
    typer.Option(
        "--csv",
        help="A CSV table on stdout: a header row, one row per item (columns: see 'CSV and TSV'); "
        "the summary goes to stderr. Not with --json or --flat.",
    ),
]
TsvOpt = Annotated[bool, typer.Option("--tsv", help="As --csv, tab-separated.")]


def csv_epilog(flag: str, defaults: str, lead: str = "") -> str:
    """The 'CSV and TSV' section of a command's --help (the rules of ``dcmtools.stream.tables``)."""
    return (
        "CSV and TSV (--csv, --tsv): a header row, then one row per item; the summary goes to "
        f"stderr. The columns are {lead}the {flag} paths as written (without =VALUE); with no {flag}: "
        f"{defaults}. Then error and error_message: the code and message of a failed item (it still "
        "counts for the exit status). Values are text: multiple values joined with a backslash, a person "
        "name as --flat writes it, a sequence as JSON text of its items (Seq[0].Keyword reaches inside "
        "one), an absent or empty element as an empty cell."
    )


OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist.")]


@dataclass(frozen=True)
class FileArgs(OptionGroup):
    """What the commands that work file by file share: --overwrite, --jobs, --shard/--journal/--cluster,
    INPUTS, --files-from and -0 (a command takes the ones it has: ``FileArgs.only(...)``)."""

    overwrite: OverwriteOpt = False
    jobs: JobsOpt = 1
    shard: ShardOpt = None
    journal: JournalOpt = None
    cluster: ClusterOpt = None
    inputs: InputsArg = None
    files_from: FilesFromOpt = None
    null: NullOpt = False

    def open(self, run: "CommandRun", command: str) -> Any:
        """The run's ``Batch`` (``batchopts.open_batch``); a command without --cluster ignores
        DASK_SCHEDULER_ADDRESS."""
        use_env_cluster = "cluster" in self.option_types()
        return open_batch(run, command, self.shard, self.journal, self.cluster, use_env_cluster=use_env_cluster)

    def workers(self) -> int:
        """The worker processes of --jobs (0: all cores)."""
        from ..stream.parallel import resolve_jobs

        return resolve_jobs(self.jobs)


@dataclass(frozen=True)
class TableArgs(OptionGroup):
    """--csv and --tsv: a table instead of records (dump, find, worklist)."""

    csv: CsvOpt = False
    tsv: TsvOpt = False

    def use(self, run: "CommandRun", columns: Any, std: "StdArgs", **kwargs: Any) -> bool:
        """``CommandRun.use_table`` with these options (False when neither was given)."""
        return run.use_table(self.csv, self.tsv, columns, json=std.json, **kwargs)


@dataclass(frozen=True)
class StdArgs(OptionGroup):
    """--json/--no-json, --quiet and --debug: every command has them, last in its --help."""

    json: JsonOpt = None
    quiet: QuietOpt = False
    debug: DebugOpt = False

    def run(self, command: str, human: HumanFormatter | None = None) -> "CommandRun":
        """The ``CommandRun`` of ``command`` with these options."""
        return CommandRun(command, json_mode=self.json, human=human, debug=self.debug, quiet=self.quiet)


def with_warnings(text: str, record: dict[str, Any]) -> str:
    """A record's readable line, with its "warnings" under it, one a line."""
    for warning in record.get("warnings") or ():
        text += f"\n       warning: {warning}"
    return text


def setup_logging(debug: bool, quiet: bool = False) -> None:
    """Logs go to stderr: warnings by default, everything with --debug."""
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.WARNING)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


class CommandRun:
    """The frame around a command body: writer, inputs, errors, summary, exit."""

    def __init__(
        self,
        command: str,
        *,
        json_mode: bool | None = None,
        human: HumanFormatter | None = None,
        debug: bool = False,
        quiet: bool = False,
    ) -> None:
        self.command = command
        self.debug = debug or bool(os.environ.get("DCMTOOLS_DEBUG"))
        self.quiet = quiet
        self.writer = RecordWriter(command, json_mode=json_mode, human=human, quiet=quiet)
        self.summary_extra: dict[str, Any] = {}
        setup_logging(self.debug, quiet)

    # -- the body's tools
    @property
    def json_mode(self) -> bool:
        return self.writer.json_mode

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(spell_fields(record))  # the library names options by keyword: our spelling

    def use_table(
        self,
        csv: bool,
        tsv: bool,
        columns: Sequence[str],
        *,
        json: bool | None = None,
        flat: bool = False,
        lead: Sequence[str] = (),
        column_option: str = "--key",
    ) -> bool:
        """--csv/--tsv: rows (``dcmtools.stream.tables``) instead of records; False when neither was given."""
        if not (csv or tsv):
            return False
        if csv and tsv:
            raise typer.BadParameter("choose one of --csv and --tsv", param_hint="--tsv")
        if json is not None or flat:
            given = "--flat" if flat else ("--json" if json else "--no-json")
            raise typer.BadParameter(f"--csv/--tsv write a table: not with {given}", param_hint=given)
        from ..dicom.tagpath import PathError
        from ..stream.tables import TableWriter

        try:
            table = TableWriter(self.writer.stream, columns, lead=lead, delimiter="\t" if tsv else ",")
        except PathError as exc:
            raise typer.BadParameter(str(exc), param_hint=column_option) from None
        self.writer.use_table(table)
        return True

    def inputs(
        self, args: "list[str] | FileArgs | None", files_from: str | None = None, null: bool = False
    ) -> Iterator[InputItem]:
        """The inputs (INPUTS, or the ``FileArgs`` group); a usage error when none were given at all."""
        if isinstance(args, FileArgs):
            args, files_from, null = args.inputs, args.files_from, args.null
        if not args and files_from is None and sys.stdin.isatty():
            raise typer.BadParameter("no INPUTS given (files, folders, globs, or '-' for stdin)", param_hint="INPUTS")
        return iter_inputs(args, files_from=files_from, null=null)

    def input_error(self, item: InputItem, type_: str = "file") -> None:
        """Write the error record of an input that could not be resolved."""
        assert item.error is not None
        self.write(error_record(type_, item.error, path=item.path))

    def show_progress(self) -> bool:
        """Progress bars only when stderr is a terminal that stdout is not
        writing over, and not with --quiet."""
        return not self.quiet and sys.stderr.isatty() and not sys.stdout.isatty()

    def progress(self, iterable, total: int | None = None, unit: str = "file"):
        """``iterable`` with a tqdm progress bar on stderr when one should show."""
        if not self.show_progress():
            return iterable
        from tqdm import tqdm  # only on a terminal: it costs 50 ms to import

        return tqdm(iterable, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)

    def write_all(self, records: Iterable[dict[str, Any]], progress: bool = False, unit: str = "file") -> None:
        """Write every record of ``records`` (with a progress bar when ``progress``)."""
        for record in self.progress(records, unit=unit) if progress else records:
            self.write(record)

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"dcmtools {self.command}: {spell(message)}", file=sys.stderr, flush=True)

    # -- the frame
    def __enter__(self) -> "CommandRun":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            pass
        elif isinstance(exc, (typer.Exit, typer.Abort, typer.BadParameter)) or exc_type.__module__.startswith("typer"):
            return False  # typer's own usage errors and exits
        elif isinstance(exc, KeyboardInterrupt):
            print(f"dcmtools {self.command}: interrupted", file=sys.stderr, flush=True)
            self.writer.fail(ExitStatus.INTERRUPTED)
            self.writer.status = ExitStatus.INTERRUPTED
        elif isinstance(exc, BrokenPipeError):
            # The reader went away (e.g. `| head`): stop quietly.
            _silence_stdout()
            raise typer.Exit(int(self.writer.status))
        elif isinstance(exc, DcmtoolsError) and exc.exit_status == ExitStatus.USAGE and not self.writer.lines:
            # A usage error before any record: the message alone, as typer's own usage errors (no summary).
            self._report(str(exc), exc)
            raise typer.Exit(int(ExitStatus.USAGE))
        elif isinstance(exc, DcmtoolsError):
            self._report(str(exc), exc)
            self.writer.fail(exc.exit_status)
        else:
            self._report(
                f"internal error: {exc_type.__name__}: {exc} "
                "(this is a bug in dcmtools; run with --debug for the traceback and please report it)",
                exc,
            )
            self.writer.fail(ExitStatus.FAILED)
        try:
            status = self.writer.summary(**self.summary_extra)
        except BrokenPipeError:
            _silence_stdout()
            status = int(self.writer.status)
        raise typer.Exit(status)

    def _report(self, message: str, exc: BaseException) -> None:
        print(f"dcmtools {self.command}: {spell(message)}", file=sys.stderr, flush=True)
        if self.debug:
            traceback.print_exception(exc, file=sys.stderr)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_app(app: typer.Typer) -> None:
    """The console entry point."""
    try:
        app()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(int(ExitStatus.INTERRUPTED))
