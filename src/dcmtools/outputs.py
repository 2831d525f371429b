"""Where a command that writes files puts each output: ``-o DIR`` mirrors the inputs.

``mirror_path(path, out_dir, roots)`` keeps the tree below each INPUTS
argument: a file found under the folder argument ``in/`` goes to
``DIR/<path below in/>``; a file argument to ``DIR/<its name>``; a match of
a glob to ``DIR/<path below the glob's fixed folder>``.  A path that came
from stdin or ``--files-from`` keeps its relative path (``..`` parts
dropped), or its absolute path without the leading ``/``.

``write_atomic(path, write, overwrite)`` writes through a temporary file in
the output's folder and renames it into place; without ``overwrite`` an
existing output is never replaced, even by a concurrent writer.

Importable without typer or pydicom.
"""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable, Iterable

from .inputs import GLOB_CHARS
from .records import DcmtoolsError, ErrorCode


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


class Mirror:
    """Maps input paths to output paths under ``out_dir``, by the INPUTS arguments."""

    def __init__(self, out_dir: str | os.PathLike, args: Iterable[str] | None = None) -> None:
        self.out_dir = os.fspath(out_dir)
        self.folders: list[str] = []
        self.files: set[str] = set()
        for arg in args or ():
            if arg == "-":
                continue
            if os.path.isdir(arg):
                self.folders.append(os.path.normpath(arg))
            elif os.path.lexists(arg):
                self.files.add(os.path.normpath(arg))
            elif GLOB_CHARS & set(arg):
                self.folders.append(os.path.normpath(_glob_base(arg)))
        self.folders.sort(key=len, reverse=True)  # the deepest folder argument wins

    def __call__(self, path: str) -> str:
        return os.path.join(self.out_dir, self.relative(path))

    def relative(self, path: str) -> str:
        norm = os.path.normpath(path)
        for folder in self.folders:
            if folder == ".":
                if not os.path.isabs(norm) and not norm.startswith(".."):
                    return norm
                continue
            prefix = folder if folder.endswith(os.sep) else folder + os.sep
            if norm.startswith(prefix):
                return norm[len(prefix):]
        if norm in self.files:
            return os.path.basename(norm)
        parts = [p for p in norm.split(os.sep) if p not in ("", ".", "..")]
        return os.path.join(*parts) if parts else os.path.basename(norm) or "output"


def _glob_base(pattern: str) -> str:
    """The folder part of a glob before its first wildcard."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    if not fixed:
        return "."
    base = os.sep.join(fixed)
    return base or os.sep


def write_atomic(path: str, write: Callable[[BinaryIO], None], overwrite: bool = False) -> None:
    """Write ``path`` through a temporary file and a rename.

    Raises ``DcmtoolsError`` (``exists`` or ``write_failed``); the temporary
    file never stays behind.
    """
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED, f"cannot write in {folder}: {exc.strerror or exc}", "check the output folder"
        ) from exc
    try:
        try:
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as stream:
                write(stream)
        except OSError as exc:
            raise DcmtoolsError(
                ErrorCode.WRITE_FAILED, f"cannot write {path}: {exc.strerror or exc}", "check the free space"
            ) from exc
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # fails if the output exists: never replaces one
        except FileExistsError as exc:
            raise exists_error(path) from exc
        except OSError:
            # No hard links on this file system: check, then rename.
            if os.path.lexists(path):
                raise exists_error(path) from None
            os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def exists_error(path: str) -> DcmtoolsError:
    return DcmtoolsError(ErrorCode.EXISTS, f"{path} exists already", "use --overwrite to replace it")
