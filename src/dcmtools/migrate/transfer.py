"""Moving one study from the source to the destination, by the way the two allow.

``move``      PACS -> PACS: C-MOVE at the source straight to the destination's AE
              title (the source must know it); a study that fails is tried again
              series by series.
``through``   PACS -> PACS through us: C-MOVE to us (or C-GET) into a staging
              folder, then C-STORE to the destination; the staged files stay
              until they are all sent, so a retry sends without retrieving again.
``retrieve``  PACS -> folder: C-MOVE to us (or C-GET) straight into the folder.
``send``      folder -> PACS: C-STORE of the study's files.
``copy``      folder -> folder: each file copied (atomically) into the layout.

A DICOMweb destination takes the files by STOW-RS (``dcmtools.web.stow``):
PACS -> DICOMweb goes ``through`` us (C-MOVE to us or C-GET, then STOW-RS),
folder -> DICOMweb is a ``send``.

With changes in flight (``MigrateOptions.changes``: ``--anonymize``,
``--edit``) every study goes through us whatever the endpoints: its files
(retrieved into the staging folder, or the source folder's) are changed
into ``STAGING/changed/STUDY/`` and sent (or written into the destination
folder under their new identifiers); the outcome carries the mapping
(``changed``: the new Study UIDs, Patient ID, and SOP Instance UID of each
original) that the journal keeps for reconciliation.

Peer failures (cannot connect, association rejected, aborted, timed out) are
raised as ``DcmtoolsError``: they are not the study's fault; the migration
stops and the next run resumes.  A study's own failure is returned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..stream.records import DcmtoolsError, ExitStatus

if TYPE_CHECKING:
    from ..net.retrieve import Retriever, RetrieveRequest
from .endpoints import tag_key

PEER_FAILURES = (ExitStatus.CONNECT, ExitStatus.REJECTED, ExitStatus.ABORTED, ExitStatus.TIMEOUT, ExitStatus.NO_CONTEXT)


class TransferErrorCode:
    FAILED = "transfer_failed"  # the study could not be moved whole (the peer's reason in the message)


@dataclass
class Outcome:
    ok: bool
    instances: int = 0
    size: int = 0
    error: dict[str, Any] | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def mode_of(source: Any, dest: Any, through: bool, get: bool) -> str:
    if source.is_folder:
        return "copy" if dest.is_folder else "send"
    if dest.is_folder:
        return "retrieve"
    return "through" if (through or get or getattr(dest, "is_web", False)) else "move"


class Transfer:
    """Transfers studies for one migration; ``study()`` may be called from several threads
    (C-MOVEs to us share our one storage port, so those take turns)."""

    def __init__(self, migration: Any) -> None:
        self.m = migration
        self.mode = mode_of(
            migration.source,
            migration.dest,
            migration.options.through or migration.options.changes is not None,
            migration.options.get,
        )
        self._to_us = threading.Lock()
        self._local = threading.local()
        self._all: list[Retriever] = []
        self._all_lock = threading.Lock()
        self._shared: Retriever | None = None  # the retriever of C-MOVEs to us

    def study(self, item: Any, mark: Callable[[str, dict[str, Any]], None]) -> Outcome:
        if self.m.options.changes is not None:
            return self._changed(item, mark)
        mode: Callable[[Any, Callable[[str, dict[str, Any]], None]], Outcome] = getattr(self, f"_mode_{self.mode}")
        return mode(item, mark)

    # -- PACS sources
    def _request(self, level: str, keys: list[str]) -> RetrieveRequest:
        from ..net.keys import identifier_from, parse_keys
        from ..net.retrieve import RetrieveRequest

        return RetrieveRequest(level, identifier_from(parse_keys(keys), (), level), "study")

    def _retrieve(
        self, request: RetrieveRequest, *, dest_aet: str | None = None, store_dir: str | None = None
    ) -> dict[str, Any]:
        """One retrieve on an association kept between studies: a C-MOVE to us shares one retriever
        (its storage SCP stays up on our port; the moves take turns), straight C-MOVEs and C-GETs
        have one per worker.  Files land in ``store_dir`` in the listen layout (by study)."""
        from ..net.retrieve import Retriever

        o = self.m.options
        get = o.get and dest_aet is None
        if dest_aet is None and not get:
            with self._to_us:
                if self._shared is None:
                    self._shared = Retriever(
                        self.m.source.peer, self.m.net, store_dir=store_dir, port=o.port, model="study", overwrite=True
                    )
                try:
                    return self._shared._retrieve(request)
                except BaseException:
                    self._shared.abort()
                    self._shared = None
                    raise
        key = (dest_aet, get)
        retrievers: dict[tuple[str | None, bool], Retriever] = self._local.__dict__.setdefault("retrievers", {})
        retriever = retrievers.get(key)
        if retriever is None:
            retriever = Retriever(
                self.m.source.peer,
                self.m.net,
                dest=dest_aet,
                store_dir=store_dir,
                port=o.port,
                get=get,
                model="study",
                overwrite=True,
            )
            retrievers[key] = retriever
            with self._all_lock:
                self._all.append(retriever)
        try:
            return retriever._retrieve(request)
        except BaseException:
            retriever.abort()
            retrievers.pop(key, None)
            raise

    def close(self) -> None:
        """Release the associations the workers kept (and stop our storage SCP)."""
        if self._shared is not None:
            self._shared.close()
            self._shared = None
        with self._all_lock:
            for retriever in self._all:
                try:
                    retriever.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._all.clear()

    def _mode_move(self, item: Any, mark: Any) -> Outcome:
        dest_aet = self.m.options.dest_aet or self.m.dest.peer.aet
        record = self._retrieve(self._request("STUDY", [f"StudyInstanceUID={item.id}"]), dest_aet=dest_aet)
        if record.get("ok"):
            return Outcome(True, int(record.get("completed") or 0) + int(record.get("warning") or 0))
        if (record.get("error") or {}).get("code") == "move_destination_unknown":
            return Outcome(False, error=record["error"])
        # Series by series: a study too big for one C-MOVE, or one bad series, does not sink the rest.
        series = self._series_of(item.id)
        if len(series) < 2:
            return Outcome(False, error=record.get("error"), detail=_counts(record))
        done = 0
        errors = []
        for uid in series:
            one = self._retrieve(
                self._request("SERIES", [f"StudyInstanceUID={item.id}", f"SeriesInstanceUID={uid}"]), dest_aet=dest_aet
            )
            done += int(one.get("completed") or 0) + int(one.get("warning") or 0)
            if not one.get("ok"):
                errors.append(f"series {uid}: {(one.get('error') or {}).get('message', 'failed')}")
        if errors:
            return Outcome(
                False,
                done,
                error={
                    "code": TransferErrorCode.FAILED,
                    "message": "; ".join(errors[:5]) + (" ..." if len(errors) > 5 else ""),
                    "hint": "see the destination's log for why it refused",
                },
                detail={"per_series": True},
            )
        return Outcome(True, done, detail={"per_series": True})

    def _series_of(self, study: str) -> list[str]:
        from ..net.keys import first_text, identifier_from, parse_keys
        from ..net.query import find

        identifier = identifier_from(parse_keys([f"StudyInstanceUID={study}", "SeriesInstanceUID"]), (), "SERIES")
        out = []
        for record in find(self.m.source.peer, identifier, self.m.net, level="SERIES", check=False):
            if record.get("ok"):
                uid = first_text(record["dataset"].get(tag_key("SeriesInstanceUID")))
                if uid:
                    out.append(uid)
        return out

    def _staged(self, item: Any, mark: Any) -> tuple[list[str], str | None, Outcome | None]:
        """(files, their staging folder, failure): the study retrieved into the staging folder, or
        the files an earlier attempt retrieved there."""
        staged = item.data.get("staged")
        files: list[str] = []
        if staged and os.path.isdir(staged):  # retrieved by an earlier attempt: send only
            files = [
                os.path.join(d, f)
                for d, _, names in sorted(os.walk(staged))
                for f in sorted(names)
                if f.endswith(".dcm")
            ]
        if not files:
            record = self._retrieve(self._request("STUDY", [f"StudyInstanceUID={item.id}"]), store_dir=self.m.staging)
            if not record.get("ok"):
                return [], None, Outcome(False, error=record.get("error"), detail=_counts(record))
            files = list(record.get("files") or [])
            staged = _study_folder(self.m.staging, files)
            mark("retrieved", {"staged": staged, "retrieved": len(files)})
        return files, staged, None

    def _unstage(self, files: list[str], staged: str | None) -> None:
        for path in files:
            with contextlib.suppress(OSError):
                os.remove(path)
        if staged and os.path.commonpath([staged, self.m.staging]) == self.m.staging and staged != self.m.staging:
            shutil.rmtree(staged, ignore_errors=True)

    def _mode_through(self, item: Any, mark: Any) -> Outcome:
        files, staged, failure = self._staged(item, mark)
        if failure is not None:
            return failure
        outcome = self._send_files(files)
        if outcome.ok:
            self._unstage(files, staged)
        return outcome

    # -- changes in flight
    def _changed(self, item: Any, mark: Any) -> Outcome:
        """Retrieve (or read from the source folder), change, then send (or write into the folder)."""
        from ..net.scp import _component, stored_path

        if self.m.source.is_folder:
            files, staged = [path for path, _, _ in self._files_of(item)], None
        else:
            files, staged, failure = self._staged(item, mark)
            if failure is not None:
                return failure
        out_dir = os.path.join(self.m.staging, "changed", _component(item.id))
        shutil.rmtree(out_dir, ignore_errors=True)  # what an interrupted attempt left
        os.makedirs(out_dir, exist_ok=True)
        changed: list[tuple[str, Any]] = []
        sop_map: dict[str, str] = {}
        studies: set[str] = set()
        patient = ""
        for path in files:
            try:
                with open(path, "rb") as handle:
                    result = self.m.options.changes.apply(handle.read())
            except DcmtoolsError as exc:
                return Outcome(
                    False,
                    error={
                        "code": exc.code,
                        "message": f"{os.path.basename(path)} cannot be changed: {exc.message}",
                        **({"hint": exc.hint} if exc.hint else {}),
                    },
                )
            except OSError as exc:
                return Outcome(
                    False, error={"code": "read_failed", "message": f"cannot read {path}: {exc.strerror or exc}"}
                )
            target = os.path.join(out_dir, _component(result.sop) + ".dcm")
            with open(target, "wb") as handle:
                handle.write(result.data)
            changed.append((target, result))
            sop_map[result.original_sop] = result.sop
            studies.add(result.study)
            patient = result.patient
        detail = {"changed": {"studies": sorted(studies), "patient": patient, "sop": sop_map}}
        if self.m.dest.is_folder:
            size = 0
            for target, result in changed:
                final = stored_path(self.m.dest.folder, result.patient, result.study, result.series, result.sop)
                try:
                    os.makedirs(os.path.dirname(final), exist_ok=True)
                    os.replace(target, final)  # the staging folder is ours: a rename is atomic enough
                except OSError as exc:
                    return Outcome(
                        False,
                        error={"code": "write_failed", "message": f"cannot write {final}: {exc.strerror or exc}"},
                        detail=detail,
                    )
                size += _size(final)
            outcome = Outcome(True, len(changed), size)
        else:
            outcome = self._send_files([target for target, _ in changed])
        outcome.detail.update(detail)
        if outcome.ok:
            shutil.rmtree(out_dir, ignore_errors=True)
            if staged is not None:
                self._unstage(files, staged)
        return outcome

    def _mode_retrieve(self, item: Any, mark: Any) -> Outcome:
        record = self._retrieve(self._request("STUDY", [f"StudyInstanceUID={item.id}"]), store_dir=self.m.dest.folder)
        if not record.get("ok"):
            return Outcome(False, error=record.get("error"), detail=_counts(record))
        files = record.get("files") or []
        return Outcome(True, len(files), sum(_size(f) for f in files))

    # -- folder sources
    def _files_of(self, item: Any) -> list[tuple[str, str, str]]:
        return [(d["path"], group or "", part) for part, group, d in self.m.journal.parts(item.id)]

    def _mode_send(self, item: Any, mark: Any) -> Outcome:
        return self._send_files([path for path, _, _ in self._files_of(item)])

    def _mode_copy(self, item: Any, mark: Any) -> Outcome:
        from ..net.scp import stored_path

        size = 0
        count = 0
        for path, series, sop in self._files_of(item):
            target = stored_path(self.m.dest.folder, item.data.get("patient"), item.id, series, sop)
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                temp = f"{target}.{os.getpid()}.{threading.get_ident()}.part"
                shutil.copyfile(path, temp)
                os.replace(temp, target)
            except OSError as exc:
                return Outcome(
                    False,
                    count,
                    size,
                    error={"code": "write_failed", "message": f"cannot copy {path} to {target}: {exc.strerror or exc}"},
                )
            count += 1
            size += _size(target)
        return Outcome(True, count, size)

    def _send_files(self, files: list[str]) -> Outcome:
        from ..net import send

        sent = 0
        size = 0
        failures: list[dict[str, Any]] = []
        if self.m.dest.is_web:
            from ..web import WebSession, stow

            session = WebSession(self.m.dest.web)
            results: Any = _closing(session, stow(session, files))
        else:
            results = send(self.m.dest.peer, files, self.m.net)
        for record in results:
            if record.get("ok"):
                sent += 1
                size += _size(record.get("path") or "")
            else:
                failures.append(record)
        if failures:
            first = failures[0].get("error") or {}
            message = f"{len(failures)} of {len(files)} instance(s) not stored: {first.get('message', 'failed')}"
            error = {"code": TransferErrorCode.FAILED, "message": message}
            if first.get("hint"):
                error["hint"] = first["hint"]
            return Outcome(
                False,
                sent,
                size,
                error=error,
                detail={"not_stored": [f.get("sop_instance_uid") or f.get("path") for f in failures[:20]]},
            )
        return Outcome(True, sent, size)


def _closing(session: Any, records: Any) -> Any:
    """The records of a STOW-RS run, its session closed after them."""
    try:
        yield from records
    finally:
        session.close()


def _counts(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("completed", "failed", "warning", "received", "status") if k in record}


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _study_folder(root: str, files: list[str]) -> str:
    """The study's folder under the staging root (ROOT/PatientID/StudyUID in the listen layout)."""
    if not files:
        return root
    parts = os.path.relpath(os.path.dirname(files[0]), root).split(os.sep)
    return os.path.join(root, *parts[:2]) if len(parts) >= 2 and parts[0] != ".." else root
