"""``dcmtools echo``: C-ECHO a peer, with round-trip times, and say why it fails when it does."""

from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .common import StdArgs
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, PeerArg, client_options, fatal_as_record
from .webpeer import WEB_EPILOG, WebArgs, is_web


def _human(record: dict[str, Any]) -> str | None:
    if record.get("type") == "summary":
        return None
    if record.get("ok") is False:
        return human_failure(record, record.get("peer", ""), record.get("status_meaning", "failed"))
    text = f"echo {record['seq']}  {record['peer']}  {record['rtt_ms']:.2f} ms  {record['status_meaning']}"
    if "association_ms" in record:
        text += f"  (association {record['association_ms']:.1f} ms, {record.get('implementation') or '?'})"
    return text


@app.command("echo", epilog=PEERS_EPILOG + "\n\n" + EXIT_STATUS_EPILOG + "\n\n" + WEB_EPILOG)
@client_options
def echo_command(
    peer: PeerArg,
    count: Annotated[
        int, typer.Option("--count", "-c", metavar="N", help="Number of C-ECHOs (one association).", min=1)
    ] = 1,
    interval: Annotated[
        float, typer.Option("--interval", metavar="SECONDS", help="Pause between C-ECHOs.", min=0)
    ] = 0.0,
    net: NetArgs = NetArgs(),
    web: WebArgs = WebArgs(),
    std: StdArgs = StdArgs(),
) -> None:
    """Check that a peer answers: C-ECHO with round-trip times.

    One record per C-ECHO (seq, rtt_ms, status); the first also gives the
    time to open the association, the peer's max PDU and implementation.
    When it fails, the message says what happened and what to try, and the
    exit status says which kind of failure it was (see below).

    \b
    Examples:
      dcmtools echo PACS@127.0.0.1:4242
      dcmtools echo pacs --count 5 --interval 1
      dcmtools echo pacs --aet MYWS --timeout 5 --trace
      dcmtools echo web                            # a DICOMweb service (a peers-file entry with url)
    """
    with std.run("echo", _human) as run:
        if is_web(peer, net.peers):  # DICOMweb: a QIDO-RS request (cli/webpeer.py)
            from . import webpeer

            return webpeer.echo(run, web.session(peer, net, run), count, interval)
        from ..net import echo

        options, remote = net.connect(peer, run)
        with fatal_as_record(run, "echo", peer=str(remote)):
            run.write_all(echo(remote, options, count=count, interval=interval))
