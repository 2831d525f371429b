"""Options shared by the network commands (echo, send, listen, find, move ...).

A client command (echo, send, find, move, worklist, commit, print) takes the
eleven client options as one parameter, ``net: NetArgs``, and the decorator
``client_options`` puts the options themselves in its signature, at that place
(``groups.option_groups``):

    @app.command("echo")
    @client_options
    def echo_command(peer: PeerArg, net: NetArgs = NetArgs(), std: StdArgs = StdArgs()):
        with std.run("echo") as run:
            options, remote = net.connect(peer, run)
            with fatal_as_record(run, "echo", peer=str(remote)):
                ...

``fatal_as_record`` turns a fatal ``DcmtoolsError`` into its record and exit
status, the same way in every network command.  Importing this module does not
import pydicom or pynetdicom.
"""

import inspect
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from .groups import F, OptionGroup, option_groups

PeerArg = Annotated[
    str,
    typer.Argument(
        metavar="PEER",
        help="AET@HOST:PORT (e.g. STORESCP@127.0.0.1:11112) or a name from the peers file.",
        show_default=False,
    ),
]
AetOpt = Annotated[
    str | None,
    typer.Option(
        "--aet", metavar="AET", help="Our calling AE title [env DCMTOOLS_AET; default DCMTOOLS].", show_default=False
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Time allowed to connect, to open or close the association, and for each reply [default 30].",
        show_default=False,
        min=0.001,
    ),
]
MaxPduOpt = Annotated[
    int | None,
    typer.Option(
        "--max-pdu",
        metavar="BYTES",
        help="Largest PDU we accept (0 = no limit) [default 262144].",
        show_default=False,
        min=0,
    ),
]
PeersOpt = Annotated[
    str | None,
    typer.Option(
        "--peers",
        metavar="FILE",
        help="Peers file (TOML) naming peers [env DCMTOOLS_PEERS; default ~/.config/dcmtools/peers.toml].",
        show_default=False,
    ),
]
TlsOpt = Annotated[
    bool,
    typer.Option(
        "--tls",
        help="Use TLS, verifying the peer's certificate against --tls-ca or the system's trust store "
        "(implied by the other --tls-* options).",
    ),
]
TlsCaOpt = Annotated[
    str | None, typer.Option("--tls-ca", metavar="FILE", help="CA certificates (PEM) to verify the other side with.")
]
TlsInsecureOpt = Annotated[
    bool,
    typer.Option(
        "--tls-insecure", help="TLS without verifying the peer's certificate (for tests; warned on every run)."
    ),
]
TlsServerNameOpt = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        metavar="NAME",
        help="The name the peer's certificate must carry, when not its host name (e.g. its AE title).",
    ),
]
TlsCertOpt = Annotated[str | None, typer.Option("--tls-cert", metavar="FILE", help="Our certificate (PEM).")]
TlsKeyOpt = Annotated[str | None, typer.Option("--tls-key", metavar="FILE", help="Our private key (PEM).")]
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


def net_options(
    aet: str | None,
    timeout: float | None,
    max_pdu: int | None,
    tls: bool,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    trace: bool,
    debug: bool = False,
    tls_insecure: bool = False,
    tls_server_name: str | None = None,
) -> Any:
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
        peer = peer.with_tls(
            replace(
                peer.tls,
                ca=given.ca or peer.tls.ca,
                cert=given.cert or peer.tls.cert,
                key=given.key or peer.tls.key,
                insecure=given.insecure or peer.tls.insecure,
                server_name=given.server_name or peer.tls.server_name,
            )
        )
    if peer.tls is not None and peer.tls.insecure:
        print(
            f"dcmtools: warning: TLS to {peer.label} without verifying its certificate (--tls-insecure / tls_insecure): "
            "anyone on the path can read and change what is sent",
            file=sys.stderr,
            flush=True,
        )
    return peer


def report_fatal(run: Any, exc: Any, type_: str, **fields: Any) -> None:
    """A failure that ends the run: a record on stdout, the message on stderr, the exit status."""
    from ..stream.records import error_record

    run.write(error_record(type_, exc, **fields))
    run.writer.fail(exc.exit_status)
    if run.json_mode:
        from .spelling import spell

        print(f"dcmtools {run.command}: {spell(str(exc))}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class NetArgs(OptionGroup):
    """The client options as given on the command line (see ``client_options``)."""

    aet: AetOpt = None
    timeout: TimeoutOpt = None
    max_pdu: MaxPduOpt = None
    peers: PeersOpt = None
    tls: TlsOpt = False
    tls_ca: TlsCaOpt = None
    tls_cert: TlsCertOpt = None
    tls_key: TlsKeyOpt = None
    tls_insecure: TlsInsecureOpt = False
    tls_server_name: TlsServerNameOpt = None
    trace: TraceOpt = False

    def options(self, debug: bool = False) -> Any:
        """The ``dcmtools.net.NetOptions`` they make."""
        return net_options(
            self.aet,
            self.timeout,
            self.max_pdu,
            self.tls,
            self.tls_ca,
            self.tls_cert,
            self.tls_key,
            self.trace,
            debug,
            self.tls_insecure,
            self.tls_server_name,
        )

    def peer(self, text: str, options: Any) -> Any:
        """The ``Peer`` named on the command line (see ``resolve_peer``)."""
        return resolve_peer(text, self.peers, options)

    def connect(self, text: str, run: Any) -> tuple[Any, Any]:
        """The ``NetOptions`` and the ``Peer`` of a client command's run."""
        options = self.options(run.debug)
        return options, self.peer(text, options)


def client_options(func: F) -> F:
    """Replace the command's ``net: NetArgs`` parameter by the client options (for typer),
    and hand the command one ``NetArgs`` built from them; the command's other option groups
    (``groups.option_groups``) are expanded too."""
    if "net" not in inspect.signature(func).parameters:
        raise TypeError(f"{func.__name__} has no 'net: NetArgs' parameter")
    return option_groups(func)


@contextmanager
def fatal_as_record(
    run: Any, type_: str | Callable[[Any], str], *, adapt: Callable[[Any], Any] | None = None, **fields_: Any
) -> Iterator[None]:
    """A ``DcmtoolsError`` that ends the run becomes its record and exit status (``report_fatal``);
    a usage error (exit status 2) goes on to the CLI's usage handling.  ``type_`` is the record's
    type, or a function of the error that gives it; ``adapt`` rewrites the error first (e.g. the
    command's spelling of the options its message names)."""
    from ..stream.records import DcmtoolsError, ExitStatus

    try:
        yield
    except DcmtoolsError as exc:
        if exc.exit_status == ExitStatus.USAGE:
            raise
        error = adapt(exc) if adapt is not None else exc
        report_fatal(run, error, type_ if isinstance(type_, str) else type_(exc), **fields_)


def write_query(run: Any, finder: Any, type_: str, remote: Any) -> None:
    """Write the records of a ``dcmtools.net.query.Finder``; a fatal error becomes its record
    (``fatal_as_record``); on Ctrl-C the query is cancelled (C-CANCEL) before the interrupt goes on."""
    stream = finder.run()
    try:
        with fatal_as_record(run, type_, peer=str(remote)):
            for record in stream:
                run.write(record)
    except KeyboardInterrupt:
        finder.interrupt()  # C-CANCEL, then the interrupt goes on (exit 130)
        raise
    finally:
        stream.close()
