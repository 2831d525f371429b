"""Where a command's inputs come from: paths, folders, globs, stdin, files-from.

``iter_inputs`` turns the INPUTS of a command line into a stream of
``InputItem`` in a stable order:

* a file is itself; a folder is walked recursively (sorted, hidden files and
  folders skipped, symlinked folders not followed);
* an argument with ``*``, ``?`` or ``[`` that names no existing path is a glob
  expanded here (``**`` crosses folders), so ``'**/*.dcm'`` works quoted;
* ``-`` reads stdin; ``--files-from F`` reads F: one path per line, or one
  JSON record per line (another command's output: ``out`` is taken when
  present, else ``path``); with ``null=True`` entries are NUL-separated
  paths (``find -print0``);
* with no INPUTS and a piped stdin, stdin is read as if ``-`` were given.

Problems are items too (``item.error`` set): a missing path, a glob that
matched nothing, an unparsable line, a record that was itself a failure, a
folder with no files in it, and anything that is not a regular file (a FIFO,
socket or device is never opened: reading one could block forever).
The batch goes on.

File names that are not valid UTF-8 stay ``str`` with the undecodable bytes
as surrogates (``os.fsdecode``); ``records.dumps`` writes them losslessly
(``path_bytes``), and a record read back here uses ``path_bytes``/``out_bytes``
when it has them.  Importable without typer or pydicom.
"""

from __future__ import annotations

import base64
import binascii
import glob
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from .records import DcmtoolsError, ErrorCode

GLOB_CHARS = frozenset("*?[")


@dataclass
class InputItem:
    """One input: a path, the upstream record it came from, or an error."""

    path: str
    record: dict[str, Any] | None = None  # the JSON record read from stdin, if any
    error: DcmtoolsError | None = None
    source: str = "argument"  # argument | walk | glob | stdin | files-from
    extra: dict[str, Any] = field(default_factory=dict)


def iter_inputs(
    args: Iterable[str] | None,
    *,
    files_from: str | None = None,
    null: bool = False,
    stdin: TextIO | None = None,
    read_stdin_when_piped: bool = True,
) -> Iterator[InputItem]:
    """Yield the inputs named by ``args`` (paths, folders, globs, ``-``) in order."""
    args = list(args or [])
    stdin = stdin if stdin is not None else sys.stdin
    if not args and files_from is None and read_stdin_when_piped and _is_piped(stdin):
        args = ["-"]
    for arg in args:
        if arg == "-":
            yield from iter_stream(stdin, null=null, source="stdin")
        else:
            yield from expand_path(arg)
    if files_from is not None:
        if files_from == "-":
            yield from iter_stream(stdin, null=null, source="files-from")
        else:
            try:
                with open(files_from, encoding="utf-8", errors="surrogateescape", newline="") as stream:
                    yield from iter_stream(stream, null=null, source="files-from")
            except OSError as exc:
                yield InputItem(
                    files_from,
                    error=DcmtoolsError(
                        ErrorCode.NOT_FOUND if isinstance(exc, FileNotFoundError) else ErrorCode.UNREADABLE,
                        f"cannot read the list of files {files_from!r}: {exc.strerror or exc}",
                    ),
                    source="files-from",
                )


def expand_items(items: Iterable[Any]) -> Iterator[Any]:
    """Plain paths as the command line takes them (a folder walked, a glob expanded: ``expand_path``);
    anything else (an ``InputItem``, a record's path object) passes as it is."""
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            yield from expand_path(os.fspath(item))
        else:
            yield item


def expand_path(arg: str, source: str = "argument") -> Iterator[InputItem]:
    """A file, a folder walked recursively, or a glob expanded here."""
    if os.path.isdir(arg):
        yield from walk_folder(arg, source)
    elif os.path.lexists(arg):
        yield file_item(arg, source)
    elif GLOB_CHARS & set(arg):
        matches = sorted(glob.glob(arg, recursive=True))
        if not matches:
            yield InputItem(arg, error=DcmtoolsError(ErrorCode.NOT_FOUND, f"no file matches {arg!r}"), source="glob")
        for match in matches:
            if os.path.isdir(match):
                # '**' also matches folders: their files come through the walk
                # only when the pattern does not already list them.
                if not arg.endswith("**"):
                    continue
                yield from walk(match)
            else:
                yield file_item(match, "glob")
    else:
        yield InputItem(arg, error=DcmtoolsError(ErrorCode.NOT_FOUND, f"no such file or folder: {arg}"), source=source)


def file_item(path: str, source: str = "argument") -> InputItem:
    """An item for a path that exists: an error item unless it is a regular file
    (or a symlink to one).  FIFOs, sockets and devices are never opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return InputItem(
            path, error=DcmtoolsError(ErrorCode.NOT_FOUND, f"{path} is a broken symbolic link"), source=source
        )
    except OSError as exc:
        return InputItem(
            path, error=DcmtoolsError(ErrorCode.UNREADABLE, f"cannot read {path}: {exc.strerror or exc}"), source=source
        )
    if stat.S_ISREG(mode):
        return InputItem(path, source=source)
    if stat.S_ISDIR(mode):
        kind = "a symbolic link to a folder (not followed)"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO (named pipe)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    else:
        kind = "not a regular file"
    error = DcmtoolsError(
        ErrorCode.SPECIAL_FILE, f"{path} is {kind}: only regular files are read", "give DICOM files or folders"
    )
    return InputItem(path, error=error, source=source)


def walk_folder(folder: str, source: str = "argument") -> Iterator[InputItem]:
    """``walk``, with an error item when the folder holds no file at all."""
    empty = True
    for item in walk(folder):
        empty = False
        yield item
    if empty:
        yield InputItem(
            folder,
            error=DcmtoolsError(ErrorCode.NO_FILES, f"no files in folder {folder}", "hidden files (.name) are skipped"),
            source=source,
        )


def walk(folder: str) -> Iterator[InputItem]:
    """Every file under ``folder`` in path order (files and folders sorted
    together, as ``find | sort`` lists them), skipping hidden entries and not
    following symlinked folders.  An unreadable folder is an error item."""
    try:
        with os.scandir(folder) as entries:
            names = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
    except OSError as exc:
        yield InputItem(
            folder,
            error=DcmtoolsError(ErrorCode.UNREADABLE, f"cannot list folder {folder}: {exc.strerror or exc}"),
            source="walk",
        )
        return
    for name, is_dir in names:
        if name.startswith("."):
            continue
        path = os.path.join(folder, name)
        if is_dir:
            yield from walk(path)
        else:
            yield file_item(path, "walk")


def iter_stream(stream: TextIO, *, null: bool = False, source: str = "stdin") -> Iterator[InputItem]:
    """Paths or JSON records from a stream, one per line (or NUL-separated)."""
    if null:
        # Read in blocks, not whole: 10^6 paths on stdin stay a stream.
        rest = ""
        while True:
            block = stream.read(65536)
            if not block:
                break
            *entries, rest = (rest + block).split("\0")
            for entry in entries:
                if entry:
                    yield from expand_path(entry, source=source)
        if rest:
            yield from expand_path(rest, source=source)
        return
    for line in stream:
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            yield from items_from_record(line, source)
        else:
            yield from expand_path(line, source=source)


def items_from_record(line: str, source: str = "stdin") -> Iterator[InputItem]:
    """The input named by one JSON record of another command."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        yield InputItem(
            line[:200],
            error=DcmtoolsError(ErrorCode.BAD_RECORD, f"input line is not valid JSON ({exc.msg})"),  # type: ignore[attr-defined]  # JSONDecodeError
            source=source,
        )
        return
    if not isinstance(record, dict):
        yield InputItem(
            line[:200], error=DcmtoolsError(ErrorCode.BAD_RECORD, "input record is not an object"), source=source
        )
        return
    if record.get("type") == "summary":
        return  # the upstream command's summary: nothing to process
    path = _record_path(record, "out") or _record_path(record, "path")
    if record.get("ok") is False:
        # Never fall back to the upstream input: for `anonymize | send` that
        # would send the un-anonymized original.
        upstream = (record.get("error") or {}).get("message", "failed")
        yield InputItem(
            str(path or ""),
            record=record,
            error=DcmtoolsError(ErrorCode.UPSTREAM_FAILED, f"skipped: the previous command failed on it ({upstream})"),
            source=source,
        )
        return
    if not isinstance(path, str) or not path:
        yield InputItem(
            line[:200],
            record=record,
            error=DcmtoolsError(ErrorCode.BAD_RECORD, "input record has neither 'out' nor 'path'"),
            source=source,
        )
        return
    if os.path.isdir(path):
        for item in walk_folder(path, source):
            item.record = record
            yield item
    elif os.path.lexists(path):
        item = file_item(path, source)
        item.record = record
        yield item
    else:
        yield InputItem(path, record=record, source=source)  # the command says it is missing


def _record_path(record: dict[str, Any], key: str) -> Any:
    """``record[key]``, or the exact bytes of ``key_bytes`` for a name that is not UTF-8."""
    raw = record.get(f"{key}_bytes")
    if isinstance(raw, str):
        try:
            return os.fsdecode(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            pass
    return record.get(key)


def _is_piped(stream: TextIO) -> bool:
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return False
