"""DICOM Basic Grayscale Print: images laid out on films and sent to a film or paper printer.

Public API (import from ``dcmtools.printing``)::

    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.printing import FilmOptions, print_files, preview_files, printer_status

    film = FilmOptions.from_strings(layout="2,2", film_size="14x17", window="40,400")
    for record in print_files(parse_peer("PRINTER@10.0.0.9:104"), ["ct/"], film, NetOptions()):
        print(record)

``print_files(peer, inputs, film, options)``
    yields a ``printer`` record (the printer's status, asked first), one
    ``file`` record per input that cannot be printed (not DICOM, no image,
    cannot be decoded), and one ``film`` record per film: its settings as
    the printer reports them, its images (path, frame, position, window,
    bits ...), the SOP Instance UIDs the printer assigned, ``ok``.  A film
    the printer refuses has ``ok: false`` and ``error`` (status, operation,
    the refused attribute and what to do); when the refusal would repeat on
    every film (film box settings, image box settings) no further film is
    tried.  Raises ``DcmtoolsError`` when the run cannot go on (connection,
    association, a refused film session, a printer in FAILURE).
``preview_files(inputs, film, out_dir, overwrite=False)``
    the same films drawn into DICOM Secondary Capture images
    ``out_dir/film-0001.dcm`` ... instead of printing (``--dry-run``).
``printer_status(peer, options)``
    the printer's status record (``--status``).
``read_images(path, window=..., frames=...)``, ``PreparedImage``
    image preparation (``prepare.py``): modality LUT, VOI, MONOCHROME1,
    colour to grayscale, P-values of 8 or 12 bits.

Modules: ``options`` (settings and their checks), ``prepare`` (pixels),
``scu`` (the DIMSE-N sequence), ``preview`` (dry run), ``words`` (statuses
and printer states in words).  Nothing here is imported by the CLI at start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode, error_record
from .options import FilmOptions, Layout, parse_layout
from .prepare import PreparedImage, read_images

LOGGER = logging.getLogger("dcmtools.print")

__all__ = [
    "FilmOptions",
    "Layout",
    "PreparedImage",
    "fatal_record_type",
    "films",
    "parse_layout",
    "preview_files",
    "print_files",
    "printer_status",
    "read_images",
]


def films(inputs: Iterable[Any], film: FilmOptions) -> Iterator[tuple[str, Any]]:
    """The inputs grouped into films: ``("film", [PreparedImage, ...])`` or ``("error", record)``.

    ``inputs`` are paths or ``dcmtools.stream.inputs.InputItem``; images are read
    one at a time, so at most one film's images are in memory.
    """
    batch: list[PreparedImage] = []
    boxes = film.layout.boxes
    for item in inputs:
        path = item if isinstance(item, (str, os.PathLike)) else item.path
        error = None if isinstance(item, (str, os.PathLike)) else item.error
        path = os.fspath(path)
        if error is not None:
            yield "error", error_record("file", error, path=path)
            continue
        try:
            for image in read_images(path, window=film.window, frames=film.frames):
                batch.append(image)
                if len(batch) == boxes:
                    yield "film", batch
                    batch = []
        except DcmtoolsError as exc:
            yield "error", error_record("file", exc, path=path)
    if batch:
        yield "film", batch


def ahead(items: Iterable[Any], depth: int = 2) -> Generator[Any, None, None]:
    """``items`` produced by a thread, up to ``depth`` ahead of the consumer.

    Printing waits for the printer after each image box and each film; the
    next film's images are read and prepared meanwhile.  Exceptions of the
    producer come out here; closing this generator stops the producer.
    """
    import queue
    import threading

    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((True, done))
        except BaseException as exc:  # handed to the consumer
            slots.put((False, exc))

    thread = threading.Thread(target=produce, name="dcmtools-print-prepare", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = slots.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()


def film_warnings(images: list[PreparedImage]) -> list[str]:
    """What a person should know about a film's content (mixed patients)."""
    patients = {(image.patient_id, image.patient_name) for image in images if image.patient_id or image.patient_name}
    if len(patients) > 1:
        return [f"this film holds images of {len(patients)} different patients"]
    return []


def print_files(peer: Any, inputs: Iterable[Any], film: FilmOptions, options: Any = None) -> Iterator[dict[str, Any]]:
    """Print ``inputs`` on ``peer`` (see the module docs); yields records."""
    from ..net import NetOptions, associate
    from ..net.assoc import no_context_error
    from .dimse import PrintSCU, ResponseLog, print_contexts, printer_failure, printer_record
    from .scu import FilmPrinter

    options = options or NetOptions()
    log = ResponseLog()
    contexts = print_contexts(film.presentation_lut)
    with associate(peer, contexts, options, evt_handlers=[log.handler()]) as assoc:
        scu = PrintSCU(assoc, peer, options.timeout_for(peer), log)
        if scu.meta is None:
            raise no_context_error(peer, contexts[:1])
        record, answer = printer_record(scu, peer)
        if not answer.ok:
            record["warnings"] = [
                f"the printer did not report its status ({record.get('status_meaning')}); printing anyway"
            ]
        yield record
        if record.get("printer_status") == "FAILURE":
            raise printer_failure(record)
        printer = FilmPrinter(scu, film)
        number = 0
        prepared = ahead(films(inputs, film))
        for kind, payload in prepared:
            if kind == "error":
                yield payload
                continue
            number += 1
            result = printer.print_film(number, payload)
            extra = film_warnings(payload)
            if extra:
                result["warnings"] = extra + result.get("warnings", [])
            if printer.stopped is not None and not result["ok"]:
                result["remaining_not_printed"] = True
            yield result
            if printer.stopped is not None:
                prepared.close()  # stops the preparing thread
                break
        for warning in printer.close():
            LOGGER.warning(warning)


def fatal_record_type(error: DcmtoolsError) -> str:
    """What a failure that ends a print run is about: the ``printer`` (in FAILURE), the
    ``film_session`` (refused), or else the ``association``; the type of the record that reports it."""
    if error.code == ErrorCode.PRINTER_FAILURE:
        return "printer"
    if str(error.details.get("operation", "")).startswith("Film Session"):
        return "film_session"
    return "association"


def preview_files(
    inputs: Iterable[Any], film: FilmOptions, out_dir: str, overwrite: bool = False
) -> Iterator[dict[str, Any]]:
    """Draw the films of ``inputs`` into ``out_dir/film-NNNN.dcm`` (``--dry-run``); yields records."""
    from .preview import compose_film, film_dataset, film_shape, write_film

    bits = 8 if film.bits == "8" else 12
    number = 0
    for kind, payload in films(inputs, film):
        if kind == "error":
            yield payload
            continue
        number += 1
        path = os.path.join(out_dir, f"film-{number:04d}.dcm")
        record: dict[str, Any] = {"type": "film", "film": number, "dry_run": True, "out": path}
        record.update(film.describe())
        record["images"] = [dict(image.describe(), position=i + 1, bits=bits) for i, image in enumerate(payload)]
        record["empty_boxes"] = film.layout.boxes - len(payload)
        record["bits"] = bits
        width, height = film_shape(film)
        record["preview_columns"], record["preview_rows"] = width, height
        warnings = film_warnings(payload)
        if film.film_size is None:
            warnings.append("the printer's default film size is not known here: drawn as 14INX17IN")
        if warnings:
            record["warnings"] = warnings
        try:
            pixels = compose_film(payload, film)
            write_film(path, film_dataset(pixels, bits, film, number, payload), overwrite=overwrite)
        except DcmtoolsError as exc:
            yield error_record("film", exc, **{k: v for k, v in record.items() if k not in ("type",)})
            continue
        record["ok"] = True
        yield record


def printer_status(peer: Any, options: Any = None) -> dict[str, Any]:
    """The printer's status as a record (``--status``): ``ok`` unless it reports FAILURE."""
    from ..net import NetOptions, associate
    from . import words
    from .dimse import PrintErrorCode, PrintSCU, ResponseLog, printer_record, status_contexts

    options = options or NetOptions()
    log = ResponseLog()
    with associate(peer, status_contexts(), options, evt_handlers=[log.handler()]) as assoc:
        scu = PrintSCU(assoc, peer, options.timeout_for(peer), log)
        record, answer = printer_record(scu, peer)
    if not answer.ok:
        category, message, hint = words.explain(answer.code, "printer")
        return error_record(
            "printer",
            DcmtoolsError(
                PrintErrorCode.REFUSED,
                f"the printer did not report its status: {message}",
                hint,
                status=f"0x{answer.code:04X}",
                operation="Printer N-GET",
            ),
            peer=str(peer),
        )
    record["ok"] = record.get("printer_status") != "FAILURE"
    if record.get("printer_status") == "WARNING":
        record["warning"] = True
    return record
