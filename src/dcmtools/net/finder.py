"""The C-FIND query and its results: ``Finder`` (cut answers, limits, walking down hierarchical peers,
checking what the peer returned); ``find`` in ``query.py`` runs one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..stream.records import ErrorCode
from .assoc import NetOptions, associate
from .identifiers import flat_of, from_bytes
from .keys import (
    CONTROL_TAGS,
    FIND,
    LEVELS,
    TAGS,
    UNIQUE_KEY,
    WORKLIST_FIND,
    first_text,
    identifier_from,
    level_index,
    level_of,
    parse_keys,
    sort_identifier,
)
from .keys import texts as element_texts
from .matching import element_matches, is_universal
from .peer import Peer
from .qrexchange import (
    LOGGER,
    Exchange,
    MessageIDs,
    Response,
    c_find_primitive,
    context_for,
    encode_identifier,
    query_contexts,
    transfer_syntax_of,
)
from .status import comment_hint, describe, status_fields


@dataclass
class Finder:
    """A C-FIND query and its results (``run`` yields the records; see the module docs)."""

    peer: Peer
    identifier: dict[str, Any]
    options: NetOptions
    level: str = "STUDY"
    model: str = "study"
    limit: int | None = None
    walk: bool = True
    check: bool = True
    flat: bool = False
    assoc: Any = None  # an open association to use (else one is opened)
    matches: int = 0
    dropped: int = 0
    dropped_keys: dict[str, int] = field(default_factory=dict)
    walked: bool = False
    cancelled: bool = False
    final_status: int | None = None
    ids: MessageIDs = field(default_factory=MessageIDs)
    result_cap: int | None = None  # the peer's known cap on matches per answer (peers file: max_results)
    incomplete: bool = False  # the peer cut an answer: the matches are not the whole list
    incomplete_reason: str | None = None
    incomplete_status: int | None = None
    unchecked: int = 0  # matches kept although a key could not be checked (the peer's character set)
    unchecked_keys: dict[str, int] = field(default_factory=dict)
    _last_unchecked: list[str] = field(default_factory=list, repr=False)
    _last_unchecked_note: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.result_cap is None:
            cap = self.peer.extra.get("max_results") if self.peer.extra else None
            self.result_cap = int(cap) if isinstance(cap, int) and cap > 0 else None

    @property
    def sop_class(self) -> str:
        return WORKLIST_FIND if self.model == "worklist" else FIND[self.model]

    @property
    def service(self) -> str:
        return "worklist" if self.model == "worklist" else "find"

    def run(self) -> Iterator[dict[str, Any]]:
        if self.assoc is not None:
            yield from self._run(self.assoc)
            if self.incomplete:
                yield self._incomplete_record()
            return
        from .assoc import close
        from .responses import install

        assoc = associate(self.peer, query_contexts([self.sop_class]), self.options)
        try:
            install(assoc)
            yield from self._run(assoc)
            if self.incomplete:
                yield self._incomplete_record()
        except GeneratorExit:  # the caller stopped reading (after interrupt(), or --limit): release
            close(assoc)
            raise
        except BaseException:
            close(assoc, abort=True)
            raise
        close(assoc)

    def interrupt(self) -> None:
        """Ctrl-C while the caller handled a record: C-CANCEL the query in progress and wait
        (up to ``CANCEL_WAIT`` s) for the peer's answer.  Then close the ``run()`` generator."""
        exchange = getattr(self, "_exchange", None)
        if exchange is not None and not exchange.finished and not exchange.cancelled:
            try:
                exchange.cancel()
                exchange.drain()
            except Exception as exc:  # noqa: BLE001 - the interrupt goes on regardless
                LOGGER.debug("cancelling after an interrupt: %s", exc)
        self.cancelled = True

    # -- the query and its fallbacks
    def _run(self, assoc: Any) -> Iterator[dict[str, Any]]:
        context = context_for(assoc, self.sop_class)
        if context is None:
            from .assoc import no_context_error

            raise no_context_error(self.peer, query_contexts([self.sop_class]), assoc)
        self._context = context
        self._assoc = assoc
        got_any = False
        failure: Response | None = None
        # Checking ModalitiesInStudy may need queries of its own: they wait for this one to end.
        deferred: list[dict[str, Any]] | None = [] if self._checks_modalities() else None
        for item in self._query(self.identifier, cancel_at_limit=deferred is None):
            if isinstance(item, Response):
                failure = item
                break
            got_any = True
            if deferred is not None:
                deferred.append(item)
                continue
            match = self._checked(item)
            if match is not None:
                yield self._record(match)
        for item in deferred or []:
            if self._done():
                break
            match = self._checked(item)
            if match is not None:
                yield self._record(match)
        if failure is None:
            return
        if not got_any and self.walk and self._can_walk():
            self.walked = True
            yield from self._walk()
            return
        yield self._failure_record(failure)

    def _checks_modalities(self) -> bool:
        key = self.identifier.get(f"{TAGS['ModalitiesInStudy']:08X}")
        return self.check and self.level == "STUDY" and not is_universal(key)

    def _done(self) -> bool:
        return self.limit is not None and self.matches >= self.limit

    def _query(self, identifier: dict[str, Any], cancel_at_limit: bool = True) -> Iterator[Any]:
        """Matches (JSON model) of one C-FIND; a final failure ``Response`` when it fails.

        With ``cancel_at_limit``, once ``limit`` records were written (the caller
        writes them between two matches) the query is cancelled (C-CANCEL)."""
        ts = transfer_syntax_of(self._context)
        primitive = c_find_primitive(self.ids.next(), self.sop_class, encode_identifier(identifier, ts))
        exchange = Exchange(
            self._assoc,
            self.peer,
            self.options,
            primitive,
            self._context,
            self.service,
            "C-FIND" if self.model != "worklist" else "worklist C-FIND",
        )
        self._exchange = exchange
        stream = exchange.responses()
        answered = 0
        try:
            for response in stream:
                if response.pending:
                    if response.identifier is None:
                        continue
                    answered += 1
                    try:
                        found = from_bytes(response.identifier, ts)
                    except Exception as exc:  # noqa: BLE001 - a bad identifier from the peer: say so, go on
                        LOGGER.warning("%s sent a match that cannot be read (%s); skipped", self.peer.label, exc)
                        continue
                    yield found
                    if cancel_at_limit and self._done():
                        exchange.cancel()
                        self.cancelled = True
                        final = exchange.drain()
                        self.final_status = final.status if final else None
                        return
                    continue
                self.final_status = response.status
                if response.category in ("failure",):
                    yield response
                elif response.category == "cancel" and not exchange.cancelled:
                    # we did not cancel: the peer cut its answer (Orthanc's LimitFindResults)
                    self._cut(f"ended its answer with a Cancel status after {answered} match(es)", response.status)
                elif self.result_cap and answered >= self.result_cap:
                    self._cut(
                        f"returned {answered} match(es), its cap (max_results = {self.result_cap})", response.status
                    )
                return
        finally:
            stream.close()

    def _record(self, dataset: dict[str, Any]) -> dict[str, Any]:
        self.matches += 1
        record: dict[str, Any] = {"type": "match", "peer": str(self.peer)}
        if self.model == "worklist":
            record["model"] = "worklist"
        else:
            record["level"] = self.level
            record["model"] = self.model
        record["n"] = self.matches
        if self.walked:
            record["walked"] = True
        record["dataset"] = flat_of(dataset) if self.flat else dataset
        if self._last_unchecked:
            record["unchecked_keys"] = list(self._last_unchecked)
            record["note"] = self._last_unchecked_note
            self._last_unchecked = []
        record["ok"] = True
        return record

    def _cut(self, why: str, status: int) -> None:
        self.incomplete = True
        self.incomplete_status = status
        if self.incomplete_reason is None:
            self.incomplete_reason = why

    def _incomplete_record(self) -> dict[str, Any]:
        """The record that says the list is not whole (the command then exits 1)."""
        record: dict[str, Any] = {"type": "query", "peer": str(self.peer)}
        if self.model != "worklist":
            record["level"] = self.level
        record["incomplete"] = True
        record["matches"] = self.matches
        if self.incomplete_status is not None:
            record.update(status_fields(self.incomplete_status, self.service))
        record["ok"] = False
        record["error"] = {
            "code": ErrorCode.INCOMPLETE,
            "message": f"the list is incomplete: {self.peer.label} {self.incomplete_reason} (it caps its answers)",
            "hint": "narrow the query (a shorter date range, more keys) until each answer is under the peer's cap",
        }
        return record

    def _failure_record(self, response: Response) -> dict[str, Any]:
        _, meaning = describe(response.status, self.service)
        message = f"{self.peer.label} refused the query: {meaning} (status 0x{response.status:04X})"
        if response.error_comment:
            message += f": {response.error_comment}"
        hint = comment_hint(response.error_comment) or _query_hint(response.status, self.level, self.model)
        record: dict[str, Any] = {"type": "query", "peer": str(self.peer)}
        if self.model != "worklist":
            record["level"] = self.level
        record.update(status_fields(response.status, self.service, response.error_comment))
        record["ok"] = False
        record["error"] = {"code": ErrorCode.QUERY_FAILED, "message": message}
        if hint:
            record["error"]["hint"] = hint
        return record

    # -- checking the peer's answers
    def _checked(self, match: dict[str, Any]) -> dict[str, Any] | None:
        """The match, or None when a value the peer returned contradicts a key.  Each answer is
        read in its own Specific Character Set; a key that set cannot represent is not held
        against the match (``self.unchecked``, and the record's ``unchecked_keys``)."""
        self._last_unchecked = []
        if not self.check:
            return match
        unchecked: list[str] = self._last_unchecked
        for tag_key, key in self.identifier.items():
            tag = int(tag_key, 16)
            if tag in CONTROL_TAGS or is_universal(key):
                continue
            got = match.get(tag_key)
            if tag == TAGS["ModalitiesInStudy"] and self.level == "STUDY" and not element_texts(got):
                got = self._modalities(match)
                if got is not None:
                    match[tag_key] = got
            if not got or (not got.get("Value") and got.get("vr") != "SQ"):
                continue  # not returned: the peer's word stands
            if got.get("vr") == "SQ" and not got.get("Value"):
                continue
            if not element_matches(key, got, lenient=True):
                name = _name(tag)
                charsets = element_texts(match.get(f"{TAGS['SpecificCharacterSet']:08X}"))
                if not representable(key, charsets):
                    # the peer's answer cannot hold what we asked: its word stands, and we say so
                    unchecked.append(name)
                    continue
                self.dropped += 1
                self.dropped_keys[name] = self.dropped_keys.get(name, 0) + 1
                return None
        if unchecked:
            self.unchecked += 1
            charset = "\\".join(element_texts(match.get(f"{TAGS['SpecificCharacterSet']:08X}"))) or "ISO_IR 6"
            self._last_unchecked_note = (
                f"kept unchecked: the peer answered in {charset}, which cannot represent "
                f"the query's {', '.join(unchecked)}"
            )
            for name in unchecked:
                self.unchecked_keys[name] = self.unchecked_keys.get(name, 0) + 1
        return match

    def _modalities(self, study: dict[str, Any]) -> dict[str, Any] | None:
        """ModalitiesInStudy of a study the peer did not fill: from its series."""
        uid = first_text(study.get(f"{TAGS['StudyInstanceUID']:08X}"))
        if not uid:
            return None
        keys = [f"StudyInstanceUID={uid}", "Modality"]
        if self.model == "patient":
            patient = first_text(study.get(f"{TAGS['PatientID']:08X}"))
            if not patient:
                return None
            keys.append(f"PatientID={patient}")
        identifier = identifier_from(parse_keys(keys), (), "SERIES")
        modalities: list[str] = []
        for item in self._query(identifier):
            if isinstance(item, Response):
                return None
            for value in element_texts(item.get(f"{TAGS['Modality']:08X}")):
                if value not in modalities:
                    modalities.append(value)
        return {"vr": "CS", "Value": modalities} if modalities else {"vr": "CS"}

    # -- walking down a hierarchical peer
    def _can_walk(self) -> bool:
        if self.model == "worklist":
            return False
        top = "PATIENT" if self.model == "patient" else "STUDY"
        return level_index(self.level) > level_index(top)

    def _walk(self) -> Iterator[dict[str, Any]]:
        top = "PATIENT" if self.model == "patient" else "STUDY"
        levels = LEVELS[level_index(top) : level_index(self.level) + 1]
        by_level: dict[str, dict[str, Any]] = {level: {} for level in levels}
        for tag_key, element in self.identifier.items():
            tag = int(tag_key, 16)
            if tag in CONTROL_TAGS:
                continue
            level = level_of(tag)
            if level_index(level) < level_index(top):
                level = top  # patient keys go with the study in the study root
            if level_index(level) > level_index(self.level):
                level = self.level
            by_level[level][tag_key] = element
        yield from self._walk_level(levels, 0, by_level, {}, {})

    def _walk_level(
        self,
        levels: tuple[str, ...],
        depth: int,
        by_level: dict[str, dict[str, Any]],
        fixed: dict[str, Any],
        inherited: dict[str, Any],
    ) -> Iterator[dict[str, Any]]:
        level = levels[depth]
        last = depth == len(levels) - 1
        identifier: dict[str, Any] = {f"{TAGS['QueryRetrieveLevel']:08X}": {"vr": "CS", "Value": [level]}}
        identifier.update(fixed)
        if last:
            # Return keys of the upper levels are asked again (the peer may fill them);
            # their matching values were applied above.
            for upper in levels[:-1]:
                for tag_key, element in by_level[upper].items():
                    if tag_key not in identifier and is_universal(element):
                        identifier[tag_key] = element
        identifier.update(by_level[level])
        unique = f"{TAGS[UNIQUE_KEY[level]]:08X}"
        identifier.setdefault(unique, {"vr": "UI" if level != "PATIENT" else "LO"})
        identifier = sort_identifier(identifier)
        results = []
        for item in self._query(identifier):
            if isinstance(item, Response):
                if depth == 0 or last:
                    yield self._failure_record(item)
                return
            results.append(item)
        for item in results:
            merged = {**inherited, **{k: v for k, v in item.items() if v.get("Value") or k not in inherited}}
            if last:
                match = self._checked(merged)
                if match is None:
                    continue
                wanted = {k: v for k, v in match.items() if k in self.identifier or k in identifier}
                yield self._record(sort_identifier(wanted))
                if self._done():
                    return
                continue
            value = first_text(item.get(unique))
            if not value:
                continue
            vr = "LO" if level == "PATIENT" else "UI"
            below = {**fixed, unique: {"vr": vr, "Value": [value]}}
            for child in self._walk_level(levels, depth + 1, by_level, below, merged):
                yield child
                if self._done():
                    return


def representable(key: dict[str, Any], charsets: list[str]) -> bool:
    """Whether every character of a key's text can be written in an answer's Specific Character
    Set (``[]``: the default repertoire, ASCII)."""
    from .matching import _values

    texts = [t for t in _values(key) if not t.isascii()]
    if not texts:
        return True
    try:
        from pydicom.charset import convert_encodings

        encodings = convert_encodings(list(charsets) or ["ISO_IR 6"])
    except Exception:  # noqa: BLE001 - an unknown character set: we cannot tell, so we do not judge
        return False
    for text in texts:
        for char in set(text):
            if char.isascii():
                continue
            for encoding in encodings:
                try:
                    char.encode(encoding)
                    break
                except (UnicodeError, LookupError):
                    continue
            else:
                return False
    return True


def _name(tag: int) -> str:
    from ..dicom import dictionary

    return dictionary.keyword_of(tag) or f"{tag >> 16:04X},{tag & 0xFFFF:04X}"


def _query_hint(status: int, level: str, model: str) -> str | None:
    if status == 0xA700 or 0xA700 <= status <= 0xA7FF:
        return (
            "the peer answered 'out of resources' without saying why (often: too many matches); "
            "try a narrower query (more keys, a date range), or see its log"
        )
    if status == 0xA900:
        return "the peer found the keys do not fit this query level; check -k and `level`"
    if 0xC000 <= status <= 0xCFFF:
        if level in ("SERIES", "IMAGE"):
            return (
                "a hierarchical peer needs the study (and, with `model` patient, the patient) of a "
                f"{level.lower()} query: give -k StudyInstanceUID=... or query studies first; see the peer's log"
            )
        return "the peer could not process the query; check its log"
    if status == 0x0122:
        return f"the peer does not support the {model} root query model; try `model` {'study' if model == 'patient' else 'patient'}"
    return None
