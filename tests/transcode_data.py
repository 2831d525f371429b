"""Test data for the transcode tests: pydicom's bundled files, sorted by what they hold."""

from __future__ import annotations

import os
import warnings
from functools import cache

import pydicom
from pydicom.data import get_testdata_file, get_testdata_files

# Files whose pixel data pydicom itself cannot decode: each must give a clean
# error record, never an output.
UNDECODABLE = {
    "JPEG-lossy.dcm": "cannot_decode",  # a known corrupt JPEG extended codestream
    "JPEG2000-embedded-sequence-delimiter.dcm": "cannot_decode",
    "MR_truncated.dcm": "truncated",
    "badVR.dcm": "cannot_decode",  # Number of Frames '1A'
}


def data_file(name: str) -> str:
    path = get_testdata_file(name)
    assert path, f"pydicom test file {name} is missing"
    return path


@cache
def image_files() -> tuple[str, ...]:
    """Every bundled file with pixel data that pydicom decodes."""
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(get_testdata_files()):
            if not os.path.isfile(path) or os.path.basename(path) in UNDECODABLE:
                continue
            try:
                ds = pydicom.dcmread(path)
                if "PixelData" not in ds:
                    continue
                _ = ds.pixel_array  # decodes, or raises: only decodable files
            except Exception:
                continue
            found.append(path)
    return tuple(found)


def pixels(path_or_ds):
    """The pixels as pydicom shows them (colour converted to RGB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = path_or_ds if isinstance(path_or_ds, pydicom.Dataset) else pydicom.dcmread(path_or_ds)
        return ds.pixel_array
