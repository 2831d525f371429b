"""The options of a batch past one machine, shared by dump, anonymize, transcode and send.

A command takes them in the group ``files: common.FileArgs`` (see
``groups.option_groups``) and makes one call:

    batch = files.open(run, "anonymize")
    items = batch.inputs(run.inputs(files))
    for record in batch.stream(work(items)): run.write(record)

The machinery is the library's: ``dcmtools.stream.batch`` (shard, journal,
executor), ``dcmtools.stream.shard`` and ``dcmtools.stream.cluster``.
"""

from typing import Annotated

import typer

ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Work on shard K of N (from 0): a stable split by StudyInstanceUID (a study stays on one shard). "
        "Default from a Slurm array (SLURM_ARRAY_TASK_ID/_COUNT) or a Kubernetes indexed job "
        "(JOB_COMPLETION_INDEX, with --shard /N).",
        show_default=False,
    ),
]
JournalOpt = Annotated[
    str | None,
    typer.Option(
        "--journal",
        metavar="FILE",
        help="Remember each file's result in FILE (SQLite, one per shard): run again, what was done is "
        'skipped (its record says "skipped") and what failed is retried.',
        show_default=False,
    ),
]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="ADDRESS",
        help="Run the per-file work on a Dask cluster (tcp://HOST:8786; env DASK_SCHEDULER_ADDRESS); "
        "needs dcmtools[cluster] on this machine and the workers, and paths they all see.",
        show_default=False,
    ),
]


BATCH_EPILOG = (
    "Past one machine: --shard K/N runs one of N copies (a Slurm array, a Kubernetes indexed job; "
    "see examples/), --journal FILE makes a run resumable, --cluster tcp://HOST:8786 uses a Dask cluster."
)


def open_batch(
    run,
    command: str,
    shard: str | None,
    journal: str | None,
    cluster: str | None = None,
    *,
    use_env_cluster: bool = True,
):
    """The run's ``Batch``; a usage error (exit status 2) for a bad --shard, journal or cluster."""
    from ..stream.batch import Batch
    from ..stream.cluster import resolve_address
    from ..stream.journal import JournalError
    from ..stream.shard import ShardError, parse_shard

    try:
        parsed = parse_shard(shard)
    except ShardError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
    address = resolve_address(cluster) if (cluster or use_env_cluster) else None
    if address:
        try:
            import distributed  # noqa: F401  (only with --cluster: start-up stays unchanged)
        except ImportError:
            raise typer.BadParameter(
                "--cluster needs Dask: pip install 'dcmtools[cluster]'", param_hint="--cluster"
            ) from None

    def emit(record) -> None:
        run.summary_extra["skipped"] = run.summary_extra.get("skipped", 0) + 1
        if run.json_mode:
            run.write(record)
        else:  # the command's own human form does not know skipped records
            run.writer.write_line(f"skip   {record['path']}: {record['reason']}", True)

    try:
        batch = Batch(command, shard=parsed, journal=journal, cluster=address, emit=emit)
    except JournalError as exc:
        raise typer.BadParameter(str(exc), param_hint="--journal") from None
    run.summary_extra.update(batch.summary())
    return batch
