"""QIDO-RS: ``find`` against a DICOMweb peer, with the same keys and the same records as C-FIND.

    from dcmtools.net.keys import DEFAULT_KEYS, identifier_from, parse_keys
    from dcmtools.web import WebSession, parse_web_peer, qido

    identifier = identifier_from(parse_keys(["PatientID=VET042"]), DEFAULT_KEYS["STUDY"], "STUDY")
    with WebSession(parse_web_peer("http://127.0.0.1:8042/dicom-web")) as session:
        for record in qido(session, identifier, "STUDY"):
            print(record["dataset"])

The identifier (DICOM JSON, as ``find`` builds it from ``-k`` keys and the
shortcuts) becomes the query: a key with a value is a match parameter
(``00100020=VET042``, ranges and wildcards as they are), a key without one an
``includefield``.  Pages of ``page`` matches are asked for with
``limit``/``offset`` until a page comes back short.  Each match is cut down to
the keys asked for (a QIDO-RS server adds its own), with QueryRetrieveLevel,
so that the record is the one C-FIND gives::

    {"type": "match", "peer": "http://.../dicom-web", "level": "STUDY", "model": "study",
     "n": 1, "dataset": {...}, "ok": true}

QIDO-RS has no patient level: a PATIENT query is a usage error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..net.identifiers import flat_of
from ..net.keys import TAGS, normalize_level, sort_identifier, texts
from ..stream.records import DcmtoolsError, ErrorCode, ExitStatus
from .session import WebSession

RESOURCE = {"STUDY": "studies", "SERIES": "series", "IMAGE": "instances"}
PAGE = 100
_SKIP = {f"{TAGS['QueryRetrieveLevel']:08X}", f"{TAGS['SpecificCharacterSet']:08X}"}


def query_parameters(identifier: dict[str, Any]) -> list[tuple[str, str]]:
    """The QIDO-RS parameters of a C-FIND identifier (match keys, then includefield)."""
    params: list[tuple[str, str]] = []
    for tag, element in identifier.items():
        if tag in _SKIP:
            continue
        values = texts(element) if element.get("vr") != "SQ" else []
        values = [v for v in values if v not in ("", "*")]
        if values:
            params.append((tag, ",".join(values)))
        else:
            params.append(("includefield", tag))
    return params


def encode_query(params: list[tuple[str, str]]) -> str:
    """The query string, with the matching characters ``* ? , ^`` left as they are: Orthanc does
    not decode ``%2A`` and would match a literal asterisk (0 answers)."""
    from urllib.parse import quote, urlencode

    return urlencode(params, safe="*?,^", quote_via=quote)


def qido(
    session: WebSession,
    identifier: dict[str, Any],
    level: str = "STUDY",
    *,
    limit: int | None = None,
    flat: bool = False,
    page: int = PAGE,
    stats: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Query at ``level`` (STUDY, SERIES, IMAGE); one record per match, all pages."""
    level = normalize_level(level)
    if level not in RESOURCE:
        raise DcmtoolsError(
            ErrorCode.BAD_VALUE,
            "QIDO-RS has no patient level",
            "query the studies (`level` study) with `patient_id` or -k PatientID=...",
            ExitStatus.USAGE,
        )
    params = query_parameters(identifier)
    asked = set(identifier) | {f"{TAGS['QueryRetrieveLevel']:08X}"}
    level_element = {"vr": "CS", "Value": [level]}
    n = 0
    offset = 0
    while True:
        size = page if limit is None else min(page, limit - n)
        query = encode_query(params + [("limit", str(size)), ("offset", str(offset))])
        response = session.request(
            "GET",
            f"{RESOURCE[level]}?{query}",
            what=f"QIDO-RS query ({level.lower()} level)",
            headers={"Accept": "application/dicom+json"},
            ok=(200, 204),
        )
        answers = _answers(session, response)
        for answer in answers:
            n += 1
            dataset = {tag: element for tag, element in answer.items() if tag in asked}
            dataset[f"{TAGS['QueryRetrieveLevel']:08X}"] = level_element
            dataset = sort_identifier(dataset)
            yield {
                "type": "match",
                "peer": str(session.peer),
                "level": level,
                "model": "study",
                "n": n,
                "dataset": flat_of(dataset) if flat else dataset,
                "ok": True,
            }
            if limit is not None and n >= limit:
                if stats is not None:
                    stats["limited"] = True
                return
        if len(answers) < size:
            return
        offset += len(answers)


def _answers(session: WebSession, response: Any) -> list[dict[str, Any]]:
    if response.status_code == 204 or not response.content:
        return []
    try:
        answers = response.json()
    except ValueError:
        answers = None
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise DcmtoolsError(
            ErrorCode.BAD_RESPONSE,
            f"{session.peer.label} answered the QIDO-RS query with something that is not DICOM JSON",
            "check that the URL is the DICOMweb base path",
            ExitStatus.FAILED,
        )
    return answers
