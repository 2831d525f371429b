"""``Listener``: the whole ``dcmtools listen`` node as one object, for Python and tests.

It wires a storage SCP (every storage SOP class), and, when asked for, the
store index with the query/retrieve SCP over it, the worklist SCP, and the
Storage Commitment SCP, behind one port with one access policy::

    from dcmtools.net import NetOptions
    from dcmtools.net.server import Listener

    with Listener(NetOptions(calling_aet="ARCHIVE"), port=0, store_dir="archive/", on_record=print) as node:
        print(node.port)            # the port the system chose
        node.serve_forever(count=10)  # or idle_timeout=..., or node.stop() from another thread

``start()`` / ``stop()`` / ``serve_forever()``; the records (instances,
queries, retrievals, commitment reports, index rebuilds) go to ``on_record``,
called from the SCPs' threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .assoc import NetOptions
from .peer import Peer

Record = dict[str, Any]


@dataclass
class Listener:
    """A listening DICOM node; see the module docstring.  ``port=0`` lets the system choose."""

    options: NetOptions
    port: int = 11112
    bind: str = ""
    store_dir: str | os.PathLike[str] | None = None
    worklist_dir: str | os.PathLike[str] | None = None
    access: Any = None  # a dcmtools.net.access.Access; None: the default policy (Access(None))
    peers_file: str | None = None
    reindex: bool = False
    overwrite: bool = False
    max_associations: int = 32
    assoc_timeout: float = 10.0
    pdu_timeout: float = 60.0
    commit_report: str = "auto"  # auto, same or new (see CommitmentSCP)
    commit_delay: float = 0.0
    commit_report_to: Peer | None = None
    on_record: Callable[[Record], None] | None = None
    scp: Any = field(default=None, init=False)
    qr: Any = field(default=None, init=False)
    commitment: Any = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Listener:
        """Open the index (if any), build the SCPs and start listening; returns self."""
        from .access import Access
        from .commitment import CommitmentSCP
        from .scp import StorageSCP, storage_contexts

        self._stop.clear()
        if self.access is None:
            self.access = Access(None, peers_file=self.peers_file)
        self.qr = self._query_retrieve()
        self.commitment = CommitmentSCP(
            self.qr.index if self.qr is not None else None,
            self.options,
            report=self.commit_report,
            delay=self.commit_delay,
            report_to=self.commit_report_to,
            peers_file=self.peers_file,
            on_record=self._emit,
        )
        qr = self.qr
        self.scp = StorageSCP(
            os.fspath(self.store_dir) if self.store_dir is not None else None,
            aet=self.options.calling_aet,
            port=self.port,
            host=self.bind,
            options=self.options,
            on_record=self._emit,
            on_stored=qr.stored if qr is not None and qr.index is not None else None,
            access=self.access,
            max_associations=self.max_associations,
            assoc_timeout=self.assoc_timeout,
            pdu_timeout=self.pdu_timeout,
            overwrite=self.overwrite,
            tls=self.options.tls,
            contexts=(qr.contexts() if qr is not None else storage_contexts()) + self.commitment.contexts(),
            evt_handlers=(qr.handlers() if qr is not None else []) + self.commitment.handlers(),
        )
        try:
            self.scp.start()
        except BaseException:
            self._close_parts(0.5, started=False)
            raise
        self.port = self.scp.port
        return self

    def serve_forever(self, count: int | None = None, idle_timeout: float | None = None) -> str:
        """Serve until ``count`` instances, ``idle_timeout`` s without traffic, or ``stop_soon()``;
        returns why: "count", "idle" or "stopped"."""
        while not self._stop.is_set():
            why = self.scp.wait(count=count, idle_timeout=idle_timeout, timeout=0.5)
            if why in ("count", "idle"):
                return str(why)
        return "stopped"

    def stop_soon(self) -> None:
        """Make ``serve_forever`` return (safe from a signal handler or another thread)."""
        self._stop.set()
        if self.scp is not None:
            self.scp.wake()

    def stop(self, grace: float = 0.0) -> None:
        """Stop listening: commitment reports still going out get ``commit_delay + grace`` s
        (0.5 s without grace), open associations ``grace`` s; then the index is closed."""
        self._stop.set()
        self._close_parts(self.commit_delay + grace if grace else 0.5, grace)

    def __enter__(self) -> Listener:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ what it is
    @property
    def instances(self) -> int:
        return int(self.scp.instances) if self.scp is not None else 0

    def listening_record(self) -> Record:
        """The record that says the node is up (port, AE title, store, access policy)."""
        return {
            "type": "listening",
            "port": self.scp.port,
            "aet": self.scp.aet,
            "store_dir": os.fspath(self.store_dir) if self.store_dir is not None else None,
            "access": self.access.describe(),
            "max_associations": self.max_associations,
            "removed_part_files": getattr(self.scp, "removed_parts", 0),
        }

    # ------------------------------------------------------------ parts
    def _emit(self, record: Record) -> None:
        if self.on_record is not None:
            self.on_record(record)

    def _query_retrieve(self) -> Any:
        if self.store_dir is None and self.worklist_dir is None:
            return None
        from .qrscp import QueryRetrieveSCP

        index = self._index() if self.store_dir is not None else None
        return QueryRetrieveSCP(
            index,
            aet=self.options.calling_aet,
            options=self.options,
            worklist_dir=os.fspath(self.worklist_dir) if self.worklist_dir is not None else None,
            peers_file=self.peers_file,
            on_record=self._emit,
        )

    def _index(self) -> Any:
        from .index import StoreIndex, index_path

        assert self.store_dir is not None
        where = index_path(os.fspath(self.store_dir))

        def on_rebuilt(count: int, seconds: float) -> None:
            if count or self.reindex:  # nothing to say about a new, empty store
                self._emit(
                    {"type": "index", "path": where, "instances": count, "rebuilt": True, "seconds": round(seconds, 3)}
                )

        # A rebuild runs in the background: instances are received meanwhile, queries wait for it.
        index = StoreIndex(os.fspath(self.store_dir), rebuild=self.reindex, background=True, on_rebuilt=on_rebuilt)
        if not index.needs_rebuild and index.count():
            self._emit(
                {
                    "type": "index",
                    "path": where,
                    "instances": index.count(),
                    "rebuilt": False,
                    "journaled": index.replayed,
                    "seconds": 0.0,
                }
            )
        return index

    def _close_parts(self, commit_wait: float, grace: float = 0.0, started: bool = True) -> None:
        if self.commitment is not None:
            self.commitment.close(timeout=commit_wait)  # reports still going out
        if self.scp is not None and started:
            self.scp.stop(grace)
        if self.qr is not None and self.qr.index is not None:
            self.qr.index.close()
