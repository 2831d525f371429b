"""The DICOMweb peer, its session (auth, TLS, timeouts, retries) and the diagnosis of failures.

A DICOMweb peer is a base URL (``https://pacs.example.org/dicom-web``) or a
peers-file entry with ``url = "..."``::

    [cloud]
    url = "https://pacs.example.org/dicom-web"
    token_file = "~/.config/dcmtools/cloud.token"   # bearer token (or: token_env = "VAR")
    user = "alice"                                   # basic auth; password_file or password_env
    password_file = "~/.config/dcmtools/cloud.pass"
    tls_ca = "ca.pem"        # verify against this CA instead of the system's trust store
    tls_cert = "me.pem"      # client certificate (tls_key = "me.key")
    tls_insecure = false     # true: do not verify (warned on every run)
    timeout = 30
    batch = 50               # STOW-RS: instances per request
    batch_bytes = 67108864   # STOW-RS: bytes per request

Every request goes through ``WebSession.request``: 429, 503 and 504 answers
and dropped connections are retried with exponential backoff (honouring
Retry-After); every other failure becomes a ``DcmtoolsError`` whose message
says what happened in plain words and whose exit status says which kind of
failure it was (``EXIT_STATUSES``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus

# Which exit status each run-ending failure gives (documented in WEB_EPILOG of the CLI).
EXIT_STATUSES = {
    ErrorCode.NAME_NOT_RESOLVED: ExitStatus.CONNECT,
    ErrorCode.CONNECTION_REFUSED: ExitStatus.CONNECT,
    ErrorCode.CONNECT_FAILED: ExitStatus.CONNECT,
    ErrorCode.TLS_FAILED: ExitStatus.CONNECT,
    ErrorCode.UNAUTHORIZED: ExitStatus.REJECTED,
    ErrorCode.FORBIDDEN: ExitStatus.REJECTED,
    ErrorCode.ABORTED: ExitStatus.ABORTED,
    ErrorCode.TIMEOUT: ExitStatus.TIMEOUT,
    ErrorCode.NO_SERVICE: ExitStatus.NO_CONTEXT,
    ErrorCode.HTTP_FAILED: ExitStatus.FAILED,
    ErrorCode.BAD_RESPONSE: ExitStatus.FAILED,
}
RETRY_STATUSES = (429, 503, 504)
DEFAULT_TIMEOUT = 30.0


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


@dataclass(frozen=True)
class WebPeer:
    """A DICOMweb service: its base URL and how to authenticate to it."""

    url: str
    name: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    timeout: float | None = None
    batch: int | None = None
    batch_bytes: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", self.url.rstrip("/"))

    def __str__(self) -> str:
        return self.url

    @property
    def label(self) -> str:
        return f"{self.name} ({self.url})" if self.name else self.url

    @property
    def where(self) -> str:
        """host:port, as the connection messages name it."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(os.path.expanduser(path)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.BAD_PEER, f"cannot read the {what} file {path!r}: {exc.strerror or exc}", None, ExitStatus.USAGE
        ) from None


def is_web_peer(text: str, peers_file: str | os.PathLike[str] | None = None) -> bool:
    """True when PEER names a DICOMweb service (a URL, or a peers-file entry with ``url``)."""
    from ..net.peer import web_peer_entry  # net.peer reads the peers file

    return is_url(text) or web_peer_entry(text, peers_file) is not None


def parse_web_peer(
    text: str,
    peers_file: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    token_file: str | None = None,
    user: str | None = None,
    password: str | None = None,
    password_file: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_insecure: bool = False,
    timeout: float | None = None,
) -> WebPeer:
    """The peer named on the command line, with the options given overriding the peers file's.

    The token comes from ``token``, ``token_file``, ``$DCMTOOLS_TOKEN`` or the peers file; the
    user from ``user``, the peers file or ``$DCMTOOLS_USER``; the password from ``password``, ``password_file``, ``$DCMTOOLS_PASSWORD`` or the peers file.
    """
    from ..net.peer import web_peer_entry

    entry = {} if is_url(text) else (web_peer_entry(text, peers_file) or {})
    base = Path(entry.get("_base", "."))

    def file(key: str) -> str | None:
        value = entry.get(key)
        return str((base / os.path.expanduser(str(value))).resolve()) if value else None

    url = text if is_url(text) else str(entry.get("url", ""))
    _check_url(url)
    token, user, password = _credentials(entry, file, token, token_file, user, password, password_file)
    for value, option in ((tls_ca, "`tls_ca`"), (tls_cert, "`tls_cert`"), (tls_key, "`tls_key`")):
        if value and not os.path.exists(value):
            raise DcmtoolsError(ErrorCode.BAD_TLS, f"{option} {value!r}: no such file", None, ExitStatus.USAGE)
    timeout = timeout if timeout is not None else entry.get("timeout")
    return WebPeer(
        url,
        name=None if is_url(text) else text,
        token=token,
        user=user,
        password=password,
        tls_ca=tls_ca or file("tls_ca"),
        tls_cert=tls_cert or file("tls_cert"),
        tls_key=tls_key or file("tls_key"),
        tls_insecure=bool(tls_insecure or entry.get("tls_insecure")),
        timeout=float(timeout) if timeout is not None else None,
        batch=int(entry["batch"]) if entry.get("batch") else None,
        batch_bytes=int(entry["batch_bytes"]) if entry.get("batch_bytes") else None,
    )


def _check_url(url: str) -> None:
    """A usage error unless ``url`` is the base URL of a DICOMweb service."""
    if not is_url(url):
        raise DcmtoolsError(
            ErrorCode.BAD_PEER,
            f"{url!r} is not a DICOMweb base URL",
            "write it as https://host/dicom-web (or http://)",
            ExitStatus.USAGE,
        )
    parts = urlsplit(url)
    if not parts.hostname:
        raise DcmtoolsError(ErrorCode.BAD_PEER, f"the URL {url!r} has no host", None, ExitStatus.USAGE)
    if parts.query or parts.fragment:
        raise DcmtoolsError(
            ErrorCode.BAD_PEER,
            f"the URL {url!r} has a query or fragment",
            "give the base URL of the DICOMweb service only",
            ExitStatus.USAGE,
        )


def _credentials(
    entry: dict[str, Any],
    file: Callable[[str], str | None],
    token: str | None,
    token_file: str | None,
    user: str | None,
    password: str | None,
    password_file: str | None,
) -> tuple[str | None, str | None, str | None]:
    """(token, user, password) from the options, the environment and the peers file ``entry``."""
    token = _secret("token", token, token_file, entry, file)
    user = user or entry.get("user") or os.environ.get("DCMTOOLS_USER") or None
    if user:
        password = _secret("password", password, password_file, entry, file)
        if not password:
            raise DcmtoolsError(
                ErrorCode.BAD_PEER,
                f"no password for the user {user!r}",
                "give `password_file` FILE or set $DCMTOOLS_PASSWORD (never on the command line)",
                ExitStatus.USAGE,
            )
    if token and user:
        raise DcmtoolsError(
            ErrorCode.BAD_PEER, "both a token and a user were given", "use one of them", ExitStatus.USAGE
        )
    return token, user, password


def _secret(
    name: str, given: str | None, given_file: str | None, entry: dict[str, Any], file: Callable[[str], str | None]
) -> str | None:
    """A token or password: given, read from the file given, ``$DCMTOOLS_<NAME>``, or the peers file's
    ``<name>_env`` (a variable's name) or ``<name>_file``, in this order."""
    if given_file:
        given = given or _read_secret(given_file, name)
    value = given or os.environ.get(f"DCMTOOLS_{name.upper()}") or None
    if not value and entry.get(f"{name}_env"):
        value = os.environ.get(str(entry[f"{name}_env"])) or None
    if not value and entry.get(f"{name}_file"):
        value = _read_secret(file(f"{name}_file") or "", name)
    return value


# A failed connection by what its text says: (words, error code, message, hint, exit status).
_CONNECTION_FAILURES = (
    (
        (
            "name or service not known",
            "nodename nor servname",
            "failed to resolve",
            "temporary failure in name resolution",
            "no address associated",
        ),
        ErrorCode.NAME_NOT_RESOLVED,
        "cannot find the host {host!r} (name not resolved)",
        "check the spelling of the URL, or the DNS",
        ExitStatus.CONNECT,
    ),
    (
        ("connection refused", "errno 111"),
        ErrorCode.CONNECTION_REFUSED,
        "nothing is listening on {where} (connection refused)",
        "check the port in the URL, and that the server is running",
        ExitStatus.CONNECT,
    ),
    (
        ("remotedisconnected", "connection aborted", "reset by peer", "broken pipe"),
        ErrorCode.ABORTED,
        "{label} dropped the connection during the {what}",
        "check the server's log (a request too large? try a smaller `batch`)",
        ExitStatus.ABORTED,
    ),
    (
        ("no route", "unreachable"),
        ErrorCode.UNREACHABLE,
        "no route to {where}",
        "check the network",
        ExitStatus.CONNECT,
    ),
)


class WebSession:
    """A ``requests.Session`` bound to one peer: auth, TLS, timeout, retries and diagnosis."""

    def __init__(self, peer: WebPeer, *, retries: int = 3, backoff: float = 1.0, debug: bool = False) -> None:
        import requests

        self.peer = peer
        self.retries = retries
        self.backoff = backoff
        self.timeout = peer.timeout or DEFAULT_TIMEOUT
        self.debug = debug
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "dcmtools"
        if peer.token:
            self.http.headers["Authorization"] = f"Bearer {peer.token}"
        elif peer.user:
            self.http.auth = (peer.user, peer.password or "")
        if peer.tls_insecure:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            self.http.verify = False
        elif peer.tls_ca:
            self.http.verify = peer.tls_ca
        if peer.tls_cert:
            self.http.cert = (peer.tls_cert, peer.tls_key) if peer.tls_key else peer.tls_cert

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> WebSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def url(self, path: str) -> str:
        return self.peer.url + "/" + path.lstrip("/")

    def request(
        self, method: str, path: str, *, what: str, body: Any = None, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> Any:
        """One request, retried on 429/503/504 and dropped connections; the response, or ``DcmtoolsError``.

        ``body`` is bytes or a callable returning a fresh body (a stream can only be read once).
        A status in ``ok`` (or 409 / 202 for STOW, given by the caller) is returned as it is.
        """
        import requests

        attempt = 0
        while True:
            data = body() if callable(body) else body
            try:
                response = self.http.request(method, self.url(path), data=data, timeout=self.timeout, **kwargs)
            except requests.exceptions.RequestException as exc:
                error = self._connection_error(exc, what)
                # A dropped connection is retried; so is a refused one after a drop (a server restarting).
                retry = error.code == ErrorCode.ABORTED or (attempt and error.code == ErrorCode.CONNECTION_REFUSED)
                if retry and attempt < self.retries:
                    attempt += 1
                    self._pause(attempt, None, f"{error.message}")
                    continue
                raise error from None
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                self._pause(
                    attempt,
                    response.headers.get("Retry-After"),
                    f"{self.peer.label} answered {response.status_code} {response.reason} to the {what}",
                )
                response.close()
                continue
            if response.status_code in ok:
                return response
            raise self.http_error(response, what)

    def _pause(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = self.backoff * 2 ** (attempt - 1)
        if retry_after and retry_after.strip().isdigit():
            delay = min(float(retry_after), 60.0)
        print(
            f"dcmtools: {why}; trying again in {delay:g} s ({attempt} of {self.retries})", file=sys.stderr, flush=True
        )
        time.sleep(delay)

    def _connection_error(self, exc: Exception, what: str) -> DcmtoolsError:
        import requests

        where = self.peer.where
        text = str(exc)
        if isinstance(exc, requests.exceptions.SSLError):
            reason = text.split("SSLError(", 1)[-1].rstrip(")'\"")
            hint = "give `tls_ca` FILE (the CA that signed its certificate), or check the URL's host name"
            if "CERTIFICATE_VERIFY_FAILED" not in text:
                hint = "check that the server speaks HTTPS on this port, and `tls_cert`/`tls_key`"
            return DcmtoolsError(
                ErrorCode.TLS_FAILED, f"no TLS session with {where}: {_short(reason)}", hint, ExitStatus.CONNECT
            )
        if isinstance(exc, (requests.exceptions.ConnectTimeout,)):
            return DcmtoolsError(
                ErrorCode.TIMEOUT,
                f"no answer from {where} within {self.timeout:g} s (connecting)",
                "check the host and port, or a firewall; or give a longer `timeout`",
                ExitStatus.TIMEOUT,
            )
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return DcmtoolsError(
                ErrorCode.TIMEOUT,
                f"{self.peer.label} did not answer the {what} within {self.timeout:g} s",
                "give a longer `timeout`, or a smaller `batch`",
                ExitStatus.TIMEOUT,
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            lowered = text.lower()
            for words, code, message, hint, status in _CONNECTION_FAILURES:
                if any(word in lowered for word in words):
                    host = urlsplit(self.peer.url).hostname
                    return DcmtoolsError(
                        code, message.format(host=host, where=where, label=self.peer.label, what=what), hint, status
                    )
            return DcmtoolsError(
                ErrorCode.CONNECT_FAILED, f"cannot connect to {where}: {_short(text)}", None, ExitStatus.CONNECT
            )
        return DcmtoolsError(
            ErrorCode.CONNECT_FAILED, f"the {what} to {where} failed: {_short(text)}", None, ExitStatus.CONNECT
        )

    def http_error(self, response: Any, what: str) -> DcmtoolsError:
        """A failure answer in plain words, with its code and exit status."""
        status = response.status_code
        label = self.peer.label
        if status == 401:
            how = (
                "the token"
                if self.peer.token
                else f"the user {self.peer.user!r} and password"
                if self.peer.user
                else None
            )
            message = (
                f"{label} refused {how}: wrong credentials (401 Unauthorized)"
                if how
                else f"{label} wants credentials (401 Unauthorized)"
            )
            return DcmtoolsError(
                ErrorCode.UNAUTHORIZED,
                message,
                "give `token` / $DCMTOOLS_TOKEN / `token_file`, or `user` with $DCMTOOLS_PASSWORD or `password_file`",
                ExitStatus.REJECTED,
            )
        if status == 403:
            return DcmtoolsError(
                ErrorCode.FORBIDDEN,
                f"{label} refused the {what}: access forbidden (403)",
                "the credentials were accepted but may not do this; ask the archive's admin",
                ExitStatus.REJECTED,
            )
        if status == 404:
            return DcmtoolsError(
                ErrorCode.NO_SERVICE,
                f"{label} has no DICOMweb service at {urlsplit(self.peer.url).path or '/'} "
                f"(404 Not Found on the {what})",
                "check the base path of the URL (e.g. /dicom-web, /wado-rs, /dcm4chee-arc/aets/DCM4CHEE/rs)",
                ExitStatus.NO_CONTEXT,
            )
        detail = _short(response.text or "", 200) if _is_text(response) else ""
        return DcmtoolsError(
            ErrorCode.HTTP_FAILED,
            f"{label} answered {status} {response.reason} to the {what}" + (f": {detail}" if detail else ""),
            "check the server's log",
            ExitStatus.FAILED,
        )


def _is_text(response: Any) -> bool:
    kind = response.headers.get("Content-Type", "")
    return kind.startswith("text/") or "json" in kind


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def with_options(peer: WebPeer, **changes: Any) -> WebPeer:
    return replace(peer, **{k: v for k, v in changes.items() if v is not None})
