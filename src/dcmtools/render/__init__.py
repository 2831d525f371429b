"""Rendering DICOM images to PNG or JPEG: the display pipeline of PS3.4.

``render_file(path, out_base, options)`` writes one image per frame (or the
frame asked for) and returns its record; ``render(inputs, out_dir)`` does it
for many inputs, ``jobs`` at a time, mirroring the input tree; ``thumbnails``
writes one small image per series; ``contact_sheet`` draws the inputs as
labelled tiles of one PNG:

    >>> from dcmtools.render import render, RenderOptions
    >>> for record in render(["study/"], "png/", RenderOptions(size=(512, 512)), jobs=0):
    ...     print(record["path"], record["ok"], record.get("out"))

The pipeline, in the order of PS3.4 (Grayscale and Color Transformations):

1. the modality LUT or Rescale Slope/Intercept (``pydicom.pixels.apply_modality_lut``);
2. the VOI: ``window=(C, W)``, ``voi_lut=N`` (the file's N-th VOI LUT,
   ``pydicom.pixels.apply_voi``), ``minmax`` or ``histogram``; by default the
   file's first window, else its first VOI LUT, else min-max. A window is
   applied with the formulas of PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT,
   SIGMOID), which are also those of DCMTK's dcmj2pnm;
3. the presentation LUT shape: MONOCHROME1 and INVERSE are inverted;
4. colour: PALETTE COLOR through its LUTs (``pydicom.pixels.apply_color_lut``),
   YBR_FULL / YBR_FULL_422 to RGB (``pydicom.pixels.convert_color_space``);
5. ``size=(W, H)``: the image is scaled to fit the box, aspect kept (Pillow);
6. ``overlays``: the 60xx overlay planes burned in, in white (before the
   scaling, so that they scale with the image).

Pixel data are decoded by the same codecs as ``transcode`` (``codecs``);
Pillow writes JPEG, scales and draws; PNG (8 or 16 bits) is written by
libpng through imagecodecs (3x faster than Pillow's), else by Pillow. A file without pixel
data, or whose pixel data cannot be decoded, becomes an error record.
"""

from __future__ import annotations

from .options import (
    DICOM_SUFFIXES,
    FORMATS,
    THUMBNAIL_SIZE,
    RenderOptions,
    output_base,
    parse_size,
    parse_window,
)
from .output import burn_overlays, fit, save, to_pil
from .pipeline import (
    apply_window,
    choose_voi,
    colour_pipeline,
    decode,
    display_values,
    file_window,
    grey_pipeline,
)
from .sheets import contact_sheet, thumbnails
from .work import display_frames, plan, render, render_file, run_render

__all__ = [
    "DICOM_SUFFIXES",
    "FORMATS",
    "THUMBNAIL_SIZE",
    "RenderOptions",
    "apply_window",
    "burn_overlays",
    "choose_voi",
    "colour_pipeline",
    "contact_sheet",
    "decode",
    "display_frames",
    "display_values",
    "file_window",
    "fit",
    "grey_pipeline",
    "output_base",
    "parse_size",
    "parse_window",
    "plan",
    "render",
    "render_file",
    "run_render",
    "save",
    "thumbnails",
    "to_pil",
]
