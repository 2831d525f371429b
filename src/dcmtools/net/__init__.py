"""The network core shared by every dcmtools network command.

Public API (import from ``dcmtools.net``):

Peers and options
    ``parse_peer(text, peers_file=None) -> Peer``  ``AET@HOST:PORT`` or a peers-file name
    ``Peer``, ``TLSSettings``, ``tls_settings(tls, ca, cert, key, insecure, server_name)``, ``load_peers()``
    ``NetOptions(calling_aet, timeout, max_pdu, tls, trace)``
Associations
    ``associate(peer, contexts, options) -> Association`` (context manager;
    raises ``DcmtoolsError`` with exit status CONNECT/REJECTED/ABORTED/TIMEOUT/
    NO_CONTEXT and a message in plain words), ``close(assoc)``,
    ``failure_after(assoc, peer, what, timeout)`` for failures after it was up,
    ``make_ae(options)`` (a pynetdicom AE using the fast upper layer).
Services
    ``echo(peer, options, count)`` yields C-ECHO records;
    ``send(peer, items, options, retries, jobs, decompress)`` yields one record per file;
    ``StorageSCP(...)`` receives instances (``listen``, and C-MOVE destinations);
    ``commit(peer, items, options, batch, wait, port)`` yields Storage Commitment records,
    ``CommitmentSCP(...)`` answers Storage Commitment requests (``commitment/``: inputs, exchange, scu, scp);
    ``server.Listener`` is the whole ``listen`` node (storage, Q/R, worklist, commitment) in one object.
Words
    ``status.describe(code, service)``, ``status.status_fields(...)``,
    ``dcmtools.stream.records.ErrorCode`` (the stable error codes, network ones included), ``trace.Tracer`` (``--trace``).

``transport.py`` explains what was changed under pynetdicom and why; ``seam.py`` is the only
module that touches pynetdicom internals (tests/test_pynetdicom_contract.py checks them).  Nothing
here is imported by the CLI modules at import time (they import it inside the
command function).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .assoc import NetOptions, associate, close, echo, failure_after, make_ae, quiet_pynetdicom
from .peer import Peer, TLSSettings, load_peers, parse_peer, tls_settings

if TYPE_CHECKING:
    from .commitment import CommitmentSCP, CommitmentSCU, commit
    from .scp import StorageSCP, stored_path
    from .store import send

# Imported at first use (PEP 562), so that ``dcmtools echo`` does not load the SCPs and the sender.
_LAZY = {
    "CommitmentSCP": "commitment",
    "CommitmentSCU": "commitment",
    "commit": "commitment",
    "StorageSCP": "scp",
    "stored_path": "scp",
    "send": "store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CommitmentSCP",
    "CommitmentSCU",
    "NetOptions",
    "Peer",
    "StorageSCP",
    "TLSSettings",
    "associate",
    "close",
    "commit",
    "echo",
    "failure_after",
    "load_peers",
    "make_ae",
    "parse_peer",
    "quiet_pynetdicom",
    "send",
    "stored_path",
    "tls_settings",
]
