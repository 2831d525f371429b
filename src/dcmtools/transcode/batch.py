"""Transcoding many inputs: which output each gets (``OutputPlan``), in worker processes, in input order."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..dicom import codecs
from ..dicom.codecs import Syntax
from ..stream.outputs import Mirror
from ..stream.records import DcmtoolsError, ErrorCode, error_record, internal_error
from .options import TranscodeOptions, options_for

if TYPE_CHECKING:
    from ..stream.inputs import InputItem
from .work import transcode_file

# One input's work: (path, out, options), or its record already (an input that failed before any work).
Job = tuple[str, str, TranscodeOptions] | dict[str, Any]


def _work(job: tuple[str, str, TranscodeOptions]) -> dict[str, Any]:
    path, out, options = job
    try:
        return transcode_file(path, out, options)
    except BaseException as exc:  # a bug: never lose the batch over it
        codecs.reraise_interrupt(exc)
        if not isinstance(exc, Exception):  # a panic in a codec (pyo3 PanicException)
            error = DcmtoolsError(ErrorCode.CANNOT_DECODE, f"a codec failed on {path}: {type(exc).__name__}: {exc}")
            return error_record("file", error, path=path, out=out)
        if raised_in_pydicom(exc):
            # pydicom converts values lazily: an unknown VR or a value of the wrong size in the
            # input surfaces when an element is first used.  The data's fault, not ours.
            error = DcmtoolsError(
                ErrorCode.INVALID,
                f"{path} holds an element pydicom cannot read: {codecs._first_line(exc)}",
                hint="'dcmtools dump' shows the file as it is",
            )
            return error_record("file", error, path=path, out=out)
        return error_record("file", internal_error(path, exc), path=path, out=out)


def raised_in_pydicom(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc`` is pydicom's (reading the input's values)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}pydicom{os.sep}" in tb.tb_frame.f_code.co_filename


def transcode(
    inputs: Iterable[str],
    to: str | Syntax,
    out_dir: str | os.PathLike[str],
    *,
    jobs: int = 1,
    files_from: str | None = None,
    null: bool = False,
    **option_values: Any,
) -> Iterator[dict[str, Any]]:
    """Transcode ``inputs`` (files, folders, globs) into ``out_dir``; yield one record per input.

    ``to`` is a syntax name (``explicit``, ``rle``, ``jpeg-ls``, ``j2k`` ...)
    or a UID; ``option_values`` are those of ``options_for`` (``error``,
    ``ratio``, ``quality``, ``verify``, ``keep_uid``, ``overwrite``).
    ``jobs`` worker processes (0 = all cores); records come in input order.
    """
    from ..stream.inputs import iter_inputs
    from ..stream.parallel import resolve_jobs

    options = options_for(to, **option_values)
    inputs = list(inputs)
    items = iter_inputs(inputs, files_from=files_from, null=null, read_stdin_when_piped=False)
    yield from run_plan(OutputPlan(items, out_dir, inputs), options, resolve_jobs(jobs))


class OutputPlan:
    """``(path, out, error_record)`` for each input item, outputs mirrored under ``out_dir``.

    The output path comes from ``outputs.Mirror`` (the tree below each INPUTS
    argument).  Files inside the output folder are skipped and counted in
    ``skipped_inside_output`` (a second run does not take its own outputs as
    inputs); a second input mapped to an output of the same run is an
    ``exists`` error (it would replace the first with --overwrite).
    """

    def __init__(self, items: Iterable[InputItem], out_dir: str | os.PathLike[str], args: Iterable[str] | None) -> None:
        self.items = items
        self.mirror = Mirror(out_dir, list(args or []))
        self.out_real = os.path.realpath(os.fspath(out_dir))
        self.skipped_inside_output = 0

    def __iter__(self) -> Iterator[tuple[str, str | None, dict[str, Any] | None]]:
        seen: set[str] = set()
        prefix = self.out_real.rstrip(os.sep) + os.sep
        for item in self.items:
            if item.error is not None:
                yield item.path, None, error_record("file", item.error, path=item.path)
                continue
            real = os.path.realpath(item.path)
            if real == self.out_real or real.startswith(prefix):
                self.skipped_inside_output += 1
                continue
            out = self.mirror(item.path)
            key = os.path.normpath(os.path.abspath(out))
            if key in seen:
                error = DcmtoolsError(
                    ErrorCode.EXISTS,
                    f"another input of this run is written to {out} already",
                    hint="give inputs whose paths below their folders differ, or transcode them into separate folders",
                )
                yield item.path, None, error_record("file", error, path=item.path, out=out)
                continue
            seen.add(key)
            yield item.path, out, None


def run_plan(
    plan: Iterable[tuple[str, str | None, dict[str, Any] | None]], options: TranscodeOptions, jobs: int
) -> Iterator[dict[str, Any]]:
    """Records for every entry of a plan, input errors included, in input order."""
    from ..stream.parallel import map_ordered

    def jobs_of() -> Iterator[Job]:
        for path, out, error in plan:
            if error is not None:
                yield error
            else:
                assert out is not None  # a plan gives an output to every input without an error
                yield (path, out, options)

    yield from map_ordered(_work_or_pass, jobs_of(), jobs, lost=_lost, again=_again)


def _again(job: Job, record: dict[str, Any]) -> Job | None:
    """--cluster: an output that "exists" may be this run's own attempt lost with its worker."""
    if isinstance(job, tuple) and (record.get("error") or {}).get("code") == ErrorCode.EXISTS:
        from dataclasses import replace

        return (job[0], job[1], replace(job[2], overwrite=True))
    return None


def _lost(job: Job, reason: str) -> dict[str, Any]:
    if isinstance(job, dict):
        return job
    path, out, _ = job
    error = DcmtoolsError(ErrorCode.WORKER_DIED, reason, hint="try it alone with `jobs` 1")
    return error_record("file", error, path=path, out=out)


def _work_or_pass(job: Job) -> dict[str, Any]:
    if isinstance(job, dict):
        return job
    return _work(job)
