"""Options shared by the network commands (echo, send, listen, find, move ...).

A network command declares them and builds its ``NetOptions`` and ``Peer``:

    def cmd(peer: PeerArg, aet: AetOpt = None, timeout: TimeoutOpt = None, max_pdu: MaxPduOpt = None,
            peers: PeersOpt = None, tls: TlsOpt = False, tls_ca: TlsCaOpt = None, tls_cert: TlsCertOpt = None,
            tls_key: TlsKeyOpt = None, trace: TraceOpt = False, ...):
        with CommandRun(...) as run:
            net = net_options(aet, timeout, max_pdu, tls, tls_ca, tls_cert, tls_key, trace, run.debug)
            remote = resolve_peer(peer, peers, net)

Importing this module does not import pydicom or pynetdicom.
"""

import os
import sys
from typing import Annotated, Any, Optional

import typer

PeerArg = Annotated[
    str,
    typer.Argument(
        metavar="PEER",
        help="AET@HOST:PORT (e.g. STORESCP@127.0.0.1:11112) or a name from the peers file.",
        show_default=False,
    ),
]
AetOpt = Annotated[
    Optional[str],
    typer.Option("--aet", metavar="AET", help="Our calling AE title [env DCMTOOLS_AET; default DCMTOOLS].", show_default=False),
]
TimeoutOpt = Annotated[
    Optional[float],
    typer.Option("--timeout", metavar="SECONDS",
                 help="Time allowed to connect, to open or close the association, and for each reply [default 30].",
                 show_default=False, min=0.001),
]
MaxPduOpt = Annotated[
    Optional[int],
    typer.Option("--max-pdu", metavar="BYTES", help="Largest PDU we accept (0 = no limit) [default 262144].",
                 show_default=False, min=0),
]
PeersOpt = Annotated[
    Optional[str],
    typer.Option("--peers", metavar="FILE",
                 help="Peers file (TOML) naming peers [env DCMTOOLS_PEERS; default ~/.config/dcmtools/peers.toml].",
                 show_default=False),
]
TlsOpt = Annotated[
    bool,
    typer.Option("--tls", help="Use TLS, verifying the peer's certificate against --tls-ca or the system's trust store "
                               "(implied by the other --tls-* options)."),
]
TlsCaOpt = Annotated[
    Optional[str], typer.Option("--tls-ca", metavar="FILE", help="CA certificates (PEM) to verify the other side with.")
]
TlsInsecureOpt = Annotated[
    bool,
    typer.Option("--tls-insecure", help="TLS without verifying the peer's certificate (for tests; warned on every run)."),
]
TlsServerNameOpt = Annotated[
    Optional[str],
    typer.Option("--tls-server-name", metavar="NAME",
                 help="The name the peer's certificate must carry, when not its host name (e.g. its AE title)."),
]
TlsCertOpt = Annotated[Optional[str], typer.Option("--tls-cert", metavar="FILE", help="Our certificate (PEM).")]
TlsKeyOpt = Annotated[Optional[str], typer.Option("--tls-key", metavar="FILE", help="Our private key (PEM).")]
TraceOpt = Annotated[
    bool, typer.Option("--trace", help="Print the association negotiation and the DIMSE messages to stderr.")
]

EXIT_STATUS_EPILOG = """\b
When the peer cannot be used, the message says why and what to try, and the
exit status and the record's error code say which failure it was:
  3 connection_refused  nothing is listening on 10.0.0.5:104 (connection refused)
  3 name_not_resolved   cannot find the host 'pacs.example' (Name or service not known)
  3 unreachable, connect_failed (no route, other socket errors)
  3 tls_untrusted       the TLS certificate of 10.0.0.5:2762 is not trusted: it is not
                        signed by the system's trust store (give --tls-ca FILE)
  3 tls_name_mismatch   the TLS certificate of pacs.example:2762 is not issued to
                        'pacs.example' (give the name it carries: --tls-server-name)
  3 tls_client_cert_required  10.0.0.5:2762 requires a TLS client certificate and
                        we sent none (give --tls-cert FILE --tls-key FILE)
  3 tls_protocol_mismatch  no TLS session with 10.0.0.5:104: no common TLS version
                        or cipher, or no TLS on this port
  3 tls_failed          any other TLS handshake failure
  4 rejected            PACS@10.0.0.5:104 rejected the association: the called AE
                        title 'PACS' is not recognised (rejected permanently)
  5 aborted             ... aborted by the peer (A-ABORT), or the connection dropped
  6 timeout             no answer from 10.0.0.5:104 within 30 s; or: ... accepted the
                        connection but did not answer the association request within 30 s
  7 no_context          ... accepted none of the presentation contexts we need: ...
An item that fails alone (a file the peer refuses) gives exit status 1."""

PEERS_EPILOG = """\b
Peers file (TOML; --peers FILE, $DCMTOOLS_PEERS, or ~/.config/dcmtools/peers.toml):
  [pacs]
  aet = "PACS"
  host = "10.0.0.5"
  port = 104
  tls = true            # optional; tls_ca, tls_cert, tls_key = "file.pem"
                        # tls_server_name = "PACS"; tls_insecure = true
  timeout = 30          # optional; max_pdu = 16384"""


def net_options(aet: str | None, timeout: float | None, max_pdu: int | None, tls: bool, tls_ca: str | None,
                tls_cert: str | None, tls_key: str | None, trace: bool, debug: bool = False,
                tls_insecure: bool = False, tls_server_name: str | None = None) -> Any:
    """A ``dcmtools.net.NetOptions`` from the shared options."""
    from ..net import NetOptions, quiet_pynetdicom, tls_settings

    quiet_pynetdicom(debug)
    return NetOptions(
        calling_aet=aet or os.environ.get("DCMTOOLS_AET") or "DCMTOOLS",
        timeout=timeout,
        max_pdu=max_pdu,
        tls=tls_settings(tls, tls_ca, tls_cert, tls_key, tls_insecure, tls_server_name),
        trace=sys.stderr if (trace or debug) else None,
    )


def resolve_peer(text: str, peers_file: str | None, options: Any) -> Any:
    """The ``Peer`` named on the command line (TLS from the options when the peer has none;
    the --tls-* options given override the peers file's).  Warns on stderr when TLS is not verified."""
    from dataclasses import replace

    from ..net import parse_peer

    peer = parse_peer(text, peers_file)
    if peer.tls is None and options.tls is not None:
        peer = peer.with_tls(options.tls)
    elif peer.tls is not None and options.tls is not None:
        given = options.tls
        peer = peer.with_tls(replace(
            peer.tls, ca=given.ca or peer.tls.ca, cert=given.cert or peer.tls.cert, key=given.key or peer.tls.key,
            insecure=given.insecure or peer.tls.insecure, server_name=given.server_name or peer.tls.server_name))
    if peer.tls is not None and peer.tls.insecure:
        print(f"dcmtools: warning: TLS to {peer.label} without verifying its certificate (--tls-insecure / tls_insecure): "
              "anyone on the path can read and change what is sent", file=sys.stderr, flush=True)
    return peer


def report_fatal(run: Any, exc: Any, type_: str, **fields: Any) -> None:
    """A failure that ends the run: a record on stdout, the message on stderr, the exit status."""
    from ..stream.records import error_record

    run.write(error_record(type_, exc, **fields))
    run.writer.fail(exc.exit_status)
    if run.json_mode:
        print(f"dcmtools {run.command}: {exc}", file=sys.stderr, flush=True)
