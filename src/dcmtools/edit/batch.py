"""Editing many files, in worker processes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .editor import Editor

_BATCH: tuple[Editor, dict[str, Any]] | None = None


def _batch_job(job: tuple[Any, ...]) -> list[dict[str, Any]]:
    path, out, error = job
    if error is not None:
        return [error]
    assert _BATCH is not None
    editor, options = _BATCH
    try:
        return editor.edit_file(path, out, **options)
    except Exception as exc:  # a bug must not stop the batch
        message = f"internal error: {type(exc).__name__}: {exc} (this is a bug in dcmtools; please report it)"
        return [error_record("file", DcmtoolsError(ErrorCode.INTERNAL, message), path=path)]


def edit_paths(
    editor: Editor,
    jobs_in: Iterable[tuple[Any, ...]],
    *,
    jobs: int = 1,
    in_place: bool = False,
    backup: bool = True,
    overwrite: bool = False,
    dry_run: bool = False,
) -> Iterator[list[dict[str, Any]]]:
    """Edit ``(path, out or None, error record or None)`` jobs in order over ``jobs`` processes.

    Yields the records of each job (``Editor.edit_file``).  Jobs come from
    ``dcmtools.deid.plan_jobs`` (with an output folder) or are
    ``(path, None, None)`` in place.
    """
    from ..stream.parallel import map_ordered

    global _BATCH
    _BATCH = (editor, {"in_place": in_place, "backup": backup, "overwrite": overwrite, "dry_run": dry_run})
    try:
        yield from map_ordered(_batch_job, jobs_in, jobs)
    finally:
        _BATCH = None
