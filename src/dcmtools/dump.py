"""``dcmtools dump`` as a library: DICOM files as records, DICOM JSON or text.

    from dcmtools.dump import dump
    for record in dump(["study/"], flat=True, tags=["PatientName", "Rows"]):
        print(record["path"], record.get("dataset"))

Each record is ``{"type": "file", "path", "ok", "transfer_syntax",
"sop_class_uid", "sop_instance_uid", "dataset", ["meta"], ["warnings"],
["bad_elements"], ["bulk_omitted"]}``; a file that cannot be read gives
``ok: false`` with ``error: {"code", "message"}`` (and, for a truncated file,
the ``dataset`` read before the cut).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .dicom import jsonmodel, reader, tagpath, textdump
from .dicom.values import Charset
from .stream.inputs import InputItem, iter_inputs
from .stream.parallel import map_ordered
from .stream.records import DcmtoolsError, ErrorCode, dumps, error_record

PIXEL_DATA = 0x7FE00010

# A job of the workers: (path, options), or the error record of an input that is no file.
Job = tuple[str, "DumpOptions"] | dict[str, Any]


@dataclass
class DumpOptions:
    flat: bool = False  # keyword form instead of the DICOM JSON model
    meta: bool = False  # include the file meta group (as "meta")
    tags: list[tuple[tagpath.Step, ...]] = field(default_factory=list)  # only these elements
    bulk_threshold: int = 1024  # inline binary values up to this many bytes
    bulk: bool = True  # note larger binary values (BulkDataURI); False: leave them out
    width: int | None = 64  # text: cut values longer than this (None: never)


def parse_tags(specs: Iterable[str]) -> list[tuple[tagpath.Step, ...]]:
    """``-t`` values as paths; raises ``tagpath.PathError`` for a bad one."""
    return [tagpath.parse_path(spec) for spec in specs]


def read(path: str, options: DumpOptions) -> reader.DicomFile:
    return reader.read(path, bulk_threshold=options.bulk_threshold)


def _selected(dataset: reader.Dataset, options: DumpOptions) -> reader.Dataset:
    if options.tags:
        dataset = tagpath.select(dataset, options.tags)
    if not options.bulk:
        # --no-pixels: binary data that was not read is left out entirely.
        dataset = _without_unread(dataset)
    return dataset


def _without_unread(ds: reader.Dataset) -> reader.Dataset:
    out = reader.Dataset(ds.little, ds.implicit)
    for tag, element in ds.items():
        if element.items is not None:
            element = reader.Element(
                tag, element.vr, element.length, None, element.offset, [_without_unread(i) for i in element.items]
            )
        elif element.value is None and element.length:
            continue
        out[tag] = element
    return out


def file_record(path: str, options: DumpOptions) -> dict[str, Any]:
    """The record of one file (never raises for a bad file: it becomes ok: false)."""
    try:
        dicom = read(path, options)
    except reader.ReadError as exc:
        record: dict[str, Any] = error_record("file", exc, path=path)
        if exc.partial is not None and exc.partial.dataset:
            record["dataset"] = _dataset_json(exc.partial, exc.partial.dataset, options, {})
        return record
    record = {
        "type": "file",
        "path": path,
        "ok": True,
        "transfer_syntax": dicom.transfer_syntax,
        "sop_class_uid": dicom.sop_class_uid,
        "sop_instance_uid": dicom.sop_instance_uid,
    }
    if dicom.is_dicomdir:
        record["dicomdir"] = True
    if options.meta:
        record["meta"] = (jsonmodel.to_flat if options.flat else jsonmodel.to_json_model)(dicom.meta)
    record["dataset"] = _dataset_json(dicom, dicom.dataset, options, record)
    if dicom.warnings:
        record["warnings"] = dicom.warnings
    return record


def _dataset_json(
    dicom: reader.DicomFile, dataset: reader.Dataset, options: DumpOptions, record: dict[str, Any]
) -> dict[str, Any]:
    """The dataset (the chosen elements of it) as JSON; notes bad and omitted elements in ``record``."""
    json_options = jsonmodel.JsonOptions(
        bulk_threshold=options.bulk_threshold, bulk_uri=options.bulk, path=dicom.path, deflated=dicom.deflated
    )
    charset = Charset.of(dataset)  # before selection, which may leave (0008,0005) out
    serialize = jsonmodel.to_flat if options.flat else jsonmodel.to_json_model
    out = serialize(_selected(dataset, options), json_options, charset)
    if json_options.errors:
        record.setdefault("bad_elements", []).extend(json_options.errors)
    if json_options.omitted and options.bulk:
        record.setdefault("bulk_omitted", []).extend(json_options.omitted)
    return out


def file_text(path: str, options: DumpOptions) -> tuple[bool, str, str]:
    """(ok, error code, the text tree) of one file."""
    try:
        dicom = read(path, options)
    except reader.ReadError as exc:
        lines = [f"# {path}", f"# FAILED ({exc.code}): {exc}"]
        if exc.partial is not None and exc.partial.dataset:
            lines.append("# what was read before the error:")
            partial = exc.partial.dataset
            lines.extend(textdump.render(_selected(partial, options), width=options.width, charset=Charset.of(partial)))
        return False, exc.code, "\n".join(lines)
    charset = Charset.of(dicom.dataset)
    dicom.dataset = _selected(dicom.dataset, options)
    rendered = textdump.render_file(dicom, meta=options.meta, width=options.width, charset=charset)
    return True, "", "\n".join(rendered)


# Workers get (path, options) and return what the parent writes, already encoded.
def json_line(job: tuple[str, DumpOptions]) -> tuple[bool, str, str]:
    path, options = job
    try:
        record = file_record(path, options)
    except Exception as exc:  # a bug must not stop the batch
        record = error_record("file", DcmtoolsError(ErrorCode.INTERNAL, f"internal error: {exc!r}"), path=path)
    ok = record["ok"]
    return ok, "" if ok else record["error"]["code"], dumps(record)


def text_block(job: tuple[str, DumpOptions]) -> tuple[bool, str, str]:
    path, options = job
    try:
        return file_text(path, options)
    except Exception as exc:
        return False, ErrorCode.INTERNAL, f"# {path}\n# FAILED (internal error): {exc!r}"


def warm_up(text: bool) -> None:
    """Load the dictionaries once in the parent, so forked workers start with them."""
    from .dicom import dictionary

    dictionary.vr_of(0x00100010)
    if text:
        textdump.uid_name("1.2.840.10008.1.2")


def jobs_for(items: Iterable[InputItem], options: DumpOptions) -> Iterator[tuple[str, DumpOptions] | dict[str, Any]]:
    """One job per input; inputs that could not be resolved are already records."""
    for item in items:
        if item.error:
            yield error_record("file", item.error, path=item.path)
        else:
            yield (item.path, options)


class RecordsPassThrough:
    """Wraps a worker so that jobs which are already records (errors) pass as they are:
    encoded as JSON (``encode``), or as the text tree's failure lines (``text``) for the readable form."""

    def __init__(self, func: Callable[[Any], Any], encode: bool = False, text: bool = False) -> None:
        self.func = func
        self.encode = encode
        self.text = text

    def __call__(self, job: Job) -> Any:
        if isinstance(job, dict):
            if self.text:
                return False, job["error"]["code"], error_text(job)
            return (False, job["error"]["code"], dumps(job)) if self.encode else job
        return self.func(job)


def error_text(record: dict[str, Any]) -> str:
    """The text tree's lines for a file that failed before it was read (not found, unreadable folder...)."""
    error = record["error"]
    lines = [f"# {record.get('path', '')}", f"# FAILED ({error['code']}): {error['message']}"]
    if error.get("hint"):
        lines.append(f"# {error['hint']}")
    return "\n".join(lines)


def file_record_job(job: tuple[str, DumpOptions]) -> dict[str, Any]:
    return file_record(*job)


def dump(
    inputs: Iterable[str],
    *,
    flat: bool = False,
    meta: bool = False,
    tags: Iterable[str] = (),
    bulk_threshold: int = 1024,
    bulk: bool = True,
    jobs: int = 1,
) -> Iterator[dict[str, Any]]:
    """Records of the DICOM files named by ``inputs`` (files, folders, globs), in order."""
    options = DumpOptions(flat=flat, meta=meta, tags=parse_tags(tags), bulk_threshold=bulk_threshold, bulk=bulk)
    items = iter_inputs(list(inputs), read_stdin_when_piped=False)
    yield from map_ordered(RecordsPassThrough(file_record_job), jobs_for(items, options), jobs, lost=lost_record)


def _job_path(job: Job) -> str:
    path: str = job["path"] if isinstance(job, dict) else job[0]
    return path


def lost_record(job: Job, reason: str) -> dict[str, Any]:
    """The record of a job whose worker process died (``parallel.map_ordered``)."""
    return error_record(
        "file", DcmtoolsError(ErrorCode.WORKER_DIED, reason, "try it alone with `jobs` 1"), path=_job_path(job)
    )


def lost_line(job: Job, reason: str) -> tuple[bool, str, str]:
    return False, ErrorCode.WORKER_DIED, dumps(lost_record(job, reason))


def lost_text(job: Job, reason: str) -> tuple[bool, str, str]:
    return False, ErrorCode.WORKER_DIED, f"# {_job_path(job)}\n# FAILED: {reason}"
