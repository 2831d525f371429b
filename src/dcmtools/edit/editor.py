"""The ``Editor``: the changes of one file, checked, and the file written again."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dicom import dictionary as datadict
from ..dicom.reader import Dataset, DicomFile, Element
from ..dicom.tagpath import Step
from ..dicom.values import CHARSET_VRS, Charset
from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .spec import Assignment, MapTable, _step_text, parse_assignment

if TYPE_CHECKING:
    from ..deid.keys import Key
from .values import (
    LEVELS,
    MEDIA_SOP_CLASS_UID,
    MEDIA_SOP_INSTANCE_UID,
    NUMBER_FORMATS,
    REFERENCED_SOP_CLASS_UID,
    REFERENCED_SOP_INSTANCE_UID,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    SPECIFIC_CHARACTER_SET,
    STUDY_CLASS_PREFIX,
    UID_LEVELS,
    UNMATCHED,
    EditError,
    decode_strict,
    encode_value,
    shown,
)


@dataclass
class Change:
    """One element changed: where, before and after (None: absent)."""

    path: str
    tag: int
    old: Any
    new: Any

    def record(self, file: str) -> dict[str, Any]:
        return {"type": "change", "path": file, "element": self.path, "tag": datadict.format_tag(self.tag),
                "old": self.old, "new": self.new}  # fmt: skip


@dataclass
class Outcome:
    """What editing one dataset did."""

    changes: list[Change] = field(default_factory=list)
    unmatched: str | None = None  # the key value no map row matched
    warnings: list[str] = field(default_factory=list)


class _FileEdit:
    """The edits of one file, applied to its datasets in place."""

    def __init__(self, editor: Editor, dicom: DicomFile) -> None:
        self.editor = editor
        self.dicom = dicom
        self.ds = dicom.dataset
        self.little = self.ds.little
        self.outcome = Outcome()

    def change(self, path: str, tag: int, old: Element | None, new: Element | None, charset: Charset) -> None:
        self.outcome.changes.append(
            Change(path, tag, shown(old, charset, self.little), shown(new, charset, self.little))
        )

    # -- paths
    def apply(
        self, ds: Dataset, steps: tuple[Step, ...], action: str, a: Assignment, charset: Charset, prefix: str
    ) -> None:
        step, rest = steps[0], steps[1:]
        charset = Charset.of(ds, charset)
        element = ds.get(step.tag)
        if not rest:
            if action == "erase":
                if element is None:
                    return
                if step.index is not None and element.items is not None:
                    if step.index < len(element.items):
                        del element.items[step.index]
                        self.outcome.changes.append(
                            Change(prefix + _step_text(step, step.index), step.tag, "<item>", None)
                        )
                    return
                del ds[step.tag]
                self.change(prefix + _step_text(step), step.tag, element, None, charset)
                return
            if action == "set_existing" and element is None:
                return
            self.set_value(ds, step.tag, a, element, charset, prefix + _step_text(step))
            return
        if element is None or element.items is None:
            if action != "set" or step.index is None:
                return  # nothing to change inside a sequence that is not there
            if element is not None and (element.value or element.length):
                raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{prefix}{_step_text(step)} is not a sequence in this file")
            element = Element(step.tag, "SQ", 0, None, None, [], True)
            ds[step.tag] = element
            self.change(prefix + _step_text(step), step.tag, None, element, charset)
        items = element.items
        assert items is not None
        if step.index is None:
            numbers = range(len(items))
        else:
            if step.index >= len(items):
                if action != "set":
                    return
                while len(items) <= step.index:  # as dcmodify: the missing items are created
                    items.append(Dataset(ds.little, ds.implicit))
            numbers = range(step.index, step.index + 1)
        for number in numbers:
            self.apply(items[number], rest, action, a, charset, f"{prefix}{_step_text(step, number)}.")

    def set_value(self, ds: Dataset, tag: int, a: Assignment, old: Element | None, charset: Charset, path: str) -> None:
        vr = a.vr
        if vr is None:
            if old is None or old.vr in ("UN", "", None):
                raise DcmtoolsError(
                    ErrorCode.BAD_VALUE,
                    f"{path}: the VR of this private or unknown element is not known here, so it cannot be "
                    "written from text" + ("" if old is None else " (it is UN in the file)"),
                    "set an element that the file holds with a known VR",
                )
            vr = old.vr
        elif old is not None and old.vr and old.vr != vr and old.vr != "UN":
            vr = old.vr  # ambiguous dictionary VRs (US or SS): the file's
        if vr == "SQ":
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{path} is a sequence: set an element inside one of its items")
        value = a.value or ""
        if tag == SPECIFIC_CHARACTER_SET:
            charset = Charset(value.split("\\"))
        try:
            raw = encode_value(value, vr, charset, ds.little)
        except ValueError as exc:
            raise DcmtoolsError(ErrorCode.BAD_VALUE, f"{path}: {exc}") from None
        if old is not None and old.value is not None and _same(old.value, raw, vr):
            return
        new = Element(tag, vr, len(raw), raw, None)
        ds[tag] = new
        self.change(path, tag, old, new, charset)

    # -- the kinds of edit
    def erase_private(self, ds: Dataset, charset: Charset, prefix: str) -> None:
        charset = Charset.of(ds, charset)
        for tag in list(ds):
            element = ds[tag]
            if tag >> 16 & 1:
                del ds[tag]
                self.change(prefix + datadict.format_tag(tag), tag, element, None, charset)
            elif element.items:
                for number, item in enumerate(element.items):
                    self.erase_private(item, charset, f"{prefix}{_step_text(Step(tag), number)}.")

    def new_uids(self, ds: Dataset, tags: frozenset[int], charset: Charset, prefix: str) -> None:
        key = self.editor.key
        assert key is not None
        study_level = 0x0020000D in tags
        for tag, element in list(ds.items()):
            if element.items:
                for number, item in enumerate(element.items):
                    self.new_uids(item, tags, charset, f"{prefix}{_step_text(Step(tag), number)}.")
                continue
            if not element.value:
                continue
            if tag == REFERENCED_SOP_INSTANCE_UID:
                # A study management reference (Referenced Study Sequence) carries a study's UID.
                is_study = (ds.text(REFERENCED_SOP_CLASS_UID) or "").startswith(STUDY_CLASS_PREFIX)
                if not (study_level if is_study else SOP_INSTANCE_UID in tags):
                    continue
            elif tag not in tags:
                continue
            old = element.value.decode("ascii", "replace").rstrip("\0 ")
            values = [key.uid(v) if v.strip() else v for v in old.split("\\")]
            raw = "\\".join(values).encode("ascii")
            ds[tag] = Element(tag, "UI", len(raw), raw, None)
            self.change(prefix + _step_text(Step(tag)), tag, element, ds[tag], charset)

    def to_utf8(self, ds: Dataset, charset: Charset, prefix: str, top: bool) -> None:
        charset = Charset.of(ds, charset)
        for tag, element in list(ds.items()):
            if element.items:
                for number, item in enumerate(element.items):
                    self.to_utf8(item, charset, f"{prefix}{_step_text(Step(tag), number)}.", False)
                continue
            if element.vr not in CHARSET_VRS or not element.value:
                continue
            raw = element.value
            try:
                text = decode_strict(raw, element.vr, charset)
            except ValueError as exc:
                declared = "\\".join(charset.terms) or "none (ASCII)"
                raise DcmtoolsError(
                    ErrorCode.BAD_VALUE,
                    f"{prefix}{_step_text(Step(tag))}: the value cannot be decoded with the file's Specific "
                    f"Character Set ({declared}): {exc}; the file is left as it was",
                    "correct the Specific Character Set first (`set` SpecificCharacterSet=...), then convert",
                ) from None
            new_raw = text.encode("utf-8")
            if new_raw != raw:
                ds[tag] = Element(tag, element.vr, len(new_raw), new_raw, None)
                self.change(prefix + _step_text(Step(tag)), tag, element, ds[tag], UTF8)
        old = ds.get(SPECIFIC_CHARACTER_SET)
        if top or old is not None:
            if old is None or old.value is None or old.value.rstrip(b" \0") != b"ISO_IR 192":
                new = Element(SPECIFIC_CHARACTER_SET, "CS", 10, b"ISO_IR 192", None)
                ds[SPECIFIC_CHARACTER_SET] = new
                self.change(prefix + "SpecificCharacterSet", SPECIFIC_CHARACTER_SET, old, new, UTF8)

    def meta(self) -> None:
        """The file meta follows the dataset's SOP Class and Instance UIDs (as dcmodify does)."""
        meta = self.dicom.meta
        if not meta:
            return
        for ds_tag, meta_tag in ((SOP_CLASS_UID, MEDIA_SOP_CLASS_UID), (SOP_INSTANCE_UID, MEDIA_SOP_INSTANCE_UID)):
            value = self.ds.get(ds_tag)
            old = meta.get(meta_tag)
            if value is None or value.value is None:
                continue
            if old is not None and old.value is not None and old.value.rstrip(b"\0 ") == value.value.rstrip(b"\0 "):
                continue
            meta[meta_tag] = Element(meta_tag, "UI", len(value.value), value.value, None)
            self.change("meta." + datadict.keyword_of(meta_tag), meta_tag, old, meta[meta_tag], Charset())


UTF8 = Charset(["ISO_IR 192"])


def _same(old: bytes, new: bytes, vr: str) -> bool:
    if vr in NUMBER_FORMATS or vr == "AT":
        return old == new
    pad = b"\0 " if vr == "UI" else b" \0"
    return old.rstrip(pad) == new.rstrip(pad)


def _drop_group_lengths(ds: Dataset) -> None:
    """Group lengths (gggg,0000; retired) would be wrong after an edit: they go, and so does
    Data Set Trailing Padding (FFFC,FFFC), which has no meaning (DCMTK drops it too)."""
    for tag in [t for t in ds if t & 0xFFFF == 0 or t == 0xFFFCFFFC]:
        del ds[tag]
    for element in ds.values():
        for item in element.items or ():
            _drop_group_lengths(item)


class Editor:
    """One set of edits, for any number of files, byte strings or ``DicomFile``s.

    ``sets``, ``set_existing``: ``Assignment``s (``parse_assignment``);
    ``erase``: paths (``parse_assignment(p, erase=True)``); ``mapping``: a
    ``MapTable`` (``load_map``); ``new_uids``: 'study', 'series', 'instance'
    or 'all' with ``key`` (a ``deid.keys.Key``, bytes or str); ``charset``:
    'utf8' or None.  Order of application: character set, new UIDs, erase
    private, erase, set, set-existing, the map's row.
    """

    def __init__(
        self,
        *,
        sets: Iterable[Assignment] = (),
        set_existing: Iterable[Assignment] = (),
        erase: Iterable[Assignment] = (),
        erase_private: bool = False,
        mapping: MapTable | None = None,
        require_match: bool = False,
        new_uids: str | None = None,
        key: Any = None,
        charset: str | None = None,
    ) -> None:
        from ..deid.keys import Key

        self.sets = [a if isinstance(a, Assignment) else parse_assignment(a) for a in sets]
        self.set_existing = [a if isinstance(a, Assignment) else parse_assignment(a) for a in set_existing]
        self.erase = [a if isinstance(a, Assignment) else parse_assignment(a, erase=True) for a in erase]
        self.erase_private = erase_private
        self.mapping = mapping
        self.require_match = require_match
        if new_uids is not None and new_uids not in LEVELS:
            raise EditError(f"`new_uids` {new_uids!r}: choose one of {', '.join(LEVELS)}")
        self.new_uids = new_uids
        self.key: Key | None = None
        if new_uids is not None:
            self.key = key if isinstance(key, Key) else (Key(key) if key is not None else Key.random())
        self.uid_tags = self._uid_tags(new_uids)
        if charset not in (None, "utf8"):
            raise EditError(f"`charset` {charset!r}: only utf8 is supported")
        self.charset = charset

    @staticmethod
    def _uid_tags(level: str | None) -> frozenset[int]:
        if level is None:
            return frozenset()
        if level == "all":
            return frozenset().union(*UID_LEVELS.values())
        return UID_LEVELS[level]

    @property
    def does_nothing(self) -> bool:
        return not (self.sets or self.set_existing or self.erase or self.erase_private or self.mapping
                    or self.new_uids or self.charset)  # fmt: skip

    # ------------------------------------------------------------ datasets
    def edit(self, dicom: DicomFile) -> Outcome:
        """Apply the edits to a ``DicomFile`` (meta and dataset) in place.

        Raises ``DcmtoolsError`` (``bad_value``, ``unmatched``) when the file
        cannot be edited as asked; the ``DicomFile`` may then be half-edited:
        do not write it.
        """
        work = _FileEdit(self, dicom)
        ds = dicom.dataset
        top = Charset.of(ds)
        assignments: list[Assignment] = []
        if self.mapping is not None:
            element = ds.get(self.mapping.match)
            key = None
            if element is not None and element.value is not None:
                key = top.decode(element.value, element.vr).strip(" \0")
            found = self.mapping.assignments(key) if key is not None else None
            if found is None:
                name = datadict.keyword_of(self.mapping.match) or datadict.format_tag(self.mapping.match)
                shown_key = "absent" if key is None else repr(key)
                if self.require_match:
                    raise DcmtoolsError(
                        UNMATCHED,
                        f"no row of {self.mapping.path} matches this file's {name} ({shown_key}); the file is not written",
                        "add a row for it, or drop `require_match` to pass such files with the other edits only",
                    )
                work.outcome.unmatched = key if key is not None else ""
                work.outcome.warnings.append(f"no row of {self.mapping.path} matches {name} {shown_key}")
            else:
                assignments = found
        if self.charset == "utf8":
            work.to_utf8(ds, top, "", True)
            top = UTF8
        if self.uid_tags:
            work.new_uids(ds, self.uid_tags, top, "")
            if (
                dicom.meta
                and SOP_INSTANCE_UID not in ds
                and MEDIA_SOP_INSTANCE_UID in dicom.meta
                and SOP_INSTANCE_UID in self.uid_tags
            ):
                work.new_uids(dicom.meta, frozenset({MEDIA_SOP_INSTANCE_UID}), top, "meta.")
        if self.erase_private:
            work.erase_private(ds, top, "")
        for a in self.erase:
            work.apply(ds, a.steps, "erase", a, top, "")
        for a in self.sets:
            work.apply(ds, a.steps, "set", a, top, "")
        for a in self.set_existing:
            work.apply(ds, a.steps, "set_existing", a, top, "")
        for a in assignments:
            work.apply(ds, a.steps, "set", a, top, "")
        if work.outcome.changes:
            work.meta()
            _drop_group_lengths(ds)
        return work.outcome

    def edit_bytes(self, data: bytes) -> tuple[bytes, Outcome]:
        """Edit a DICOM file (or bare dataset) held in memory; returns the new bytes."""
        from ..dicom.writer import rewrite_bytes

        return rewrite_bytes(data, self.edit)

    # ------------------------------------------------------------ files
    def edit_file(
        self,
        path: str,
        out: str | None = None,
        *,
        in_place: bool = False,
        backup: bool = True,
        overwrite: bool = False,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Edit ``path`` into ``out`` (or in place); the records: one per change with ``dry_run``, then the file's.

        Never raises for a bad input: the file record then has ``ok: false``
        and nothing is written.  In place, the new file replaces the old one
        by a rename (atomic), the old one kept as ``path.bak`` unless
        ``backup=False``.
        """
        from ..dicom.reader import read
        from ..dicom.writer import Bulk, write
        from ..stream.outputs import exists_error, write_atomic

        try:
            if not in_place and not dry_run:
                if out is None:
                    raise ValueError("an output path or in_place=True is required")
                exists = os.path.lexists(out)
                if exists and not overwrite:
                    raise exists_error(out)
                if exists and _same_file(path, out):
                    raise DcmtoolsError(ErrorCode.EXISTS, "the output would replace the input",
                                        "choose an output folder outside the inputs, or use `in_place`")  # fmt: skip
            dicom = read(path)
            if dicom.deflated:  # inflated values have no file offsets: read them all
                dicom = read(path, bulk_threshold=1 << 62)
            outcome = self.edit(dicom)
            records: list[dict[str, Any]] = []
            if dry_run:
                records = [change.record(path) for change in outcome.changes]
            else:
                # In place through a symbolic link: the file it points to is edited, the link stays.
                target = os.path.realpath(path) if in_place else out
                assert target is not None
                mode = os.stat(path).st_mode & 0o7777 if in_place else None
                with Bulk(path) as bulk:

                    def body(stream: Any) -> None:
                        if mode is not None:
                            os.fchmod(stream.fileno(), mode)  # the edited file keeps its permissions
                        write(stream, dicom.meta or None, dicom.dataset, bulk, deflated=dicom.deflated)

                    if in_place and backup:
                        _backup(target)
                    write_atomic(target, body, overwrite=in_place or overwrite)
        except DcmtoolsError as exc:
            return [error_record("file", exc, path=path)]
        except (ValueError, OSError) as exc:
            error = DcmtoolsError(ErrorCode.WRITE_FAILED, f"the edited file could not be written: {exc}")
            return [error_record("file", error, path=path)]
        record: dict[str, Any] = {"type": "file", "path": path}
        if not dry_run:
            record["out"] = path if in_place else out
        record["ok"] = True
        record["changes"] = len(outcome.changes)
        if dry_run:
            record["dry_run"] = True
        if outcome.unmatched is not None:
            record[UNMATCHED] = True
        if outcome.warnings:
            record["warnings"] = outcome.warnings
        records.append(record)
        return records


def _backup(path: str) -> None:
    """Keep the original as ``path.bak`` (a hard link where possible: no copy), replacing an older backup."""
    import shutil

    bak = path + ".bak"
    tmp = f"{bak}.{os.getpid()}.part"
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copy2(path, tmp)
    os.replace(tmp, bak)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
