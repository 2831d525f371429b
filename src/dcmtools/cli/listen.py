"""``dcmtools listen``: the built-in storage SCP: receive, store atomically, print what arrives;
and answer queries, retrieves, worklist queries and Storage Commitment requests over what it stored."""

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .application import app
from .common import OverwriteOpt, StdArgs, option_groups
from .netopts import NetArgs, PeersOpt

_EPILOG = """\b
Stored files (atomically: written under a temporary name, then moved):
  DIR/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
  Characters other than letters, digits and .-_^ become _; a missing value
  becomes UNKNOWN. The dataset is stored as received, behind a file meta
  header naming the transfer syntax and the sender's AE title. An instance
  already there is kept and the new one stored as <SOPInstanceUID>-1.dcm,
  unless --overwrite. The C-STORE answer (0x0000) goes out only once the file
  is in place; a write failure answers 0xA700 (out of resources).

\b
Records: one per association event (type "association": accepted with the
proposed, accepted and rejected presentation contexts; released; aborted)
and one per instance (type "instance": calling_aet, peer address, SOP class
and instance, transfer_syntax, patient/study/series, path, status).

\b
Any called AE title is accepted (modalities are often set up with another).

\b
Who may use what: by default anyone may send C-ECHO and C-STORE (the
troubleshooting use), but query, retrieve, worklist and Storage Commitment
only callers in the peers file (an entry with the caller's AE title and host).
--allow SPEC (repeatable: a peers-file name, AET@HOST, or AET from any host)
admits only those callers, to every service; --allow-any opens everything to
everyone (with a warning). A refused caller gets A-ASSOCIATE-RJ "calling AE
title not recognised" (a stranger proposing only query/retrieve/commitment
contexts; with the default policy its other query contexts are rejected) and
a record. The start-up record ("listening", field "access") says which
policy is in force. listen binds every interface unless --bind ADDRESS
(e.g. --bind 127.0.0.1 for this machine only, or the clinic-side address).

\b
Limits (a server on a shared network): at most --max-associations
associations at once (default 32; one more is rejected, "local limit
exceeded"); a connection must send its whole A-ASSOCIATE-RQ within
--assoc-timeout seconds (default 10) and every later PDU whole within
--pdu-timeout seconds of the previous PDU received or sent (default 60;
measured on whole PDUs, so a byte now and then does not keep a connection);
at most max(64, 4 x --max-associations) connections may be waiting to
associate. A PDU longer than the max PDU length we announced (--max-pdu,
default 262144; an A-ASSOCIATE-RQ may have 1 MiB) is never read: the
association is aborted. Refused and dropped connections are records of type
"connection" (event refused, dropped, aborted or tls_refused, with the error).

\b
Crash safety: each instance is in the store's journal
(DIR/.dcmtools-index.pending) before its C-STORE answer leaves, and in the
index soon after; after a crash (kill -9, power cut of the process) the next
start indexes what the journal names, then empties it. Unfinished
.incoming-*.part files of a listen that is gone are deleted at start. Names
inside the store never start with a dot (a leading dot becomes _), so they
never hide and never collide with listen's own files.

\b
Query/retrieve (with --store-dir): it answers C-FIND (patient and study root,
all levels: wildcards, ranges, UID lists, sequence keys, and keys of lower
levels, e.g. Modality in a study query; the counts and ModalitiesInStudy),
C-MOVE to a destination from the peers file (the entry whose aet is the Move
Destination; an unknown one gets 0xA801) and C-GET (on the storage contexts
the requestor took the SCP role for), over an index of DIR kept in
DIR/.dcmtools-index.sqlite. The index is rebuilt from the files when it is
missing (or with --reindex, after files were put into DIR by other means),
in the background (queries wait for it); each instance received is added to
it once the transfer pauses for half a second, or when a query comes.

\b
Modality Worklist (with --worklist-dir WL): it answers worklist C-FIND from
the items in WL: *.wl (or *.dcm) DICOM files and *.json files in the DICOM
JSON model (one dataset or a list), read again when they change.

\b
Records of these: type "index" (instances, rebuilt), "find" and "worklist"
(calling_aet, level, model, keys, matches, status), "move" and "get"
(identifier, destination, completed, failed, warning, status), and
"worklist_item" for an item file that cannot be read.

\b
Storage Commitment (so a tech can test a modality's commitment against it):
listen answers N-ACTION requests (Storage Commitment Push Model) for what is
under --store-dir: an instance is committed when the store's index has it and
its file is there with the same SOP class; otherwise it fails with 0x0112 no
such object instance (or 0x0119 class/instance conflict; 0x0131 for a
Transaction UID seen before). Without --store-dir nothing is kept, so nothing
is committed. The report (N-EVENT-REPORT) goes out --commit-delay seconds
after the answer:
  auto  on the requester's association while it is still open, else on a new
        association (the default)
  same  only on the requester's association
  new   always on a new association, proposing the SCP role
A new association goes to --commit-report-to, or else to the peers-file entry
whose aet is the requester's calling AE title. Records: "commitment_request"
and "commitment_report" (committed and failed counts, the failures, "via",
ok when the requester took it).

\b
Stopping: with --count or --idle-timeout (or SIGTERM) it stops accepting,
gives open associations up to 10 s to be released, then exits; Ctrl-C
stops at once (associations still open are aborted).

\b
Exit status: 0 stopped by --count, --idle-timeout or SIGTERM with every
instance stored, 1 an instance could not be stored (or a retrieve it served
had failed sub-operations), 2 usage error, 3 the port cannot be opened, 130
stopped with Ctrl-C."""


class CommitReport(StrEnum):
    """How Storage Commitment reports go back (see --commit-report)."""

    auto = "auto"
    same = "same"
    new = "new"


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "association":
        who = f"{record.get('calling_aet')}@{record.get('peer')} -> {record.get('called_aet')}"
        event = record.get("event")
        if event == "accepted":
            accepted = record.get("accepted") or []
            names = sorted({f"{cx['sop_class']}" for cx in accepted if cx.get("sop_class")})
            shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
            return (
                f"association from {who}: {len(accepted)} of {record.get('proposed')} contexts accepted"
                f" ({shown}), max PDU {record.get('max_pdu')}, {record.get('implementation') or '?'}"
            )
        if event == "rejected":
            why = (record.get("error") or {}).get("message")
            return f"association from {who} rejected" + (f": {why}" if why else "")
        return f"association from {who} {event} after {record.get('instances', 0)} instance(s)"
    if kind == "instance":
        if record.get("ok") is False:
            return f"FAILED {record.get('sop_instance_uid')} from {record.get('calling_aet')}: {record['error']['message']}"
        where = record.get("path") or "(not stored)"
        return f"stored {record.get('modality') or ''} {record.get('sop_instance_uid')} from {record.get('calling_aet')} -> {where}"
    if kind in ("find", "worklist", "move", "get"):
        return _human_service(record)
    if kind == "index":
        how = f"rebuilt from the files in {record['seconds']:.2f} s" if record.get("rebuilt") else "kept"
        return f"store index: {record.get('instances')} instance(s), {how} ({record.get('path')})"
    if kind == "worklist_item":
        return f"FAILED worklist item {record.get('path')}: {record['error']['message']}"
    if kind == "commitment_request":
        if record.get("ok") is False:
            return f"REFUSED commitment request from {record.get('calling_aet')}: {record['error']['message']}"
        return (
            f"commitment request from {record.get('calling_aet')}@{record.get('peer')}: "
            f"{record.get('instances')} instance(s), transaction {record.get('transaction_uid')}"
        )
    if kind == "commitment_report":
        failures = record.get("failures") or []
        shown = "; ".join(f"{f['sop_instance_uid']}: {f['failure_meaning']}" for f in failures[:3])
        counts = f"{record.get('committed')} committed, {record.get('failed')} failed" + (
            f" ({shown})" if shown else ""
        )
        if record.get("ok") is False:
            return f"FAILED commitment report to {record.get('calling_aet')} ({counts}): {record['error']['message']}"
        return f"commitment report to {record.get('calling_aet')} on the {record.get('via')}: {counts}"
    if kind == "connection":
        return f"{record.get('event', '').upper()} connection from {record.get('peer')}: {record['error']['message']}"
    if kind == "listening":
        return (
            f"listening on port {record['port']} as {record['aet']}"
            + (
                f", storing under {record['store_dir']}"
                if record.get("store_dir")
                else ", not storing (no --store-dir)"
            )
            + f"; {record.get('access')}"
        )
    return None


def _human_service(record: dict[str, Any]) -> str:
    kind = record["type"]
    who = f"{record.get('calling_aet')}@{record.get('peer')}"
    keys = record.get("keys") if kind in ("find", "worklist") else record.get("identifier")
    shown = " ".join(f"{k}={v}" for k, v in (keys or {}).items())
    what = f"{kind.upper()} from {who}: {record.get('level') or ''} {shown}".replace("  ", " ").rstrip()
    if kind in ("find", "worklist"):
        text = f"{what} -> {record.get('matches', 0)} match(es)"
    else:
        dest = f" to {record['destination']}" if record.get("destination") else ""
        text = (
            f"{what}{dest}: {record.get('completed', 0)} completed, {record.get('failed', 0)} failed, "
            f"{record.get('warning', 0)} warning"
        )
    if record.get("ok") is False:
        error = record.get("error") or {}
        text = f"FAILED {text} ({record.get('status')}: {error.get('message', record.get('status_meaning'))})"
        if error.get("hint"):
            text += f"\n       {error['hint']}"
    return text


@app.command("listen", epilog=_EPILOG)
@option_groups
def listen_command(
    port: Annotated[
        int, typer.Option("--port", "-p", metavar="PORT", help="TCP port to listen on.", min=0, max=65535)
    ] = 11112,
    aet: Annotated[
        str | None,
        typer.Option(
            "--aet", metavar="AET", help="Our AE title [env DCMTOOLS_AET; default DCMTOOLS].", show_default=False
        ),
    ] = None,
    store_dir: Annotated[
        Path | None,
        typer.Option(
            "--store-dir",
            "-d",
            metavar="DIR",
            help="Store received instances under DIR (see below); without it they are received and acknowledged, not stored.",
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", "-c", metavar="N", help="Stop after N instances.", min=1)
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout", metavar="SECONDS", help="Stop after SECONDS without any association.", min=0.001
        ),
    ] = None,
    bind: Annotated[
        str,
        typer.Option(
            "--bind",
            metavar="ADDRESS",
            help="Address to listen on (default: every interface; 127.0.0.1 for this machine only).",
        ),
    ] = "",
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow",
            metavar="SPEC",
            help="Admit only this caller (repeatable): a peers-file name, AET@HOST, or AET; it may use every service.",
        ),
    ] = None,
    allow_any: Annotated[
        bool, typer.Option("--allow-any", help="Every caller may use every service, query and retrieve included.")
    ] = False,
    max_associations: Annotated[
        int,
        typer.Option(
            "--max-associations", metavar="N", help="Associations served at once; one more is rejected.", min=1
        ),
    ] = 32,
    assoc_timeout: Annotated[
        float,
        typer.Option(
            "--assoc-timeout",
            metavar="SECONDS",
            help="A connection must send its whole A-ASSOCIATE-RQ within SECONDS.",
            min=0.001,
        ),
    ] = 10.0,
    pdu_timeout: Annotated[
        float,
        typer.Option(
            "--pdu-timeout",
            metavar="SECONDS",
            help="Drop an association whose next PDU has not arrived whole within SECONDS.",
            min=0.001,
        ),
    ] = 60.0,
    worklist_dir: Annotated[
        Path | None,
        typer.Option(
            "--worklist-dir", metavar="DIR", help="Answer Modality Worklist queries from the items in DIR (.wl, .json)."
        ),
    ] = None,
    # -w is --window (C,W) in print and render: kept here, hidden, for the scripts that spell --worklist-dir so.
    worklist_dir_w: Annotated[Path | None, typer.Option("-w", metavar="DIR", hidden=True)] = None,
    reindex: Annotated[
        bool, typer.Option("--reindex", help="Rebuild the index of --store-dir from its files before starting.")
    ] = False,
    peers: PeersOpt = None,
    overwrite: OverwriteOpt = False,
    commit_report: Annotated[
        CommitReport,
        typer.Option(
            "--commit-report",
            help="How Storage Commitment reports go back: on the requester's association while it is open "
            "(auto, else a new one), only on it (same), or always on a new association (new).",
        ),
    ] = CommitReport.auto,
    commit_delay: Annotated[
        float,
        typer.Option(
            "--commit-delay", metavar="SECONDS", help="Wait this long before sending a commitment report.", min=0
        ),
    ] = 0.0,
    commit_report_to: Annotated[
        str | None,
        typer.Option(
            "--commit-report-to",
            metavar="PEER",
            help="Where reports on a new association go (AET@HOST:PORT or a peers-file name) "
            "[default: the peers-file entry with the requester's AE title].",
            show_default=False,
        ),
    ] = None,
    net: NetArgs.only("timeout", "max_pdu", "tls", "tls_ca", "tls_cert", "tls_key", "trace") = NetArgs(),  # type: ignore[valid-type]
    std: StdArgs = StdArgs(),
) -> None:
    """Receive instances: a Verification and Storage SCP for every storage SOP class and transfer syntax.

    Point a modality (or storescu, or 'dcmtools send') at it to see what it
    sends. With --store-dir it also answers C-FIND, C-MOVE and C-GET over what
    it stored, and with --worklist-dir Modality Worklist queries: a known-good
    node to test a modality's query/retrieve and worklist against. Runs until
    Ctrl-C, --count N instances, or --idle-timeout.

    \b
    Examples:
      dcmtools listen --port 11112 --store-dir incoming/
      dcmtools listen -p 11112 --aet MYSCP --count 1 --trace
      dcmtools listen -p 11112 -d in/ --idle-timeout 60 | jq -r 'select(.type=="instance") | .path'
      dcmtools listen -p 11112 --aet PACS -d archive/ --worklist-dir worklist/ --peers peers.toml
      dcmtools listen -p 11112 -d in/ --commit-report new --commit-report-to MODALITY@127.0.0.1:11113
      dcmtools listen -p 11112 -d archive/ --bind 127.0.0.1 --allow WORKSTATION@127.0.0.1
    """
    with std.run("listen", _human) as run:
        import signal
        import threading

        from ..net.access import Access
        from ..net.server import Listener
        from .netopts import resolve_peer

        options = replace(net, aet=aet).options(run.debug)  # our AE title: --aet, a listen option
        if allow_any and allow:
            raise typer.BadParameter("give either --allow or --allow-any", param_hint="--allow-any")
        access = Access(allow, allow_any=allow_any, peers_file=peers)
        if allow_any:
            run.warn("--allow-any: every caller on the network may query and retrieve what is stored here")
        report_to = resolve_peer(commit_report_to, peers, options) if commit_report_to else None
        lock = threading.Lock()  # records come from the SCPs' threads

        def on_record(record: dict[str, Any]) -> None:
            with lock:
                run.write(record)

        node = Listener(
            options,
            port=port,
            bind=bind,
            store_dir=store_dir,
            worklist_dir=worklist_dir or worklist_dir_w,
            access=access,
            peers_file=peers,
            reindex=reindex,
            overwrite=overwrite,
            max_associations=max_associations,
            assoc_timeout=assoc_timeout,
            pdu_timeout=pdu_timeout,
            commit_report=commit_report.value,
            commit_delay=commit_delay,
            commit_report_to=report_to,
            on_record=on_record,
        )
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: node.stop_soon())
        grace = 0.0
        node.start()
        try:
            on_record(node.listening_record())
            node.serve_forever(count=count, idle_timeout=idle_timeout)
            grace = 10.0  # let the sender release the association it is on (not on Ctrl-C)
        finally:
            node.stop(grace)
            signal.signal(signal.SIGTERM, previous)
        run.summary_extra.update({"instances": node.instances, "port": node.port})
