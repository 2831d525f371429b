"""Library messages in the command line's spelling.

The library names an option by its keyword in backquotes (``give the ambient
luminance with `ambient```), so that its messages read right from Python too;
a command prints them with its own spelling of that option (``--ambient``).
"""

import contextlib
import re
from collections.abc import Iterator
from typing import Any

_OPTION = re.compile(r"`([a-z][a-z0-9_]*)`")
_TEXT_KEYS = frozenset(("message", "hint", "warning", "warnings"))
# Where a record of the library carries words: its own texts, its error, and listen's "access" sentence.
_WORD_FIELDS = (*_TEXT_KEYS, "error", "access")


def spell(text: str, flags: dict[str, str] | None = None) -> str:
    """``text`` with each `keyword` as its option: ``flags[keyword]``, else ``--key-word``."""
    table = flags or {}
    return _OPTION.sub(lambda m: table.get(m[1], "--" + m[1].replace("_", "-")), text)


def spell_record(record: Any, flags: dict[str, str] | None = None) -> Any:
    """A record with its messages, hints and warnings (at any depth) spelled by ``spell``."""
    if isinstance(record, dict):
        return {
            key: _spell_text(value, flags) if key in _TEXT_KEYS else spell_record(value, flags)
            for key, value in record.items()
        }
    if isinstance(record, list):
        return [spell_record(value, flags) for value in record]
    return record


def spell_fields(record: dict[str, Any], flags: dict[str, str] | None = None) -> dict[str, Any]:
    """``spell_record`` for every record a command writes: only the fields that carry words are
    spelled (a dataset is not walked), and a record without them is returned as it is."""
    fields = [key for key in _WORD_FIELDS if key in record]
    if not fields:
        return record
    out = dict(record)
    for key in fields:
        value = record[key]
        out[key] = _spell_text(value, flags) if key in _TEXT_KEYS or key == "access" else spell_record(value, flags)
    return out


def _spell_text(value: Any, flags: dict[str, str] | None) -> Any:
    if isinstance(value, str):
        return spell(value, flags)
    if isinstance(value, list):
        return [spell(v, flags) if isinstance(v, str) else spell_record(v, flags) for v in value]
    return spell_record(value, flags)


@contextlib.contextmanager
def spelled_errors(flags: dict[str, str] | None = None) -> Iterator[None]:
    """Spell the message and hint of a ``DcmtoolsError`` raised inside, before the command reports it."""
    from ..stream.records import DcmtoolsError

    try:
        yield
    except DcmtoolsError as exc:
        spell_error(exc, flags)
        raise


def spell_error(error: Any, flags: dict[str, str] | None = None) -> Any:
    """A ``DcmtoolsError`` with its message and hint spelled (in place); returned for convenience."""
    error.message = spell(error.message, flags)
    error.args = (error.message,)
    if error.hint:
        error.hint = spell(error.hint, flags)
    return error
