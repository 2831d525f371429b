"""dcmtools: composable DICOM command-line tools on one library.

The library modules import neither typer nor (at import time) pydicom,
pynetdicom or numpy, so the command line starts fast.  Each command is also a
Python function; see the module of each command (e.g. ``dcmtools.dump``).
"""

__version__ = "0.1.0"

from .dicom.deferred import install as _defer_unused_imports

# Before anything here imports pydicom: its pixel machinery loads at first use (dicom/deferred.py).
_defer_unused_imports()
