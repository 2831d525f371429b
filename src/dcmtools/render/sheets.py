"""One thumbnail per series, and a contact sheet of labelled tiles."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..stream.outputs import Mirror, write_atomic
from ..stream.records import DcmtoolsError, error_record
from .options import THUMBNAIL_SIZE, RenderOptions, output_base
from .output import fit, to_pil
from .pipeline import _first, _read
from .work import _internal, _work, display_frames, plan

if TYPE_CHECKING:
    from ..stream.inputs import InputItem


@dataclass
class _Series:
    uid: str
    paths: list[tuple[float, str]] = field(default_factory=list)


def _header(path: str) -> dict[str, Any]:
    """Series UID and instance number of ``path``, or an error record."""
    import pydicom

    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID", "InstanceNumber", "PixelData"]
        )
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        number = _first(ds.get("InstanceNumber"))
        return {"uid": uid or f"no-series:{path}", "number": number if number is not None else 0.0}
    except Exception:
        try:
            _read(path)  # its reader says why in the user's words
        except DcmtoolsError as exc:
            return error_record("file", exc, path=path)
        return {"uid": f"no-series:{path}", "number": 0.0}


def thumbnails(
    items: Iterable[InputItem],
    out_dir: str | os.PathLike[str],
    args: Iterable[str] | None,
    options: RenderOptions,
    jobs: int,
) -> Iterator[dict[str, Any]]:
    """One image per series (its middle instance by Instance Number, the middle frame), ``size`` 256 px by default.

    Only the series' paths are kept while the headers are read; the records
    are ``{"type": "series", "series_uid", "instances", "path", "out"}``.
    """
    from ..stream.parallel import map_ordered

    series: dict[str, _Series] = {}
    for entry in plan(items, out_dir, args):
        if isinstance(entry, dict):
            yield entry
            continue
        header = _header(entry[0])
        if "ok" in header:
            yield header
            continue
        series.setdefault(header["uid"], _Series(header["uid"])).paths.append((header["number"], entry[0]))
    mirror = Mirror(out_dir, list(args or []))
    options = replace(options, size=options.size or (THUMBNAIL_SIZE, THUMBNAIL_SIZE), middle_frame=True)

    def jobs_of() -> Iterator[tuple[str, str, RenderOptions]]:
        for s in series.values():
            s.paths.sort()
            path = s.paths[(len(s.paths) - 1) // 2][1]
            yield path, output_base(mirror(path)), options

    for s, record in zip(series.values(), map_ordered(_work, jobs_of(), jobs), strict=True):
        record["type"] = "series"
        record["series_uid"] = "" if s.uid.startswith("no-series:") else s.uid
        record["instances"] = len(s.paths)
        yield record


# ------------------------------------------------------------------ contact sheet

TILE = 256
LABEL_LINE = 14


def _tile(job: tuple[str, RenderOptions]) -> dict[str, Any]:
    """A tile (RGB bytes) and its label lines for the contact sheet, or an error record."""
    path, opts = job
    try:
        import numpy as np

        try:
            ds = _read(path)
            number, image, applied = next(display_frames(ds, path, opts))
        except DcmtoolsError as exc:
            return error_record("file", exc, path=path)
        img = fit(to_pil(image), opts.size or (TILE, TILE)).convert("RGB")
        labels = []
        for keyword in opts.labels:
            value = ds.get(keyword, "")
            value = getattr(value, "value", value)
            if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
                value = "\\".join(str(v) for v in value)
            labels.append(str(value))
        return {
            "type": "file",
            "path": path,
            "ok": True,
            "frame": number,
            "labels": labels,
            "pixels": np.asarray(img).tobytes(),
            "width": img.size[0],
            "height": img.size[1],
            "mean": float(np.asarray(img).mean()),
        }
    except Exception as exc:
        return _internal(path, exc)


def contact_sheet(
    items: Iterable[InputItem],
    sheet: str,
    options: RenderOptions,
    *,
    jobs: int = 1,
    columns: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Draw the inputs as labelled tiles in a grid and write the PNG ``sheet``.

    The paths are listed first (to size the grid); the images are then
    rendered one at a time (``jobs`` in parallel) and pasted, so only the
    sheet itself is held in memory. Yields one record per input, then a
    ``{"type": "sheet", "out", "tiles", "columns", "rows", "width", "height"}``
    record.
    """
    from PIL import Image, ImageDraw, ImageFont

    from ..stream.parallel import map_ordered

    paths: list[str] = []
    for item in items:
        if item.error is not None:
            yield error_record("file", item.error, path=item.path)
        elif os.path.realpath(item.path) != os.path.realpath(sheet):
            paths.append(item.path)
    tile_w, tile_h = options.size or (TILE, TILE)
    options = replace(options, size=(tile_w, tile_h), middle_frame=options.frame is None)
    cols = columns or max(1, math.ceil(math.sqrt(len(paths))))
    label_h = LABEL_LINE * len(options.labels) + (4 if options.labels else 0)
    cell_w, cell_h = tile_w + 4, tile_h + label_h + 4
    font = ImageFont.load_default()
    tiles: list[dict[str, Any]] = []
    canvas = None
    placed = 0
    for record in map_ordered(_tile, ((p, options) for p in paths), jobs):
        if not record.get("ok"):
            yield record
            continue
        if canvas is None:
            rows = max(1, math.ceil(len(paths) / cols))
            canvas = Image.new("RGB", (cols * cell_w, rows * cell_h), (0, 0, 0))
            draw = ImageDraw.Draw(canvas)
        x, y = (placed % cols) * cell_w + 2, (placed // cols) * cell_h + 2
        tile = Image.frombytes("RGB", (record["width"], record["height"]), record.pop("pixels"))
        canvas.paste(tile, (x + (tile_w - tile.size[0]) // 2, y + (tile_h - tile.size[1]) // 2))
        for line, text in enumerate(record.get("labels", [])):
            draw.text((x + 2, y + tile_h + 2 + line * LABEL_LINE), text[:40], fill=(255, 255, 0), font=font)
        record["tile"] = [x, y, tile_w, tile_h]
        placed += 1
        tiles.append(record["tile"])
        yield record
    if canvas is None:
        return
    used_rows = math.ceil(placed / cols)
    if used_rows * cell_h < canvas.size[1]:  # tiles that failed leave no empty rows
        canvas = canvas.crop((0, 0, canvas.size[0], used_rows * cell_h))
    write_atomic(sheet, lambda stream: canvas.save(stream, format="PNG"), options.overwrite)
    yield {
        "type": "sheet",
        "ok": True,
        "out": sheet,
        "tiles": placed,
        "columns": cols,
        "rows": used_rows,
        "width": canvas.size[0],
        "height": canvas.size[1],
        "tile_width": tile_w,
        "tile_height": tile_h,
    }
