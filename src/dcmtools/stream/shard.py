"""``--shard K/N``: a stable split of a batch's inputs over N copies of a command.

Any scheduler can run the N copies (a Slurm array, a Kubernetes indexed job,
N shells): each copy reads the same inputs and keeps those of its shard.

* The key of a file is its StudyInstanceUID, read cheaply with the project's
  own reader (``dcmtools.dicom.reader``, stopping before the series level and
  never touching pixel data), so a study stays on one shard.  Where no UID is
  read (not DICOM, unreadable, an input error) the key is the path.
* The shard is ``blake2b(key) mod N``: the same on every machine, Python
  version and run (not ``hash()``, which is salted per process).
* K/N default from the environment: ``SLURM_ARRAY_TASK_ID`` and
  ``SLURM_ARRAY_TASK_COUNT`` (a Slurm array ``--array=0-(N-1)``), or
  ``JOB_COMPLETION_INDEX`` (a Kubernetes indexed job) with N given.

Streams: the inputs are filtered one by one, nothing is held.  Importable
without typer, pydicom or numpy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .inputs import InputItem

STUDY_INSTANCE_UID = 0x0020000D
_STOP = 0x0020000E  # the series level: the study UID is read, nothing after it


class ShardError(ValueError):
    """A --shard value (or the environment behind it) that cannot be used."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The shard (0 .. count-1) of a key: stable everywhere."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """``K/N``, ``/N`` or ``N`` (K from the environment), or None: from the environment alone.

    Returns None when neither the option nor a Slurm array gives a shard.
    """
    env = os.environ if environ is None else environ
    index: int | None = None
    count: int | None = None
    if text is not None and text.strip():
        left, sep, right = text.strip().partition("/")
        try:
            if sep:
                index = int(left) if left.strip() else None
                count = int(right)
            else:
                count = int(left)
        except ValueError:
            raise ShardError(f"`shard` {text!r}: give K/N, e.g. 0/4 (shard K of N, counted from 0)") from None
    if index is None:
        index = _env_int(env, "SLURM_ARRAY_TASK_ID")
        if index is not None:
            # A Slurm array 1-N counts from its minimum: shards count from 0.
            low = _env_int(env, "SLURM_ARRAY_TASK_MIN")
            if low:
                index -= low
        else:
            index = _env_int(env, "JOB_COMPLETION_INDEX")
        if count is None:
            count = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
    if index is None and count is None:
        return None
    if count is None:
        raise ShardError("JOB_COMPLETION_INDEX gives the shard but not how many: give `shard` /N (or `shard` K/N)")
    if index is None:
        raise ShardError(f"`shard` {text}: which shard? give K/N, or run in a Slurm array or a Kubernetes indexed job")
    if count < 1 or not 0 <= index < count:
        raise ShardError(f"`shard` {index}/{count}: K must be 0 to N-1 and N at least 1")
    return Shard(index, count)


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise ShardError(f"{name}={value!r} is not a number") from None


def study_key(path: str) -> str:
    """The StudyInstanceUID of a DICOM file, else its path."""
    from ..dicom.reader import ReadError, read

    try:
        uid = read(path, bulk_threshold=0, stop_at=_STOP).dataset.text(STUDY_INSTANCE_UID)
    except ReadError as exc:
        partial = getattr(exc, "partial", None)
        uid = partial.dataset.text(STUDY_INSTANCE_UID) if partial is not None else None
    except (OSError, ValueError):
        uid = None
    return f"study:{uid}" if uid else f"path:{path}"


def key_of(item: InputItem) -> str:
    """The shard key of an input item (``dcmtools.stream.inputs.InputItem``)."""
    if item.error is not None or not item.path:
        return f"path:{item.path}"
    return study_key(item.path)


def select(items: Iterable[InputItem], shard: Shard | None) -> Iterator[InputItem]:
    """The items of ``shard`` (all of them when None), in their order, one at a time."""
    if shard is None or shard.count == 1:
        yield from items
        return
    for item in items:
        if shard.owns(key_of(item)):
            yield item
