"""Who we talk to: ``AET@HOST:PORT`` or a name from the peers file, and TLS.

A PEER on the command line is either ``AET@HOST:PORT`` (``STORESCP@127.0.0.1:11112``,
IPv6 as ``AET@[::1]:104``) or the name of an entry in the peers file, a TOML
file found, in this order, at ``--peers FILE``, ``$DCMTOOLS_PEERS``, or
``$XDG_CONFIG_HOME/dcmtools/peers.toml`` (``~/.config/dcmtools/peers.toml``)::

    [pacs]                     # dcmtools send pacs study/
    aet = "PACS"
    host = "pacs.example.org"
    port = 104
    # optional:
    tls = true                 # verified against tls_ca, else the system's trust store
    tls_ca = "/etc/dcmtools/ca.pem"
    tls_cert = "/etc/dcmtools/me.pem"
    tls_key = "/etc/dcmtools/me.key"
    tls_server_name = "PACS"   # the name in its certificate, when not its host name
    tls_insecure = true        # do not verify the peer's certificate (warned on every run)
    timeout = 30               # seconds, used when --timeout is not given
    max_pdu = 16384

Importable without pydicom or pynetdicom.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus

DEFAULT_AET = "DCMTOOLS"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_PDU = 262144  # what we tell the peer it may send us; 0 = no limit


@dataclass(frozen=True)
class TLSSettings:
    """TLS for one side of an association: CA bundle to verify the peer, our cert and key.

    As a client the peer's certificate is verified against ``ca`` or, without
    it, the system's trust store.  Its name is checked when the peer is named
    by host name (``pacs.example.org``), or against ``server_name`` when given
    (a certificate issued to the AE title, not the host); a peer named by IP
    address has its chain checked, not its name, unless ``server_name`` is
    given.  ``insecure`` skips all of it (the commands warn on every run).
    """

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    server_name: str | None = None

    def client_context(self, server_hostname: str | None = None) -> ssl.SSLContext:
        """An SSL context for connecting to a peer named ``server_hostname`` (see the class docs)."""
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                context.check_hostname = self.check_name(server_hostname) is not None
            if self.cert:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise _tls_error(exc) from exc
        return context

    def check_name(self, host: str | None) -> str | None:
        """The name the peer's certificate must carry (None: the chain alone is checked)."""
        if self.insecure:
            return None
        if self.server_name:
            return self.server_name
        if not host or _is_ip(host):
            return None
        return host

    def client_args(self, host: str) -> tuple[ssl.SSLContext, str | None]:
        """``(context, server_hostname)`` for pynetdicom's ``tls_args`` when connecting to ``host``."""
        name = self.check_name(host)
        return self.client_context(host), name or (None if _is_ip(host) else host)

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for accepting associations (asks for client certs when ``ca`` is set)."""
        if not self.cert:
            raise DcmtoolsError(
                ErrorCode.BAD_TLS,
                "TLS on the listening side needs a certificate",
                "give `tls_cert` FILE and `tls_key` FILE",
                ExitStatus.USAGE,
            )
        try:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca)
            context.verify_mode = ssl.CERT_REQUIRED if self.ca else ssl.CERT_NONE
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise _tls_error(exc) from exc
        return context


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def _tls_error(exc: Exception) -> DcmtoolsError:
    what = getattr(exc, "filename", None) or ""
    return DcmtoolsError(
        ErrorCode.BAD_TLS,
        f"cannot load the TLS files{' ' + repr(what) if what else ''}: {getattr(exc, 'strerror', None) or exc}",
        "check `tls_ca`, `tls_cert` and `tls_key` (PEM files; the key must match the certificate)",
        ExitStatus.USAGE,
    )


@dataclass(frozen=True)
class Peer:
    """A remote application entity: called AE title, host, port, and its own settings."""

    aet: str
    host: str
    port: int
    name: str | None = None  # the peers-file entry it came from
    tls: TLSSettings | None = None
    timeout: float | None = None
    max_pdu: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.aet}@{host}:{self.port}"

    @property
    def label(self) -> str:
        """How messages name the peer: its file name if it has one, else AET@HOST:PORT."""
        return f"{self.name} ({self})" if self.name else str(self)

    def with_tls(self, tls: TLSSettings | None) -> Peer:
        return replace(self, tls=tls) if tls is not None else self


_PEER_RE = re.compile(r"^(?P<aet>[^@]+)@(?:\[(?P<host6>[^\]]+)\]|(?P<host>[^:@\[\]]+)):(?P<port>\d+)$")


def check_aet(aet: str, what: str = "AE title") -> str:
    """An AE title as DICOM allows it: 1-16 characters, no backslash or control characters."""
    stripped = aet.strip()
    if not stripped or len(aet) > 16 or "\\" in aet or any(ord(c) < 32 or ord(c) > 126 for c in aet):
        raise DcmtoolsError(
            ErrorCode.BAD_PEER,
            f"{what} {aet!r} is not valid",
            "an AE title has 1 to 16 characters (letters, digits, spaces, punctuation; no backslash)",
            ExitStatus.USAGE,
        )
    return stripped


def parse_peer(text: str, peers_file: str | os.PathLike[str] | None = None) -> Peer:
    """``AET@HOST:PORT`` or a name from the peers file (see the module docs)."""
    match = _PEER_RE.match(text.strip())
    if match:
        port = int(match["port"])
        if not 0 < port < 65536:
            raise DcmtoolsError(
                ErrorCode.BAD_PEER, f"port {port} in {text!r} is out of range", "use 1-65535", ExitStatus.USAGE
            )
        return Peer(check_aet(match["aet"], "called AE title"), match["host6"] or match["host"], port)
    peers, source = load_peers(peers_file)
    if text in peers:
        return peers[text]
    if "@" in text or ":" in text:
        hint = "write the peer as AET@HOST:PORT, e.g. STORESCP@127.0.0.1:11112"
    elif source is None:
        hint = (
            f"write the peer as AET@HOST:PORT, or add a [{text}] entry to a peers file "
            f"({default_peers_path()}, or `peers` FILE, or $DCMTOOLS_PEERS)"
        )
    else:
        known = ", ".join(sorted(peers)) or "none"
        hint = f"the peers file {source} knows: {known}; or write the peer as AET@HOST:PORT"
    raise DcmtoolsError(ErrorCode.BAD_PEER, f"unknown peer {text!r}", hint, ExitStatus.USAGE)


def peer_with_aet(aet: str, peers: dict[str, Peer]) -> Peer | None:
    """The peers-file entry with this AE title (exactly, else ignoring case), whatever its name.

    This is how the peers file describes a node by its AE title, ourselves included: the
    entry whose aet is our calling AE title (``[me] aet = "DCMTOOLS" ...``) gives the port
    where our storage SCP listens for a C-MOVE to us, as the archive must know it."""
    for peer in peers.values():
        if peer.aet == aet:
            return peer
    for peer in peers.values():
        if peer.aet.lower() == aet.lower():
            return peer
    return None


DEFAULT_STORE_PORT = 11112


def our_port(aet: str, peers_file: str | os.PathLike[str] | None = None) -> int:
    """The port of our storage SCP for a C-MOVE to us: that of the peers-file entry with our AE
    title (``peer_with_aet``), else 11112."""
    me = peer_with_aet(aet, load_peers(peers_file)[0])
    return me.port if me is not None else DEFAULT_STORE_PORT


def default_peers_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "dcmtools" / "peers.toml"


def peers_path(peers_file: str | os.PathLike[str] | None = None) -> Path | None:
    """The peers file in use: ``--peers``, ``$DCMTOOLS_PEERS``, else the default if it exists."""
    if peers_file:
        return Path(peers_file)
    env = os.environ.get("DCMTOOLS_PEERS")
    if env:
        return Path(env)
    path = default_peers_path()
    return path if path.exists() else None


def load_peers(peers_file: str | os.PathLike[str] | None = None) -> tuple[dict[str, Peer], Path | None]:
    """All entries of the peers file, and which file that was (None when there is none)."""
    import tomllib

    path = peers_path(peers_file)
    if path is None:
        return {}, None
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise DcmtoolsError(
            ErrorCode.BAD_PEER,
            f"the peers file {str(path)!r} does not exist",
            "check `peers` or $DCMTOOLS_PEERS",
            ExitStatus.USAGE,
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DcmtoolsError(
            ErrorCode.BAD_PEER,
            f"cannot read the peers file {str(path)!r}: {exc}",
            "it must be TOML, see 'dcmtools echo --help'",
            ExitStatus.USAGE,
        ) from None
    peers: dict[str, Peer] = {}
    base = path.parent
    for name, entry in data.items():
        if not isinstance(entry, dict) or "url" in entry:  # a DICOMweb entry: dcmtools.web reads it
            continue
        peers[name] = _peer_from_entry(name, entry, path, base)
    return peers, path


def web_peer_entry(text: str, peers_file: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The peers-file entry named ``text`` when it is a DICOMweb one (has ``url``; ``dcmtools.web``
    reads it), else None; a peers file that cannot be read is left to ``load_peers`` to report."""
    import tomllib

    path = peers_path(peers_file)
    if path is None or not path.exists():
        return None
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    entry = data.get(text)
    if isinstance(entry, dict) and "url" in entry:
        return {**entry, "_base": str(path.parent), "_path": str(path)}
    return None


def _peer_from_entry(name: str, entry: dict[str, Any], path: Path, base: Path) -> Peer:
    def bad(what: str) -> DcmtoolsError:
        return DcmtoolsError(
            ErrorCode.BAD_PEER, f"peers file {str(path)!r}, entry [{name}]: {what}", None, ExitStatus.USAGE
        )

    try:
        aet, host, port = entry["aet"], entry["host"], entry["port"]
    except KeyError as exc:
        raise bad(f"missing {exc.args[0]!r} (each entry needs aet, host and port)") from None
    if not isinstance(aet, str) or not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536:
        raise bad("aet and host must be strings, port a number 1-65535")

    def file(key: str) -> str | None:
        value = entry.get(key)
        if value is None:
            return None
        return str((base / os.path.expanduser(str(value))).resolve())

    tls = None
    if entry.get("tls") or any(
        entry.get(k) for k in ("tls_ca", "tls_cert", "tls_key", "tls_insecure", "tls_server_name")
    ):
        server_name = entry.get("tls_server_name")
        if server_name is not None and not isinstance(server_name, str):
            raise bad("tls_server_name must be a string")
        tls = TLSSettings(
            file("tls_ca"), file("tls_cert"), file("tls_key"), bool(entry.get("tls_insecure")), server_name
        )
    timeout = entry.get("timeout")
    max_pdu = entry.get("max_pdu")
    known = {
        "aet",
        "host",
        "port",
        "tls",
        "tls_ca",
        "tls_cert",
        "tls_key",
        "tls_insecure",
        "tls_server_name",
        "timeout",
        "max_pdu",
    }
    return Peer(
        check_aet(aet, f"AE title of [{name}]"),
        host,
        port,
        name=name,
        tls=tls,
        timeout=float(timeout) if timeout is not None else None,
        max_pdu=int(max_pdu) if max_pdu is not None else None,
        extra={k: v for k, v in entry.items() if k not in known},
    )


def tls_settings(
    tls: bool, ca: str | None, cert: str | None, key: str | None, insecure: bool = False, server_name: str | None = None
) -> TLSSettings | None:
    """TLS settings from ``--tls/--tls-ca/--tls-cert/--tls-key/--tls-insecure/--tls-server-name`` (None when none was given)."""
    if not (tls or ca or cert or key or insecure or server_name):
        return None
    for value, option in ((ca, "`tls_ca`"), (cert, "`tls_cert`"), (key, "`tls_key`")):
        if value and not os.path.exists(value):
            raise DcmtoolsError(ErrorCode.BAD_TLS, f"{option} {value!r}: no such file", None, ExitStatus.USAGE)
    return TLSSettings(ca, cert, key, insecure, server_name or None)
