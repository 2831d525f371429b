"""``dcmtools move``: retrieve studies, series or images (C-MOVE, or C-GET with --get)."""

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .common import OverwriteOpt, StdArgs
from .find import KeyOpt, model_option
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, PeerArg, client_options, fatal_as_record
from .webpeer import WEB_EPILOG, WebArgs, is_web

MOVE_EPILOG = """\b
What to retrieve: the records of 'dcmtools find' on stdin (each at its own
level, by its unique keys: PatientID with --model patient, StudyInstanceUID,
SeriesInstanceUID, SOPInstanceUID), or -k keys at --level. Keys that are not
unique keys (-k PatientName=DOE*) are resolved with a C-FIND first, and each
match is retrieved.

\b
Where to:
  (default)   to ourselves: a storage SCP on --port with our AE title (--aet)
              stores under --store-dir (PatientID/StudyUID/SeriesUID/SOPUID.dcm,
              as 'dcmtools listen'). The PACS must know our AE title with this
              host and port. --port defaults to the port of the peers-file entry
              whose aet is our AE title (e.g. [me] aet = "DCMTOOLS", host, port),
              the entry a 'dcmtools listen --peers' archive moves to; else 11112.
  --dest AET  a C-MOVE to another node the PACS knows (nothing is received here).
  --get       C-GET: the instances come back on our association; no port to
              open, nothing to register on the PACS.

\b
Records: one per identifier: {"type":"move" (or "get"),"level","identifier",
"destination","status","completed","failed","warning","received","out","files",
"ok"}; "out" is the folder holding what arrived (so the records can be piped
into dump or send), "files" the files. ok is false, and the exit status 1,
when a sub-operation failed, nothing arrived, or the PACS refused:
move_destination_unknown (0xA801, and Orthanc's 0xC000 when nothing was
sent) says which AE title to register where.

\b
Exit status 130 on Ctrl-C, after a C-CANCEL."""


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "summary":
        return None
    ident = record.get("identifier") or {}
    uid = (
        ident.get("SOPInstanceUID")
        or ident.get("SeriesInstanceUID")
        or ident.get("StudyInstanceUID")
        or ident.get("PatientID")
        or ""
    )
    what = f"{(record.get('level') or '').lower()} {uid}".strip()
    if record.get("ok") is False:
        return human_failure(record, what or record.get("peer", ""))
    counts = f"{record.get('completed', 0)} completed"
    if record.get("warning"):
        counts += f", {record['warning']} warning"
    if "received" in record:
        counts += f", {record['received']} received"
        if record.get("out"):
            counts += f" -> {record['out']}"
    elif record.get("destination"):
        counts += f" -> {record['destination']}"
    return f"{kind:<4} {what}: {counts}"


@app.command("move", epilog=MOVE_EPILOG + "\n\n" + PEERS_EPILOG + "\n\n" + EXIT_STATUS_EPILOG + "\n\n" + WEB_EPILOG)
@client_options
def move_command(
    peer: PeerArg,
    records: Annotated[
        str | None,
        typer.Argument(
            metavar="[-]",
            help="'-' reads the records of 'dcmtools find' from stdin "
            "(the default when stdin is piped and no -k is given).",
            show_default=False,
        ),
    ] = None,
    key: KeyOpt = None,
    level: Annotated[
        str | None,
        typer.Option(
            "--level",
            "-L",
            metavar="LEVEL",
            help="patient, study, series or image (for -k keys; piped records "
            "keep their own unless given) [default: study].",
            show_default=False,
        ),
    ] = None,
    model: model_option("the record's, else study") = None,  # type: ignore[valid-type]
    dest: Annotated[
        str | None,
        typer.Option("--dest", metavar="AET", help="Move to this AE title (a third node) instead of to ourselves."),
    ] = None,
    get: Annotated[
        bool, typer.Option("--get", help="Use C-GET: receive on our own association (no port, no registration).")
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            min=0,
            max=65535,
            help="Port of our storage SCP for C-MOVE to ourselves [default: the port of the peers-file "
            "entry whose aet is our AE title (--aet), else 11112].",
            show_default=False,
        ),
    ] = None,
    store_dir: Annotated[
        Path, typer.Option("--store-dir", "-d", metavar="DIR", help="Where received instances are stored.")
    ] = Path("."),
    bind: Annotated[
        str, typer.Option("--bind", metavar="ADDRESS", help="Address our storage SCP listens on ('' = all).")
    ] = "",
    overwrite: OverwriteOpt = False,
    net: NetArgs = NetArgs(),
    web: WebArgs = WebArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Retrieve from a PACS (C-MOVE, or C-GET with --get): studies, series, images.

    One record per identifier with the sub-operation counts and the
    instances received.

    \b
    Examples:
      dcmtools find pacs --level series -k Modality=CT | dcmtools move pacs --store-dir out/ -
      dcmtools move pacs -k AccessionNumber=ACC001 --port 11112 --store-dir study-copy/   # --port: where the PACS knows us
      dcmtools move pacs -k PatientID=VET042 --level patient --get -d dog/
      dcmtools move pacs -k PatientID=VET042 --dest WORKSTATION1   # exit status 1: the PACS does not know WORKSTATION1
      dcmtools find web --patient-id PAT001 | dcmtools move web --get -d from-web/ -
    """
    with std.run("move", _human) as run:
        from ..net.retrieve import requests_from_lines

        read_stdin = _check_what(records, key, dest, get)
        piped = requests_from_lines(sys.stdin, model, level) if read_stdin else iter(())
        asked = _asked(key, level, model)
        if is_web(peer, net.peers):  # DICOMweb: WADO-RS, always to us (cli/webpeer.py)
            from . import webpeer

            if dest:
                raise typer.BadParameter("a DICOMweb peer cannot move to a third node: use --get", param_hint="--dest")
            if not webpeer.get(run, web.session(peer, net, run), _chain(asked, piped), os.fspath(store_dir), overwrite):
                raise typer.BadParameter(_NOTHING_PIPED, param_hint="[-]")
            return
        from ..net.peer import our_port
        from ..net.retrieve import Retriever

        options, remote = net.connect(peer, run)
        if port is None:  # the archive sends to us where the peers file says we are
            port = our_port(options.calling_aet, net.peers)
        retriever = Retriever(
            remote,
            options,
            dest=dest,
            store_dir=os.fspath(store_dir),
            port=port,
            bind=bind,
            get=get,
            model=model,
            overwrite=overwrite,
        )
        if not _retrieve(run, retriever, _chain(asked, piped), remote, to_us=dest is None or get):
            raise typer.BadParameter(_NOTHING_PIPED, param_hint="[-]")


_NOTHING_PIPED = "nothing to retrieve: stdin held no records (pipe the output of 'dcmtools find')"


def _check_what(records: str | None, key: list[str] | None, dest: str | None, get: bool) -> bool:
    """Usage errors in what to retrieve and where; True when the requests are read from stdin."""
    if dest and get:
        raise typer.BadParameter(
            "--dest moves to another node; --get retrieves to us: choose one", param_hint="--dest/--get"
        )
    if records not in (None, "-"):
        raise typer.BadParameter(
            f"unexpected argument {records!r}: give '-' to read records from stdin, or -k keys", param_hint="[-]"
        )
    read_stdin = records == "-" or (not key and not sys.stdin.isatty())
    if not key and not read_stdin:
        raise typer.BadParameter(
            "nothing to retrieve: give -k keys, or pipe the records of 'dcmtools find' (with '-')", param_hint="-k"
        )
    return read_stdin


def _asked(key: list[str] | None, level: str | None, model: str | None) -> list[Any]:
    """The request of the -k keys (none without them); a usage error for keys that cannot be one."""
    from ..net.retrieve import request_from_keys
    from ..stream.records import DcmtoolsError

    try:
        return [request_from_keys(level or "study", key, model)] if key else []
    except DcmtoolsError as exc:
        raise typer.BadParameter(str(exc)) from None


def _retrieve(run: Any, retriever: Any, requests: Any, remote: Any, *, to_us: bool) -> int:
    """Write the records of every request and the sub-operation totals; the number of requests."""
    totals = {"completed": 0, "failed": 0, "warning": 0}  # sub-operations
    seen = [0]

    def every() -> Any:
        for request in requests:
            seen[0] += 1
            yield request

    results = retriever.run(every())
    try:
        with fatal_as_record(run, "get" if retriever.get else "move", peer=str(remote)):
            for record in results:
                for name in totals:
                    totals[name] += int(record.get(name) or 0)
                run.write(record)
    finally:
        results.close()  # after Ctrl-C: associations aborted, our storage SCP stopped
        run.summary_extra.update(
            {
                "completed": totals["completed"],
                "failed_suboperations": totals["failed"],
                "warning_suboperations": totals["warning"],
            }
        )
        if to_us:
            run.summary_extra["received"] = retriever.received
    return seen[0]


def _chain(first: list[Any], rest: Any) -> Any:
    yield from first
    yield from rest
