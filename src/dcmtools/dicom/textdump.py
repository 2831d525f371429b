"""A readable tree of a dataset, like dcmdump's, for terminals.

    (0008,0016) UI SOPClassUID                          1.2.840.10008.5.1.4.1.1.2 = CT Image Storage
    (0008,1140) SQ ReferencedImageSequence              2 items
      item 1
        (0008,1150) UI ReferencedSOPClassUID            1.2.840.10008.5.1.4.1.1.2
    (0009,0010) LO PrivateCreator                       GEMS_IDEN_01
    (0009,1001) LO [GEMS_IDEN_01] Full fidelity         GE_GENESIS_FF
    (7FE0,0010) OW PixelData                            524288 bytes, not read

Long values are cut to ``width`` characters (with the full length said);
private elements show their creator and, when pydicom's private dictionary
knows it, their name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from . import dictionary as datadict
from .reader import Dataset, DicomFile, Element
from .values import BULK_VRS, STRING_VRS, BadValue, Charset, little_endian_bytes, python_values

KEYWORD_WIDTH = 36


@functools.cache
def _uid_names() -> dict[str, str]:
    module = datadict._load_pydicom_module("_uid_dict")
    return {uid: entry[0] for uid, entry in module.UID_dictionary.items()}


def uid_name(uid: str) -> str | None:
    """'CT Image Storage' for '1.2.840.10008.5.1.4.1.1.2', None if not a known UID."""
    if not uid.startswith("1.2.840.10008."):
        return None
    return _uid_names().get(uid)


def render_file(
    dicom: DicomFile, *, meta: bool = True, width: int | None = 64, charset: Charset | None = None
) -> Iterator[str]:
    """The lines of the tree of a whole file: a header, the meta group, the dataset."""
    ts = dicom.transfer_syntax or "unknown"
    name = uid_name(ts)
    yield f"# {escape(dicom.path)}"
    yield f"# transfer syntax {ts}" + (f" ({name})" if name else "") + (", deflated" if dicom.deflated else "")
    for warning in dicom.warnings:
        yield f"# warning: {escape(str(warning))}"
    if meta and dicom.meta:
        yield "# file meta information"
        yield from render(dicom.meta, width=width)
        yield "# dataset"
    yield from render(dicom.dataset, width=width, charset=charset)


def render(ds: Dataset, *, width: int | None = 64, depth: int = 0, charset: Charset | None = None) -> list[str]:
    """The lines of the tree of one dataset (and its sequences, indented)."""
    lines: list[str] = []
    _render_into(lines, ds, width, depth, Charset.of(ds, charset))
    return lines


def _render_into(lines: list[str], ds: Dataset, width: int | None, depth: int, charset: Charset) -> None:
    indent = "  " * depth
    creators: dict[tuple[int, int], str] = {}
    heads = _heads
    append = lines.append
    for tag, element in ds.items():
        vr = element.vr
        creator = ""
        if tag >> 16 & 1:
            group, number = tag >> 16, tag & 0xFFFF
            if 0x10 <= number <= 0xFF:
                creators[(group, number)] = ds.text(tag) or ""
            else:
                creator = creators.get((group, number >> 8), "")
        head = heads.get((tag, vr, creator)) or _head(tag, vr, creator)
        if depth:
            head = indent + head
        if element.items is not None:
            count = len(element.items)
            append(f"{head}{count} item{'s' if count != 1 else ''}")
            for index, item in enumerate(element.items, 1):
                append(f"{indent}  item {index}")
                _render_into(lines, item, width, depth + 2, Charset.of(item, charset))
            continue
        value = element.value
        if value and vr in PLAIN_TEXT_VRS and value.isascii() and not value.translate(None, _PRINTABLE_ASCII):
            # The common case, inlined: ASCII text shown as stored.
            text = value.decode("ascii").strip(" \0")
            if len(text) > (width or len(text)) or "\n" in text:
                text = format_value(element, ds, charset, width)
            append(head + (text or "(empty)"))
        else:
            append(head + format_value(element, ds, charset, width))


# Bytes a value may hold and be written as it is; anything else (ESC, CR, BEL ...)
# would act on the terminal: ``escape`` writes it as \\xNN.
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def escape(text: str) -> str:
    """``text`` safe for a terminal: control characters (and other unprintable
    ones) written as ``\\xNN`` / ``\\uNNNN``; bytes of a name that is not UTF-8 too."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable()
        else f"\\x{ord(c) & 0xFF:02x}"
        if 0xDC80 <= ord(c) <= 0xDCFF
        else f"\\x{ord(c):02x}"
        if ord(c) < 0x100
        else f"\\u{ord(c):04x}"
        for c in text
    )


# String VRs shown as stored, with no UID name to add.
PLAIN_TEXT_VRS = STRING_VRS - {"UI"}


_heads: dict[tuple[int, str, str], str] = {}


def _head(tag: int, vr: str, creator: str) -> str:
    """'(0008,0016) UI SOPClassUID' padded to the value column (cached: tags repeat across files)."""
    key = (tag, vr, creator)
    head = _heads.get(key)
    if head is None:
        if tag >> 16 & 1:
            label = "PrivateCreator" if 0x10 <= tag & 0xFFFF <= 0xFF else _private_label(creator, tag)
        else:
            label = datadict.keyword_of(tag) or "Unknown"
        head = f"{datadict.format_tag(tag)} {vr or '--'} {label}"
        head += " " * max(1, KEYWORD_WIDTH + 15 - len(head))
        if len(_heads) > 100_000:
            _heads.clear()
        _heads[key] = head
    return head


def _private_label(creator: str, tag: int) -> str:
    if not creator:
        return "[no private creator]"
    entry = datadict.private_entry(creator, tag)
    return f"[{escape(creator)}] {entry[2]}" if entry else f"[{escape(creator)}]"


def format_value(element: Element, ds: Dataset, charset: Charset, width: int | None = 64) -> str:
    """One element's value as one line of text."""
    if element.value is None:
        if element.encapsulated:
            return f"{element.length} bytes of encapsulated data, not read"
        return f"{element.length} bytes, not read" if element.length else "(empty)"
    if not element.length:
        return "(empty)"
    if element.vr in BULK_VRS:
        data = little_endian_bytes(element, ds.little)
        text = "\\".join(f"{b:02x}" for b in data[: (width or 64) // 3 + 1])
        return _cut(text, width, f"{element.length} bytes")
    vr = element.vr
    try:
        if vr in STRING_VRS:
            # Shown as stored (as dcmdump does): no need to split and convert.
            text = charset.decode(element.value, vr).strip(" \0")
            if vr == "UI" and "\\" not in text:
                name = uid_name(text)
                if name:
                    text += f" = {name}"
        else:
            text = "\\".join(map(str, python_values(element, ds, charset)))
    except BadValue as exc:
        return f"!! {exc}: {(element.value or b'').decode('latin-1')!r}"
    if not text:
        return "(empty)"
    return _cut(escape(text.replace("\r\n", "\u21b5").replace("\n", "\u21b5")), width, f"{element.length} bytes")


def _cut(text: str, width: int | None, total: str) -> str:
    if width is None or len(text) <= width:
        return text
    return f"{text[:width]}\u2026 ({total})"
