"""Gathering the journals of shards (``--shard K/N``) into one: ``merge``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

from .journal import PAGE, Item, Journal


def merge(
    target: str | os.PathLike[str], sources: Iterable[str | os.PathLike[str]], *, rank: Sequence[str] = ()
) -> dict[str, int]:
    """Gather shard journals into ``target``: every item once; where two journals hold the same
    id, the state that comes later in ``rank`` wins (else the most recently changed).  Plan
    units and meta are copied (meta of the target is kept).  Returns the target's counts."""
    order = {state: n for n, state in enumerate(rank)}
    with Journal(target) as out:
        for source in sources:
            with Journal(source, create=False) as src:
                if out.meta("kind") is None and src.meta("kind") is not None:
                    out.set_meta(**src.all_meta())
                batch: list[Item] = []
                for item in src.items():
                    batch.append(item)
                    if len(batch) >= PAGE:
                        _merge_batch(out, batch, order)
                        batch = []
                if batch:
                    _merge_batch(out, batch, order)
                with src._lock:
                    plan = src._db.execute("SELECT key, state, data, updated FROM plan").fetchall()
                with out.transaction():
                    out._db.executemany(
                        "INSERT INTO plan (key, state, data, updated) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                        "state = CASE WHEN plan.state = 'done' THEN 'done' ELSE excluded.state END",
                        plan,
                    )
        return out.counts()


def _merge_batch(out: Journal, batch: list[Item], order: dict[str, int]) -> None:
    with out.transaction():
        for item in batch:
            row = out._db.execute("SELECT state, updated FROM items WHERE id = ?", (item.id,)).fetchone()
            if row is not None:
                mine, theirs = order.get(row[0], -1), order.get(item.state, -1)
                if mine > theirs or (mine == theirs and row[1] >= item.updated):
                    continue
            out._db.execute(
                "INSERT INTO items (id, state, attempts, last_error, data, updated) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, attempts = MAX(attempts, excluded.attempts), "
                "last_error = excluded.last_error, data = excluded.data, updated = excluded.updated",
                (
                    item.id,
                    item.state,
                    item.attempts,
                    json.dumps(item.last_error) if item.last_error else None,
                    json.dumps(item.data) if item.data else None,
                    item.updated,
                ),
            )
            out._event(item.state, 1)
