"""``dcmtools migrate``: move a whole archive (PACS or folder) to another, resumable, verified."""

from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .batchopts import ShardOpt
from .changeopts import AnonArgs, CharsetOpt, EditArgs
from .common import StdArgs
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, client_options

MIGRATE_EPILOG = """\b
SOURCE and DEST: a PACS (AET@HOST:PORT or a peers-file name) or a folder
(a path: an existing folder, or one with a slash).
  PACS -> PACS     C-MOVE at the source straight to DEST's AE title (the
                   source must know it; --dest-aet if it knows it by another);
                   --through-us: C-MOVE to us (our --port) then C-STORE;
                   --get: C-GET then C-STORE (nothing to register).
  PACS -> folder   C-MOVE to us (or --get) into the folder
                   (PatientID/StudyUID/SeriesUID/SOPUID.dcm, as 'listen').
  folder -> PACS   C-STORE of each study's files; folder -> folder: copies.
  -> DICOMweb      through us, then STOW-RS (see below).

\b
The journal (--journal FILE, SQLite) holds the plan and each study's state:
planned, retrieved, sent, verified, or failed with its attempts and last
error. Run the same command again to resume: nothing verified is moved
again, failed studies are retried up to --max-attempts, and a kill -9 at
any moment loses at most the studies in flight. --status prints the state
of the journal (counts per state, rate, ETA) and does nothing else.

\b
Inventory: study-level C-FIND (--since/--until, default everything). A
window that comes back capped (as many answers as --max-results, or ended
with a Cancel status as Orthanc's LimitFindResults does) is split in
halves down to one day, then by modality; studies without a date get a
query of their own. What stays capped is reported (inventory_capped) and
the exit status is 1: a cap is never taken for the whole list.

\b
Verification (every run's last step; alone with --verify-only): per study
the series and instance counts at both sides by C-FIND on its UID alone
(--uids: the SOP Instance UIDs too). Records {"type":"verify","study",
"result": matched|extra|missing|incomplete,"source":{..},"destination":{..}}.
--commit: then Storage Commitment at DEST of the instances it lists for
the study (one transaction per study; the report on the association, or
on a new one to our --port, as Orthanc sends it). A study not committed is
not verified: result not_committed; no report within --commit-wait: it
stays sent (asked again next run); refused (e.g. 0x0112, no such object):
failed, and sent again next run.
Exit status 0 only when every study is verified; 1 otherwise; 3-7 when a
peer failed as a whole (the run stops: run it again when it is back).

\b
\b
Changes in flight: --anonymize (with anonymize's --key/--key-file,
--retain-*, --clean-*, --allow-burned-in, --keep-unknown) and --edit (with
edit's --set, --set-existing, --erase, --erase-private, --map/--match,
--require-match, --new-uids, --charset), anonymize first. Every study then
goes through us (retrieve, change, send). A key is required where UIDs are
derived (the next run must derive the same ones). The journal keeps each
study's new Study UID(s), Patient ID and SOP Instance UIDs: verification
counts the study at DEST under its new UID (--uids: the mapped UIDs), and a
run with other changes than the journal's first one is refused (exit 2).
A file that cannot be changed (burned-in pixels, --require-match without a
row) fails its study with that reason.

\b
DEST may be a DICOMweb service: a base URL (https://host/dicom-web) or a
peers-file entry with url = "..." (its token, user and password, TLS
settings, as for send; or $DCMTOOLS_TOKEN, $DCMTOOLS_USER and
$DCMTOOLS_PASSWORD). Studies go through us (C-MOVE to our --port, or
--get), then STOW-RS; verification asks QIDO-RS (the study's numbers of
series and instances; its instances with --uids). No --commit there
(Storage Commitment is DIMSE); a DICOMweb SOURCE is not supported."""


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "summary":
        return None
    if kind == "status":
        states = record.get("states") or {}
        eta = record.get("eta_seconds")
        return (
            f"{record.get('source')} -> {record.get('destination')}: {record.get('studies', 0)} studies: "
            + ", ".join(f"{n} {s}" for s, n in states.items() if n)
            + f"; {record.get('rate_studies_per_s', 0):g} studies/s"
            + (f", ETA {_duration(eta)}" if eta else "")
        )
    if record.get("ok") is False:
        subject = record.get("study") or record.get("window") or record.get("path") or record.get("step") or ""
        return human_failure(record, f"{kind} {subject}".strip())
    if kind == "inventory":
        what = record.get("window") or record.get("folder")
        if record.get("split"):
            return f"inventory {what}: capped at {record.get('studies')} answers, split"
        return f"inventory {what}: {record.get('studies')} studies"
    if kind == "study":
        return f"study {record['study']}: {record.get('state')} ({record.get('instances', 0)} instances)"
    if kind == "verify":
        dest = record.get("destination") or {}
        return f"verify {record['study']}: {record.get('result')} ({dest.get('instances', 0)} instances)"
    return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


@app.command("migrate", epilog=MIGRATE_EPILOG + "\n\n" + PEERS_EPILOG + "\n\n" + EXIT_STATUS_EPILOG)
@client_options
def migrate_command(
    source: Annotated[
        str | None, typer.Argument(metavar="SOURCE", help="PACS or folder to migrate from.", show_default=False)
    ] = None,
    dest: Annotated[
        str | None, typer.Argument(metavar="DEST", help="PACS or folder to migrate to.", show_default=False)
    ] = None,
    journal: Annotated[
        str,
        typer.Option(
            "--journal", "-J", metavar="FILE", help="The journal (SQLite) of this migration: created, or resumed."
        ),
    ] = ...,
    status: Annotated[
        bool, typer.Option("--status", help="Print the journal's state (counts, rate, ETA) and exit.")
    ] = False,
    verify_only: Annotated[
        bool,
        typer.Option(
            "--verify-only", help="Reconcile every study (after the inventory, on a new journal); move nothing."
        ),
    ] = False,
    since: Annotated[str | None, typer.Option("--since", metavar="YYYYMMDD", help="Studies from this date.")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="YYYYMMDD", help="Studies up to this date.")] = None,
    max_results: Annotated[
        int | None,
        typer.Option(
            "--max-results",
            metavar="N",
            min=1,
            help="The source's cap on C-FIND answers (a window with N answers is split).",
        ),
    ] = None,
    get: Annotated[
        bool, typer.Option("--get", help="C-GET from the source, then C-STORE to DEST (through us).")
    ] = False,
    through_us: Annotated[
        bool, typer.Option("--through-us", help="C-MOVE to us, then C-STORE to DEST (not a straight C-MOVE).")
    ] = False,
    dest_aet: Annotated[
        str | None,
        typer.Option("--dest-aet", metavar="AET", help="DEST's AE title as the source knows it [default: DEST's]."),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="PORT", min=0, max=65535, help="Our storage SCP for C-MOVE to us.")
    ] = 11112,
    associations: Annotated[
        int,
        typer.Option(
            "--associations", "-n", metavar="N", min=1, help="Studies moved in parallel (associations to each peer)."
        ),
    ] = 1,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", metavar="N", min=1, help="Attempts per study, over all runs.")
    ] = 3,
    rate: Annotated[
        str | None, typer.Option("--rate", metavar="RATE", help="At most RATE instances/s (20, 20/s) or MB/s (5MB/s).")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", metavar="HH:MM-HH:MM", help="Work only inside this daily window (local time), pause outside."
        ),
    ] = None,
    uids: Annotated[bool, typer.Option("--uids", help="Verify SOP Instance UIDs, not only counts.")] = False,
    commit: Annotated[
        bool,
        typer.Option(
            "--commit",
            help="After verification, Storage Commitment of each study at DEST "
            "(reports on the association or on our --port).",
        ),
    ] = False,
    commit_wait: Annotated[
        float,
        typer.Option(
            "--commit-wait", metavar="SECONDS", min=0, help="How long to wait for a Storage Commitment report."
        ),
    ] = 60.0,
    anonymize: Annotated[
        bool,
        typer.Option(
            "--anonymize",
            help="De-identify every instance in flight, as 'dcmtools "
            "anonymize' does (its --retain-*/--clean-* options; --key or --key-file).",
        ),
    ] = False,
    anon: AnonArgs = AnonArgs(),
    edit: Annotated[
        bool,
        typer.Option(
            "--edit",
            help="Change every instance in flight, as 'dcmtools edit' does "
            "(its --set, --set-existing, --erase, --erase-private, --map/--match, "
            "--new-uids with --key); after --anonymize.",
        ),
    ] = False,
    edits: EditArgs = EditArgs(),
    charset: CharsetOpt = None,
    net: NetArgs = NetArgs(),
    shard: ShardOpt = None,
    std: StdArgs = StdArgs(),
) -> None:
    """Migrate a whole archive: inventory, transfer, verification; run it again to resume.

    \b
    Examples:
      dcmtools migrate OLD@10.0.0.5:104 NEW@10.0.0.6:104 --journal old-new.journal
      dcmtools migrate old new --journal j.db --associations 2 --rate 50 --window 19:00-06:00
      dcmtools migrate --journal old-new.journal --status
      dcmtools migrate OLD@10.0.0.5:104 NEW@10.0.0.6:104 --journal old-new.journal --verify-only --uids
      SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_TASK_COUNT=4 dcmtools migrate /archive NEW@10.0.0.6:104 --journal m-0.journal
      dcmtools migrate /archive/legacy NEW@10.0.0.6:104 --journal legacy.journal
      dcmtools migrate OLD@10.0.0.5:104 NEW@10.0.0.6:104 --journal old-new.journal --commit --port 11113
      dcmtools migrate OLD@10.0.0.5:104 NEW@10.0.0.6:104 --journal research.journal --anonymize --key-file team.key
      dcmtools migrate OLD@10.0.0.5:104 NEW@10.0.0.6:104 --journal fix.journal --edit --set InstitutionName="North Clinic"
      dcmtools migrate OLD@10.0.0.5:104 https://pacs.example.org/dicom-web --journal web.journal --port 11113
    """
    with std.run("migrate", _human) as run:
        if status:
            from ..migrate import status as journal_status

            run.write(journal_status(journal))
            return
        if not source or not dest:
            raise typer.BadParameter(
                "give SOURCE and DEST (or --status to look at the journal)", param_hint="SOURCE DEST"
            )
        if get and through_us:
            raise typer.BadParameter("--get already goes through us: give one of them", param_hint="--get/--through-us")
        options = _options(
            run,
            since=_date(since, "--since"),
            until=_date(until, "--until"),
            max_results=max_results,
            get=get,
            through=through_us,
            dest_aet=dest_aet,
            port=port,
            associations=associations,
            max_attempts=max_attempts,
            rate=rate,
            window=window,
            uids=uids,
            commit=commit,
            commit_wait=commit_wait,
            shard=shard,
        )
        options.changes = _changes(anonymize, edit, anon, edits, charset)
        _migrate(run, source, dest, journal, net, options, verify_only)


def _options(run: Any, *, rate: str | None, window: str | None, shard: str | None, **values: Any) -> Any:
    """The ``MigrateOptions`` of the command line; a usage error for a value that cannot be one."""
    from ..migrate import MigrateOptions, Rate, Window
    from ..stream.records import DcmtoolsError
    from ..stream.shard import ShardError, parse_shard

    try:
        shard_ = parse_shard(shard)
    except ShardError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
    try:
        return MigrateOptions(
            **values,
            rate=Rate.parse(rate) if rate else None,
            window=Window.parse(window) if window else None,
            shard=shard_,
            on_pause=None
            if run.quiet
            else lambda s: run.warn(f"outside the window {window}: pausing {s / 60:.0f} min"),
        )
    except DcmtoolsError as exc:
        raise typer.BadParameter(exc.message) from None


def _migrate(run: Any, source: str, dest: str, journal: str, net: NetArgs, options: Any, verify_only: bool) -> None:
    """Run the migration (or its verification), writing its records; the journal decides the exit status."""
    from ..migrate import Migration, parse_endpoint
    from ..stream.records import ExitStatus

    net_options = net.options(run.debug)
    src = parse_endpoint(source, net.peers, net_options, must_exist=True)
    dst = parse_endpoint(dest, net.peers, net_options)
    if options.commit and (dst.is_folder or dst.is_web):
        raise typer.BadParameter(
            "Storage Commitment needs a DIMSE PACS as DEST, not a folder or a DICOMweb URL", param_hint="--commit"
        )
    migration = Migration(src, dst, journal, net_options, options)
    try:
        records = migration.verify_only() if verify_only else migration.run()
        bar = _progress(run, migration)
        try:
            for record in records:
                run.write(record)
                if bar is not None:
                    bar.step(record)
        finally:
            if bar is not None:
                bar.close()
        run.summary_extra.update(migration.summary())
        # The journal decides: a study that failed once and then went through is verified.
        run.writer.status = ExitStatus(migration.exit_status)
    finally:
        migration.close()


class _Bar:
    """Progress on a terminal (stderr): studies done of the journal's, instances, rate, ETA (tqdm's)."""

    def __init__(self, run: Any, migration: Any) -> None:
        from tqdm import tqdm

        counts = migration.journal.counts()
        self.bar = tqdm(
            total=sum(counts.values()) or None,
            initial=counts.get("verified", 0),
            unit="study",
            file=__import__("sys").stderr,
            dynamic_ncols=True,
            leave=False,
        )
        self.instances = 0
        self.journal = migration.journal

    def step(self, record: dict) -> None:
        kind = record.get("type")
        if kind == "inventory":
            self.bar.total = self.journal.total()
            self.bar.refresh()
        if kind == "study" and record.get("ok"):
            self.instances += int(record.get("instances") or 0)
            self.bar.set_postfix(instances=self.instances, refresh=False)
        if kind == "verify" and record.get("ok") and record.get("state_before") != "verified":
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _progress(run: Any, migration: Any) -> Any:
    return _Bar(run, migration) if run.show_progress() else None


def _changes(anonymize: bool, edit: bool, anon: AnonArgs, edits: EditArgs, charset: str | None) -> Any:
    """The ``migrate.changes.Changes`` of --anonymize/--edit (None without them), checked for usage errors."""
    if not anonymize and anon.changes_anything():
        raise typer.BadParameter("the --retain-*/--clean-* options go with --anonymize", param_hint="--anonymize")
    if not edit and (edits.changes_anything() or charset):
        raise typer.BadParameter("--set, --erase, --map ... go with --edit", param_hint="--edit")
    if not anonymize and not edit:
        from .changeopts import from_environment  # an exported key is no usage error for a plain migration

        if (anon.key is not None and not from_environment(anon.key)) or anon.key_file is not None:
            raise typer.BadParameter("--key is the key of --anonymize or --edit --new-uids", param_hint="--key")
        return None
    secret = anon.secret()
    if secret is None and (anonymize or edits.new_uids):
        # A random key would give other UIDs on the run that resumes: studies would arrive twice.
        raise typer.BadParameter(
            "a migration is resumed over many runs: give --key or --key-file (the same key "
            "gives the same UIDs and pseudonyms)",
            param_hint="--key/--key-file",
        )
    from ..migrate.changes import Changes

    anonymizer = anon.anonymizer(secret) if anonymize else None
    editor = edits.editor(secret if edits.new_uids else None, charset) if edit else None
    return Changes(anonymizer, editor)


def _date(text: str | None, option: str) -> str | None:
    if text is None:
        return None
    digits = text.replace("-", "")
    import datetime

    try:
        datetime.datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYYMMDD or YYYY-MM-DD)", param_hint=option) from None
    return digits
