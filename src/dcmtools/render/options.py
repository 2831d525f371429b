"""What a render is asked to do: format, frame, VOI, size, overlays; parsing the window and size."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..stream.records import DcmtoolsError, ErrorCode

FORMATS = ("png", "jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic", ".ima")
THUMBNAIL_SIZE = 256


@dataclass
class RenderOptions:
    """What ``render_file`` is asked to do (picklable, for ``jobs``)."""

    format: str = "png"  # png | jpeg
    quality: int = 90  # JPEG quality 1-100
    bits: int = 8  # 8 or 16 (PNG greyscale only)
    frame: int | None = None  # 1-based frame number; None = every frame
    window: tuple[float, float] | None = None  # (center, width)
    minmax: bool = False
    voi_lut: int | None = None  # 1-based index into VOILUTSequence
    histogram: bool = False
    size: tuple[int, int] | None = None  # fit into this box (width, height)
    overlays: bool = False
    overwrite: bool = False
    labels: tuple[str, ...] = ()  # contact sheet: keywords under each tile
    middle_frame: bool = False  # thumbnails: the middle frame of a multi-frame image

    def __post_init__(self) -> None:
        if self.format == "jpg":
            self.format = "jpeg"
        if self.format not in FORMATS:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"unknown format {self.format!r}", hint="use png or jpeg")
        if self.bits not in (8, 16):
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`bits` must be 8 or 16, not {self.bits}")
        if self.bits == 16 and self.format == "jpeg":
            raise DcmtoolsError(ErrorCode.BAD_VALUE, "JPEG holds 8 bits only", hint="use `format` png with `bits` 16")
        if not 1 <= self.quality <= 100:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`quality` must be 1-100, not {self.quality}")
        chosen = [self.window is not None, self.minmax, self.voi_lut is not None, self.histogram]
        if sum(chosen) > 1:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, "choose one of `window`, `minmax`, `voi_lut` and `histogram`")
        if self.window is not None and self.window[1] < 1:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"the window width must be at least 1, not {self.window[1]}")
        if self.frame is not None and self.frame < 1:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, "`frame` counts from 1")
        if self.size is not None and (self.size[0] < 1 or self.size[1] < 1):
            raise DcmtoolsError(ErrorCode.BAD_VALUE, "`size` needs a width and a height of at least 1")

    @property
    def suffix(self) -> str:
        return ".jpg" if self.format == "jpeg" else ".png"


def parse_window(text: str) -> tuple[float, float]:
    """``"40,400"`` -> ``(40.0, 400.0)`` (center, width)."""
    try:
        center, width = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`window` takes CENTER,WIDTH (e.g. 40,400), not {text!r}") from None
    return center, width


def parse_size(text: str) -> tuple[int, int]:
    """``"512x512"`` or ``"256"`` -> ``(width, height)``."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise DcmtoolsError(ErrorCode.BAD_VALUE, f"`size` takes WxH (e.g. 512x512) or N, not {text!r}")
    return parts[0], parts[1]


def output_base(mirrored: str) -> str:
    """The output path without its suffix: ``a/ct1.dcm`` -> ``a/ct1``."""
    root, ext = os.path.splitext(mirrored)
    return root if ext.lower() in DICOM_SUFFIXES else mirrored
