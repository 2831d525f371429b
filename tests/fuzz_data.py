"""A seeded generator of mutated and odd inputs for the fuzz test (issue 13).

``build(folder, count, seed)`` writes ``count`` mutants of the samples and of
pydicom's small test files, plus special entries (FIFO, socket, device link,
folder link, empty file, names that are not UTF-8 or carry control
characters, deeply nested sequences), and returns a ``Corpus``: the paths every
command must give exactly one record for, and which outputs the identifier
check applies to.

Every base file is first re-written with seeded identifiers (``FUZZSEED...``
in Patient's Name, Patient ID, Referring Physician, Strain Source, and a
person name inside a sequence), so that an anonymized output can be searched
for them.  The same seed gives the same corpus.

Mutation kinds (one per mutant, 1 to 3 hits each):

* ``truncate``: cut at a random offset;
* ``flip``: random bytes XOR-ed anywhere;
* ``seedtag``: one bit of the tag of a seeded element flipped (e.g. (0010,0020)
  becomes (0010,4020): not in the dictionary);
* ``length``: the length field of a random element overwritten (random,
  0, odd, 0xFFFF, 0xFFFFFFFF);
* ``vr``: the VR of a random element replaced (garbage, SQ, UN, OB, another text VR);
* ``uid``: one character of the SOP Class, SOP Instance or Transfer Syntax
  UID replaced by a byte that is not ASCII;
* ``splice``: a chunk of the file copied over another place;
* ``zero``: a region zeroed.

The identifier check (no ``FUZZSEED`` in an ``ok`` output of anonymize) applies
to mutants whose element framing is intact: ``truncate``, ``uid``, ``vr`` of
a text element to another text VR, and ``seedtag`` when the new tag is not in
the data dictionary (a flip into a tag the profile keeps cannot be told from
a real one by anyone).  A flipped length or a spliced chunk can make a kept
element's value swallow its neighbours' bytes: no anonymizer can know, so
those mutants are checked for records, not for identifiers.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARK = b"FUZZSEED"
TEXT_VRS = [b"LO", b"SH", b"PN", b"CS", b"LT", b"ST", b"UC"]
ODD_VRS = [b"ZZ", b"\x00\x00", b"SQ", b"UN", b"OB", b"OW", b"AT", b"FD", b"US", b"DA", b"ox"]
KINDS = ["truncate", "flip", "seedtag", "length", "vr", "uid", "splice", "zero"]


@dataclass
class Corpus:
    root: Path  # the folder every command walks
    expected: list[str] = field(default_factory=list)  # paths that must get exactly one record
    checked: set[str] = field(default_factory=set)  # mutants the identifier check applies to
    kinds: dict[str, str] = field(default_factory=dict)  # path -> mutation kind
    extra_args: list[str] = field(default_factory=list)  # more INPUTS (an empty folder)


def base_files() -> list[Path]:
    from pydicom.data import get_testdata_file

    pydicom_dir = Path(get_testdata_file("CT_small.dcm")).parent
    small = [p for p in sorted(pydicom_dir.iterdir()) if p.suffix == ".dcm" and p.stat().st_size < 40_000]
    return sorted((REPO / "samples").rglob("*.dcm")) + small


def seeded(path: Path) -> bytes:
    """The file with seeded identifiers, or its bytes as they are when pydicom cannot write it."""
    import io

    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    data = path.read_bytes()
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        ds.PatientName = "FUZZSEEDNAME^ALICE"
        ds.PatientID = "FUZZSEEDID42"
        ds.ReferringPhysicianName = "FUZZSEEDDOC^BOB"
        ds.add_new(0x00100217, "LO", "FUZZSEEDKENNEL")  # Strain Source
        item = Dataset()
        item.PersonName = "FUZZSEEDNESTED^EVE"
        ds.ContentSequence = Sequence([item])
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=False)
        return out.getvalue()
    except Exception:
        return data


def elements(data: bytes) -> tuple[list, bool]:
    """(elements of the dataset with value offsets, explicit VR?) as dcmtools reads them, or ([], True)."""
    import tempfile

    from dcmtools.dicom import reader

    with tempfile.NamedTemporaryFile(suffix=".dcm") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            info = reader.read(tmp.name, bulk_threshold=1 << 30)
        except Exception:
            return [], True
    found = []

    def walk(ds) -> None:
        for element in ds.values():
            if element.offset is not None:
                found.append(element)
            for item in element.items or ():
                walk(item)

    walk(info.dataset)
    return found, not info.dataset.implicit


def deep_nesting(depth: int) -> bytes:
    """A small explicit VR little endian file with a sequence nested ``depth`` deep (undefined lengths)."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "FUZZSEEDNAME^DEEP"
    ds.PatientID = "FUZZSEEDID42"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    open_sq = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF)
    open_item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    pn = b"FUZZSEEDNESTED^DEEP "
    name = struct.pack("<HH2sH", 0x0040, 0xA123, b"PN", len(pn)) + pn
    close_item = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    close_sq = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return out.getvalue() + (open_sq + open_item) * depth + name + (close_item + close_sq) * depth


def mutate(rng: random.Random, data: bytes, kind: str) -> tuple[bytes, bool]:
    """(mutant, whether the identifier check applies to it)."""
    buf = bytearray(data)
    n = len(buf)
    if kind == "truncate":
        return bytes(buf[: rng.randrange(1, n)]), True
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(n)] ^= rng.randint(1, 255)
        return bytes(buf), False
    if kind == "zero":
        start = rng.randrange(n)
        end = min(n, start + rng.randint(1, 64))
        buf[start:end] = bytes(end - start)
        return bytes(buf), False
    if kind == "splice":
        size = rng.randint(4, 256)
        src, dst = rng.randrange(n), rng.randrange(n)
        chunk = buf[src : src + size]
        buf[dst : dst + len(chunk)] = chunk
        return bytes(buf[:n]), False
    found, explicit = elements(data)
    if kind == "seedtag":
        marks = [i for i in range(n) if buf.startswith(MARK, i)]
        if not marks:
            return mutate(rng, data, "flip")
        value = rng.choice(marks)
        at = value - 8 + rng.randrange(4)  # the tag: 8 bytes before the value in every short header
        if at < 0:
            return mutate(rng, data, "flip")
        buf[at] ^= 1 << rng.randrange(8)
        from dcmtools.dicom import dictionary as datadict

        # the byte order in which the original tag is a dictionary tag (big endian files too)
        order = "<" if _tag(data, value - 8, "<") >> 16 in (0x0008, 0x0010, 0x0040) else ">"  # the seeded groups
        new = _tag(buf, value - 8, order)
        return bytes(buf), datadict.lookup(new) is None and not new >> 16 & 1
    if kind == "length":
        if not found:
            return mutate(rng, data, "flip")
        element = rng.choice(found)
        value = rng.choice(
            [0, 1, 3, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 32), element.length + 2, element.length * 2 + 1]
        )
        if rng.random() < 0.5 or element.offset < 4:
            struct.pack_into("<H", buf, element.offset - 2, value & 0xFFFF)
        else:
            struct.pack_into("<I", buf, element.offset - 4, value & 0xFFFFFFFF)
        return bytes(buf), False
    if kind == "vr":
        text = [e for e in found if e.vr.encode() in TEXT_VRS and e.offset >= 4]
        if not explicit or not text:
            return mutate(rng, data, "flip")
        element = rng.choice(text)
        if rng.random() < 0.5:
            buf[element.offset - 4 : element.offset - 2] = rng.choice(TEXT_VRS)
            return bytes(buf), True
        buf[element.offset - 4 : element.offset - 2] = rng.choice(ODD_VRS)
        return bytes(buf), False
    if kind == "uid":
        targets = []
        for uid in (b"1.2.840.10008.5.1.4.1.1", b"1.2.840.10008.1.2"):
            start = buf.find(uid)
            while start != -1:
                targets.append(start)
                start = buf.find(uid, start + 1)
        if not targets:
            return mutate(rng, data, "flip")
        at = rng.choice(targets) + rng.randrange(len(b"1.2.840"))
        buf[at] = rng.choice([0xE9, 0xFF, 0x80, 0xC3])
        return bytes(buf), True
    raise ValueError(kind)


def _tag(data, at: int, order: str) -> int:
    group, element = struct.unpack_from(order + "HH", data, at)
    return group << 16 | element


def build(folder: Path, count: int = 2000, seed: int = 13) -> Corpus:
    rng = random.Random(seed)
    root = folder / "corpus"
    root.mkdir(parents=True)
    corpus = Corpus(root)
    bases = [seeded(p) for p in base_files()]
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        data, checked = mutate(rng, rng.choice(bases), kind)
        sub = root / f"d{n // 250:02d}"
        sub.mkdir(exist_ok=True)
        path = sub / f"m{n:05d}-{kind}.dcm"
        path.write_bytes(data)
        corpus.expected.append(str(path))
        corpus.kinds[str(path)] = kind
        if checked:
            corpus.checked.add(str(path))
    odd = root / "odd"
    odd.mkdir()
    for depth in (8, 64, 400, 3000):
        path = odd / f"deep-{depth}.dcm"
        path.write_bytes(deep_nesting(depth))
        corpus.expected.append(str(path))
        corpus.checked.add(str(path))
        corpus.kinds[str(path)] = "nest"
    specials = {
        "empty.dcm": lambda p: p.write_bytes(b""),
        "evil\x1b[31mname\x07.dcm": lambda p: p.write_bytes(bases[0]),
        "fifo": lambda p: os.mkfifo(p),
        "devnull": lambda p: os.symlink("/dev/null", p),
        "folder-link": lambda p: os.symlink(odd.parent / "d00", p),
        "broken-link": lambda p: os.symlink(odd / "nothing-here", p),
    }
    for name, make in specials.items():
        path = odd / name
        make(path)
        corpus.expected.append(str(path))
        corpus.kinds[str(path)] = "special"
    sock_path = odd / "socket"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))  # the socket file stays after close
    corpus.expected.append(str(sock_path))
    corpus.kinds[str(sock_path)] = "special"
    raw = os.fsencode(str(odd)) + b"/latin1-\xe9\xff.dcm"
    with open(raw, "wb") as stream:
        stream.write(bases[1])
    corpus.expected.append(os.fsdecode(raw))
    corpus.kinds[os.fsdecode(raw)] = "special"
    (odd / ".hidden.dcm").write_bytes(bases[0])  # skipped by the walk: no record
    empty = folder / "empty-folder"
    empty.mkdir()
    corpus.extra_args.append(str(empty))
    corpus.expected.append(str(empty))
    corpus.kinds[str(empty)] = "special"
    return corpus


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root`` (symlinks and special files not followed)."""
    import hashlib

    out = {}
    for folder, _, names in os.walk(os.fsencode(str(root))):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as stream:
                out[os.fsdecode(path)] = hashlib.sha256(stream.read()).hexdigest()
    return out
