"""The command line: one module per command, each registering on ``app``.

Command modules parse options and print records; the DICOM work is in the
library.  Nothing here imports pydicom, pynetdicom or numpy at import time.
"""

from __future__ import annotations

from .app import app

# Each import registers one command on ``app`` (one line per command, kept sorted).
from . import anonymize  # noqa: E402,F401
from . import commit  # noqa: E402,F401
from . import dump  # noqa: E402,F401
from . import echo  # noqa: E402,F401
from . import find  # noqa: E402,F401
from . import listen  # noqa: E402,F401
from . import move  # noqa: E402,F401
from . import print_  # noqa: E402,F401
from . import send  # noqa: E402,F401
from . import transcode  # noqa: E402,F401
from . import verify_display  # noqa: E402,F401
from . import worklist  # noqa: E402,F401


def main() -> None:
    from .common import run_app

    run_app(app)
