"""Where a command's output files go, and how they are written.

``MirroredInputs`` pairs every input of a command line with its output path
under ``-o DIR``, mirroring the input tree:

* a folder argument: its contents go straight under DIR
  (``transcode /archive/old -o /archive/new`` gives ``/archive/new/<tree>``);
* a glob: the part after its fixed leading folder
  (``'old/**/*.dcm'`` gives ``DIR/<path under old>``);
* a file argument: its name (``a/b/c.dcm`` gives ``DIR/c.dcm``, like ``cp``);
* a path read from stdin or ``--files-from`` (or a record's ``out``/``path``):
  the path as written, relative (an absolute path under the current folder
  is taken relative to it; any other absolute path keeps its full path under
  DIR), so ``find . -name '*.dcm' | dcmtools transcode ...`` mirrors the tree.

Inputs inside DIR itself are skipped (so ``-o`` may sit inside the input
folder, and a second run does not take its own outputs as inputs).

``write_atomic`` and ``copy_atomic`` write through a temporary file in the
destination folder and a rename; without ``overwrite`` an existing output is
never replaced (the final link fails instead of clobbering).

Importable without typer, pydicom or numpy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterable, Iterator, TextIO

from .inputs import GLOB_CHARS, InputItem, iter_inputs
from .records import DcmtoolsError, ErrorCode

_UMASK = os.umask(0)
os.umask(_UMASK)


class MirroredInputs:
    """Iterate ``(item, out_path)``; ``out_path`` is None for an input error."""

    def __init__(
        self,
        args: Iterable[str] | None,
        out_dir: str | os.PathLike,
        *,
        files_from: str | None = None,
        null: bool = False,
        stdin: TextIO | None = None,
        read_stdin_when_piped: bool = True,
    ) -> None:
        self.args = list(args or [])
        self.out_dir = os.fspath(out_dir)
        self.files_from = files_from
        self.null = null
        self.stdin = stdin
        self.read_stdin_when_piped = read_stdin_when_piped
        self.skipped_inside_output = 0
        self._out_real = os.path.realpath(self.out_dir)

    def __iter__(self) -> Iterator[tuple[InputItem, str | None]]:
        args = self.args
        if not args and self.files_from is None and self.read_stdin_when_piped:
            # iter_inputs reads a piped stdin when given no arguments.
            yield from self._filtered(iter_inputs([], stdin=self.stdin), self._stream_out)
            return
        for arg in args:
            if arg == "-":
                items = iter_inputs([arg], null=self.null, stdin=self.stdin)
                yield from self._filtered(items, self._stream_out)
            elif os.path.isdir(arg):
                root = arg
                yield from self._filtered(iter_inputs([arg]), lambda p, root=root: self._under(p, root))
            elif not os.path.lexists(arg) and GLOB_CHARS & set(arg):
                root = glob_root(arg)
                yield from self._filtered(iter_inputs([arg]), lambda p, root=root: self._under(p, root))
            else:
                yield from self._filtered(
                    iter_inputs([arg]), lambda p: os.path.join(self.out_dir, os.path.basename(p))
                )
        if self.files_from is not None:
            items = iter_inputs(
                None, files_from=self.files_from, null=self.null, stdin=self.stdin, read_stdin_when_piped=False
            )
            yield from self._filtered(items, self._stream_out)

    def _filtered(self, items: Iterable[InputItem], out_for) -> Iterator[tuple[InputItem, str | None]]:
        for item in items:
            if item.error is not None:
                yield item, None
                continue
            if self._inside_output(item.path):
                self.skipped_inside_output += 1
                continue
            yield item, out_for(item.path)

    def _inside_output(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self._out_real or real.startswith(self._out_real.rstrip(os.sep) + os.sep)

    def _under(self, path: str, root: str) -> str:
        rel = os.path.relpath(path, root)
        if rel.startswith(os.pardir):
            rel = os.path.basename(path)
        return os.path.join(self.out_dir, rel)

    def _stream_out(self, path: str) -> str:
        return os.path.join(self.out_dir, stream_relative(path))


def stream_relative(path: str) -> str:
    """The relative path under the output folder of a path read from a stream."""
    norm = os.path.normpath(path)
    if os.path.isabs(norm):
        rel = os.path.relpath(norm, os.getcwd())
        if rel.startswith(os.pardir):
            drive, rest = os.path.splitdrive(norm)
            rel = rest.lstrip(os.sep)
    else:
        rel = norm
    parts = [p for p in rel.split(os.sep) if p not in (os.pardir, os.curdir, "")]
    return os.path.join(*parts) if parts else os.path.basename(path)


def glob_root(pattern: str) -> str:
    """The fixed leading folder of a glob pattern (``a/b/**/*.dcm`` -> ``a/b``)."""
    parts = pattern.split(os.sep)
    fixed: list[str] = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        fixed.append(part)
    if not fixed:
        return "."
    root = os.sep.join(fixed)
    return root or os.sep


def same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same existing file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _place(tmp: str, path: str, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise exists_error(path) from None
    except OSError:
        # A file system without hard links: check, then rename (not race-free).
        if os.path.lexists(path):
            raise exists_error(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def exists_error(path: str) -> DcmtoolsError:
    return DcmtoolsError(
        ErrorCode.EXISTS,
        f"the output {path} already exists",
        hint="use --overwrite to replace it, or another -o folder",
    )


def _temp_in(path: str) -> tuple[int, str]:
    folder = os.path.dirname(path) or "."
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED,
            f"cannot write in {folder}: {exc.strerror or exc}",
            hint="check the -o folder exists and is writable, and that the disk is not full",
        ) from exc
    os.fchmod(fd, 0o666 & ~_UMASK)
    return fd, tmp


def write_atomic(path: str, data: bytes | bytearray | memoryview, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    if not overwrite and os.path.lexists(path):
        raise exists_error(path)
    fd, tmp = _temp_in(path)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        _place(tmp, path, overwrite)
    except DcmtoolsError:
        raise
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED, f"cannot write {path}: {exc.strerror or exc}", hint="check free space and permissions"
        ) from exc
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def copy_atomic(src: str, path: str, overwrite: bool = False) -> None:
    """Copy the file ``src`` to ``path`` through a temporary file and a rename."""
    if not overwrite and os.path.lexists(path):
        raise exists_error(path)
    fd, tmp = _temp_in(path)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        _place(tmp, path, overwrite)
    except DcmtoolsError:
        raise
    except OSError as exc:
        raise DcmtoolsError(
            ErrorCode.WRITE_FAILED, f"cannot write {path}: {exc.strerror or exc}", hint="check free space and permissions"
        ) from exc
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
