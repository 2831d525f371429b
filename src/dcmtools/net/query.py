"""Query (C-FIND SCU): ``find`` (the ``Finder`` of ``finder.py``) and many queries over one association.

    from dcmtools.net import NetOptions, parse_peer
    from dcmtools.net.query import find, find_identifier

    identifier = find_identifier("STUDY", ["PatientName=DOE*", "StudyDate=20240101-20240131"])
    for record in find(parse_peer("PACS@10.0.0.5:104"), identifier, NetOptions(), level="STUDY"):
        print(record["dataset"])

``find`` yields one record per match::

    {"type": "match", "peer": "PACS@10.0.0.5:104", "level": "STUDY", "model": "study",
     "n": 1, "dataset": {...DICOM JSON model...}, "ok": true}

and, when the peer ends the query with a failure status, a last record
``{"type": "query", "ok": false, "status": "0xA900", "error": {...}}``.
Association failures raise ``DcmtoolsError`` (exit statuses of ``assoc.py``).

What it does beyond sending the identifier:

* A peer that cuts its answer (Orthanc's ``LimitFindResults`` ends it with a
  Cancel status we did not ask for; a peer whose peers-file entry has
  ``max_results = N`` returned N matches) leaves the list incomplete: a last
  record ``{"type": "query", "incomplete": true, "ok": false, "error":
  {"code": "incomplete", ...}}`` says so, and ``Finder.incomplete`` is True
  (``migrate`` splits its window on it).
* ``limit``: after that many matches it sends a C-CANCEL and stops; on
  Ctrl-C (``KeyboardInterrupt``) it sends a C-CANCEL, waits a moment for the
  peer's answer, then lets the interrupt go on.
* Hierarchical peers (e.g. DCMTK dcmqrscp) refuse a SERIES or IMAGE query
  that does not name its study (and, in the patient root, its patient).
  When the peer refuses such a query, ``find`` walks down instead: it asks
  for the studies matching the study and patient keys, then for the series
  of each (and the images of each series), and fills the return keys of the
  upper levels into each match.  The records then say ``"walked": true``.
* Peers ignore keys they do not support and return matches that do not
  match them.  A match whose returned value contradicts a key is left out
  (counted in ``Finder.dropped``); a STUDY query on ``ModalitiesInStudy``
  that the peer does not fill is checked by asking for the study's series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..stream.records import DcmtoolsError, ErrorCode
from .assoc import NetOptions, associate, close
from .finder import Finder as Finder
from .finder import representable as representable
from .keys import (
    DEFAULT_KEYS,
    FIND,
    identifier_from,
    normalize_level,
    parse_keys,
    sort_identifier,
)
from .peer import Peer
from .qrexchange import CANCEL_WAIT as CANCEL_WAIT
from .qrexchange import UNCOMPRESSED as UNCOMPRESSED
from .qrexchange import Exchange as Exchange
from .qrexchange import MessageIDs as MessageIDs
from .qrexchange import Response as Response
from .qrexchange import c_find_primitive as c_find_primitive
from .qrexchange import context_for as context_for
from .qrexchange import encode_identifier as encode_identifier
from .qrexchange import query_contexts as query_contexts
from .qrexchange import transfer_syntax_of as transfer_syntax_of


# ------------------------------------------------------------- find
class FindAssociation:
    """The C-FIND association of a run of queries to one peer: opened on first use, and again when
    the peer has dropped it (migrate's inventory and verification, retrieve's look-ups)."""

    def __init__(self, peer: Peer, options: NetOptions, models: Iterable[str] = ("study", "patient")) -> None:
        self.peer = peer
        self.options = options
        self.sop_classes = [FIND[model] for model in models]
        self._assoc: Any = None

    def get(self) -> Any:
        """The open association (a ``dcmtools.net.assoc`` wrapper with our response reader)."""
        if self._assoc is None or not self._assoc.is_established:
            from .responses import install

            self._assoc = associate(self.peer, query_contexts(self.sop_classes), self.options)
            install(self._assoc)
        return self._assoc

    def close(self, abort: bool = False) -> None:
        if self._assoc is not None:
            close(self._assoc, abort=abort)
            self._assoc = None


def find_identifier(level: str, key_texts: Iterable[str] = (), *, defaults: bool = True) -> dict[str, Any]:
    """The identifier of a query at ``level``: the default return keys (unless
    ``defaults`` is False) plus the ``-k`` keys."""
    level = normalize_level(level)
    return identifier_from(parse_keys(key_texts), DEFAULT_KEYS[level] if defaults else (), level)


def find(
    peer: Peer,
    identifier: dict[str, Any],
    options: NetOptions | None = None,
    *,
    level: str = "STUDY",
    model: str = "study",
    limit: int | None = None,
    walk: bool = True,
    check: bool = True,
    flat: bool = False,
) -> Iterator[dict[str, Any]]:
    """C-FIND ``identifier`` (JSON model, see ``find_identifier``) at ``level``; yields records."""
    finder = Finder(peer, identifier, options or NetOptions(), normalize_level(level), model, limit, walk, check, flat)
    yield from finder.run()


# ------------------------------------------------------------- many queries
def read_queries(stream: Iterable[str]) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """The queries of a file: ``(number, ["Keyword=value", ...], None)`` per query, or
    ``(number, None, message)`` for a line that cannot be one.

    JSON Lines (each line an object of keys: ``{"AccessionNumber": "A1"}``; a
    list value is a multi-value key) when the first line starts with ``{``;
    otherwise CSV whose header names the keys (keywords or ``gggg,eeee``; an
    empty cell asks for the key to be returned).  Streams: one line at a time."""
    import csv
    import itertools
    import json

    lines = iter(stream)
    first = None
    for line in lines:
        if line.strip():
            first = line
            break
    if first is None:
        return
    rest = itertools.chain([first], lines)
    if first.lstrip().startswith("{"):
        number = 0
        for line in rest:
            if not line.strip():
                continue
            number += 1
            try:
                row = json.loads(line)
            except ValueError as exc:
                yield number, None, f"query {number} is not a JSON object ({exc})"
                continue
            if not isinstance(row, dict) or not row:
                yield number, None, f"query {number} is not a JSON object of keys"
                continue
            yield number, [_key_text(k, v) for k, v in row.items()], None
        return
    reader = csv.reader(rest)
    header = [h.strip() for h in next(reader)]
    if not any(header):
        yield 0, None, "the CSV header names no keys"
        return
    for number, row in enumerate(reader, 1):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield number, None, f"query {number} has {len(row)} field(s), the header {len(header)}"
            continue
        yield number, [_key_text(k, v.strip()) for k, v in zip(header, row, strict=False) if k], None


def _key_text(name: str, value: Any) -> str:
    if value is None or value == "":
        return str(name)
    if isinstance(value, list):
        value = "\\".join(str(v) for v in value)
    return f"{name}={value}"


def find_many(
    peer: Peer,
    base: dict[str, Any],
    queries: Iterable[tuple[int, list[str] | None, str | None]],
    options: NetOptions | None = None,
    *,
    level: str = "STUDY",
    model: str = "study",
    walk: bool = True,
    check: bool = True,
    flat: bool = False,
    stats: dict[str, int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run many queries over ONE association: each query's keys (see ``read_queries``) on top of
    ``base`` (the identifier of the shared keys and return keys).  Every record is tagged with
    its query: ``"q": number`` and ``"query": {keyword: value}``.  A query that cannot be built
    is an error record and the rest go on.  ``stats`` (if given) counts queries and matches."""
    from .assoc import close
    from .responses import install

    options = options or NetOptions()
    level = normalize_level(level)
    sop_class = FIND[model]
    stats = stats if stats is not None else {}
    stats.setdefault("queries", 0)
    stats.setdefault("matches", 0)
    assoc = None
    try:
        for number, keys, problem in queries:
            stats["queries"] += 1
            tag: dict[str, Any] = {"q": number}
            if problem is not None:
                yield {
                    "type": "query",
                    "peer": str(peer),
                    **tag,
                    "ok": False,
                    "error": {"code": ErrorCode.BAD_KEY, "message": problem},
                }
                continue
            try:
                parsed = parse_keys(keys or [])
                identifier = dict(base)
                identifier.update(identifier_from(parsed, (), level))
                identifier = sort_identifier(identifier)
            except DcmtoolsError as exc:
                yield {
                    "type": "query",
                    "peer": str(peer),
                    **tag,
                    "ok": False,
                    "error": {"code": exc.code, "message": f"query {number}: {exc.message}"},
                }
                continue
            tag["query"] = dict(_query_label(keys or []))
            if assoc is None or not assoc.is_established:
                assoc = associate(peer, query_contexts([sop_class]), options)
                install(assoc)
            finder = Finder(peer, identifier, options, level, model, None, walk, check, flat, assoc=assoc)
            for record in finder.run():
                if record.get("type") == "match":
                    stats["matches"] += 1
                yield {**record, **tag}
    except BaseException:
        if assoc is not None:
            close(assoc, abort=True)
        raise
    if assoc is not None:
        close(assoc)


def _query_label(keys: list[str]) -> Iterator[tuple[str, str]]:
    for text in keys:
        name, _, value = text.partition("=")
        if value:
            yield name, value
