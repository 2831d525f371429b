"""The command line: one module per command, each registering on ``app``.

Command modules parse options and print records; the DICOM work is in the
library.  Nothing here imports pydicom, pynetdicom or numpy at import time.

Only the command being run is imported and registered (``dcmtools dump x``
does not build the other twelve), and none for ``dcmtools --version``: Python
start-up is the cost of every shell loop.  ``--help``, no command or an unknown
one register them all, and so does ``from dcmtools.cli import app``.
"""

import sys

# Command name -> its module (one line per command, kept sorted).
COMMANDS = {
    "anonymize": "anonymize",
    "commit": "commit",
    "dump": "dump",
    "echo": "echo",
    "edit": "edit",
    "find": "find",
    "journal": "journal",
    "listen": "listen",
    "migrate": "migrate",
    "move": "move",
    "print": "print_",
    "render": "render",
    "send": "send",
    "transcode": "transcode",
    "verify-display": "verify_display",
    "worklist": "worklist",
}


def load_commands(argv: list[str] | None = None):
    """Register the command named in ``argv`` (all of them when none is) and return the app."""
    from importlib import import_module

    argv = argv or []
    name = command_name(argv)
    if argv[:1] == ["--version"]:
        modules = []  # Click runs eager options in the order given: --version prints and exits first
    else:
        modules = [COMMANDS[name]] if name in COMMANDS else list(COMMANDS.values())
    for module in modules:
        import_module(f"{__name__}.{module}")
    from .application import app

    # Importing the submodule ``app`` bound the package attribute ``app`` to
    # the module: bind it to the Typer app when every command is on it, else
    # drop it so that ``__getattr__`` registers them all when it is asked for.
    if len(modules) < len(COMMANDS):
        globals().pop("app", None)
    else:
        globals()["app"] = app
    return app


def command_name(argv: list[str]) -> str | None:
    """The command in a command line: the first word that is not an option
    (the root's options, --version and --help, take no value)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def __getattr__(name: str):
    if name == "app":
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    from ..dicom.deferred import freeze_after_imports
    from .common import run_app

    freeze_after_imports()  # the objects pydicom and pynetdicom make at import live until we exit

    run_app(load_commands(sys.argv[1:]))
