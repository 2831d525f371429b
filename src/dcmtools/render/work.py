"""Rendering one file, and many in worker processes with the outputs mirroring the inputs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..stream.outputs import Mirror, exists_error
from ..stream.records import DcmtoolsError, ErrorCode, error_record, internal_error
from .options import RenderOptions, output_base
from .output import burn_overlays, fit, save, to_pil
from .pipeline import _read, colour_pipeline, decode, grey_pipeline

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pydicom.dataset import Dataset

    from ..stream.inputs import InputItem

# One input's work: (path, output base, options), or its record already (an input that could not be read).
Job = tuple[str, str, RenderOptions] | dict[str, Any]


def display_frames(ds: Dataset, path: str, opts: RenderOptions) -> Iterator[tuple[int, NDArray[Any], dict[str, Any]]]:
    """``(frame_number, numpy display image, what was applied)`` for the frames asked for, before scaling."""
    arr, photometric, meta = decode(ds, path)
    count = arr.shape[0]
    if opts.frame is not None:
        if opts.frame > count:
            raise DcmtoolsError(
                ErrorCode.NO_IMAGE, f"{path} has {count} frame(s), not {opts.frame}", hint="leave out `frame`"
            )
        numbers = [opts.frame]
    elif opts.middle_frame:
        numbers = [count // 2 + 1]
    else:
        numbers = list(range(1, count + 1))
    colour = arr.ndim == 4 or photometric in ("PALETTE COLOR", "RGB") or photometric.startswith("YBR")
    if colour:
        selected = arr[[n - 1 for n in numbers]]
        display, applied = colour_pipeline(ds, selected, photometric, meta, opts)
    else:
        selected = arr[[n - 1 for n in numbers]]
        # A min-max window spans the frames rendered (as dcmj2pnm's +Wm over the frames it loads).
        display, applied = grey_pipeline(ds, selected, photometric, opts)
    applied["photometric"] = photometric
    for index, number in enumerate(numbers):
        image = display[index]
        if opts.overlays:
            image = image.copy()
            applied["overlays"] = burn_overlays(ds, image, 255 if image.dtype.itemsize == 1 else 65535)
        yield number, image, applied


def render_file(path: str, out_base: str, options: RenderOptions) -> dict[str, Any]:
    """Render one file to ``out_base.png`` (or ``out_base.fNNNN.png`` per frame); return its record.

    A failure is a record (``ok`` false), never an exception.
    """
    from ..transcode.work import file_record

    return file_record(path, lambda: _render(path, out_base, options), "render")


def _render(path: str, out_base: str, opts: RenderOptions) -> dict[str, Any]:
    ds = _read(path)
    count = int(ds.get("NumberOfFrames", 1) or 1) if "PixelData" in ds else 1
    outs: list[str] = []
    info: dict[str, Any] = {}
    per_frame = count > 1 and not opts.middle_frame
    for number, image, applied in display_frames(ds, path, opts):
        out = f"{out_base}.f{number:04d}{opts.suffix}" if per_frame else out_base + opts.suffix
        if os.path.lexists(out) and not opts.overwrite:
            raise exists_error(out)
        img = to_pil(image)
        if opts.size is not None:
            img = fit(img, opts.size)
        save(img, out, opts)
        outs.append(out)
        info = dict(applied, width=img.size[0], height=img.size[1])
        if opts.bits == 16 and image.ndim == 3:
            info["note"] = "colour is written with 8 bits per channel (16-bit PNG is for greyscale)"
    info.update(out=outs[0], frames=count)
    if len(outs) > 1:
        info["outs"] = outs
    return info


# ------------------------------------------------------------------ batches


def _work(job: tuple[str, str, RenderOptions]) -> dict[str, Any]:
    path, out_base, options = job
    try:
        return render_file(path, out_base, options)
    except Exception as exc:  # a bug: never lose the batch over it
        return _internal(path, exc)


def _internal(path: str, exc: BaseException) -> dict[str, Any]:
    return error_record("file", internal_error(path, exc), path=path)


def _work_or_pass(job: Job) -> dict[str, Any]:
    return job if isinstance(job, dict) else _work(job)


def plan(
    items: Iterable[InputItem], out_dir: str | os.PathLike[str], args: Iterable[str] | None
) -> Iterator[tuple[str, str] | dict[str, Any]]:
    """``(path, out_base)`` jobs, or the error record of an input that could not be read."""
    mirror = Mirror(out_dir, list(args or []))
    out_real = os.path.realpath(os.fspath(out_dir)).rstrip(os.sep) + os.sep
    for item in items:
        if item.error is not None:
            yield error_record("file", item.error, path=item.path)
            continue
        if os.path.realpath(item.path).startswith(out_real):
            continue  # our own outputs, from an earlier run
        yield item.path, output_base(mirror(item.path))


def run_render(
    items: Iterable[InputItem],
    out_dir: str | os.PathLike[str],
    args: Iterable[str] | None,
    options: RenderOptions,
    jobs: int,
) -> Iterator[dict[str, Any]]:
    """Records of every input item, in input order."""
    from ..stream.parallel import map_ordered

    def jobs_of() -> Iterator[Job]:
        for entry in plan(items, out_dir, args):
            yield entry if isinstance(entry, dict) else (entry[0], entry[1], options)

    yield from map_ordered(_work_or_pass, jobs_of(), jobs)


def render(
    inputs: Iterable[str],
    out_dir: str | os.PathLike[str],
    options: RenderOptions | None = None,
    *,
    jobs: int = 1,
) -> Iterator[dict[str, Any]]:
    """Render ``inputs`` (files, folders, globs) into ``out_dir``; yield one record per input."""
    from ..stream.inputs import iter_inputs
    from ..stream.parallel import resolve_jobs

    inputs = list(inputs)
    items = iter_inputs(inputs, read_stdin_when_piped=False)
    yield from run_render(items, out_dir, inputs, options or RenderOptions(), resolve_jobs(jobs))
