"""What a print job asks of the printer: the film session, film box and image box settings.

``FilmOptions`` holds the command line's choices in DICOM's words, checked
and normalised (``parse_layout("2,3")`` -> ``STANDARD\\2,3``,
``normalize_film_size("14x17")`` -> ``14INX17IN``).  A value that DICOM
defines as an enumeration (orientation, polarity, priority) must be one of
its values (a usage error otherwise); a value that DICOM lists only as
"defined terms" (film size, medium, destination, magnification) may be
something else a printer knows, so it passes with a warning.

Attributes we were not asked for are not sent: the printer uses its own
defaults, and the records report the values the printer says it used.

Importable without pydicom or numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..stream.records import DcmtoolsError, ExitStatus

# PS3.3 C.13.8 Film Size ID defined terms, with their size (width, height) in mm, portrait.
FILM_SIZES: dict[str, tuple[float, float]] = {
    "8INX10IN": (203.2, 254.0),
    "8_5INX11IN": (215.9, 279.4),
    "10INX12IN": (254.0, 304.8),
    "10INX14IN": (254.0, 355.6),
    "11INX14IN": (279.4, 355.6),
    "11INX17IN": (279.4, 431.8),
    "14INX14IN": (355.6, 355.6),
    "14INX17IN": (355.6, 431.8),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}
MEDIUM_TYPES = ("PAPER", "CLEAR FILM", "BLUE FILM", "MAMMO CLEAR FILM", "MAMMO BLUE FILM")
MAGNIFICATION_TYPES = ("REPLICATE", "BILINEAR", "CUBIC", "NONE")
ORIENTATIONS = ("PORTRAIT", "LANDSCAPE")
POLARITIES = ("NORMAL", "REVERSE")
PRIORITIES = ("HIGH", "MED", "LOW")
DESTINATIONS = ("MAGAZINE", "PROCESSOR")  # and BIN_i
BITS_CHOICES = ("auto", "8", "12")

_CS_RE = re.compile(r"^[A-Z0-9_ ]{1,16}$")


def usage(message: str, hint: str | None = None) -> DcmtoolsError:
    return DcmtoolsError("bad_option", message, hint, ExitStatus.USAGE)


@dataclass(frozen=True)
class Layout:
    """An Image Display Format: ``STANDARD\\C,R`` (C columns, R rows), ``ROW\\a,b,..`` or ``COL\\a,b,..``."""

    kind: str  # STANDARD, ROW or COL
    numbers: tuple[int, ...]

    @property
    def value(self) -> str:
        return f"{self.kind}\\{','.join(str(n) for n in self.numbers)}"

    @property
    def boxes(self) -> int:
        """How many images one film holds."""
        if self.kind == "STANDARD":
            return self.numbers[0] * self.numbers[1]
        return sum(self.numbers)

    def cells(self) -> list[tuple[int, int, int, int]]:
        """Each image box as (row, column, row count, column count) of the grid it sits in,
        in Image Box Position order (left to right, top to bottom; COL: top to bottom, left to right)."""
        if self.kind == "STANDARD":
            columns, rows = self.numbers
            return [(r, c, rows, columns) for r in range(rows) for c in range(columns)]
        cells = []
        if self.kind == "ROW":  # each number: the images in that row
            for r, count in enumerate(self.numbers):
                cells += [(r, c, len(self.numbers), count) for c in range(count)]
        else:  # COL: each number: the images in that column
            for c, count in enumerate(self.numbers):
                cells += [(r, c, count, len(self.numbers)) for r in range(count)]
        return cells


def parse_layout(text: str) -> Layout:
    """``C,R`` (or ``CxR``) for STANDARD\\C,R; ``STANDARD\\C,R``, ``ROW\\2,1``, ``COL\\1,2`` as DICOM writes them."""
    raw = text.strip().upper().replace("/", "\\")
    kind = "STANDARD"
    if "\\" in raw:
        kind, _, raw = raw.partition("\\")
        kind = kind.strip()
    if kind not in ("STANDARD", "ROW", "COL"):
        raise usage(
            f"layout {text!r}: {kind!r} is not a layout dcmtools can fill",
            "use C,R (columns,rows, e.g. 2,3), or ROW\\a,b,... / COL\\a,b,... (images per row / column)",
        )
    parts = [p.strip() for p in re.split(r"[,X]", raw)] if kind == "STANDARD" else [p.strip() for p in raw.split(",")]
    try:
        numbers = tuple(int(p) for p in parts)
    except ValueError:
        numbers = ()
    if not numbers or any(n < 1 or n > 99 for n in numbers) or (kind == "STANDARD" and len(numbers) != 2):
        raise usage(
            f"layout {text!r} is not valid",
            "write columns,rows (e.g. `layout` 2,2 for four images on a film, 1,1 for one), each 1-99",
        )
    return Layout(kind, numbers)


def normalize_film_size(text: str) -> tuple[str, str | None]:
    """A Film Size ID from ``14INX17IN``, ``14x17``, ``14x17in``, ``24x30cm``, ``a4``, ``8.5x11``.

    Returns ``(value, warning)``: the warning says when the value is not a
    DICOM defined term (some printers know others, e.g. CURRENT).
    """
    raw = text.strip().upper().replace(" ", "")
    match = re.fullmatch(r"(\d+(?:[._]\d+)?)(IN|CM)?X(\d+(?:[._]\d+)?)(IN|CM)?", raw)
    if match:
        a, unit_a, b, unit_b = match.groups()
        unit = unit_a or unit_b or ("CM" if float(a.replace("_", ".")) >= 20 else "IN")
        value = f"{a.replace('.', '_')}{unit}X{b.replace('.', '_')}{unit}"
    else:
        value = raw
    if not _CS_RE.match(value):
        raise usage(f"film size {text!r} is not valid", "use one of " + ", ".join(FILM_SIZES))
    if value not in FILM_SIZES:
        return value, f"film size {value} is not one DICOM defines ({', '.join(FILM_SIZES)}); the printer may refuse it"
    return value, None


def _enumerated(value: str | None, allowed: tuple[str, ...], what: str, option: str) -> str | None:
    if value is None:
        return None
    upper = value.strip().upper()
    if upper not in allowed:
        raise usage(f"{option} {value!r} is not valid", f"{what} is one of " + ", ".join(allowed))
    return upper


def _defined_term(
    value: str | None, known: tuple[str, ...], option: str, warnings: list[str], pattern: str | None = None
) -> str | None:
    if value is None:
        return None
    upper = " ".join(value.strip().upper().split())
    if not _CS_RE.match(upper):
        raise usage(f"{option} {value!r} is not valid", "use one of " + ", ".join(known))
    if upper not in known and not (pattern and re.fullmatch(pattern, upper)):
        warnings.append(f"{option} {upper} is not one DICOM defines ({', '.join(known)}); the printer may refuse it")
    return upper


def parse_density(value: str | None, option: str) -> str | None:
    """BLACK, WHITE, or a density in hundredths of optical density (e.g. 150 = 1.5 OD)."""
    if value is None:
        return None
    upper = value.strip().upper()
    if upper in ("BLACK", "WHITE") or (upper.isdigit() and int(upper) <= 9999):
        return upper
    raise usage(
        f"{option} {value!r} is not valid", "use BLACK, WHITE, or a density in hundredths of OD (e.g. 150 for 1.50 OD)"
    )


def parse_window(text: str | None) -> tuple[float, float] | str | None:
    """``CENTER,WIDTH`` (e.g. ``40,400`` or ``-600,1500``), or ``minmax``; None: the file's own window."""
    if text is None:
        return None
    raw = text.strip().lower()
    if raw in ("minmax", "min-max", "auto"):
        return "minmax"
    if raw in ("file", "default"):
        return None
    parts = raw.replace(" ", "").split(",")
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise usage(f"`window` {text!r} is not valid", "write CENTER,WIDTH (e.g. `window` 40,400), or minmax") from None
    if width < 1:
        raise usage(f"`window` {text!r}: the width must be at least 1", "e.g. `window` 40,400")
    return (center, width)


def parse_frames(text: str | None) -> list[tuple[int, int | None]] | None:
    """``all`` (None), or frame numbers from 1: ``1``, ``1,3``, ``2-5``, ``10-`` (to the last)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    ranges: list[tuple[int, int | None]] = []
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d*))?", part)
        if not match or int(match[1]) < 1:
            raise usage(
                f"`frames` {text!r} is not valid",
                "write frame numbers from 1: 1,3,5 or 2-10 or 5- (to the last), or all",
            )
        first = int(match[1])
        if match[2] is None:
            last: int | None = first
        elif match[2] == "":
            last = None
        else:
            last = int(match[2])
            if last < first:
                raise usage(f"`frames` {text!r}: {part} is backwards", f"write {last}-{first}")
        ranges.append((first, last))
    return ranges


def select_frames(ranges: list[tuple[int, int | None]] | None, count: int) -> list[int]:
    """The 0-based frame indexes that ``ranges`` selects in an image of ``count`` frames (in order, no repeats)."""
    if ranges is None:
        return list(range(count))
    chosen: list[int] = []
    seen: set[int] = set()
    for first, last in ranges:
        stop = count if last is None else min(last, count)
        for number in range(first, stop + 1):
            if number <= count and number - 1 not in seen:
                seen.add(number - 1)
                chosen.append(number - 1)
    return chosen


@dataclass
class FilmOptions:
    """Every setting of a print job (None: not sent, the printer's default applies)."""

    layout: Layout = field(default_factory=lambda: Layout("STANDARD", (1, 1)))
    film_size: str | None = None
    orientation: str | None = None
    copies: int | None = None
    priority: str | None = None
    medium: str | None = None
    destination: str | None = None
    magnification: str | None = None
    polarity: str | None = None
    border_density: str | None = None
    empty_density: str | None = None
    label: str | None = None
    bits: str = "auto"  # auto: 12-bit when the printer takes it, else 8
    window: tuple[float, float] | str | None = None  # (center, width), "minmax", or None (the file's)
    frames: list[tuple[int, int | None]] | None = None  # None: every frame of a multi-frame image
    presentation_lut: bool = True  # an IDENTITY Presentation LUT when the printer supports the SOP class
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_strings(
        cls,
        *,
        layout: str | None = None,
        film_size: str | None = None,
        orientation: str | None = None,
        copies: int | None = None,
        priority: str | None = None,
        medium: str | None = None,
        destination: str | None = None,
        magnification: str | None = None,
        polarity: str | None = None,
        border_density: str | None = None,
        empty_density: str | None = None,
        label: str | None = None,
        bits: str | int | None = None,
        window: str | None = None,
        frames: str | None = None,
        presentation_lut: bool = True,
    ) -> FilmOptions:
        """Options as a command line gives them (strings), checked; raises a usage ``DcmtoolsError``."""
        warnings: list[str] = []
        size = None
        if film_size is not None:
            size, warning = normalize_film_size(film_size)
            if warning:
                warnings.append(warning)
        if copies is not None and not 1 <= int(copies) <= 99:
            raise usage(f"`copies` {copies} is out of range", "print 1 to 99 copies")
        bits_text = "auto" if bits is None else str(bits).lower()
        if bits_text not in BITS_CHOICES:
            raise usage(f"`bits` {bits!r} is not valid", "use 8, 12 or auto")
        if label is not None and (len(label) > 64 or "\\" in label):
            raise usage(
                f"`label` {label!r} is too long or has a backslash", "a film session label has up to 64 characters"
            )
        return cls(
            layout=parse_layout(layout) if layout else Layout("STANDARD", (1, 1)),
            film_size=size,
            orientation=_enumerated(orientation, ORIENTATIONS, "the film orientation", "`orientation`"),
            copies=int(copies) if copies is not None else None,
            priority=_enumerated(_priority_alias(priority), PRIORITIES, "the print priority", "`priority`"),
            medium=_defined_term(medium, MEDIUM_TYPES, "`medium`", warnings),
            destination=_defined_term(destination, DESTINATIONS, "`destination`", warnings, r"BIN_\d+"),
            magnification=_defined_term(magnification, MAGNIFICATION_TYPES, "`magnification`", warnings),
            polarity=_enumerated(polarity, POLARITIES, "the polarity", "`polarity`"),
            border_density=parse_density(border_density, "`border_density`"),
            empty_density=parse_density(empty_density, "`empty_density`"),
            label=label,
            bits=bits_text,
            window=parse_window(window),
            frames=parse_frames(frames),
            presentation_lut=presentation_lut,
            warnings=warnings,
        )

    # -- what goes into each N-CREATE / N-SET (keyword -> value)
    def session_attributes(self) -> dict[str, Any]:
        return _present(
            NumberOfCopies=str(self.copies) if self.copies is not None else None,
            PrintPriority=self.priority,
            MediumType=self.medium,
            FilmDestination=self.destination,
            FilmSessionLabel=self.label,
        )

    def film_box_attributes(self) -> dict[str, Any]:
        return _present(
            ImageDisplayFormat=self.layout.value,
            FilmOrientation=self.orientation,
            FilmSizeID=self.film_size,
            MagnificationType=self.magnification,
            BorderDensity=self.border_density,
            EmptyImageDensity=self.empty_density,
        )

    def image_box_attributes(self) -> dict[str, Any]:
        return _present(Polarity=self.polarity)

    def describe(self) -> dict[str, Any]:
        """The settings as a record's fields (only those given)."""
        return _present(
            layout=self.layout.value,
            film_size=self.film_size,
            orientation=self.orientation,
            copies=self.copies,
            priority=self.priority,
            medium=self.medium,
            destination=self.destination,
            magnification=self.magnification,
            polarity=self.polarity,
            border_density=self.border_density,
            empty_density=self.empty_density,
            label=self.label,
        )


def _priority_alias(value: str | None) -> str | None:
    if value is not None and value.strip().upper() in ("MEDIUM", "NORMAL"):
        return "MED"
    return value


def _present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def film_dimensions(film_size: str | None, orientation: str | None) -> tuple[float, float, bool]:
    """(width, height) in mm of a film as it lies, and whether the size is known (else 14x17in is assumed)."""
    known = film_size in FILM_SIZES if film_size else False
    width, height = FILM_SIZES.get(film_size or "", FILM_SIZES["14INX17IN"])
    if orientation == "LANDSCAPE":
        width, height = height, width
    return width, height, known
