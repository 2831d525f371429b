"""``dcmtools echo``: C-ECHO a peer, with round-trip times, and say why it fails when it does."""

from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .common import CommandRun, DebugOpt, JsonOpt, QuietOpt
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, PeerArg, client_options, fatal_as_record
from .webpeer import WEB_EPILOG, PasswordFileOpt, TokenFileOpt, TokenOpt, UserOpt, is_web


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
    json: JsonOpt = None,
    quiet: QuietOpt = False,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    user: UserOpt = None,
    password_file: PasswordFileOpt = None,
    debug: DebugOpt = False,
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
    with CommandRun("echo", json_mode=json, human=_human, debug=debug, quiet=quiet) as run:
        if is_web(peer, net.peers):  # DICOMweb: a QIDO-RS request (cli/webpeer.py)
            from . import webpeer

            return webpeer.echo(
                run,
                webpeer.session_for(
                    peer, net, run, token=token, token_file=token_file, user=user, password_file=password_file
                ),
                count,
                interval,
            )
        from ..net import echo

        options = net.options(run.debug)
        remote = net.peer(peer, options)
        with fatal_as_record(run, "echo", peer=str(remote)):
            for record in echo(remote, options, count=count, interval=interval):
                run.write(record)
