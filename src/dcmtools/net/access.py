"""Who may use which service of ``listen`` (the storage / query-retrieve / commitment SCP).

    from dcmtools.net.access import Access

    access = Access(allow=["MODALITY@10.0.0.7", "ct1"], peers_file="peers.toml")
    access.services("MODALITY", "10.0.0.7")      # "all", "open" or None (refused)

Three policies:

* ``allow`` given (``--allow SPEC``, repeatable): only those callers may
  associate, and they may use everything; anyone else gets A-ASSOCIATE-RJ
  (calling AE title not recognised).  A SPEC is a peers-file entry name (its
  AE title and host), ``AET@HOST``, or a bare ``AET`` (from any host).
* neither (the default): anyone may use Verification and Storage (the
  troubleshooting use: a modality's C-ECHO and C-STORE), but query, retrieve,
  worklist and Storage Commitment only callers in the peers file (same AE title,
  from the entry's host).
* ``allow_any``: everything for everyone.

Hosts are compared as addresses: a host name is resolved once, when the
policy is made.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any, cast

from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .peer import check_aet, load_peers

ALL = "all"
OPEN = "open"  # Verification and Storage only


def _addresses(host: str) -> frozenset[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.BAD_PEER,
            f"cannot resolve the host {host!r} of an allowed caller: {exc}",
            "write an address (AET@192.0.2.7) or a host name this machine resolves",
            ExitStatus.USAGE,
        ) from None
    found = {cast(str, info[4][0]) for info in infos}  # the address text (IPv4, IPv6)
    # An IPv4 caller on a dual-stack socket shows as ::ffff:a.b.c.d.
    found |= {f"::ffff:{a}" for a in found if "." in a and ":" not in a}
    return frozenset(found)


class Access:
    """An access policy (see the module docs)."""

    def __init__(
        self,
        allow: Iterable[str] | None = None,
        *,
        allow_any: bool = False,
        peers_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.allow_any = allow_any
        specs = list(allow or [])
        peers, self.peers_source = load_peers(peers_file)
        self.explicit = bool(specs)
        rules: list[tuple[str, frozenset[str] | None]] = []
        if specs:
            for spec in specs:
                rules.append(self._rule(spec, peers))
        else:
            for peer in peers.values():
                rules.append((peer.aet, _addresses(peer.host)))
        self.rules = rules

    @staticmethod
    def _rule(spec: str, peers: dict[str, Any]) -> tuple[str, frozenset[str] | None]:
        spec = spec.strip()
        if spec in peers:
            peer = peers[spec]
            return peer.aet, _addresses(peer.host)
        if "@" in spec:
            aet, host = spec.rsplit("@", 1)
            host = host.strip("[]")
            if not host:
                raise DcmtoolsError(
                    ErrorCode.BAD_PEER,
                    f"`allow` {spec!r}: no host after '@'",
                    "write AET, AET@HOST or a peers-file name",
                    ExitStatus.USAGE,
                )
            return check_aet(aet, f"AE title in `allow` {spec!r}"), _addresses(host)
        return check_aet(spec, f"`allow` {spec!r}"), None

    def _matches(self, aet: str, address: str | None) -> bool:
        aet = aet.strip()
        for rule_aet, hosts in self.rules:
            if rule_aet == aet and (hosts is None or (address is not None and address in hosts)):
                return True
        return False

    def services(self, aet: str, address: str | None) -> str | None:
        """What a caller may use: ``"all"``, ``"open"`` (Verification and Storage), or None (refused)."""
        if self.allow_any:
            return ALL
        if self.explicit:
            return ALL if self._matches(aet, address) else None
        return ALL if self._matches(aet, address) else OPEN

    def describe(self) -> str:
        """One sentence for the start-up record."""
        if self.allow_any:
            return "every caller may use every service (`allow_any`)"
        if self.explicit:
            return f"only the {len(self.rules)} caller(s) of `allow` may associate"
        where = f"the peers file {self.peers_source}" if self.peers_source else "a peers file (there is none)"
        return (
            "anyone may use C-ECHO and C-STORE; query, retrieve, worklist and Storage Commitment "
            f"only callers in {where} ({len(self.rules)} entr{'y' if len(self.rules) == 1 else 'ies'}), "
            "or add `allow`"
        )
