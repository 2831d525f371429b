"""``dcmtools listen``: the built-in storage SCP: receive, store atomically, print what arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import app
from .common import CommandRun, DebugOpt, JsonOpt, OverwriteOpt, QuietOpt
from .netopts import (
    MaxPduOpt,
    TimeoutOpt,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    TlsOpt,
    TraceOpt,
    net_options,
)

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
Stopping: with --count or --idle-timeout (or SIGTERM) it stops accepting,
gives open associations up to 10 s to be released, then exits; Ctrl-C
stops at once (associations still open are aborted).

\b
Exit status: 0 stopped by --count, --idle-timeout or SIGTERM with every
instance stored, 1 an instance could not be stored, 2 usage error, 3 the
port cannot be opened, 130 stopped with Ctrl-C."""


def _human(record: dict[str, Any]) -> str | None:
    kind = record.get("type")
    if kind == "association":
        who = f"{record.get('calling_aet')}@{record.get('peer')} -> {record.get('called_aet')}"
        event = record.get("event")
        if event == "accepted":
            accepted = record.get("accepted") or []
            names = sorted({f"{cx['sop_class']}" for cx in accepted if cx.get("sop_class")})
            shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
            return (f"association from {who}: {len(accepted)} of {record.get('proposed')} contexts accepted"
                    f" ({shown}), max PDU {record.get('max_pdu')}, {record.get('implementation') or '?'}")
        return f"association from {who} {event} after {record.get('instances', 0)} instance(s)"
    if kind == "instance":
        if record.get("ok") is False:
            return f"FAILED {record.get('sop_instance_uid')} from {record.get('calling_aet')}: {record['error']['message']}"
        where = record.get("path") or "(not stored)"
        return f"stored {record.get('modality') or ''} {record.get('sop_instance_uid')} from {record.get('calling_aet')} -> {where}"
    if kind == "listening":
        return f"listening on port {record['port']} as {record['aet']}" + (
            f", storing under {record['store_dir']}" if record.get("store_dir") else ", not storing (no --store-dir)"
        )
    return None


@app.command("listen", epilog=_EPILOG)
def listen_command(
    port: Annotated[int, typer.Option("--port", "-p", metavar="PORT", help="TCP port to listen on.", min=0, max=65535)] = 11112,
    aet: Annotated[Optional[str], typer.Option("--aet", metavar="AET", help="Our AE title [env DCMTOOLS_AET; default DCMTOOLS].", show_default=False)] = None,
    store_dir: Annotated[
        Optional[Path],
        typer.Option("--store-dir", "-d", metavar="DIR", help="Store received instances under DIR (see below); without it they are received and acknowledged, not stored."),
    ] = None,
    count: Annotated[Optional[int], typer.Option("--count", "-c", metavar="N", help="Stop after N instances.", min=1)] = None,
    idle_timeout: Annotated[
        Optional[float], typer.Option("--idle-timeout", metavar="SECONDS", help="Stop after SECONDS without any association.", min=0.001)
    ] = None,
    bind: Annotated[str, typer.Option("--bind", metavar="ADDRESS", help="Address to listen on ('' = all).")] = "",
    overwrite: OverwriteOpt = False,
    timeout: TimeoutOpt = None,
    max_pdu: MaxPduOpt = None,
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    trace: TraceOpt = False,
    json: JsonOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Receive instances: a Verification and Storage SCP for every storage SOP class and transfer syntax.

    Point a modality (or storescu, or 'dcmtools send') at it to see what it
    sends. Runs until Ctrl-C, --count N instances, or --idle-timeout.

    \b
    Examples:
      dcmtools listen --port 11112 --store-dir incoming/
      dcmtools listen -p 104 --aet MYSCP --count 1 --trace
      dcmtools listen -d in/ --idle-timeout 60 | jq -r 'select(.type=="instance").path'
    """
    with CommandRun("listen", json_mode=json, human=_human, debug=debug, quiet=quiet) as run:
        import os
        import signal
        import threading

        from ..net import StorageSCP

        options = net_options(aet, timeout, max_pdu, tls, tls_ca, tls_cert, tls_key, trace, run.debug)
        lock = threading.Lock()

        def on_record(record: dict[str, Any]) -> None:
            with lock:
                run.write(record)

        scp = StorageSCP(
            os.fspath(store_dir) if store_dir is not None else None,
            aet=options.calling_aet,
            port=port,
            host=bind,
            options=options,
            on_record=on_record,
            overwrite=overwrite,
            tls=options.tls,
        )
        stop = threading.Event()
        grace = 0.0

        def on_term(signum: int, frame: Any) -> None:
            stop.set()
            with scp._cond:
                scp._cond.notify_all()

        previous = signal.signal(signal.SIGTERM, on_term)
        scp.start()
        try:
            with lock:
                run.write({"type": "listening", "port": scp.port, "aet": scp.aet,
                           "store_dir": os.fspath(store_dir) if store_dir is not None else None})
            while not stop.is_set():
                why = scp.wait(count=count, idle_timeout=idle_timeout, timeout=0.5)
                if why in ("count", "idle"):
                    break
            grace = 10.0  # let the sender release the association it is on (not on Ctrl-C)
        finally:
            scp.stop(grace)
            signal.signal(signal.SIGTERM, previous)
        run.summary_extra.update({"instances": scp.instances, "port": scp.port})
