"""The Basic Grayscale Print Management SCU: the DIMSE-N sequence on one association.

    Printer N-GET (status)                      -> a "printer" record
    Presentation LUT N-CREATE (IDENTITY)         when the printer accepts the SOP class
    Film Session N-CREATE                        copies, priority, medium, destination, label
    for each film:
        Film Box N-CREATE                        layout, film size, orientation, magnification, densities
        Grayscale Image Box N-SET  x images      P-values, polarity
        Film Box N-ACTION (print)
        Film Box N-DELETE
    Film Session N-DELETE, Presentation LUT N-DELETE, release

The SOP Instance UIDs of the film session, film box and image boxes are the
ones the printer assigns, read from its responses (pynetdicom keeps the
Affected SOP Instance UID of an N-CREATE response to itself: an
``EVT_DIMSE_RECV`` handler keeps each response's command set).

When the printer refuses a film box, a film session or an image box with
"invalid attribute value" (0x0106), "no such attribute" (0x0105) or a
similar status and does not say which attribute (its Attribute Identifier
List), the SCU finds out by trying the values one at a time on throw-away
instances that it deletes again, so the message can say "film size A3 is not
supported by this printer" rather than "invalid attribute value".

``--bits auto``: the first image box is sent with 12-bit P-values; a printer
that cannot take 12 bits refuses it (as DCMTK's dcmprscp does with 0x0106),
and the SCU then sends 8-bit P-values for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..stream.records import DcmtoolsError, ExitStatus
from . import words
from .dimse import (
    FILM_BOX,
    FILM_SESSION,
    PRESENTATION_LUT,
    PROBED,
    Answer,
    PrintErrorCode,
    PrintRefused,
    PrintSCU,
    reference,
)
from .options import FilmOptions
from .prepare import PreparedImage

_SESSION_FIELDS = {
    "NumberOfCopies": "copies",
    "PrintPriority": "priority",
    "MediumType": "medium",
    "FilmDestination": "destination",
    "FilmSessionLabel": "label",
}
_FILM_FIELDS = {
    "ImageDisplayFormat": "layout",
    "FilmSizeID": "film_size",
    "FilmOrientation": "orientation",
    "MagnificationType": "magnification",
    "BorderDensity": "border_density",
    "EmptyImageDensity": "empty_density",
}


class FilmPrinter:
    """Prints films on one association; the film session is created with the first film."""

    def __init__(self, scu: PrintSCU, film: FilmOptions) -> None:
        self.scu = scu
        self.film = film
        self.session_uid: str | None = None
        self.session_values: dict[str, Any] = {}
        self.plut_uid: str | None = None
        self.bits = 8 if film.bits == "8" else 12
        self.bits_known = film.bits != "auto"
        self.stopped: DcmtoolsError | None = None  # set when no further film can succeed
        self.notes: list[str] = []

    # -- session
    def _open_session(self) -> None:
        scu = self.scu
        if self.film.presentation_lut and scu.presentation_lut:
            answer = scu.create(PRESENTATION_LUT, {"PresentationLUTShape": "IDENTITY"}, "Presentation LUT")
            if answer.ok and answer.instance_uid:
                self.plut_uid = answer.instance_uid
            else:
                self.notes.append(
                    f"the printer did not create an IDENTITY Presentation LUT (0x{answer.code:04X}); printed without one"
                )
        attributes = self.film.session_attributes()
        answer = scu.create(FILM_SESSION, attributes, "Film Session")
        if not answer.ok:
            raise self._refused(answer, "film session", "Film Session N-CREATE", attributes, self._probe_session)
        if not answer.instance_uid:
            raise DcmtoolsError(
                PrintErrorCode.BAD_RESPONSE,
                "the printer created the film session but did not say its UID",
                "the printer does not follow DICOM here; report it to its vendor",
                ExitStatus.FAILED,
            )
        self.session_uid = answer.instance_uid
        self.session_values = self._values(answer.attributes, _SESSION_FIELDS, attributes)
        if answer.warning:
            self.notes.append("film session: " + words.explain(answer.code, "film session")[1])

    def close(self) -> list[str]:
        """Delete the film session and the Presentation LUT; returns warnings."""
        warnings = []
        if self.session_uid:
            answer = self.scu.delete(FILM_SESSION, self.session_uid, "Film Session")
            if not answer.ok:
                warnings.append(
                    f"the printer did not delete the film session (0x{answer.code:04X}); the release ends it"
                )
            self.session_uid = None
        if self.plut_uid:
            self.scu.delete(PRESENTATION_LUT, self.plut_uid, "Presentation LUT")
            self.plut_uid = None
        return warnings

    # -- one film
    def print_film(self, number: int, images: list[PreparedImage]) -> dict[str, Any]:
        """Print one film with ``images`` (at most the layout's box count); returns its record.

        Raises ``DcmtoolsError`` for what ends the run (the film session was
        refused, the association failed); a refused film gives ``ok: false``.
        """
        if self.session_uid is None:
            self._open_session()
        record = self._record(number, images)
        try:
            self._film(record, images)
        except DcmtoolsError as exc:
            if exc.exit_status != ExitStatus.FAILED:
                raise  # the association failed: the run ends
            record["ok"] = False
            record["error"] = exc.as_error()
        for key in [k for k, v in record.items() if v is None]:
            del record[key]
        return record

    def _record(self, number: int, images: list[PreparedImage]) -> dict[str, Any]:
        record: dict[str, Any] = {"type": "film", "peer": str(self.scu.peer), "film": number, "ok": True}
        record.update(self.film.describe())
        for key in _FILM_FIELDS.values():  # the printer's values, in this order, come with its film box
            record.setdefault(key, None)
        record.update(self.session_values)
        record["images"] = [dict(image.describe(), position=i + 1) for i, image in enumerate(images)]
        record["empty_boxes"] = self.film.layout.boxes - len(images)
        return record

    def _film(self, record: dict[str, Any], images: list[PreparedImage]) -> None:
        scu = self.scu
        attributes = self.film.film_box_attributes()
        assert self.session_uid is not None  # the session is opened before the first film
        attributes["ReferencedFilmSessionSequence"] = reference(FILM_SESSION, self.session_uid)
        if self.plut_uid:
            attributes["ReferencedPresentationLUTSequence"] = reference(PRESENTATION_LUT, self.plut_uid)
        answer = scu.create(FILM_BOX, attributes, "Film Box")
        if not answer.ok:
            error = self._refused(answer, "film box", "Film Box N-CREATE", attributes, self._probe_film_box)
            self.stopped = error  # every film asks the same: none can succeed
            raise error
        box_uid = answer.instance_uid
        boxes = []
        if answer.attributes is not None and "ReferencedImageBoxSequence" in answer.attributes:
            boxes = [
                (str(item.ReferencedSOPClassUID), str(item.ReferencedSOPInstanceUID))
                for item in answer.attributes.ReferencedImageBoxSequence
            ]
        if not box_uid or len(boxes) < len(images):
            if box_uid:
                scu.delete(FILM_BOX, box_uid, "Film Box")
            self.stopped = DcmtoolsError(
                PrintErrorCode.BAD_RESPONSE,
                f"the printer created a film box with {len(boxes)} image boxes for layout {self.film.layout.value}"
                + ("" if box_uid else " and did not say its UID"),
                "the printer does not follow DICOM here; try another `layout`, or report it to its vendor",
                operation="Film Box N-CREATE",
            )
            raise self.stopped
        record.update(self._values(answer.attributes, _FILM_FIELDS, attributes))
        record["film_session_uid"] = self.session_uid
        record["film_box_uid"] = box_uid
        if self.plut_uid:
            record["presentation_lut"] = "IDENTITY"
        warnings = list(self.notes)
        self.notes.clear()
        if answer.warning:
            warnings.append("film box: " + words.explain(answer.code, "film box")[1])
        try:
            for position, ((sop_class, uid), image) in enumerate(zip(boxes, images, strict=False), start=1):
                bits, warning = self._set_image(sop_class, uid, position, image)
                record["images"][position - 1]["bits"] = bits
                if warning:
                    warnings.append(f"image box {position}: {warning}")
            record["bits"] = self.bits
            answer = scu.action(FILM_BOX, box_uid, "Film Box")
            if not answer.ok:
                category, message, hint = words.explain(answer.code, "film box")
                raise PrintRefused(f"the printer did not print the film: {message}", hint, answer, "Film Box N-ACTION")
            if answer.warning:
                warnings.append("print: " + words.explain(answer.code, "film box")[1])
            reply = answer.attributes
            if reply is not None and "ReferencedPrintJobSequence" in reply and reply.ReferencedPrintJobSequence:
                record["print_job_uid"] = str(reply.ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID)
            record["status"] = f"0x{answer.code:04X}"
        except DcmtoolsError as exc:
            if exc.exit_status != ExitStatus.FAILED:
                raise  # the association is gone: nothing to delete
            self._delete_film_box(box_uid, warnings)
            raise
        else:
            self._delete_film_box(box_uid, warnings)
        finally:
            if warnings:
                record["warnings"] = warnings

    def _delete_film_box(self, uid: str, warnings: list[str]) -> None:
        deleted = self.scu.delete(FILM_BOX, uid, "Film Box")
        if not deleted.ok:
            warnings.append(f"the printer did not delete the film box (0x{deleted.code:04X})")

    def _set_image(self, sop_class: str, uid: str, position: int, image: PreparedImage) -> tuple[int, str | None]:
        extra = self.film.image_box_attributes()
        answer = self.scu.set(sop_class, uid, image_box(position, image, self.bits, extra), "Image Box")
        note = None
        if not answer.ok and not self.bits_known and self.bits == 12:
            retry = self.scu.set(sop_class, uid, image_box(position, image, 8, extra), "Image Box")
            if retry.ok:
                self.bits, self.bits_known = 8, True
                note = f"the printer refused 12-bit images (0x{answer.code:04X}); printed with 8 bits"
                answer = retry
        if answer.ok:
            self.bits_known = True
            if answer.warning:
                warning = words.explain(answer.code, "image box")[1]
                note = f"{note}; {warning}" if note else warning
            return self.bits, note
        # Refused: which attribute?  Try the image alone, then each option with it.
        refused = self._named(answer)
        if not refused and answer.code in PROBED:
            refused = self._probe_image_box(sop_class, uid, position, image, extra)
        options = [(k, code) for k, code in refused if k != "BasicGrayscaleImageSequence"]
        if options:
            message, hint = _words("image box", options, extra)
            message = f"the printer refused image box {position}: {message}"
            self.stopped = DcmtoolsError(PrintErrorCode.REFUSED, message, hint)  # every image box asks the same
        else:
            message, hint = _words("image box", [(None, answer.code)], extra)
            message = (
                f"the printer refused image {position} ({image.columns}x{image.rows}, {self.bits} bits): {message}"
            )
            hint = hint or "try `bits` 8, or smaller images"
        raise PrintRefused(message, hint, answer, "Image Box N-SET", [k for k, _ in options])

    # -- diagnosis
    @staticmethod
    def _named(answer: Answer) -> list[tuple[str, int]]:
        return [(keyword, answer.code) for keyword in answer.attribute_keywords]

    def _refused(
        self, answer: Answer, what: str, operation: str, attributes: dict[str, Any], probe: Any
    ) -> PrintRefused:
        refused = self._named(answer)
        if not refused and answer.code in PROBED:
            refused = probe(attributes)
        message, hint = _words(what, refused or [(None, answer.code)], attributes)
        if not refused and answer.code in PROBED and len(attributes) > 1:
            tried = ", ".join(
                f"{words.ATTRIBUTES.get(k, (k,))[0]} {v}" for k, v in attributes.items() if not k.endswith("Sequence")
            )
            message += f" (we asked for: {tried})"
        return PrintRefused(
            f"the printer refused the {what}: {message}", hint, answer, operation, [k for k, _ in refused]
        )

    def _probe_session(self, attributes: dict[str, Any]) -> list[tuple[str, int]]:
        scu = self.scu

        def code(trial: dict[str, Any]) -> int:
            answer = scu.create(FILM_SESSION, trial, "Film Session (diagnosis)")
            if answer.ok and answer.instance_uid:
                scu.delete(FILM_SESSION, answer.instance_uid, "Film Session (diagnosis)")
            return answer.code

        if not words.is_ok(code({})):
            return []
        return [(k, c) for k, v in attributes.items() if not words.is_ok(c := code({k: v}))]

    def _probe_film_box(self, attributes: dict[str, Any]) -> list[tuple[str, int]]:
        scu = self.scu
        base = {
            "ImageDisplayFormat": "STANDARD\\1,1",
            "ReferencedFilmSessionSequence": attributes["ReferencedFilmSessionSequence"],
        }

        def code(trial: dict[str, Any]) -> int:
            answer = scu.create(FILM_BOX, trial, "Film Box (diagnosis)")
            if answer.ok and answer.instance_uid:
                scu.delete(FILM_BOX, answer.instance_uid, "Film Box (diagnosis)")
            return answer.code

        if not words.is_ok(code(base)):
            return []
        refused = []
        for keyword, value in attributes.items():
            if keyword == "ReferencedFilmSessionSequence" or (
                keyword == "ImageDisplayFormat" and value == base[keyword]
            ):
                continue
            result = code({**base, keyword: value})
            if not words.is_ok(result):
                refused.append((keyword, result))
        return refused

    def _probe_image_box(
        self, sop_class: str, uid: str, position: int, image: PreparedImage, extra: dict[str, Any]
    ) -> list[tuple[str, int]]:
        scu = self.scu
        alone = scu.set(sop_class, uid, image_box(position, image, self.bits, {}), "Image Box (diagnosis)")
        if not alone.ok:
            return [("BasicGrayscaleImageSequence", alone.code)]
        refused = []
        for keyword, value in extra.items():
            answer = scu.set(
                sop_class, uid, image_box(position, image, self.bits, {keyword: value}), "Image Box (diagnosis)"
            )
            if not answer.ok:
                refused.append((keyword, answer.code))
        return refused

    @staticmethod
    def _values(ds: Any, fields: dict[str, str], asked: dict[str, Any]) -> dict[str, Any]:
        """The values the printer says it uses (its N-CREATE response), else what we asked for."""
        values: dict[str, Any] = {}
        for keyword, name in fields.items():
            value = ds.get(keyword) if ds is not None else None
            if value in (None, ""):
                value = asked.get(keyword)
            if value in (None, ""):
                continue
            if keyword == "NumberOfCopies":
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    value = str(value)
            else:
                value = "\\".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value).strip()
            values[name] = value
        return values


def _words(what: str, refused: Sequence[tuple[str | None, int]], attributes: dict[str, Any]) -> tuple[str, str | None]:
    """One message (and hint) for the attributes a printer refused."""
    messages, hints = [], []
    for keyword, code in refused:
        _, message, hint = words.explain(
            code, what, attribute=keyword, value=attributes.get(keyword) if keyword else None
        )
        messages.append(message)
        if hint and hint not in hints:
            hints.append(hint)
    return "; ".join(messages), "; ".join(hints) or None


def image_box(position: int, image: PreparedImage, bits: int, extra: dict[str, Any]) -> Any:
    """The N-SET attribute list of a Basic Grayscale Image Box holding ``image`` as P-values."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.ImageBoxPosition = position
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    item = Dataset()
    item.SamplesPerPixel = 1
    item.PhotometricInterpretation = "MONOCHROME2"
    item.Rows = image.rows
    item.Columns = image.columns
    if image.aspect is not None:
        item.PixelAspectRatio = [str(image.aspect[0]), str(image.aspect[1])]
    item.BitsAllocated = 8 if bits == 8 else 16
    item.BitsStored = bits
    item.HighBit = bits - 1
    item.PixelRepresentation = 0
    pixels = image.pixels(bits)
    data = pixels.tobytes() if bits == 8 else pixels.astype("<u2", copy=False).tobytes()
    if len(data) % 2:
        data += b"\x00"
    item.add_new(0x7FE00010, "OB" if bits == 8 else "OW", data)
    ds.BasicGrayscaleImageSequence = [item]
    return ds
