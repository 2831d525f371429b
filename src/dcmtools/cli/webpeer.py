"""DICOMweb peers for echo, send, find and move: the options, and the runs (``dcmtools.web`` does the work).

A network command calls ``is_web(peer, peers)`` first; when PEER is a URL or
a peers-file entry with ``url``, it hands over to ``echo``/``send``/``find``/
``get`` here, which write the same records as for a DIMSE peer.
Importing this module does not import requests, pydicom or pynetdicom.
"""

import sys
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from .groups import OptionGroup

TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        show_default=False,
        help="DICOMweb: bearer token [env DCMTOOLS_TOKEN; or --token-file].",
    ),
]
TokenFileOpt = Annotated[
    str | None, typer.Option("--token-file", metavar="FILE", help="DICOMweb: read the bearer token from FILE.")
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        metavar="USER",
        show_default=False,
        help="DICOMweb: basic auth user [env DCMTOOLS_USER]; the password from $DCMTOOLS_PASSWORD or --password-file.",
    ),
]
PasswordFileOpt = Annotated[
    str | None,
    typer.Option("--password-file", metavar="FILE", help="DICOMweb: read the basic auth password from FILE."),
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch",
        metavar="N",
        min=1,
        show_default=False,
        help="DICOMweb: instances per STOW-RS request (also at most 64 MiB each) [default 50].",
    ),
]


@dataclass(frozen=True)
class WebArgs(OptionGroup):
    """--token, --token-file, --user and --password-file: how to sign in to a DICOMweb peer."""

    token: TokenOpt = None
    token_file: TokenFileOpt = None
    user: UserOpt = None
    password_file: PasswordFileOpt = None

    def session(self, peer: str, net: Any, run: Any) -> Any:
        """The ``WebSession`` for PEER (``session_for``)."""
        return session_for(
            peer,
            net,
            run,
            token=self.token,
            token_file=self.token_file,
            user=self.user,
            password_file=self.password_file,
        )


WEB_EPILOG = """\b
DICOMweb: PEER may be a base URL (https://host/dicom-web, or http://) or a
peers-file entry with url = "..." (token_file, user + password_file, tls_ca,
tls_cert, tls_key, tls_insecure, timeout, batch, batch_bytes). TLS is verified
against the system's trust store (or --tls-ca); --tls-cert/--tls-key give a
client certificate. 429, 503, 504 and dropped connections are retried with
backoff. When it cannot be used:
  3 name_not_resolved, connection_refused, tls_failed (as for DIMSE peers)
  4 unauthorized        ... refused the user 'u' and password: wrong credentials (401)
  4 forbidden           ... refused the request: access forbidden (403)
  5 aborted             the server dropped the connection (after the retries)
  6 timeout             no answer within --timeout
  7 no_service          ... has no DICOMweb service at /path (404 Not Found)"""


_FAULT_STATUS = {"aborted": 5, "timeout": 6}


def is_web(peer: str, peers_file: str | None) -> bool:
    """True when PEER is a DICOMweb service (a URL, or a peers-file entry with ``url``)."""
    if peer.startswith(("http://", "https://")):
        return True
    from ..net.peer import web_peer_entry  # not ..web: its package imports QIDO, STOW and WADO

    return web_peer_entry(peer, peers_file) is not None


def session_for(
    peer: str,
    net: Any,
    run: Any,
    *,
    token: str | None = None,
    token_file: str | None = None,
    user: str | None = None,
    password_file: str | None = None,
) -> Any:
    """``session`` from the shared client options (``netopts.NetArgs``) and the DICOMweb ones."""
    return session(
        peer,
        net.peers,
        token=token,
        token_file=token_file,
        user=user,
        password_file=password_file,
        tls_ca=net.tls_ca,
        tls_cert=net.tls_cert,
        tls_key=net.tls_key,
        tls_insecure=net.tls_insecure,
        timeout=net.timeout,
        debug=run.debug,
    )


def session(
    peer: str,
    peers_file: str | None,
    *,
    token: str | None = None,
    token_file: str | None = None,
    user: str | None = None,
    password_file: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_insecure: bool = False,
    timeout: float | None = None,
    debug: bool = False,
) -> Any:
    """The ``WebSession`` for PEER and the options (warns when TLS is not verified)."""
    from ..web import WebSession, parse_web_peer

    remote = parse_web_peer(
        peer,
        peers_file,
        token=token,
        token_file=token_file,
        user=user,
        password_file=password_file,
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_insecure=tls_insecure,
        timeout=timeout,
    )
    if remote.tls_insecure and remote.url.startswith("https://"):
        print(
            f"dcmtools: warning: TLS to {remote.label} without verifying its certificate (tls_insecure): "
            "anyone on the path can read and change what is sent",
            file=sys.stderr,
            flush=True,
        )
    return WebSession(remote, debug=debug)


def _fatal(run: Any, exc: Any, type_: str, where: str) -> None:
    from .netopts import report_fatal

    if exc.exit_status == 2:
        raise exc
    report_fatal(run, exc, type_, peer=where)


def echo(run: Any, web: Any, count: int = 1, interval: float = 0.0) -> None:
    """``echo URL``: a minimal QIDO-RS request, ``count`` times."""
    import time

    from ..stream.records import DcmtoolsError
    from ..web import echo as web_echo

    with web:
        try:
            for seq in range(1, count + 1):
                if seq > 1 and interval:
                    time.sleep(interval)
                run.write(web_echo(web, seq))
        except DcmtoolsError as exc:
            _fatal(run, exc, "echo", str(web.peer))


def send(run: Any, web: Any, items: Any, batch: int | None = None, decompress: bool = True) -> None:
    """``send URL INPUTS``: STOW-RS, one record per instance."""
    from ..stream.records import DcmtoolsError
    from ..web import stow

    with web:
        try:
            for record in run.progress(stow(web, items, batch=batch, decompress=decompress), unit="file"):
                run.write(record)
                code = (record.get("error") or {}).get("code")
                if code in _FAULT_STATUS:  # a request lost to the connection: as send does for DIMSE
                    run.writer.fail(_FAULT_STATUS[code])
        except DcmtoolsError as exc:
            _fatal(run, exc, "request", str(web.peer))
        run.summary_extra["peer"] = str(web.peer)


def find(run: Any, web: Any, identifier: dict[str, Any], level: str, limit: int | None, flat: bool) -> None:
    """``find URL``: QIDO-RS, one match record per answer, all pages."""
    from ..stream.records import DcmtoolsError
    from ..web import qido

    matches = 0
    with web:
        try:
            for record in qido(web, identifier, level, limit=limit, flat=flat):
                matches += 1
                run.write(record)
        except DcmtoolsError as exc:
            _fatal(run, exc, "query", str(web.peer))
        finally:
            run.summary_extra["matches"] = matches


def get(run: Any, web: Any, requests: Any, store_dir: str, overwrite: bool) -> int:
    """``move --get URL``: WADO-RS into ``store_dir``; the number of requests seen."""
    from ..stream.records import DcmtoolsError
    from ..web import wado

    totals: dict[str, int] = {}
    seen = [0]

    def counted() -> Any:
        for request in requests:
            seen[0] += 1
            yield request

    completed = 0
    with web:
        try:
            for record in wado(web, counted(), store_dir, overwrite=overwrite, totals=totals):
                completed += int(record.get("completed") or 0)
                run.write(record)
        except DcmtoolsError as exc:
            _fatal(run, exc, "get", str(web.peer))
        finally:
            run.summary_extra.update(
                {
                    "completed": completed,
                    "failed_suboperations": 0,
                    "warning_suboperations": 0,
                    "received": totals.get("received", 0),
                }
            )
    return seen[0]
