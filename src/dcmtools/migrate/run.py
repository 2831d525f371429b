"""One migration: inventory, transfer, verification, all kept in the journal."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..stream.journal import Item, Journal, JournalError
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus, error_record
from .endpoints import Endpoint
from .inventory import MODALITIES, FolderInventory, PacsInventory
from .pacing import Pacer, Rate, Window
from .transfer import PEER_FAILURES, Outcome, Transfer, mode_of
from .verify import FolderCounter, PacsCounter, compare

STATES = ("planned", "retrieved", "sent", "verified", "failed")
TO_TRANSFER = ("planned", "retrieved", "failed")
RANK = ("planned", "failed", "retrieved", "sent", "verified")  # for journal.merge of shards
RECHECK = (0.5, 1.0, 2.0)  # seconds before looking again at a study just sent that seems incomplete


class MigrateErrorCode:
    JOURNAL = "bad_journal"  # the journal cannot be used, or belongs to another migration
    PEER_DOWN = "peer_unavailable"  # a peer failed as a whole: the run stopped, run it again


@dataclass
class MigrateOptions:
    """What ``dcmtools migrate`` is told (the library's defaults are the CLI's)."""

    since: str | None = None
    until: str | None = None
    max_results: int | None = None
    modalities: tuple[str, ...] = MODALITIES
    get: bool = False  # C-GET from the source (through us)
    through: bool = False  # PACS -> PACS through us even though a straight C-MOVE is possible
    dest_aet: str | None = None  # the destination's AE title as the source knows it
    port: int = 11112  # our storage SCP for C-MOVE to us
    associations: int = 1
    max_attempts: int = 3
    rate: Rate | None = None
    window: Window | None = None
    uids: bool = False
    changes: Any = None  # a ``changes.Changes``: --anonymize/--edit in flight (every study through us)
    commit: bool = False  # Storage Commitment at the destination after verification (on our ``port``)
    commit_wait: float = 60.0  # seconds to wait for a Storage Commitment report
    shard: Any = None  # dcmtools.stream.shard.Shard: only the studies of this shard (--shard K/N)
    staging: str | None = None  # through us: where studies wait to be sent [JOURNAL.staging]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    on_pause: Callable[[float], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _check_endpoints(source: Endpoint, dest: Endpoint, options: MigrateOptions) -> None:
    """Usage errors of the endpoints themselves, before any journal is opened."""
    if options.commit and (dest.is_folder or dest.is_web):
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE,
            "`commit` asks a PACS to commit to keep the studies (DIMSE "
            f"Storage Commitment): the destination {dest} is not one",
            "leave out `commit`",
            ExitStatus.USAGE,
        )
    if source.is_web:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE,
            f"a DICOMweb source ({source}) is not supported: only a destination",
            "migrate from the archive's DIMSE service (AET@HOST:PORT) or a folder",
            ExitStatus.USAGE,
        )


class Migration:
    """``run()`` (inventory, transfer, verification) and ``verify_only()`` yield records;
    afterwards ``exit_status`` and ``summary`` say how it ended.

        from dcmtools.migrate import Migration, MigrateOptions, parse_endpoint
        from dcmtools.net import NetOptions

        net = NetOptions(calling_aet="DCMTOOLS")
        m = Migration(parse_endpoint("OLD@10.0.0.5:104"), parse_endpoint("NEW@10.0.0.6:104"),
                      "old-to-new.journal", net, MigrateOptions(associations=2))
        for record in m.run():
            print(record)
        assert m.exit_status == 0   # every study verified
    """

    def __init__(
        self,
        source: Endpoint,
        dest: Endpoint,
        journal: str | os.PathLike[str],
        net: Any,
        options: MigrateOptions | None = None,
    ) -> None:
        self.source = source
        self.dest = dest
        self.net = net
        self.options = options or MigrateOptions()
        self.journal_path = os.fspath(journal)
        _check_endpoints(source, dest, self.options)
        self.journal = self._open_journal()
        self.staging = self.options.staging or self.journal_path + ".staging"
        self.mode = mode_of(source, dest, self.options.through or self.options.changes is not None, self.options.get)
        self.pacer = Pacer(
            self.options.window, self.options.rate, self.options.clock, self.options.sleep, self.options.on_pause
        )
        self.fatal: DcmtoolsError | None = None
        self.inventory_problems = 0
        self.verify_counts = {
            "matched": 0,
            "missing": 0,
            "incomplete": 0,
            "extra": 0,
            "not_at_source": 0,
            "not_committed": 0,
        }
        self.transferred = {"studies": 0, "instances": 0, "failed": 0}

    def _open_journal(self) -> Journal:
        """The journal, checked to be this migration's (same endpoints, shard and changes in flight)."""
        source, dest = str(self.source), str(self.dest)
        try:
            journal = Journal(self.journal_path, kind="migrate", clock=self.options.clock)
        except JournalError as exc:
            raise DcmtoolsError(
                MigrateErrorCode.JOURNAL, str(exc), "give another `journal` file", ExitStatus.USAGE
            ) from None
        known = (journal.meta("source"), journal.meta("dest"))
        described = self.options.changes.describe() if self.options.changes is not None else None
        problem: tuple[str, str] | None = None
        if known == (None, None):
            journal.set_meta(source=source, dest=dest, changes=described)
        elif known != (source, dest):
            problem = (
                f"{self.journal_path} is the journal of the migration {known[0]} -> {known[1]}, not {source} -> {dest}",
                "give the same SOURCE and DEST, or another `journal`",
            )
        if problem is None and self.options.shard is not None:
            mine = str(self.options.shard)
            if journal.meta("shard") is None and not journal.total():
                journal.set_meta(shard=mine)
            elif journal.meta("shard") != mine:
                problem = (f"{self.journal_path} is not the journal of shard {mine}", "one journal per shard")
        if problem is None and known != (None, None) and journal.meta("changes") != described:
            problem = (
                f"{self.journal_path} is the journal of a migration with other changes in flight "
                f"({journal.meta('changes') or 'none'}, not {described or 'none'}): a study would arrive twice",
                "give the same `anonymize`/`edit` options (and key) as its first run, or another `journal`",
            )
        if problem is not None:
            journal.close()
            raise DcmtoolsError(MigrateErrorCode.JOURNAL, problem[0], problem[1], ExitStatus.USAGE)
        return journal

    def close(self) -> None:
        self.journal.close()

    # ------------------------------------------------------------ the whole run
    def run(self) -> Iterator[dict[str, Any]]:
        try:
            yield from self.inventory()
            if self.fatal is None:
                yield from self.transfer()
            if self.fatal is None:
                # With --commit, studies verified by an earlier run without it are committed now.
                yield from self.verify(
                    states=("sent", "failed", "retrieved", "planned") + (("verified",) if self.options.commit else ())
                )
        finally:
            self.journal.set_meta(last_run=self.options.clock())

    def verify_only(self) -> Iterator[dict[str, Any]]:
        """The inventory (where not done yet: a fresh journal verifies the whole source), then every
        study of the journal reconciled again; nothing is transferred."""
        yield from self.inventory()
        if self.fatal is None:
            yield from self.verify(states=None, again=True)

    # ------------------------------------------------------------ inventory
    def inventory(self) -> Iterator[dict[str, Any]]:
        if self.source.folder is not None:
            inv: Any = FolderInventory(self.source.folder, self.journal)
        else:
            inv = PacsInventory(
                self.source.peer,
                self.net,
                self.journal,
                since=self.options.since,
                until=self.options.until,
                max_results=self.options.max_results,
                modalities=self.options.modalities,
                today=lambda: __import__("datetime").date.fromtimestamp(self.options.clock()),
            )
        try:
            yield from inv.run()
        except DcmtoolsError as exc:
            if exc.exit_status not in PEER_FAILURES:
                raise
            self.fatal = exc
            yield error_record("migrate", exc, step="inventory", peer=str(self.source))
        self.inventory_problems += inv.failed + inv.incomplete
        if self.options.shard is not None:
            # The inventory sees every study; this shard keeps its own (the same key as --shard of the
            # per-file commands: a study is on the same shard in both).
            shard = self.options.shard
            self.journal.drop(item.id for item in self.journal.items() if not shard.owns(f"study:{item.id}"))

    # ------------------------------------------------------------ transfer
    def transfer(self) -> Iterator[dict[str, Any]]:
        """Every study not sent yet (failed ones while attempts are left), ``associations`` at a time.
        Failed studies are tried again in further passes until none is left to try."""
        transfer = Transfer(self)
        workers = max(1, self.options.associations)
        try:
            yield from self._transfer(transfer, workers)
        finally:
            transfer.close()
        if self.fatal is not None:
            yield error_record(
                "migrate",
                self.fatal,
                step="transfer",
                peer=self.fatal.details.get("peer", ""),
                hint_resume="run the same command again once the peer is back: it resumes",
            )

    def _transfer(self, transfer: Transfer, workers: int) -> Iterator[dict[str, Any]]:
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="migrate") as pool:
            while self.fatal is None:
                started = 0
                pending: set[cf.Future[Any]] = set()
                for item in self.journal.items(states=TO_TRANSFER, max_attempts=self.options.max_attempts):
                    if self.fatal is not None:
                        break
                    self.pacer.wait(int(item.data.get("instances") or 0))
                    while len(pending) >= 2 * workers:
                        done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                        for future in done:
                            yield future.result()
                    if self.fatal is not None:
                        break
                    pending.add(pool.submit(self._one, transfer, item, _iso(self.options.clock())))
                    started += 1
                for future in cf.as_completed(pending):
                    yield future.result()
                if not started:
                    break

    def _one(self, transfer: Transfer, item: Any, started: str) -> dict[str, Any]:
        attempt = self.journal.begin(item.id)
        base = {
            "type": "study",
            "study": item.id,
            "patient": item.data.get("patient", ""),
            "attempt": attempt,
            "started": started,
        }

        def mark(state: str, data: dict[str, Any]) -> None:
            self.journal.set_state(item.id, state, data=data)

        try:
            outcome = transfer.study(item, mark)
        except DcmtoolsError as exc:
            if exc.exit_status in PEER_FAILURES:
                # The peer failed, not the study: the attempt does not count; the run stops.
                self.journal.undo_attempt(item.id, exc.as_error())
                if self.fatal is None:
                    self.fatal = exc
                return error_record("study", exc, **base, state=(self.journal.get(item.id) or item).state)
            outcome = Outcome(False, error=exc.as_error())
        except Exception as exc:  # noqa: BLE001 - one study's surprise must not end the migration
            outcome = Outcome(False, error={"code": ErrorCode.INTERNAL, "message": f"{type(exc).__name__}: {exc}"})
        self.pacer.account(outcome.instances, outcome.size)
        if outcome.ok:
            self.journal.set_state(item.id, "sent", data={"instances_sent": outcome.instances, **outcome.detail})
            self.journal.clear_error(item.id)
            self.transferred["studies"] += 1
            self.transferred["instances"] += outcome.instances
            return {**base, "state": "sent", "instances": outcome.instances, "mode": self.mode, "ok": True}
        error = outcome.error or {"code": "transfer_failed", "message": "failed"}
        self.journal.set_state(item.id, "failed", error=error, data=outcome.detail or None)
        self.transferred["failed"] += 1
        left = self.options.max_attempts - attempt
        record = {**base, "state": "failed", "mode": self.mode, **outcome.detail, "ok": False, "error": error}
        record["attempts_left"] = max(left, 0)
        return record

    # ------------------------------------------------------------ verification
    def _counters(self) -> tuple[Any, Any]:
        uids = self.options.uids
        src = (
            FolderCounter(self.source.folder, self.journal, uids)
            if self.source.folder is not None
            else PacsCounter(self.source.peer, self.net, uids)
        )
        if self.dest.is_web:
            from .verify import WebCounter

            dst: Any = WebCounter(self.dest.web, uids)
        else:
            dst = (
                FolderCounter(self.dest.folder, None, uids)
                if self.dest.folder is not None
                else PacsCounter(self.dest.peer, self.net, uids)
            )
        return src, dst

    def verify(self, states: tuple[str, ...] | None, again: bool = False) -> Iterator[dict[str, Any]]:
        """Reconcile the studies in ``states`` (all with ``again``): verified when the destination
        holds every instance of the source; otherwise the record says what is missing and why."""
        src, dst = self._counters()
        committer = None
        if self.options.commit:
            from .commit import Committer

            committer = Committer(self.dest.peer, self.net, dst, port=self.options.port, wait=self.options.commit_wait)
        try:
            for item in self.journal.items(states=states):
                if item.state == "verified" and not again and item.data.get("committed"):
                    continue  # verified and committed by an earlier run
                try:
                    record = self._reconcile(src, dst, item)
                except DcmtoolsError as exc:
                    if exc.exit_status in PEER_FAILURES:
                        self.fatal = exc
                        yield error_record("migrate", exc, step="verify")
                        return
                    yield error_record("verify", exc, study=item.id)
                    continue
                if record["ok"] and committer is not None:
                    try:
                        self._commit(committer, item, record)
                    except DcmtoolsError as exc:
                        self.fatal = exc
                        yield error_record("migrate", exc, step="commit", peer=str(self.dest))
                        return
                if item.data.get("changed"):
                    record["destination_studies"] = _dest_studies(item)
                self.verify_counts[record["result"]] += 1
                record["state_before"] = item.state
                self._settle(item, record, committed=committer is not None)
                yield record
        finally:
            src.close()
            dst.close()

    def _reconcile(self, src: Any, dst: Any, item: Item) -> dict[str, Any]:
        """The comparison of what the source and the destination hold of one study."""
        from .verify import Holding

        if not self.options.uids and item.data.get("instances") is not None and item.data.get("series") is not None:
            source = Holding(True, item.data["series"], item.data["instances"])
        else:
            source = src.holding(item.id, item)
        dest = _dest_holding(dst, item)
        source = _as_changed(source, item)
        record = compare(item.id, source, dest)
        # A destination may index what it has just received a moment after answering the
        # C-STORE (dcmqrscp, Orthanc's jobs): a study just sent gets a few more looks.
        for delay in RECHECK if item.state == "sent" else ():
            if record["ok"]:
                break
            self.options.sleep(delay)
            try:
                dest = _dest_holding(dst, item)
            except DcmtoolsError:
                break
            record = compare(item.id, source, dest)
        return record

    @staticmethod
    def _commit(committer: Any, item: Item, record: dict[str, Any]) -> None:
        """Storage Commitment of a study found complete; raises the errors that end the run."""
        try:
            committed, fields = committer.study(item.id, _dest_studies(item))
        except DcmtoolsError as exc:
            if exc.exit_status in PEER_FAILURES:
                raise
            committed, fields = False, {"error": exc.as_error()}
        record.update(fields)
        if not committed:
            # Counted, but the destination does not commit to keep it: not verified.
            record.update(result="not_committed", ok=False, counted=record["result"])

    def _settle(self, item: Item, record: dict[str, Any], committed: bool) -> None:
        """The study's state in the journal after its verification (and in its record)."""
        if record["ok"]:
            if item.state != "verified" or committed:
                data = {"verified": record["destination"]}
                if committed:
                    data.update(committed=True, commitment=record["commitment"])
                self.journal.set_state(item.id, "verified", data=data)
            record["state"] = "verified"
            return
        if item.last_error and item.state == "failed":
            record["error"]["transfer_error"] = item.last_error.get("message")
        if record["result"] == "not_committed" and record["error"].get("code") == "commit_pending":
            # No report (yet): it was sent and counted; ask again on the next run, send nothing.
            self.journal.set_state(
                item.id,
                "sent",
                error=record["error"],
                data={"committed": False, "commitment": record.get("commitment")},
            )
            record["state"] = "sent"
        elif item.state in ("verified", "sent"):
            # It was there, or was said to be sent: send it again on the next run.
            self.journal.set_state(item.id, "failed", error=record["error"])
            record["state"] = "failed"
        else:
            record["state"] = item.state

    # ------------------------------------------------------------ how it ended
    @property
    def exit_status(self) -> int:
        if self.fatal is not None:
            return int(self.fatal.exit_status)
        counts = self.journal.counts()
        if self.inventory_problems or any(n for state, n in counts.items() if state != "verified"):
            return int(ExitStatus.FAILED)
        return int(ExitStatus.OK)

    def summary(self) -> dict[str, Any]:
        counts = self.journal.counts()
        return {
            "source": str(self.source),
            "destination": str(self.dest),
            "mode": self.mode,
            "journal": self.journal_path,
            "studies": sum(counts.values()),
            "states": {state: counts.get(state, 0) for state in STATES if counts.get(state)},
            "transferred": dict(self.transferred),
            "verification": dict(self.verify_counts),
            "inventory_problems": self.inventory_problems,
            "paused_seconds": round(self.pacer.paused, 1),
        }


def _dest_studies(item: Any) -> list[str]:
    """The Study Instance UIDs the destination holds the study under (new ones when changed in flight)."""
    changed = item.data.get("changed")
    return list(changed.get("studies") or [item.id]) if changed else [item.id]


class _Changed:
    """The journal item as the destination knows it (its new Patient ID, for a folder's layout)."""

    def __init__(self, item: Any) -> None:
        self.id = item.id
        self.data = {**item.data, "patient": item.data["changed"].get("patient", "")}


def _dest_holding(dst: Any, item: Any) -> Any:
    """What the destination holds of a study: under its own UID, or, changed in flight, under the new
    UID(s) the journal keeps (added up when an edit split it)."""
    from .verify import Holding

    if not item.data.get("changed"):
        return dst.holding(item.id, item)
    shown = _Changed(item)
    parts = [dst.holding(uid, shown) for uid in _dest_studies(item)]
    uids = None if any(p.uids is None for p in parts) else set().union(*(p.uids for p in parts))
    return Holding(
        any(p.found for p in parts), sum(p.series or 0 for p in parts), sum(p.instances or 0 for p in parts), uids
    )


def _as_changed(source: Any, item: Any) -> Any:
    """The source's SOP Instance UIDs (--uids) as the destination should hold them (the journal's mapping)."""
    changed = item.data.get("changed")
    if not changed or source.uids is None:
        return source
    sop = changed.get("sop") or {}
    from .verify import Holding

    return Holding(source.found, source.series, source.instances, {sop.get(u, u) for u in source.uids})


def _iso(when: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(when).isoformat(timespec="seconds")


def status(journal: str | os.PathLike[str]) -> dict[str, Any]:
    """The state of a migration from its journal alone: counts per state, throughput (studies
    verified per second over the last 10 minutes of activity), ETA, the plan's units."""
    path = os.fspath(journal)
    if not os.path.exists(path):
        raise DcmtoolsError(
            MigrateErrorCode.JOURNAL, f"no journal at {path!r}", "give the `journal` of a migration", ExitStatus.USAGE
        )
    try:
        with Journal(path, create=False) as j:
            kind = j.meta("kind")
            if kind not in (None, "migrate"):
                raise JournalError(f"{path!r} is the journal of a {kind} run")
            state = j.status(done=("verified",))
            plan = j.plan_counts()
            record = {
                "type": "status",
                "journal": path,
                "source": j.meta("source"),
                "destination": j.meta("dest"),
                "studies": state["total"],
                "states": {s: state["counts"].get(s, 0) for s in STATES},
                "left": state["left"],
                "rate_studies_per_s": state["rate"],
                "eta_seconds": state["eta_seconds"],
                "inventory": plan,
                "last_run": j.meta("last_run"),
                "ok": True,
            }
            for name, n in state["counts"].items():
                if name not in STATES:
                    record["states"][name] = n
            return record
    except JournalError as exc:
        raise DcmtoolsError(MigrateErrorCode.JOURNAL, str(exc), None, ExitStatus.USAGE) from None
