"""Overlays burned in, scaling, and the PNG or JPEG file."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

from ..stream.outputs import write_atomic
from .options import RenderOptions

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from PIL.Image import Image
    from pydicom.dataset import Dataset


def burn_overlays(ds: Dataset, image: NDArray[Any], out_max: int) -> int:
    """Set the pixels under every 60xx overlay plane to white; the number of planes burned."""

    burned = 0
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x3000) not in ds:
            continue
        try:
            plane = ds.overlay_array(group)
        except Exception:
            continue
        if plane.ndim == 3:
            plane = plane[0]
        origin = ds.get((group, 0x0050))
        row0, col0 = (int(origin.value[0]) - 1, int(origin.value[1]) - 1) if origin is not None else (0, 0)
        rows, cols = image.shape[:2]
        r0, c0 = max(0, row0), max(0, col0)
        r1, c1 = min(rows, row0 + plane.shape[0]), min(cols, col0 + plane.shape[1])
        if r1 <= r0 or c1 <= c0:
            continue
        mask = plane[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0].astype(bool)
        region = image[r0:r1, c0:c1]
        region[mask] = out_max
        burned += 1
    return burned


def to_pil(image: NDArray[Any]) -> Image:
    """A numpy display image -> a Pillow image (L, I;16 or RGB)."""
    import numpy as np
    from PIL import Image

    if image.ndim == 2:
        if image.dtype == np.uint16:
            return Image.fromarray(image.astype("<u2"), mode=None)
        return Image.fromarray(image, mode=None)
    if image.dtype != np.uint8:
        image = (image >> 8).astype(np.uint8)  # Pillow writes 8-bit RGB only
    return Image.fromarray(image, mode=None)


def fit(img: Image, size: tuple[int, int]) -> Image:
    """Scale a Pillow image to fit the box ``size`` (width, height), aspect kept."""
    from PIL import Image

    width, height = img.size
    scale = min(size[0] / width, size[1] / height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    if new == img.size:
        return img
    if img.mode == "I;16":  # Pillow resizes 16-bit through 32-bit integers
        return img.convert("I").resize(new, Image.Resampling.LANCZOS).convert("I;16")
    return img.resize(new, Image.Resampling.LANCZOS)


def save(img: Image, out: str, opts: RenderOptions) -> int:
    """Write ``img`` atomically to ``out``; its size in bytes."""

    def write(stream: BinaryIO) -> None:
        if opts.format == "jpeg":
            img.save(stream, format="JPEG", quality=opts.quality)
            return
        data = _png_libpng(img)
        if data is not None:
            stream.write(data)
        else:
            # zlib level 1 with the Z_RLE strategy (3): 2x faster than level 1 alone and
            # smaller files (medical images have long runs); level 6 is 5x slower.
            img.save(stream, format="PNG", compress_level=1, compress_type=3)

    write_atomic(out, write, opts.overwrite)
    return os.path.getsize(out)


def _png_libpng(img: Image) -> bytes | None:
    """The PNG of ``img`` by libpng through imagecodecs (a dependency for the codecs
    already), or None without it: with zlib level 1, Z_RLE and the SUB filter it
    encodes a 512x512 CT image in 1.6 ms against Pillow's 5.6 ms, files of equal size."""
    try:
        import imagecodecs
        import numpy as np

        if not imagecodecs.PNG.available:
            return None
        arr = np.asarray(img)
        if img.mode == "I;16":
            arr = arr.astype(np.uint16)
        return bytes(imagecodecs.png_encode(arr, level=1, strategy=3, filter=16))
    except Exception:  # an imagecodecs without the PNG codec, or one that refuses: Pillow writes it
        return None
