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

import itertools
import os
import sys
from collections.abc import Callable, Iterable
from typing import BinaryIO

from .inputs import GLOB_CHARS
from .records import DcmtoolsError, ErrorCode

_COUNTER = itertools.count()
_FOLDERS: set[str] = set()  # output folders known to exist (per process)


def _rename_noreplace() -> Callable[[str, str], bool] | None:
    """renameat2(RENAME_NOREPLACE) through libc, where there is one: one atomic step."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, noreplace = -100, 1

    def rename(src: str, dst: str) -> bool:
        """True when renamed; FileExistsError when ``dst`` exists; False when unsupported here."""
        if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
            return True
        errno = ctypes.get_errno()
        if errno == 17:  # EEXIST
            raise FileExistsError(errno, os.strerror(errno), dst)
        if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not on this file system
            return False
        raise OSError(errno, os.strerror(errno), dst)

    return rename


_RENAME_NOREPLACE = _rename_noreplace() if sys.platform.startswith("linux") else None


class Mirror:
    """Maps input paths to output paths under ``out_dir``, by the INPUTS arguments."""

    def __init__(self, out_dir: str | os.PathLike[str], args: Iterable[str] | None = None) -> None:
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
                return norm[len(prefix) :]
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


def write_atomic(path: str, write: Callable[[BinaryIO], object], overwrite: bool = False) -> None:
    """Write ``path`` through a temporary file and a rename.

    Raises ``DcmtoolsError`` (``exists`` or ``write_failed``); the temporary
    file never stays behind.  The file gets the usual permissions (umask).
    """
    folder = os.path.dirname(path) or "."
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{next(_COUNTER)}.part")
    try:
        if folder not in _FOLDERS:
            os.makedirs(folder, exist_ok=True)
            _FOLDERS.add(folder)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileNotFoundError:
            # A long-lived process (a Dask worker) remembers a folder that was removed since.
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED, f"cannot write in {folder}: {exc.strerror or exc}", "check the output folder"
        ) from exc
    try:
        try:
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
            if _RENAME_NOREPLACE is not None and _RENAME_NOREPLACE(tmp, path):
                return
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
    return DcmtoolsError(ErrorCode.EXISTS, f"{path} exists already", "use `overwrite` to replace it")
