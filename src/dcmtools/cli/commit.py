"""``dcmtools commit``: Storage Commitment (Push Model SCU): does the archive keep these instances?"""

from typing import Annotated, Any

import typer

from .application import app
from .common import FileArgs, StdArgs
from .netopts import PEERS_EPILOG, NetArgs, PeerArg, client_options, fatal_as_record

_EPILOG = """\b
Records: one per input (type "commitment"): path (when a file or a record
named one), sop_class_uid, sop_instance_uid, transaction_uid, and state:
  committed      the archive committed to keep it (retrieve_aet when it said
                 where); reported_via says on which association the report came
  failed         the archive will not keep it: failure_reason (hex) and
                 failure_meaning, e.g. 0x0112 no such object instance (it
                 never received it), 0x0119 class/instance conflict, 0x0213
                 resource limitation; or it refused the request (status)
  pending        no report within --wait: the message names the likely cause
  not_requested  the association failed before its request went out
Only "committed" has ok true.

\b
Where the report comes: some archives send it on the association of the
request (kept open while waiting); many (Orthanc, most PACS) open a new
association to us later. Give --port for those: we listen there as --aet, and
the archive must know that AE title with this host's address and that port
(for Orthanc: a DicomModalities entry with "AllowStorageCommitment": true).
The port is open from before the first request until the end of the wait.

\b
Exit status:
  0  every instance is committed
  1  one or more instances failed (or an input could not be read)
  2  usage error (bad option, unknown peer name, unreadable TLS files)
  3  could not connect (name not resolved, connection refused, TLS), or the
     --port cannot be opened
  4  the archive rejected the association
  5  the association was aborted or dropped
  6  nothing failed but some instances are still pending when --wait ran out
     (no report came), or a reply timed out
  7  the archive does not support Storage Commitment (no presentation context)
  130 interrupted (Ctrl-C)"""


def _human_formatter():
    told: set[str] = set()

    def human(record: dict[str, Any]) -> str | None:
        kind = record.get("type")
        if kind == "summary":
            return None
        subject = record.get("path") or record.get("sop_instance_uid") or record.get("peer") or ""
        if record.get("ok"):
            via = record.get("reported_via") or ""
            where = f"  (kept by {record['retrieve_aet']})" if record.get("retrieve_aet") else ""
            return f"committed {subject}{where}  [{via}]"
        error = record.get("error") or {}
        state = record.get("state")
        label = {"pending": "PENDING", "not_requested": "NOT ASKED"}.get(state, "FAILED")
        message = error.get("message", "failed")
        # the same cause for many instances: say it in full once, then briefly
        key = f"{error.get('code')}:{message}"
        if key in told and state in ("pending", "not_requested"):
            return f"{label} {subject}"
        told.add(key)
        text = f"{label} {subject}: {message}"
        if error.get("hint"):
            text += f"\n       {error['hint']}"
        return text

    return human


@app.command("commit", epilog=_EPILOG + "\n\n" + PEERS_EPILOG)
@client_options
def commit_command(
    peer: PeerArg,
    batch: Annotated[
        int, typer.Option("--batch", metavar="N", help="Instances per transaction (one N-ACTION each).", min=1)
    ] = 500,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            help="How long to wait for the reports after the last request; then what has none is pending.",
            min=0,
        ),
    ] = 60.0,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            help="Also listen on PORT (as --aet) for reports the archive sends on a new association.",
            min=1,
            max=65535,
            show_default=False,
        ),
    ] = None,
    bind: Annotated[
        str, typer.Option("--bind", metavar="ADDRESS", help="Address to listen on with --port ('' = all).")
    ] = "",
    files: FileArgs.only("inputs", "files_from", "null") = FileArgs(),  # type: ignore[valid-type]
    net: NetArgs = NetArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Ask an archive to commit to keep instances (Storage Commitment), and wait for its answer.

    The SOP Class and Instance UIDs come from the files, or from the records
    of another command on stdin (send, listen, a query), so a script can send
    and then ask. Every --batch instances make one transaction (an N-ACTION
    with its own Transaction UID); then the reports (N-EVENT-REPORT) are
    awaited for up to --wait seconds, on the same association, and with
    --port on new associations the archive opens to us. One record per
    instance: committed, failed (with the reason), or pending. Delete local
    copies only of what is committed: the exit status is 0 only when every
    instance is.

    \b
    Examples:
      dcmtools commit PACS@127.0.0.1:4242 study/ --port 11113
      dcmtools send pacs study/ | dcmtools commit pacs - --port 11113 --wait 300
      dcmtools commit pacs study/ -p 11113 | jq -r 'select(.state=="committed") | .path'
    """
    with std.run("commit", _human_formatter()) as run:
        from ..net.commitment import CommitmentSCU
        from ..stream.records import ErrorCode, ExitStatus

        options, remote = net.connect(peer, run)
        items = run.inputs(files)
        scu = CommitmentSCU(remote, options, batch=batch, wait=wait, port=port, bind=bind)
        counts = {"committed": 0, "not_committed": 0, "pending": 0, "not_requested": 0}
        with fatal_as_record(run, "association", peer=str(remote)):
            for record in run.progress(scu.run(items), unit="instance"):
                run.write(record)
                state = record.get("state")
                if state in ("committed", "pending", "not_requested"):
                    counts[state] += 1
                elif record.get("ok") is False:
                    counts["not_committed"] += 1
        if scu.fault is not None:
            run.writer.fail(scu.fault.exit_status)
        elif run.writer.error_codes and set(run.writer.error_codes) == {ErrorCode.COMMIT_PENDING}:
            run.writer.fail(ExitStatus.TIMEOUT)  # nothing failed: the reports did not come in time
        run.summary_extra.update({"peer": str(remote), **counts})
