"""What shell completion offers after each option and argument (scripts/gen_docs.py writes completions/ from it).

- Options typed click.Choice (``listen --commit-report``) complete their choices.
- Options that take free text with a fixed set of named values (a level, a
  transfer syntax name, a film size) are listed in ``named_values``, the values
  taken from where the library defines them, so that they cannot drift.
- PEER arguments and peer-valued options complete the names of the peers file
  (``peer_options``, ``peer_arguments``); paths complete files, DIR options folders;
  every other value (an AE title, a number) completes nothing.

Not imported by the commands: only the docs generator and the tests use it.
"""

from __future__ import annotations

from typing import Any

ANY = "*"  # the option of every command that has it


def named_values() -> dict[tuple[str, str], tuple[str, ...]]:
    """(command or ANY, option) -> the values shell completion offers."""
    from ..dicom import codecs
    from ..edit.values import LEVELS as UID_LEVELS
    from ..net.keys import FIND, LEVEL_NAMES
    from ..printing import options as film
    from ..render.options import FORMATS
    from . import verify_display

    return {
        ("transcode", "--to"): tuple(codecs.target_names()),
        (ANY, "--level"): tuple(LEVEL_NAMES),
        (ANY, "--model"): tuple(FIND),
        (ANY, "--new-uids"): UID_LEVELS,
        (ANY, "--charset"): ("utf8",),
        ("print", "--film-size"): tuple(film.FILM_SIZES),
        ("print", "--orientation"): film.ORIENTATIONS,
        ("print", "--priority"): film.PRIORITIES,
        ("print", "--medium"): film.MEDIUM_TYPES,
        ("print", "--destination"): film.DESTINATIONS,
        ("print", "--magnification"): film.MAGNIFICATION_TYPES,
        ("print", "--polarity"): film.POLARITIES,
        ("print", "--bits"): film.BITS_CHOICES,
        ("print", "--border-density"): ("BLACK", "WHITE"),
        ("print", "--empty-density"): ("BLACK", "WHITE"),
        ("send", "--priority"): ("0", "1", "2"),
        ("render", "--format"): FORMATS,
        ("render", "--bits"): ("8", "16"),
        ("verify-display", "--class"): verify_display._CLASSES,
        ("verify-display", "--format"): ("auto", *verify_display._FORMATS),
        ("verify-display", "--pattern-bits"): ("8", "10", "12", "16"),
    }


# Options whose value is a peer: a name of the peers file (or AET@HOST:PORT, which is not completed).
peer_options: dict[str, tuple[str, ...]] = {"listen": ("--allow", "--commit-report-to")}
# Arguments that are peers.
peer_arguments = ("peer", "source", "dest")
# Metavars of options that take a path: FILE completes files, DIR folders.
FILE_METAVARS = ("FILE",)
DIR_METAVARS = ("DIR",)


def option_values(command: str, param: Any, table: dict[tuple[str, str], tuple[str, ...]]) -> tuple[str, Any]:
    """What to complete after ``param`` of ``command``: ("choices", values), ("peers", None),
    ("files", None), ("dirs", None) or ("none", None)."""
    choices = getattr(param.type, "choices", None)
    if choices:
        return "choices", tuple(str(c) for c in choices)
    for name in param.opts:
        values = table.get((command, name)) or table.get((ANY, name))
        if values:
            return "choices", tuple(values)
        if name in peer_options.get(command, ()):
            return "peers", None
    type_name = type(param.type).__name__
    if param.metavar in DIR_METAVARS:
        return "dirs", None
    if param.metavar in FILE_METAVARS or "Path" in type_name:
        return "files", None
    return "none", None
