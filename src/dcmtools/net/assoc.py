"""Opening associations, and saying in plain words why one could not be opened.

    from dcmtools.net import NetOptions, associate, parse_peer
    from pynetdicom.presentation import build_context

    peer = parse_peer("ORTHANC@127.0.0.1:4242")
    with associate(peer, [build_context("1.2.840.10008.1.1")], NetOptions()) as assoc:
        status = assoc.send_c_echo()           # any pynetdicom Association method

``associate`` returns an established pynetdicom ``Association`` (with the fast
upper layer of ``transport.py``: TCP_NODELAY, event-driven, TLS) or raises
``DcmtoolsError`` whose ``exit_status`` tells the kind of failure:

=========== ===================== =============================================
ExitStatus  code                  when
=========== ===================== =============================================
CONNECT (3) name_not_resolved,    the host name does not resolve; nothing
            connection_refused,   listens on the port; no route; TLS handshake
            unreachable,          failed
            connect_failed,
            tls_failed
REJECTED(4) rejected              A-ASSOCIATE-RJ (result, source and reason
                                  decoded, e.g. "called AE title not
                                  recognised")
ABORTED (5) aborted               A-ABORT (source and reason decoded), or the
                                  peer closed the connection
TIMEOUT (6) timeout               connect, A-ASSOCIATE-AC or a reply did not
                                  come within --timeout
NO_CONTEXT  no_context            the peer accepted none of the presentation
(7)                               contexts (which SOP classes and syntaxes)
=========== ===================== =============================================

Using the context manager releases the association on exit (aborts it when
the block raised).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from .. import __version__
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .peer import DEFAULT_AET, DEFAULT_MAX_PDU, DEFAULT_TIMEOUT, Peer, TLSSettings, check_aet

N = TypeVar("N", int, float)  # a numeric setting (timeout_for, max_pdu_for)
LOGGER = logging.getLogger("dcmtools.net")
# What we call ourselves in A-ASSOCIATE (up to 16 characters); ``is_dcmtools`` looks for it.
IMPLEMENTATION_VERSION_NAME = "DCMTOOLS_" + __version__.replace(".", "")[:7]


@dataclass
class NetOptions:
    """The options every network command shares (``--aet``, ``--timeout``, ``--max-pdu``, TLS, ``--trace``).

    ``timeout`` applies to the TCP connect, the association request/release
    and each DIMSE reply; ``None`` takes the peer's own ``timeout`` from the
    peers file, else 30 s.  ``max_pdu`` is the largest PDU we accept (0 = no
    limit).  ``tls`` applies when the peer itself has none.  ``trace`` is a
    text stream (stderr) for the negotiation and DIMSE trace.
    """

    calling_aet: str = DEFAULT_AET
    timeout: float | None = None
    max_pdu: int | None = None
    tls: TLSSettings | None = None
    trace: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    # Each setting: the option given, else the peers file's entry for the peer, else the default.
    def timeout_for(self, peer: Peer | None = None) -> float:
        return _setting(self.timeout, peer.timeout if peer is not None else None, DEFAULT_TIMEOUT)

    def max_pdu_for(self, peer: Peer | None = None) -> int:
        return _setting(self.max_pdu, peer.max_pdu if peer is not None else None, DEFAULT_MAX_PDU)


def _setting(given: N | None, of_peer: N | None, default: N) -> N:
    return given if given is not None else of_peer if of_peer is not None else default


def quiet_pynetdicom(debug: bool = False) -> None:
    """pynetdicom and pydicom log their own view of failures; dcmtools explains them instead."""
    level = logging.DEBUG if debug else logging.CRITICAL
    logging.getLogger("pynetdicom").setLevel(level)
    logging.getLogger("pydicom").setLevel(level)


def make_ae(options: NetOptions, peer: Peer | None = None) -> Any:
    """A ``DcmtoolsAE`` with the timeouts and maximum PDU of ``options``."""
    from .acceptor import DcmtoolsAE

    ae = DcmtoolsAE(ae_title=check_aet(options.calling_aet, "calling AE title (`aet`)"))
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME  # so a client can tell a dcmtools listen
    timeout = options.timeout_for(peer)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = None  # idle associations are ours to close
    ae.maximum_pdu_size = options.max_pdu_for(peer)
    ae.require_called_aet = False
    return ae


def associate(
    peer: Peer,
    contexts: Sequence[Any],
    options: NetOptions | None = None,
    *,
    ext_neg: Iterable[Any] | None = None,
    evt_handlers: list[Any] | None = None,
    ae: Any = None,
    need_all: bool = False,
) -> Any:
    """Open an association with ``peer`` proposing ``contexts`` (pynetdicom PresentationContexts).

    Returns the established ``Association`` (usable as a context manager that
    releases it).  Raises ``DcmtoolsError`` (see the module docs); with
    ``need_all`` a context the peer refused is an error too, else only "none
    accepted" is.
    """
    options = options or NetOptions()
    quiet_pynetdicom(bool(LOGGER.isEnabledFor(logging.DEBUG)))
    if ae is None:
        ae = make_ae(options, peer)
    timeout = options.timeout_for(peer)
    host = _resolve(peer, timeout)
    tls = peer.tls or options.tls
    tls_args = tls.client_args(peer.host) if tls else None
    handlers = list(evt_handlers or [])
    tracer = None
    if options.trace is not None:
        from .trace import Tracer

        tracer = Tracer(options.trace)
        handlers += tracer.handlers()
    started = time.monotonic()
    assoc = ae.associate(
        host,
        peer.port,
        contexts=list(contexts),
        ae_title=peer.aet,
        max_pdu=options.max_pdu_for(peer),
        ext_neg=list(ext_neg) if ext_neg else None,
        evt_handlers=handlers,
        tls_args=tls_args,
    )
    if tracer is not None:
        assoc.dul.trace = tracer
    if not assoc.is_established:
        raise diagnose(assoc, peer, timeout, time.monotonic() - started)
    refused = assoc.rejected_contexts
    if not assoc.accepted_contexts or (need_all and refused):
        error = no_context_error(peer, refused or list(contexts), assoc)
        assoc.release()
        raise error
    return _Managed(assoc)


class _Managed:
    """An established Association that releases itself at the end of a ``with`` block."""

    __slots__ = ("_assoc",)

    def __init__(self, assoc: Any) -> None:
        object.__setattr__(self, "_assoc", assoc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._assoc, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._assoc, name, value)

    @property
    def association(self) -> Any:
        """The pynetdicom ``Association`` itself."""
        return self._assoc

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        close(self._assoc, abort=exc is not None)


def close(assoc: Any, abort: bool = False) -> None:
    """Release (or abort) an association if it is still up; never raises."""
    assoc = getattr(assoc, "association", assoc)
    try:
        if assoc.is_established:
            if abort:
                assoc.abort()
            else:
                assoc.release()
    except Exception as exc:  # pragma: no cover - teardown must not mask the real error
        LOGGER.debug("closing the association failed: %s", exc)


def _resolve(peer: Peer, timeout: float) -> str:
    try:
        infos = socket.getaddrinfo(peer.host, peer.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DcmtoolsError(
            ErrorCode.NAME_NOT_RESOLVED,
            f"cannot find the host {peer.host!r} ({exc.strerror})",
            "check the spelling of the host name, or use its IP address",
            ExitStatus.CONNECT,
            peer=str(peer),
        ) from None
    return cast(str, infos[0][4][0])  # the address text (IPv4, IPv6)


# ------------------------------------------------------------- diagnosis

# PS3.8 Table 9-21: A-ASSOCIATE-RJ result, source, reason.
_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "the application context name is not supported",
    (1, 3): "our calling AE title '{calling}' is not recognised",
    (1, 7): "the called AE title '{called}' is not recognised",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "the protocol version is not supported",
    (3, 1): "it is temporarily congested",
    (3, 2): "it has reached its limit of associations",
}
_REJECT_HINTS = {
    (1, 3): "ask the peer's administrator to add {calling} (with this host and port) to its known AEs, or use `aet`",
    (1, 7): "check the peer's AE title: the called AE title is the part before '@' in the PEER ({called}@host:port)",
    (3, 1): "try again later",
    (3, 2): "wait for its other associations to end, or use fewer `jobs`",
    (1, 1): "check the peer's log for why; it may not know our calling AE title '{calling}' or host",
}

# PS3.8 Table 9-26: A-ABORT source and reason.
_ABORT_SOURCES = {0: "the peer (DICOM UL service user)", 1: "reserved", 2: "the peer's DICOM UL service provider"}
_ABORT_REASONS = {
    0: "reason not specified",
    1: "unrecognised PDU",
    2: "unexpected PDU",
    4: "unrecognised PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


def reject_reason(result: int, source: int, reason: int, calling: str = "", called: str = "") -> tuple[str, str | None]:
    """The words for an A-ASSOCIATE-RJ: (what happened, what to try)."""
    permanence = "permanently" if result == 1 else "for now"
    text = _REJECT_REASONS.get((source, reason), f"reason {reason} from source {source}")
    hint = _REJECT_HINTS.get((source, reason))
    words = f"{text.format(calling=calling, called=called)} (rejected {permanence})"
    return words, hint.format(calling=calling, called=called) if hint else None


def abort_reason(source: int, reason: int) -> str:
    who = _ABORT_SOURCES.get(source, f"source {source}")
    if source == 0:
        return f"aborted by {who}"
    return f"aborted by {who}: {_ABORT_REASONS.get(reason, f'reason {reason}')}"


def diagnose(assoc: Any, peer: Peer, timeout: float, elapsed: float) -> DcmtoolsError:
    """Why ``assoc`` is not established, as a ``DcmtoolsError`` with the right exit status."""
    dul = assoc.dul
    sock = dul.socket
    calling = assoc.requestor.ae_title
    connect_error = getattr(sock, "connect_error", None)
    where = f"{peer.host}:{peer.port}"
    if connect_error is not None:
        return connect_failure(connect_error, peer, timeout)
    read_error = getattr(sock, "read_error", None)
    if read_error is not None:
        # TLS 1.3: a server refuses our (missing) client certificate after the handshake, on the first read
        return tls_failure(read_error, peer)
    if not assoc.is_rejected and assoc.rejected_contexts and not assoc.accepted_contexts:
        # A-ASSOCIATE-AC with every context refused: pynetdicom aborts it itself
        return no_context_error(peer, assoc.rejected_contexts, assoc)
    rj = getattr(dul, "last_reject", None)
    # The reject counts even when pynetdicom did not see it: a peer that rejects and closes at once can close
    # before pynetdicom's requestor thread looks, which then aborts with the A-ASSOCIATE-RJ unread in its queue
    # (seen under load against Orthanc); our DUL recorded the PDU as it read it.
    if assoc.is_rejected or rj is not None:
        if rj is None:
            primitive = assoc.acceptor.primitive
            rj = (primitive.result, primitive.result_source, primitive.diagnostic) if primitive else (1, 1, 1)
        result, source, reason = rj
        words, hint = reject_reason(result, source, reason, calling, peer.aet)
        return DcmtoolsError(
            ErrorCode.REJECTED,
            f"{peer.label} rejected the association: {words}",
            hint,
            ExitStatus.REJECTED,
            peer=str(peer),
            result=result,
            source=source,
            reason=reason,
        )
    abort = getattr(dul, "last_abort", None)
    if abort is not None:
        source, reason = abort
        return DcmtoolsError(
            ErrorCode.ABORTED,
            f"{peer.label} {abort_reason(source, reason)} while we asked for an association",
            f"check the peer's log; it may not accept our calling AE title '{calling}' or this host",
            ExitStatus.ABORTED,
            peer=str(peer),
            source=source,
            reason=reason,
        )
    if elapsed >= timeout * 0.9:
        return DcmtoolsError(
            ErrorCode.TIMEOUT,
            f"{peer.label} accepted the connection but did not answer the association request within {timeout:g} s",
            "check that this port is a DICOM port (not HTTP or another service), or raise `timeout`",
            ExitStatus.TIMEOUT,
            peer=str(peer),
        )
    return DcmtoolsError(
        ErrorCode.ABORTED,
        f"{peer.label} closed the connection without answering the association request",
        f"check that {where} is a DICOM port and that the peer accepts our calling AE title '{calling}' (see its log); "
        "if it expects TLS, use `tls`",
        ExitStatus.ABORTED,
        peer=str(peer),
    )


# OpenSSL verify codes (X509_V_ERR_*) that mean "issued to another name"
_NAME_MISMATCH_CODES = {62, 63, 64}  # hostname, email, IP address mismatch
_EXPIRED_CODES = {9: "is not valid yet", 10: "has expired"}
# OpenSSL reasons of a handshake failure, by what they mean to the user
_CLIENT_CERT_REASONS = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE"}
_CLIENT_CERT_REFUSED_REASONS = {
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "TLSV1_ALERT_ACCESS_DENIED",
}
_PROTOCOL_REASONS = {
    "WRONG_VERSION_NUMBER",
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    "UNEXPECTED_EOF_WHILE_READING",
    "HTTP_REQUEST",
    "RECORD_LAYER_FAILURE",
    "PACKET_LENGTH_TOO_LONG",
    "WRONG_SSL_VERSION",
    "UNKNOWN_PROTOCOL",
}


def tls_failure(exc: BaseException, peer: Peer) -> DcmtoolsError:
    """A TLS handshake failure in words: not trusted, wrong name, client certificate, protocol."""
    import ssl

    where = f"{peer.host}:{peer.port}"
    tls = peer.tls
    reason = str(getattr(exc, "reason", None) or "")
    fields: dict[str, Any] = {"peer": str(peer), "tls_reason": reason or str(exc)}
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        detail = getattr(exc, "verify_message", None) or str(exc)
        fields["verify_code"] = code
        if code in _NAME_MISMATCH_CODES:
            expected = tls.check_name(peer.host) if tls else peer.host
            return DcmtoolsError(
                ErrorCode.TLS_NAME_MISMATCH,
                f"the TLS certificate of {where} is not issued to {expected!r} ({detail})",
                "if the certificate names the AE title or another host, give that name with `tls_server_name` NAME "
                "(tls_server_name in the peers file)",
                ExitStatus.CONNECT,
                **fields,
            )
        if code in _EXPIRED_CODES:
            words = f"the TLS certificate of {where} {_EXPIRED_CODES[code]}"
        else:
            source = f"the CA in {tls.ca!r}" if tls and tls.ca else "the system's trust store"
            words = f"the TLS certificate of {where} is not trusted: it is not signed by {source} ({detail})"
        return DcmtoolsError(
            ErrorCode.TLS_UNTRUSTED,
            words,
            "give the CA that issued the peer's certificate with `tls_ca` FILE (tls_ca in the peers file); "
            "`tls_insecure` skips the check (for tests only)",
            ExitStatus.CONNECT,
            **fields,
        )
    if reason in _CLIENT_CERT_REASONS or (reason in _CLIENT_CERT_REFUSED_REASONS and tls is not None and tls.cert):
        sent = tls is not None and tls.cert
        return DcmtoolsError(
            ErrorCode.TLS_CLIENT_CERT_REQUIRED,
            f"{where} requires a TLS client certificate "
            + ("and refused ours" if sent else "and we sent none")
            + f" ({reason})",
            "ask the PACS admin which CA it trusts, then give our certificate with `tls_cert` FILE `tls_key` FILE"
            + (" (the peer does not trust the one given)" if sent else ""),
            ExitStatus.CONNECT,
            **fields,
        )
    if reason in _PROTOCOL_REASONS or isinstance(exc, ssl.SSLEOFError):
        return DcmtoolsError(
            ErrorCode.TLS_PROTOCOL_MISMATCH,
            f"no TLS session with {where}: the peer does not speak a TLS version or cipher we offer, "
            f"or does not expect TLS on this port ({reason or exc})",
            "check that this port is the peer's TLS port (without TLS, leave out `tls`); "
            "we offer TLS 1.2 and 1.3 with the system's ciphers",
            ExitStatus.CONNECT,
            **fields,
        )
    return DcmtoolsError(
        ErrorCode.TLS_FAILED,
        f"the TLS handshake with {where} failed ({reason or exc})",
        "check that the peer expects TLS on this port, and `tls_ca` / `tls_cert` / `tls_key`",
        ExitStatus.CONNECT,
        **fields,
    )


def connect_failure(exc: BaseException, peer: Peer, timeout: float) -> DcmtoolsError:
    """A TCP/TLS connect failure in words."""
    import errno
    import ssl

    where = f"{peer.host}:{peer.port}"
    if isinstance(exc, ssl.SSLError):
        return tls_failure(exc, peer)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return DcmtoolsError(
            ErrorCode.TIMEOUT,
            f"no answer from {where} within {timeout:g} s",
            "check the host and port, and that a firewall lets the connection through; or raise `timeout`",
            ExitStatus.TIMEOUT,
            peer=str(peer),
        )
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return DcmtoolsError(
            ErrorCode.CONNECTION_REFUSED,
            f"nothing is listening on {where} (connection refused)",
            "check the port number, and that the DICOM service on that host is running",
            ExitStatus.CONNECT,
            peer=str(peer),
        )
    if getattr(exc, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EADDRNOTAVAIL):
        return DcmtoolsError(
            ErrorCode.UNREACHABLE,
            f"cannot reach {where} ({getattr(exc, 'strerror', None) or exc})",
            "check the address and this machine's network connection",
            ExitStatus.CONNECT,
            peer=str(peer),
        )
    if (peer.tls is not None or isinstance(exc, ssl.SSLError)) and isinstance(
        exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
    ):
        # the TCP connection was made, then dropped during the TLS handshake
        return tls_failure(ssl.SSLEOFError(str(exc)), peer)
    return DcmtoolsError(
        ErrorCode.CONNECT_FAILED,
        f"cannot connect to {where} ({getattr(exc, 'strerror', None) or exc})",
        "check the host and port",
        ExitStatus.CONNECT,
        peer=str(peer),
    )


def uid_name(uid: str) -> str:
    """A UID's name from pydicom's dictionary, or the UID itself."""
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name and name != uid else uid


# What a refused SOP class is to a user: the service, and the option a dcmtools listen offers it with.
_QR = ("the query/retrieve service", "`store_dir` DIR")
_SERVICES: dict[str, tuple[str, str]] = {
    "1.2.840.10008.5.1.4.31": ("the Modality Worklist service", "`worklist_dir` DIR (its items as .wl or .json files)"),
    **{f"1.2.840.10008.5.1.4.1.2.{root}.{op}": _QR for root in (1, 2) for op in (1, 2, 3)},
}


def is_dcmtools(assoc: Any) -> bool:
    """Whether the peer of an established association is dcmtools (a ``dcmtools listen``),
    by the implementation version name it gave (``IMPLEMENTATION_VERSION_NAME``)."""
    acceptor = getattr(getattr(assoc, "association", assoc), "acceptor", None)
    name = getattr(acceptor, "implementation_version_name", None) or ""
    return str(name).strip().startswith("DCMTOOLS")


def no_context_error(peer: Peer, contexts: Iterable[Any], assoc: Any = None) -> DcmtoolsError:
    """No (or not all) presentation contexts accepted: which SOP classes and syntaxes were refused.
    When they are all of one service (worklist, query/retrieve) the message names it, and with
    ``assoc`` from a dcmtools listen, the hint says which option of listen offers it."""
    refused = []
    contexts = list(contexts)
    for cx in contexts:
        syntaxes = ", ".join(uid_name(ts) for ts in cx.transfer_syntax)
        refused.append(f"{uid_name(cx.abstract_syntax)} [{syntaxes}]")
    listing = "; ".join(refused[:6]) + (f"; and {len(refused) - 6} more" if len(refused) > 6 else "")
    services = {_SERVICES.get(str(cx.abstract_syntax)) for cx in contexts}
    service = services.pop() if len(services) == 1 else None
    message = f"{peer.label} accepted none of the presentation contexts we need: {listing}"
    hint = "the peer does not support this service or these transfer syntaxes; check its configuration (SOP classes, transfer syntaxes)"
    if service is not None:
        message = f"{peer.label} does not offer {service[0]} (it accepted none of: {listing})"
        if is_dcmtools(assoc):
            hint = f"it is a dcmtools listen started without {service[1].split()[0]}: start it with {service[1]}"
        else:
            hint = f"check that the peer offers {service[0]} to our AE title, and its configuration (SOP classes)"
    return DcmtoolsError(ErrorCode.NO_CONTEXT, message, hint, ExitStatus.NO_CONTEXT, peer=str(peer))


def failure_after(assoc: Any, peer: Peer, what: str, timeout: float, timed_out: bool = False) -> DcmtoolsError:
    """The error for an association that failed after it was established (during ``what``)."""
    assoc = getattr(assoc, "association", assoc)
    if timed_out:
        return DcmtoolsError(
            ErrorCode.TIMEOUT,
            f"{peer.label} did not answer the {what} within {timeout:g} s",
            "the peer may be busy or stuck; raise `timeout`, or check its log",
            ExitStatus.TIMEOUT,
            peer=str(peer),
        )
    abort = getattr(assoc.dul, "last_abort", None)
    if abort is not None:
        return DcmtoolsError(
            ErrorCode.ABORTED,
            f"{peer.label} {abort_reason(*abort)} during the {what}",
            "check the peer's log for why",
            ExitStatus.ABORTED,
            peer=str(peer),
        )
    return DcmtoolsError(
        ErrorCode.ABORTED,
        f"the association with {peer.label} ended during the {what} (connection dropped)",
        "check the peer's log; the network or the peer may have closed the connection",
        ExitStatus.ABORTED,
        peer=str(peer),
    )


def verification_context() -> Any:
    from pynetdicom.presentation import build_context

    return build_context("1.2.840.10008.1.1")


def echo(
    peer: Peer, options: NetOptions | None = None, count: int = 1, interval: float = 0.0
) -> Iterator[dict[str, Any]]:
    """C-ECHO ``count`` times on one association; yields one record dict per echo.

    Raises ``DcmtoolsError`` when the association cannot be opened or fails.
    """
    options = options or NetOptions()
    timeout = options.timeout_for(peer)
    context = verification_context()
    from . import transport  # noqa: F401  (imported before the clock starts)

    started = time.monotonic()
    with associate(peer, [context], options) as assoc:
        assoc_seconds = time.monotonic() - started
        for index in range(count):
            if index and interval:
                time.sleep(interval)
            sent = time.monotonic()
            status = assoc.send_c_echo()
            rtt = time.monotonic() - sent
            if not status or "Status" not in status:
                raise failure_after(
                    assoc, peer, "C-ECHO", timeout, timed_out=assoc.is_established or rtt >= timeout * 0.9
                )
            from .status import status_fields

            code = int(status.Status)
            record = {
                "type": "echo",
                "peer": str(peer),
                "seq": index + 1,
                "rtt_ms": round(rtt * 1000, 3),
                **status_fields(code, "verification"),
                "ok": code == 0,
            }
            if index == 0:
                record["association_ms"] = round(assoc_seconds * 1000, 3)
                record["max_pdu"] = assoc.acceptor.maximum_length
                record["implementation"] = (assoc.acceptor.implementation_version_name or "").strip() or None
            yield record
