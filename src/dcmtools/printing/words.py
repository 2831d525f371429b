"""Print management in plain words: DIMSE statuses, printer status, attributes.

``explain(0x0106, "film box", attribute="FilmSizeID", value="A3")`` ->
``("failure", "film size A3 is not supported by this printer", "ask for a film
size it supports (--film-size), or leave --film-size out for its default")``.

Status codes: PS3.7 C (general) and PS3.4 H.4 (print management).  Printer
Status Info: PS3.3 C.13.9.1 defined terms.  Importable without pydicom.
"""

from __future__ import annotations

import re

# code -> (category, what happened)
STATUS_WORDS: dict[int, tuple[str, str]] = {
    0x0000: ("success", "done"),
    0x0001: ("warning", "the printer does not support some optional attributes we asked for"),
    0x0105: ("failure", "the printer does not support an attribute we sent"),
    0x0106: ("failure", "the printer does not accept a value we sent"),
    0x0107: ("warning", "the printer ignored attributes it does not support"),
    0x0110: ("failure", "the printer failed to process the request"),
    0x0111: ("failure", "the printer already has an object with this UID"),
    0x0112: ("failure", "the printer does not know this object (it may have been deleted)"),
    0x0116: ("warning", "the printer replaced a value it does not support with its own default"),
    0x0117: ("failure", "the printer says the object is not valid"),
    0x0118: ("failure", "the printer does not support this kind of object (SOP class)"),
    0x0119: ("failure", "the object's SOP class does not match the instance"),
    0x0120: ("failure", "the printer needs an attribute we did not send"),
    0x0121: ("failure", "the printer needs a value for an attribute we sent empty"),
    0x0122: ("failure", "the printer refuses this SOP class"),
    0x0123: ("failure", "the printer does not support this action"),
    0x0124: ("failure", "the printer says we are not authorised to do this"),
    0x0210: ("failure", "the printer saw a duplicate message ID"),
    0x0211: ("failure", "the printer does not recognise the operation"),
    0x0212: ("failure", "the printer says an argument is mistyped"),
    0x0213: ("failure", "the printer is out of resources for now"),
    0xB600: ("warning", "the printer does not support memory allocation"),
    0xB601: ("warning", "the printer cannot print a whole film session at once (collation)"),
    0xB602: ("warning", "the film session holds no images (empty film)"),
    0xB603: ("warning", "the film holds no images (empty film)"),
    0xB604: ("warning", "an image was larger than its box and was shrunk to fit"),
    0xB605: ("warning", "the density asked for is outside the printer's range; it uses its own minimum or maximum"),
    0xB609: ("warning", "an image was larger than its box and was cropped to fit"),
    0xB60A: ("warning", "an image was larger than its box and was decimated to fit"),
    0xC600: ("failure", "the film session has no film to print"),
    0xC601: ("failure", "the printer's print queue is full"),
    0xC602: ("failure", "the printer's print queue is full"),
    0xC603: ("failure", "an image is larger than its image box"),
    0xC605: ("failure", "the printer has not enough memory to store the image"),
    0xC613: ("failure", "a combined print image is larger than its image box"),
    0xC616: ("failure", "an earlier film has not been printed, and this printer cannot print whole sessions"),
}

STATUS_HINTS: dict[int, str] = {
    0x0110: "check the printer's log or display; try again",
    0x0118: "the printer may not support grayscale printing, or not this object; see its conformance statement",
    0x0122: "the printer may not support grayscale printing; see its conformance statement",
    0x0124: "ask the printer's administrator to allow our calling AE title (`aet`)",
    0x0213: "wait until the printer has finished other jobs, then try again",
    0xC601: "wait until the printer's queue empties, then try again",
    0xC602: "wait until the printer's queue empties, then try again",
    0xC603: "use a layout with fewer images (`layout`), a larger `film_size`, or smaller images",
    0xC605: "print fewer images per film (`layout`), use `bits` 8, or try again when the printer is idle",
    0xC613: "use a layout with fewer images (`layout`), or a larger `film_size`",
}

# attribute keyword -> (what it is called, the option that sets it)
ATTRIBUTES: dict[str, tuple[str, str | None]] = {
    "FilmSizeID": ("film size", "`film_size`"),
    "ImageDisplayFormat": ("layout", "`layout`"),
    "FilmOrientation": ("film orientation", "`orientation`"),
    "MagnificationType": ("magnification", "`magnification`"),
    "BorderDensity": ("border density", "`border_density`"),
    "EmptyImageDensity": ("empty image density", "`empty_density`"),
    "MediumType": ("medium", "`medium`"),
    "FilmDestination": ("film destination", "`destination`"),
    "PrintPriority": ("print priority", "`priority`"),
    "NumberOfCopies": ("number of copies", "`copies`"),
    "FilmSessionLabel": ("film session label", "`label`"),
    "Polarity": ("polarity", "`polarity`"),
    "ReferencedPresentationLUTSequence": ("IDENTITY Presentation LUT", "`no_presentation_lut`"),
    "ReferencedFilmSessionSequence": ("reference to the film session", None),
    "BasicGrayscaleImageSequence": ("image", None),
    "BitsStored": ("image depth", "`bits`"),
}

TAG_KEYWORDS: dict[int, str] = {
    0x20100050: "FilmSizeID",
    0x20100010: "ImageDisplayFormat",
    0x20100040: "FilmOrientation",
    0x20100060: "MagnificationType",
    0x20100100: "BorderDensity",
    0x20100110: "EmptyImageDensity",
    0x20000030: "MediumType",
    0x20000040: "FilmDestination",
    0x20000020: "PrintPriority",
    0x20000010: "NumberOfCopies",
    0x20000050: "FilmSessionLabel",
    0x20200020: "Polarity",
    0x20500500: "ReferencedPresentationLUTSequence",
    0x20100500: "ReferencedFilmSessionSequence",
    0x20200110: "BasicGrayscaleImageSequence",
    0x00280101: "BitsStored",
}


def explain(
    code: int,
    what: str = "request",
    *,
    attribute: str | None = None,
    value: object = None,
) -> tuple[str, str, str | None]:
    """``(category, message, hint)`` for status ``code`` of an operation on ``what``.

    ``attribute``/``value`` name the attribute the printer objected to, when
    known (from its Attribute Identifier List, or found by trying them one
    at a time).
    """
    category, words = STATUS_WORDS.get(code, (_category(code), ""))
    hint = STATUS_HINTS.get(code)
    if attribute is not None and code in (0x0105, 0x0106, 0x0116, 0x0107, 0x0120, 0x0121):
        name, option = ATTRIBUTES.get(attribute, (_spaced(attribute), None))
        shown = _shown(attribute, value)
        if code in (0x0106, 0x0116):
            words = (
                f"{name} {shown} is not supported by this printer"
                if shown
                else f"the {name} we sent is not supported by this printer"
            )
            if code == 0x0116:
                words += " (it used its own default instead)"
            hint = _value_hint(attribute, option)
        elif code in (0x0105, 0x0107):
            words = f"this printer does not support setting the {name}"
            if code == 0x0107:
                words += " (it ignored it)"
            hint = f"leave {option} out" if option else None
        else:
            words = f"the printer needs the {name}"
            hint = f"give {option}" if option else None
    if not words:
        words = {
            "failure": "the printer refused the request",
            "warning": "the printer warned about the request",
            "success": "done",
        }.get(category, "unexpected answer")
    return category, words, hint


def _value_hint(attribute: str, option: str | None) -> str | None:
    if attribute == "FilmSizeID":
        return "ask for a film size this printer supports (`film_size`), or leave `film_size` out for its default"
    if attribute == "ImageDisplayFormat":
        return (
            "choose another `layout` (e.g. 1,1 or 2,2); the printer's conformance statement lists its display formats"
        )
    if attribute == "BitsStored":
        return "use `bits` 8"
    if attribute == "ReferencedPresentationLUTSequence":
        return "use `no_presentation_lut`"
    if option:
        return f"choose another {option} (see the printer's conformance statement), or leave it out for the printer's default"
    return None


def _shown(attribute: str, value: object) -> str:
    if value is None or attribute.endswith("Sequence"):
        return ""
    if attribute == "BitsStored":
        return f"of {value} bits"
    return str(value)


def _spaced(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", keyword).lower()


def _category(code: int) -> str:
    if code == 0:
        return "success"
    if 0xB000 <= code <= 0xBFFF or code in (0x0001, 0x0107, 0x0116):
        return "warning"
    return "failure"


def is_ok(code: int) -> bool:
    """Success or warning: the printer did what was asked."""
    return STATUS_WORDS.get(code, (_category(code), ""))[0] != "failure"


# ------------------------------------------------------------ printer status

PRINTER_STATUS = {
    "NORMAL": "the printer is ready",
    "WARNING": "the printer works but needs attention",
    "FAILURE": "the printer cannot print",
}

_STATUS_INFO = {
    "NORMAL": "no problem reported",
    "BAD RECEIVE MGZ": "problem with the film receive magazine: films cannot be moved into it",
    "BAD SUPPLY MGZ": "problem with a film supply magazine: films cannot be taken from it",
    "CALIBRATING": "the printer is calibrating itself; it should be ready shortly",
    "CALIBRATION ERR": "the printer's calibration failed; print quality may suffer",
    "CHECK CHEMISTRY": "problem with the processor chemicals; print quality may suffer",
    "CHECK SORTER": "error in the film sorter",
    "CHEMICALS EMPTY": "the processor has no chemicals; nothing prints until they are refilled",
    "CHEMICALS LOW": "the processor's chemicals are low; it may stop soon",
    "COVER OPEN": "a cover, drawer or door of the printer or processor is open",
    "ELEC CONFIG ERR": "the printer is configured wrongly for this job",
    "ELEC DOWN": "the printer is down (electrical hardware problem)",
    "ELEC SW ERROR": "the printer is down (software error)",
    "EXPOSURE FAILURE": "the exposure device has failed",
    "FILM JAM": "a film is jammed in the printer or processor",
    "FILM TRANSP ERR": "the film transport has failed (there may be a jam)",
    "FINISHER EMPTY": "the finisher is empty",
    "FINISHER ERROR": "the finisher is not working",
    "FINISHER LOW": "the finisher is low on supplies",
    "NO RECEIVE MGZ": "the film receive magazine is not available",
    "NO RIBBON": "the ribbon cartridge needs to be replaced",
    "NO SUPPLY MGZ": "the supply magazine for this job is not available",
    "CHECK PRINTER": "the printer needs an operator before it can print",
    "CHECK PROC": "the processor needs an operator before it can print",
    "PRINTER DOWN": "the printer is not working",
    "PRINTER BUSY": "the printer is busy; it should be ready without anyone's help",
    "PRINT BUFF FULL": "the printer's buffer is full; try again later",
    "PRINTER INIT": "the printer is starting up (warming up)",
    "PRINTER OFFLINE": "the printer was switched offline by an operator",
    "PROC DOWN": "the processor is not working",
    "PROC INIT": "the processor is starting up (warming up)",
    "PROC OVERFLOW FL": "the processor's chemicals are nearly at the overflow mark",
    "PROC OVERFLOW HI": "the processor's chemicals have reached the overflow mark",
    "QUEUED": "print job in the queue",
    "RECEIVER FULL": "the film receive magazine is full",
    "REQ MED NOT INST": "the requested film or paper is not installed (an operator can install it)",
    "REQ MED NOT AVAI": "the requested film or paper is not available on this printer",
    "RIBBON ERROR": "problem with the print ribbon",
    "SUPPLY EMPTY": "the printer is out of film",
    "SUPPLY LOW": "the film supply is low",
    "UNKNOWN": "an unspecified problem",
}
_MEDIA = {"BLUE": "blue film", "CLR": "clear film", "PAPR": "paper", "TRANS": "transparency"}


def status_info_words(info: str) -> str:
    """Printer Status Info in words: ``EMPTY 14X17 BLUE`` -> "the 14x17 inch blue film supply is empty"."""
    text = " ".join(str(info or "").upper().split())
    if text in _STATUS_INFO:
        return _STATUS_INFO[text]
    match = re.fullmatch(r"(EMPTY|LOW) (\d+X\d+|A4)(?: (BLUE|CLR|PAPR|TRANS))?", text)
    if match:
        state, size, medium = match.groups()
        if size == "A4":
            where = "A4"
        else:
            unit = "cm" if size.startswith("24") else "inch"
            where = f"{size.lower()} {unit}"
        supply = _MEDIA.get(medium or "", "film")
        return f"the {where} {supply} supply is {'empty' if state == 'EMPTY' else 'low'}"
    return "the printer's own code (see its manual)" if text else ""
