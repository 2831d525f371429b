"""``dcmtools send``: C-STORE files to a peer, streaming their bytes, one record per file."""

from typing import Annotated, Any

import typer

from ..stream.records import human_failure
from .application import app
from .common import FileArgs, StdArgs
from .netopts import EXIT_STATUS_EPILOG, PEERS_EPILOG, NetArgs, PeerArg, client_options, fatal_as_record
from .webpeer import WEB_EPILOG, BatchOpt, WebArgs, is_web

_TS_NAMES = {
    "1.2.840.10008.1.2": "implicit LE",
    "1.2.840.10008.1.2.1": "explicit LE",
    "1.2.840.10008.1.2.2": "explicit BE",
    "1.2.840.10008.1.2.1.99": "deflated",
    "1.2.840.10008.1.2.4.50": "JPEG baseline",
    "1.2.840.10008.1.2.4.51": "JPEG extended",
    "1.2.840.10008.1.2.4.57": "JPEG lossless",
    "1.2.840.10008.1.2.4.70": "JPEG lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS near-lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE",
}


_FAULT_STATUS = {"aborted": 5, "timeout": 6}  # a file lost to the association: its exit status


def _ts(uid: str | None) -> str:
    return _TS_NAMES.get(uid or "", uid or "?")


def _human(record: dict[str, Any]) -> str | None:
    if record.get("type") == "summary":
        return None
    subject = record.get("path") or record.get("peer") or ""
    if record.get("ok") is False:
        return human_failure(record, subject)
    text = f"sent   {subject}  {_ts(record.get('transfer_syntax'))}  {record.get('status')}"
    if record.get("decompressed"):
        text += f"  (decompressed from {_ts(record.get('original_transfer_syntax'))}: the peer takes only uncompressed)"
    elif record.get("converted"):
        text += f"  (converted from {_ts(record.get('original_transfer_syntax'))})"
    if record.get("warning"):
        text += f"  warning: {record.get('status_meaning')}"
    return text


@app.command("send", epilog=PEERS_EPILOG + "\n\n" + EXIT_STATUS_EPILOG + "\n\n" + WEB_EPILOG)
@client_options
def send_command(
    peer: PeerArg,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            metavar="N",
            help="Re-open the association this many times in a row after it fails mid-batch.",
            min=0,
        ),
    ] = 2,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="N", help="Parallel associations.", min=1)] = 1,
    decompress: Annotated[
        bool,
        typer.Option(
            "--decompress/--no-decompress",
            help="Decompress on the fly when the peer accepts a SOP class only uncompressed.",
        ),
    ] = True,
    priority: Annotated[
        int,
        typer.Option("--priority", metavar="0|1|2", help="C-STORE priority: 0 medium, 1 high, 2 low.", min=0, max=2),
    ] = 0,
    files: FileArgs.without("overwrite", "jobs", "cluster") = FileArgs(),  # type: ignore[valid-type]
    net: NetArgs = NetArgs(),
    web: WebArgs = WebArgs(),
    batch: BatchOpt = None,
    std: StdArgs = StdArgs(),
) -> None:
    """Send DICOM files to a peer (C-STORE), many files over one association.

    Each file's dataset goes out as its bytes are in the file (no decoding),
    in its own transfer syntax when the peer accepts it; when the peer takes a
    SOP class only uncompressed, the file is decompressed on the fly and the
    record says so ("decompressed": true). One record per file: path, SOP
    Instance UID, transfer_syntax sent, status (hex) and its meaning, ok.
    A file the peer refuses fails alone (exit status 1) and the batch goes
    on; if the association drops mid-batch it is re-opened (--retries) and
    no file is reported sent unless the peer acknowledged it. A peer that
    stops answering ends the run after one file timed out --retries + 1
    times (about --timeout x (retries + 1) in all, exit status 6); every
    file not tried then gets a "not_sent" record. A file whose UIDs cannot go
    on the wire fails alone ("invalid"). With --jobs N, N associations run in
    parallel and records come in completion order.

    \b
    Examples:
      dcmtools send PACS@127.0.0.1:4242 study/
      dcmtools send pacs 'study/**/*.dcm' --aet MYWS
      dcmtools anonymize archive/vet-dog/ -o anon/ | dcmtools send pacs -
      find archive/ -name '*.dcm' -print0 | dcmtools send pacs --files-from - -0 --jobs 2
      dcmtools send web study/ --batch 100         # a DICOMweb service: STOW-RS
      dcmtools send pacs archive/ --shard 2/8 --journal send-2.journal
    """
    with std.run("send", _human) as run:
        if is_web(peer, net.peers) and (files.shard or files.journal):
            raise typer.BadParameter(
                "--shard and --journal are for DIMSE peers (not yet DICOMweb)", param_hint="--shard/--journal"
            )
        if is_web(peer, net.peers):  # DICOMweb: STOW-RS (cli/webpeer.py)
            from . import webpeer

            return webpeer.send(run, web.session(peer, net, run), run.inputs(files), batch, decompress)
        from ..net import send

        options, remote = net.connect(peer, run)
        sharded = files.open(run, "send")
        items = sharded.inputs(run.inputs(files))
        records = send(remote, items, options, retries=retries, jobs=jobs, decompress=decompress, priority=priority)
        with fatal_as_record(run, "association", peer=str(remote)):
            for record in run.progress(sharded.stream(records), unit="file"):
                run.write(record)
                code = (record.get("error") or {}).get("code")
                if code in _FAULT_STATUS:
                    run.writer.fail(_FAULT_STATUS[code])
        run.summary_extra["peer"] = str(remote)
